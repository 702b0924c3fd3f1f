//! The Tandem window, created on demand. No webview exists while the app is idle: closing the
//! window hides it, and it is destroyed (with WebKit's web process and its memory) once it
//! has stayed closed for a grace period (`TANDEM_WINDOW_GRACE_SECS`, default 45 s, 0 for at
//! once); the app keeps running in the tray. Opened again within the grace, the same
//! window is shown at once, without starting WebKit's web process and loading the page again.
//!
//! The window has one page per route (`#/`, `#/item/<check>`, `#/phishing`, `#/it-can-see`,
//! `#/history`, `#/settings`); the shell opens it on a route, or moves an open window there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tandem_agent::Agent;
use tandem_proto::CheckId;
use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder, WindowEvent};

use crate::i18n::Language;

/// The label of the one window; capabilities/ grants permissions to this label.
pub const MAIN: &str = "main";

/// The global the window finds the agent state in at its first paint (see `ui/src/api.ts`).
const INITIAL_STATE: &str = "__TANDEM_INITIAL_STATE__";

/// The global the window finds the operating system in: the stylesheet picks fonts by it
/// (see `ui/src/style.css`).
const OS: &str = "__TANDEM_OS__";

/// The global the window finds the shell's language in (see `ui/src/i18n.ts`).
const LANGUAGE: &str = "__TANDEM_LANG__";

/// The event that moves an open window to another page.
pub const NAVIGATE_EVENT: &str = "ui://navigate";

/// The variable that sets how long a closed window is kept hidden before it is destroyed.
pub const GRACE_VAR: &str = "TANDEM_WINDOW_GRACE_SECS";

/// Set (to anything), the window keeps WebKit's own hardware-acceleration policy instead of
/// software rendering: for the benchmark's A/B runs, or a machine where software rendering
/// misbehaves.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const ACCELERATED_VAR: &str = "TANDEM_WINDOW_ACCELERATED";

/// How long a closed window is kept, hidden, for a quick re-open: long enough to cover
/// "closed it, then remembered something", short enough that an idle app holds no webview.
const DEFAULT_GRACE: Duration = Duration::from_secs(45);

/// Counts the window's hides and shows: a destruction scheduled at a hide is carried out
/// only if nothing happened to the window since.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The grace from the environment: whole seconds, 0 for none; anything else is the default.
fn grace() -> Duration {
    grace_of(std::env::var(GRACE_VAR).ok().as_deref())
}

fn grace_of(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_GRACE, Duration::from_secs)
}

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
    /// The next frame began (its `requestAnimationFrame` callback): style, layout and paint
    /// of the first render follow.
    #[serde(default)]
    pub frame: Option<f64>,
    /// The first rendering update after the bundle began (a callback asked for before the
    /// render): earlier than `frame` when WebKit updated the page before the render's frame.
    #[serde(default)]
    pub first_update: Option<f64>,
    /// WebKit's own first-contentful-paint mark, where it has one.
    #[serde(default)]
    pub contentful: Option<f64>,
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
    let at = |t: Option<f64>| t.map(|t| (navigation + t).round());
    tracing::info!(
        navigation_ms = navigation.round(),
        script_ms = (navigation + times.script_start).round(),
        rendered_ms = (navigation + times.rendered).round(),
        frame_ms = at(times.frame),
        first_update_ms = at(times.first_update),
        contentful_ms = at(times.contentful),
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
        // Cancels a destruction scheduled when the window was closed.
        GENERATION.fetch_add(1, Ordering::SeqCst);
        let hidden = !window.is_visible()?;
        window.emit(NAVIGATE_EVENT, Navigate { route })?;
        window.unminimize()?;
        window.show()?;
        if hidden {
            tracing::info!("window shown again within the grace");
        }
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
    let window = WebviewWindowBuilder::new(
        app,
        MAIN,
        WebviewUrl::App(format!("index.html#{route}").into()),
    )
    .initialization_script(format!(
        "window.{INITIAL_STATE} = {state}; window.{LANGUAGE} = {language}; window.{OS} = {os:?};",
        os = std::env::consts::OS
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
    #[cfg(target_os = "linux")]
    if std::env::var_os(ACCELERATED_VAR).is_none() {
        window.with_webview(|webview| {
            use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt as _, WebViewExt as _};
            // Software rendering without compositing: a few pages of text and forms need no
            // GPU, and setting up GL (in the web process and the window) is most of the time
            // between the page's first frame and pixels on screen, and some 60 MB of the web
            // process's memory (BENCHMARKS.md, desktop). Set before the web process is up.
            if let Some(settings) = webview.inner().settings() {
                settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        })?;
    }
    let handle = app.clone();
    window.on_window_event(move |event| {
        if let WindowEvent::CloseRequested { api, .. } = event {
            let grace = grace();
            if grace.is_zero() {
                return;
            }
            api.prevent_close();
            close_later(&handle, grace);
        }
    });
    tracing::info!(
        at_ms = (asked.elapsed().as_secs_f64() * 1000.0).round(),
        "window created"
    );
    Ok(())
}

/// Hides the window now and destroys it once it has stayed hidden for `grace`.
fn close_later(app: &AppHandle, grace: Duration) {
    let Some(window) = app.get_webview_window(MAIN) else {
        return;
    };
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    if let Err(err) = window.hide() {
        // A window that cannot be hidden is not kept: closed is what the user asked for.
        tracing::warn!("cannot hide the window, destroying it: {err}");
        destroy(app);
        return;
    }
    tracing::info!(
        grace_s = grace.as_secs(),
        "window hidden; destroyed after the grace unless opened again"
    );
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(grace).await;
        if GENERATION.load(Ordering::SeqCst) == generation {
            destroy(&app);
        }
    });
}

