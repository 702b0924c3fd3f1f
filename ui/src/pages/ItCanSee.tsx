// "What IT can see": the last report IT received, verbatim and readable, and when.
import { useEffect, useState } from "preact/hooks";

import { lastSentReport, type SentReport, type StatusReport } from "../api";
import { errorText, PageTitle, StatusBadge } from "../components";
import { useApp } from "../context";

/** The report pretty-printed for reading; the text stays exactly what was sent otherwise. */
function readable(body: string): { pretty: string; parsed: StatusReport | null } {
  try {
    const parsed = JSON.parse(body) as StatusReport;
    return { pretty: JSON.stringify(parsed, null, 2), parsed };
  } catch {
    return { pretty: body, parsed: null };
  }
}

export function ItCanSee() {
  const { m, state } = useApp();
  const [report, setReport] = useState<SentReport | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  // Reload when a sync finishes: a new report may have reached IT.
  useEffect(() => {
    lastSentReport()
      .then(setReport)
      .catch((err: unknown) => setError(errorText(err)));
  }, [state?.last_sync_at]);

  const view = report ? readable(report.body) : null;
  return (
    <div class="it-can-see">
      <PageTitle>{m.t("itCanSee.title")}</PageTitle>
      <p class="lede">{m.t("itCanSee.intro")}</p>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {report === undefined ? <p class="empty">{m.t("loading")}</p> : null}
      {report === null ? <p class="empty" id="sent-none">{m.t("itCanSee.none")}</p> : null}
      {report && view ? (
        <>
          <section class="card" aria-labelledby="sent-summary-heading">
            <h2 id="sent-summary-heading" class="card-heading">
              {m.t("itCanSee.summary")}
            </h2>
            <p id="sent-at" data-acknowledged-at={report.acknowledged_at}>
              {m.t("itCanSee.when", { when: m.relative(report.acknowledged_at), date: m.dateTime(report.acknowledged_at) })}
            </p>
            {view.parsed ? (
              <ul class="facts">
                <li>
                  {m.t("itCanSee.device", {
                    host: view.parsed.inventory.hostname,
                    os: `${view.parsed.inventory.os} ${view.parsed.inventory.os_version}`,
                  })}
                </li>
                <li>{m.t("itCanSee.results", { n: view.parsed.results.length })}</li>
                <li>{m.t("itCanSee.events", { n: view.parsed.events.length })}</li>
              </ul>
            ) : null}
          </section>
          {view.parsed ? (
            <section aria-labelledby="sent-results-heading">
              <h2 id="sent-results-heading" class="section-heading">
                {m.t("itCanSee.resultsHeading")}
              </h2>
              <ul id="sent-results" class="rows" role="list">
                {view.parsed.results.map((r) => (
                  <li key={r.id} class="row" data-check-id={r.id}>
                    <div class="row-static">
                      <span class="row-title">{m.checkTitle(r.id)}</span>
                      <StatusBadge status={r.status} />
                      <span class="row-summary">{r.summary}</span>
                    </div>
                  </li>
                ))}
              </ul>
            </section>
          ) : null}
          <details class="raw-details" id="raw-details">
            <summary>{m.t("itCanSee.raw")}</summary>
            <pre id="sent-report" class="raw" tabIndex={0} data-report-id={view.parsed?.report_id ?? ""}>
              {view.pretty}
            </pre>
          </details>
        </>
      ) : null}
    </div>
  );
}
