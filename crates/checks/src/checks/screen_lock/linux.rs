//! Linux: GNOME through `gsettings` (run as the user, so it reads the user's dconf
//! database), KDE Plasma through `kscreenlockerrc`.
//!
//! Which desktop is installed is read from its shell's binary (`/usr/bin/gnome-shell`,
//! `/usr/bin/plasmashell`); the agent cannot see which one the user logged into, so when
//! both are installed both are judged and the worse result stands. With neither, the answer
//! is `unknown`: a headless machine has no screen to lock, and other desktops are not read
//! yet.
//!
//! GNOME locks `lock-delay` seconds after the screen blanks, and blanks after `idle-delay`
//! seconds (0 = never). KDE locks after `[Daemon] Timeout` minutes (default 5) plus
//! `LockGrace` seconds (default 5) when `Autolock` is on (default).

use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;

use super::{judge, LockTiming};
use crate::checks::os_supported::support::{excerpt, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const GSETTINGS: &str = "/usr/bin/gsettings";
pub const GNOME_SHELL: &str = "/usr/bin/gnome-shell";
pub const PLASMASHELL: &str = "/usr/bin/plasmashell";
pub const KDE_SYSTEM_RC: &str = "/etc/xdg/kscreenlockerrc";

/// The four GNOME keys read: (schema, key).
pub const GNOME_KEYS: [(&str, &str); 4] = [
    ("org.gnome.desktop.screensaver", "lock-enabled"),
    ("org.gnome.desktop.session", "idle-delay"),
    ("org.gnome.desktop.screensaver", "lock-delay"),
    ("org.gnome.desktop.lockdown", "disable-lock-screen"),
];

pub fn gsettings_cmd(schema: &str, key: &str) -> Cmd {
    Cmd::new(GSETTINGS, &["get", schema, key])
}

/// The answers to [`GNOME_KEYS`], in order.
#[derive(Debug, Clone)]
pub struct GnomeProbe {
    pub answers: Vec<Result<CmdOutput, HostError>>,
}

#[derive(Debug, Clone)]
pub struct KdeProbe {
    pub user_rc: Result<String, HostError>,
    pub system_rc: Result<String, HostError>,
}

#[derive(Debug, Clone)]
pub struct LinuxProbe {
    pub gnome: Option<GnomeProbe>,
    pub kde: Option<KdeProbe>,
}

/// A GVariant as `gsettings get` prints it: `true`, `uint32 300`, `0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GValue {
    Bool(bool),
    Uint(u64),
}

pub fn parse_gvariant(stdout: &str) -> Option<GValue> {
    let t = stdout.trim();
    match t {
        "true" => return Some(GValue::Bool(true)),
        "false" => return Some(GValue::Bool(false)),
        _ => {}
    }
    let n = t
        .strip_prefix("uint32 ")
        .or_else(|| t.strip_prefix("uint64 "))
        .unwrap_or(t);
    n.trim().parse().ok().map(GValue::Uint)
}

/// `(autolock, timeout minutes, grace seconds)`, each `None` when not set.
pub type KdeSettings = (Option<bool>, Option<u64>, Option<u64>);

/// KDE settings from `kscreenlockerrc` text (INI, section `[Daemon]`).
pub fn parse_kscreenlockerrc(text: &str) -> KdeSettings {
    let (mut autolock, mut timeout, mut grace) = (None, None, None);
    let mut in_daemon = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_daemon = line == "[Daemon]";
            continue;
        }
        if !in_daemon {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        // KDE keys may carry a locale or `[$i]` (immutable) suffix.
        let k = k.split('[').next().unwrap_or(k).trim();
        let v = v.trim();
        match k {
            "Autolock" => autolock = Some(v.eq_ignore_ascii_case("true")),
            "Timeout" => timeout = v.parse().ok(),
            "LockGrace" => grace = v.parse().ok(),
            _ => {}
        }
    }
    (autolock, timeout, grace)
}

pub async fn probe_gnome(host: &dyn Host) -> GnomeProbe {
    let runs = GNOME_KEYS
        .iter()
        .map(|(s, k)| async move { host.run(&gsettings_cmd(s, k)).await });
    GnomeProbe {
        answers: futures_util::future::join_all(runs).await,
    }
}

pub async fn probe(host: &dyn Host) -> LinuxProbe {
    let gnome = if host.modified(GNOME_SHELL).await.is_ok() {
        Some(probe_gnome(host).await)
    } else {
        None
    };
    let kde = if host.modified(PLASMASHELL).await.is_ok() {
        let home = host.os().home.clone().unwrap_or_default();
        let user_rc = host
            .read_file(&format!("{home}/.config/kscreenlockerrc"))
            .await;
        let system_rc = host.read_file(KDE_SYSTEM_RC).await;
        let text =
            |r: Result<Vec<u8>, HostError>| r.map(|b| String::from_utf8_lossy(&b).into_owned());
        Some(KdeProbe {
            user_rc: text(user_rc),
            system_rc: text(system_rc),
        })
    } else {
        None
    };
    LinuxProbe { gnome, kde }
}

#[derive(Debug, Clone, Serialize)]
struct GnomeSettings {
    lock_enabled: bool,
    idle_delay_s: u64,
    lock_delay_s: u64,
    disable_lock_screen: bool,
}

