//! The check model: stable check ids, outcomes and the result every check produces.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Stable identifier of a check. The strings are part of the protocol and of policy files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    OsUpdates,
    Mfa,
    PasswordAge,
    PasswordManager,
    Firewall,
    DiskEncryption,
    ScreenLock,
    Antivirus,
    AutoUpdates,
    OsSupported,
    SoftwareSources,
}

impl CheckId {
    /// Every check, in the order the product presents them.
    pub const ALL: [CheckId; 11] = [
        CheckId::OsUpdates,
        CheckId::Mfa,
        CheckId::PasswordAge,
        CheckId::PasswordManager,
        CheckId::Firewall,
        CheckId::DiskEncryption,
        CheckId::ScreenLock,
        CheckId::Antivirus,
        CheckId::AutoUpdates,
        CheckId::OsSupported,
        CheckId::SoftwareSources,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::OsUpdates => "os_updates",
            CheckId::Mfa => "mfa",
            CheckId::PasswordAge => "password_age",
            CheckId::PasswordManager => "password_manager",
            CheckId::Firewall => "firewall",
            CheckId::DiskEncryption => "disk_encryption",
            CheckId::ScreenLock => "screen_lock",
            CheckId::Antivirus => "antivirus",
            CheckId::AutoUpdates => "auto_updates",
            CheckId::OsSupported => "os_supported",
            CheckId::SoftwareSources => "software_sources",
        }
    }

    /// A short human title, used by the CLI table and as a fallback label in the UI.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::OsUpdates => "Operating system updates",
            CheckId::Mfa => "Multi-factor authentication",
            CheckId::PasswordAge => "Password age",
            CheckId::PasswordManager => "Password manager",
            CheckId::Firewall => "Firewall",
            CheckId::DiskEncryption => "Disk encryption",
            CheckId::ScreenLock => "Screen lock",
            CheckId::Antivirus => "Antivirus",
            CheckId::AutoUpdates => "Automatic updates",
            CheckId::OsSupported => "Supported OS version",
            CheckId::SoftwareSources => "Trusted software sources",
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCheckId(pub String);

impl fmt::Display for UnknownCheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown check id `{}`", self.0)
    }
}

impl std::error::Error for UnknownCheckId {}

impl FromStr for CheckId {
    type Err = UnknownCheckId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| UnknownCheckId(s.to_owned()))
    }
}

/// Outcome of a check. `Unknown` means "could not tell" and is never a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Unknown,
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
            Status::NotApplicable => "not_applicable",
        }
    }

    /// Severity rank used to find the worst result: higher is worse.
    pub fn rank(self) -> u8 {
        match self {
            Status::NotApplicable => 0,
            Status::Pass => 1,
            Status::Unknown => 2,
            Status::Warn => 3,
            Status::Fail => 4,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose part of the shared responsibility an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    #[default]
    User,
    It,
}

/// What the "fix it" button does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemediationAction {
    /// Open a settings page: a command line on Linux, an `ms-settings:` or
    /// `x-apple.systempreferences:` URI elsewhere.
    OpenSettings { target: String },
    /// Open a web page, such as IT's MFA enrolment page.
    OpenUrl { url: String },
    /// Run a fix that the agent's allow-list knows by name.
    RunAllowedFix { fix: String },
}

/// How to fix a result, in plain language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Remediation {
    pub steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RemediationAction>,
}

/// One piece of evidence: what a probe read, kept short for support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Evidence {
    /// What was read: a command line, a file path or a D-Bus call.
    pub source: String,
    /// A short excerpt of what came back.
    pub excerpt: String,
}

/// The result of one check on one device at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CheckResult {
    pub id: CheckId,
    pub status: Status,
    /// One sentence for people.
    pub summary: String,
    /// Why the status is `unknown`: the probe could not tell, and this says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Typed per check; an object whose shape each check documents.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
    pub details: serde_json::Value,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub remediation: Remediation,
    #[serde(default)]
    pub owner: Owner,
    pub observed_at: DateTime<Utc>,
    pub duration_ms: u64,
}

/// The worst status among results, ignoring `not_applicable`; `None` when there is none.
pub fn worst_status<'a>(results: impl IntoIterator<Item = &'a CheckResult>) -> Option<Status> {
    results
        .into_iter()
        .map(|r| r.status)
        .filter(|s| *s != Status::NotApplicable)
        .max_by_key(|s| s.rank())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_round_trip_through_their_strings() {
        for id in CheckId::ALL {
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(id));
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
        }
        assert!("os-updates".parse::<CheckId>().is_err());
    }

    #[test]
    fn worst_status_prefers_fail_and_skips_not_applicable() {
        let mk = |status| CheckResult {
            id: CheckId::Firewall,
            status,
            summary: String::new(),
            reason: None,
            details: serde_json::Value::Null,
            evidence: vec![],
            remediation: Remediation::default(),
            owner: Owner::It,
            observed_at: Utc::now(),
            duration_ms: 0,
        };
        let rs = [mk(Status::Pass), mk(Status::Fail), mk(Status::Unknown)];
        assert_eq!(worst_status(&rs), Some(Status::Fail));
        assert_eq!(worst_status(&[mk(Status::NotApplicable)]), None);
    }
}
