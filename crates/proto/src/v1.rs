//! Version 1 of the agent ↔ server protocol (DESIGN.md, "Agent ↔ server protocol").
//!
//! Paths are constants here so that the server's router and the agent's client cannot drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::check::{CheckId, CheckResult};

pub const PATH_ENROLL: &str = "/api/v1/enroll";
pub const PATH_REPORTS: &str = "/api/v1/agent/reports";
pub const PATH_POLICY: &str = "/api/v1/agent/policy";
pub const PATH_IDENTITY: &str = "/api/v1/agent/identity";
pub const PATH_PHISHING: &str = "/api/v1/agent/phishing-reports";
/// One phishing report this device sent, with IT's triage (axum route syntax). `GET` on
/// [`PATH_PHISHING`] lists them all.
pub const PATH_PHISHING_REPORT: &str = "/api/v1/agent/phishing-reports/{tracking_id}";
/// The Tauri updater's dynamic endpoint: `?target=linux-x86_64&current_version=0.1.0`;
/// 200 with the update's JSON, 204 when there is nothing newer.
pub const PATH_UPDATE: &str = "/api/v1/agent/update";
/// An update artifact by its lower-case hex SHA-256 (immutable).
pub const PATH_UPDATE_ARTIFACT: &str = "/api/v1/agent/update/artifacts/{sha256}";
/// IT uploads a release here (multipart) and lists releases.
pub const PATH_ADMIN_RELEASES: &str = "/api/v1/admin/releases";
/// `PUT {"channel": "beta"}`: which release channel a group's devices follow.
pub const PATH_ADMIN_GROUP_CHANNEL: &str = "/api/v1/admin/groups/{group}/channel";
pub const PATH_ADMIN_DEVICES: &str = "/api/v1/admin/devices";
/// Axum route syntax; `{group}` is the group's name.
pub const PATH_ADMIN_GROUP_POLICY: &str = "/api/v1/admin/groups/{group}/policy";

/// Problem type URIs (RFC 9457 `type`) that the agent acts upon.
pub mod problem {
    /// The device token is unknown or revoked: the agent must enrol again.
    pub const ENROLL_AGAIN: &str = "https://tandem.dev/problems/enroll-again";
    /// The enrolment secret is unknown, expired or used up.
    pub const BAD_ENROLL_SECRET: &str = "https://tandem.dev/problems/bad-enroll-secret";
    pub const INVALID_REQUEST: &str = "https://tandem.dev/problems/invalid-request";
    pub const INVALID_POLICY: &str = "https://tandem.dev/problems/invalid-policy";
    pub const UNAUTHORIZED: &str = "https://tandem.dev/problems/unauthorized";
    pub const FORBIDDEN: &str = "https://tandem.dev/problems/forbidden";
    pub const NOT_FOUND: &str = "https://tandem.dev/problems/not-found";
    pub const OVERLOADED: &str = "https://tandem.dev/problems/overloaded";
    pub const INTERNAL: &str = "https://tandem.dev/problems/internal";
}

/// RFC 9457 problem details, as the server sends them with `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For invalid input: a JSON pointer to the offending value (extension member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// What the agent says about the machine. Every field is untrusted on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DeviceInfo {
    /// An app-specific hash of the OS machine id: stable per machine, useless elsewhere.
    pub machine_id: String,
    pub hostname: String,
    /// `linux`, `macos` or `windows`.
    pub os: String,
    pub os_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UserInfo {
    pub login: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    pub device: DeviceInfo,
    pub user: UserInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: Uuid,
    /// 256 random bits, base64url; the server keeps only a hash.
    pub device_token: String,
    /// Ed25519 public key, base64 (standard, padded), that signs this device's policies.
    pub policy_signing_key: String,
    pub server_time: DateTime<Utc>,
}

/// Facts about the machine sent with every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Inventory {
    #[serde(flatten)]
    pub device: DeviceInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserInfo>,
    /// Anything else the agent knows (CPU, memory, disks, uptime); free-form and optional.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    NudgeShown,
    NudgeDeferred,
    NudgeActed,
    StatusChanged,
    PolicyApplied,
    PolicyRejected,
    /// A signed update was verified and installed.
    UpdateApplied,
    /// An update was refused (bad signature, failed download); the old binary stayed.
    UpdateRefused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NudgeShown => "nudge_shown",
            EventKind::NudgeDeferred => "nudge_deferred",
            EventKind::NudgeActed => "nudge_acted",
            EventKind::StatusChanged => "status_changed",
            EventKind::PolicyApplied => "policy_applied",
            EventKind::PolicyRejected => "policy_rejected",
            EventKind::UpdateApplied => "update_applied",
            EventKind::UpdateRefused => "update_refused",
        }
    }
}

