//! The tray icon and its menu. The image follows `AgentState::tray`, the menu lists what
//! needs the user; both are rebuilt from every new state the runtime publishes, and only
//! when they change.

use chrono::{DateTime, Local, Utc};
use tandem_agent::Agent;
use tandem_proto::check::{CheckId, Owner, Status};
use tandem_proto::state::{AgentState, TrayState};
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};

use crate::i18n::Lang;
use crate::window::{self, Page};

/// The id of Tandem's one tray icon.
pub const TRAY_ID: &str = "tandem";

const OPEN: &str = "open";
const CHECK_NOW: &str = "check_now";
const PHISHING: &str = "phishing";
const PAUSE: &str = "pause";
const ABOUT: &str = "about";
const QUIT: &str = "quit";
const SUMMARY: &str = "summary";
const ITEM_PREFIX: &str = "item:";

/// How long "Pause reminders" pauses them.
pub const PAUSE_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the tray shows, derived from the agent state and whether the policy lets the user
/// pause reminders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    /// The language of every label, so a switch rebuilds the menu.
    pub lang: Lang,
    pub state: TrayState,
    /// The menu's first line and the tooltip.
    pub summary: String,
    /// One entry per thing that needs the user: the check and its label.
    pub entries: Vec<(CheckId, String)>,
    /// The pause entry: `None` when the policy allows no deferral, else its label and whether
    /// it can be chosen (not while reminders are already paused).
    pub pause: Option<(String, bool)>,
}

impl TrayModel {
    pub fn of(
        state: &AgentState,
        pause_allowed: bool,
        lang: Lang,
        now: DateTime<Utc>,
    ) -> TrayModel {
        let tray = state.tray;
        let needing: Vec<_> = state
            .needing_action()
            .into_iter()
            .filter(|r| r.owner == Owner::User)
            .collect();
        let what = match needing.len() {
            _ if state.results.is_empty() => lang.t("headline.none").to_owned(),
            0 => lang.t("headline.allGood").to_owned(),
            1 => lang.t("headline.one").to_owned(),
            n => lang.fill("headline.many", &[("n", &n)]),
        };
        // Offline says why, without hiding what needs the user.
        let summary = match (tray, &state.enrollment) {
            (TrayState::Offline, None) if state.results.is_empty() => {
                lang.t("tray.notEnrolled").to_owned()
            }
            (TrayState::Offline, None) => lang.fill("tray.summaryNotEnrolled", &[("what", &what)]),
            (TrayState::Offline, Some(_)) => lang.fill("tray.summaryOffline", &[("what", &what)]),
            _ => what,
        };
        // Items with a deadline first, in the runtime's order (most urgent first).
        let rank = |id: CheckId| {
            state
                .items
                .iter()
                .position(|i| i.check_id == id)
                .unwrap_or(usize::MAX)
        };
        let mut needing = needing;
        needing.sort_by_key(|r| (rank(r.id), std::cmp::Reverse(r.status.rank())));
        let entries = needing
            .iter()
            .map(|r| {
                let due = state
                    .items
                    .iter()
                    .find(|i| i.check_id == r.id)
                    .map(|i| due_label(lang, i.deadline, now));
                let title = lang.check_title(r.id);
                let label = match due {
                    Some(due) => lang.fill("tray.entryDue", &[("title", &title), ("due", &due)]),
                    None => lang.fill(
                        "tray.entryStatus",
                        &[("title", &title), ("status", &status_label(lang, r.status))],
                    ),
                };
                (r.id, label)
            })
            .collect();
        let pause = pause_allowed.then(|| match state.paused_until.filter(|t| *t > now) {
            Some(until) => (
                lang.fill(
                    "settings.pausedUntil",
                    &[("time", &until.with_timezone(&Local).format("%H:%M"))],
                ),
                false,
            ),
            None => (lang.t("settings.pause").to_owned(), true),
        });
        TrayModel {
            lang,
            state: tray,
            summary,
            entries,
            pause,
        }
    }

    fn tooltip(&self) -> String {
        self.lang
            .fill("tray.tooltip", &[("summary", &self.summary)])
    }
}

