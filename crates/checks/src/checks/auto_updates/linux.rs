//! Linux: unattended upgrades on the apt family, dnf-automatic on the dnf family.
//!
//! apt: `apt-config dump` prints the merged configuration, one `Key "value";` per line.
//! `APT::Periodic::Unattended-Upgrade` and `APT::Periodic::Update-Package-Lists` are
//! intervals in days ("1" daily, "0" off, `always` on newer apt); `APT::Periodic::Enable
//! "0"` turns every periodic task off. They only act when the `unattended-upgrades` package
//! is installed and, on systemd, `apt-daily-upgrade.timer` is enabled. `apt-config` honours
//! `APT_CONFIG`, the seam the real tests use to point it at a throwaway configuration.
//!
//! dnf: `/etc/dnf/automatic.conf` `[commands] apply_updates` (default no) with
//! `dnf-automatic.timer` or `dnf5-automatic.timer` enabled, or `dnf-automatic-install.timer`
//! (installs regardless of the file).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, excerpt, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const APT_CONFIG: &str = "/usr/bin/apt-config";
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";
pub const UNATTENDED_UPGRADE: &str = "/usr/bin/unattended-upgrade";
pub const DNF_AUTOMATIC_CONF: &str = "/etc/dnf/automatic.conf";

pub const APT_TIMERS: &[&str] = &["apt-daily.timer", "apt-daily-upgrade.timer"];
pub const DNF_TIMERS: &[&str] = &[
    "dnf-automatic.timer",
    "dnf-automatic-install.timer",
    "dnf5-automatic.timer",
];

pub fn apt_config_cmd() -> Cmd {
    Cmd::new(APT_CONFIG, &["dump"])
}
pub fn is_enabled_cmd(unit: &str) -> Cmd {
    Cmd::new(SYSTEMCTL, &["is-enabled", unit])
}

#[derive(Debug, Clone)]
pub struct AptProbe {
    pub dump: Result<CmdOutput, HostError>,
    pub unattended_installed: bool,
    /// `systemctl is-enabled` for each of [`APT_TIMERS`].
    pub timers: Vec<Result<CmdOutput, HostError>>,
}

#[derive(Debug, Clone)]
pub struct DnfProbe {
    pub conf: Result<String, HostError>,
    /// `systemctl is-enabled` for each of [`DNF_TIMERS`].
    pub timers: Vec<Result<CmdOutput, HostError>>,
}

/// `apt-config dump` as a map from key to value (quotes and `;` removed). Repeated keys
/// (list entries such as `DPkg::Pre-Invoke::`) keep their last value.
pub fn parse_apt_dump(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once(' ')?;
            let v = v.trim().strip_suffix(';')?.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// An `APT::Periodic` interval: on when it is a positive number of days or `always`.
pub fn periodic_on(value: Option<&str>) -> Option<bool> {
    let v = value?.trim();
    if v.eq_ignore_ascii_case("always") {
        return Some(true);
    }
    // apt also accepts intervals with units ("1d", "12h").
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u64>().ok().map(|n| n > 0)
}

/// The state `systemctl is-enabled` printed: `Some(true)` when the unit is started by
/// something, `Some(false)` when disabled, masked or missing, `None` when systemctl could
/// not answer.
pub fn parse_is_enabled(out: &CmdOutput) -> Option<bool> {
    let state = out.stdout.lines().next().unwrap_or("").trim();
    match state {
        "enabled" | "enabled-runtime" | "static" | "indirect" | "generated" | "alias"
        | "linked" | "linked-runtime" => Some(true),
        "disabled" | "masked" | "masked-runtime" | "not-found" | "bad" => Some(false),
        // Older systemd prints nothing on stdout for a missing unit.
        "" if out.stderr.contains("No such file") => Some(false),
        _ => None,
    }
}

/// `apply_updates` from `automatic.conf` (section `[commands]`); `None` when not set.
pub fn parse_dnf_automatic(text: &str) -> Option<bool> {
    let mut in_commands = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_commands = line == "[commands]";
            continue;
        }
        if !in_commands || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "apply_updates" {
                return Some(matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "yes" | "true" | "1" | "on"
                ));
            }
        }
    }
    None
}

async fn timers(host: &dyn Host, units: &[&str]) -> Vec<Result<CmdOutput, HostError>> {
    let runs = units
        .iter()
        .map(|u| async move { host.run(&is_enabled_cmd(u)).await });
    futures_util::future::join_all(runs).await
}

pub async fn probe_apt(host: &dyn Host) -> AptProbe {
    AptProbe {
        dump: host.run(&apt_config_cmd()).await,
        unattended_installed: host.modified(UNATTENDED_UPGRADE).await.is_ok(),
        timers: timers(host, APT_TIMERS).await,
    }
}

pub async fn probe_dnf(host: &dyn Host) -> DnfProbe {
    let conf = host
        .read_file(DNF_AUTOMATIC_CONF)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    DnfProbe {
        conf,
        timers: timers(host, DNF_TIMERS).await,
    }
}

