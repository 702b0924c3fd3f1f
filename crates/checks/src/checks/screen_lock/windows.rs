//! Windows: the user's secure screen saver (`HKCU\Control Panel\Desktop`, overridden by
//! Group Policy under `HKCU\Software\Policies\Microsoft\Windows\Control Panel\Desktop`) and
//! the machine inactivity limit (`InactivityTimeoutSecs` under
//! `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System`), all through
//! `reg.exe query`, as the user.
//!
//! A screen saver locks only when `ScreenSaveActive` is 1, `ScreenSaverIsSecure` is 1, a
//! screen saver is chosen (`SCRNSAVE.EXE`; "(None)" removes the value) and
//! `ScreenSaveTimeOut` is set. Windows also locks when it goes to sleep, which this probe
//! does not read: a machine with neither a locking screen saver nor an inactivity limit is
//! therefore `warn`, with that said, rather than `fail`.

use serde_json::json;
use tandem_proto::Status;

use super::{judge, LockTiming};
use crate::checks::os_supported::reg::{read_reg, RegKey, RegRead};
use crate::checks::os_supported::support::{cmd_evidence, excerpt_matching, reg_query};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const USER_DESKTOP: &str = r"HKCU\Control Panel\Desktop";
pub const POLICY_DESKTOP: &str = r"HKCU\Software\Policies\Microsoft\Windows\Control Panel\Desktop";
pub const SYSTEM_POLICIES: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System";

pub fn user_cmd() -> Cmd {
    reg_query(USER_DESKTOP, None)
}
pub fn policy_cmd() -> Cmd {
    reg_query(POLICY_DESKTOP, None)
}
pub fn inactivity_cmd() -> Cmd {
    reg_query(SYSTEM_POLICIES, Some("InactivityTimeoutSecs"))
}

#[derive(Debug, Clone)]
pub struct WindowsProbe {
    pub user: Result<CmdOutput, HostError>,
    pub policy: Result<CmdOutput, HostError>,
    pub inactivity: Result<CmdOutput, HostError>,
}

pub async fn probe(host: &dyn Host) -> WindowsProbe {
    WindowsProbe {
        user: host.run(&user_cmd()).await,
        policy: host.run(&policy_cmd()).await,
        inactivity: host.run(&inactivity_cmd()).await,
    }
}

fn read(r: &Result<CmdOutput, HostError>) -> RegRead {
    match r {
        Ok(out) => read_reg(out),
        Err(e) => RegRead::Unreadable {
            reason: e.to_string(),
        },
    }
}

/// The screen saver's lock time in seconds, when it locks, from the user's key with the
/// policy key's values on top.
pub fn screensaver_lock_seconds(user: Option<&RegKey>, policy: Option<&RegKey>) -> Option<u64> {
    let get = |name: &str| {
        policy
            .and_then(|k| k.get(name))
            .or_else(|| user.and_then(|k| k.get(name)))
    };
    let active = get("ScreenSaveActive")?.as_u64()? == 1;
    let secure = get("ScreenSaverIsSecure")?.as_u64()? == 1;
    let chosen = get("SCRNSAVE.EXE").is_some_and(|v| !v.data.trim().is_empty());
    let timeout = get("ScreenSaveTimeOut")?.as_u64()?;
    (active && secure && chosen && timeout > 0).then_some(timeout)
}

pub fn evaluate(p: &WindowsProbe, max_idle_minutes: u32) -> Outcome {
    let mut evidence = Vec::new();
    for (cmd, r) in [
        (user_cmd(), &p.user),
        (policy_cmd(), &p.policy),
        (inactivity_cmd(), &p.inactivity),
    ] {
        if let Ok(out) = r {
            // The Desktop key holds dozens of unrelated values; keep the screen saver's.
            let mut e = cmd_evidence(&cmd, out);
            if out.exit_code == Some(0) {
                e.excerpt = excerpt_matching(
                    &out.stdout,
                    &["ScreenSave", "SCRNSAVE", "InactivityTimeoutSecs"],
                );
            }
            evidence.push(e);
        }
    }
    let user = read(&p.user);
    let policy = read(&p.policy);
    let inactivity = read(&p.inactivity);
    // The user's Desktop key always exists; not reading it is "could not tell". A missing
    // policy key or value is normal.
    let user_key = match &user {
        RegRead::Present(k) => k,
        RegRead::Absent => {
            return Outcome {
                evidence,
                ..Outcome::unknown(format!("{USER_DESKTOP} does not exist"))
            }
        }
        RegRead::Unreadable { reason } => {
            return Outcome {
                evidence,
                ..Outcome::unknown(reason.clone())
            }
        }
    };
    let policy_key = match &policy {
        RegRead::Present(k) => Some(k),
        RegRead::Absent => None,
        RegRead::Unreadable { reason } => {
            return Outcome {
                evidence,
                ..Outcome::unknown(reason.clone())
            }
        }
    };
    let inactivity_s = match &inactivity {
        RegRead::Present(k) => k.u64("InactivityTimeoutSecs").filter(|s| *s > 0),
        RegRead::Absent => None,
        RegRead::Unreadable { reason } => {
            return Outcome {
                evidence,
                ..Outcome::unknown(reason.clone())
            }
        }
    };
    let saver_s = screensaver_lock_seconds(Some(user_key), policy_key);
    let timing = match [saver_s, inactivity_s].into_iter().flatten().min() {
        Some(s) => LockTiming::After(s),
        None => LockTiming::Never(
            "no password-protected screen saver and no inactivity limit is set".into(),
        ),
    };
    let mut o = judge(&timing, max_idle_minutes, "windows");
    if o.status == Status::Fail {
        o.status = Status::Warn;
        o.summary = "The screen is not set to lock when idle (it may still lock when the PC sleeps, which Tandem does not read yet)".into();
    }
    o.details = json!({"screensaver_lock_seconds": saver_s, "inactivity_timeout_seconds": inactivity_s, "lock_after_seconds": timing.seconds(), "max_idle_minutes": max_idle_minutes});
    o.evidence = evidence;
    o
}
