// Home: the shared-responsibility view. "Your part" (checks that are the user's to do) beside
// "IT's part" (IT-owned checks and the commitments IT's policy lists), with a score and the
// next deadline. Everything shown comes from the agent state and policy.
import type { AgentState, CheckResult } from "../api";
import { StatusBadge } from "../components";
import { useApp } from "../context";
import { href } from "../router";

/** The user's checks that count towards the score: not the ones that do not apply. */
function counted(state: AgentState): CheckResult[] {
  return state.results.filter((r) => r.owner === "user" && r.status !== "not_applicable");
}

function ResultRow({ result }: { result: CheckResult }) {
  const { state, m } = useApp();
  const item = state?.items.find((i) => i.check_id === result.id);
  const titleId = `row-${result.id}-title`;
  return (
    <li class="row" data-check-id={result.id} data-status={result.status}>
      <a class="row-link" href={href({ page: "item", check: result.id })} aria-labelledby={titleId} aria-describedby={`row-${result.id}-summary`}>
        <span class="row-title" id={titleId}>
          {m.checkTitle(result.id)}
        </span>
        <StatusBadge status={result.status} />
        <span class="row-summary" id={`row-${result.id}-summary`}>
          {result.summary}
        </span>
        {item ? (
          <span class="row-due" data-phase={item.phase}>
            {m.phase(item.phase)} · {m.relative(item.deadline)}
          </span>
        ) : null}
        <svg class="row-chevron" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
          <path d="M6 3.5 L10.5 8 L6 12.5" />
        </svg>
      </a>
    </li>
  );
}

export function Home() {
  const { state, policy, m } = useApp();
  if (!state) return <p class="empty">{m.t("loading")}</p>;
  const yours = state.results.filter((r) => r.owner === "user");
  // Open items first (most urgent first, as the runtime orders them), then the rest.
  const rank = (r: CheckResult) => {
    const i = state.items.findIndex((item) => item.check_id === r.id);
    if (i >= 0) return i;
    return r.status === "fail" || r.status === "warn" ? 100 : r.status === "unknown" ? 200 : 300;
  };
  yours.sort((a, b) => rank(a) - rank(b));
  const its = state.results.filter((r) => r.owner === "it");
  const scored = counted(state);
  const done = scored.filter((r) => r.status === "pass").length;
  const next = state.items.reduce<(typeof state.items)[number] | null>(
    (soonest, i) => (soonest === null || i.deadline < soonest.deadline ? i : soonest),
    null,
  );
  const commitments = policy?.it_commitments ?? [];

  return (
    <div class="home">
      <section class="score-card" aria-labelledby="score">
        <div class="score-text">
          <h2 id="score" class="score" data-done={done} data-total={scored.length}>
            {m.t("home.score", { done, total: scored.length })}
          </h2>
          <p id="next-deadline" class="next-deadline">
            {next
              ? m.t("home.nextDeadline", { what: m.checkTitle(next.check_id), when: m.dateTime(next.deadline) })
              : m.t("home.noDeadline")}
          </p>
          {state.paused_until ? <p class="paused">{m.t("home.paused", { time: m.time(state.paused_until) })}</p> : null}
        </div>
        <meter
          class="score-meter"
          min={0}
          max={Math.max(scored.length, 1)}
          value={done}
          aria-labelledby="score"
        />
      </section>

      <div class="parts">
        <section class="part" aria-labelledby="your-part-heading">
          <h2 id="your-part-heading" class="section-heading">
            {m.t("home.yourPart")}
          </h2>
          {yours.length > 0 ? (
            <ul id="your-part" class="rows" role="list" aria-labelledby="your-part-heading">
              {yours.map((r) => (
                <ResultRow key={r.id} result={r} />
              ))}
            </ul>
          ) : (
            <p class="empty">{state.checking ? m.t("headline.running") : m.t("home.emptyYours")}</p>
          )}
        </section>

        <section class="part" aria-labelledby="it-part-heading">
          <h2 id="it-part-heading" class="section-heading">
            {m.t("home.itPart")}
          </h2>
          <ul id="it-part" class="rows" role="list" aria-labelledby="it-part-heading">
            {its.map((r) => (
              <ResultRow key={r.id} result={r} />
            ))}
            {commitments.map((c, i) => (
              <li class="row commitment" key={`c${i}`} data-commitment={c.title}>
                <div class="row-static">
                  <span class="row-title">{c.title}</span>
                  <span class="row-summary">{c.detail}</span>
                  <span class="row-by">{m.t("home.by", { who: c.by })}</span>
                </div>
              </li>
            ))}
          </ul>
        </section>
      </div>
    </div>
  );
}
