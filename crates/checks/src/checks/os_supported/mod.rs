//! `os_supported`: is the operating system a release that still gets security updates, and
//! at least the minimum version IT requires?
//!
//! # Platform behaviour
//! - Linux: `ID` and `VERSION_ID` from `/etc/os-release` (already read into the host's OS
//!   facts; no command), judged against the policy minimum for that distribution id and
//!   the [`lifecycle`] table.
//! - macOS: `sw_vers` `ProductVersion`.
//! - Windows: `reg.exe query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"`:
//!   `CurrentBuild`, `UBR`, `DisplayVersion`, `EditionID`, `InstallationType`, compared as
//!   `10.0.BUILD.UBR`.
//!
//! On Linux, `SUPPORT_END` in `/etc/os-release`, where the distribution sets it, is preferred
//! over the table.
//!
//! Versions compare numerically component by component (`22.04 < 22.10`,
//! `10.0.9999 < 10.0.19045`), missing components counting as zero.
//!
//! ## The lifecycle table
//! Dates of the end of standard security support and of any extended support (Debian LTS,
//! Ubuntu ESM, Windows 10 ESU), as published by the vendors and known on
//! [`TABLE_AS_OF`]; Apple publishes none, so macOS majors are listed as unsupported from the
//! release of the third newer major, which is Apple's practice. A release past its extended
//! date fails; one past standard but within extended support warns (it is safe only with the
//! extended programme, which Tandem cannot see); releases newer than the table are judged by
//! the policy minimum alone. Dates given by the vendor only to the month use the month's
//! last day.

pub mod reg;
pub mod support;

use std::cmp::Ordering;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::policy::OsSupportedPolicy;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use self::reg::{read_reg, RegKey, RegRead};
use self::support::{cmd_evidence, excerpt_matching, exit_text, reg_query, REG_EXE};
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, Host};

/// The supported-OS-version check.
///
/// # Platform behaviour
/// Linux: `/etc/os-release`; macOS: `sw_vers`; Windows: the `CurrentVersion` registry key.
pub struct OsSupported;

pub const SW_VERS: &str = "/usr/bin/sw_vers";

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[SW_VERS, REG_EXE];

/// The day the lifecycle table was last checked against the vendors' pages.
pub const TABLE_AS_OF: &str = "2026-11-28";

const WINDOWS_CURRENT_VERSION: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";

/// Compares two dotted versions numerically per component. Non-numeric tails of a component
/// (`"7a"`) compare by their leading digits; missing components are zero.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> Vec<u64> {
        v.trim()
            .split(['.', '-', ' '])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().unwrap_or(0)
            })
            .collect()
    }
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let ord = a
            .get(i)
            .copied()
            .unwrap_or(0)
            .cmp(&b.get(i).copied().unwrap_or(0));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// The running OS as the probe read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsVersion {
    /// The policy key: a Linux distribution id, `macos` or `windows`.
    pub platform: String,
    /// The product name without the version (`Ubuntu`, `macOS`), or the Windows release
    /// (`Windows 11 24H2`).
    pub name: String,
    pub version: String,
    /// Windows `EditionID` (`Professional`, `Enterprise`, `EnterpriseS`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    /// Windows `InstallationType` (`Client`, `Server`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_type: Option<String>,
    /// `SUPPORT_END` from `/etc/os-release` (systemd's field for the end of support, set by
    /// Fedora among others): the distribution's own word, preferred over the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_end: Option<NaiveDate>,
}

/// `sw_vers` prints `ProductName:`, `ProductVersion:` and `BuildVersion:` lines (tabs
/// between key and value). Returns `(product name, version)`.
pub fn parse_sw_vers(stdout: &str) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    for line in stdout.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "ProductName" => name = Some(v.trim().to_owned()),
            "ProductVersion" => version = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    let version = version.filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    Some((name.unwrap_or_else(|| "macOS".into()), version))
}

/// The Windows version from the `CurrentVersion` key: `10.0.BUILD.UBR`.
pub fn windows_version(key: &RegKey) -> Option<OsVersion> {
    let build = key
        .u64("CurrentBuild")
        .or_else(|| key.u64("CurrentBuildNumber"))?;
    let version = match key.u64("UBR") {
        Some(ubr) => format!("10.0.{build}.{ubr}"),
        None => format!("10.0.{build}"),
    };
    let family = if build >= 22000 {
        "Windows 11"
    } else {
        "Windows 10"
    };
    let name = match key.str("DisplayVersion").or_else(|| key.str("ReleaseId")) {
        Some(dv) if !dv.is_empty() => format!("{family} {dv}"),
        _ => family.to_owned(),
    };
    let installation_type = key.str("InstallationType").map(str::to_owned);
    let name = if installation_type.as_deref() == Some("Server") {
        key.str("ProductName")
            .unwrap_or("Windows Server")
            .to_owned()
    } else {
        name
    };
    Some(OsVersion {
        platform: "windows".into(),
        name,
        version,
        edition: key.str("EditionID").map(str::to_owned),
        installation_type,
        support_end: None,
    })
}