/// Hands the heap pages the destroyed window freed back to the system. glibc keeps freed
/// memory in its arenas for reuse, so without this the megabytes a window's toolkit objects
/// took stay in the app's dirty memory long after the window is gone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_freed_memory() {
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own arenas under their
    // locks; it may be called from any thread at any time.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "freed heap handed back to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}

fn destroy(app: &AppHandle) {
    let Some(window) = app.get_webview_window(MAIN) else {
        return;
    };
    match window.destroy() {
        Ok(()) => {
            tracing::info!("window destroyed after the grace");
            // GTK and WebKit free the window's objects from the main loop over the next
            // moments; then what they freed is handed back.
            tauri::async_runtime::spawn(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                release_freed_memory();
            });
        }
        Err(err) => tracing::warn!("cannot destroy the window: {err}"),
    }
}

/// Opens the window and logs a failure: for callers (menu, second launch, notifications)
/// with no one to return an error to.
pub fn open_or_log(app: &AppHandle, page: Page) {
    if let Err(err) = open_at(app, page) {
        tracing::error!("cannot open the window: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_is_whole_seconds_or_the_default() {
        assert_eq!(grace_of(Some("0")), Duration::ZERO);
        assert_eq!(grace_of(Some(" 3 ")), Duration::from_secs(3));
        assert_eq!(grace_of(Some("soon")), DEFAULT_GRACE);
        assert_eq!(grace_of(Some("-1")), DEFAULT_GRACE);
        assert_eq!(grace_of(None), DEFAULT_GRACE);
    }

    #[test]
    fn the_pages_paint_marks_are_read_with_or_without_the_optional_ones() {
        let full: PaintTimes = serde_json::from_str(
            r#"{"scriptStart":20,"rendered":45,"frame":210,"firstUpdate":210,
                "contentful":211,"painted":300}"#,
        )
        .unwrap();
        assert_eq!(full.first_update, Some(210.0));
        assert_eq!(full.contentful, Some(211.0));
        assert_eq!(full.frame, Some(210.0));
        // WebKit without paint timing sends null; an older page sends none of them.
        let bare: PaintTimes = serde_json::from_str(
            r#"{"scriptStart":20,"rendered":45,"contentful":null,"painted":300}"#,
        )
        .unwrap();
        assert_eq!(
            (bare.frame, bare.first_update, bare.contentful),
            (None, None, None)
        );
        assert_eq!(bare.painted, 300.0);
    }
}
