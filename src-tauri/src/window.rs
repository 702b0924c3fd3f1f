//! The Tandem window, created on demand. No webview exists while the app is idle: closing the
//! window destroys it (Tauri's default), and the app keeps running in the tray.

use tandem_agent::Agent;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The label of the one window; capabilities/ grants permissions to this label.
pub const MAIN: &str = "main";

/// The global the window finds the agent state in at its first paint (see `ui/src/api.ts`).
const INITIAL_STATE: &str = "__TANDEM_INITIAL_STATE__";

/// Shows the window, creating it when it does not exist.
pub fn open(app: &AppHandle) -> tauri::Result<()> {
    if let Some(window) = app.get_webview_window(MAIN) {
        window.unminimize()?;
        window.show()?;
        return window.set_focus();
    }
    // The state rides along with the page, so its first paint shows it instead of a
    // "Loading…" frame; the page then follows `agent://state` as usual.
    let state = app.state::<Agent>().state();
    let state = serde_json::to_string(&state).map_err(tauri::Error::Json)?;
    WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .initialization_script(format!("window.{INITIAL_STATE} = {state};"))
        .title("Tandem")
        .inner_size(560.0, 640.0)
        .min_inner_size(380.0, 420.0)
        .focused(true)
        .build()?;
    Ok(())
}

/// Opens the window and logs a failure: for callers (menu, second launch) with no one to
/// return an error to.
pub fn open_or_log(app: &AppHandle) {
    if let Err(err) = open(app) {
        tracing::error!("cannot open the window: {err}");
    }
}
