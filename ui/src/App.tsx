// The skeleton window: the overall state, enrolment and sync, "Check now" and one row per
// check result. Everything it shows comes from the agent state; it decides nothing itself.
import { useEffect, useState } from "preact/hooks";

import {
  checkNow,
  CommandError,
  getState,
  initialState,
  onState,
  type AgentState,
  type CheckResult,
  type Status,
  type TrayState,
} from "./api";
import { ago, CHECK_TITLES, STATUS_LABELS } from "./labels";

import okOnLight from "../../icons/src/tray/ok-on-light.svg";
import okOnDark from "../../icons/src/tray/ok-on-dark.svg";
import attentionOnLight from "../../icons/src/tray/attention-on-light.svg";
import attentionOnDark from "../../icons/src/tray/attention-on-dark.svg";
import urgentOnLight from "../../icons/src/tray/urgent-on-light.svg";
import urgentOnDark from "../../icons/src/tray/urgent-on-dark.svg";
import offlineOnLight from "../../icons/src/tray/offline-on-light.svg";
import offlineOnDark from "../../icons/src/tray/offline-on-dark.svg";

const SHIELDS: Record<TrayState, { light: string; dark: string }> = {
  ok: { light: okOnLight, dark: okOnDark },
  attention: { light: attentionOnLight, dark: attentionOnDark },
  urgent: { light: urgentOnLight, dark: urgentOnDark },
  offline: { light: offlineOnLight, dark: offlineOnDark },
};

/**
 * The tray's state, so the window's shield is the icon the user just clicked. Mirrors
 * `AgentState::tray_state()` in tandem-proto; to be replaced by a field of the state when
 * the contract carries it, so the rule lives in one place.
 */
function headline(state: AgentState): string {
  if (state.results.length === 0) {
    return state.checking ? "Checking this computer…" : "No checks have run yet";
  }
  const needing = state.results.filter((r) => r.status === "fail" || r.status === "warn").length;
  if (needing === 0) return "All good: nothing needs you";
  return needing === 1 ? "1 thing needs you" : `${needing} things need you`;
}

function connection(state: AgentState): string {
  const parts: string[] = [];
  if (state.enrollment) {
    let host = state.enrollment.server_url;
    try {
      host = new URL(host).host;
    } catch {
      // Show the URL as given when it does not parse.
    }
    parts.push(`Enrolled with ${host}`);
    parts.push(state.last_sync_at ? `last sync ${ago(state.last_sync_at)}` : "not synced yet");
  } else {
    parts.push("Not enrolled: nothing is sent to IT");
  }
  if (state.last_check_at) parts.push(`checked ${ago(state.last_check_at)}`);
  return parts.join(" · ");
}

function StatusBadge({ status }: { status: Status }) {
  return (
    <span class="badge" data-status={status}>
      <svg class="badge-glyph" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
        <path d={GLYPHS[status]} />
      </svg>
      <span>{STATUS_LABELS[status]}</span>
    </span>
  );
}

// Each status has its own shape, so colour is never the only cue.
const GLYPHS: Record<Status, string> = {
  pass: "M4 8.2 L7 11 L12 5",
  warn: "M8 3.5 V9 M8 12 V12.2",
  fail: "M4.5 4.5 L11.5 11.5 M11.5 4.5 L4.5 11.5",
  unknown: "M6 6 C6 3.5 10.5 3.5 10.5 6 C10.5 7.8 8 7.8 8 9.6 M8 12.2 V12.4",
  not_applicable: "M4 8 H12",
};

function ResultRow({ result }: { result: CheckResult }) {
  const titleId = `result-${result.id}-title`;
  return (
    <li class="result" data-check-id={result.id} data-status={result.status} aria-labelledby={titleId}>
      <h3 class="result-title" id={titleId}>
        {CHECK_TITLES[result.id]}
      </h3>
      <StatusBadge status={result.status} />
      <p class="result-summary">{result.summary}</p>
    </li>
  );
}

export function App() {
  const [state, setState] = useState<AgentState | null>(initialState);
  const [error, setError] = useState<string | null>(null);
  const [requested, setRequested] = useState(false);

  useEffect(() => {
    let stop: (() => void) | undefined;
    let cancelled = false;
    // An event that arrives before the answer to getState is newer than that answer.
    let heard = false;
    // Listen first, then read: a change between the two is never lost.
    onState((next) => {
      heard = true;
      setState(next);
    })
      .then((unlisten) => {
        if (cancelled) unlisten();
        else stop = unlisten;
      })
      .catch((err: unknown) => setError(`cannot follow the agent: ${String(err)}`));
    getState()
      .then((now) => {
        if (!heard) setState(now);
      })
      .catch((err: unknown) => setError(err instanceof CommandError ? err.message : String(err)));
    return () => {
      cancelled = true;
      stop?.();
    };
  }, []);

  // Re-render now and then so "checked 2 minutes ago" stays true while the window is open.
  const [, setTick] = useState(0);
  useEffect(() => {
    const timer = window.setInterval(() => setTick((n) => n + 1), 30_000);
    return () => window.clearInterval(timer);
  }, []);

  const busy = requested || (state?.checking ?? false);

  async function onCheckNow() {
    if (busy) return;
    setRequested(true);
    setError(null);
    try {
      setState(await checkNow());
    } catch (err: unknown) {
      setError(err instanceof CommandError ? `Check failed: ${err.message}` : String(err));
    } finally {
      setRequested(false);
    }
  }

  const tone = state ? state.tray : "offline";
  const shield = SHIELDS[tone];

  return (
    <main class="app" data-tone={tone} aria-busy={state === null}>
      <header class="overview">
        <picture class="shield">
          <source srcset={shield.dark} media="(prefers-color-scheme: dark)" />
          <img src={shield.light} width={40} height={40} alt="" />
        </picture>
        <div class="overview-text">
          <div role="status" aria-live="polite">
            <h1 class="headline" id="overall">
              {state ? headline(state) : "Loading…"}
            </h1>
          </div>
          <p class="connection" id="connection">
            {state ? connection(state) : "\u00a0"}
          </p>
          {state?.last_sync_error ? (
            <p class="sync-error">Could not reach the server: {state.last_sync_error}</p>
          ) : null}
        </div>
        <button type="button" class="check-now" id="check-now" onClick={onCheckNow} aria-disabled={busy}>
          {busy ? "Checking…" : "Check now"}
        </button>
      </header>

      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}

      <section class="results-section" aria-labelledby="results-heading">
        <h2 id="results-heading" class="section-heading">
          Checks on this computer
        </h2>
        <ul
          id="results"
          class="results"
          role="list"
          aria-labelledby="results-heading"
          aria-busy={busy}
          data-count={state?.results.length ?? 0}
        >
          {state?.results.map((r) => <ResultRow key={r.id} result={r} />)}
        </ul>
        {state && state.results.length === 0 ? (
          <p class="empty">
            {state.checking ? "The first check is running." : "Results appear here after the first check."}
          </p>
        ) : null}
      </section>

      <footer class="footer">
        Tandem{state?.agent_version ? ` ${state.agent_version}` : ""}
      </footer>
    </main>
  );
}
