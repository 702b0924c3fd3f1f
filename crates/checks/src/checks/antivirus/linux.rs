//! Linux: Microsoft Defender for Endpoint (`mdatp health --output json`) when installed,
//! else ClamAV's signature database age (`sigtool --info` on `daily.cld` or `daily.cvd`).
//!
//! Linux has no built-in antivirus. A machine with neither product is reported as `warn`,
//! not `fail` and not `not_applicable`: the OS is not at fault, but IT asked for malware
//! protection (the check is enabled), and whether Linux desktops need it is IT's call —
//! they turn the check off in policy where it does not apply.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const MDATP: &str = "/usr/bin/mdatp";
pub const SIGTOOL: &str = "/usr/bin/sigtool";
pub const CLAMAV_DB: &str = "/var/lib/clamav";

pub fn mdatp_cmd() -> Cmd {
    Cmd::new(MDATP, &["health", "--output", "json"])
}
pub fn sigtool_cmd(path: &str) -> Cmd {
    Cmd::new(SIGTOOL, &["--info", path])
}

#[derive(Debug, Clone)]
pub struct LinuxProbe {
    pub mdatp: Result<CmdOutput, HostError>,
    /// The daily database file chosen and what `sigtool --info` said about it; `None`
    /// when Defender answered or ClamAV has no database directory.
    pub clamav: Option<(String, Result<CmdOutput, HostError>)>,
    pub clamav_dir: Option<Result<Vec<String>, HostError>>,
}

/// The header of a ClamAV database as `sigtool --info` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClamDbInfo {
    pub build_time: DateTime<FixedOffset>,
    pub version: Option<u64>,
}

/// Parses `Build time: 16 Apr 2020 07-58 -0400` (ClamAV writes the time as `%H-%M`; a
/// colon is accepted too) and `Version: 25784`.
pub fn parse_sigtool_info(stdout: &str) -> Option<ClamDbInfo> {
    let mut build_time = None;
    let mut version = None;
    for line in stdout.lines() {
        if let Some(t) = line.strip_prefix("Build time:") {
            let t = t.trim();
            build_time = DateTime::parse_from_str(t, "%d %b %Y %H-%M %z")
                .or_else(|_| DateTime::parse_from_str(t, "%d %b %Y %H:%M %z"))
                .ok();
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = v.trim().parse().ok();
        }
    }
    Some(ClamDbInfo {
        build_time: build_time?,
        version,
    })
}

/// The fields of `mdatp health --output json` this check reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdatpHealth {
    pub healthy: bool,
    pub real_time_protection: Option<bool>,
    /// `definitionsStatus.$type`: `upToDate`, `updating`, `outdated`, …
    pub definitions_status: Option<String>,
    pub definitions_updated: Option<DateTime<Utc>>,
    pub app_version: Option<String>,
}

pub fn parse_mdatp_health(stdout: &str) -> Option<MdatpHealth> {
    let v: Value = serde_json::from_str(stdout.trim()).ok()?;
    let healthy = v.get("healthy")?.as_bool()?;
    // Settings are `{"value": …, "scope": …}` objects in current releases, bare values in
    // older ones.
    let real_time = v
        .get("realTimeProtectionEnabled")
        .and_then(|r| r.get("value").unwrap_or(r).as_bool());
    let definitions_status = v
        .get("definitionsStatus")
        .and_then(|d| {
            d.get("$type")
                .and_then(Value::as_str)
                .or_else(|| d.as_str())
        })
        .map(str::to_owned);
    // Milliseconds since the epoch, as a string or a number.
    let definitions_updated = v
        .get("definitionsUpdated")
        .and_then(|d| {
            d.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| d.as_i64())
        })
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let app_version = v
        .get("appVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(MdatpHealth {
        healthy,
        real_time_protection: real_time,
        definitions_status,
        definitions_updated,
        app_version,
    })
}

pub async fn probe(host: &dyn Host) -> LinuxProbe {
    let mdatp = host.run(&mdatp_cmd()).await;
    if !matches!(mdatp, Err(HostError::NotFound { .. })) {
        return LinuxProbe {
            mdatp,
            clamav: None,
            clamav_dir: None,
        };
    }
    let dir = host.list_dir(CLAMAV_DB).await;
    let clamav = match &dir {
        Ok(names) => {
            // freshclam keeps `daily.cld` (incrementally updated) or `daily.cvd`; the
            // `.cld` is the newer when both exist.
            let file = ["daily.cld", "daily.cvd"]
                .into_iter()
                .find(|f| names.iter().any(|n| n == f));
            match file {
                Some(f) => {
                    let path = format!("{CLAMAV_DB}/{f}");
                    let out = host.run(&sigtool_cmd(&path)).await;
                    Some((path, out))
                }
                None => None,
            }
        }
        Err(_) => None,
    };
    LinuxProbe {
        mdatp,
        clamav,
        clamav_dir: Some(dir),
    }
}