/// Support dates of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    pub release: String,
    /// End of standard security support.
    pub standard_until: NaiveDate,
    /// End of extended support (LTS, ESM, ESU); equal to `standard_until` when none.
    pub extended_until: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_programme: Option<&'static str>,
}

type Ymd = (i32, u32, u32);

/// (distribution id, release, standard end, extended end, extended programme).
const LINUX_TABLE: &[(&str, &str, Ymd, Ymd, Option<&str>)] = &[
    (
        "debian",
        "9",
        (2020, 7, 6),
        (2022, 6, 30),
        Some("Debian LTS"),
    ),
    (
        "debian",
        "10",
        (2022, 9, 10),
        (2024, 6, 30),
        Some("Debian LTS"),
    ),
    (
        "debian",
        "11",
        (2024, 8, 14),
        (2026, 8, 31),
        Some("Debian LTS"),
    ),
    (
        "debian",
        "12",
        (2026, 6, 10),
        (2028, 6, 30),
        Some("Debian LTS"),
    ),
    (
        "debian",
        "13",
        (2028, 8, 9),
        (2030, 6, 30),
        Some("Debian LTS"),
    ),
    (
        "ubuntu",
        "16.04",
        (2021, 4, 30),
        (2026, 4, 30),
        Some("Ubuntu Pro (ESM)"),
    ),
    (
        "ubuntu",
        "18.04",
        (2023, 5, 31),
        (2028, 5, 31),
        Some("Ubuntu Pro (ESM)"),
    ),
    (
        "ubuntu",
        "20.04",
        (2025, 5, 31),
        (2030, 5, 31),
        Some("Ubuntu Pro (ESM)"),
    ),
    (
        "ubuntu",
        "22.04",
        (2027, 4, 30),
        (2032, 4, 30),
        Some("Ubuntu Pro (ESM)"),
    ),
    (
        "ubuntu",
        "24.04",
        (2029, 4, 30),
        (2034, 4, 30),
        Some("Ubuntu Pro (ESM)"),
    ),
    (
        "ubuntu",
        "26.04",
        (2031, 4, 30),
        (2036, 4, 30),
        Some("Ubuntu Pro (ESM)"),
    ),
    ("ubuntu", "23.04", (2024, 1, 25), (2024, 1, 25), None),
    ("ubuntu", "23.10", (2024, 7, 11), (2024, 7, 11), None),
    ("ubuntu", "24.10", (2025, 7, 10), (2025, 7, 10), None),
    ("ubuntu", "25.04", (2026, 1, 31), (2026, 1, 31), None),
    ("ubuntu", "25.10", (2026, 7, 31), (2026, 7, 31), None),
    ("fedora", "38", (2024, 5, 21), (2024, 5, 21), None),
    ("fedora", "39", (2024, 11, 26), (2024, 11, 26), None),
    ("fedora", "40", (2025, 5, 13), (2025, 5, 13), None),
    ("fedora", "41", (2025, 12, 15), (2025, 12, 15), None),
    ("fedora", "42", (2026, 5, 31), (2026, 5, 31), None),
    ("rhel", "7", (2024, 6, 30), (2024, 6, 30), None),
    ("rhel", "8", (2029, 5, 31), (2029, 5, 31), None),
    ("rhel", "9", (2032, 5, 31), (2032, 5, 31), None),
    ("rocky", "8", (2029, 5, 31), (2029, 5, 31), None),
    ("rocky", "9", (2032, 5, 31), (2032, 5, 31), None),
    ("almalinux", "8", (2029, 5, 31), (2029, 5, 31), None),
    ("almalinux", "9", (2032, 5, 31), (2032, 5, 31), None),
    ("centos", "7", (2024, 6, 30), (2024, 6, 30), None),
    ("centos", "8", (2024, 5, 31), (2024, 5, 31), None),
    ("centos", "9", (2027, 5, 31), (2027, 5, 31), None),
    ("opensuse-leap", "15.4", (2023, 12, 7), (2023, 12, 7), None),
    (
        "opensuse-leap",
        "15.5",
        (2024, 12, 31),
        (2024, 12, 31),
        None,
    ),
    ("opensuse-leap", "15.6", (2026, 4, 30), (2026, 4, 30), None),
];

