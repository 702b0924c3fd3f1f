//! macOS: the Application Firewall's global state.
//!
//! `socketfilterfw --getglobalstate` prints `Firewall is enabled. (State = 1)` (2 = block
//! all incoming connections, 0 = off). When it answers with anything else (on managed Macs it
//! can print `Firewall settings cannot be modified from command line on managed Mac
//! computers.`), `system_profiler -json SPFirewallDataType` is asked instead: on macOS 15 the
//! old `com.apple.alf` preference file is gone and that report is the supported reader. Its
//! JSON form is used because the text form is translated into the user's language, while
//! the JSON values are Apple's fixed keys: `spfirewall_globalstate_allow_all` (off),
//! `spfirewall_globalstate_limit_connections`, `spfirewall_globalstate_block_all`.

use serde_json::json;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const SOCKETFILTERFW: &str = "/usr/libexec/ApplicationFirewall/socketfilterfw";
pub const SYSTEM_PROFILER: &str = "/usr/sbin/system_profiler";

pub fn globalstate_cmd() -> Cmd {
    Cmd::new(SOCKETFILTERFW, &["--getglobalstate"])
}
pub fn profiler_cmd() -> Cmd {
    Cmd::new(SYSTEM_PROFILER, &["-json", "SPFirewallDataType"])
}

#[derive(Debug, Clone)]
pub struct MacProbe {
    pub globalstate: Result<CmdOutput, HostError>,
    /// Read only when `globalstate` gave no answer.
    pub profiler: Option<Result<CmdOutput, HostError>>,
}

/// The firewall state from `socketfilterfw --getglobalstate`: `Some(0|1|2)`.
pub fn parse_globalstate(stdout: &str) -> Option<u8> {
    let line = stdout.lines().find(|l| l.contains("Firewall is"))?;
    if let Some(rest) = line.split("State = ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u8>() {
            return Some(n);
        }
    }
    if line.contains("Firewall is enabled") || line.contains("Firewall is blocking") {
        Some(1)
    } else if line.contains("Firewall is disabled") {
        Some(0)
    } else {
        None
    }
}

/// The global state from `system_profiler -json SPFirewallDataType`: `Some((on, key))`.
pub fn parse_profiler(stdout: &str) -> Option<(bool, String)> {
    let doc: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
    let item = doc.get("SPFirewallDataType")?.as_array()?.first()?;
    let state = item.get("spfirewall_globalstate")?.as_str()?.to_owned();
    match state.as_str() {
        "spfirewall_globalstate_allow_all" => Some((false, state)),
        "spfirewall_globalstate_limit_connections" | "spfirewall_globalstate_block_all" => {
            Some((true, state))
        }
        _ => None,
    }
}

pub async fn probe(host: &dyn Host) -> MacProbe {
    let globalstate = host.run(&globalstate_cmd()).await;
    let answered = matches!(&globalstate, Ok(o) if o.exit_code == Some(0) && parse_globalstate(&o.stdout).is_some());
    let profiler = if answered {
        None
    } else {
        Some(host.run(&profiler_cmd()).await)
    };
    MacProbe {
        globalstate,
        profiler,
    }
}

fn verdict(
    on: bool,
    how: String,
    evidence: Vec<tandem_proto::check::Evidence>,
    source: &str,
) -> Outcome {
    Outcome {
        status: if on { Status::Pass } else { Status::Fail },
        summary: if on {
            format!("The firewall is on ({how})")
        } else {
            format!("The firewall is off ({how})")
        },
        reason: None,
        details: json!({"source": source, "enabled": on, "mode": how}),
        evidence,
        remediation: if on {
            Default::default()
        } else {
            super::remediation("macos")
        },
        default_owner: Owner::It,
    }
}

/// Judges a macOS probe. Pure.
pub fn evaluate(p: &MacProbe) -> Outcome {
    let mut evidence = Vec::new();
    let mut reasons = Vec::new();
    match &p.globalstate {
        Ok(out) => {
            evidence.push(cmd_evidence(&globalstate_cmd(), out));
            match (out.exit_code, parse_globalstate(&out.stdout)) {
                (Some(0), Some(state)) => {
                    let how = match state {
                        0 => "State = 0".to_owned(),
                        2 => "blocking all incoming connections".to_owned(),
                        n => format!("State = {n}"),
                    };
                    return verdict(state != 0, how, evidence, "socketfilterfw");
                }
                (Some(0), None) => reasons.push("socketfilterfw printed no state".to_owned()),
                _ => reasons.push(exit_text("socketfilterfw", out)),
            }
        }
        Err(e) => reasons.push(e.to_string()),
    }
    match &p.profiler {
        Some(Ok(out)) => {
            evidence.push(cmd_evidence(&profiler_cmd(), out));
            match (out.exit_code, parse_profiler(&out.stdout)) {
                (Some(0), Some((on, key))) => {
                    let how = match key.as_str() {
                        "spfirewall_globalstate_block_all" => "blocking all incoming connections",
                        "spfirewall_globalstate_limit_connections" => {
                            "limiting incoming connections to chosen apps"
                        }
                        _ => "allowing all incoming connections",
                    };
                    return verdict(on, how.to_owned(), evidence, "system_profiler");
                }
                (Some(0), None) => reasons.push("system_profiler printed no firewall state".into()),
                _ => reasons.push(exit_text("system_profiler", out)),
            }
        }
        Some(Err(e)) => reasons.push(e.to_string()),
        None => {}
    }
    let mut o = Outcome::unknown(reasons.join("; "));
    o.evidence = evidence;
    o.default_owner = Owner::It;
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globalstate_forms() {
        assert_eq!(
            parse_globalstate("Firewall is enabled. (State = 1)\n"),
            Some(1)
        );
        assert_eq!(
            parse_globalstate(
                "Firewall is blocking all non-essential incoming connections. (State = 2)"
            ),
            Some(2)
        );
        assert_eq!(
            parse_globalstate("Firewall is disabled. (State = 0)"),
            Some(0)
        );
        assert_eq!(parse_globalstate("Must be root to change settings."), None);
    }
}
