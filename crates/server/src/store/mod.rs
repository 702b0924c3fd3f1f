//! Storage: the `Store` trait every backend implements, its record types, and `open`, which
//! picks the backend from the database URL's scheme.
//!
//! The trait speaks in domain operations ("enrol this device with this secret", "ingest this
//! report"), not in tables, so that each backend can use its own SQL dialect, locking and
//! notification mechanism (SQLite polls a change feed; PostgreSQL LISTENs) while the HTTP
//! layer stays the same.
//!
//! Every admin change (a policy version, a secret, a token, a revoked device, a group) is
//! written together with its audit-log row in one transaction: there is no change without
//! its record and no record of a change that did not happen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tandem_proto::v1::{AdminDevice, DeviceInfo, EventKind, StatusReport, UserInfo};
use tandem_proto::{CheckId, Status};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::hub::PolicyHub;

pub mod console;
pub mod integrations;
pub mod postgres;
pub mod releases;
pub mod sqlite;
pub mod token_cache;

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
    #[error("database URL scheme `{0}` is not supported (use sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
    /// The database was too busy for a batch this request was part of; try again.
    #[error("the database is busy")]
    Busy,
    /// Stored data that no longer parses: a bug or a hand-edited database.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database is only busy (locked, pool exhausted) rather than broken, so that
    /// the API can answer 503 with `Retry-After` instead of 500.
    pub fn is_overloaded(&self) -> bool {
        match self {
            StoreError::Busy | StoreError::Database(sqlx::Error::PoolTimedOut) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including their extended codes;
                // PostgreSQL's lock_not_available (55P03), too_many_connections (53300),
                // serialization_failure (40001) and deadlock_detected (40P01): all of them
                // succeed when the client simply tries again.
                let code = e.code();
                let code = code.as_deref().unwrap_or_default();
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    let primary = code.parse::<i64>().map(|c| c & 0xff).ok();
                    matches!(primary, Some(5 | 6))
                } else {
                    matches!(code, "55P03" | "53300" | "40001" | "40P01")
                }
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
    /// Also how long PostgreSQL's change feed waits before it retries a lost connection.
    pub change_poll_interval: Duration,
    /// The most connections a PostgreSQL pool opens (SQLite decides for itself).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            change_poll_interval: Duration::from_secs(1),
            max_connections: 16,
        }
    }
}

/// Opens the database named by `url`, running its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or(url);
    match scheme {
        "sqlite" => Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(
            postgres::PostgresStore::connect(url, options).await?,
        )),
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
    /// Who created it, for the audit log.
    pub created_by: String,
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
    /// Each of `report.results` as JSON, in order, when the caller serialized them already:
    /// the request handlers run in parallel, while a batch is written by one task. `None`:
    /// the store serializes them.
    pub result_texts: Option<&'a [String]>,
    /// `raw` as [`Store::pack_report_body`] packed it, when the caller did so already (for
    /// the same reason). `None`: the store packs it, if it packs bodies at all.
    pub raw_packed: Option<&'a [u8]>,
}

