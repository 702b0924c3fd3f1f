//! `screen_lock`: does the screen lock by itself when the user walks away, soon enough?
//!
//! # Platform behaviour
//! - Linux ([`linux`]): GNOME through `gsettings` as the user, KDE Plasma through
//!   `kscreenlockerrc`; no supported desktop installed → `unknown`.
//! - macOS ([`macos`]): `sysadminctl -screenLock status`, the screen saver's `idleTime` and
//!   `pmset` display sleep.
//! - Windows ([`windows`]): the secure screen saver and the machine inactivity limit from
//!   the registry.
//!
//! Judgement against the policy's `max_idle_minutes`, the time from the last input to the
//! lock (idle delay plus lock delay): never locking fails; locking, but later than the
//! maximum, warns — the control exists and the user can shorten it in a minute, so it is a
//! reminder rather than a failure. The user's part by default.

pub mod linux;
pub mod macos;
pub mod windows;

use async_trait::async_trait;
use tandem_proto::thresholds;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::checks::os_supported::support::REG_EXE;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

/// The screen-lock check.
///
/// # Platform behaviour
/// Linux: GNOME (`gsettings`, as the user) or KDE Plasma (`kscreenlockerrc`); macOS:
/// `sysadminctl`, screen-saver idle time and display sleep; Windows: secure screen saver and
/// the machine inactivity limit.
pub struct ScreenLock;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[
    linux::GSETTINGS,
    macos::SYSADMINCTL,
    macos::DEFAULTS,
    macos::PMSET,
    REG_EXE,
];

/// When the screen locks after the last input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockTiming {
    After(u64),
    /// Never, and why.
    Never(String),
}

impl LockTiming {
    pub fn seconds(&self) -> Option<u64> {
        match self {
            LockTiming::After(s) => Some(*s),
            LockTiming::Never(_) => None,
        }
    }
}

fn minutes(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds} seconds")
    } else if seconds.is_multiple_of(60) {
        let m = seconds / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{:.1} minutes", seconds as f64 / 60.0)
    }
}

/// The shared judgement: never → fail, later than the maximum → warn, else pass.
/// The status is `tandem_proto::thresholds::screen_lock`, shared with the server's push
/// preview.
pub(crate) fn judge(timing: &LockTiming, max_idle_minutes: u32, platform: &str) -> Outcome {
    let status = thresholds::screen_lock(timing.seconds(), max_idle_minutes);
    let summary = match timing {
        LockTiming::Never(why) => format!("The screen never locks by itself: {why}"),
        LockTiming::After(s) if status == Status::Warn => format!(
            "The screen locks after {} of inactivity; the limit is {max_idle_minutes} minutes",
            minutes(*s)
        ),
        LockTiming::After(s) => format!("The screen locks after {} of inactivity", minutes(*s)),
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: serde_json::Value::Null,
        evidence: Vec::new(),
        remediation: if status == Status::Pass {
            Remediation::default()
        } else {
            remediation(platform, max_idle_minutes)
        },
        default_owner: Owner::User,
    }
}

fn remediation(platform: &str, max: u32) -> Remediation {
    let (steps, target): (Vec<String>, &str) = match platform {
        "linux-gnome" => (
            vec![
                "Open Settings → Privacy → Screen Lock (Settings → Privacy & Security → Screen Lock on newer GNOME).".into(),
                "Turn Automatic Screen Lock on.".into(),
                format!("Set Blank Screen Delay (under Power) and the lock delay so that together they are at most {max} minutes."),
            ],
            "gnome-control-center privacy",
        ),
        "linux-kde" => (
            vec![
                "Open System Settings → Screen Locking.".into(),
                format!("Turn on Lock screen automatically, after at most {max} minutes."),
            ],
            "systemsettings kcm_screenlocker",
        ),
        "macos" => (
            vec![
                "Open System Settings → Lock Screen.".into(),
                "Set Require password after screen saver begins or display is turned off to Immediately.".into(),
                format!("Set Turn display off when inactive (or Start Screen Saver when inactive) to {max} minutes or less."),
            ],
            "x-apple.systempreferences:com.apple.Lock-Screen-Settings.extension",
        ),
        _ => (
            vec![
                "Open Settings → Personalisation → Lock screen → Screen saver.".into(),
                format!("Choose a screen saver, set Wait to {max} minutes or less and tick On resume, display logon screen."),
            ],
            "ms-settings:lockscreen",
        ),
    };
    Remediation {
        steps,
        action: Some(RemediationAction::OpenSettings {
            target: target.into(),
        }),
    }
}

#[async_trait]
impl Check for ScreenLock {
    fn id(&self) -> CheckId {
        CheckId::ScreenLock
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let max = ctx.policy.checks.screen_lock.max_idle_minutes;
        match host.os().family.as_str() {
            "linux" => linux::evaluate(&linux::probe(host).await, max),
            "macos" => macos::evaluate(&macos::probe(host).await, max),
            "windows" => windows::evaluate(&windows::probe(host).await, max),
            other => Outcome::unknown(format!("the screen lock is not read on {other}")),
        }
    }
}
