//! The Linux firewall probe and its judgement: ufw, then firewalld, then the nftables
//! ruleset itself.
//!
//! ufw and firewalld answer without root (`/etc/ufw/ufw.conf` is world-readable,
//! `firewall-cmd --state` asks the daemon). The ruleset is the ground truth but needs root
//! or `CAP_NET_ADMIN`; when it cannot be read, a firewall manager that is installed and off,
//! with no service that loads hand-written rules at boot (`nftables`,
//! `netfilter-persistent`), is taken as "no firewall", and anything less certain is
//! `unknown`.

use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{Owner, Status};

use super::nft::{parse_ruleset, NftSummary};
use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const UFW_CONF: &str = "/etc/ufw/ufw.conf";
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";
pub const FIREWALL_CMD: &str = "/usr/bin/firewall-cmd";
pub const NFT: &str = "/usr/sbin/nft";

/// Services that load hand-written rules at boot.
const RULE_SERVICES: &[&str] = &["nftables", "netfilter-persistent"];

pub fn ufw_unit_cmd() -> Cmd {
    Cmd::new(SYSTEMCTL, &["is-active", "ufw"])
}
pub fn firewalld_cmd() -> Cmd {
    Cmd::new(FIREWALL_CMD, &["--state"])
}
pub fn nft_cmd() -> Cmd {
    Cmd::new(NFT, &["-j", "list", "ruleset"])
}
pub fn rule_services_cmd() -> Cmd {
    let mut args = vec!["is-active"];
    args.extend_from_slice(RULE_SERVICES);
    Cmd::new(SYSTEMCTL, &args)
}

/// What the Linux probe read. Later sources are read only when earlier ones did not
/// already find a firewall on, so absent entries are `None`.
#[derive(Debug, Clone)]
pub struct LinuxProbe {
    pub ufw_conf: Result<String, HostError>,
    pub ufw_unit: Option<Result<CmdOutput, HostError>>,
    pub firewalld: Option<Result<CmdOutput, HostError>>,
    pub nft: Option<Result<CmdOutput, HostError>>,
    pub rule_services: Option<Result<CmdOutput, HostError>>,
}

/// `ENABLED=yes|no` from `/etc/ufw/ufw.conf`; `None` when the line is missing.
pub fn parse_ufw_conf(text: &str) -> Option<bool> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k.trim() == "ENABLED").then(|| {
            v.trim()
                .trim_matches(['"', '\''])
                .eq_ignore_ascii_case("yes")
        })
    })
}

/// `systemctl is-active UNIT…` prints one state per unit, in order. `None` when systemctl
/// could not answer (no systemd, no bus).
pub fn parse_is_active(out: &CmdOutput, units: usize) -> Option<Vec<String>> {
    let states: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let known = [
        "active",
        "inactive",
        "failed",
        "activating",
        "deactivating",
        "reloading",
        "unknown",
        "maintenance",
        "refreshing",
    ];
    (states.len() == units && states.iter().all(|s| known.contains(&s.as_str()))).then_some(states)
}

/// One source's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    On,
    Off,
    NotInstalled,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReading {
    pub source: &'static str,
    pub state: SourceState,
    pub detail: String,
}

pub async fn probe(host: &dyn Host) -> LinuxProbe {
    let ufw_conf = host
        .read_file(UFW_CONF)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut p = LinuxProbe {
        ufw_conf,
        ufw_unit: None,
        firewalld: None,
        nft: None,
        rule_services: None,
    };
    if p.ufw_conf.as_deref().ok().and_then(parse_ufw_conf) == Some(true) {
        p.ufw_unit = Some(host.run(&ufw_unit_cmd()).await);
    }
    if readings_so_far(&p)
        .iter()
        .any(|r| r.state == SourceState::On)
    {
        return p;
    }
    p.firewalld = Some(host.run(&firewalld_cmd()).await);
    if readings_so_far(&p)
        .iter()
        .any(|r| r.state == SourceState::On)
    {
        return p;
    }
    p.nft = Some(host.run(&nft_cmd()).await);
    let (nft_reading, _) = nft_reading(p.nft.as_ref());
    if nft_reading.state == SourceState::Unknown {
        p.rule_services = Some(host.run(&rule_services_cmd()).await);
    }
    p
}

