//! `password_manager` through replayed hosts (application paths, Chromium profile
//! listings, Firefox `extensions.json` files) on Linux, macOS and Windows, and its parser.

use base64::Engine as _;
use serde_json::json;
use tandem_checks::checks::password_manager::{self, parse_firefox_extensions, PasswordManager};
use tandem_checks::engine::Check;
use tandem_checks::{Bundle, CheckContext, ReplayHost};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_updates::mutations;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn bundle(
    family: &str,
    home: &str,
    files: serde_json::Value,
    dirs: serde_json::Value,
) -> ReplayHost {
    let doc = json!({
        "format": "tandem-bundle/1",
        "recorded_at": "2026-11-28T12:00:00Z",
        "agent_version": "test",
        "os": {"family": family, "os_version": "", "hostname": "h", "user": "alice", "home": home},
        "commands": [],
        "files": files,
        "dirs": dirs,
    });
    ReplayHost::new(Bundle::from_json(&doc.to_string()).unwrap())
}

async fn run(host: &ReplayHost) -> tandem_checks::engine::Outcome {
    PasswordManager.run(host, &CheckContext::default()).await
}

#[tokio::test]
async fn linux_firefox_bitwarden_and_chrome_profiles() {
    let host = bundle(
        "linux",
        "/home/alice",
        json!([
            {"path": "/home/alice/.mozilla/firefox/k3x9w2p1.default-release/extensions.json",
             "content_base64": b64(&read("password_manager/linux/firefox-extensions-bitwarden.json"))},
        ]),
        json!([
            {"path": "/home/alice/.config/google-chrome", "result": {"Ok": ["Crashpad", "Default", "Local State", "Profile 1"]}},
            {"path": "/home/alice/.config/google-chrome/Default/Extensions", "result": {"Ok": ["ghbmnnjooekpmoecnnnilnnbdlolhkhi", "nmmhkkegccagdldgiimedpiccmgmieda"]}},
            {"path": "/home/alice/.config/google-chrome/Profile 1/Extensions", "result": {"Err": {"kind": "permission_denied", "path": "/home/alice/.config/google-chrome/Profile 1/Extensions"}}},
            {"path": "/home/alice/.mozilla/firefox", "result": {"Ok": ["Crash Reports", "Pending Pings", "installs.ini", "k3x9w2p1.default-release", "profiles.ini"]}},
        ]),
    );
    let out = run(&host).await;
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.summary, "Password manager in use: Bitwarden");
    assert_snapshot(
        "password_manager/linux/firefox-bitwarden.expected.json",
        &out,
    );
}

#[tokio::test]
async fn linux_nothing_found_warns_and_disabled_addons_do_not_count() {
    let host = bundle(
        "linux",
        "/home/alice",
        json!([
            {"path": "/home/alice/.mozilla/firefox/a1.default-release/extensions.json",
             "content_base64": b64(&read("password_manager/linux/firefox-extensions-1password-disabled.json"))},
            {"path": "/home/alice/.mozilla/firefox/b2.work/extensions.json",
             "content_base64": b64(&read("password_manager/linux/firefox-extensions-truncated.json"))},
        ]),
        json!([{"path": "/home/alice/.mozilla/firefox", "result": {"Ok": ["a1.default-release", "b2.work", "profiles.ini"]}}]),
    );
    let out = run(&host).await;
    assert_eq!(out.status, Status::Warn);
    // The truncated extensions.json is noted, not fatal.
    assert_eq!(out.details["notes"].as_array().unwrap().len(), 1);
    assert_snapshot("password_manager/linux/none-found.expected.json", &out);
}

#[tokio::test]
async fn linux_flatpak_app_counts() {
    let host = bundle(
        "linux",
        "/home/alice",
        json!([{"path": "/home/alice/.local/share/flatpak/app/org.keepassxc.KeePassXC", "modified": "2026-10-01T10:00:00Z"}]),
        json!([]),
    );
    let out = run(&host).await;
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["found"][0]["manager"], "keepassxc");
}

#[tokio::test]
async fn macos_app_and_brave_extension() {
    let host = bundle(
        "macos",
        "/Users/alice",
        json!([{"path": "/Applications/1Password.app", "modified": "2026-11-02T09:00:00Z"}]),
        json!([
            {"path": "/Users/alice/Library/Application Support/BraveSoftware/Brave-Browser", "result": {"Ok": ["Default", "System Profile"]}},
            {"path": "/Users/alice/Library/Application Support/BraveSoftware/Brave-Browser/Default/Extensions", "result": {"Ok": ["aeblfdkhhhdcdjpifhhbdiojplfjncoa"]}},
        ]),
    );
    let out = run(&host).await;
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["found"].as_array().unwrap().len(), 2);
    assert_snapshot(
        "password_manager/macos/1password-app-and-brave.expected.json",
        &out,
    );
}

#[tokio::test]
async fn windows_edge_store_extension() {
    let host = bundle(
        "windows",
        r"C:\Users\alice",
        json!([]),
        json!([
            {"path": r"C:\Users\alice\AppData\Local\Microsoft\Edge\User Data", "result": {"Ok": ["Default", "Profile 2", "Snapshots"]}},
            {"path": r"C:\Users\alice\AppData\Local\Microsoft\Edge\User Data\Default\Extensions", "result": {"Ok": []}},
            {"path": r"C:\Users\alice\AppData\Local\Microsoft\Edge\User Data\Profile 2\Extensions", "result": {"Ok": ["jbkfoedolllekgbhcbcoahefnbanhhlh"]}},
        ]),
    );
    let out = run(&host).await;
    assert_eq!(out.status, Status::Pass);
    assert_eq!(
        out.details["found"][0]["where"],
        "Microsoft Edge (Profile 2)"
    );
    assert_snapshot(
        "password_manager/windows/edge-bitwarden.expected.json",
        &out,
    );
}

#[tokio::test]
async fn policy_recognising_nothing_known_is_not_applicable() {
    let host = bundle("linux", "/home/alice", json!([]), json!([]));
    let mut ctx = CheckContext::default();
    ctx.policy.checks.password_manager.recognised = vec!["lastpass".into()];
    let out = PasswordManager.run(&host, &ctx).await;
    assert_eq!(out.status, Status::NotApplicable);
    // Only the managers policy names count: Bitwarden is not recognised here.
    ctx.policy.checks.password_manager.recognised = vec!["keepassxc".into()];
    let host = bundle(
        "linux",
        "/home/alice",
        json!([{"path": "/home/alice/.mozilla/firefox/k.default/extensions.json", "content_base64": b64(&read("password_manager/linux/firefox-extensions-bitwarden.json"))}]),
        json!([{"path": "/home/alice/.mozilla/firefox", "result": {"Ok": ["k.default"]}}]),
    );
    assert_eq!(PasswordManager.run(&host, &ctx).await.status, Status::Warn);
}

#[test]
fn firefox_extensions_parser() {
    let a = parse_firefox_extensions(&read(
        "password_manager/linux/firefox-extensions-builtin-only.json",
    ))
    .unwrap();
    assert_eq!(a.len(), 4);
    assert!(parse_firefox_extensions(&read(
        "password_manager/linux/firefox-extensions-truncated.json"
    ))
    .is_err());
    let seeds = vec![read(
        "password_manager/linux/firefox-extensions-bitwarden.json",
    )];
    for input in mutations(&seeds, 2000, 0x9e37_79b9) {
        let _ = parse_firefox_extensions(&input);
    }
    let _ = password_manager::catalogue::MANAGERS.len();
}
