//! Tandem's desktop shell: a tray icon, its menu, reminders and a window opened on demand,
//! over the agent runtime of `tandem-agent`.
//!
//! The shell is glue. The runtime owns checks, policy, nudges, sync and state; the shell
//! shows that state (tray icon, menu, notifications, the `agent://state` event for the
//! window) and forwards the user's requests (`commands`). No window exists until the user
//! asks for one.

mod commands;
mod handover;
mod i18n;
mod phishing_replies;
mod reminders;
mod tray;
mod tray_host;
mod updater;
mod window;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use tandem_agent::{Agent, AgentConfig};
use tandem_proto::state::AgentState;
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Emitter, Manager, RunEvent};
use tokio_util::sync::CancellationToken;

use crate::i18n::Language;
use crate::tray::TrayModel;

/// The event carrying the full `AgentState`, emitted on every change.
pub const STATE_EVENT: &str = "agent://state";

/// The command-line flag that opens the window at start (or in the running instance).
pub const OPEN_FLAG: &str = "--open";

/// How long the runtime gets to finish its work when the app quits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The agent runtime's background task and the token that stops it.
struct Background {
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Runs the desktop app until the user quits it.
///
/// # Platform behaviour
/// A second launch hands its arguments to the running instance (D-Bus on Linux, a named
/// mutex and window message on Windows, a socket on macOS) and exits; the running instance
/// then opens its window.
pub fn run() -> anyhow::Result<()> {
    init_tracing();
    // A second launch hands over before paying for the toolkit and the plugins.
    if handover::to_running_instance() {
        return Ok(());
    }
    let open_at_start = std::env::args_os().skip(1).any(|arg| arg == OPEN_FLAG);

    let app = tauri::Builder::default()
        // Registered first: a second launch must hand over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tracing::info!(?argv, "another launch asked for the window");
            window::open_or_log(app, window::Page::Home);
        }))
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .invoke_handler(tauri::generate_handler![
            commands::get_state,
            commands::check_now,
            commands::get_policy,
            commands::defer,
            commands::pause_reminders,
            commands::open_fix,
            commands::open_link,
            commands::report_phishing_url,
            commands::report_phishing_message,
            commands::phishing_reports,
            commands::refresh_phishing_reports,
            commands::last_sent_report,
            commands::history,
            commands::autostart_enabled,
            commands::set_autostart,
            commands::set_language,
            commands::window_painted,
        ])
        .setup(move |app| {
            start(app.handle(), open_at_start)?;
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("cannot start the desktop shell")?;

    // Past `build()` this is the only instance: a second one has handed over and exited, so
    // it is safe to open the agent's store.
    let agent = tauri::async_runtime::block_on(Agent::open(AgentConfig::from_env()))
        .context("cannot open the agent")?;
    app.manage(Language::load(agent.data_dir()));
    app.manage(agent);
    app.manage(Background {
        shutdown: CancellationToken::new(),
        task: Mutex::new(None),
    });

    app.run(|app, event| match event {
        // The last window closed: a tray app keeps running. `Quit` exits with a code.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => stop(app),
        _ => {}
    });
    Ok(())
}

/// Starts the tray, reminders, the state follower and the runtime, once the event loop is
/// ready.
fn start(app: &AppHandle, open_window: bool) -> anyhow::Result<()> {
    let agent = app.state::<Agent>().inner().clone();
    let language = app.state::<Language>();
    let mut languages = language.subscribe();
    let mut states = agent.subscribe();
    let first = states.borrow_and_update().clone();
    let first = TrayModel::of(&first, false, language.current(), Utc::now());
    tray::create(app, &first).context("cannot create the tray icon")?;
    // Subscribed before the runtime starts, so no reminder decided at start is missed.
    reminders::start(app);
    phishing_replies::start(app);
    updater::start(app);

    let follower = app.clone();
    let policy_agent = agent.clone();
    tauri::async_runtime::spawn(async move {
        let mut shown = first;
        loop {
            let state: AgentState = states.borrow_and_update().clone();
            languages.borrow_and_update();
            let pause_allowed = pause_allowed(&policy_agent).await;
            shown = follow(&follower, &shown, &state, pause_allowed);
            // A new state or a language chosen in Settings: either re-renders the tray.
            let next = tokio::select! {
                changed = states.changed() => changed,
                changed = languages.changed() => changed,
            };
            if next.is_err() {
                return;
            }
        }
    });

    // The icon was added either way (a tray host may appear later); without one now, the
    // user hears once where Tandem is.
    let checker = app.clone();
    tauri::async_runtime::spawn(async move {
        if !tray_host::available().await {
            tracing::warn!("no tray host (StatusNotifierWatcher or XEmbed tray manager) found");
            reminders::no_tray(&checker);
        }
    });

    let background = app.state::<Background>();
    let shutdown = background.shutdown.clone();
    // Silent enrolment from the file IT deployed, if any (retried while offline).
    tauri::async_runtime::spawn({
        let agent = agent.clone();
        async move { agent.bootstrap().await }
    });
    let task = tauri::async_runtime::spawn(async move { agent.run(shutdown).await });
    if let Ok(mut slot) = background.task.lock() {
        *slot = Some(task);
    }

    if open_window {
        window::open(app).context("cannot open the window")?;
    }
    Ok(())
}

/// Whether the policy in force lets the user defer (and so pause) reminders at all; the
/// runtime enforces it, the menu only hides what would be refused.
async fn pause_allowed(agent: &Agent) -> bool {
    agent
        .effective_policy()
        .await
        .map(|(policy, _)| policy.nudges.deferrals.max_count > 0)
        .unwrap_or(false)
}

/// Shows one new state: the window's event and the tray. Returns what the tray now shows.
fn follow(
    app: &AppHandle,
    shown: &TrayModel,
    state: &AgentState,
    pause_allowed: bool,
) -> TrayModel {
    if let Err(err) = app.emit(STATE_EVENT, state) {
        tracing::warn!("cannot send the state to the window: {err}");
    }
    let lang = app.state::<Language>().current();
    let next = TrayModel::of(state, pause_allowed, lang, Utc::now());
    match tray::update(app, shown, &next) {
        Ok(()) => next,
        Err(err) => {
            tracing::warn!("cannot update the tray icon: {err}");
            shown.clone()
        }
    }
}

/// Stops the runtime and gives it a moment to finish what it is writing.
fn stop(app: &AppHandle) {
    let Some(background) = app.try_state::<Background>() else {
        return;
    };
    background.shutdown.cancel();
    let task = background.task.lock().ok().and_then(|mut slot| slot.take());
    if let Some(task) = task {
        // The timer must be made inside the runtime, hence the async block.
        let finished = tauri::async_runtime::block_on(async {
            tokio::time::timeout(SHUTDOWN_GRACE, task).await
        });
        if finished.is_err() {
            tracing::warn!("the agent did not stop within {SHUTDOWN_GRACE:?}");
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second subscriber (say, in a test harness) is not an error worth stopping for.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
