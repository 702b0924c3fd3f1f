//! Reminders and the missing-tray fallback, under Xvfb with dunst as the notification daemon:
//! a failing item at the reminder phase becomes a notification that dunst shows, and its
//! default action ("Fix now") opens the window on the item; a desktop without a tray host
//! is told so once, and the window opens instead.

use std::process::Command;
use std::time::Duration;

use tandem_e2e::desktop_session::{DesktopSession, SessionOptions};
use tandem_e2e::procs::wait_for;

use crate::desktop::{
    app_env, desktop_bin, output_dir, output_within, screenshot_settled, APP_READY,
};

/// Reminders at once and at any hour: no notice phase (`reminder_every_hours: 0`), nothing
/// imminent before the deadline, working hours the whole day, every day. Only the password
/// manager check runs: it fails on any test machine (none of the recognised managers is
/// installed) and has no deadline of its own, so it is at the reminder phase, where checks
/// with a deadline from the machine (pending updates, an old password) could be overdue.
const REMIND_NOW: &str = r#"{
  "checks": {
    "os_updates": {"enabled": false}, "mfa": {"enabled": false}, "password_age": {"enabled": false},
    "firewall": {"enabled": false}, "disk_encryption": {"enabled": false}, "screen_lock": {"enabled": false},
    "antivirus": {"enabled": false}, "auto_updates": {"enabled": false}, "os_supported": {"enabled": false},
    "software_sources": {"enabled": false}
  },
  "nudges": {
    "working_hours": {"start": "00:00", "end": "23:59", "days": ["mon","tue","wed","thu","fri","sat","sun"]},
    "max_per_day": 10,
    "respect_do_not_disturb": false,
    "deferrals": {"max_count": 3, "max_hours": 72},
    "escalation": {"reminder_every_hours": 0, "imminent_within_hours": 0, "imminent_every_hours": 1, "overdue_every_hours": 1}
  }
}"#;

/// The nudge engine ticks once a minute after the first check run; generous on top.
const REMINDER_DUE: Duration = Duration::from_secs(240);