impl NewReport<'_> {
    /// The JSON of `report.results[n]`.
    pub(crate) fn result_text(&self, n: usize) -> Result<std::borrow::Cow<'_, str>, StoreError> {
        match self.result_texts.and_then(|texts| texts.get(n)) {
            Some(text) => Ok(std::borrow::Cow::Borrowed(text.as_str())),
            None => {
                let result = self
                    .report
                    .results
                    .get(n)
                    .ok_or_else(|| StoreError::Corrupt(format!("report has no result {n}")))?;
                to_json_text(result).map(std::borrow::Cow::Owned)
            }
        }
    }
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
    /// Who created it, for the audit log.
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthedApiToken {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// Who makes an admin change and when; the audit log records both.
#[derive(Debug, Clone)]
pub struct ChangeBy {
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// The names of audit-log actions.
pub mod action {
    pub const POLICY_PUT: &str = "policy.put";
    pub const GROUP_CREATE: &str = "group.create";
    pub const ENROLL_SECRET_CREATE: &str = "enroll_secret.create";
    pub const ENROLL_SECRET_EXPIRE: &str = "enroll_secret.expire";
    pub const API_TOKEN_CREATE: &str = "api_token.create";
    pub const DEVICE_REVOKE: &str = "device.revoke";
    pub const IDENTITY_IMPORT: &str = "identity.import";
    pub const RELEASE_CREATE: &str = "release.create";
    pub const GROUP_CHANNEL_SET: &str = "group.channel";
}

/// What one identity source says about one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdentityFact {
    pub email: Option<String>,
    pub login: Option<String>,
    pub mfa_enrolled: Option<bool>,
    pub password_changed_at: Option<DateTime<Utc>>,
    /// `okta`, `entra`, `google`, `duo`, `import`, or a configured source's name.
    pub source: String,
    /// When the source last confirmed these facts.
    pub as_of: DateTime<Utc>,
}

impl IdentityFact {
    /// The key devices are matched by: the lower-cased email, else the lower-cased login.
    pub fn user_key(&self) -> Option<String> {
        self.email
            .as_deref()
            .or(self.login.as_deref())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_lowercase)
    }
}

/// A suspicious message a user reported, as validated by the API.
#[derive(Debug, Clone)]
pub struct NewPhishingReport {
    pub id: Uuid,
    pub tracking_id: String,
    pub device_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub url: Option<String>,
    pub note: Option<String>,
    pub subject: Option<String>,
    /// The `.eml` exactly as uploaded.
    pub message: Option<Vec<u8>>,
}

/// A phishing report in IT's inbox (the message itself is fetched separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhishingReportInfo {
    pub id: Uuid,
    pub tracking_id: String,
    pub device_id: Uuid,
    pub hostname: String,
    pub user_login: String,
    pub user_email: Option<String>,
    pub received_at: DateTime<Utc>,
    pub url: Option<String>,
    pub note: Option<String>,
    pub subject: Option<String>,
    /// Size of the uploaded message; `None` for a URL report.
    pub message_bytes: Option<i64>,
}

/// One configured identity source's last poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceHealth {
    pub name: String,
    pub kind: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last run failed; `None` when it succeeded.
    pub last_error: Option<String>,
    /// Users the last successful run returned.
    pub users: Option<i64>,
}

/// One row of the audit log: who did what to which thing, when, and the thing before and
/// after (`null` where it did not exist). Secrets never appear in it, only their ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    /// What was changed, e.g. `group:eng`, `device:<id>`, `enroll_secret:<id>`.
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries with an id below this one (the previous page's last id).
    pub before_id: Option<i64>,
    pub action: Option<String>,
    pub limit: u32,
}

/// Which devices `list_devices` returns. `check` and `status` together select devices whose
/// latest result for that check has that status; either alone selects devices with any
/// such result. `search` matches hostname, user login or email, case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub group: Option<String>,
    pub check: Option<CheckId>,
    pub status: Option<Status>,
    pub search: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// One device of the admin list: the v1 `AdminDevice` plus what the server learnt since.