/// "overdue", "due today", "due in 3 days".
fn due_label(lang: Lang, deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if deadline <= now {
        return lang.t("due.overdue").into();
    }
    match (deadline - now).num_days() {
        0 => lang.t("due.today").into(),
        1 => lang.t("due.tomorrow").into(),
        n => lang.fill("due.days", &[("n", &n)]),
    }
}

/// The status words the menu shows; the window uses the same ones.
fn status_label(lang: Lang, status: Status) -> &'static str {
    lang.t(match status {
        Status::Pass => "status.pass",
        Status::Warn => "status.warn",
        Status::Fail => "status.fail",
        Status::Unknown => "status.unknown",
        Status::NotApplicable => "status.not_applicable",
    })
}

/// Which icon set suits the panel the icon sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Light,
    Dark,
    /// macOS tints a monochrome template itself.
    Template,
}

/// # Platform behaviour
/// macOS gets template icons. Elsewhere `TANDEM_TRAY_THEME=dark` picks the icons drawn for
/// dark panels; the default is the set for light panels, whose deeper colours also stay
/// legible on a dark panel (the reverse is not true). Detecting the panel's brightness is
/// left to the desktop-integration work.
fn panel() -> Panel {
    if cfg!(target_os = "macos") {
        return Panel::Template;
    }
    match std::env::var("TANDEM_TRAY_THEME").as_deref() {
        Ok("dark") => Panel::Dark,
        _ => Panel::Light,
    }
}

macro_rules! tray_png {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../icons/tray/",
            $name,
            "-64.png"
        ))
    };
}

fn icon_png(state: TrayState, panel: Panel) -> &'static [u8] {
    match (state, panel) {
        (TrayState::Ok, Panel::Light) => tray_png!("ok-on-light"),
        (TrayState::Ok, Panel::Dark) => tray_png!("ok-on-dark"),
        (TrayState::Ok, Panel::Template) => tray_png!("ok-template"),
        (TrayState::Attention, Panel::Light) => tray_png!("attention-on-light"),
        (TrayState::Attention, Panel::Dark) => tray_png!("attention-on-dark"),
        (TrayState::Attention, Panel::Template) => tray_png!("attention-template"),
        (TrayState::Urgent, Panel::Light) => tray_png!("urgent-on-light"),
        (TrayState::Urgent, Panel::Dark) => tray_png!("urgent-on-dark"),
        (TrayState::Urgent, Panel::Template) => tray_png!("urgent-template"),
        (TrayState::Offline, Panel::Light) => tray_png!("offline-on-light"),
        (TrayState::Offline, Panel::Dark) => tray_png!("offline-on-dark"),
        (TrayState::Offline, Panel::Template) => tray_png!("offline-template"),
    }
}

fn icon(state: TrayState) -> tauri::Result<Image<'static>> {
    Image::from_bytes(icon_png(state, panel()))
}

fn item(
    app: &AppHandle,
    id: &str,
    label: &str,
    enabled: bool,
) -> tauri::Result<MenuItem<tauri::Wry>> {
    MenuItem::with_id(app, id, label, enabled, None::<&str>)
}

fn menu(app: &AppHandle, model: &TrayModel) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&item(app, SUMMARY, &model.summary, false)?)?;
    if !model.entries.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        for (id, label) in &model.entries {
            menu.append(&item(app, &format!("{ITEM_PREFIX}{id}"), label, true)?)?;
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    let lang = model.lang;
    menu.append(&item(app, OPEN, lang.t("tray.open"), true)?)?;
    menu.append(&item(app, CHECK_NOW, lang.t("checkNow"), true)?)?;
    menu.append(&item(app, PHISHING, lang.t("tray.reportPhishing"), true)?)?;
    if let Some((label, enabled)) = &model.pause {
        menu.append(&item(app, PAUSE, label, *enabled)?)?;
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&item(app, ABOUT, lang.t("settings.about"), true)?)?;
    menu.append(&item(app, QUIT, lang.t("tray.quit"), true)?)?;
    Ok(menu)
}