/// Something that happened on the device, sent with the next report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Event {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_id: Option<CheckId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StatusReport {
    /// UUIDv7; the idempotency key.
    pub report_id: Uuid,
    pub agent_version: String,
    pub sent_at: DateTime<Utc>,
    pub inventory: Inventory,
    pub results: Vec<CheckResult>,
    #[serde(default)]
    pub events: Vec<Event>,
    /// The etag of the server policy the agent has applied, so IT sees what is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_etag: Option<String>,
}

/// `GET /api/v1/agent/update` with a newer release: the Tauri updater's "dynamic server"
/// answer. `signature` is the `.sig` file (base64 of a minisign signature over the artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub version: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub pub_date: Option<String>,
    pub url: String,
    pub signature: String,
}

/// `POST /api/v1/agent/phishing-reports` with a link instead of a message file (JSON). A
/// message file goes as multipart form data: a `message` part with the `.eml` and an
/// optional `note` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhishingUrlReport {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The server's answer to a phishing report: the id the user quotes when talking to IT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhishingAck {
    pub tracking_id: String,
    pub received_at: DateTime<Utc>,
}

/// Where IT's triage of a phishing report stands, as the console sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TriageStatus {
    /// Nobody has looked at it yet.
    New,
    Investigating,
    /// Confirmed phishing.
    Phishing,
    Spam,
    /// Harmless after all.
    Safe,
    /// A status a newer server knows and this build does not: agents parse leniently.
    #[serde(other)]
    Unknown,
}

impl TriageStatus {
    /// Every status IT can set, in the console's order.
    pub const SETTABLE: [TriageStatus; 5] = [
        TriageStatus::New,
        TriageStatus::Investigating,
        TriageStatus::Phishing,
        TriageStatus::Spam,
        TriageStatus::Safe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriageStatus::New => "new",
            TriageStatus::Investigating => "investigating",
            TriageStatus::Phishing => "phishing",
            TriageStatus::Spam => "spam",
            TriageStatus::Safe => "safe",
            TriageStatus::Unknown => "unknown",
        }
    }

    /// The status stored as `s`; `Unknown` for anything else.
    pub fn parse(s: &str) -> TriageStatus {
        TriageStatus::SETTABLE
            .into_iter()
            .find(|t| t.as_str() == s)
            .unwrap_or(TriageStatus::Unknown)
    }

    /// A verdict: IT is done with the report, so the agent stops asking about it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TriageStatus::Phishing | TriageStatus::Spam | TriageStatus::Safe
        )
    }
}

/// `GET /api/v1/agent/phishing-reports[/{tracking_id}]`: a report this device sent and what
/// IT made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhishingReportStatus {
    pub tracking_id: String,
    pub received_at: DateTime<Utc>,
    pub status: TriageStatus,
    /// What IT tells the reporter (plain text, never markup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// When IT last changed the status or the reply; `None` while untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAck {
    /// The etag of the device's effective policy, so the agent knows whether to fetch it.
    pub policy_etag: String,
}

/// A policy as the server hands it to a device, signed with the key the device pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedPolicy {
    /// The policy document exactly as stored (the agent parses it leniently).
    pub policy: serde_json::Value,
    pub version: i64,
    pub group: String,
    pub etag: String,
    /// Ed25519 over [`crate::canonical::policy_signing_bytes`], base64 (standard, padded).
    pub signature: String,
}

/// `GET /api/v1/agent/identity`: what IT's identity provider knows about the device's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdentityFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_enrolled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_url: Option<String>,
    /// Which identity source said so (`okta`, `entra`, `google`, `duo`, `import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the source last confirmed these facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
}

/// Admin API: one device in `GET /api/v1/admin/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminDevice {
    pub id: Uuid,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub group: String,
    pub user_login: String,
    pub enrolled_at: DateTime<Utc>,
    pub last_report_at: Option<DateTime<Utc>>,
    pub policy_version: Option<i64>,
    pub results: Vec<CheckResult>,
}

/// Admin API: answer to `PUT /api/v1/admin/groups/{group}/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub group: String,
    pub version: i64,
    pub etag: String,
}
