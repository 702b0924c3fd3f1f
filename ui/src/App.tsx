// The window: a header with the overall state and "Check now", a navigation bar and the page
// the route names. Everything shown comes from the agent; the window decides nothing itself.
import { useEffect, useMemo, useState } from "preact/hooks";

import {
  checkNow as runChecks,
  closeWindow,
  CommandError,
  getPolicy,
  getState,
  initialState,
  onNavigate,
  onState,
  setLanguage,
  type AgentState,
  type CheckId,
  type Policy,
} from "./api";
import { Shield } from "./components";
import { Ctx, type AppContext } from "./context";
import { initialLang, Messages, saveLang, shellKnowsLang, type Lang, type MessageKey } from "./i18n";
import { History } from "./pages/History";
import { Home } from "./pages/Home";
import { Item } from "./pages/Item";
import { ItCanSee } from "./pages/ItCanSee";
import { Phishing } from "./pages/Phishing";
import { Settings } from "./pages/Settings";
import { href, navigate, useRoute, type Route } from "./router";
import { applyTheme, initialTheme, type Theme } from "./theme";

/**
 * Runs `task` once the first frame is on screen: the page starts from the state the shell
 * handed over, so its first paint need not wait for any call to the shell. Answers with a
 * function that cancels the task if it has not run yet.
 */
function afterFirstFrame(task: () => void): () => void {
  let cancelled = false;
  requestAnimationFrame(() =>
    setTimeout(() => {
      if (!cancelled) task();
    }, 0),
  );
  return () => {
    cancelled = true;
  };
}

/** The language the shell would speak without a choice, read before anything changes it. */
const initialShellLang = window.__TANDEM_LANG__?.lang;

function headline(state: AgentState, m: Messages): string {
  if (state.results.length === 0) {
    return state.checking ? m.t("headline.running") : m.t("headline.none");
  }
  const needing = state.results.filter((r) => r.owner === "user" && (r.status === "fail" || r.status === "warn")).length;
  if (needing === 0) return m.t("headline.allGood");
  return needing === 1 ? m.t("headline.one") : m.t("headline.many", { n: needing });
}

function connection(state: AgentState, m: Messages): string {
  const parts: string[] = [];
  if (state.enrollment) {
    let host = state.enrollment.server_url;
    try {
      host = new URL(host).host;
    } catch {
      // Show the URL as given when it does not parse.
    }
    parts.push(m.t("conn.enrolled", { host }));
    parts.push(state.last_sync_at ? m.t("conn.lastSync", { ago: m.relative(state.last_sync_at) }) : m.t("conn.notSynced"));
  } else {
    parts.push(m.t("conn.notEnrolled"));
  }
  if (state.last_check_at) parts.push(m.t("conn.checked", { ago: m.relative(state.last_check_at) }));
  return parts.join(" · ");
}

const NAV: { route: Route; key: MessageKey }[] = [
  { route: { page: "home" }, key: "nav.home" },
  { route: { page: "phishing" }, key: "nav.phishing" },
  { route: { page: "it-can-see" }, key: "nav.itCanSee" },
  { route: { page: "history" }, key: "nav.history" },
  { route: { page: "settings" }, key: "nav.settings" },
];

