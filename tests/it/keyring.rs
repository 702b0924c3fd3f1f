//! The device token in a real Secret Service: gnome-keyring, unlocked, in a private D-Bus
//! session; and the clear refusal when no Secret Service exists.

use std::process::Command;

use tandem_e2e::desktop_session::{DesktopSession, SessionOptions};
use tandem_e2e::procs::{bin, Server};

fn tandem_in(session: &DesktopSession, data_dir: &std::path::Path) -> Command {
    let mut cmd = session.command(bin("tandem").unwrap());
    cmd.env("TANDEM_DATA_DIR", data_dir)
        .env_remove("TANDEM_CREDENTIAL_STORE");
    cmd
}

#[test]
fn the_device_token_is_stored_in_and_read_back_from_gnome_keyring() {
    let session = DesktopSession::with(SessionOptions {
        notifications: false,
        tray: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let server = Server::start_sqlite().unwrap();
    let secret = server.admin_secret(&["enroll-secret", "create"]).unwrap();
    let data = tempfile::tempdir().unwrap();

    let out = tandem_in(&session, data.path())
        .args(["enroll", "--server", &server.url, "--secret", &secret])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The token is in the keyring, not in the data dir.
    assert!(!data.path().join("device-token").exists());
    let found = session
        .command("secret-tool")
        .args(["search", "--all", "service", "dev.tandem.agent"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&found.stdout).to_string()
        + &String::from_utf8_lossy(&found.stderr);
    assert!(
        listing.contains("dev.tandem.agent"),
        "keyring has no Tandem item: {listing}"
    );

    // A later process reads it back from the keyring to authenticate.
    let out = tandem_in(&session, data.path())
        .arg("sync")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_a_secret_service_enrolment_names_the_problem_and_the_file_store() {
    let session = DesktopSession::with(SessionOptions {
        keyring: false,
        notifications: false,
        tray: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let server = Server::start_sqlite().unwrap();
    let secret = server.admin_secret(&["enroll-secret", "create"]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = tandem_in(&session, data.path())
        .args(["enroll", "--server", &server.url, "--secret", &secret])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no OS keyring is available"), "{stderr}");
    assert!(stderr.contains("--credential-store file"), "{stderr}");

    // The advice works.
    let out = tandem_in(&session, data.path())
        .args([
            "--credential-store",
            "file",
            "enroll",
            "--server",
            &server.url,
            "--secret",
            &secret,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.path().join("device-token").exists());
}
