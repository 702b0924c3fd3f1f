//! Self-update of the desktop app with Tauri's updater plugin, from the enrolled server.
//!
//! The server is the one `tandem-agent` enrolled with; its endpoint answers the plugin's
//! "dynamic server" format for the device's group channel and needs the device token, so the
//! updater is built at run time from the agent's enrolment rather than from
//! `tauri.conf.json`. The key that verifies the download is never the server's to choose:
//! it is the one built into this binary (`TANDEM_UPDATER_PUBKEY` at compile time, as for
//! the `tandem` CLI). Without one the updater stays off. `tauri.conf.json` carries only an
//! empty `plugins.updater` section, because the plugin refuses to start without one.
//!
//! # Platform behaviour
//! What the plugin installs: on Windows the signed MSI or NSIS installer (run quietly; the
//! app exits for it), on macOS the signed `.app.tar.gz` (the bundle is replaced in place),
//! on Linux only an AppImage (the file named by `$APPIMAGE` is replaced). A .deb or .rpm
//! install has no `$APPIMAGE` and its files belong to the package manager: there the app
//! does not check at all, and the package is updated through apt/dnf (see
//! `docs/deploy/self-update.md`).

use std::time::Duration;

use tandem_agent::update::BUILT_IN_PUBLIC_KEY;
use tandem_agent::Agent;
use tauri::{AppHandle, Manager};
use tauri_plugin_updater::UpdaterExt as _;

/// First check a few minutes after start (enrolment and the first report go first), then
/// daily: releases are rare and each check is one small request.
const FIRST_CHECK: Duration = Duration::from_secs(5 * 60);
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// Whether the plugin can install an update of this installation.
fn installable() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("APPIMAGE").is_some()
    } else {
        cfg!(any(target_os = "windows", target_os = "macos"))
    }
}

/// Starts the daily update check when this build pins an updater key and the plugin can
/// install here.
pub fn start(app: &AppHandle) {
    let Some(public_key) = BUILT_IN_PUBLIC_KEY else {
        tracing::debug!("app self-update off: no updater key is built in");
        return;
    };
    if !installable() {
        tracing::info!("app self-update off: this installation is updated by its package manager");
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut wait = FIRST_CHECK;
        loop {
            tokio::time::sleep(wait).await;
            wait = EVERY;
            check_once(&app, public_key).await;
        }
    });
}

/// One check: asks the server, and installs and restarts when a newer release verifies.
async fn check_once(app: &AppHandle, public_key: &str) {
    let agent = app.state::<Agent>().inner().clone();
    let server = match agent.desktop_updater().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "no update check (not enrolled?)");
            return;
        }
    };
    let updater = server
        .endpoint
        .parse::<tauri::Url>()
        .map_err(|e| e.to_string())
        .and_then(|endpoint| {
            app.updater_builder()
                .pubkey(public_key)
                .endpoints(vec![endpoint])
                .and_then(|b| b.header("Authorization", server.authorization.as_str()))
                .and_then(|b| b.build())
                .map_err(|e| e.to_string())
        });
    let updater = match updater {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up the updater");
            return;
        }
    };
    let update = match updater.check().await {
        Ok(Some(update)) => update,
        Ok(None) => return,
        Err(e) => {
            tracing::info!(error = %e, "update check failed; trying again tomorrow");
            return;
        }
    };
    let version = update.version.clone();
    // The plugin verifies the minisign signature with `public_key` before it installs, and
    // installs nothing when it does not verify.
    match update.download_and_install(|_, _| {}, || {}).await {
        Ok(()) => {
            agent
                .record_update(
                    true,
                    format!("{} -> {version} (desktop app)", update.current_version),
                )
                .await;
            tracing::info!(%version, "app update installed; restarting");
            app.restart();
        }
        Err(e) => {
            tracing::error!(error = %e, %version, "app update refused; the installed app stays");
            agent
                .record_update(false, format!("update {version} refused: {e}"))
                .await;
        }
    }
}