fn timer_states(
    units: &[&str],
    results: &[Result<CmdOutput, HostError>],
    evidence: &mut Vec<Evidence>,
) -> BTreeMap<String, Option<bool>> {
    units
        .iter()
        .zip(results)
        .map(|(u, r)| {
            let state = match r {
                Ok(out) => {
                    evidence.push(cmd_evidence(&is_enabled_cmd(u), out));
                    parse_is_enabled(out)
                }
                Err(_) => None,
            };
            ((*u).to_owned(), state)
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
struct AptSettings {
    periodic_enable: Option<String>,
    unattended_upgrade: Option<String>,
    update_package_lists: Option<String>,
    unattended_upgrades_installed: bool,
    timers: BTreeMap<String, Option<bool>>,
}

fn result(
    status: Status,
    summary: String,
    details: serde_json::Value,
    evidence: Vec<Evidence>,
) -> Outcome {
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("linux")
        },
        default_owner: Owner::User,
    }
}

/// Judges the apt family. Pure.
pub fn evaluate_apt(p: &AptProbe) -> Outcome {
    let out = match &p.dump {
        Ok(o) => o,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    if out.exit_code != Some(0) {
        return Outcome {
            evidence: vec![cmd_evidence(&apt_config_cmd(), out)],
            ..Outcome::unknown(exit_text("apt-config", out))
        };
    }
    let conf = parse_apt_dump(&out.stdout);
    let periodic: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("APT::Periodic"))
        .map(str::to_owned)
        .collect();
    let mut evidence = vec![Evidence {
        source: apt_config_cmd().display(),
        excerpt: excerpt(&periodic.join("\n")),
    }];
    let timers = timer_states(APT_TIMERS, &p.timers, &mut evidence);
    let get = |k: &str| conf.get(k).cloned();
    let settings = AptSettings {
        periodic_enable: get("APT::Periodic::Enable"),
        unattended_upgrade: get("APT::Periodic::Unattended-Upgrade"),
        update_package_lists: get("APT::Periodic::Update-Package-Lists"),
        unattended_upgrades_installed: p.unattended_installed,
        timers: timers.clone(),
    };
    let details = json!({"manager": "apt", "settings": settings});
    let r = |status, summary: &str| {
        result(
            status,
            summary.to_owned(),
            details.clone(),
            evidence.clone(),
        )
    };
    if periodic_on(settings.periodic_enable.as_deref()) == Some(false) {
        return r(
            Status::Fail,
            "Automatic updates are off: APT's periodic tasks are disabled",
        );
    }
    if periodic_on(settings.unattended_upgrade.as_deref()) != Some(true) {
        return r(
            Status::Fail,
            "Updates are not installed automatically (unattended upgrades are off)",
        );
    }
    if !p.unattended_installed {
        return r(Status::Fail, "Unattended upgrades are switched on, but the unattended-upgrades package is not installed");
    }
    if timers.get("apt-daily-upgrade.timer") == Some(&Some(false)) {
        return r(Status::Fail, "Unattended upgrades are configured, but the apt-daily-upgrade timer that runs them is disabled");
    }
    if periodic_on(settings.update_package_lists.as_deref()) != Some(true)
        || timers.get("apt-daily.timer") == Some(&Some(false))
    {
        return r(Status::Warn, "Updates install automatically, but the package lists are not refreshed, so new updates are not found");
    }
    r(
        Status::Pass,
        "Security updates install automatically (unattended upgrades)",
    )
}

/// Judges the dnf family. Pure.
pub fn evaluate_dnf(p: &DnfProbe) -> Outcome {
    let mut evidence = Vec::new();
    let apply = match &p.conf {
        Ok(text) => {
            evidence.push(Evidence {
                source: DNF_AUTOMATIC_CONF.into(),
                excerpt: excerpt(
                    text.lines()
                        .filter(|l| l.contains("apply_updates"))
                        .collect::<Vec<_>>()
                        .join("\n")
                        .as_str(),
                ),
            });
            parse_dnf_automatic(text).unwrap_or(false)
        }
        Err(HostError::NotFound { .. }) => false,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    let timers = timer_states(DNF_TIMERS, &p.timers, &mut evidence);
    let on = |u: &str| timers.get(u) == Some(&Some(true));
    let details = json!({"manager": "dnf", "apply_updates": apply, "timers": timers, "automatic_conf_present": p.conf.is_ok()});
    let r = |status, summary: &str| {
        result(
            status,
            summary.to_owned(),
            details.clone(),
            evidence.clone(),
        )
    };
    if on("dnf-automatic-install.timer")
        || ((on("dnf-automatic.timer") || on("dnf5-automatic.timer")) && apply)
    {
        return r(
            Status::Pass,
            "Updates install automatically (dnf-automatic)",
        );
    }
    if on("dnf-automatic.timer") || on("dnf5-automatic.timer") {
        return r(
            Status::Warn,
            "dnf-automatic runs but only downloads updates (apply_updates is off)",
        );
    }
    if timers.values().all(Option::is_none) {
        return Outcome {
            evidence,
            details,
            ..Outcome::unknown(
                "systemctl could not say whether the dnf-automatic timers are enabled",
            )
        };
    }
    r(
        Status::Fail,
        "Updates are not installed automatically (no dnf-automatic timer is enabled)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_dump_lines() {
        let m = parse_apt_dump(
            "APT \"\";\nAPT::Periodic::Unattended-Upgrade \"1\";\nDPkg::Pre-Invoke:: \"x\";\n",
        );
        assert_eq!(m["APT::Periodic::Unattended-Upgrade"], "1");
        assert_eq!(periodic_on(Some("1")), Some(true));
        assert_eq!(periodic_on(Some("0")), Some(false));
        assert_eq!(periodic_on(Some("always")), Some(true));
        assert_eq!(periodic_on(None), None);
    }

    #[test]
    fn dnf_conf() {
        assert_eq!(
            parse_dnf_automatic("[commands]\n# apply_updates = yes\napply_updates = yes\n"),
            Some(true)
        );
        assert_eq!(
            parse_dnf_automatic("[emitters]\napply_updates = yes\n"),
            None
        );
    }
}
