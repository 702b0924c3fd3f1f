// History: what changed and when, newest first, grouped by day.
import { useEffect, useState } from "preact/hooks";

import { history, type HistoryEntry } from "../api";
import { errorText, PageTitle, StatusBadge } from "../components";
import { useApp } from "../context";

export function History() {
  const { m, state } = useApp();
  const [entries, setEntries] = useState<HistoryEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    history()
      .then(setEntries)
      .catch((err: unknown) => setError(errorText(err)));
  }, [state?.last_check_at]);

  const day = new Intl.DateTimeFormat(m.lang, { dateStyle: "full" });
  const groups: { label: string; entries: HistoryEntry[] }[] = [];
  for (const e of entries ?? []) {
    const label = day.format(new Date(e.at));
    const last = groups[groups.length - 1];
    if (last && last.label === label) last.entries.push(e);
    else groups.push({ label, entries: [e] });
  }

  return (
    <div class="history">
      <PageTitle>{m.t("history.title")}</PageTitle>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {entries === null && !error ? <p class="empty">{m.t("loading")}</p> : null}
      {entries?.length === 0 ? <p class="empty">{m.t("history.none")}</p> : null}
      <div id="history">
        {groups.map((g) => (
          <section key={g.label} aria-label={g.label}>
            <h2 class="section-heading">{g.label}</h2>
            <ul class="rows timeline" role="list">
              {g.entries.map((e, i) => (
                <li key={i} class="row" data-kind={e.kind}>
                  <div class="row-static">
                    <span class="row-title">
                      {e.kind === "status" ? m.checkTitle(e.check_id) : m.t("history.phishing", { id: e.tracking_id })}
                    </span>
                    {e.kind === "status" ? <StatusBadge status={e.to} /> : <span />}
                    <span class="row-summary">
                      <time dateTime={e.at}>{m.time(e.at)}</time>
                      {e.kind === "status" && e.from ? ` · ${m.t("history.was", { from: m.status(e.from) })}` : ""}
                      {e.kind === "status" && e.summary ? ` · ${e.summary}` : ""}
                    </span>
                  </div>
                </li>
              ))}
            </ul>
          </section>
        ))}
      </div>
    </div>
  );
}