fn ufw_reading(p: &LinuxProbe) -> SourceReading {
    let r = |state, detail: String| SourceReading {
        source: "ufw",
        state,
        detail,
    };
    match &p.ufw_conf {
        Err(HostError::NotFound { .. }) => r(
            SourceState::NotInstalled,
            format!("{UFW_CONF} does not exist"),
        ),
        Err(e) => r(SourceState::Unknown, e.to_string()),
        Ok(text) => match parse_ufw_conf(text) {
            None => r(
                SourceState::Unknown,
                format!("{UFW_CONF} has no ENABLED line"),
            ),
            Some(false) => r(SourceState::Off, "ufw is disabled (ENABLED=no)".into()),
            Some(true) => match &p.ufw_unit {
                Some(Ok(out)) => match parse_is_active(out, 1).as_deref() {
                    Some([s]) if s == "active" => r(
                        SourceState::On,
                        "ufw is enabled and its service is active".into(),
                    ),
                    Some([s]) => r(
                        SourceState::Off,
                        format!("ufw is enabled in ufw.conf but its service is {s}"),
                    ),
                    // Without systemd (containers, other inits) ENABLED=yes is what ufw's boot
                    // script reads: the best answer there is.
                    _ => r(
                        SourceState::On,
                        "ufw is enabled (ENABLED=yes); its service state could not be read".into(),
                    ),
                },
                _ => r(
                    SourceState::On,
                    "ufw is enabled (ENABLED=yes); its service state was not read".into(),
                ),
            },
        },
    }
}

fn firewalld_reading(p: &LinuxProbe) -> Option<SourceReading> {
    let r = |state, detail: String| SourceReading {
        source: "firewalld",
        state,
        detail,
    };
    Some(match p.firewalld.as_ref()? {
        Err(HostError::NotFound { .. }) => r(
            SourceState::NotInstalled,
            "firewall-cmd is not installed".into(),
        ),
        Err(e) => r(SourceState::Unknown, e.to_string()),
        Ok(out) => match out.exit_code {
            Some(0) => r(SourceState::On, "firewalld is running".into()),
            // firewall-cmd reports "not running" through exit code 252: a real answer.
            Some(252) => r(SourceState::Off, "firewalld is not running".into()),
            _ => r(SourceState::Unknown, exit_text("firewall-cmd", out)),
        },
    })
}

fn nft_reading(nft: Option<&Result<CmdOutput, HostError>>) -> (SourceReading, Option<NftSummary>) {
    let r = |state, detail: String| SourceReading {
        source: "nftables",
        state,
        detail,
    };
    match nft {
        None => (r(SourceState::Unknown, "not read".into()), None),
        Some(Err(HostError::NotFound { .. })) => (
            r(SourceState::NotInstalled, "nft is not installed".into()),
            None,
        ),
        Some(Err(e)) => (r(SourceState::Unknown, e.to_string()), None),
        Some(Ok(out)) if out.exit_code != Some(0) => {
            if out.stderr.contains("Operation not permitted") || out.stderr.contains("must be root")
            {
                (
                    r(
                        SourceState::Unknown,
                        "reading the nftables ruleset needs root".into(),
                    ),
                    None,
                )
            } else {
                (r(SourceState::Unknown, exit_text("nft", out)), None)
            }
        }
        Some(Ok(out)) => match parse_ruleset(&out.stdout) {
            Err(e) => (r(SourceState::Unknown, e.to_string()), None),
            Ok(s) if s.filters_input => (
                r(
                    SourceState::On,
                    "the nftables ruleset filters incoming traffic".into(),
                ),
                Some(s),
            ),
            Ok(s) if s.tables == 0 => (
                r(SourceState::Off, "the nftables ruleset is empty".into()),
                Some(s),
            ),
            Ok(s) => (
                r(
                    SourceState::Off,
                    "the nftables ruleset has rules, but none filter incoming traffic".into(),
                ),
                Some(s),
            ),
        },
    }
}

fn readings_so_far(p: &LinuxProbe) -> Vec<SourceReading> {
    let mut v = vec![ufw_reading(p)];
    v.extend(firewalld_reading(p));
    v
}

