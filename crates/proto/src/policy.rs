//! The policy IT pushes: what to check, how strictly, and how to remind people.
//!
//! Every field has a built-in default, so an agent that never heard from a server still
//! judges the machine sensibly, and a partial policy document only overrides what it names.

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::{CheckId, Owner};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Policy {
    pub org: Org,
    pub checks: Checks,
    pub nudges: Nudges,
    pub it_commitments: Vec<ItCommitment>,
    pub intervals: Intervals,
    pub desktop: Desktop,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Org {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helpdesk_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phishing_contact: Option<String>,
}

impl Default for Org {
    fn default() -> Self {
        Org {
            name: "your organisation".into(),
            helpdesk_url: None,
            phishing_contact: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// Settings every check shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Common {
    pub enabled: bool,
    pub severity: Severity,
    /// Whose part it is; `None` means the check's own default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Days from first seen to the deadline.
    pub grace_days: u32,
    /// A fixed deadline set by IT; overrides `grace_days` when earlier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            enabled: true,
            severity: Severity::Medium,
            owner: None,
            grace_days: 14,
            deadline: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct OsUpdatesPolicy {
    #[serde(flatten)]
    pub common: Common,
    pub security_grace_days: u32,
}

impl Default for OsUpdatesPolicy {
    fn default() -> Self {
        OsUpdatesPolicy {
            common: Common {
                severity: Severity::High,
                ..Common::default()
            },
            security_grace_days: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct MfaPolicy {
    #[serde(flatten)]
    pub common: Common,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enroll_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PasswordSource {
    #[default]
    IdpThenLocal,
    Local,
    Idp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct PasswordAgePolicy {
    #[serde(flatten)]
    pub common: Common,
    pub max_age_days: u32,
    pub source: PasswordSource,
}

impl Default for PasswordAgePolicy {
    fn default() -> Self {
        PasswordAgePolicy {
            common: Common::default(),
            max_age_days: 365,
            source: PasswordSource::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct PasswordManagerPolicy {
    #[serde(flatten)]
    pub common: Common,
    pub recognised: Vec<String>,
}

impl Default for PasswordManagerPolicy {
    fn default() -> Self {
        PasswordManagerPolicy {
            common: Common::default(),
            recognised: [
                "1password",
                "bitwarden",
                "keepassxc",
                "proton_pass",
                "dashlane",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ScreenLockPolicy {
    #[serde(flatten)]
    pub common: Common,
    pub max_idle_minutes: u32,
}

impl Default for ScreenLockPolicy {
    fn default() -> Self {
        ScreenLockPolicy {
            common: Common::default(),
            max_idle_minutes: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct AntivirusPolicy {
    #[serde(flatten)]
    pub common: Common,
    pub max_definitions_age_days: u32,
}

impl Default for AntivirusPolicy {
    fn default() -> Self {
        AntivirusPolicy {
            common: Common::default(),
            max_definitions_age_days: 3,
        }
    }
}

/// Minimum OS versions, keyed by platform (`macos`, `windows`) or Linux distribution id
/// (`ubuntu`, `debian`, `fedora`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct OsSupportedPolicy {
    #[serde(flatten)]
    pub common: Common,
    pub minimum: std::collections::BTreeMap<String, String>,
}

impl Default for OsSupportedPolicy {
    fn default() -> Self {
        OsSupportedPolicy {
            common: Common::default(),
            minimum: [
                ("macos", "14.6"),
                ("windows", "10.0.19045"),
                ("ubuntu", "22.04"),
                ("debian", "12"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }
}

fn it_owned() -> Common {
    Common {
        owner: Some(Owner::It),
        ..Common::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Checks {
    pub os_updates: OsUpdatesPolicy,
    pub mfa: MfaPolicy,
    pub password_age: PasswordAgePolicy,
    pub password_manager: PasswordManagerPolicy,
    pub firewall: Common,
    pub disk_encryption: Common,
    pub screen_lock: ScreenLockPolicy,
    pub antivirus: AntivirusPolicy,
    pub auto_updates: Common,
    pub os_supported: OsSupportedPolicy,
    pub software_sources: Common,
}

impl Default for Checks {
    fn default() -> Self {
        Checks {
            os_updates: OsUpdatesPolicy::default(),
            mfa: MfaPolicy::default(),
            password_age: PasswordAgePolicy::default(),
            password_manager: PasswordManagerPolicy::default(),
            firewall: it_owned(),
            disk_encryption: it_owned(),
            screen_lock: ScreenLockPolicy::default(),
            antivirus: AntivirusPolicy::default(),
            auto_updates: Common::default(),
            os_supported: OsSupportedPolicy::default(),
            software_sources: Common::default(),
        }
    }
}

impl Checks {
    /// The settings every check shares, for one check.
    pub fn common(&self, id: CheckId) -> &Common {
        match id {
            CheckId::OsUpdates => &self.os_updates.common,
            CheckId::Mfa => &self.mfa.common,
            CheckId::PasswordAge => &self.password_age.common,
            CheckId::PasswordManager => &self.password_manager.common,
            CheckId::Firewall => &self.firewall,
            CheckId::DiskEncryption => &self.disk_encryption,
            CheckId::ScreenLock => &self.screen_lock.common,
            CheckId::Antivirus => &self.antivirus.common,
            CheckId::AutoUpdates => &self.auto_updates,
            CheckId::OsSupported => &self.os_supported.common,
            CheckId::SoftwareSources => &self.software_sources,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct WorkingHours {
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub start: NaiveTime,
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub end: NaiveTime,
    pub days: Vec<Weekday>,
}

impl Default for WorkingHours {
    fn default() -> Self {
        WorkingHours {
            start: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Deferrals {
    pub max_count: u32,
    pub max_hours: u32,
}

impl Default for Deferrals {
    fn default() -> Self {
        Deferrals {
            max_count: 3,
            max_hours: 72,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Escalation {
    pub reminder_every_hours: u32,
    pub imminent_within_hours: u32,
    pub imminent_every_hours: u32,
    pub overdue_every_hours: u32,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            reminder_every_hours: 24,
            imminent_within_hours: 48,
            imminent_every_hours: 4,
            overdue_every_hours: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Nudges {
    pub working_hours: WorkingHours,
    pub max_per_day: u32,
    pub respect_do_not_disturb: bool,
    pub deferrals: Deferrals,
    pub escalation: Escalation,
}

impl Default for Nudges {
    fn default() -> Self {
        Nudges {
            working_hours: WorkingHours::default(),
            max_per_day: 3,
            respect_do_not_disturb: true,
            deferrals: Deferrals::default(),
            escalation: Escalation::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ItCommitment {
    pub title: String,
    pub by: String,
    pub detail: String,
}

/// What the desktop app lets the user change about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Desktop {
    /// Whether the user may turn "start at login" on or off. IT that installs the autostart
    /// entry itself (or wants Tandem always running) sets this to `false`; the window then
    /// shows the setting as managed and the shell refuses to change it.
    pub allow_autostart_toggle: bool,
}

impl Default for Desktop {
    fn default() -> Self {
        Desktop {
            allow_autostart_toggle: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct Intervals {
    pub check_minutes: u32,
    pub report_minutes: u32,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            check_minutes: 60,
            report_minutes: 15,
        }
    }
}

/// A problem found while validating a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// JSON pointer to the offending value (`/checks/firewal`).
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Parses a policy strictly, as IT's tools should: wrong types and unknown keys are
    /// errors. (Agents parse leniently with plain serde so that an older agent keeps working
    /// when a newer server adds settings.)
    pub fn parse_strict(value: &serde_json::Value) -> Result<Policy, PolicyError> {
        if !value.is_object() {
            return Err(PolicyError {
                pointer: String::new(),
                message: "a policy must be a JSON object".into(),
            });
        }
        let policy: Policy = serde_json::from_value(value.clone()).map_err(|e| PolicyError {
            pointer: String::new(),
            message: e.to_string(),
        })?;
        // Serde ignores unknown keys; a typo such as `grace_day` would silently do nothing.
        // Every key of the input must therefore survive a round trip through the typed model.
        let known = serde_json::to_value(&policy).map_err(|e| PolicyError {
            pointer: String::new(),
            message: e.to_string(),
        })?;
        if let Some(pointer) = first_unknown_key(value, &known, String::new()) {
            return Err(PolicyError {
                pointer,
                message: "unknown setting".into(),
            });
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Range checks that the type system cannot express.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |pointer: &str, message: &str| {
            Err(PolicyError {
                pointer: pointer.to_owned(),
                message: message.to_owned(),
            })
        };
        if self.intervals.check_minutes == 0 || self.intervals.check_minutes > 7 * 24 * 60 {
            return err("/intervals/check_minutes", "must be between 1 and 10080");
        }
        if self.intervals.report_minutes == 0 || self.intervals.report_minutes > 7 * 24 * 60 {
            return err("/intervals/report_minutes", "must be between 1 and 10080");
        }
        if self.nudges.max_per_day > 48 {
            return err("/nudges/max_per_day", "must be at most 48");
        }
        if self.nudges.working_hours.start >= self.nudges.working_hours.end {
            return err("/nudges/working_hours", "start must be before end");
        }
        for id in CheckId::ALL {
            if self.checks.common(id).grace_days > 3650 {
                return err(&format!("/checks/{id}/grace_days"), "must be at most 3650");
            }
        }
        Ok(())
    }
}

fn first_unknown_key(
    input: &serde_json::Value,
    known: &serde_json::Value,
    at: String,
) -> Option<String> {
    match (input, known) {
        (serde_json::Value::Object(i), serde_json::Value::Object(k)) => {
            for (key, value) in i {
                let pointer = format!("{at}/{key}");
                match k.get(key) {
                    None if value.is_null() => {}
                    None => return Some(pointer),
                    Some(kv) => {
                        if let Some(p) = first_unknown_key(value, kv, pointer) {
                            return Some(p);
                        }
                    }
                }
            }
            None
        }
        (serde_json::Value::Array(i), serde_json::Value::Array(k)) => i
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(n, (iv, kv))| first_unknown_key(iv, kv, format!("{at}/{n}"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_document_is_the_defaults() {
        assert_eq!(Policy::parse_strict(&json!({})).unwrap(), Policy::default());
    }

    #[test]
    fn partial_sections_override_only_what_they_name() {
        let p =
            Policy::parse_strict(&json!({"checks": {"os_updates": {"grace_days": 7}}})).unwrap();
        assert_eq!(p.checks.os_updates.common.grace_days, 7);
        assert_eq!(p.checks.os_updates.security_grace_days, 3);
        assert!(p.checks.firewall.enabled);
        assert_eq!(p.checks.firewall.owner, Some(Owner::It));
    }

    #[test]
    fn the_design_brief_example_parses() {
        let doc = json!({
          "org": {"name": "Acme", "helpdesk_url": "https://help.acme.example", "phishing_contact": "security@acme.example"},
          "checks": {
            "os_updates":   {"enabled": true, "severity": "high", "grace_days": 14, "security_grace_days": 3},
            "mfa":          {"enabled": true, "enroll_url": "https://id.acme.example/enroll"},
            "password_age": {"enabled": true, "max_age_days": 365, "source": "idp_then_local"},
            "password_manager": {"enabled": true, "recognised": ["1password", "bitwarden", "keepassxc"]},
            "software_sources": {"enabled": true},
            "firewall":     {"enabled": true, "owner": "it"},
            "disk_encryption": {"enabled": true, "owner": "it"},
            "screen_lock":  {"enabled": true, "max_idle_minutes": 10},
            "antivirus":    {"enabled": true, "max_definitions_age_days": 3},
            "auto_updates": {"enabled": true},
            "os_supported": {"enabled": true, "minimum": {"macos": "14.6", "windows": "10.0.19045", "ubuntu": "22.04"}}
          },
          "nudges": {
            "working_hours": {"start": "09:00", "end": "18:00", "days": ["mon","tue","wed","thu","fri"]},
            "max_per_day": 3, "respect_do_not_disturb": true,
            "deferrals": {"max_count": 3, "max_hours": 72},
            "escalation": {"reminder_every_hours": 24, "imminent_within_hours": 48, "imminent_every_hours": 4, "overdue_every_hours": 1}
          },
          "it_commitments": [{"title": "Email filtering", "by": "our mail provider", "detail": "Spam and known phishing are blocked before they reach you"}],
          "intervals": {"check_minutes": 60, "report_minutes": 15}
        });
        let p = Policy::parse_strict(&doc).unwrap();
        assert_eq!(p.org.name, "Acme");
        assert_eq!(p.it_commitments.len(), 1);
        assert_eq!(
            p.checks
                .os_supported
                .minimum
                .get("ubuntu")
                .map(String::as_str),
            Some("22.04")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Policy::parse_strict(&json!({"checks": {"firewal": {}}})).unwrap_err();
        assert_eq!(e.pointer, "/checks/firewal");
        let e =
            Policy::parse_strict(&json!({"checks": {"os_updates": {"grace_day": 3}}})).unwrap_err();
        assert_eq!(e.pointer, "/checks/os_updates/grace_day");
        let e = Policy::parse_strict(&json!({"intervals": {"check_minutes": 0}})).unwrap_err();
        assert_eq!(e.pointer, "/intervals/check_minutes");
        assert!(Policy::parse_strict(&json!({"nudges": {"max_per_day": -1}})).is_err());
        assert!(Policy::parse_strict(&json!([1, 2])).is_err());
    }

    #[test]
    fn the_autostart_toggle_is_allowed_unless_it_says_otherwise() {
        // A policy written before the `desktop` section existed still parses, and allows it.
        let old = Policy::parse_strict(&json!({"org": {"name": "Acme"}})).unwrap();
        assert!(old.desktop.allow_autostart_toggle);
        let managed =
            Policy::parse_strict(&json!({"desktop": {"allow_autostart_toggle": false}})).unwrap();
        assert!(!managed.desktop.allow_autostart_toggle);
        let e = Policy::parse_strict(&json!({"desktop": {"allow_autostart": false}})).unwrap_err();
        assert_eq!(e.pointer, "/desktop/allow_autostart");
    }
}
