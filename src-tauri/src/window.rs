//! The Tandem window, created on demand. No webview exists while the app is idle: closing the
//! window destroys it (Tauri's default), and the app keeps running in the tray.
//!
//! The window has one page per route (`#/`, `#/item/<check>`, `#/phishing`, `#/it-can-see`,
//! `#/history`, `#/settings`); the shell opens it on a route, or moves an open window there.

use serde::Serialize;
use tandem_agent::Agent;
use tandem_proto::CheckId;
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

/// The label of the one window; capabilities/ grants permissions to this label.
pub const MAIN: &str = "main";

/// The global the window finds the agent state in at its first paint (see `ui/src/api.ts`).
const INITIAL_STATE: &str = "__TANDEM_INITIAL_STATE__";

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
    // The state rides along with the page, so its first paint shows it instead of a
    // "Loading…" frame; the page then follows `agent://state` as usual.
    let state = app.state::<Agent>().state();
    let state = serde_json::to_string(&state).map_err(tauri::Error::Json)?;
    WebviewWindowBuilder::new(
        app,
        MAIN,
        WebviewUrl::App(format!("index.html#{route}").into()),
    )
    .initialization_script(format!("window.{INITIAL_STATE} = {state};"))
    .title("Tandem")
    .inner_size(720.0, 680.0)
    .min_inner_size(380.0, 420.0)
    .focused(true)
    .build()?;
    Ok(())
}

/// Opens the window and logs a failure: for callers (menu, second launch, notifications)
/// with no one to return an error to.
pub fn open_or_log(app: &AppHandle, page: Page) {
    if let Err(err) = open_at(app, page) {
        tracing::error!("cannot open the window: {err}");
    }
}