/// Judges a Linux probe. Pure.
pub fn evaluate(p: &LinuxProbe) -> Outcome {
    let mut readings = readings_so_far(p);
    let mut summary_nft = None;
    if p.nft.is_some() {
        let (r, s) = nft_reading(p.nft.as_ref());
        readings.push(r);
        summary_nft = s;
    }
    let active_rule_services: Vec<&str> = match &p.rule_services {
        Some(Ok(out)) => parse_is_active(out, RULE_SERVICES.len())
            .map(|states| {
                RULE_SERVICES
                    .iter()
                    .zip(states)
                    .filter(|(_, s)| s == "active")
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut evidence = Vec::new();
    if let Ok(text) = &p.ufw_conf {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("ENABLED"))
            .unwrap_or("");
        evidence.push(Evidence {
            source: UFW_CONF.into(),
            excerpt: line.trim().to_owned(),
        });
    }
    for (cmd, out) in [
        (ufw_unit_cmd(), &p.ufw_unit),
        (firewalld_cmd(), &p.firewalld),
        (nft_cmd(), &p.nft),
        (rule_services_cmd(), &p.rule_services),
    ] {
        if let Some(Ok(out)) = out {
            // The ruleset is one long JSON line: its summary says more in less space.
            let summarised = (cmd.program == NFT)
                .then_some(summary_nft.as_ref())
                .flatten()
                .map(|s| Evidence {
                    source: cmd.display(),
                    excerpt: format!(
                        "{} table(s), {} rule(s); input chains: {}",
                        s.tables,
                        s.rules,
                        if s.input_chains.is_empty() {
                            "none".to_owned()
                        } else {
                            s.input_chains.join(", ")
                        }
                    ),
                });
            evidence.push(summarised.unwrap_or_else(|| cmd_evidence(&cmd, out)));
        }
    }
    let details = json!({
        "sources": readings,
        "nftables": summary_nft,
        "active_rule_services": active_rule_services,
    });
    let make = |status: Status, summary: String, reason: Option<String>| Outcome {
        status,
        summary,
        reason,
        details: details.clone(),
        evidence: evidence.clone(),
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("linux")
        },
        default_owner: Owner::It,
    };
    if let Some(on) = readings.iter().find(|r| r.state == SourceState::On) {
        return make(
            Status::Pass,
            format!("The firewall is on ({})", on.detail),
            None,
        );
    }
    let nft_off = readings
        .iter()
        .find(|r| r.source == "nftables" && r.state == SourceState::Off);
    if let Some(r) = nft_off {
        return make(
            Status::Fail,
            format!(
                "No firewall is filtering incoming connections: {}",
                r.detail
            ),
            None,
        );
    }
    let managers_off: Vec<&SourceReading> = readings
        .iter()
        .filter(|r| r.source != "nftables" && r.state == SourceState::Off)
        .collect();
    let nft_unknown = readings
        .iter()
        .any(|r| r.source == "nftables" && r.state == SourceState::Unknown);
    let nft_absent = readings
        .iter()
        .any(|r| r.source == "nftables" && r.state == SourceState::NotInstalled);
    if !managers_off.is_empty() && active_rule_services.is_empty() && (nft_unknown || nft_absent) {
        let what = managers_off
            .iter()
            .map(|r| r.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return make(
            Status::Fail,
            format!(
                "The firewall is off: {what}, and no service loads other firewall rules at boot"
            ),
            None,
        );
    }
    let why = readings
        .iter()
        .filter(|r| r.state != SourceState::NotInstalled || r.source == "nftables")
        .map(|r| format!("{}: {}", r.source, r.detail))
        .chain(
            active_rule_services
                .iter()
                .map(|s| format!("the {s} service is active, but its rules could not be read")),
        )
        .collect::<Vec<_>>()
        .join("; ");
    let mut o = Outcome::unknown(format!(
        "no firewall manager is on and the ruleset could not be read ({why})"
    ));
    o.details = details;
    o.evidence = evidence;
    o.default_owner = Owner::It;
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufw_conf_values() {
        assert_eq!(
            parse_ufw_conf("# comment\nENABLED=yes\nLOGLEVEL=low\n"),
            Some(true)
        );
        assert_eq!(parse_ufw_conf("ENABLED=no"), Some(false));
        assert_eq!(parse_ufw_conf("LOGLEVEL=low"), None);
    }

    #[test]
    fn is_active_needs_one_state_per_unit() {
        let out = |s: &str| CmdOutput {
            exit_code: Some(3),
            stdout: s.into(),
            stderr: String::new(),
        };
        assert_eq!(
            parse_is_active(&out("inactive\nactive\n"), 2).unwrap(),
            ["inactive", "active"]
        );
        assert!(parse_is_active(&out(""), 1).is_none());
        assert!(parse_is_active(&out("System has not been booted with systemd"), 1).is_none());
    }
}
