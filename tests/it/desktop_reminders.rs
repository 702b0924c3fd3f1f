//! Reminders and the missing-tray fallback, under Xvfb with dunst as the notification daemon:
//! a failing item at the reminder phase becomes a notification that dunst shows, and its
//! default action ("Fix now") opens the window on the item; "Later" defers it, the tray's
//! "Pause reminders" holds reminders, and a policy without deferrals offers neither; the
//! tray and notifications speak the session's language; a desktop without a tray host is
//! told so once, and the window opens instead.

use std::process::Command;
use std::time::Duration;

use tandem_e2e::desktop_session::{DesktopSession, SessionOptions};
use tandem_e2e::procs::wait_for;

use crate::desktop::{
    app_env, desktop_bin, open_tray_menu, output_dir, output_within, screenshot_settled, APP_READY,
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
pub(crate) fn plain(log: &str) -> String {
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

/// `REMIND_NOW` with a different number of deferrals allowed.
fn remind_now_with_deferrals(max_count: u32) -> String {
    let policy = REMIND_NOW.replace(
        r#""deferrals": {"max_count": 3, "max_hours": 72}"#,
        &format!(r#""deferrals": {{"max_count": {max_count}, "max_hours": 72}}"#),
    );
    assert_ne!(policy, REMIND_NOW, "the deferral setting moved");
    policy
}

/// A session whose dunst answers its context menu with the notification's "later" action,
/// as a user picking "Later" from it would: dunst pipes one `#label (summary) [id,key]`
/// line per action to its `dmenu` program and invokes the line it gets back.
fn session_choosing_later() -> DesktopSession {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        notifications: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let picker = session.dir().join("pick-later.sh");
    std::fs::write(&picker, "#!/bin/sh\nexec grep -m1 ',later]$'\n").unwrap();
    std::fs::set_permissions(&picker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = session.dir().join("dunstrc-later");
    std::fs::write(
        &config,
        format!("[global]\n    dmenu = {}\n", picker.display()),
    )
    .unwrap();
    let mut dunst = Command::new("dunst");
    dunst.arg("-config").arg(&config);
    session.spawn("dunst", dunst).unwrap();
    session
        .wait_for_bus_name("org.freedesktop.Notifications", APP_READY)
        .unwrap_or_else(|e| panic!("{e:#}\ndunst:\n{}", session.log("dunst")));
    session
}

/// Listens to what the app asks the notification service to show (dunst forgets a
/// notification once an action was invoked on it; the bus does not).
fn monitor_notifications(session: &mut DesktopSession) {
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
}

/// Notifications the app asked for so far.
fn notifications_sent(session: &DesktopSession) -> usize {
    session
        .log("notify-monitor")
        .matches("member=Notify")
        .count()
}

/// The app, in the session's own (English) locale unless `locale` says otherwise, under the
/// managed `policy`.
fn start_app(session: &mut DesktopSession, policy: &str, locale: &str) {
    let file = session.dir().join("policy.json");
    std::fs::write(&file, policy).unwrap();
    let mut app = Command::new(desktop_bin());
    app.envs(app_env(session))
        .env("TANDEM_MANAGED_POLICY", &file)
        .env("LANG", locale)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANGUAGE");
    session.spawn("tandem-desktop", app).unwrap();
}

/// The last `tray menu` line of the app's log that satisfies `pred`.
fn tray_menu_line(session: &DesktopSession, pred: impl Fn(&str) -> bool) -> Option<String> {
    plain(&session.log("tandem-desktop"))
        .lines()
        .filter(|l| l.contains(" tray menu"))
        .rfind(|l| pred(l))
        .map(str::to_owned)
}

#[test]
fn later_in_dunst_defers_the_reminder() {
    let mut session = session_choosing_later();
    monitor_notifications(&mut session);
    start_app(&mut session, REMIND_NOW, "C.UTF-8");

    wait_for(REMINDER_DUE, "a reminder on screen", || {
        (displayed(&session) >= 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let sent = notifications_sent(&session);
    // The user opens the notification's menu and picks "Later".
    dunstctl(&session, &["context"]);
    let deferred = wait_for(APP_READY, "the deferral", || {
        plain(&session.log("tandem-desktop"))
            .lines()
            .find(|l| l.contains("reminder deferred"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\napp log:\n{}\ndunst:\n{}",
            session.log("tandem-desktop"),
            session.log("dunst")
        )
    });
    assert!(deferred.contains("check=password_manager"), "{deferred}");
    // One of the three deferrals the policy allows is used: two are left.
    assert!(deferred.contains("deferrals_left=2"), "{deferred}");
    // Held for the reminder cadence (an hour, the shortest), not a moment.
    let minutes: i64 = deferred
        .split_whitespace()
        .find_map(|w| w.strip_prefix("minutes="))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no minutes in {deferred}"));
    assert!(
        (55..=60).contains(&minutes),
        "deferred for {minutes} minutes"
    );
    // The notification is gone and nothing was shown again in its place. (That it stays
    // away until the deferral ends is the nudge engine's, simulated over weeks in
    // crates/agent/src/nudge/tests.rs.)
    wait_for(APP_READY, "the answered reminder to close", || {
        (displayed(&session) == 0).then_some(())
    })
    .unwrap();
    assert_eq!(notifications_sent(&session), sent);
}

/// Opens the tray menu with a click on the icon and, once it is up, presses `keys`.
fn in_tray_menu(session: &DesktopSession, keys: &[&str]) {
    open_tray_menu(session);
    let pressed = session
        .command("xdotool")
        .arg("key")
        .args(keys)
        .status()
        .unwrap();
    assert!(pressed.success());
}

#[test]
fn pause_from_the_tray_menu_holds_reminders() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    monitor_notifications(&mut session);
    // Nothing to remind of at first: the one check is off.
    let quiet = REMIND_NOW.replace(
        r#""software_sources": {"enabled": false}"#,
        r#""software_sources": {"enabled": false}, "password_manager": {"enabled": false}"#,
    );
    start_app(&mut session, &quiet, "C.UTF-8");

    // The pause entry is there once the policy in force is known.
    wait_for(APP_READY, "the pause entry in the menu", || {
        tray_menu_line(&session, |l| l.contains("Pause reminders for 1 hour"))
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    // Walk up from the menu's end: Quit, About, then the pause entry.
    in_tray_menu(&session, &["Up", "Up", "Up", "Return"]);
    wait_for(APP_READY, "reminders paused", || {
        plain(&session.log("tandem-desktop"))
            .contains("reminders paused")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    // The menu says until when, and offers no second pause.
    wait_for(APP_READY, "the menu to say reminders are paused", || {
        tray_menu_line(&session, |l| l.contains("Reminders paused until"))
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));

    // Now IT turns the check on, and the user asks for a check from the menu (the paused
    // entry cannot be chosen, so "Check now" is the fourth from the end): the item appears,
    // as `later_in_dunst_defers_the_reminder` sees it shown at once when not paused.
    std::fs::write(session.dir().join("policy.json"), REMIND_NOW).unwrap();
    in_tray_menu(&session, &["Up", "Up", "Up", "Up", "Return"]);
    wait_for(APP_READY, "the item in the menu", || {
        tray_menu_line(&session, |l| {
            l.contains("1 thing needs you") && l.contains("Reminders paused until")
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    // The runtime decides at its next minute tick: with the pause, it says it held the
    // reminder back instead of sending it.
    wait_for(REMINDER_DUE, "the runtime to hold the reminder", || {
        plain(&session.log("tandem-desktop"))
            .contains("reminder held: paused")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    assert_eq!(
        notifications_sent(&session),
        0,
        "a reminder was shown while paused:\n{}",
        session.log("notify-monitor")
    );
    assert_eq!(displayed(&session), 0);
    let log = plain(&session.log("tandem-desktop"));
    assert!(!log.contains(" reminder check="), "{log}");
}

#[test]
fn in_german_and_without_deferrals_the_reminder_offers_no_later() {
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();
    monitor_notifications(&mut session);
    start_app(&mut session, &remind_now_with_deferrals(0), "de_DE.UTF-8");

    wait_for(REMINDER_DUE, "a reminder on screen", || {
        (displayed(&session) >= 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    // The tray menu speaks German and, with no deferral allowed, offers no pause.
    let menu = tray_menu_line(&session, |l| l.contains("1 Sache braucht Sie"))
        .unwrap_or_else(|| panic!("no German menu:\n{}", session.log("tandem-desktop")));
    assert!(
        menu.contains("lang=\"de\"") || menu.contains("lang=de"),
        "{menu}"
    );
    assert!(menu.contains("Passwortmanager (fällig in "), "{menu}");
    assert!(menu.contains("pause=None"), "{menu}");
    assert!(!menu.contains("pausieren"), "{menu}");

    // The notification: German title and action, and no "Later".
    let sent = session.log("notify-monitor");
    for expected in [
        "string \"Passwortmanager\"",
        "string \"default\"",
        "string \"Jetzt beheben\"",
    ] {
        assert!(
            sent.contains(expected),
            "the notification lacks {expected}:\n{sent}"
        );
    }
    assert!(
        !sent.contains("string \"later\""),
        "Later was offered:\n{sent}"
    );
    // And dunst keeps it in German in its history.
    dunstctl(&session, &["close-all"]);
    let history = wait_for(APP_READY, "the reminder in dunst's history", || {
        let history = dunstctl(&session, &["history"]);
        history.contains("Passwortmanager").then_some(history)
    })
    .unwrap();
    assert!(history.contains("Passwortmanager erzeugt"), "{history}");
}
