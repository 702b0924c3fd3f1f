//! The agent's user-context probe on a real X server and session bus: `tandem context` reads
//! the X11 idle time (screensaver extension) and GNOME's do-not-disturb setting, the signals
//! that hold a reminder back.

use std::time::Duration;

use serde_json::Value;
use tandem_e2e::desktop_session::{DesktopSession, SessionOptions};
use tandem_e2e::procs::{bin, run_ok};

fn context(session: &DesktopSession) -> Value {
    let mut cmd = session.command(bin("tandem").unwrap());
    cmd.args(["context", "--json"]);
    serde_json::from_slice(&run_ok(&mut cmd).unwrap().stdout).unwrap()
}

#[test]
fn do_not_disturb_and_idle_time_are_read_from_the_session() {
    let session = DesktopSession::with(SessionOptions {
        keyring: false,
        notifications: false,
        tray: false,
        ..SessionOptions::default()
    })
    .unwrap();

    let before = context(&session);
    let idle = before["idle_ms"]
        .as_u64()
        .expect("the X server's idle time");
    assert!(idle < 10 * 60 * 1000, "a fresh X server idle for {idle} ms");
    assert_eq!(before["away"], false, "{before}");

    // Input resets the idle time: xdotool moves the pointer through XTEST.
    std::thread::sleep(Duration::from_millis(1500));
    let mut cmd = session.command("xdotool");
    cmd.args(["mousemove", "40", "40"]);
    run_ok(&mut cmd).unwrap();
    let after = context(&session);
    assert!(
        after["idle_ms"].as_u64().unwrap() < 1500,
        "idle after input: {after}"
    );

    // GNOME's "Do Not Disturb" is show-banners off, in the user's dconf database.
    let mut set = session.command("gsettings");
    set.args([
        "set",
        "org.gnome.desktop.notifications",
        "show-banners",
        "false",
    ]);
    run_ok(&mut set).unwrap();
    assert_eq!(context(&session)["do_not_disturb"], true);
    let mut unset = session.command("gsettings");
    unset.args([
        "set",
        "org.gnome.desktop.notifications",
        "show-banners",
        "true",
    ]);
    run_ok(&mut unset).unwrap();
    assert_eq!(context(&session)["do_not_disturb"], false);
}