/// (macOS major, unsupported from): the day the third newer major shipped.
const MACOS_TABLE: &[(u64, Ymd)] = &[
    (10, (2020, 11, 12)),
    (11, (2023, 9, 26)),
    (12, (2024, 9, 16)),
    (13, (2025, 9, 15)),
];

/// (build, version, Home/Pro end, Enterprise/Education end). Windows 10 22H2 has paid
/// Extended Security Updates until 2028-10-10.
const WINDOWS_TABLE: &[(u64, &str, Ymd, Ymd)] = &[
    (19045, "Windows 10 22H2", (2025, 10, 14), (2025, 10, 14)),
    (22000, "Windows 11 21H2", (2023, 10, 10), (2024, 10, 8)),
    (22621, "Windows 11 22H2", (2024, 10, 8), (2025, 10, 14)),
    (22631, "Windows 11 23H2", (2025, 11, 11), (2026, 11, 10)),
    (26100, "Windows 11 24H2", (2026, 10, 13), (2027, 10, 12)),
    (26200, "Windows 11 25H2", (2027, 10, 12), (2028, 10, 10)),
];

/// Distributions without versioned releases: supported while kept updated, which is
/// `os_updates`' business.
const ROLLING: &[&str] = &[
    "arch",
    "manjaro",
    "endeavouros",
    "opensuse-tumbleweed",
    "gentoo",
    "void",
];

fn ymd((y, m, d): Ymd) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// The known support dates of a release, if the table has them.
pub fn lifecycle(os: &OsVersion) -> Option<Lifecycle> {
    match os.platform.as_str() {
        "macos" => {
            let major: u64 = os.version.split('.').next()?.parse().ok()?;
            let (_, end) = MACOS_TABLE.iter().find(|(m, _)| *m == major)?;
            let end = ymd(*end);
            Some(Lifecycle {
                release: format!("macOS {major}"),
                standard_until: end,
                extended_until: end,
                extended_programme: None,
            })
        }
        "windows" => {
            let edition = os.edition.as_deref().unwrap_or("");
            // LTSC editions (`EnterpriseS`, `IoTEnterpriseS`) and servers have their own,
            // much longer lifecycles, which this table does not hold.
            if edition.ends_with('S') || os.installation_type.as_deref() == Some("Server") {
                return None;
            }
            let build: u64 = os.version.split('.').nth(2)?.parse().ok()?;
            let enterprise = edition.starts_with("Enterprise") || edition.starts_with("Education");
            if build < 19045 {
                let end = ymd((2024, 6, 11));
                return Some(Lifecycle {
                    release: "Windows 10 before 22H2".into(),
                    standard_until: end,
                    extended_until: end,
                    extended_programme: None,
                });
            }
            let (_, release, home, ent) = WINDOWS_TABLE.iter().find(|(b, ..)| *b == build)?;
            let standard_until = ymd(if enterprise { *ent } else { *home });
            let (extended_until, extended_programme) = if build == 19045 {
                (
                    ymd((2028, 10, 10)),
                    Some("Windows 10 Extended Security Updates"),
                )
            } else {
                (standard_until, None)
            };
            Some(Lifecycle {
                release: (*release).into(),
                standard_until,
                extended_until,
                extended_programme,
            })
        }
        distro => {
            if let Some(end) = os.support_end {
                return Some(Lifecycle {
                    release: format!("{distro} {}", os.version),
                    standard_until: end,
                    extended_until: end,
                    extended_programme: None,
                });
            }
            let version = os.version.as_str();
            LINUX_TABLE
                .iter()
                .find(|(id, release, ..)| {
                    *id == distro
                        && (*release == version
                            // RHEL-like VERSION_IDs carry the minor release (`9.4`).
                            || (version.split('.').next() == Some(*release) && !release.contains('.')))
                })
                .map(|(_, release, std, ext, programme)| Lifecycle {
                    release: format!("{distro} {release}"),
                    standard_until: ymd(*std),
                    extended_until: ymd(*ext),
                    extended_programme: *programme,
                })
        }
    }
}

