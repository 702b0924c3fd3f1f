//! Storage: the `Store` trait every backend implements, its record types, and `open`, which
//! picks the backend from the database URL's scheme.
//!
//! The trait speaks in domain operations ("enrol this device with this secret", "ingest this
//! report"), not in tables, so that each backend can use its own SQL dialect, locking and
//! notification mechanism (SQLite polls a change feed; PostgreSQL will LISTEN/NOTIFY) while
//! the HTTP layer stays the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tandem_proto::v1::{AdminDevice, DeviceInfo, StatusReport, UserInfo};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub::PolicyHub;

pub mod sqlite;

/// The group every device falls back to, created by the first migration of every backend.
pub const DEFAULT_GROUP: &str = "default";

/// SHA-256 of a device token, API token or enrolment secret. Secrets are 256 random bits,
/// so a fast hash is enough: there is nothing to brute-force.
pub type SecretHash = [u8; 32];

/// What a backend reports when it cannot do its job.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("could not migrate the database schema")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database URL scheme `{0}` is not supported (use sqlite://PATH)")]
    UnsupportedUrl(String),
    #[error("PostgreSQL storage is not supported yet; use sqlite://PATH")]
    PostgresNotYetSupported,
    /// Stored data that no longer parses: a bug or a hand-edited database.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database is only busy (locked, pool exhausted) rather than broken, so that
    /// the API can answer 503 with `Retry-After` instead of 500.
    pub fn is_overloaded(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes;
                // PostgreSQL's lock_not_available (55P03) and too_many_connections (53300).
                let code = e.code();
                let code = code.as_deref().unwrap_or_default();
                let primary = code.parse::<i64>().map(|c| c & 0xff).ok();
                matches!(primary, Some(5 | 6)) || matches!(code, "55P03" | "53300")
            }
            _ => false,
        }
    }
}

/// The background loop of [`Store::policy_change_feed`]. It logs its own errors and keeps
/// going, since a busy database now and then must not end the feed.
pub type ChangeFeed = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Backend settings that do not belong in the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How often a backend without push notifications looks for policy versions written by
    /// other processes (the `tandem-server policy push` command, another server).
    pub change_poll_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            change_poll_interval: Duration::from_secs(1),
        }
    }
}

/// Opens the database named by `url`, running its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or(url);
    match scheme {
        "sqlite" => Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?)),
        "postgres" | "postgresql" => Err(StoreError::PostgresNotYetSupported),
        other => Err(StoreError::UnsupportedUrl(other.to_owned())),
    }
}

/// An API token's permission level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May change policy, secrets and devices.
    Admin,
    /// May only read.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEnrollSecret {
    pub id: Uuid,
    pub hash: SecretHash,
    /// Created when missing.
    pub group: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<u32>,
}

/// A device asking to enrol, already validated by the API layer.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The id a brand-new device gets; a re-enrolling machine keeps its old id.
    pub candidate_id: Uuid,
    pub token_hash: SecretHash,
    pub device: DeviceInfo,
    pub user: UserInfo,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    Enrolled {
        device_id: Uuid,
        group: String,
    },
    /// The secret is unknown, revoked, expired or used up. Which one is not said, so that a
    /// guesser learns nothing.
    BadSecret,
}

/// The device a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedDevice {
    pub id: Uuid,
    pub group: String,
}

/// A validated report, with the body exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct NewReport<'a> {
    pub device_id: Uuid,
    pub report: &'a StatusReport,
    pub raw: &'a str,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Stored,
    /// This device already sent a report with this id; nothing was written.
    Replayed,
}

/// One immutable version of a group's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    pub group: String,
    pub version: i64,
    pub body: Value,
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct NewPolicy {
    /// Created when missing.
    pub group: String,
    pub body: Value,
    pub created_at: DateTime<Utc>,
    /// Who made the change, for the audit trail (`token:<id>`, `cli`).
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PutPolicyOutcome {
    Created(StoredPolicy),
    /// The document equals the group's latest version, which is returned unchanged, so that
    /// pushing the same file twice does not wake every agent for nothing.
    Unchanged(StoredPolicy),
}

impl PutPolicyOutcome {
    pub fn policy(&self) -> &StoredPolicy {
        match self {
            PutPolicyOutcome::Created(p) | PutPolicyOutcome::Unchanged(p) => p,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub hash: SecretHash,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedApiToken {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// Everything the server persists. Implementations must make each method atomic: a failed
/// call leaves nothing half-written.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Returns the server's Ed25519 secret key, storing `candidate` first if there is none yet.
    /// Replicas starting together all end up with the one key that won.
    async fn signing_key_or_insert(
        &self,
        candidate: &[u8; 32],
        candidate_public: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<[u8; 32], StoreError>;

    async fn group_exists(&self, group: &str) -> Result<bool, StoreError>;

    async fn create_enroll_secret(&self, secret: &NewEnrollSecret) -> Result<(), StoreError>;

    /// Consumes one use of the secret and creates (or, for a known `machine_id`, reuses)
    /// the device, revoking the device's earlier tokens in favour of the new one.
    async fn enroll(
        &self,
        secret_hash: &SecretHash,
        device: &NewDevice,
    ) -> Result<EnrollOutcome, StoreError>;

    /// The device a token belongs to, unless the token or the device is revoked.
    async fn device_by_token(&self, hash: &SecretHash) -> Result<Option<AuthedDevice>, StoreError>;

    async fn ingest_report(&self, report: NewReport<'_>) -> Result<IngestOutcome, StoreError>;

    /// The latest version of `group`'s policy, else of the default group's; `None` when
    /// neither has one (the built-in defaults apply).
    async fn effective_policy(&self, group: &str) -> Result<Option<StoredPolicy>, StoreError>;

    async fn put_policy(&self, policy: &NewPolicy) -> Result<PutPolicyOutcome, StoreError>;

    async fn record_policy_delivered(&self, device: Uuid, version: i64) -> Result<(), StoreError>;

    async fn create_api_token(&self, token: &NewApiToken) -> Result<(), StoreError>;

    async fn api_token_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<AuthedApiToken>, StoreError>;

    /// Every device that is not revoked, with its latest result per check.
    async fn list_devices(&self) -> Result<Vec<AdminDevice>, StoreError>;

    /// Starts following policy versions written by other processes (the CLI, other
    /// replicas) and returns the loop that feeds them into `hub` until `shutdown` fires.
    /// Everything written after this call returns is reported, so the server awaits it
    /// before it serves. SQLite polls its change feed; PostgreSQL will LISTEN. Versions
    /// written through this process are published by the caller at once, not by this feed.
    async fn policy_change_feed(
        &self,
        hub: Arc<PolicyHub>,
        shutdown: CancellationToken,
    ) -> Result<ChangeFeed, StoreError>;
}
