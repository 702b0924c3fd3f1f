//! Records the IT console stores: admin accounts, sessions, compliance history and phishing
//! triage. The `Store` methods that read and write them are at the end of the trait.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{Role, SecretHash};

/// Audit-log actions of console changes.
pub mod action {
    pub const ADMIN_CREATE: &str = "console_admin.create";
    pub const ADMIN_ROLE: &str = "console_admin.role";
    pub const ADMIN_DISABLE: &str = "console_admin.disable";
    pub const API_TOKEN_REVOKE: &str = "api_token.revoke";
    pub const PHISHING_TRIAGE: &str = "phishing_report.triage";
}

#[derive(Debug, Clone)]
pub struct NewConsoleAdmin {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// Base32, as the authenticator app was given it.
    pub totp_secret: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// An account with what signing in needs. Never rendered: it holds the secrets.
#[derive(Clone)]
pub struct ConsoleAdminAuth {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub totp_secret: String,
    pub totp_last_step: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
}

impl std::fmt::Debug for ConsoleAdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAdminAuth")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An account as the admins page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAdminInfo {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewConsoleSession {
    pub token_hash: SecretHash,
    pub admin_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The signed-in account behind a session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub admin_id: Uuid,
    pub username: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// A failed sign-in's consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Fewer failures than the limit so far.
    Counted,
    /// The limit was reached: the account is locked until then.
    Locked(DateTime<Utc>),
}

/// The fleet's compliance for one check on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCompliance {
    pub day: NaiveDate,
    pub check_id: String,
    pub pass: i64,
    pub due: i64,
    pub overdue: i64,
    pub unknown: i64,
}

/// One check's status in one stored report, read back for a device's history.
#[derive(Debug, Clone)]
pub struct StoredReportBody {
    pub received_at: DateTime<Utc>,
    /// Exactly as the device sent it (untrusted).
    pub body: String,
}

/// An API token as the tokens page lists it (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// IT's triage of a phishing report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhishingTriage {
    pub report_id: Uuid,
    /// `new`, `investigating`, `phishing`, `spam`, `safe`.
    pub status: String,
    /// What the reporter is told.
    pub reply: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// The statuses a triage may take.
pub const TRIAGE_STATUSES: [&str; 5] = ["new", "investigating", "phishing", "spam", "safe"];
