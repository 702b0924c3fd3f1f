//! What the user is doing right now — away, in do-not-disturb, full screen or presenting —
//! so that reminders never break into a meeting.
//!
//! The platform part only gathers raw answers; the parsing of what the OS said is in pure
//! functions here, tested on every platform.
//!
//! # Platform behaviour
//! Every probe goes through the [`Host`] door, so a support bundle records them and tests
//! replay a user in a meeting or away.
//!
//! - Linux (GNOME/X11): idle time from Mutter's `IdleMonitor.GetIdletime` (else the X11
//!   screensaver extension through `xprintidle`), the lock from
//!   `org.gnome.ScreenSaver.GetActive`, do-not-disturb from
//!   `org.gnome.desktop.notifications show-banners`, full screen from the active window's
//!   `_NET_WM_STATE` (`xprop`). Each is optional: a desktop that lacks one answers "unknown",
//!   which counts as "not busy".
//! - Windows: `SHQueryUserNotificationState` (busy, full-screen Direct3D, presentation mode,
//!   quiet time) and `GetLastInputInfo` for idle time. Written and type-checked, not run here.
//! - macOS: idle time from `ioreg -c IOHIDSystem` (`HIDIdleTime`, nanoseconds). Camera use and
//!   full-screen detection are not read yet.

use std::time::Duration;

use chrono::{Local, Offset};

#[cfg(any(target_os = "linux", target_os = "macos"))]
use tandem_checks::Cmd;
use tandem_checks::Host;

use crate::nudge::UserContext;

/// Idle for longer than this counts as away.
pub const AWAY_AFTER: Duration = Duration::from_secs(5 * 60);

/// Raw signals, each `None` when the platform could not tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    pub idle: Option<Duration>,
    pub locked: Option<bool>,
    pub do_not_disturb: Option<bool>,
    pub fullscreen: Option<bool>,
}

impl Signals {
    /// The context the nudge engine judges by, in the machine's current UTC offset.
    pub fn to_context(self) -> UserContext {
        UserContext {
            utc_offset: local_offset(),
            away: self.locked == Some(true) || self.idle.is_some_and(|i| i >= AWAY_AFTER),
            do_not_disturb: self.do_not_disturb == Some(true),
            fullscreen: self.fullscreen == Some(true),
        }
    }
}

/// The machine's UTC offset now (a laptop that travels changes it).
pub fn local_offset() -> chrono::FixedOffset {
    Local::now().offset().fix()
}

/// `dbus-send --print-reply` output with one `uint64 N` value (Mutter's idle time, ms).
pub fn parse_dbus_uint64(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("uint64 "))
        .and_then(|n| n.trim().parse().ok())
}

/// `dbus-send --print-reply` output with one `boolean true|false` value.
pub fn parse_dbus_bool(text: &str) -> Option<bool> {
    text.lines().find_map(|l| match l.trim() {
        "boolean true" => Some(true),
        "boolean false" => Some(false),
        _ => None,
    })
}

/// `gsettings get org.gnome.desktop.notifications show-banners`: `false` means
/// do-not-disturb is on.
pub fn parse_show_banners(text: &str) -> Option<bool> {
    match text.trim() {
        "true" => Some(false),
        "false" => Some(true),
        _ => None,
    }
}

/// `xprop -root _NET_ACTIVE_WINDOW` → the window id (`0x1e00003`); `None` when no window is
/// active (`0x0`) or the property is missing.
pub fn parse_active_window(text: &str) -> Option<String> {
    let id = text.split('#').nth(1)?.trim().split(',').next()?.trim();
    (id.starts_with("0x") && id != "0x0").then(|| id.to_owned())
}

/// `xprop -id W _NET_WM_STATE` → whether the window is full screen.
pub fn parse_wm_state_fullscreen(text: &str) -> Option<bool> {
    if text.contains("not found") || !text.contains('=') {
        return None;
    }
    Some(text.contains("_NET_WM_STATE_FULLSCREEN"))
}