fn remediation(platform: &str) -> Remediation {
    let (steps, target): (Vec<String>, &str) = match platform {
        "macos" => (
            vec![
                "Back up your Mac (Time Machine or your organisation's backup).".into(),
                "Open System Settings → General → Software Update and install the newest macOS your Mac supports.".into(),
                "If your Mac cannot run a supported macOS, ask IT about a replacement.".into(),
            ],
            "x-apple.systempreferences:com.apple.Software-Update-Settings.extension",
        ),
        "windows" => (
            vec![
                "Save your work.".into(),
                "Open Settings → Windows Update and install the latest feature update (a newer Windows version).".into(),
                "If Windows says this PC cannot be upgraded, ask IT.".into(),
            ],
            "ms-settings:windowsupdate",
        ),
        _ => (
            vec![
                "Back up your files.".into(),
                "Upgrade to a supported release of your distribution, following its upgrade guide.".into(),
                "Ask IT first if this is a managed machine: a release upgrade can take an hour.".into(),
            ],
            "gnome-software --mode=updates",
        ),
    };
    Remediation {
        steps,
        action: Some(RemediationAction::OpenSettings {
            target: target.into(),
        }),
    }
}

impl OsVersion {
    /// `Ubuntu 22.04`, `macOS 15.1`, `Windows 11 24H2 (10.0.26100.2481)`.
    pub fn display(&self) -> String {
        if self.platform == "windows" {
            format!("{} ({})", self.name, self.version)
        } else {
            format!("{} {}", self.name, self.version)
        }
    }
}

/// Judges the running version against the policy minimum and the lifecycle table. Pure.
pub fn evaluate(os: &OsVersion, policy: &OsSupportedPolicy, today: NaiveDate) -> Outcome {
    let minimum = policy.minimum.get(&os.platform).cloned();
    let life = lifecycle(os);
    let details = json!({
        "platform": os.platform,
        "name": os.name,
        "version": os.version,
        "edition": os.edition,
        "minimum": minimum,
        "lifecycle": life,
        "lifecycle_table_as_of": TABLE_AS_OF,
    });
    let outcome = |status: Status, summary: String| Outcome {
        status,
        summary,
        reason: None,
        details: details.clone(),
        evidence: Vec::new(),
        remediation: if status == Status::Pass {
            Remediation::default()
        } else {
            remediation(&os.platform)
        },
        default_owner: Owner::User,
    };
    if let Some(min) = &minimum {
        if compare_versions(&os.version, min) == Ordering::Less {
            return outcome(
                Status::Fail,
                format!(
                    "{} is older than {min}, the oldest version your organisation supports",
                    os.display()
                ),
            );
        }
    }
    match (&life, &minimum) {
        (Some(l), _) if today > l.extended_until => outcome(
            Status::Fail,
            format!(
                "{} no longer receives security updates (support ended {})",
                os.display(),
                l.extended_until
            ),
        ),
        (Some(l), _) if today > l.standard_until => outcome(
            Status::Warn,
            format!(
                "{} left standard support on {}; it gets security updates only through {} until {}",
                os.display(),
                l.standard_until,
                l.extended_programme.unwrap_or("extended support"),
                l.extended_until
            ),
        ),
        (Some(l), _) => outcome(
            Status::Pass,
            format!(
                "{} is supported (security updates until {})",
                os.display(),
                l.standard_until
            ),
        ),
        (None, Some(min)) => outcome(
            Status::Pass,
            format!("{} meets the minimum version {min}", os.display()),
        ),
        (None, None) => {
            let mut o = Outcome::unknown(format!(
                "Tandem does not know the support dates of {} and the policy sets no minimum for `{}`",
                os.display(),
                os.platform
            ));
            o.details = details;
            o
        }
    }
}

/// The Linux OS version from `/etc/os-release`, or why there is none.
pub fn linux_version(
    os_release: &std::collections::BTreeMap<String, String>,
) -> Result<OsVersion, String> {
    let id = os_release.get("ID").ok_or("/etc/os-release has no ID")?;
    let name = os_release
        .get("NAME")
        .cloned()
        .unwrap_or_else(|| id.clone());
    match os_release.get("VERSION_ID") {
        Some(v) if !v.is_empty() => Ok(OsVersion {
            platform: id.clone(),
            name,
            version: v.clone(),
            edition: None,
            installation_type: None,
            support_end: os_release
                .get("SUPPORT_END")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        }),
        _ => Err(format!("{name} has no VERSION_ID")),
    }
}