fn dunstctl(session: &DesktopSession, args: &[&str]) -> String {
    let out = output_within(
        session.command("dunstctl").args(args),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "dunstctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn displayed(session: &DesktopSession) -> u32 {
    dunstctl(session, &["count", "displayed"])
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_reminder_shows_in_dunst_and_fix_now_opens_the_item() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let policy = session.dir().join("remind-now.json");
    std::fs::write(&policy, REMIND_NOW).unwrap();
    // What the app asks the notification service to show, as it goes over the bus (dunst
    // drops a notification from its history once an action has been invoked on it).
    let mut monitor = Command::new("dbus-monitor");
    monitor.arg("interface='org.freedesktop.Notifications',member='Notify'");
    session.spawn("notify-monitor", monitor).unwrap();
    wait_for(APP_READY, "dbus-monitor to listen", || {
        session
            .log("notify-monitor")
            .contains("NameAcquired")
            .then_some(())
    })
    .unwrap();
    let mut app = Command::new(desktop_bin());
    app.envs(app_env(&session))
        .env("TANDEM_MANAGED_POLICY", &policy);
    session.spawn("tandem-desktop", app).unwrap();

    wait_for(REMINDER_DUE, "a reminder on screen", || {
        (displayed(&session) >= 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    assert!(
        session.windows_named("Tandem").unwrap().is_empty(),
        "a window opened before the user asked"
    );
    let log = session.log("tandem-desktop");
    assert!(
        !log.contains("no tray host"),
        "the tray host was not detected:\n{log}"
    );
    let out = output_dir().unwrap();
    let screen = session.screenshot(&out.join("reminder-screen.png"));
    assert!(screen.is_ok(), "{screen:?}");

    // The default action is "Fix now": the window opens on the item.
    dunstctl(&session, &["action", "0"]);
    let window = wait_for(APP_READY, "the window after Fix now", || {
        session.windows_named("Tandem").ok()?.into_iter().next()
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let log = plain(&session.log("tandem-desktop"));
    let answered = log
        .lines()
        .find(|l| l.contains("reminder answered"))
        .unwrap_or_else(|| panic!("no answer in the log:\n{log}"));
    assert!(answered.contains("FixNow"), "{answered}");
    assert!(answered.contains("check=password_manager"), "{answered}");
    let check = answered
        .split_whitespace()
        .find_map(|w| w.strip_prefix("check="))
        .unwrap()
        .to_owned();
    // The notification named the item and offered "Fix now" as its default action and
    // "Later", since the policy allows deferring.
    let sent = session.log("notify-monitor");
    let title = check_title(&check);
    for expected in [
        "string \"Tandem\"".to_owned(),
        format!("string \"{title}\""),
        "string \"default\"".to_owned(),
        "string \"Fix now\"".to_owned(),
        "string \"later\"".to_owned(),
        "string \"Later\"".to_owned(),
    ] {
        assert!(
            sent.contains(&expected),
            "the notification lacks {expected}:\n{sent}"
        );
    }
    screenshot_settled(&session, window.rect(), &out.join("reminder-item.png")).unwrap();
}

/// The log without ANSI colour sequences, so its fields can be read.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The English titles the runtime puts in notifications (`CheckId::title`).
fn check_title(id: &str) -> &'static str {
    match id {
        "os_updates" => "Operating system updates",
        "mfa" => "Multi-factor authentication",
        "password_age" => "Password age",
        "password_manager" => "Password manager",
        "firewall" => "Firewall",
        "disk_encryption" => "Disk encryption",
        "screen_lock" => "Screen lock",
        "antivirus" => "Antivirus",
        "auto_updates" => "Automatic updates",
        "os_supported" => "Supported OS version",
        "software_sources" => "Trusted software sources",
        other => panic!("unknown check {other}"),
    }
}

#[test]
fn without_a_tray_the_user_is_told_once_and_the_window_opens() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        tray: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let mut app = Command::new(desktop_bin());
    app.envs(app_env(&session));
    session.spawn("tandem-desktop", app).unwrap();

    wait_for(APP_READY, "the window, in place of a tray icon", || {
        session.windows_named("Tandem").ok()?.into_iter().next()
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    // Shown, or already timed out into the history: either way it is dunst's.
    wait_for(APP_READY, "the no-tray notification", || {
        if displayed(&session) >= 1 {
            dunstctl(&session, &["close-all"]);
        }
        let history = dunstctl(&session, &["history"]);
        history
            .contains("Tandem has no tray icon here")
            .then_some(history)
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let history = dunstctl(&session, &["history"]);
    assert_eq!(
        history.matches("\"Tandem has no tray icon here\"").count(),
        1,
        "said more than once: {history}"
    );
}

#[test]
fn an_overdue_item_opens_the_window_instead_of_a_notification() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    // The same item with no grace at all: overdue from the moment it is first seen.
    let overdue = REMIND_NOW.replace(
        r#""software_sources": {"enabled": false}"#,
        r#""software_sources": {"enabled": false}, "password_manager": {"grace_days": 0}"#,
    );
    let policy = session.dir().join("overdue.json");
    std::fs::write(&policy, overdue).unwrap();
    let mut app = Command::new(desktop_bin());
    app.envs(app_env(&session))
        .env("TANDEM_MANAGED_POLICY", &policy);
    session.spawn("tandem-desktop", app).unwrap();

    let window = wait_for(
        REMINDER_DUE,
        "the window, opened on the overdue item",
        || session.windows_named("Tandem").ok()?.into_iter().next(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let log = plain(&session.log("tandem-desktop"));
    let decided = log
        .lines()
        .find(|l| l.contains(" reminder ") && l.contains("check=password_manager"))
        .unwrap_or_else(|| panic!("no reminder in the log:\n{log}"));
    assert!(
        decided.contains("phase=Overdue") && decided.contains("delivery=OpenWindow"),
        "{decided}"
    );
    assert_eq!(displayed(&session), 0, "a notification was shown as well");
    let out = output_dir().unwrap();
    screenshot_settled(&session, window.rect(), &out.join("overdue-item.png")).unwrap();
}
