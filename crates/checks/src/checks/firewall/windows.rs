//! Windows: Windows Defender Firewall per profile, and third-party firewalls registered with
//! Windows Security Center.
//!
//! `Get-NetFirewallProfile -PolicyStore ActiveStore` gives the state in force (local
//! settings merged with Group Policy), so hand-configured and policy-managed machines are
//! judged alike. `ConvertTo-Json` prints `Enabled` as the number of its `GpoBoolean` enum
//! (0 False, 1 True, 2 NotConfigured); NotConfigured in the active store means the
//! built-in default, which is on. When a profile is off, a third-party firewall that
//! Security Center reports as on (`FirewallProduct.productState`, decoded as for
//! antivirus) counts as a firewall.

use serde::Serialize;
use serde_json::{json, Value};
use tandem_proto::{Owner, Status};

use crate::checks::antivirus::wsc::{decode_product_state, ProductStatus};
use crate::checks::os_supported::support::{cmd_evidence, exit_text, json_items, powershell};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub fn profiles_cmd() -> Cmd {
    powershell("Get-NetFirewallProfile -PolicyStore ActiveStore | Select-Object Name, Enabled | ConvertTo-Json")
}
pub fn products_cmd() -> Cmd {
    powershell(
        "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName FirewallProduct | Select-Object displayName, productState | ConvertTo-Json",
    )
}

#[derive(Debug, Clone)]
pub struct WindowsProbe {
    pub profiles: Result<CmdOutput, HostError>,
    /// Read only when a profile is off.
    pub products: Option<Result<CmdOutput, HostError>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub name: String,
    pub enabled: bool,
}

/// Profiles from `Get-NetFirewallProfile | Select-Object Name, Enabled | ConvertTo-Json`.
pub fn parse_profiles(stdout: &str) -> Option<Vec<Profile>> {
    let items = json_items(stdout)?;
    items
        .iter()
        .map(|item| {
            let name = item.get("Name")?.as_str()?.to_owned();
            let enabled = match item.get("Enabled")? {
                Value::Number(n) => match n.as_u64()? {
                    0 => false,
                    1 | 2 => true,
                    _ => return None,
                },
                Value::Bool(b) => *b,
                Value::String(s) => match s.as_str() {
                    "True" | "NotConfigured" => true,
                    "False" => false,
                    _ => return None,
                },
                _ => return None,
            };
            Some(Profile { name, enabled })
        })
        .collect()
}

/// Third-party firewalls Security Center reports as on: their display names.
pub fn parse_products_on(stdout: &str) -> Option<Vec<String>> {
    let items = json_items(stdout)?;
    Some(
        items
            .iter()
            .filter_map(|i| {
                let name = i.get("displayName")?.as_str()?;
                let state = u32::try_from(i.get("productState")?.as_u64()?).ok()?;
                (decode_product_state(state).status == ProductStatus::On).then(|| name.to_owned())
            })
            .collect(),
    )
}

pub async fn probe(host: &dyn Host) -> WindowsProbe {
    let profiles = host.run(&profiles_cmd()).await;
    let some_off = matches!(&profiles, Ok(o) if parse_profiles(&o.stdout).is_some_and(|p| p.iter().any(|p| !p.enabled)));
    let products = if some_off {
        Some(host.run(&products_cmd()).await)
    } else {
        None
    };
    WindowsProbe { profiles, products }
}

/// Judges a Windows probe. Pure.
pub fn evaluate(p: &WindowsProbe) -> Outcome {
    let out = match &p.profiles {
        Ok(out) => out,
        Err(e) => {
            return Outcome {
                default_owner: Owner::It,
                ..Outcome::unknown(e.to_string())
            }
        }
    };
    let mut evidence = vec![cmd_evidence(&profiles_cmd(), out)];
    let unknown = |reason: String, evidence: Vec<_>| Outcome {
        evidence,
        default_owner: Owner::It,
        ..Outcome::unknown(reason)
    };
    if out.exit_code != Some(0) {
        return unknown(exit_text("powershell", out), evidence);
    }
    let Some(profiles) = parse_profiles(&out.stdout) else {
        return unknown(
            "Get-NetFirewallProfile printed no profiles".into(),
            evidence,
        );
    };
    let expected = ["Domain", "Private", "Public"];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|e| !profiles.iter().any(|p| p.name.eq_ignore_ascii_case(e)))
        .collect();
    if profiles.is_empty() || !missing.is_empty() {
        return unknown(
            format!(
                "Get-NetFirewallProfile did not report the {} profile(s)",
                missing.join(", ")
            ),
            evidence,
        );
    }
    let off: Vec<&str> = profiles
        .iter()
        .filter(|p| !p.enabled)
        .map(|p| p.name.as_str())
        .collect();
    let mut third_party = Vec::new();
    if let Some(Ok(out)) = &p.products {
        evidence.push(cmd_evidence(&products_cmd(), out));
        if out.exit_code == Some(0) {
            third_party = parse_products_on(&out.stdout).unwrap_or_default();
        }
    }
    let details = json!({"profiles": profiles, "third_party_on": third_party});
    let (status, summary) = if off.is_empty() {
        (
            Status::Pass,
            "Windows Defender Firewall is on for the domain, private and public networks"
                .to_owned(),
        )
    } else if !third_party.is_empty() {
        (
            Status::Pass,
            format!(
                "{} is protecting this PC (Windows Defender Firewall is off for {})",
                third_party.join(", "),
                off.join(", ")
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "Windows Defender Firewall is off for {} networks",
                off.join(" and ").to_lowercase()
            ),
        )
    };
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