#[async_trait]
impl Check for OsSupported {
    fn id(&self) -> CheckId {
        CheckId::OsSupported
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let policy = &ctx.policy.checks.os_supported;
        let today = host.now().date_naive();
        match host.os().family.as_str() {
            "linux" => {
                let release = &host.os().os_release;
                let evidence = Evidence {
                    source: "/etc/os-release".into(),
                    excerpt: ["ID", "VERSION_ID", "PRETTY_NAME"]
                        .iter()
                        .filter_map(|k| release.get(*k).map(|v| format!("{k}={v}")))
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                let mut out = match linux_version(release) {
                    Ok(v) => evaluate(&v, policy, today),
                    Err(reason) => {
                        let id = release.get("ID").map(String::as_str).unwrap_or("");
                        if ROLLING.contains(&id) {
                            let name = release.get("NAME").map(String::as_str).unwrap_or(id);
                            Outcome {
                                status: Status::Pass,
                                summary: format!("{name} is a rolling release: supported while it is kept updated"),
                                reason: None,
                                details: json!({"platform": id, "rolling": true}),
                                evidence: Vec::new(),
                                remediation: Remediation::default(),
                                default_owner: Owner::User,
                            }
                        } else {
                            Outcome::unknown(reason)
                        }
                    }
                };
                out.evidence.push(evidence);
                out
            }
            "macos" => {
                let cmd = Cmd::new(SW_VERS, &[]);
                let out = match host.run(&cmd).await {
                    Ok(out) => out,
                    Err(e) => return Outcome::unknown(e.to_string()),
                };
                let evidence = cmd_evidence(&cmd, &out);
                let mut result = match (out.exit_code, parse_sw_vers(&out.stdout)) {
                    (Some(0), Some((name, version))) => evaluate(
                        &OsVersion {
                            platform: "macos".into(),
                            name,
                            version,
                            edition: None,
                            installation_type: None,
                            support_end: None,
                        },
                        policy,
                        today,
                    ),
                    (Some(0), None) => Outcome::unknown("sw_vers printed no ProductVersion"),
                    _ => Outcome::unknown(exit_text("sw_vers", &out)),
                };
                result.evidence.push(evidence);
                result
            }
            "windows" => {
                let cmd = reg_query(WINDOWS_CURRENT_VERSION, None);
                let out = match host.run(&cmd).await {
                    Ok(out) => out,
                    Err(e) => return Outcome::unknown(e.to_string()),
                };
                let mut evidence = cmd_evidence(&cmd, &out);
                if out.exit_code == Some(0) {
                    evidence.excerpt = excerpt_matching(
                        &out.stdout,
                        &[
                            "CurrentBuild ",
                            "UBR",
                            "DisplayVersion",
                            "EditionID",
                            "InstallationType",
                            "ProductName",
                        ],
                    );
                }
                let mut result = match read_reg(&out) {
                    RegRead::Present(key) => match windows_version(&key) {
                        Some(v) => evaluate(&v, policy, today),
                        None => Outcome::unknown("the CurrentVersion key has no CurrentBuild"),
                    },
                    RegRead::Absent => Outcome::unknown("the CurrentVersion key does not exist"),
                    RegRead::Unreadable { reason } => Outcome::unknown(reason),
                };
                result.evidence.push(evidence);
                result
            }
            other => Outcome::unknown(format!("the OS version is not read on {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(
            compare_versions("10.0.19045", "10.0.9999"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("22.04", "22.10"), Ordering::Less);
        assert_eq!(compare_versions("12", "12.0"), Ordering::Equal);
        assert_eq!(compare_versions("14.6", "14.10.1"), Ordering::Less);
        assert_eq!(
            compare_versions("10.0.19045.4170", "10.0.19045"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("", "1"), Ordering::Less);
    }

    #[test]
    fn table_lookups() {
        let v = |p: &str, ver: &str| OsVersion {
            platform: p.into(),
            name: String::new(),
            version: ver.into(),
            edition: None,
            installation_type: None,
            support_end: None,
        };
        assert_eq!(lifecycle(&v("rhel", "9.4")).unwrap().release, "rhel 9");
        assert!(lifecycle(&v("ubuntu", "22.10")).is_none());
        assert_eq!(
            lifecycle(&v("macos", "10.15.7")).unwrap().release,
            "macOS 10"
        );
        assert!(lifecycle(&v("macos", "15.1")).is_none());
        assert_eq!(
            lifecycle(&v("windows", "10.0.19044.1")).unwrap().release,
            "Windows 10 before 22H2"
        );
    }
}
