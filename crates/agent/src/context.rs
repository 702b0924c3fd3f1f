//! What the user is doing right now — away, in do-not-disturb, full screen or presenting —
//! so that reminders never break into a meeting.
//!
//! The platform part only gathers raw answers; the parsing of what the OS said is in pure
//! functions here, tested on every platform.
//!
//! # Platform behaviour
//! - Linux (GNOME/X11): idle time from Mutter's `IdleMonitor.GetIdletime`, the lock from
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
            utc_offset: Local::now().offset().fix(),
            away: self.locked == Some(true) || self.idle.is_some_and(|i| i >= AWAY_AFTER),
            do_not_disturb: self.do_not_disturb == Some(true),
            fullscreen: self.fullscreen == Some(true),
        }
    }
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

/// Reads the live signals. Never fails: what cannot be read is `None`.
pub async fn current() -> Signals {
    platform::current().await
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    async fn run(program: &str, args: &[&str]) -> Option<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::process::Command::new(program)
                .args(args)
                .env("LC_ALL", "C")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .ok()?
        .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn dbus_call(dest: &str, path: &str, method: &str) -> Option<String> {
        run(
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

    pub async fn current() -> Signals {
        let idle = async {
            dbus_call(
                "org.gnome.Mutter.IdleMonitor",
                "/org/gnome/Mutter/IdleMonitor/Core",
                "org.gnome.Mutter.IdleMonitor.GetIdletime",
            )
            .await
            .as_deref()
            .and_then(parse_dbus_uint64)
            .map(Duration::from_millis)
        };
        let locked = async {
            dbus_call(
                "org.gnome.ScreenSaver",
                "/org/gnome/ScreenSaver",
                "org.gnome.ScreenSaver.GetActive",
            )
            .await
            .as_deref()
            .and_then(parse_dbus_bool)
        };
        let dnd = async {
            run(
                "/usr/bin/gsettings",
                &["get", "org.gnome.desktop.notifications", "show-banners"],
            )
            .await
            .as_deref()
            .and_then(parse_show_banners)
        };
        let fullscreen = async {
            // Without an X display there is no active window to ask about.
            std::env::var_os("DISPLAY")?;
            let active = run("/usr/bin/xprop", &["-root", "_NET_ACTIVE_WINDOW"]).await?;
            let id = parse_active_window(&active)?;
            let state = run("/usr/bin/xprop", &["-id", &id, "_NET_WM_STATE"]).await?;
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

    pub async fn current() -> Signals {
        let out = tokio::process::Command::new("/usr/sbin/ioreg")
            .args(["-c", "IOHIDSystem", "-d", "4"])
            .output()
            .await;
        let idle = out
            .ok()
            .and_then(|o| parse_ioreg_idle(&String::from_utf8_lossy(&o.stdout)));
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

    pub async fn current() -> Signals {
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

    pub async fn current() -> Signals {
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
