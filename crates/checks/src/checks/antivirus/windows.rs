//! Windows: antivirus products registered with Security Center, or Microsoft Defender's
//! own status where Security Center does not exist (Windows Server).

use serde_json::json;
use tandem_proto::{Owner, Status};

use super::wsc::{parse_av_products, parse_mp_status, ProductStatus};
use crate::checks::os_supported::support::{cmd_evidence, exit_text, powershell};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub fn products_cmd() -> Cmd {
    powershell(
        "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct | Select-Object displayName, productState | ConvertTo-Json",
    )
}
pub fn defender_cmd() -> Cmd {
    powershell(
        "Get-MpComputerStatus | Select-Object AMServiceEnabled, AntivirusEnabled, RealTimeProtectionEnabled, AntivirusSignatureAge | ConvertTo-Json",
    )
}

#[derive(Debug, Clone)]
pub struct WindowsProbe {
    pub products: Result<CmdOutput, HostError>,
    /// Read only when Security Center gave no list.
    pub defender: Option<Result<CmdOutput, HostError>>,
}

fn products_answered(r: &Result<CmdOutput, HostError>) -> bool {
    matches!(r, Ok(o) if o.exit_code == Some(0) && parse_av_products(&o.stdout).is_some())
}

pub async fn probe(host: &dyn Host) -> WindowsProbe {
    let products = host.run(&products_cmd()).await;
    let defender = if products_answered(&products) {
        None
    } else {
        Some(host.run(&defender_cmd()).await)
    };
    WindowsProbe { products, defender }
}

fn outcome(
    status: Status,
    summary: String,
    details: serde_json::Value,
    evidence: Vec<tandem_proto::check::Evidence>,
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
            super::remediation("windows")
        },
        default_owner: Owner::It,
    }
}

/// Judges a Windows probe. Pure. Any product on with current signatures passes; Windows
/// keeps a passive Defender registered beside a third-party product, so "off" entries
/// next to an active one are normal.
pub fn evaluate(p: &WindowsProbe, max_age_days: u32) -> Outcome {
    let mut evidence = Vec::new();
    let mut reasons = Vec::new();
    match &p.products {
        Ok(out) => {
            evidence.push(cmd_evidence(&products_cmd(), out));
            match (out.exit_code, parse_av_products(&out.stdout)) {
                (Some(0), Some(products)) => {
                    let details = json!({"source": "SecurityCenter2", "products": products});
                    let on: Vec<_> = products
                        .iter()
                        .filter(|p| p.state.status == ProductStatus::On)
                        .collect();
                    if let Some(p) = on.iter().find(|p| p.state.signatures_up_to_date) {
                        return outcome(
                            Status::Pass,
                            format!("{} is on and up to date", p.name),
                            details,
                            evidence,
                        );
                    }
                    if let Some(p) = on.first() {
                        return outcome(
                            Status::Warn,
                            format!(
                                "{} is on, but its virus definitions are out of date",
                                p.name
                            ),
                            details,
                            evidence,
                        );
                    }
                    if let Some(p) = products
                        .iter()
                        .find(|p| p.state.status == ProductStatus::Snoozed)
                    {
                        return outcome(
                            Status::Warn,
                            format!("{} is snoozed (temporarily off)", p.name),
                            details,
                            evidence,
                        );
                    }
                    if let Some(p) = products
                        .iter()
                        .find(|p| p.state.status == ProductStatus::Expired)
                    {
                        return outcome(
                            Status::Fail,
                            format!(
                                "{}'s subscription has expired and it no longer protects this PC",
                                p.name
                            ),
                            details,
                            evidence,
                        );
                    }
                    if products.is_empty() {
                        return outcome(
                            Status::Fail,
                            "No antivirus is registered with Windows Security".into(),
                            details,
                            evidence,
                        );
                    }
                    return outcome(
                        Status::Fail,
                        "Antivirus protection is off".into(),
                        details,
                        evidence,
                    );
                }
                (Some(0), None) => {
                    reasons.push("Security Center printed no product list".to_owned())
                }
                _ => reasons.push(exit_text("powershell", out)),
            }
        }
        Err(e) => reasons.push(e.to_string()),
    }
    match &p.defender {
        Some(Ok(out)) => {
            evidence.push(cmd_evidence(&defender_cmd(), out));
            match (out.exit_code, parse_mp_status(&out.stdout)) {
                (Some(0), Some(s)) => {
                    let details = json!({"source": "Get-MpComputerStatus", "defender": s, "security_center": reasons});
                    if !(s.service_enabled && s.antivirus_enabled && s.real_time) {
                        return outcome(
                            Status::Fail,
                            "Microsoft Defender Antivirus is off".into(),
                            details,
                            evidence,
                        );
                    }
                    return match s.signature_age_days {
                        Some(a) if a > u64::from(max_age_days) => outcome(
                            Status::Warn,
                            format!("Microsoft Defender's definitions are {a} days old"),
                            details,
                            evidence,
                        ),
                        _ => outcome(
                            Status::Pass,
                            "Microsoft Defender Antivirus is on and up to date".into(),
                            details,
                            evidence,
                        ),
                    };
                }
                (Some(0), None) => reasons.push("Get-MpComputerStatus printed no status".into()),
                _ => reasons.push(exit_text("powershell", out)),
            }
        }
        Some(Err(e)) => reasons.push(e.to_string()),
        None => {}
    }
    Outcome {
        evidence,
        default_owner: Owner::It,
        ..Outcome::unknown(reasons.join("; "))
    }
}
