//! The tray icon. Its image follows `AgentState::tray_state()`, its menu lists the results;
//! both are rebuilt from every new state the runtime publishes, and only when they change.

use tandem_agent::Agent;
use tandem_proto::check::{CheckId, Status};
use tandem_proto::state::{AgentState, TrayState};
use tauri::image::Image;
use tauri::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager};

use crate::window;

/// The id of Tandem's one tray icon.
pub const TRAY_ID: &str = "tandem";

const OPEN: &str = "open";
const CHECK_NOW: &str = "check_now";
const QUIT: &str = "quit";
const SUMMARY: &str = "summary";
const RESULT_PREFIX: &str = "result:";

/// What the tray shows, derived from the agent state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    pub state: TrayState,
    /// The menu's first line and the tooltip.
    pub summary: String,
    /// One menu entry per result: the check and its label.
    pub entries: Vec<(CheckId, String)>,
}

impl TrayModel {
    pub fn of(state: &AgentState) -> TrayModel {
        let tray = state.tray_state();
        let needing = state.needing_action().len();
        let what = match needing {
            _ if state.results.is_empty() => "No checks have run yet".to_owned(),
            0 => "All good: nothing needs you".to_owned(),
            1 => "1 thing needs you".to_owned(),
            n => format!("{n} things need you"),
        };
        // Offline says why, without hiding what needs the user.
        let summary = match (tray, &state.enrollment) {
            (TrayState::Offline, None) if state.results.is_empty() => {
                "Not enrolled with IT".to_owned()
            }
            (TrayState::Offline, None) => format!("{what} · not enrolled"),
            (TrayState::Offline, Some(_)) => format!("{what} · offline"),
            _ => what,
        };
        let entries = state
            .results
            .iter()
            .map(|r| {
                (
                    r.id,
                    format!("{}: {}", r.id.title(), status_label(r.status)),
                )
            })
            .collect();
        TrayModel {
            state: tray,
            summary,
            entries,
        }
    }

    fn tooltip(&self) -> String {
        format!("Tandem: {}", self.summary)
    }
}

/// The status words the menu shows; the window uses the same ones.
fn status_label(status: Status) -> &'static str {
    match status {
        Status::Pass => "done",
        Status::Warn => "needs you",
        Status::Fail => "action required",
        Status::Unknown => "could not check",
        Status::NotApplicable => "not applicable",
    }
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

fn menu(app: &AppHandle, model: &TrayModel) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    menu.append(&MenuItem::with_id(
        app,
        SUMMARY,
        &model.summary,
        false,
        None::<&str>,
    )?)?;
    if !model.entries.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        for (id, label) in &model.entries {
            let item_id = format!("{RESULT_PREFIX}{id}");
            menu.append(&MenuItem::with_id(app, item_id, label, true, None::<&str>)?)?;
        }
    }
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        OPEN,
        "Open Tandem",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(
        app,
        CHECK_NOW,
        "Check now",
        true,
        None::<&str>,
    )?)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?)?;
    Ok(menu)
}

/// Creates the tray icon for the first state.
pub fn create(app: &AppHandle, model: &TrayModel) -> tauri::Result<TrayIcon> {
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
    if next.summary != shown.summary || next.entries != shown.entries {
        tray.set_menu(Some(menu(app, next)?))?;
    }
    Ok(())
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    match event.id().as_ref() {
        OPEN => window::open_or_log(app),
        CHECK_NOW => {
            let agent = app.state::<Agent>().inner().clone();
            tauri::async_runtime::spawn(async move {
                if let Err(err) = agent.check_now().await {
                    tracing::warn!("check requested from the tray failed: {err}");
                }
            });
        }
        QUIT => app.exit(0),
        // Each result opens the window; the item page per check comes with the full UI.
        id if id.starts_with(RESULT_PREFIX) => window::open_or_log(app),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use tandem_proto::check::{CheckResult, Owner, Remediation};
    use tandem_proto::state::Enrollment;

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
        AgentState {
            enrollment: Some(Enrollment::default()),
            last_sync_at: Some(Utc::now()),
            results,
            ..AgentState::default()
        }
    }

    #[test]
    fn a_fresh_agent_is_offline_and_says_so() {
        let model = TrayModel::of(&AgentState::default());
        assert_eq!(model.state, TrayState::Offline);
        assert_eq!(model.summary, "Not enrolled with IT");
        assert!(model.entries.is_empty());
    }

    #[test]
    fn the_menu_counts_what_needs_the_user_and_lists_every_result() {
        let state = enrolled(vec![
            result(CheckId::OsUpdates, Status::Fail),
            result(CheckId::ScreenLock, Status::Warn),
            result(CheckId::Firewall, Status::Pass),
        ]);
        let model = TrayModel::of(&state);
        assert_eq!(model.state, TrayState::Urgent);
        assert_eq!(model.summary, "2 things need you");
        assert_eq!(
            model.entries,
            vec![
                (
                    CheckId::OsUpdates,
                    "Operating system updates: action required".to_owned()
                ),
                (CheckId::ScreenLock, "Screen lock: needs you".to_owned()),
                (CheckId::Firewall, "Firewall: done".to_owned()),
            ]
        );
    }

    #[test]
    fn all_passing_is_calm() {
        let model = TrayModel::of(&enrolled(vec![result(CheckId::OsUpdates, Status::Pass)]));
        assert_eq!(model.state, TrayState::Ok);
        assert_eq!(model.summary, "All good: nothing needs you");
    }

    #[test]
    fn offline_does_not_hide_what_needs_the_user() {
        let state = AgentState {
            results: vec![result(CheckId::OsUpdates, Status::Warn)],
            ..AgentState::default()
        };
        let model = TrayModel::of(&state);
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
