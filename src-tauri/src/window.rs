//! The Tandem window, created on demand. No webview exists while the app is idle: closing the
//! window destroys it (Tauri's default), and the app keeps running in the tray.
//!
//! The window has one page per route (`#/`, `#/item/<check>`, `#/phishing`, `#/it-can-see`,
//! `#/history`, `#/settings`); the shell opens it on a route, or moves an open window there.

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tandem_agent::Agent;
use tandem_proto::CheckId;
use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::i18n::Language;

/// The label of the one window; capabilities/ grants permissions to this label.
pub const MAIN: &str = "main";

/// The global the window finds the agent state in at its first paint (see `ui/src/api.ts`).
const INITIAL_STATE: &str = "__TANDEM_INITIAL_STATE__";

/// The global the window finds the shell's language in (see `ui/src/i18n.ts`).
const LANGUAGE: &str = "__TANDEM_LANG__";

/// The event that moves an open window to another page.
pub const NAVIGATE_EVENT: &str = "ui://navigate";

/// A page of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Home,
    Item(CheckId),
    Phishing,
    Settings,
}

impl Page {
    /// The hash route the frontend understands (`ui/src/router.ts`).
    pub fn route(self) -> String {
        match self {
            Page::Home => "/".into(),
            Page::Item(id) => format!("/item/{id}"),
            Page::Phishing => "/phishing".into(),
            Page::Settings => "/settings".into(),
        }
    }
}

#[derive(Clone, Serialize)]
struct Navigate {
    route: String,
}

/// When the window being opened was asked for, so its first paint can be timed from there;
/// taken by the first `window_painted` report.
static OPENING: Mutex<Option<Instant>> = Mutex::new(None);

fn since_opening() -> Option<f64> {
    let opening = OPENING.lock().ok()?;
    opening.map(|at| at.elapsed().as_secs_f64() * 1000.0)
}

/// What the page measured of its own start, in milliseconds since its navigation began
/// (`performance.now()`), sent once after its first frame (see `ui/src/main.tsx`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaintTimes {
    /// The bundle began to run: the HTML was parsed and the script fetched.
    pub script_start: f64,
    /// The first render returned.
    pub rendered: f64,
    /// The frame after the first render: painted.
    pub painted: f64,
}

/// Logs where the time to first paint went, from the request (tray, second launch,
/// reminder) to the page's first frame, when the page reports it.
pub fn painted(times: PaintTimes) {
    let Some(now) = OPENING.lock().ok().and_then(|mut o| o.take()) else {
        return;
    };
    let total = now.elapsed().as_secs_f64() * 1000.0;
    // The page counts from its navigation start; place that on the shell's clock.
    let navigation = total - times.painted;
    tracing::info!(
        navigation_ms = navigation.round(),
        script_ms = (navigation + times.script_start).round(),
        rendered_ms = (navigation + times.rendered).round(),
        painted_ms = total.round(),
        "window first paint"
    );
}

/// Shows the window on its home page, creating it when it does not exist.
pub fn open(app: &AppHandle) -> tauri::Result<()> {
    open_at(app, Page::Home)
}

/// Shows the window on `page`, creating it when it does not exist.
pub fn open_at(app: &AppHandle, page: Page) -> tauri::Result<()> {
    let route = page.route();
    if let Some(window) = app.get_webview_window(MAIN) {
        window.emit(NAVIGATE_EVENT, Navigate { route })?;
        window.unminimize()?;
        window.show()?;
        return window.set_focus();
    }
    let asked = Instant::now();
    if let Ok(mut opening) = OPENING.lock() {
        *opening = Some(asked);
    }
    // The state rides along with the page, so its first paint shows it instead of a
    // "Loading…" frame; the page then follows `agent://state` as usual.
    let state = app.state::<Agent>().state();
    let state = serde_json::to_string(&state).map_err(tauri::Error::Json)?;
    // The window speaks the shell's language from its first paint: the user's choice, or
    // the session's locale, flagged so the window knows whether a choice was made.
    let language = app.state::<Language>();
    let language = serde_json::json!({
        "lang": language.current(),
        "chosen": language.chosen().is_some(),
    });
    WebviewWindowBuilder::new(
        app,
        MAIN,
        WebviewUrl::App(format!("index.html#{route}").into()),
    )
    .initialization_script(format!(
        "window.{INITIAL_STATE} = {state}; window.{LANGUAGE} = {language};"
    ))
    .title("Tandem")
    .inner_size(720.0, 680.0)
    .min_inner_size(380.0, 420.0)
    .focused(true)
    .on_page_load(|_, payload| {
        let at = since_opening().map(f64::round);
        match payload.event() {
            PageLoadEvent::Started => tracing::info!(at_ms = at, "window page load started"),
            PageLoadEvent::Finished => tracing::info!(at_ms = at, "window page load finished"),
        }
    })
    .build()?;
    tracing::info!(
        at_ms = (asked.elapsed().as_secs_f64() * 1000.0).round(),
        "window created"
    );
    Ok(())
}

/// Opens the window and logs a failure: for callers (menu, second launch, notifications)
/// with no one to return an error to.
pub fn open_or_log(app: &AppHandle, page: Page) {
    if let Err(err) = open_at(app, page) {
        tracing::error!("cannot open the window: {err}");
    }
}
