// An item page: what is wrong, why it matters, how to fix it on this computer (the steps the
// check gave for this OS), a button that opens the right settings page or link, the deadline
// and deferrals left, and "Check again".
import { useState } from "preact/hooks";

import { defer, openFix, type CheckId } from "../api";
import { errorText, PageTitle, StatusBadge } from "../components";
import { useApp } from "../context";

export function Item({ check }: { check: CheckId }) {
  const { state, m, checkNow, busy } = useApp();
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const result = state?.results.find((r) => r.id === check);
  const item = state?.items.find((i) => i.check_id === check);

  async function onFix() {
    setError(null);
    try {
      await openFix(check);
    } catch (err) {
      setError(errorText(err));
    }
  }

  async function onLater() {
    setError(null);
    try {
      const until = await defer(check);
      setNote(m.t("item.deferredUntil", { date: m.dateTime(until) }));
    } catch (err) {
      setError(errorText(err));
    }
  }

  async function onCheckAgain() {
    setError(null);
    try {
      await checkNow(check);
    } catch (err) {
      setError(m.t("checkFailed", { error: errorText(err) }));
    }
  }

  const action = result?.remediation.action;
  const steps = result?.remediation.steps ?? [];
  return (
    <article id="item" class="item" data-check-id={check} data-status={result?.status ?? "none"} aria-labelledby="page-title">
      <a class="back" href="#/">
        ← {m.t("item.back")}
      </a>
      <header class="item-header">
        <PageTitle>{m.checkTitle(check)}</PageTitle>
        {result ? <StatusBadge status={result.status} /> : null}
      </header>

      {!result ? (
        <p class="empty">{m.t("item.notFound")}</p>
      ) : (
        <>
          <section class="card" aria-labelledby="wrong-heading">
            <h2 id="wrong-heading" class="card-heading">
              {m.t("item.whatsWrong")}
            </h2>
            <p id="item-summary" class="item-summary">
              {result.summary}
            </p>
            <p class="muted" id="item-checked" data-observed-at={result.observed_at}>
              {m.t("item.checkedAt", { ago: m.relative(result.observed_at) })}
            </p>
          </section>

          <section class="card" aria-labelledby="why-heading">
            <h2 id="why-heading" class="card-heading">
              {m.t("item.why")}
            </h2>
            <p>{m.checkWhy(check)}</p>
          </section>

          <section class="card" aria-labelledby="how-heading">
            <h2 id="how-heading" class="card-heading">
              {m.t("item.how")}
            </h2>
            {result.owner === "it" ? <p class="muted">{m.t("item.itsIt")}</p> : null}
            {steps.length > 0 ? (
              <ol class="steps">
                {steps.map((s, i) => (
                  <li key={i}>{s}</li>
                ))}
              </ol>
            ) : (
              <p class="muted">{m.t("item.noSteps")}</p>
            )}
            {action && action.kind !== "run_allowed_fix" ? (
              <button type="button" id="open-fix" class="primary" onClick={onFix}>
                {action.kind === "open_url" ? m.t("item.openLink") : m.t("item.openFix")}
              </button>
            ) : null}
          </section>

          {item ? (
            <section class="card" aria-labelledby="deadline-heading">
              <h2 id="deadline-heading" class="card-heading">
                {m.t("item.deadline")}
              </h2>
              <p id="item-deadline" data-phase={item.phase}>
                <span class="phase" data-phase={item.phase}>
                  {m.phase(item.phase)}
                </span>{" "}
                {m.t("item.due", { date: m.dateTime(item.deadline), relative: m.relative(item.deadline) })}
              </p>
              <p class="muted" id="deferrals-left" data-left={item.deferrals_left}>
                {item.deferrals_left > 0 ? m.t("item.deferralsLeft", { n: item.deferrals_left }) : m.t("item.noDeferrals")}
              </p>
              {item.deferred_until ? <p class="muted">{m.t("item.deferredUntil", { date: m.dateTime(item.deferred_until) })}</p> : null}
              {item.deferrals_left > 0 && !item.deferred_until ? (
                <button type="button" id="defer" class="secondary" onClick={onLater}>
                  {m.t("item.later")}
                </button>
              ) : null}
            </section>
          ) : null}
        </>
      )}

      <div class="actions">
        <button type="button" id="check-again" class="secondary" onClick={onCheckAgain} aria-disabled={busy}>
          {busy ? m.t("checking") : m.t("checkAgain")}
        </button>
      </div>
      <div role="status" aria-live="polite" class="live">
        {note}
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
    </article>
  );
}
