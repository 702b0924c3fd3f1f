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
    /// An admin linked an identity-provider account to a console account by hand.
    pub const OIDC_LINK: &str = "console_admin.oidc_link";
    pub const OIDC_UNLINK: &str = "console_admin.oidc_unlink";
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

/// Why a password sign-in to an existing account failed, as the audit log records it. The
/// password and the code themselves are never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFailure {
    BadPassword,
    /// The password was right, the TOTP code was not: worth an admin's attention.
    BadTotp,
    /// The account was locked when the attempt came.
    Locked,
    Disabled,
    /// A right code that was used already (replay, or two sign-ins in one step).
    TotpReused,
}

impl SignInFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInFailure::BadPassword => "bad_password",
            SignInFailure::BadTotp => "bad_totp",
            SignInFailure::Locked => "locked",
            SignInFailure::Disabled => "disabled",
            SignInFailure::TotpReused => "totp_reused",
        }
    }

    /// Whether the attempt counts towards the lock: guesses do; attempts on a locked or
    /// disabled account, and a reused right code, do not.
    pub fn counts(self) -> bool {
        matches!(self, SignInFailure::BadPassword | SignInFailure::BadTotp)
    }
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

// OpenID Connect sign-in (issue 7). Kept apart from the password sign-in above: an identity
// provider's account signs in as an existing console account, never creates one.

/// The audit action of every sign-in, by password and code or by OpenID Connect.
pub const SIGN_IN_ACTION: &str = "console.sign_in";
/// A failed password sign-in to an existing account, with its reason. Attempts on unknown
/// usernames are not recorded: anyone could fill the log with names of their choosing.
pub const SIGN_IN_FAILED_ACTION: &str = "console.sign_in_failed";
/// Too many failed attempts locked an account.
pub const LOCKOUT_ACTION: &str = "console.lockout";
pub const SIGN_OUT_ACTION: &str = "console.sign_out";
/// How a password sign-in is named in the audit log's `method`.
pub const PASSWORD_METHOD: &str = "password+totp";

/// An identity-provider account linked to a console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLink {
    pub admin_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub linked_at: DateTime<Utc>,
}

/// What linking an identity by hand came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcLinkOutcome {
    /// Linked (replacing the account's earlier link to that issuer, if any).
    Linked,
    NoSuchAccount,
    /// That subject is linked to another account already; nothing changed.
    SubjectTaken,
}

/// A verified OpenID Connect sign-in, to be recorded with its session and audit entry.
#[derive(Debug, Clone)]
pub struct OidcSignIn {
    pub admin_id: Uuid,
    pub username: String,
    pub issuer: String,
    pub subject: String,
    /// Link (issuer, subject) to the account in the same transaction: the first sign-in,
    /// matched by verified email.
    pub link: bool,
    /// The ID token's `amr` (how the provider authenticated the person), for the audit log.
    pub amr: Vec<String>,
    pub session: NewConsoleSession,
}

/// What recording an OpenID Connect sign-in came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcSignInOutcome {
    SignedIn,
    /// The account is disabled or locked (checked again in the transaction).
    Refused,
    /// The account is already linked to another subject of this issuer.
    LinkedElsewhere,
}