fn outcome(
    status: Status,
    summary: String,
    details: Value,
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
            super::remediation("linux")
        },
        default_owner: Owner::It,
    }
}

/// Judges a Linux probe against the maximum definitions age. Pure.
pub fn evaluate(p: &LinuxProbe, max_age_days: u32, now: DateTime<Utc>) -> Outcome {
    let unknown = |reason: String, evidence| Outcome {
        evidence,
        default_owner: Owner::It,
        ..Outcome::unknown(reason)
    };
    match &p.mdatp {
        Err(HostError::NotFound { .. }) => {}
        Err(e) => return unknown(format!("Microsoft Defender: {e}"), Vec::new()),
        Ok(out) => {
            let evidence = vec![cmd_evidence(&mdatp_cmd(), out)];
            if out.exit_code != Some(0) {
                return unknown(exit_text("mdatp", out), evidence);
            }
            let Some(h) = parse_mdatp_health(&out.stdout) else {
                return unknown("mdatp printed no health report".into(), evidence);
            };
            let age = h.definitions_updated.map(|t| (now - t).num_days().max(0));
            let details = json!({"product": "Microsoft Defender for Endpoint", "health": h, "definitions_age_days": age});
            return match (h.real_time_protection, h.definitions_status.as_deref()) {
                (Some(false), _) => outcome(
                    Status::Fail,
                    "Microsoft Defender's real-time protection is off".into(),
                    details,
                    evidence,
                ),
                (_, Some(s)) if s != "upToDate" => outcome(
                    Status::Warn,
                    format!("Microsoft Defender's definitions are not up to date ({s})"),
                    details,
                    evidence,
                ),
                _ if age.is_some_and(|a| a > i64::from(max_age_days)) => outcome(
                    Status::Warn,
                    format!(
                        "Microsoft Defender's definitions are {} days old",
                        age.unwrap_or_default()
                    ),
                    details,
                    evidence,
                ),
                _ if !h.healthy => outcome(
                    Status::Warn,
                    "Microsoft Defender reports itself unhealthy".into(),
                    details,
                    evidence,
                ),
                (None, _) => unknown("mdatp did not report real-time protection".into(), evidence),
                _ => outcome(
                    Status::Pass,
                    "Microsoft Defender is on with current definitions".into(),
                    details,
                    evidence,
                ),
            };
        }
    }
    match &p.clamav {
        Some((path, Ok(out))) => {
            let cmd = sigtool_cmd(path);
            let evidence = vec![cmd_evidence(&cmd, out)];
            let Some(info) = parse_sigtool_info(&out.stdout) else {
                return unknown(
                    if out.exit_code == Some(0) {
                        "sigtool printed no build time".into()
                    } else {
                        exit_text("sigtool", out)
                    },
                    evidence,
                );
            };
            let age = (now - info.build_time.with_timezone(&Utc))
                .num_days()
                .max(0);
            // The age is judged even when sigtool could not verify the file's signature (it exits 1
            // then): the header it printed is what freshclam wrote.
            let details = json!({"product": "ClamAV", "database": path, "build_time": info.build_time, "version": info.version, "definitions_age_days": age, "verified": out.exit_code == Some(0)});
            if age > i64::from(max_age_days) {
                outcome(
                    Status::Warn,
                    format!("ClamAV's signatures are {age} days old (the limit is {max_age_days})"),
                    details,
                    evidence,
                )
            } else {
                outcome(
                    Status::Pass,
                    "ClamAV is installed with current signatures".into(),
                    details,
                    evidence,
                )
            }
        }
        Some((_, Err(e))) => unknown(format!("ClamAV: {e}"), Vec::new()),
        None => match &p.clamav_dir {
            Some(Ok(_)) => unknown(
                format!("ClamAV is installed but {CLAMAV_DB} holds no daily database yet"),
                Vec::new(),
            ),
            Some(Err(HostError::NotFound { .. })) | None => outcome(
                Status::Warn,
                "No antivirus found (Microsoft Defender for Endpoint or ClamAV)".into(),
                json!({"product": null}),
                Vec::new(),
            ),
            Some(Err(e)) => unknown(format!("ClamAV: {e}"), Vec::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigtool_build_time_forms() {
        let i = parse_sigtool_info(
            "File: daily.cvd\nBuild time: 16 Apr 2020 07-58 -0400\nVersion: 25784\n",
        )
        .unwrap();
        assert_eq!(i.build_time.to_rfc3339(), "2020-04-16T07:58:00-04:00");
        assert_eq!(i.version, Some(25784));
        assert!(parse_sigtool_info("Build time: 16 Apr 2020 07:58 +0000").is_some());
        assert!(parse_sigtool_info("ERROR: Can't open file").is_none());
    }
}