/// Says what the menu now holds: the desktop tests read the menu's words from the log, as no
/// tray host here lets a test read a menu's labels back.
fn log_menu(model: &TrayModel) {
    let entries: Vec<&str> = model.entries.iter().map(|(_, l)| l.as_str()).collect();
    tracing::info!(
        lang = model.lang.code(),
        summary = %model.summary,
        ?entries,
        pause = ?model.pause.as_ref().map(|(label, _)| label),
        "tray menu"
    );
}

/// Creates the tray icon for the first state.
pub fn create(app: &AppHandle, model: &TrayModel) -> tauri::Result<TrayIcon> {
    log_menu(model);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.state)?)
        .icon_as_template(panel() == Panel::Template)
        .tooltip(model.tooltip())
        .menu(&menu(app, model)?)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu_event)
        .build(app)
}

/// Brings the tray up to date with `next`, touching only what changed since `shown`: a menu
/// rebuilt while the user has it open would close under their pointer.
pub fn update(app: &AppHandle, shown: &TrayModel, next: &TrayModel) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    if next.state != shown.state {
        tray.set_icon(Some(icon(next.state)?))?;
    }
    if next.summary != shown.summary {
        tray.set_tooltip(Some(next.tooltip()))?;
    }
    if next.summary != shown.summary
        || next.entries != shown.entries
        || next.pause != shown.pause
        || next.lang != shown.lang
    {
        tray.set_menu(Some(menu(app, next)?))?;
        log_menu(next);
    }
    Ok(())
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    let agent = app.state::<Agent>().inner().clone();
    match event.id().as_ref() {
        OPEN => window::open_or_log(app, Page::Home),
        CHECK_NOW => {
            tauri::async_runtime::spawn(async move {
                if let Err(err) = agent.check_now().await {
                    tracing::warn!("check requested from the tray failed: {err}");
                }
            });
        }
        PHISHING => window::open_or_log(app, Page::Phishing),
        PAUSE => {
            tauri::async_runtime::spawn(async move {
                match agent.pause_reminders(PAUSE_FOR).await {
                    Ok(until) => tracing::info!(%until, "reminders paused"),
                    Err(err) => tracing::warn!("cannot pause reminders: {err}"),
                }
            });
        }
        ABOUT => window::open_or_log(app, Page::Settings),
        QUIT => app.exit(0),
        id => {
            let check = id
                .strip_prefix(ITEM_PREFIX)
                .and_then(|name| serde_json::from_value::<CheckId>(name.into()).ok());
            if let Some(check) = check {
                window::open_or_log(app, Page::Item(check));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::check::{CheckResult, Owner, Remediation};
    use tandem_proto::state::{ActionItem, Enrollment, Phase};

    fn result(id: CheckId, status: Status) -> CheckResult {
        CheckResult {
            id,
            status,
            summary: String::new(),
            reason: None,
            details: serde_json::Value::Null,
            evidence: vec![],
            remediation: Remediation::default(),
            owner: Owner::User,
            observed_at: Utc::now(),
            duration_ms: 0,
        }
    }

    fn enrolled(results: Vec<CheckResult>) -> AgentState {
        let mut state = AgentState {
            enrollment: Some(Enrollment::default()),
            last_sync_at: Some(Utc::now()),
            results,
            ..AgentState::default()
        };
        state.refresh_tray();
        state
    }

    fn model(state: &AgentState) -> TrayModel {
        TrayModel::of(state, true, Lang::En, Utc::now())
    }

    #[test]
    fn a_fresh_agent_is_offline_and_says_so() {
        let model = model(&AgentState::default());
        assert_eq!(model.state, TrayState::Offline);
        assert_eq!(model.summary, "Not enrolled with IT");
        assert!(model.entries.is_empty());
    }

    #[test]
    fn the_menu_lists_what_needs_the_user_most_urgent_first() {
        let mut it_owned = result(CheckId::Firewall, Status::Fail);
        it_owned.owner = Owner::It;
        let mut state = enrolled(vec![
            result(CheckId::ScreenLock, Status::Warn),
            result(CheckId::OsUpdates, Status::Fail),
            result(CheckId::PasswordAge, Status::Pass),
            it_owned,
        ]);
        let now = Utc::now();
        state.items = vec![ActionItem {
            check_id: CheckId::ScreenLock,
            phase: Phase::Imminent,
            first_seen: now - chrono::Duration::days(10),
            deadline: now + chrono::Duration::hours(36),
            deferrals_left: 1,
            deferred_until: None,
        }];
        state.refresh_tray();
        let model = TrayModel::of(&state, true, Lang::En, now);
        assert_eq!(model.state, TrayState::Urgent);
        assert_eq!(model.summary, "2 things need you");
        assert_eq!(
            model.entries,
            vec![
                (CheckId::ScreenLock, "Screen lock (due tomorrow)".to_owned()),
                (
                    CheckId::OsUpdates,
                    "Operating system updates: Action required".to_owned()
                ),
            ]
        );
        assert_eq!(
            model.pause,
            Some(("Pause reminders for 1 hour".to_owned(), true))
        );
        assert_eq!(TrayModel::of(&state, false, Lang::En, now).pause, None);
        state.paused_until = Some(now + chrono::Duration::minutes(30));
        assert!(matches!(
            TrayModel::of(&state, true, Lang::En, now).pause,
            Some((_, false))
        ));
    }

    #[test]
    fn the_menu_speaks_the_chosen_language() {
        let mut state = enrolled(vec![
            result(CheckId::ScreenLock, Status::Warn),
            result(CheckId::OsUpdates, Status::Fail),
        ]);
        let now = Utc::now();
        state.items = vec![ActionItem {
            check_id: CheckId::ScreenLock,
            phase: Phase::Reminder,
            first_seen: now - chrono::Duration::days(1),
            deadline: now + chrono::Duration::days(5) + chrono::Duration::hours(1),
            deferrals_left: 3,
            deferred_until: None,
        }];
        state.refresh_tray();
        let de = TrayModel::of(&state, true, Lang::De, now);
        assert_eq!(de.summary, "2 Sachen brauchen Sie");
        assert_eq!(
            de.entries,
            vec![
                (
                    CheckId::ScreenLock,
                    "Bildschirmsperre (fällig in 5 Tagen)".to_owned()
                ),
                (
                    CheckId::OsUpdates,
                    "Systemupdates: Handlung nötig".to_owned()
                ),
            ]
        );
        assert_eq!(
            de.pause,
            Some(("Erinnerungen 1 Stunde pausieren".to_owned(), true))
        );
        let fr = TrayModel::of(&state, true, Lang::Fr, now);
        assert_eq!(fr.summary, "2 points vous attendent");
        assert_ne!(fr, de, "a language switch must rebuild the menu");
        let offline = TrayModel::of(&AgentState::default(), true, Lang::Fr, now);
        assert_eq!(offline.summary, "Non inscrit auprès de l’IT");
    }

    #[test]
    fn all_passing_is_calm() {
        let model = model(&enrolled(vec![result(CheckId::OsUpdates, Status::Pass)]));
        assert_eq!(model.state, TrayState::Ok);
        assert_eq!(model.summary, "All good: nothing needs you");
    }

    #[test]
    fn offline_does_not_hide_what_needs_the_user() {
        let mut state = AgentState {
            results: vec![result(CheckId::OsUpdates, Status::Warn)],
            ..AgentState::default()
        };
        state.refresh_tray();
        let model = model(&state);
        assert_eq!(model.state, TrayState::Offline);
        assert_eq!(model.summary, "1 thing needs you · not enrolled");
    }

    #[test]
    fn every_state_has_a_decodable_icon_in_every_panel_variant() {
        for state in [
            TrayState::Ok,
            TrayState::Attention,
            TrayState::Urgent,
            TrayState::Offline,
        ] {
            for panel in [Panel::Light, Panel::Dark, Panel::Template] {
                let image = Image::from_bytes(icon_png(state, panel)).unwrap();
                assert_eq!((image.width(), image.height()), (64, 64));
            }
        }
    }
}
