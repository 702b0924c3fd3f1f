// Settings and About: language, appearance, autostart, pausing reminders; version, server,
// device id, last sync and where the policy comes from.
import { useEffect, useState } from "preact/hooks";

import { autostartEnabled, openLink, pauseReminders, setAutostart } from "../api";
import { errorText, PageTitle } from "../components";
import { useApp } from "../context";
import { LANGS, type Lang } from "../i18n";
import { THEMES, type Theme } from "../theme";

export function Settings({
  onLang,
  theme,
  onTheme,
}: {
  onLang: (lang: Lang) => void;
  theme: Theme;
  onTheme: (theme: Theme) => void;
}) {
  const { m, state, policy } = useApp();
  const [autostart, setAutostartState] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    autostartEnabled()
      .then(setAutostartState)
      .catch(() => setAutostartState(null));
  }, []);

  async function onAutostart(enabled: boolean) {
    setError(null);
    try {
      setAutostartState(await setAutostart(enabled));
    } catch (err) {
      setError(errorText(err));
    }
  }

  async function onPause() {
    setError(null);
    try {
      await pauseReminders();
    } catch (err) {
      setError(errorText(err));
    }
  }

  const canPause = (policy?.nudges.deferrals.max_count ?? 0) > 0;
  // IT may keep "start at login" to itself; the shell refuses the change then as well.
  const autostartManaged = policy ? !policy.desktop.allow_autostart_toggle : false;
  const source = state?.policy.source ?? "built_in";
  const helpdesk = policy?.org.helpdesk_url;
  return (
    <div class="settings">
      <PageTitle>{m.t("settings.title")}</PageTitle>
      <section class="card form">
        <div class="field inline">
          <label for="language">{m.t("settings.language")}</label>
          <select id="language" value={m.lang} onChange={(e) => onLang(e.currentTarget.value as Lang)}>
            {LANGS.map((l) => (
              <option key={l.code} value={l.code} lang={l.code}>
                {l.name}
              </option>
            ))}
          </select>
        </div>
        <div class="field inline">
          <label for="theme">{m.t("settings.theme")}</label>
          <select id="theme" value={theme} onChange={(e) => onTheme(e.currentTarget.value as Theme)}>
            {THEMES.map((t) => (
              <option key={t} value={t}>
                {m.t(`settings.theme.${t}`)}
              </option>
            ))}
          </select>
        </div>
        {autostart !== null ? (
          <div class="field check">
            <input
              id="autostart"
              type="checkbox"
              checked={autostart}
              disabled={autostartManaged}
              onChange={(e) => onAutostart(e.currentTarget.checked)}
              aria-describedby={autostartManaged ? "autostart-hint autostart-managed" : "autostart-hint"}
            />
            <label for="autostart">{m.t("settings.autostart")}</label>
            <p id="autostart-hint" class="hint">
              {m.t("settings.autostartHint")}
            </p>
            {autostartManaged ? (
              <p id="autostart-managed" class="hint managed">
                {m.t("settings.managedByIt")}
              </p>
            ) : null}
          </div>
        ) : null}
        {canPause ? (
          <div class="field">
            {state?.paused_until ? (
              <p class="muted">{m.t("settings.pausedUntil", { time: m.time(state.paused_until) })}</p>
            ) : (
              <button type="button" id="pause" class="secondary" onClick={onPause}>
                {m.t("settings.pause")}
              </button>
            )}
          </div>
        ) : null}
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
      </section>

      <section class="card" aria-labelledby="about-heading">
        <h2 id="about-heading" class="card-heading">
          {m.t("settings.about")}
        </h2>
        <dl class="about">
          <dt>{m.t("settings.version")}</dt>
          <dd id="about-version">{state?.agent_version ?? "?"}</dd>
          <dt>{m.t("settings.server")}</dt>
          <dd id="about-server">{state?.enrollment?.server_url ?? m.t("settings.notEnrolled")}</dd>
          <dt>{m.t("settings.device")}</dt>
          <dd class="mono">{state?.enrollment?.device_id ?? "—"}</dd>
          <dt>{m.t("settings.lastSync")}</dt>
          <dd>{state?.last_sync_at ? `${m.dateTime(state.last_sync_at)} (${m.relative(state.last_sync_at)})` : m.t("settings.never")}</dd>
          <dt>{m.t("settings.policy")}</dt>
          <dd>{m.t(`settings.policy.${source}`, { v: state?.policy.version ?? "?" })}</dd>
        </dl>
        {helpdesk ? (
          <button type="button" class="link" onClick={() => void openLink(helpdesk)}>
            {m.t("settings.helpdesk")}
          </button>
        ) : null}
      </section>
    </div>
  );
}