export function App() {
  const [state, setState] = useState<AgentState | null>(initialState);
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [requested, setRequested] = useState(false);
  const [lang, setLang] = useState<Lang>(initialLang);
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const route = useRoute();
  const m = useMemo(() => new Messages(lang), [lang]);

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  // A choice saved by an older window, before the shell kept it: hand it over once, so the
  // tray and reminders speak it too.
  useEffect(() => {
    if (!shellKnowsLang() && lang !== initialShellLang) void setLanguage(lang).catch(() => {});
  }, []);
  useEffect(() => applyTheme(theme), [theme]);

  // Ctrl+W (Cmd+W) closes the window, as in any other app; Tandem stays in the tray.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "w") {
        e.preventDefault();
        void closeWindow();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  useEffect(() => {
    let stops: (() => void)[] = [];
    let cancelled = false;
    // An event that arrives before the answer to getState is newer than that answer.
    let heard = false;
    // Listen first, then read: a change between the two is never lost.
    const keep = (unlisten: () => void) => {
      if (cancelled) unlisten();
      else stops.push(unlisten);
    };
    const follow = () => {
      onState((next) => {
        heard = true;
        setState(next);
      })
        .then(keep)
        .catch((err: unknown) => setError(`cannot follow the agent: ${String(err)}`));
      onNavigate((to) => navigate(to))
        .then(keep)
        .catch(() => {});
      getState()
        .then((now) => {
          if (!heard) setState(now);
        })
        .catch((err: unknown) => setError(err instanceof CommandError ? err.message : String(err)));
    };
    // With the shell's snapshot there is something to show at once; without it (a page
    // opened outside the shell), ask straight away.
    const cancelFollow = initialState() ? afterFirstFrame(follow) : (follow(), () => {});
    return () => {
      cancelFollow();
      cancelled = true;
      stops.forEach((stop) => stop());
      stops = [];
    };
  }, []);

  // The policy changes rarely; read it again whenever the agent says it moved.
  const policyKey = `${state?.policy.etag ?? ""}|${state?.policy.source ?? ""}|${state?.policy.managed_path ?? ""}`;
  useEffect(
    () =>
      afterFirstFrame(() => {
        getPolicy()
          .then(setPolicy)
          .catch(() => setPolicy(null));
      }),
    [policyKey],
  );

  // Re-render now and then so "checked 2 minutes ago" stays true while the window is open.
  const [, setTick] = useState(0);
  useEffect(() => {
    const timer = window.setInterval(() => setTick((n) => n + 1), 30_000);
    return () => window.clearInterval(timer);
  }, []);

  const busy = requested || (state?.checking ?? false);

  async function checkNow(checkId?: CheckId): Promise<void> {
    if (busy) return;
    setRequested(true);
    setError(null);
    try {
      setState(await runChecks(checkId));
    } finally {
      setRequested(false);
    }
  }

  async function onCheckNow() {
    try {
      await checkNow();
    } catch (err: unknown) {
      setError(m.t("checkFailed", { error: err instanceof Error ? err.message : String(err) }));
    }
  }

  const ctx: AppContext = { state, policy, m, checkNow, busy };
  const tone = state ? state.tray : "offline";
  const current = route.page === "item" ? "home" : route.page;

  return (
    <Ctx.Provider value={ctx}>
      <button
        type="button"
        class="skip"
        onClick={() => document.getElementById("main")?.focus()}
      >
        {m.t("skip")}
      </button>
      <div class="app" data-tone={tone} data-page={route.page}>
        <header class="overview">
          <Shield tone={tone} />
          <div class="overview-text">
            <div role="status" aria-live="polite">
              <p class="headline" id="overall">
                {state ? headline(state, m) : m.t("loading")}
              </p>
            </div>
            <p class="connection" id="connection">
              {state ? connection(state, m) : "\u00a0"}
            </p>
            {state?.last_sync_error ? <p class="sync-error">{m.t("conn.error", { error: state.last_sync_error })}</p> : null}
          </div>
          <button type="button" class="primary check-now" id="check-now" onClick={onCheckNow} aria-disabled={busy}>
            {busy ? m.t("checking") : m.t("checkNow")}
          </button>
        </header>

        <nav class="nav" aria-label={m.t("nav.label")}>
          <ul role="list">
            {NAV.map((n) => (
              <li key={n.key}>
                <a href={href(n.route)} id={`nav-${n.route.page}`} aria-current={current === n.route.page ? "page" : undefined}>
                  {m.t(n.key)}
                </a>
              </li>
            ))}
          </ul>
        </nav>

        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}

        <main id="main" class="page" tabIndex={-1} aria-busy={state === null}>
          {route.page === "home" ? <Home /> : null}
          {route.page === "item" ? <Item key={route.check} check={route.check} /> : null}
          {route.page === "phishing" ? <Phishing /> : null}
          {route.page === "it-can-see" ? <ItCanSee /> : null}
          {route.page === "history" ? <History /> : null}
          {route.page === "settings" ? (
            <Settings
              onLang={(l) => {
                saveLang(l);
                setLang(l);
                void setLanguage(l).catch((err: unknown) => setError(String(err)));
              }}
              theme={theme}
              onTheme={(t) => {
                applyTheme(t, true);
                setTheme(t);
              }}
            />
          ) : null}
        </main>
      </div>
    </Ctx.Provider>
  );
}
