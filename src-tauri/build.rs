//! Build script: Tauri's code generation and the ACL for the app's own commands.

use std::path::Path;

fn main() {
    // `generate_context!` embeds ui/dist into the binary; without it the macro only says the
    // path does not exist, so name the step that makes it.
    let dist = Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        println!(
            "cargo:warning=ui/dist is missing: run `npm ci && npm run build` in ui/ before building tandem-desktop"
        );
    }
    // Rebuild when the frontend is rebuilt, so the embedded assets never go stale.
    println!("cargo:rerun-if-changed=../ui/dist");

    // Declaring the commands generates `allow-<command>` permissions, so capabilities/
    // grants the window exactly the commands it calls and nothing else.
    let manifest = tauri_build::AppManifest::new().commands(&[
        "get_state",
        "check_now",
        "get_policy",
        "defer",
        "pause_reminders",
        "open_fix",
        "open_link",
        "report_phishing_url",
        "report_phishing_message",
        "phishing_reports",
        "refresh_phishing_reports",
        "last_sent_report",
        "history",
        "autostart_enabled",
        "set_autostart",
        "set_language",
        "window_painted",
    ]);
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
        .unwrap_or_else(|err| panic!("tauri-build failed: {err:#}"));
}