/// Flattened, so a client that knows only `AdminDevice` reads it unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceSummary {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub device: AdminDevice,
    /// The etag of the policy the agent says it applied (its latest report).
    pub applied_policy_etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DevicePage {
    pub devices: Vec<DeviceSummary>,
    /// How many devices match the filter, over all pages.
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSummary {
    pub report_id: Uuid,
    pub received_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRecord {
    #[schema(value_type = String)]
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub check_id: Option<CheckId>,
    pub detail: Option<String>,
    pub report_id: Uuid,
}

/// `GET /api/v1/admin/devices/{id}`: everything known about one device, revoked or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub summary: DeviceSummary,
    pub machine_id: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub user_email: Option<String>,
    pub agent_version: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The newest reports first.
    pub reports: Vec<ReportSummary>,
    /// The events the device sent last, the newest (by their time) first.
    pub events: Vec<EventRecord>,
    /// The newest report's body exactly as the device sent it (untrusted text).
    pub last_report: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollSecretInfo {
    pub id: Uuid,
    pub group: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    /// When an admin expired it by hand.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl EnrollSecretInfo {
    /// Whether a device could enrol with it at `now`.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|t| t > now)
            && self.max_uses.is_none_or(|m| self.uses < m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Enrolled devices that are not revoked.
    pub devices: i64,
    /// The group's own latest policy version; `None` when it follows the default group.
    pub policy_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVersionInfo {
    pub group: String,
    pub version: i64,
    pub etag: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVersionDetail {
    #[serde(flatten)]
    pub info: PolicyVersionInfo,
    pub policy: Value,
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

    /// A raw report body in the form this store keeps it, for [`NewReport::raw_packed`];
    /// `None` for a store that keeps bodies as they are. Only this store reads what it
    /// returns, and every reader gets the body back byte for byte.
    fn pack_report_body(&self, _raw: &str) -> Option<Vec<u8>> {
        None
    }

    /// Stores several reports in one transaction, their outcomes in order. If it fails,
    /// nothing of the batch is stored. The default stores them one by one.
    async fn ingest_reports(
        &self,
        reports: &[NewReport<'_>],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(reports.len());
        for new in reports {
            outcomes.push(self.ingest_report(*new).await?);
        }
        Ok(outcomes)
    }

    /// Deletes raw reports received before `before`, except each device's newest (the device
    /// page shows it), at most `batch` rows per call so no call holds the database for long.
    /// Returns how many were deleted. The latest results and the events stay.
    async fn prune_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError>;

    /// Claims the "became overdue" notice of one device × check × deadline; `true` for the
    /// first caller only, so that of several replicas exactly one sends the webhook.
    async fn claim_overdue_notice(
        &self,
        device: Uuid,
        check: &str,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    // Agent releases for the updater (issue 8).

    /// Stores a release (its artifact once per content) with its audit entry, then deletes
    /// the channel and target's releases beyond the newest `keep` and artifacts no release
    /// uses any more. `false` when that channel, target and version exist: nothing written.
    async fn create_release(
        &self,
        release: &releases::NewRelease,
        keep: u32,
    ) -> Result<bool, StoreError>;

    /// The newest release for `target` on the channel `group` follows (`stable` unless IT
    /// chose another).
    async fn offered_release(
        &self,
        group: &str,
        target: &str,
    ) -> Result<Option<releases::ReleaseInfo>, StoreError>;

    /// Every stored release, newest upload first.
    async fn list_releases(&self) -> Result<Vec<releases::ReleaseInfo>, StoreError>;

    /// The artifact with this SHA-256 (lower-case hex), if a release still uses it.
    async fn release_artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The channel of every group that follows another than `stable`, by group name.
    async fn group_channels(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Points a group at a channel, with its audit entry; `false` when there is no such
    /// group. Setting the channel it already follows changes and records nothing.
    async fn set_group_channel(
        &self,
        group: &str,
        channel: &str,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// The latest version of `group`'s policy, else of the default group's; `None` when
    /// neither has one (the built-in defaults apply).
    async fn effective_policy(&self, group: &str) -> Result<Option<StoredPolicy>, StoreError>;

    /// Stores the next version of a group's policy (creating the group when missing) and its
    /// audit entry, unless the document equals the latest version.
    async fn put_policy(&self, policy: &NewPolicy) -> Result<PutPolicyOutcome, StoreError>;

    /// A group's versions, oldest first; empty for an unknown group.
    async fn policy_versions(&self, group: &str) -> Result<Vec<PolicyVersionInfo>, StoreError>;

    async fn policy_version(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Option<PolicyVersionDetail>, StoreError>;

    /// Groups by name.
    async fn list_groups(&self) -> Result<Vec<GroupInfo>, StoreError>;

    /// Creates a group; `false` when it exists already (nothing is written then).
    async fn create_group(&self, name: &str, by: &ChangeBy) -> Result<bool, StoreError>;

    /// Every enrolment secret, newest first (hashes are never returned).
    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecretInfo>, StoreError>;

    /// Stops a secret from enrolling anyone; `None` when there is no such secret. Expiring
    /// an expired secret changes nothing and records nothing.
    async fn expire_enroll_secret(
        &self,
        id: Uuid,
        by: &ChangeBy,
    ) -> Result<Option<EnrollSecretInfo>, StoreError>;

    /// Revokes a device and all its tokens, so its next request is told to enrol again.
    /// `false` when there is no such device. Revoking twice changes nothing the second time.
    async fn revoke_device(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError>;

    /// One device with its latest results and up to `history` recent reports and events:
    /// the reports and the events it sent last (the events shown newest by their own time
    /// first), so that a device whose clock ran ahead cannot pin old events to the top.
    async fn device_detail(
        &self,
        id: Uuid,
        history: u32,
    ) -> Result<Option<DeviceDetail>, StoreError>;

    /// The audit log, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Stores what identity sources say, replacing each (source, user)'s earlier facts, all
    /// or nothing. With `by`, records an `identity.import` audit entry too. Facts without a
    /// user key must have been rejected by the caller; they are skipped here.
    async fn upsert_identities(
        &self,
        facts: &[IdentityFact],
        by: Option<&ChangeBy>,
    ) -> Result<u64, StoreError>;

    /// The freshest fact about a device's user, matched by email, else by login.
    async fn identity_for_device(&self, device: Uuid) -> Result<Option<IdentityFact>, StoreError>;

    /// Facts by user key, optionally only those whose key contains `search`.
    async fn list_identities(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<IdentityFact>, StoreError>;

    async fn record_source_health(&self, health: &SourceHealth) -> Result<(), StoreError>;

    async fn create_phishing_report(&self, report: &NewPhishingReport) -> Result<(), StoreError>;

    /// How many of a device's latest results are `fail`.
    async fn failing_checks(&self, device: Uuid) -> Result<i64, StoreError>;

    /// The inbox, newest first.
    async fn list_phishing_reports(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<PhishingReportInfo>, StoreError>;

    /// The uploaded message of a report; `None` when there is no such report or it was a URL.
    async fn phishing_message(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    async fn list_source_health(&self) -> Result<Vec<SourceHealth>, StoreError>;

    async fn record_policy_delivered(&self, device: Uuid, version: i64) -> Result<(), StoreError>;

    /// Many deliveries at once (the write-behind after a push). The default writes them one
    /// by one.
    async fn record_policies_delivered(
        &self,
        deliveries: &[(Uuid, i64)],
    ) -> Result<(), StoreError> {
        for (device, version) in deliveries {
            self.record_policy_delivered(*device, *version).await?;
        }
        Ok(())
    }

    async fn create_api_token(&self, token: &NewApiToken) -> Result<(), StoreError>;

    async fn api_token_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<AuthedApiToken>, StoreError>;

    /// The devices that are not revoked and match `filter`, ordered by hostname, with their
    /// latest result per check.
    async fn list_devices(&self, filter: &DeviceFilter) -> Result<DevicePage, StoreError>;

    /// Starts following policy versions written by other processes (the CLI, other
    /// replicas) and returns the loop that feeds them into `hub` until `shutdown` fires.
    /// Everything written after this call returns is reported, so the server awaits it
    /// before it serves. SQLite polls its change feed; PostgreSQL LISTENs. Versions
    /// written through this process are published by the caller at once, not by this feed.
    async fn policy_change_feed(
        &self,
        hub: Arc<PolicyHub>,
        shutdown: CancellationToken,
    ) -> Result<ChangeFeed, StoreError>;

    // The IT console (issue 7): admin accounts, sessions, compliance history, triage.

    /// Creates a console account with its audit entry; `false` when the username is taken.
    async fn create_console_admin(
        &self,
        admin: &console::NewConsoleAdmin,
    ) -> Result<bool, StoreError>;

    async fn console_admin_by_username(
        &self,
        username: &str,
    ) -> Result<Option<console::ConsoleAdminAuth>, StoreError>;

    /// Records a failed sign-in to an existing account with its `console.sign_in_failed`
    /// audit entry; when `reason` counts, counts it, and at `max_failures` the account locks
    /// until `now + lock_for` (a `console.lockout` entry) and the count starts again.
    async fn console_login_failed(
        &self,
        admin: Uuid,
        reason: console::SignInFailure,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: chrono::Duration,
    ) -> Result<console::LoginFailure, StoreError>;

    /// Records a successful sign-in with TOTP time step `step` and opens the session, with
    /// its `console.sign_in` audit entry, unless a code of that step or a later one was used
    /// already (a replayed code): `false` then, and nothing is written.
    async fn console_login_succeeded(
        &self,
        step: i64,
        session: &console::NewConsoleSession,
    ) -> Result<bool, StoreError>;

    /// The account behind a session, unless it expired or the account is disabled.
    async fn console_session(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<console::ConsoleSession>, StoreError>;

    /// Ends a session, with a `console.sign_out` audit entry at `now` when there was one.
    async fn delete_console_session(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Accounts by username.
    async fn list_console_admins(&self) -> Result<Vec<console::ConsoleAdminInfo>, StoreError>;

    /// Changes an account's role; `false` when there is no such account.
    async fn set_console_admin_role(
        &self,
        id: Uuid,
        role: Role,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// Disables an account and ends its sessions; `false` when there is no such account.
    async fn disable_console_admin(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError>;

    /// Brings the "failing since" table up to date with the latest results: a check that
    /// fails (or warns) now and did not before starts its streak at its observation time; a
    /// check that no longer fails ends its streak.
    async fn refresh_failing_since(&self) -> Result<(), StoreError>;

    /// Every open failing streak: (device, check id, since).
    async fn failing_since(&self) -> Result<Vec<(Uuid, String, DateTime<Utc>)>, StoreError>;

    /// Stores one day's counts, replacing that day's earlier counts.
    async fn record_daily_compliance(
        &self,
        days: &[console::DailyCompliance],
    ) -> Result<(), StoreError>;

    /// Stored days from `from` on, oldest first.
    async fn daily_compliance(
        &self,
        from: chrono::NaiveDate,
    ) -> Result<Vec<console::DailyCompliance>, StoreError>;

    /// A device's newest stored reports, newest first.
    async fn device_report_bodies(
        &self,
        device: Uuid,
        limit: u32,
    ) -> Result<Vec<console::StoredReportBody>, StoreError>;

    /// API tokens, newest first.
    async fn list_api_tokens(&self) -> Result<Vec<console::ApiTokenInfo>, StoreError>;

    /// Revokes an API token; `false` when there is no such token or it was revoked already.
    async fn revoke_api_token(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError>;

    /// Sets a phishing report's triage; `false` when there is no such report.
    async fn set_phishing_triage(
        &self,
        triage: &console::PhishingTriage,
    ) -> Result<bool, StoreError>;

    async fn list_phishing_triage(&self) -> Result<Vec<console::PhishingTriage>, StoreError>;

    // Identity sources and webhooks configured in the console (issue 7). Each change is
    // written with its audit entry, secrets redacted (`integrations::redacted`).

    /// Console-configured identity sources, by name.
    async fn list_source_configs(
        &self,
    ) -> Result<Vec<integrations::StoredSourceConfig>, StoreError>;

    /// Stores a new source, due for a poll at once; `false` when the name is taken.
    async fn create_source_config(
        &self,
        source: &integrations::StoredSourceConfig,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// Replaces a source's configuration and makes it due at once; `false` when missing.
    async fn update_source_config(
        &self,
        source: &integrations::StoredSourceConfig,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// Deletes a source and its health; `false` when missing. Facts it stored stay.
    async fn delete_source_config(&self, name: &str, by: &ChangeBy) -> Result<bool, StoreError>;

    /// Claims the next poll of source `name` when it is due at `now` (or was never
    /// polled), moving its due time to `next` in the same statement: of several replicas
    /// asking at once, exactly one gets `true`.
    async fn claim_source_poll(
        &self,
        name: &str,
        kind: &str,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Console-configured webhooks, by name.
    async fn list_webhook_configs(&self) -> Result<Vec<integrations::StoredWebhook>, StoreError>;

    /// Stores a new hook; `false` when the name is taken.
    async fn create_webhook_config(
        &self,
        hook: &integrations::StoredWebhook,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// Replaces a hook's configuration (its name stays); `false` when missing.
    async fn update_webhook_config(
        &self,
        hook: &integrations::StoredWebhook,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    /// Deletes a hook; `false` when missing.
    async fn delete_webhook_config(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError>;

    /// Replaces source `name`'s configuration with `after` (the same settings with their
    /// secrets sealed, `secrets.rs`) when it still is `before`; `false` when it changed or
    /// went meanwhile. Not audited: no setting changes, only how the database holds it.
    async fn reseal_source_config(
        &self,
        name: &str,
        before: &Value,
        after: &Value,
    ) -> Result<bool, StoreError>;

    /// The same for webhook `id`.
    async fn reseal_webhook_config(
        &self,
        id: Uuid,
        before: &Value,
        after: &Value,
    ) -> Result<bool, StoreError>;

    // OpenID Connect sign-in to the console (issue 7). An identity provider's account signs
    // in as an existing console account only; roles stay local.

    /// The account linked to the provider account (`issuer`, `subject`).
    async fn console_admin_by_oidc(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<console::ConsoleAdminAuth>, StoreError>;

    /// The accounts whose username equals `email`, compared case-insensitively (ASCII);
    /// the caller refuses anything but exactly one.
    async fn console_admins_by_email(
        &self,
        email: &str,
    ) -> Result<Vec<console::ConsoleAdminAuth>, StoreError>;

    /// Opens the session of a verified OpenID Connect sign-in, linking the provider account
    /// first when asked, with its `console.sign_in` audit entry, in one transaction; nothing
    /// is written unless the outcome is `SignedIn`.
    async fn console_oidc_sign_in(
        &self,
        sign_in: &console::OidcSignIn,
    ) -> Result<console::OidcSignInOutcome, StoreError>;

    /// Every identity-provider link, by account.
    async fn list_console_oidc_links(&self) -> Result<Vec<console::OidcLink>, StoreError>;

    /// Links (`issuer`, `subject`) to account `admin` by hand, replacing the account's
    /// earlier link to that issuer, audited with before and after. For providers that do
    /// not vouch for emails (Microsoft Entra sends no `email_verified`).
    async fn link_console_oidc(
        &self,
        admin: Uuid,
        issuer: &str,
        subject: &str,
        by: &ChangeBy,
    ) -> Result<console::OidcLinkOutcome, StoreError>;

    /// Removes account `admin`'s link to `issuer`, audited; `false` when there was none.
    async fn unlink_console_oidc(
        &self,
        admin: Uuid,
        issuer: &str,
        by: &ChangeBy,
    ) -> Result<bool, StoreError>;

    // What a reporter sees of IT's triage (issues 6 and 7).

    /// The phishing reports `device` sent, newest first, each with IT's triage (`new` while
    /// untouched); with `tracking_id`, only that report, and nothing when another device
    /// sent it.
    async fn device_phishing_reports(
        &self,
        device: Uuid,
        tracking_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<tandem_proto::v1::PhishingReportStatus>, StoreError>;
}

// Helpers both backends share: JSON columns, enum columns and the device filter.

pub(crate) fn parse_json(s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

pub(crate) fn parse_opt_json(s: Option<String>) -> Result<Option<Value>, StoreError> {
    s.as_deref().map(parse_json).transpose()
}

pub(crate) fn to_json_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("serialize JSON: {e}")))
}

/// Reads back a unit enum stored as its serde name (`nudge_shown`, `os_updates`).
pub(crate) fn parse_name<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|e| StoreError::Corrupt(format!("stored name `{s}`: {e}")))
}

pub(crate) fn parse_check_result(s: &str) -> Result<tandem_proto::CheckResult, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored check result: {e}")))
}

/// The facts to store, one per (source, user key), the last one given winning; sorted so
/// that concurrent writers lock rows in the same order. Facts without a key are dropped.
pub(crate) fn latest_per_user(facts: &[IdentityFact]) -> Vec<(String, &IdentityFact)> {
    let mut latest: std::collections::BTreeMap<(&str, String), &IdentityFact> =
        std::collections::BTreeMap::new();
    for fact in facts {
        if let Some(key) = fact.user_key() {
            latest.insert((fact.source.as_str(), key), fact);
        }
    }
    latest.into_iter().map(|((_, key), f)| (key, f)).collect()
}

/// A `LIKE` pattern matching `text` anywhere, with the wildcards in `text` escaped by `\`.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The `WHERE` clause of `list_devices` over `devices d`, and its text parameters in order.
/// `placeholder` yields the backend's next parameter marker (`?` or `$n`).
pub(crate) fn device_filter_sql(
    filter: &DeviceFilter,
    mut placeholder: impl FnMut() -> String,
) -> (String, Vec<String>) {
    let mut sql = String::from(" WHERE d.revoked_at IS NULL");
    let mut params = Vec::new();
    if let Some(group) = &filter.group {
        sql.push_str(&format!(" AND d.group_name = {}", placeholder()));
        params.push(group.clone());
    }
    if let Some(search) = &filter.search {
        let pattern = contains_pattern(search);
        let (a, b, c) = (placeholder(), placeholder(), placeholder());
        sql.push_str(&format!(
            " AND (lower(d.hostname) LIKE {a} ESCAPE '\\' OR lower(d.user_login) LIKE {b} ESCAPE '\\' \
             OR lower(COALESCE(d.user_email, '')) LIKE {c} ESCAPE '\\')"
        ));
        params.extend([pattern.clone(), pattern.clone(), pattern]);
    }
    if filter.check.is_some() || filter.status.is_some() {
        sql.push_str(" AND EXISTS (SELECT 1 FROM latest_results r WHERE r.device_id = d.id");
        if let Some(check) = filter.check {
            sql.push_str(&format!(" AND r.check_id = {}", placeholder()));
            params.push(check.as_str().to_owned());
        }
        if let Some(status) = filter.status {
            sql.push_str(&format!(" AND r.status = {}", placeholder()));
            params.push(status.as_str().to_owned());
        }
        sql.push(')');
    }
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }

    #[test]
    fn the_device_filter_numbers_its_parameters() {
        let filter = DeviceFilter {
            group: Some("eng".into()),
            check: Some(CheckId::Firewall),
            status: Some(Status::Fail),
            search: Some("ada".into()),
            ..DeviceFilter::default()
        };
        let mut n = 0;
        let (sql, params) = device_filter_sql(&filter, || {
            n += 1;
            format!("${n}")
        });
        assert!(sql.contains("d.group_name = $1"), "{sql}");
        assert!(sql.contains("r.status = $6"), "{sql}");
        assert_eq!(params.len(), 6);
        assert_eq!(params[4], "firewall");
    }
}