/// `ioreg -c IOHIDSystem` → `HIDIdleTime` (nanoseconds) as a duration.
pub fn parse_ioreg_idle(text: &str) -> Option<Duration> {
    let line = text.lines().find(|l| l.contains("\"HIDIdleTime\""))?;
    let ns: u64 = line.split('=').nth(1)?.trim().parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Windows `SHQueryUserNotificationState` values (`QUERY_USER_NOTIFICATION_STATE`).
pub fn windows_notification_state_busy(state: i32) -> Option<bool> {
    match state {
        // QUNS_NOT_PRESENT (1): locked or switched away; QUNS_BUSY (2): a full-screen app;
        // QUNS_RUNNING_D3D_FULL_SCREEN (3); QUNS_PRESENTATION_MODE (4); QUNS_APP (7): a
        // full-screen Store app.
        1..=4 | 7 => Some(true),
        // QUNS_ACCEPTS_NOTIFICATIONS (5), QUNS_QUIET_TIME (6: first hour after setup).
        5 | 6 => Some(false),
        _ => None,
    }
}

/// Reads the live signals through the host door. Never fails: what cannot be read is `None`.
pub async fn current(host: &dyn Host) -> Signals {
    platform::current(host).await
}

/// `xprintidle`: the X11 screensaver extension's idle time in milliseconds.
pub fn parse_xprintidle(text: &str) -> Option<Duration> {
    text.trim().parse().ok().map(Duration::from_millis)
}

/// Runs a context probe; its output when it succeeded.
#[cfg(any(target_os = "linux", target_os = "macos"))]
async fn ask(host: &dyn Host, program: &'static str, args: &[&str]) -> Option<String> {
    let out = host
        .run(&Cmd::new(program, args).timeout(PROBE_TIMEOUT))
        .await
        .ok()?;
    (out.exit_code == Some(0)).then_some(out.stdout)
}

/// Context probes answer at once or not at all: a hung desktop service must not hold a
/// reminder back for long.
#[cfg(any(target_os = "linux", target_os = "macos"))]
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    async fn dbus_call(host: &dyn Host, dest: &str, path: &str, method: &str) -> Option<String> {
        ask(
            host,
            "/usr/bin/dbus-send",
            &[
                "--session",
                "--print-reply",
                "--reply-timeout=2000",
                &format!("--dest={dest}"),
                path,
                method,
            ],
        )
        .await
    }

    pub async fn current(host: &dyn Host) -> Signals {
        let idle = async {
            let mutter = dbus_call(
                host,
                "org.gnome.Mutter.IdleMonitor",
                "/org/gnome/Mutter/IdleMonitor/Core",
                "org.gnome.Mutter.IdleMonitor.GetIdletime",
            )
            .await
            .as_deref()
            .and_then(parse_dbus_uint64)
            .map(Duration::from_millis);
            match mutter {
                Some(idle) => Some(idle),
                // Other X11 desktops: the screensaver extension, which every X server has.
                None => ask(host, "/usr/bin/xprintidle", &[])
                    .await
                    .as_deref()
                    .and_then(parse_xprintidle),
            }
        };
        let locked = async {
            dbus_call(
                host,
                "org.gnome.ScreenSaver",
                "/org/gnome/ScreenSaver",
                "org.gnome.ScreenSaver.GetActive",
            )
            .await
            .as_deref()
            .and_then(parse_dbus_bool)
        };
        let dnd = async {
            ask(
                host,
                "/usr/bin/gsettings",
                &["get", "org.gnome.desktop.notifications", "show-banners"],
            )
            .await
            .as_deref()
            .and_then(parse_show_banners)
        };
        let fullscreen = async {
            let active = ask(host, "/usr/bin/xprop", &["-root", "_NET_ACTIVE_WINDOW"]).await?;
            let id = parse_active_window(&active)?;
            let state = ask(host, "/usr/bin/xprop", &["-id", &id, "_NET_WM_STATE"]).await?;
            parse_wm_state_fullscreen(&state)
        };
        let (idle, locked, do_not_disturb, fullscreen) =
            tokio::join!(idle, locked, dnd, fullscreen);
        Signals {
            idle,
            locked,
            do_not_disturb,
            fullscreen,
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;

    pub async fn current(host: &dyn Host) -> Signals {
        let idle = ask(host, "/usr/sbin/ioreg", &["-c", "IOHIDSystem", "-d", "4"])
            .await
            .as_deref()
            .and_then(parse_ioreg_idle);
        Signals {
            idle,
            ..Signals::default()
        }
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod platform {
    use super::*;
    use windows_sys::Win32::System::SystemInformation::GetTickCount;
    use windows_sys::Win32::UI::Input::KeyboardAndMouse::{GetLastInputInfo, LASTINPUTINFO};
    use windows_sys::Win32::UI::Shell::SHQueryUserNotificationState;

    pub async fn current(_host: &dyn Host) -> Signals {
        let mut state = 0;
        // SAFETY: `state` is a valid out-pointer for the duration of the call.
        let hr = unsafe { SHQueryUserNotificationState(&mut state) };
        let busy = if hr == 0 {
            windows_notification_state_busy(state)
        } else {
            None
        };
        let mut info = LASTINPUTINFO {
            cbSize: std::mem::size_of::<LASTINPUTINFO>() as u32,
            dwTime: 0,
        };
        // SAFETY: `info` is initialised with its size, as the API requires.
        let idle = if unsafe { GetLastInputInfo(&mut info) } != 0 {
            // SAFETY: no arguments; reads the system tick count.
            let now = unsafe { GetTickCount() };
            Some(Duration::from_millis(u64::from(
                now.wrapping_sub(info.dwTime),
            )))
        } else {
            None
        };
        Signals {
            idle,
            locked: None,
            do_not_disturb: None,
            fullscreen: busy,
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod platform {
    use super::*;

    pub async fn current(_host: &dyn Host) -> Signals {
        Signals::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutter_and_screensaver_replies() {
        let idle = "method return time=1732.1 sender=:1.20 -> destination=:1.99 serial=512 reply_serial=2\n   uint64 431200\n";
        assert_eq!(parse_dbus_uint64(idle), Some(431_200));
        let active = "method return time=1732.2 sender=:1.20 -> destination=:1.99 serial=5 reply_serial=2\n   boolean true\n";
        assert_eq!(parse_dbus_bool(active), Some(true));
        assert_eq!(
            parse_dbus_bool("Error org.freedesktop.DBus.Error.ServiceUnknown: no"),
            None
        );
    }

    #[test]
    fn do_not_disturb_is_banners_off() {
        assert_eq!(parse_show_banners("false\n"), Some(true));
        assert_eq!(parse_show_banners("true\n"), Some(false));
        assert_eq!(parse_show_banners("No such schema"), None);
    }

    #[test]
    fn xprop_active_window_and_fullscreen() {
        assert_eq!(
            parse_active_window("_NET_ACTIVE_WINDOW(WINDOW): window id # 0x1e00003\n").as_deref(),
            Some("0x1e00003")
        );
        assert_eq!(
            parse_active_window("_NET_ACTIVE_WINDOW(WINDOW): window id # 0x0\n"),
            None
        );
        assert_eq!(
            parse_active_window("_NET_ACTIVE_WINDOW:  not found.\n"),
            None
        );
        assert_eq!(
            parse_wm_state_fullscreen(
                "_NET_WM_STATE(ATOM) = _NET_WM_STATE_FULLSCREEN, _NET_WM_STATE_FOCUSED\n"
            ),
            Some(true)
        );
        assert_eq!(
            parse_wm_state_fullscreen("_NET_WM_STATE(ATOM) = _NET_WM_STATE_FOCUSED\n"),
            Some(false)
        );
        assert_eq!(
            parse_wm_state_fullscreen("_NET_WM_STATE:  not found.\n"),
            None
        );
    }

    #[test]
    fn ioreg_idle_nanoseconds() {
        let text = "    | |   \"HIDIdleTime\" = 2250183583\n    | |   \"HIDParameters\" = {}\n";
        assert_eq!(
            parse_ioreg_idle(text),
            Some(Duration::from_nanos(2_250_183_583))
        );
        assert_eq!(parse_ioreg_idle(""), None);
    }

    #[test]
    fn windows_notification_states() {
        assert_eq!(windows_notification_state_busy(4), Some(true));
        assert_eq!(windows_notification_state_busy(5), Some(false));
        assert_eq!(windows_notification_state_busy(42), None);
    }

    #[test]
    fn xprintidle_milliseconds() {
        assert_eq!(
            parse_xprintidle("8123\n"),
            Some(Duration::from_millis(8123))
        );
        assert_eq!(parse_xprintidle("couldn't open display"), None);
    }

    /// A recorded GNOME session in a full-screen presentation, replayed through the host
    /// door: the same probes, answered from the recording.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_replayed_presentation_is_full_screen_and_not_away() {
        use tandem_checks::bundle::RecordedCommand;
        use tandem_checks::{Bundle, CmdOutput, ReplayHost};

        let ok = |stdout: &str| {
            Ok(CmdOutput {
                exit_code: Some(0),
                stdout: stdout.to_owned(),
                stderr: String::new(),
            })
        };
        let cmd = |program: &str, args: &[&str], result| RecordedCommand {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            result,
        };
        let dbus = |dest: &str, path: &str, method: &str| {
            vec![
                "--session".to_owned(),
                "--print-reply".to_owned(),
                "--reply-timeout=2000".to_owned(),
                format!("--dest={dest}"),
                path.to_owned(),
                method.to_owned(),
            ]
        };
        let mutter = dbus(
            "org.gnome.Mutter.IdleMonitor",
            "/org/gnome/Mutter/IdleMonitor/Core",
            "org.gnome.Mutter.IdleMonitor.GetIdletime",
        );
        let saver = dbus(
            "org.gnome.ScreenSaver",
            "/org/gnome/ScreenSaver",
            "org.gnome.ScreenSaver.GetActive",
        );
        let bundle = Bundle {
            format: tandem_checks::bundle::BUNDLE_FORMAT.into(),
            recorded_at: chrono::Utc::now(),
            agent_version: "test".into(),
            os: tandem_checks::OsFacts::default(),
            context: None,
            commands: vec![
                RecordedCommand {
                    program: "/usr/bin/dbus-send".into(),
                    args: mutter,
                    result: ok("method return time=1 sender=:1.2 -> destination=:1.9 serial=5 reply_serial=2\n   uint64 4200\n"),
                },
                RecordedCommand {
                    program: "/usr/bin/dbus-send".into(),
                    args: saver,
                    result: ok("method return time=1 sender=:1.2 -> destination=:1.9 serial=6 reply_serial=2\n   boolean false\n"),
                },
                cmd(
                    "/usr/bin/gsettings",
                    &["get", "org.gnome.desktop.notifications", "show-banners"],
                    ok("true\n"),
                ),
                cmd(
                    "/usr/bin/xprop",
                    &["-root", "_NET_ACTIVE_WINDOW"],
                    ok("_NET_ACTIVE_WINDOW(WINDOW): window id # 0x3a00007\n"),
                ),
                cmd(
                    "/usr/bin/xprop",
                    &["-id", "0x3a00007", "_NET_WM_STATE"],
                    ok("_NET_WM_STATE(ATOM) = _NET_WM_STATE_FULLSCREEN, _NET_WM_STATE_FOCUSED\n"),
                ),
            ],
            files: vec![],
            dirs: vec![],
            dbus: vec![],
        };
        let signals = current(&ReplayHost::new(bundle)).await;
        assert_eq!(
            signals,
            Signals {
                idle: Some(Duration::from_millis(4200)),
                locked: Some(false),
                do_not_disturb: Some(false),
                fullscreen: Some(true),
            }
        );
        let ctx = signals.to_context();
        assert!(ctx.fullscreen && !ctx.away && !ctx.do_not_disturb);
    }

    #[test]
    fn away_when_idle_or_locked() {
        let s = Signals {
            idle: Some(Duration::from_secs(600)),
            ..Signals::default()
        };
        assert!(s.to_context().away);
        let s = Signals {
            locked: Some(true),
            idle: Some(Duration::ZERO),
            ..Signals::default()
        };
        assert!(s.to_context().away);
        assert!(!Signals::default().to_context().away);
    }
}
