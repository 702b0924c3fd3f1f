//! macOS: `sysadminctl -screenLock status` (as the user; it answers on **stderr** with a
//! log prefix: `2024-01-12 10:53:32.186 sysadminctl[1234:5678] screenLock delay is
//! immediate`, `… screenLock delay is 300 seconds`, `… screenLock is off`, and on some
//! releases `screenLock delay is -1 seconds` for off), plus when the screen goes idle: the
//! screen saver's `idleTime` (`defaults -currentHost read com.apple.screensaver idleTime`,
//! seconds, 0 = never, missing = not set) and display sleep (`pmset -g` `displaysleep`,
//! minutes, 0 = never). The Mac locks the lock delay after whichever comes first.

use serde_json::json;
use tandem_proto::check::Evidence;

use super::{judge, LockTiming};
use crate::checks::os_supported::support::{excerpt, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const SYSADMINCTL: &str = "/usr/sbin/sysadminctl";
pub const DEFAULTS: &str = "/usr/bin/defaults";
pub const PMSET: &str = "/usr/bin/pmset";

pub fn sysadminctl_cmd() -> Cmd {
    Cmd::new(SYSADMINCTL, &["-screenLock", "status"])
}
pub fn idle_time_cmd() -> Cmd {
    Cmd::new(
        DEFAULTS,
        &["-currentHost", "read", "com.apple.screensaver", "idleTime"],
    )
}
pub fn pmset_cmd() -> Cmd {
    Cmd::new(PMSET, &["-g"])
}

#[derive(Debug, Clone)]
pub struct MacProbe {
    pub sysadminctl: Result<CmdOutput, HostError>,
    pub idle_time: Result<CmdOutput, HostError>,
    pub pmset: Result<CmdOutput, HostError>,
}

/// The lock delay in seconds (`Some(None)` = screen lock off).
pub fn parse_sysadminctl(text: &str) -> Option<Option<u64>> {
    for line in text.lines() {
        if line.contains("screenLock is off") {
            return Some(None);
        }
        if let Some(rest) = line.split("screenLock delay is ").nth(1) {
            let rest = rest.trim();
            if rest.starts_with("immediate") {
                return Some(Some(0));
            }
            if rest.starts_with('-') {
                return Some(None);
            }
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().ok().map(Some);
        }
    }
    None
}

/// `displaysleep N` from `pmset -g`, in minutes.
pub fn parse_pmset_displaysleep(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()? == "displaysleep").then_some(())?;
        words.next()?.parse().ok()
    })
}

pub async fn probe(host: &dyn Host) -> MacProbe {
    MacProbe {
        sysadminctl: host.run(&sysadminctl_cmd()).await,
        idle_time: host.run(&idle_time_cmd()).await,
        pmset: host.run(&pmset_cmd()).await,
    }
}

pub fn evaluate(p: &MacProbe, max_idle_minutes: u32) -> Outcome {
    let mut evidence = Vec::new();
    let out = match &p.sysadminctl {
        Ok(o) => o,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    let text = format!("{}\n{}", out.stderr, out.stdout);
    evidence.push(Evidence {
        source: sysadminctl_cmd().display(),
        excerpt: excerpt(text.trim()),
    });
    let Some(delay) = parse_sysadminctl(&text) else {
        let reason = if out.exit_code == Some(0) {
            "sysadminctl printed no screen lock state".into()
        } else {
            exit_text("sysadminctl", out)
        };
        return Outcome {
            evidence,
            ..Outcome::unknown(reason)
        };
    };
    // idleTime: a missing key (exit 1, "does not exist") means the screen saver was never
    // configured; display sleep then decides.
    let idle_time = match &p.idle_time {
        Ok(o) if o.exit_code == Some(0) => {
            evidence.push(Evidence {
                source: idle_time_cmd().display(),
                excerpt: excerpt(&o.stdout),
            });
            o.stdout.trim().parse::<u64>().ok()
        }
        Ok(o) => {
            evidence.push(Evidence {
                source: idle_time_cmd().display(),
                excerpt: excerpt(&o.stderr),
            });
            None
        }
        Err(_) => None,
    };
    let display_sleep_min = match &p.pmset {
        Ok(o) if o.exit_code == Some(0) => {
            let v = parse_pmset_displaysleep(&o.stdout);
            if let Some(v) = v {
                evidence.push(Evidence {
                    source: pmset_cmd().display(),
                    excerpt: format!("displaysleep {v}"),
                });
            }
            v
        }
        _ => None,
    };
    let timing = match delay {
        None => {
            LockTiming::Never("the password is not required after sleep or the screen saver".into())
        }
        Some(d) => {
            let idle_candidates: Vec<u64> = [idle_time, display_sleep_min.map(|m| m * 60)]
                .into_iter()
                .flatten()
                .filter(|s| *s > 0)
                .collect();
            match idle_candidates.iter().min() {
                Some(idle) => LockTiming::After(idle.saturating_add(d)),
                None if idle_time.is_some() || display_sleep_min.is_some() => LockTiming::Never(
                    "neither the screen saver nor display sleep ever starts".into(),
                ),
                None => {
                    let mut o = Outcome::unknown(
                        "neither the screen-saver delay nor display sleep could be read",
                    );
                    o.evidence = evidence;
                    return o;
                }
            }
        }
    };
    let mut o = judge(&timing, max_idle_minutes, "macos");
    o.details = json!({"lock_delay_seconds": delay, "screensaver_idle_seconds": idle_time, "display_sleep_minutes": display_sleep_min, "lock_after_seconds": timing.seconds(), "max_idle_minutes": max_idle_minutes});
    o.evidence = evidence;
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysadminctl_forms() {
        assert_eq!(
            parse_sysadminctl(
                "2024-01-12 10:53:32.186 sysadminctl[1234:5678] screenLock delay is immediate"
            ),
            Some(Some(0))
        );
        assert_eq!(
            parse_sysadminctl("screenLock delay is 300 seconds"),
            Some(Some(300))
        );
        assert_eq!(parse_sysadminctl("x screenLock is off"), Some(None));
        assert_eq!(
            parse_sysadminctl("screenLock delay is -1.000000 seconds"),
            Some(None)
        );
        assert_eq!(parse_sysadminctl("Usage: sysadminctl"), None);
    }
}