/// Judges GNOME's settings against the policy maximum. Pure.
pub fn evaluate_gnome(p: &GnomeProbe, max_idle_minutes: u32) -> Outcome {
    let mut evidence = Vec::new();
    let mut values = Vec::new();
    for (i, (schema, key)) in GNOME_KEYS.iter().enumerate() {
        let cmd = gsettings_cmd(schema, key);
        let unknown = |reason: String, evidence: Vec<Evidence>| Outcome {
            evidence,
            ..Outcome::unknown(reason)
        };
        let out = match p.answers.get(i) {
            Some(Ok(out)) => out,
            Some(Err(e)) => return unknown(e.to_string(), evidence),
            None => return unknown(format!("{key} was not read"), evidence),
        };
        evidence.push(Evidence {
            source: cmd.display(),
            excerpt: excerpt(if out.exit_code == Some(0) {
                &out.stdout
            } else {
                &out.stderr
            }),
        });
        if out.exit_code != Some(0) {
            return unknown(exit_text("gsettings", out), evidence);
        }
        // Without dconf, GSettings falls back to a memory backend that holds only the
        // schema defaults, not the user's settings.
        if out.stderr.contains("memory") && out.stderr.contains("backend") {
            return unknown(
                "gsettings has no settings backend (dconf): the user's settings cannot be read"
                    .into(),
                evidence,
            );
        }
        match parse_gvariant(&out.stdout) {
            Some(v) => values.push(v),
            None => {
                return unknown(
                    format!(
                        "unexpected gsettings value for {key}: {}",
                        out.stdout.trim()
                    ),
                    evidence,
                )
            }
        }
    }
    let (lock_enabled, idle, lock_delay, disabled) = match values.as_slice() {
        [GValue::Bool(a), GValue::Uint(b), GValue::Uint(c), GValue::Bool(d)] => (*a, *b, *c, *d),
        _ => {
            return Outcome {
                evidence,
                ..Outcome::unknown("gsettings values have unexpected types")
            }
        }
    };
    let settings = GnomeSettings {
        lock_enabled,
        idle_delay_s: idle,
        lock_delay_s: lock_delay,
        disable_lock_screen: disabled,
    };
    let timing = if disabled {
        LockTiming::Never("locking is disabled by the org.gnome.desktop.lockdown policy".into())
    } else if !lock_enabled {
        LockTiming::Never("automatic screen lock is off".into())
    } else if idle == 0 {
        LockTiming::Never(
            "the screen never blanks (blank screen delay is Never), so it never locks".into(),
        )
    } else {
        LockTiming::After(idle.saturating_add(lock_delay))
    };
    let mut o = judge(&timing, max_idle_minutes, "linux-gnome");
    o.details = json!({"desktop": "gnome", "settings": settings, "lock_after_seconds": timing.seconds(), "max_idle_minutes": max_idle_minutes});
    o.evidence = evidence;
    o
}

/// Judges KDE Plasma's settings: the user's file over the system's, defaults for keys in
/// neither. Pure.
pub fn evaluate_kde(p: &KdeProbe, max_idle_minutes: u32) -> Outcome {
    let mut evidence = Vec::new();
    let mut read = |r: &Result<String, HostError>, path: &str| -> Result<KdeSettings, String> {
        match r {
            Ok(text) => {
                evidence.push(Evidence {
                    source: path.to_owned(),
                    excerpt: excerpt(text),
                });
                Ok(parse_kscreenlockerrc(text))
            }
            Err(HostError::NotFound { .. }) => Ok((None, None, None)),
            Err(e) => Err(e.to_string()),
        }
    };
    let user = read(&p.user_rc, "~/.config/kscreenlockerrc");
    let system = read(&p.system_rc, KDE_SYSTEM_RC);
    let (user, system) = match (user, system) {
        (Ok(u), Ok(s)) => (u, s),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome {
                evidence,
                ..Outcome::unknown(e)
            }
        }
    };
    let autolock = user.0.or(system.0).unwrap_or(true);
    let timeout_min = user.1.or(system.1).unwrap_or(5);
    let grace_s = user.2.or(system.2).unwrap_or(5);
    let timing = if !autolock {
        LockTiming::Never("automatic screen lock is off".into())
    } else if timeout_min == 0 {
        LockTiming::Never("the lock timeout is 0 (never)".into())
    } else {
        LockTiming::After(timeout_min.saturating_mul(60).saturating_add(grace_s))
    };
    let mut o = judge(&timing, max_idle_minutes, "linux-kde");
    o.details = json!({"desktop": "kde", "autolock": autolock, "timeout_minutes": timeout_min, "lock_grace_seconds": grace_s, "lock_after_seconds": timing.seconds(), "max_idle_minutes": max_idle_minutes});
    o.evidence = evidence;
    o
}

/// Judges whichever desktops are installed. Pure.
pub fn evaluate(p: &LinuxProbe, max_idle_minutes: u32) -> Outcome {
    let results: Vec<Outcome> = p
        .gnome
        .iter()
        .map(|g| evaluate_gnome(g, max_idle_minutes))
        .chain(p.kde.iter().map(|k| evaluate_kde(k, max_idle_minutes)))
        .collect();
    // The worst result stands: the user may log into either desktop.
    results
        .into_iter()
        .max_by_key(|o| o.status.rank())
        .unwrap_or_else(|| {
            Outcome::unknown(
                "no desktop whose screen lock Tandem reads (GNOME, KDE Plasma) is installed",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvariants() {
        assert_eq!(parse_gvariant("uint32 300\n"), Some(GValue::Uint(300)));
        assert_eq!(parse_gvariant("true\n"), Some(GValue::Bool(true)));
        assert_eq!(parse_gvariant("'x'"), None);
    }

    #[test]
    fn kde_rc_sections_and_suffixes() {
        let rc =
            "[Greeter]\nTimeout=99\n\n[Daemon]\nAutolock[$i]=false\nTimeout=15\nLockGrace=30\n";
        assert_eq!(parse_kscreenlockerrc(rc), (Some(false), Some(15), Some(30)));
        assert_eq!(parse_kscreenlockerrc(""), (None, None, None));
    }
}
