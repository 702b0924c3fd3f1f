//! The PostgreSQL backend: one database shared by any number of stateless replicas.
//!
//! Queries are checked at run time (`sqlx::query`), as in the SQLite backend. Replicas hear
//! of each other's policy versions through LISTEN/NOTIFY: a trigger on `policies` notifies
//! `tandem_policy` on every insert (whoever inserts: a replica or the CLI), and each server's
//! change feed LISTENs and publishes to its hub. A lost listener connection is re-opened and
//! followed by a catch-up read, because notifications sent while it was away are gone.
//! The same listener hears `tandem_device`: a revocation or re-enrolment through any replica
//! announces the device id, and every replica drops its cached tokens (`token_cache`); after
//! a lost connection the whole cache is dropped.
//!
//! Concurrency: transactions run at READ COMMITTED. Where two writers could race for the
//! same rows, one statement decides (`UPDATE … RETURNING` for secret uses, `INSERT … ON
//! CONFLICT` for devices and reports), or a row lock serializes them (the group row while a
//! policy version is numbered). A batch of reports writes its rows in (device, check) order
//! and locks its device rows in id order, so two batches lock them in the same order and
//! cannot deadlock.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row as _};
use tandem_proto::canonical::to_canonical_json;
use tandem_proto::v1::AdminDevice;
use tandem_proto::CheckResult;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::token_cache::TokenCache;
use super::{
    action, console, contains_pattern, device_filter_sql, integrations, latest_per_user,
    parse_check_result, parse_json, parse_name, parse_opt_json, releases, to_json_text, AuditEntry,
    AuditQuery, AuthedApiToken, AuthedDevice, ChangeBy, ChangeFeed, DeviceDetail, DeviceFilter,
    DevicePage, DeviceSummary, EnrollOutcome, EnrollSecretInfo, EventRecord, GroupInfo,
    IdentityFact, IngestOutcome, NewApiToken, NewDevice, NewEnrollSecret, NewPhishingReport,
    NewPolicy, NewReport, PhishingReportInfo, PolicyVersionDetail, PolicyVersionInfo,
    PutPolicyOutcome, ReportSummary, Role, SecretHash, SourceHealth, Store, StoreError,
    StoreOptions, StoredPolicy, DEFAULT_GROUP,
};
use crate::hub::PolicyHub;
use crate::keys::policy_etag;

/// The NOTIFY channel the `policies` trigger announces new versions on.
pub const POLICY_CHANNEL: &str = "tandem_policy";
/// The NOTIFY channel a revocation or re-enrolment announces a device id on, so that every
/// replica forgets the device's cached tokens.
pub const DEVICE_CHANNEL: &str = "tandem_device";

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// How long the change feed waits before trying a lost connection again.
    retry_interval: Duration,
    /// Device tokens already looked up; see `token_cache`. Kept current by this process's
    /// own changes and, for other replicas' changes, by the change feed.
    tokens: Arc<TokenCache>,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date. Replicas starting
    /// together are safe: sqlx takes an advisory lock around the migrations.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)?.application_name("tandem-server");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            // A request waiting this long for a connection is better answered 503 (the pool
            // timing out counts as "overloaded") than held.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            retry_interval: options.change_poll_interval,
            tokens: Arc::new(TokenCache::default()),
        })
    }

    /// The pool, for tests and tools that inspect the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Tells every replica's change feed, when `tx` commits, to forget `device`'s tokens.
async fn notify_device(tx: &mut PgConnection, device: Uuid) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(DEVICE_CHANNEL)
        .bind(device.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What the `policies` trigger sends.
#[derive(Debug, Deserialize)]
struct PolicyNotice {
    group: String,
    version: i64,
}

/// Publishes every group's latest version: after a lost connection, this is what the
/// notifications missed in the meantime would have said (the hub ignores what it knew).
async fn catch_up(pool: &PgPool, hub: &PolicyHub) -> Result<(), StoreError> {
    let rows =
        sqlx::query("SELECT group_name, MAX(version) AS version FROM policies GROUP BY group_name")
            .fetch_all(pool)
            .await?;
    for row in rows {
        let group: String = row.try_get("group_name")?;
        hub.publish(&group, row.try_get("version")?);
    }
    Ok(())
}

fn policy_from_row(row: &PgRow) -> Result<StoredPolicy, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredPolicy {
        group: row.try_get("group_name")?,
        version: row.try_get("version")?,
        body: parse_json(&body)?,
        etag: row.try_get("etag")?,
    })
}

async fn ensure_group(
    conn: &mut PgConnection,
    group: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(group)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn audit(
    conn: &mut PgConnection,
    by: &ChangeBy,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, before, after)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(by.at)
    .bind(&by.actor)
    .bind(action)
    .bind(target)
    .bind(before.map(to_json_text).transpose()?)
    .bind(after.map(to_json_text).transpose()?)
    .execute(conn)
    .await?;
    Ok(())
}

/// The columns `release_from_row` reads, over `releases r JOIN release_artifacts a`.
const RELEASE_COLUMNS: &str = "r.channel, r.target, r.version, r.signature, r.notes, r.sha256,
    a.size, r.created_at, r.created_by";

fn release_from_row(row: &PgRow) -> Result<releases::ReleaseInfo, StoreError> {
    Ok(releases::ReleaseInfo {
        channel: row.try_get("channel")?,
        target: row.try_get("target")?,
        version: row.try_get("version")?,
        signature: row.try_get("signature")?,
        notes: row.try_get("notes")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

/// A version part as the database stores it (a signed 64-bit integer).
fn release_part(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("version part {n} is too large")))
}

/// The columns `device_from_row` reads.
const DEVICE_COLUMNS: &str = "d.id, d.hostname, d.os, d.os_version, d.group_name, d.user_login,
    d.enrolled_at, d.last_report_at, d.policy_version, d.applied_policy_etag";

fn device_from_row(
    row: &PgRow,
    mut results: Vec<CheckResult>,
) -> Result<DeviceSummary, StoreError> {
    results.sort_by_key(|r| r.id);
    Ok(DeviceSummary {
        device: AdminDevice {
            id: row.try_get("id")?,
            hostname: row.try_get("hostname")?,
            os: row.try_get("os")?,
            os_version: row.try_get("os_version")?,
            group: row.try_get("group_name")?,
            user_login: row.try_get("user_login")?,
            enrolled_at: row.try_get("enrolled_at")?,
            last_report_at: row.try_get("last_report_at")?,
            policy_version: row.try_get("policy_version")?,
            results,
        },
        applied_policy_etag: row.try_get("applied_policy_etag")?,
    })
}

const SECRET_COLUMNS: &str =
    "id, group_name, created_at, created_by, expires_at, max_uses, uses, revoked_at";

fn secret_from_row(row: &PgRow) -> Result<EnrollSecretInfo, StoreError> {
    Ok(EnrollSecretInfo {
        id: row.try_get("id")?,
        group: row.try_get("group_name")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn version_info_from_row(row: &PgRow) -> Result<PolicyVersionInfo, StoreError> {
    Ok(PolicyVersionInfo {
        group: row.try_get("group_name")?,
        version: row.try_get("version")?,
        etag: row.try_get("etag")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

fn identity_from_row(row: &PgRow) -> Result<IdentityFact, StoreError> {
    Ok(IdentityFact {
        email: row.try_get("email")?,
        login: row.try_get("login")?,
        mfa_enrolled: row.try_get("mfa_enrolled")?,
        password_changed_at: row.try_get("password_changed_at")?,
        source: row.try_get("source")?,
        as_of: row.try_get("as_of")?,
    })
}

/// A console account as sign-in needs it (password or OpenID Connect), from a
/// `console_admins` row.
fn admin_auth_from_row(
    row: &sqlx::postgres::PgRow,
) -> Result<console::ConsoleAdminAuth, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(console::ConsoleAdminAuth {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_last_step: row.try_get("totp_last_step")?,
        locked_until: row.try_get("locked_until")?,
        disabled: row
            .try_get::<Option<DateTime<Utc>>, _>("disabled_at")?
            .is_some(),
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn signing_key_or_insert(
        &self,
        candidate: &[u8; 32],
        candidate_public: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<[u8; 32], StoreError> {
        sqlx::query(
            "INSERT INTO server_keys (id, algorithm, private_key, public_key, created_at)
             VALUES (1, 'ed25519', $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&candidate[..])
        .bind(&candidate_public[..])
        .bind(now)
        .execute(&self.pool)
        .await?;
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT private_key FROM server_keys WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        stored
            .try_into()
            .map_err(|_| StoreError::Corrupt("the stored signing key is not 32 bytes".into()))
    }

    async fn group_exists(&self, group: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM groups WHERE name = $1)")
                .bind(group)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn create_enroll_secret(&self, secret: &NewEnrollSecret) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        ensure_group(&mut tx, &secret.group, secret.created_at).await?;
        sqlx::query(
            "INSERT INTO enroll_secrets
                (id, secret_hash, group_name, created_at, created_by, expires_at, max_uses)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(secret.id)
        .bind(&secret.hash[..])
        .bind(&secret.group)
        .bind(secret.created_at)
        .bind(&secret.created_by)
        .bind(secret.expires_at)
        .bind(secret.max_uses.map(i64::from))
        .execute(&mut *tx)
        .await?;
        let by = ChangeBy {
            actor: secret.created_by.clone(),
            at: secret.created_at,
        };
        let after = json!({
            "id": secret.id, "group": secret.group, "expires_at": secret.expires_at,
            "max_uses": secret.max_uses,
        });
        let target = format!("enroll_secret:{}", secret.id);
        audit(
            &mut tx,
            &by,
            action::ENROLL_SECRET_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enroll(
        &self,
        secret_hash: &SecretHash,
        new: &NewDevice,
    ) -> Result<EnrollOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Checking and consuming the secret in one statement keeps a use-limited secret from
        // being used more often than allowed by concurrent enrolments.
        let group: Option<String> = sqlx::query_scalar(
            "UPDATE enroll_secrets SET uses = uses + 1
             WHERE secret_hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)
               AND (max_uses IS NULL OR uses < max_uses)
             RETURNING group_name",
        )
        .bind(&secret_hash[..])
        .bind(new.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(group) = group else {
            return Ok(EnrollOutcome::BadSecret);
        };
        let d = &new.device;
        // The same machine enrolling again (a reinstall, a lost keyring, or after an admin
        // revoked it) keeps its identity and history; one statement decides, so two
        // enrolments of one machine at once cannot both insert.
        let device_id: Uuid = sqlx::query_scalar(
            "INSERT INTO devices (id, machine_id, group_name, hostname, os, os_version,
                model, serial, user_login, user_email, enrolled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (machine_id) DO UPDATE SET
                group_name = EXCLUDED.group_name, hostname = EXCLUDED.hostname,
                os = EXCLUDED.os, os_version = EXCLUDED.os_version, model = EXCLUDED.model,
                serial = EXCLUDED.serial, user_login = EXCLUDED.user_login,
                user_email = EXCLUDED.user_email, revoked_at = NULL
             RETURNING id",
        )
        .bind(new.candidate_id)
        .bind(&d.machine_id)
        .bind(&group)
        .bind(&d.hostname)
        .bind(&d.os)
        .bind(&d.os_version)
        .bind(&d.model)
        .bind(&d.serial)
        .bind(&new.user.login)
        .bind(&new.user.email)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await?;
        // The newest enrolment wins: earlier tokens stop working.
        sqlx::query(
            "UPDATE device_tokens SET revoked_at = $1 WHERE device_id = $2 AND revoked_at IS NULL",
        )
        .bind(new.now)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO device_tokens (token_hash, device_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&new.token_hash[..])
        .bind(device_id)
        .bind(new.now)
        .execute(&mut *tx)
        .await?;
        // A re-enrolment revoked the earlier tokens and may have moved the device: every
        // replica forgets them (NOTIFY is delivered on commit), this one at once.
        notify_device(&mut tx, device_id).await?;
        tx.commit().await?;
        self.tokens.invalidate_device(device_id);
        Ok(EnrollOutcome::Enrolled { device_id, group })
    }

    async fn device_by_token(&self, hash: &SecretHash) -> Result<Option<AuthedDevice>, StoreError> {
        let miss = match self.tokens.get(hash, Instant::now()) {
            Ok(device) => return Ok(Some(device)),
            Err(miss) => miss,
        };
        let row = sqlx::query(
            "SELECT d.id, d.group_name FROM device_tokens t JOIN devices d ON d.id = t.device_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND d.revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let device = row
            .map(|row| {
                Ok::<_, StoreError>(AuthedDevice {
                    id: row.try_get("id")?,
                    group: row.try_get("group_name")?,
                })
            })
            .transpose()?;
        if let Some(device) = &device {
            self.tokens
                .insert(*hash, device.clone(), miss, Instant::now());
        }
        Ok(device)
    }

    async fn claim_overdue_notice(
        &self,
        device: Uuid,
        check: &str,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO overdue_notices (device_id, check_id, deadline, sent_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(device)
        .bind(check)
        .bind(deadline)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn create_release(
        &self,
        r: &releases::NewRelease,
        keep: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO release_artifacts (sha256, bytes, size) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&r.sha256)
        .bind(&r.artifact[..])
        .bind(r.artifact.len() as i64)
        .execute(&mut *tx)
        .await?;
        let version = r.version.to_string();
        let inserted = sqlx::query(
            "INSERT INTO releases (channel, target, version, v_major, v_minor, v_patch,
                signature, notes, sha256, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (channel, target, version) DO NOTHING",
        )
        .bind(&r.channel)
        .bind(&r.target)
        .bind(&version)
        .bind(release_part(r.version.0)?)
        .bind(release_part(r.version.1)?)
        .bind(release_part(r.version.2)?)
        .bind(&r.signature)
        .bind(&r.notes)
        .bind(&r.sha256)
        .bind(r.by.at)
        .bind(&r.by.actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Dropping the transaction rolls back the artifact row too.
            return Ok(false);
        }
        let after = json!({"sha256": r.sha256, "size": r.artifact.len(), "notes": r.notes});
        let target = format!("release:{}/{}/{version}", r.channel, r.target);
        audit(
            &mut tx,
            &r.by,
            action::RELEASE_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        sqlx::query(
            "DELETE FROM releases WHERE channel = $1 AND target = $2 AND id NOT IN (
                 SELECT id FROM releases WHERE channel = $1 AND target = $2
                 ORDER BY v_major DESC, v_minor DESC, v_patch DESC LIMIT $3)",
        )
        .bind(&r.channel)
        .bind(&r.target)
        .bind(i64::from(keep))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM release_artifacts a
             WHERE NOT EXISTS (SELECT 1 FROM releases r WHERE r.sha256 = a.sha256)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn offered_release(
        &self,
        group: &str,
        target: &str,
    ) -> Result<Option<releases::ReleaseInfo>, StoreError> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases r JOIN release_artifacts a ON a.sha256 = r.sha256
             WHERE r.target = $1 AND r.channel = COALESCE(
                 (SELECT channel FROM group_channels WHERE group_name = $2), $3)
             ORDER BY r.v_major DESC, r.v_minor DESC, r.v_patch DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .bind(target)
            .bind(group)
            .bind(releases::DEFAULT_CHANNEL)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(release_from_row)
            .transpose()
    }

    async fn list_releases(&self) -> Result<Vec<releases::ReleaseInfo>, StoreError> {
        let sql = format!(
            "SELECT {RELEASE_COLUMNS} FROM releases r JOIN release_artifacts a ON a.sha256 = r.sha256
             ORDER BY r.id DESC"
        );
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(release_from_row)
            .collect()
    }

    async fn release_artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM release_artifacts WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("bytes")).transpose()?)
    }

    async fn group_channels(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT group_name, channel FROM group_channels ORDER BY group_name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn set_group_channel(
        &self,
        group: &str,
        channel: &str,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locking the group row makes concurrent changes of one group's channel queue, so
        // each audit row's `before` is what the previous change left.
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1 FOR UPDATE")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        let before: Option<String> =
            sqlx::query_scalar("SELECT channel FROM group_channels WHERE group_name = $1")
                .bind(group)
                .fetch_optional(&mut *tx)
                .await?;
        let before = before.unwrap_or_else(|| releases::DEFAULT_CHANNEL.to_owned());
        if before == channel {
            return Ok(true);
        }
        sqlx::query(
            "INSERT INTO group_channels (group_name, channel) VALUES ($1, $2)
             ON CONFLICT (group_name) DO UPDATE SET channel = excluded.channel",
        )
        .bind(group)
        .bind(channel)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            by,
            action::GROUP_CHANNEL_SET,
            &format!("group:{group}"),
            Some(&json!({"channel": before})),
            Some(&json!({"channel": channel})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_reports(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM reports WHERE id IN (
                 SELECT r.id FROM reports r
                 WHERE r.received_at < $1
                   AND r.id <> (SELECT MAX(n.id) FROM reports n WHERE n.device_id = r.device_id)
                 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn ingest_report(&self, new: NewReport<'_>) -> Result<IngestOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcomes = ingest_batch_in(&mut tx, &[new]).await?;
        tx.commit().await?;
        Ok(outcomes.first().copied().unwrap_or(IngestOutcome::Replayed))
    }

    async fn ingest_reports(
        &self,
        reports: &[NewReport<'_>],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcomes = ingest_batch_in(&mut tx, reports).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn effective_policy(&self, group: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let row = sqlx::query(
            "SELECT group_name, version, body, etag FROM policies
             WHERE group_name IN ($1, $2)
             ORDER BY CASE WHEN group_name = $1 THEN 0 ELSE 1 END, version DESC
             LIMIT 1",
        )
        .bind(group)
        .bind(DEFAULT_GROUP)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn put_policy(&self, new: &NewPolicy) -> Result<PutPolicyOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        ensure_group(&mut tx, &new.group, new.created_at).await?;
        // Two admins pushing to one group at once take turns here, so both get a version
        // number instead of one of them a unique-key error.
        sqlx::query("SELECT name FROM groups WHERE name = $1 FOR UPDATE")
            .bind(&new.group)
            .execute(&mut *tx)
            .await?;
        let latest = sqlx::query(
            "SELECT group_name, version, body, etag FROM policies
             WHERE group_name = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&new.group)
        .fetch_optional(&mut *tx)
        .await?;
        let latest = latest.as_ref().map(policy_from_row).transpose()?;
        if let Some(latest) = latest.as_ref() {
            if to_canonical_json(&latest.body) == to_canonical_json(&new.body) {
                return Ok(PutPolicyOutcome::Unchanged(latest.clone()));
            }
        }
        let version = latest.as_ref().map_or(1, |p| p.version + 1);
        let etag = policy_etag(&new.group, version, &new.body);
        sqlx::query(
            "INSERT INTO policies (group_name, version, body, etag, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&new.group)
        .bind(version)
        .bind(to_json_text(&new.body)?)
        .bind(&etag)
        .bind(new.created_at)
        .bind(&new.created_by)
        .execute(&mut *tx)
        .await?;
        let before = latest
            .as_ref()
            .map(|p| json!({"version": p.version, "etag": p.etag, "policy": p.body}));
        let after = json!({"version": version, "etag": etag, "policy": new.body});
        let by = ChangeBy {
            actor: new.created_by.clone(),
            at: new.created_at,
        };
        let target = format!("group:{}", new.group);
        audit(
            &mut tx,
            &by,
            action::POLICY_PUT,
            &target,
            before.as_ref(),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(PutPolicyOutcome::Created(StoredPolicy {
            group: new.group.clone(),
            version,
            body: new.body.clone(),
            etag,
        }))
    }

    async fn policy_versions(&self, group: &str) -> Result<Vec<PolicyVersionInfo>, StoreError> {
        sqlx::query(
            "SELECT group_name, version, etag, created_at, created_by FROM policies
             WHERE group_name = $1 ORDER BY version",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(version_info_from_row)
        .collect()
    }

    async fn policy_version(
        &self,
        group: &str,
        version: i64,
    ) -> Result<Option<PolicyVersionDetail>, StoreError> {
        let row = sqlx::query(
            "SELECT group_name, version, etag, created_at, created_by, body FROM policies
             WHERE group_name = $1 AND version = $2",
        )
        .bind(group)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let body: String = row.try_get("body")?;
            Ok(PolicyVersionDetail {
                info: version_info_from_row(&row)?,
                policy: parse_json(&body)?,
            })
        })
        .transpose()
    }

    async fn list_groups(&self) -> Result<Vec<GroupInfo>, StoreError> {
        sqlx::query(
            "SELECT g.name, g.created_at,
                (SELECT COUNT(*) FROM devices d
                 WHERE d.group_name = g.name AND d.revoked_at IS NULL) AS devices,
                (SELECT MAX(version) FROM policies p WHERE p.group_name = g.name) AS policy_version
             FROM groups g ORDER BY g.name",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(GroupInfo {
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                devices: row.try_get("devices")?,
                policy_version: row.try_get("policy_version")?,
            })
        })
        .collect()
    }

    async fn create_group(&self, name: &str, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(by.at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let after = json!({"name": name});
        let target = format!("group:{name}");
        audit(
            &mut tx,
            by,
            action::GROUP_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_enroll_secrets(&self) -> Result<Vec<EnrollSecretInfo>, StoreError> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM enroll_secrets ORDER BY created_at DESC, id DESC"
        );
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(secret_from_row)
            .collect()
    }

    async fn expire_enroll_secret(
        &self,
        id: Uuid,
        by: &ChangeBy,
    ) -> Result<Option<EnrollSecretInfo>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {SECRET_COLUMNS} FROM enroll_secrets WHERE id = $1 FOR UPDATE");
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let before = secret_from_row(&row)?;
        if before.revoked_at.is_some() {
            return Ok(Some(before));
        }
        sqlx::query("UPDATE enroll_secrets SET revoked_at = $1 WHERE id = $2")
            .bind(by.at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Read back rather than built here, so the answer carries the stored precision.
        let sql = format!("SELECT {SECRET_COLUMNS} FROM enroll_secrets WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_one(&mut *tx).await?;
        let after = secret_from_row(&row)?;
        let target = format!("enroll_secret:{id}");
        let (b, a) = (json!(before), json!(after));
        audit(
            &mut tx,
            by,
            action::ENROLL_SECRET_EXPIRE,
            &target,
            Some(&b),
            Some(&a),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn revoke_device(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT revoked_at FROM devices WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match revoked {
            None => return Ok(false),
            Some(Some(_)) => return Ok(true),
            Some(None) => {}
        }
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2")
            .bind(by.at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE device_tokens SET revoked_at = $1 WHERE device_id = $2 AND revoked_at IS NULL",
        )
        .bind(by.at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let target = format!("device:{id}");
        let before = json!({"revoked_at": null});
        let after = json!({"revoked_at": by.at});
        audit(
            &mut tx,
            by,
            action::DEVICE_REVOKE,
            &target,
            Some(&before),
            Some(&after),
        )
        .await?;
        notify_device(&mut tx, id).await?;
        tx.commit().await?;
        // Before answering, so that the device's next request here is refused; other
        // replicas hear of it through the NOTIFY above.
        self.tokens.invalidate_device(id);
        Ok(true)
    }

    async fn record_policy_delivered(&self, device: Uuid, version: i64) -> Result<(), StoreError> {
        // Skipping the write when nothing changes keeps long-poll answers cheap.
        sqlx::query(
            "UPDATE devices SET policy_version = $1
             WHERE id = $2 AND policy_version IS DISTINCT FROM $1",
        )
        .bind(version)
        .bind(device)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_api_token(&self, token: &NewApiToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.hash[..])
        .bind(token.created_at)
        .bind(&token.created_by)
        .execute(&mut *tx)
        .await?;
        let by = ChangeBy {
            actor: token.created_by.clone(),
            at: token.created_at,
        };
        let after = json!({"id": token.id, "name": token.name, "role": token.role.as_str()});
        let target = format!("api_token:{}", token.id);
        audit(
            &mut tx,
            &by,
            action::API_TOKEN_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_token_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<AuthedApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(AuthedApiToken {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("api token role `{role}`")))?,
            })
        })
        .transpose()
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<DevicePage, StoreError> {
        let mut n = 0;
        let (where_sql, params) = device_filter_sql(filter, || {
            n += 1;
            format!("${n}")
        });
        // REPEATABLE READ so that the count, the page and its results see one snapshot.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let count_sql = format!("SELECT COUNT(*) FROM devices d{where_sql}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for p in &params {
            count = count.bind(p);
        }
        let total = count.fetch_one(&mut *tx).await?;
        let page_sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d{where_sql}
             ORDER BY d.hostname, d.id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut page = sqlx::query(&page_sql);
        for p in &params {
            page = page.bind(p);
        }
        let rows = page
            .bind(i64::from(filter.limit))
            .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        let ids: Vec<Uuid> = rows
            .iter()
            .map(|r| r.try_get::<Uuid, _>("id"))
            .collect::<Result<_, _>>()?;
        let mut results: HashMap<Uuid, Vec<CheckResult>> = HashMap::new();
        if !ids.is_empty() {
            let rows = sqlx::query(
                "SELECT device_id, result FROM latest_results WHERE device_id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let device: Uuid = row.try_get("device_id")?;
                let text: String = row.try_get("result")?;
                results
                    .entry(device)
                    .or_default()
                    .push(parse_check_result(&text)?);
            }
        }
        tx.commit().await?;
        let devices = rows
            .iter()
            .zip(ids)
            .map(|(row, id)| device_from_row(row, results.remove(&id).unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        Ok(DevicePage {
            devices,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    async fn device_detail(
        &self,
        id: Uuid,
        history: u32,
    ) -> Result<Option<DeviceDetail>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {DEVICE_COLUMNS}, d.machine_id, d.model, d.serial, d.user_email,
                    d.agent_version, d.revoked_at
             FROM devices d WHERE d.id = $1"
        );
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let results = sqlx::query_scalar::<_, String>(
            "SELECT result FROM latest_results WHERE device_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|t| parse_check_result(t))
        .collect::<Result<Vec<_>, _>>()?;
        let reports = sqlx::query(
            "SELECT report_id, received_at, sent_at, agent_version FROM reports
             WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(history))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(ReportSummary {
                report_id: r.try_get("report_id")?,
                received_at: r.try_get("received_at")?,
                sent_at: r.try_get("sent_at")?,
                agent_version: r.try_get("agent_version")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let events = sqlx::query(
            "SELECT kind, at, check_id, detail, report_id FROM (
                 SELECT id, kind, at, check_id, detail, report_id FROM events
                 WHERE device_id = $1 ORDER BY id DESC LIMIT $2) recent
             ORDER BY at DESC, id DESC",
        )
        .bind(id)
        .bind(i64::from(history))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let check: Option<String> = r.try_get("check_id")?;
            Ok(EventRecord {
                kind: parse_name(&kind)?,
                at: r.try_get("at")?,
                check_id: check.as_deref().map(parse_name).transpose()?,
                detail: r.try_get("detail")?,
                report_id: r.try_get("report_id")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let last_report: Option<String> = sqlx::query_scalar(
            "SELECT body FROM reports WHERE device_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(DeviceDetail {
            summary: device_from_row(&row, results)?,
            machine_id: row.try_get("machine_id")?,
            model: row.try_get("model")?,
            serial: row.try_get("serial")?,
            user_email: row.try_get("user_email")?,
            agent_version: row.try_get("agent_version")?,
            revoked_at: row.try_get("revoked_at")?,
            reports,
            events,
            last_report,
        }))
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT id, at, actor, action, target, before, after FROM audit_log
             WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR action = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(query.before_id)
        .bind(&query.action)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                before: parse_opt_json(row.try_get("before")?)?,
                after: parse_opt_json(row.try_get("after")?)?,
            })
        })
        .collect()
    }

    async fn upsert_identities(
        &self,
        facts: &[IdentityFact],
        by: Option<&ChangeBy>,
    ) -> Result<u64, StoreError> {
        // One row per (source, key): ON CONFLICT may not touch a row twice in a statement.
        let rows = latest_per_user(facts);
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(1000) {
            let sources: Vec<&str> = chunk.iter().map(|(_, f)| f.source.as_str()).collect();
            let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let emails: Vec<Option<&str>> = chunk.iter().map(|(_, f)| f.email.as_deref()).collect();
            let logins: Vec<Option<&str>> = chunk.iter().map(|(_, f)| f.login.as_deref()).collect();
            let mfa: Vec<Option<bool>> = chunk.iter().map(|(_, f)| f.mfa_enrolled).collect();
            let changed: Vec<Option<DateTime<Utc>>> =
                chunk.iter().map(|(_, f)| f.password_changed_at).collect();
            let as_of: Vec<DateTime<Utc>> = chunk.iter().map(|(_, f)| f.as_of).collect();
            sqlx::query(
                "INSERT INTO identities
                    (source, user_key, email, login, mfa_enrolled, password_changed_at, as_of)
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[],
                                      $5::BOOLEAN[], $6::TIMESTAMPTZ[], $7::TIMESTAMPTZ[])
                 ON CONFLICT (source, user_key) DO UPDATE SET
                    email = EXCLUDED.email, login = EXCLUDED.login,
                    mfa_enrolled = EXCLUDED.mfa_enrolled,
                    password_changed_at = EXCLUDED.password_changed_at, as_of = EXCLUDED.as_of",
            )
            .bind(&sources)
            .bind(&keys)
            .bind(&emails)
            .bind(&logins)
            .bind(&mfa)
            .bind(&changed)
            .bind(&as_of)
            .execute(&mut *tx)
            .await?;
        }
        let n = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        if let Some(by) = by {
            let sources: std::collections::BTreeSet<&str> =
                facts.iter().map(|f| f.source.as_str()).collect();
            let after = json!({"users": n, "sources": sources});
            audit(
                &mut tx,
                by,
                action::IDENTITY_IMPORT,
                "identities",
                None,
                Some(&after),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn identity_for_device(&self, device: Uuid) -> Result<Option<IdentityFact>, StoreError> {
        let row = sqlx::query("SELECT user_email, user_login FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let email: Option<String> = row.try_get("user_email")?;
        let login: String = row.try_get("user_login")?;
        let keys = [email.map(|e| e.to_lowercase()), Some(login.to_lowercase())];
        for key in keys.into_iter().flatten() {
            let row = sqlx::query(
                "SELECT * FROM identities WHERE user_key = $1 ORDER BY as_of DESC LIMIT 1",
            )
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return identity_from_row(&row).map(Some);
            }
        }
        Ok(None)
    }

    async fn list_identities(
        &self,
        search: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<IdentityFact>, StoreError> {
        sqlx::query(
            "SELECT * FROM identities WHERE ($1::TEXT IS NULL OR user_key LIKE $1 ESCAPE '\\')
             ORDER BY user_key, source LIMIT $2 OFFSET $3",
        )
        .bind(search.map(contains_pattern))
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(identity_from_row)
        .collect()
    }

    async fn record_source_health(&self, h: &SourceHealth) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO identity_sources (name, kind, last_run_at, last_success_at, last_error, users)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind,
                last_run_at = EXCLUDED.last_run_at,
                last_success_at = COALESCE(EXCLUDED.last_success_at, identity_sources.last_success_at),
                last_error = EXCLUDED.last_error,
                users = COALESCE(EXCLUDED.users, identity_sources.users)",
        )
        .bind(&h.name)
        .bind(&h.kind)
        .bind(h.last_run_at)
        .bind(h.last_success_at)
        .bind(&h.last_error)
        .bind(h.users)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_source_health(&self) -> Result<Vec<SourceHealth>, StoreError> {
        sqlx::query("SELECT * FROM identity_sources ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(SourceHealth {
                    name: row.try_get("name")?,
                    kind: row.try_get("kind")?,
                    last_run_at: row.try_get("last_run_at")?,
                    last_success_at: row.try_get("last_success_at")?,
                    last_error: row.try_get("last_error")?,
                    users: row.try_get("users")?,
                })
            })
            .collect()
    }

    async fn create_phishing_report(&self, r: &NewPhishingReport) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO phishing_reports
                (id, tracking_id, device_id, received_at, url, note, subject, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id)
        .bind(&r.tracking_id)
        .bind(r.device_id)
        .bind(r.received_at)
        .bind(&r.url)
        .bind(&r.note)
        .bind(&r.subject)
        .bind(&r.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_phishing_reports(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<PhishingReportInfo>, StoreError> {
        sqlx::query(
            "SELECT p.id, p.tracking_id, p.device_id, d.hostname, d.user_login, d.user_email,
                    p.received_at, p.url, p.note, p.subject, octet_length(p.message)::BIGINT AS message_bytes
             FROM phishing_reports p JOIN devices d ON d.id = p.device_id
             ORDER BY p.received_at DESC, p.id DESC LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(PhishingReportInfo {
                id: row.try_get("id")?,
                tracking_id: row.try_get("tracking_id")?,
                device_id: row.try_get("device_id")?,
                hostname: row.try_get("hostname")?,
                user_login: row.try_get("user_login")?,
                user_email: row.try_get("user_email")?,
                received_at: row.try_get("received_at")?,
                url: row.try_get("url")?,
                note: row.try_get("note")?,
                subject: row.try_get("subject")?,
                message_bytes: row.try_get("message_bytes")?,
            })
        })
        .collect()
    }

    async fn failing_checks(&self, device: Uuid) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM latest_results WHERE device_id = $1 AND status = 'fail'",
        )
        .bind(device)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn phishing_message(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let found: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT message FROM phishing_reports WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.flatten())
    }

    async fn policy_change_feed(
        &self,
        hub: Arc<PolicyHub>,
        shutdown: CancellationToken,
    ) -> Result<ChangeFeed, StoreError> {
        // LISTEN is in force once this returns, so every version committed afterwards is
        // announced to this feed.
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([POLICY_CHANNEL, DEVICE_CHANNEL])
            .await?;
        let pool = self.pool.clone();
        let retry = self.retry_interval;
        let tokens = Arc::clone(&self.tokens);
        Ok(Box::pin(async move {
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) if notification.channel() == DEVICE_CHANNEL => {
                        match Uuid::parse_str(notification.payload()) {
                            Ok(device) => tokens.invalidate_device(device),
                            // Cannot tell whose tokens changed: forget them all.
                            Err(_) => tokens.clear(),
                        }
                        continue;
                    }
                    Ok(Some(notification)) => {
                        match serde_json::from_str::<PolicyNotice>(notification.payload()) {
                            Ok(n) => hub.publish(&n.group, n.version),
                            Err(e) => tracing::warn!(error = %e, "unreadable policy notification"),
                        }
                        continue;
                    }
                    Ok(None) => tracing::warn!("lost the policy notification connection"),
                    Err(e) => tracing::warn!(error = %e, "policy notifications failed"),
                }
                // Re-LISTEN first and catch up second, so nothing committed in between
                // is missed; until both work, try again every `retry`.
                loop {
                    let recovered =
                        match listener.listen_all([POLICY_CHANNEL, DEVICE_CHANNEL]).await {
                            Ok(()) => {
                                // Revocations announced while away are gone too.
                                tokens.clear();
                                catch_up(&pool, &hub).await
                            }
                            Err(e) => Err(e.into()),
                        };
                    match recovered {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not resume policy notifications")
                        }
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                }
            }
        }))
    }

    // The IT console (issue 7).

    async fn create_console_admin(
        &self,
        admin: &console::NewConsoleAdmin,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO console_admins
                (id, username, role, password_hash, totp_secret, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
        )
        .bind(admin.id)
        .bind(&admin.username)
        .bind(admin.role.as_str())
        .bind(&admin.password_hash)
        .bind(&admin.totp_secret)
        .bind(admin.created_at)
        .bind(&admin.created_by)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let by = ChangeBy {
            actor: admin.created_by.clone(),
            at: admin.created_at,
        };
        let after =
            json!({"id": admin.id, "username": admin.username, "role": admin.role.as_str()});
        let target = format!("console_admin:{}", admin.id);
        audit(
            &mut tx,
            &by,
            console::action::ADMIN_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn console_admin_by_username(
        &self,
        username: &str,
    ) -> Result<Option<console::ConsoleAdminAuth>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, role, password_hash, totp_secret, totp_last_step, locked_until,
                    disabled_at
             FROM console_admins WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_auth_from_row).transpose()
    }

    async fn console_login_failed(
        &self,
        admin: Uuid,
        reason: console::SignInFailure,
        now: DateTime<Utc>,
        max_failures: u32,
        lock_for: chrono::Duration,
    ) -> Result<console::LoginFailure, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(i32, String)> = if reason.counts() {
            sqlx::query_as(
                "UPDATE console_admins SET failed_attempts = failed_attempts + 1 WHERE id = $1
                 RETURNING failed_attempts, username",
            )
            .bind(admin)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            sqlx::query_as("SELECT failed_attempts, username FROM console_admins WHERE id = $1")
                .bind(admin)
                .fetch_optional(&mut *tx)
                .await?
        };
        let Some((failures, username)) = found else {
            return Ok(console::LoginFailure::Counted);
        };
        // The claimed name, not `admin:`: nobody was authenticated.
        let by = ChangeBy {
            actor: format!("login:{username}"),
            at: now,
        };
        let target = format!("console_admin:{admin}");
        audit(
            &mut tx,
            &by,
            console::SIGN_IN_FAILED_ACTION,
            &target,
            None,
            Some(&json!({"method": console::PASSWORD_METHOD, "reason": reason.as_str()})),
        )
        .await?;
        let outcome = if reason.counts() && i64::from(failures) >= i64::from(max_failures) {
            let until = now + lock_for;
            sqlx::query(
                "UPDATE console_admins SET failed_attempts = 0, locked_until = $1 WHERE id = $2",
            )
            .bind(until)
            .bind(admin)
            .execute(&mut *tx)
            .await?;
            audit(
                &mut tx,
                &by,
                console::LOCKOUT_ACTION,
                &target,
                None,
                Some(&json!({"failures": failures, "locked_until": until})),
            )
            .await?;
            console::LoginFailure::Locked(until)
        } else {
            console::LoginFailure::Counted
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn console_login_succeeded(
        &self,
        step: i64,
        session: &console::NewConsoleSession,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let username: Option<String> = sqlx::query_scalar(
            "UPDATE console_admins
             SET totp_last_step = $1, failed_attempts = 0, locked_until = NULL, last_login_at = $2
             WHERE id = $3 AND totp_last_step < $4 AND disabled_at IS NULL
             RETURNING username",
        )
        .bind(step)
        .bind(session.created_at)
        .bind(session.admin_id)
        .bind(step)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(username) = username else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, admin_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.token_hash[..])
        .bind(session.admin_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        let by = ChangeBy {
            actor: format!("admin:{username}"),
            at: session.created_at,
        };
        audit(
            &mut tx,
            &by,
            console::SIGN_IN_ACTION,
            &format!("console_admin:{}", session.admin_id),
            None,
            Some(&json!({"method": console::PASSWORD_METHOD})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn console_session(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<Option<console::ConsoleSession>, StoreError> {
        let row = sqlx::query(
            "SELECT a.id, a.username, a.role, s.expires_at
             FROM console_sessions s JOIN console_admins a ON a.id = s.admin_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(console::ConsoleSession {
                admin_id: row.try_get("id")?,
                username: row.try_get("username")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_console_session(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT a.id, a.username
             FROM console_sessions s JOIN console_admins a ON a.id = s.admin_id
             WHERE s.token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(&mut *tx)
            .await?;
        if let Some((id, username)) = found {
            let by = ChangeBy {
                actor: format!("admin:{username}"),
                at: now,
            };
            let target = format!("console_admin:{id}");
            audit(&mut tx, &by, console::SIGN_OUT_ACTION, &target, None, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // OpenID Connect sign-in (issue 7).

    async fn console_admin_by_oidc(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<console::ConsoleAdminAuth>, StoreError> {
        let row = sqlx::query(
            "SELECT a.id, a.username, a.role, a.password_hash, a.totp_secret, a.totp_last_step,
                    a.locked_until, a.disabled_at
             FROM console_oidc_links l JOIN console_admins a ON a.id = l.admin_id
             WHERE l.issuer = $1 AND l.subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_auth_from_row).transpose()
    }

    async fn console_admins_by_email(
        &self,
        email: &str,
    ) -> Result<Vec<console::ConsoleAdminAuth>, StoreError> {
        // ASCII lower-casing in both backends (SQLite's lower() knows no more), so that
        // both match the same accounts.
        let rows = sqlx::query(
            "SELECT a.id, a.username, a.role, a.password_hash, a.totp_secret, a.totp_last_step,
                    a.locked_until, a.disabled_at
             FROM console_admins a WHERE lower(a.username) = $1",
        )
        .bind(email.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(admin_auth_from_row).collect()
    }

    async fn console_oidc_sign_in(
        &self,
        sign_in: &console::OidcSignIn,
    ) -> Result<console::OidcSignInOutcome, StoreError> {
        let now = sign_in.session.created_at;
        let mut tx = self.pool.begin().await?;
        if sign_in.link {
            let linked: Option<String> = sqlx::query_scalar(
                "SELECT subject FROM console_oidc_links WHERE issuer = $1 AND admin_id = $2",
            )
            .bind(&sign_in.issuer)
            .bind(sign_in.admin_id)
            .fetch_optional(&mut *tx)
            .await?;
            match linked {
                Some(subject) if subject != sign_in.subject => {
                    return Ok(console::OidcSignInOutcome::LinkedElsewhere);
                }
                Some(_) => {}
                None => {
                    sqlx::query(
                        "INSERT INTO console_oidc_links (issuer, subject, admin_id, linked_at)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&sign_in.issuer)
                    .bind(&sign_in.subject)
                    .bind(sign_in.admin_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // Disabled or locked since the caller looked: refused, and the link above is
        // rolled back with the transaction.
        let updated = sqlx::query(
            "UPDATE console_admins SET last_login_at = $1
             WHERE id = $2 AND disabled_at IS NULL
               AND (locked_until IS NULL OR locked_until <= $3)",
        )
        .bind(now)
        .bind(sign_in.admin_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(console::OidcSignInOutcome::Refused);
        }
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, admin_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&sign_in.session.token_hash[..])
        .bind(sign_in.admin_id)
        .bind(sign_in.session.created_at)
        .bind(sign_in.session.expires_at)
        .execute(&mut *tx)
        .await?;
        let by = ChangeBy {
            actor: format!("admin:{}", sign_in.username),
            at: now,
        };
        let after = json!({
            "method": "oidc",
            "issuer": sign_in.issuer,
            "subject": sign_in.subject,
            "amr": sign_in.amr,
            "linked": sign_in.link,
        });
        audit(
            &mut tx,
            &by,
            console::SIGN_IN_ACTION,
            &format!("console_admin:{}", sign_in.admin_id),
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(console::OidcSignInOutcome::SignedIn)
    }

    async fn list_console_oidc_links(&self) -> Result<Vec<console::OidcLink>, StoreError> {
        let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT admin_id, issuer, subject, linked_at FROM console_oidc_links
             ORDER BY admin_id, issuer",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(admin_id, issuer, subject, linked_at)| {
                Ok(console::OidcLink {
                    admin_id,
                    issuer,
                    subject,
                    linked_at,
                })
            })
            .collect()
    }

    async fn link_console_oidc(
        &self,
        admin: Uuid,
        issuer: &str,
        subject: &str,
        by: &ChangeBy,
    ) -> Result<console::OidcLinkOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM console_admins WHERE id = $1")
            .bind(admin)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(console::OidcLinkOutcome::NoSuchAccount);
        }
        let holder: Option<Uuid> = sqlx::query_scalar(
            "SELECT admin_id FROM console_oidc_links WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        match holder {
            Some(holder) if holder != admin => return Ok(console::OidcLinkOutcome::SubjectTaken),
            // Linked so already: nothing to change or record.
            Some(_) => return Ok(console::OidcLinkOutcome::Linked),
            None => {}
        }
        let before: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT subject, linked_at FROM console_oidc_links WHERE issuer = $1 AND admin_id = $2",
        )
        .bind(issuer)
        .bind(admin)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_oidc_links WHERE issuer = $1 AND admin_id = $2")
            .bind(issuer)
            .bind(admin)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_oidc_links (issuer, subject, admin_id, linked_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(admin)
        .bind(by.at)
        .execute(&mut *tx)
        .await?;
        let before = before.map(|(subject, linked_at)| {
            json!({"issuer": issuer, "subject": subject, "linked_at": linked_at})
        });
        audit(
            &mut tx,
            by,
            console::action::OIDC_LINK,
            &format!("console_admin:{admin}"),
            before.as_ref(),
            Some(&json!({"issuer": issuer, "subject": subject, "linked_at": by.at})),
        )
        .await?;
        tx.commit().await?;
        Ok(console::OidcLinkOutcome::Linked)
    }

    async fn unlink_console_oidc(
        &self,
        admin: Uuid,
        issuer: &str,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "DELETE FROM console_oidc_links WHERE issuer = $1 AND admin_id = $2
             RETURNING subject, linked_at",
        )
        .bind(issuer)
        .bind(admin)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((subject, linked_at)) = before else {
            return Ok(false);
        };
        audit(
            &mut tx,
            by,
            console::action::OIDC_UNLINK,
            &format!("console_admin:{admin}"),
            Some(&json!({"issuer": issuer, "subject": subject, "linked_at": linked_at})),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_console_admins(&self) -> Result<Vec<console::ConsoleAdminInfo>, StoreError> {
        sqlx::query(
            "SELECT id, username, role, created_at, created_by, last_login_at, locked_until,
                    disabled_at
             FROM console_admins ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let role: String = row.try_get("role")?;
            Ok(console::ConsoleAdminInfo {
                id: row.try_get("id")?,
                username: row.try_get("username")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
                last_login_at: row.try_get("last_login_at")?,
                locked_until: row.try_get("locked_until")?,
                disabled_at: row.try_get("disabled_at")?,
            })
        })
        .collect()
    }

    async fn set_console_admin_role(
        &self,
        id: Uuid,
        role: Role,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT role FROM console_admins WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        if before == role.as_str() {
            return Ok(true);
        }
        sqlx::query("UPDATE console_admins SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let target = format!("console_admin:{id}");
        audit(
            &mut tx,
            by,
            console::action::ADMIN_ROLE,
            &target,
            Some(&json!({"role": before})),
            Some(&json!({"role": role.as_str()})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn disable_console_admin(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<Option<DateTime<Utc>>> =
            sqlx::query_scalar("SELECT disabled_at FROM console_admins WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match found {
            None => return Ok(false),
            Some(Some(_)) => return Ok(true),
            Some(None) => {}
        }
        sqlx::query("UPDATE console_admins SET disabled_at = $1 WHERE id = $2")
            .bind(by.at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM console_sessions WHERE admin_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let target = format!("console_admin:{id}");
        audit(
            &mut tx,
            by,
            console::action::ADMIN_DISABLE,
            &target,
            None,
            Some(&json!({"disabled_at": by.at})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn refresh_failing_since(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM console_failing_since WHERE NOT EXISTS (
                SELECT 1 FROM latest_results r
                WHERE r.device_id = console_failing_since.device_id
                  AND r.check_id = console_failing_since.check_id
                  AND r.status IN ('warn', 'fail'))",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_failing_since (device_id, check_id, since)
             SELECT device_id, check_id, observed_at FROM latest_results
             WHERE status IN ('warn', 'fail')
             ON CONFLICT (device_id, check_id) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn failing_since(&self) -> Result<Vec<(Uuid, String, DateTime<Utc>)>, StoreError> {
        sqlx::query("SELECT device_id, check_id, since FROM console_failing_since")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("device_id")?,
                    row.try_get("check_id")?,
                    row.try_get("since")?,
                ))
            })
            .collect()
    }

    async fn record_daily_compliance(
        &self,
        days: &[console::DailyCompliance],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for d in days {
            sqlx::query(
                "INSERT INTO console_compliance_daily (day, check_id, pass, due, overdue, unknown)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (day, check_id) DO UPDATE SET pass = excluded.pass,
                    due = excluded.due, overdue = excluded.overdue, unknown = excluded.unknown",
            )
            .bind(d.day)
            .bind(&d.check_id)
            .bind(d.pass)
            .bind(d.due)
            .bind(d.overdue)
            .bind(d.unknown)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn daily_compliance(
        &self,
        from: chrono::NaiveDate,
    ) -> Result<Vec<console::DailyCompliance>, StoreError> {
        sqlx::query(
            "SELECT day, check_id, pass, due, overdue, unknown FROM console_compliance_daily
             WHERE day >= $1 ORDER BY day, check_id",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(console::DailyCompliance {
                day: row.try_get("day")?,
                check_id: row.try_get("check_id")?,
                pass: row.try_get("pass")?,
                due: row.try_get("due")?,
                overdue: row.try_get("overdue")?,
                unknown: row.try_get("unknown")?,
            })
        })
        .collect()
    }

    async fn device_report_bodies(
        &self,
        device: Uuid,
        limit: u32,
    ) -> Result<Vec<console::StoredReportBody>, StoreError> {
        sqlx::query(
            "SELECT received_at, body FROM reports WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(device)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(console::StoredReportBody {
                received_at: row.try_get("received_at")?,
                body: row.try_get("body")?,
            })
        })
        .collect()
    }

    async fn list_api_tokens(&self) -> Result<Vec<console::ApiTokenInfo>, StoreError> {
        sqlx::query(
            "SELECT id, name, role, created_at, created_by, revoked_at FROM api_tokens
             ORDER BY created_at DESC, id DESC",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let role: String = row.try_get("role")?;
            Ok(console::ApiTokenInfo {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("api token role `{role}`")))?,
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        })
        .collect()
    }

    async fn revoke_api_token(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(by.at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        let target = format!("api_token:{id}");
        audit(
            &mut tx,
            by,
            console::action::API_TOKEN_REVOKE,
            &target,
            None,
            Some(&json!({"revoked_at": by.at})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_phishing_triage(
        &self,
        triage: &console::PhishingTriage,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1::BIGINT FROM phishing_reports WHERE id = $1")
                .bind(triage.report_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO console_phishing_triage (report_id, status, reply, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (report_id) DO UPDATE SET status = excluded.status,
                reply = excluded.reply, updated_at = excluded.updated_at,
                updated_by = excluded.updated_by",
        )
        .bind(triage.report_id)
        .bind(&triage.status)
        .bind(&triage.reply)
        .bind(triage.updated_at)
        .bind(&triage.updated_by)
        .execute(&mut *tx)
        .await?;
        let by = ChangeBy {
            actor: triage.updated_by.clone(),
            at: triage.updated_at,
        };
        let target = format!("phishing_report:{}", triage.report_id);
        audit(
            &mut tx,
            &by,
            console::action::PHISHING_TRIAGE,
            &target,
            None,
            Some(&json!({"status": triage.status, "reply": triage.reply})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_phishing_triage(&self) -> Result<Vec<console::PhishingTriage>, StoreError> {
        sqlx::query(
            "SELECT report_id, status, reply, updated_at, updated_by FROM console_phishing_triage",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(console::PhishingTriage {
                report_id: row.try_get("report_id")?,
                status: row.try_get("status")?,
                reply: row.try_get("reply")?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        })
        .collect()
    }

    // Identity sources and webhooks configured in the console (issue 7).

    async fn list_source_configs(
        &self,
    ) -> Result<Vec<integrations::StoredSourceConfig>, StoreError> {
        sqlx::query(
            "SELECT name, kind, config, updated_at, updated_by FROM identity_source_configs
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(integrations::StoredSourceConfig {
                name: row.try_get("name")?,
                kind: row.try_get("kind")?,
                config: parse_json(&row.try_get::<String, _>("config")?)?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        })
        .collect()
    }

    async fn create_source_config(
        &self,
        source: &integrations::StoredSourceConfig,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO identity_source_configs
                (name, kind, config, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&source.name)
        .bind(&source.kind)
        .bind(to_json_text(&source.config)?)
        .bind(by.at)
        .bind(by.at)
        .bind(&by.actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        // A health row left by an earlier source of this name must not delay the first poll.
        sqlx::query("UPDATE identity_sources SET next_poll_at = NULL WHERE name = $1")
            .bind(&source.name)
            .execute(&mut *tx)
            .await?;
        let target = format!("identity_source:{}", source.name);
        let after = integrations::redacted(&source.config);
        audit(
            &mut tx,
            by,
            integrations::action::SOURCE_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_source_config(
        &self,
        source: &integrations::StoredSourceConfig,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT config FROM identity_source_configs WHERE name = $1")
                .bind(&source.name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE identity_source_configs SET kind = $1, config = $2, updated_at = $3,
                updated_by = $4 WHERE name = $5",
        )
        .bind(&source.kind)
        .bind(to_json_text(&source.config)?)
        .bind(by.at)
        .bind(&by.actor)
        .bind(&source.name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE identity_sources SET next_poll_at = NULL WHERE name = $1")
            .bind(&source.name)
            .execute(&mut *tx)
            .await?;
        let target = format!("identity_source:{}", source.name);
        let before = integrations::redacted(&parse_json(&before)?);
        let after = integrations::redacted(&source.config);
        audit(
            &mut tx,
            by,
            integrations::action::SOURCE_UPDATE,
            &target,
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_source_config(&self, name: &str, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<String> = sqlx::query_scalar(
            "DELETE FROM identity_source_configs WHERE name = $1 RETURNING config",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM identity_sources WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let target = format!("identity_source:{name}");
        let before = integrations::redacted(&parse_json(&before)?);
        audit(
            &mut tx,
            by,
            integrations::action::SOURCE_DELETE,
            &target,
            Some(&before),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_source_poll(
        &self,
        name: &str,
        kind: &str,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "INSERT INTO identity_sources (name, kind, next_poll_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET next_poll_at = EXCLUDED.next_poll_at
             WHERE identity_sources.next_poll_at IS NULL OR identity_sources.next_poll_at <= $4",
        )
        .bind(name)
        .bind(kind)
        .bind(next)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn list_webhook_configs(&self) -> Result<Vec<integrations::StoredWebhook>, StoreError> {
        sqlx::query(
            "SELECT id, name, config, updated_at, updated_by FROM webhook_configs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(integrations::StoredWebhook {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                config: parse_json(&row.try_get::<String, _>("config")?)?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            })
        })
        .collect()
    }

    async fn create_webhook_config(
        &self,
        hook: &integrations::StoredWebhook,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_configs (id, name, config, created_at, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(hook.id)
        .bind(&hook.name)
        .bind(to_json_text(&hook.config)?)
        .bind(by.at)
        .bind(by.at)
        .bind(&by.actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let target = format!("webhook:{}", hook.id);
        let mut after = integrations::redacted(&hook.config);
        after["name"] = Value::String(hook.name.clone());
        audit(
            &mut tx,
            by,
            integrations::action::WEBHOOK_CREATE,
            &target,
            None,
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_webhook_config(
        &self,
        hook: &integrations::StoredWebhook,
        by: &ChangeBy,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(String, String)> =
            sqlx::query_as("SELECT name, config FROM webhook_configs WHERE id = $1")
                .bind(hook.id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((name, before)) = before else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE webhook_configs SET config = $1, updated_at = $2, updated_by = $3 WHERE id = $4",
        )
        .bind(to_json_text(&hook.config)?)
        .bind(by.at)
        .bind(&by.actor)
        .bind(hook.id)
        .execute(&mut *tx)
        .await?;
        let target = format!("webhook:{}", hook.id);
        let mut before = integrations::redacted(&parse_json(&before)?);
        before["name"] = Value::String(name.clone());
        let mut after = integrations::redacted(&hook.config);
        after["name"] = Value::String(name);
        audit(
            &mut tx,
            by,
            integrations::action::WEBHOOK_UPDATE,
            &target,
            Some(&before),
            Some(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reseal_source_config(
        &self,
        name: &str,
        before: &Value,
        after: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT config FROM identity_source_configs WHERE name = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if current.map(|c| parse_json(&c)).transpose()?.as_ref() != Some(before) {
            return Ok(false);
        }
        sqlx::query("UPDATE identity_source_configs SET config = $1 WHERE name = $2")
            .bind(to_json_text(after)?)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reseal_webhook_config(
        &self,
        id: Uuid,
        before: &Value,
        after: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT config FROM webhook_configs WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if current.map(|c| parse_json(&c)).transpose()?.as_ref() != Some(before) {
            return Ok(false);
        }
        sqlx::query("UPDATE webhook_configs SET config = $1 WHERE id = $2")
            .bind(to_json_text(after)?)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_webhook_config(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(String, String)> =
            sqlx::query_as("DELETE FROM webhook_configs WHERE id = $1 RETURNING name, config")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((name, before)) = before else {
            return Ok(false);
        };
        let target = format!("webhook:{id}");
        let mut before = integrations::redacted(&parse_json(&before)?);
        before["name"] = Value::String(name);
        audit(
            &mut tx,
            by,
            integrations::action::WEBHOOK_DELETE,
            &target,
            Some(&before),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn device_phishing_reports(
        &self,
        device: Uuid,
        tracking_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<tandem_proto::v1::PhishingReportStatus>, StoreError> {
        // `$2::TEXT IS NULL OR …` keeps one statement for the list and the single report.
        sqlx::query(
            "SELECT p.tracking_id, p.received_at, t.status, t.reply, t.updated_at
             FROM phishing_reports p
             LEFT JOIN console_phishing_triage t ON t.report_id = p.id
             WHERE p.device_id = $1 AND ($2::TEXT IS NULL OR p.tracking_id = $2)
             ORDER BY p.received_at DESC, p.id DESC LIMIT $3",
        )
        .bind(device)
        .bind(tracking_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let status: Option<String> = row.try_get("status")?;
            Ok(tandem_proto::v1::PhishingReportStatus {
                tracking_id: row.try_get("tracking_id")?,
                received_at: row.try_get("received_at")?,
                status: status.as_deref().map_or(
                    tandem_proto::v1::TriageStatus::New,
                    tandem_proto::v1::TriageStatus::parse,
                ),
                reply: row.try_get("reply")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
    }
}

/// Updates the device rows of the reports `batch` (indexes into `reports`, at most one per
/// device) in one statement: the last report time always, the inventory only from a report
/// at least as new as the one the row holds (an outbox may deliver an old report late).
async fn update_devices(
    tx: &mut PgConnection,
    reports: &[NewReport<'_>],
    batch: &[usize],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(batch.len());
    let mut received = Vec::with_capacity(batch.len());
    let mut hostnames = Vec::with_capacity(batch.len());
    let mut oses = Vec::with_capacity(batch.len());
    let mut os_versions = Vec::with_capacity(batch.len());
    let mut models = Vec::with_capacity(batch.len());
    let mut serials = Vec::with_capacity(batch.len());
    let mut agent_versions = Vec::with_capacity(batch.len());
    let mut has_users = Vec::with_capacity(batch.len());
    let mut logins = Vec::with_capacity(batch.len());
    let mut emails = Vec::with_capacity(batch.len());
    let mut etags = Vec::with_capacity(batch.len());
    let mut sent = Vec::with_capacity(batch.len());
    for &i in batch {
        let new = &reports[i];
        let (report, inv) = (new.report, &new.report.inventory);
        ids.push(new.device_id);
        received.push(new.received_at);
        hostnames.push(inv.device.hostname.as_str());
        oses.push(inv.device.os.as_str());
        os_versions.push(inv.device.os_version.as_str());
        models.push(inv.device.model.as_deref());
        serials.push(inv.device.serial.as_deref());
        agent_versions.push(report.agent_version.as_str());
        // A report without a user leaves the enrolled user as it was.
        has_users.push(inv.user.is_some());
        logins.push(inv.user.as_ref().map(|u| u.login.as_str()));
        emails.push(inv.user.as_ref().and_then(|u| u.email.as_deref()));
        etags.push(report.policy_etag.as_deref());
        sent.push(report.sent_at);
    }
    // Each SET sees the row as it was.
    let newer = "(devices.inventory_at IS NULL OR devices.inventory_at <= v.sent_at)";
    let sql = format!(
        "UPDATE devices SET
            last_report_at = GREATEST(devices.last_report_at, v.received_at),
            hostname = CASE WHEN {newer} THEN v.hostname ELSE devices.hostname END,
            os = CASE WHEN {newer} THEN v.os ELSE devices.os END,
            os_version = CASE WHEN {newer} THEN v.os_version ELSE devices.os_version END,
            model = CASE WHEN {newer} THEN v.model ELSE devices.model END,
            serial = CASE WHEN {newer} THEN v.serial ELSE devices.serial END,
            agent_version = CASE WHEN {newer} THEN v.agent_version ELSE devices.agent_version END,
            user_login = CASE WHEN {newer} AND v.has_user THEN v.user_login ELSE devices.user_login END,
            user_email = CASE WHEN {newer} AND v.has_user THEN v.user_email ELSE devices.user_email END,
            applied_policy_etag = CASE WHEN {newer} THEN v.policy_etag ELSE devices.applied_policy_etag END,
            inventory_at = CASE WHEN {newer} THEN v.sent_at ELSE devices.inventory_at END
         FROM UNNEST($1::UUID[], $2::TIMESTAMPTZ[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BOOL[], $10::TEXT[], $11::TEXT[],
                $12::TEXT[], $13::TIMESTAMPTZ[])
            AS v(id, received_at, hostname, os, os_version, model, serial, agent_version,
                has_user, user_login, user_email, policy_etag, sent_at)
         WHERE devices.id = v.id"
    );
    sqlx::query(&sql)
        .bind(&ids)
        .bind(&received)
        .bind(&hostnames)
        .bind(&oses)
        .bind(&os_versions)
        .bind(&models)
        .bind(&serials)
        .bind(&agent_versions)
        .bind(&has_users)
        .bind(&logins)
        .bind(&emails)
        .bind(&etags)
        .bind(&sent)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Writes a batch of reports inside the caller's transaction with a handful of array
/// statements (`UNNEST`) instead of four statements per report: each statement is a round
/// trip to the database. The outcome is the one of writing the reports one by one in device
/// order (batch order within a device): a repeated id is a replay, the newest observation of
/// a check wins, and the device row keeps the newest report's inventory. Rows are written
/// in (device, check) order, so concurrent batches lock them in one order (see the module
/// comment).
async fn ingest_batch_in(
    tx: &mut PgConnection,
    reports: &[NewReport<'_>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut outcomes = vec![IngestOutcome::Replayed; reports.len()];
    // Devices in id order, so that batches from several replicas take their row locks in
    // one order and cannot deadlock each other; a stable sort keeps batch order per device.
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by_key(|&i| reports[i].device_id);
    // A report repeated inside the batch is a replay of its first copy.
    let mut seen = std::collections::HashSet::new();
    order.retain(|&i| seen.insert((reports[i].device_id, reports[i].report.report_id)));
    if order.is_empty() {
        return Ok(outcomes);
    }

    // The reports: whichever rows were not stored before come back from RETURNING.
    let rows = sqlx::query(
        "INSERT INTO reports (device_id, report_id, received_at, sent_at, agent_version, body)
         SELECT * FROM UNNEST($1::UUID[], $2::UUID[], $3::TIMESTAMPTZ[], $4::TIMESTAMPTZ[],
            $5::TEXT[], $6::TEXT[])
         ON CONFLICT (device_id, report_id) DO NOTHING
         RETURNING device_id, report_id",
    )
    .bind(
        order
            .iter()
            .map(|&i| reports[i].device_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        order
            .iter()
            .map(|&i| reports[i].report.report_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        order
            .iter()
            .map(|&i| reports[i].received_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        order
            .iter()
            .map(|&i| reports[i].report.sent_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        order
            .iter()
            .map(|&i| reports[i].report.agent_version.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(order.iter().map(|&i| reports[i].raw).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut inserted = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        inserted.insert((
            row.try_get::<Uuid, _>("device_id")?,
            row.try_get::<Uuid, _>("report_id")?,
        ));
    }
    let stored: Vec<usize> = order
        .into_iter()
        .filter(|&i| inserted.contains(&(reports[i].device_id, reports[i].report.report_id)))
        .collect();
    if stored.is_empty() {
        return Ok(outcomes);
    }
    for &i in &stored {
        outcomes[i] = IngestOutcome::Stored;
    }

    // Latest results: one row per device × check, as writing the reports in order would
    // leave it (the newest observation; of equal ones, the later report's), since one
    // statement may not update a row twice. The existing row is kept when it is newer.
    let mut latest: std::collections::BTreeMap<(Uuid, &str), (usize, usize, &CheckResult)> =
        std::collections::BTreeMap::new();
    for &i in &stored {
        for (n, r) in reports[i].report.results.iter().enumerate() {
            let key = (reports[i].device_id, r.id.as_str());
            match latest.get(&key) {
                Some((_, _, kept)) if kept.observed_at > r.observed_at => {}
                _ => {
                    latest.insert(key, (i, n, r));
                }
            }
        }
    }
    if !latest.is_empty() {
        let mut devices = Vec::with_capacity(latest.len());
        let mut checks = Vec::with_capacity(latest.len());
        let mut statuses = Vec::with_capacity(latest.len());
        let mut observed = Vec::with_capacity(latest.len());
        let mut bodies = Vec::with_capacity(latest.len());
        let mut report_ids = Vec::with_capacity(latest.len());
        for ((device, check), (i, n, r)) in &latest {
            devices.push(*device);
            checks.push(*check);
            statuses.push(r.status.as_str());
            observed.push(r.observed_at);
            bodies.push(reports[*i].result_text(*n)?);
            report_ids.push(reports[*i].report.report_id);
        }
        sqlx::query(
            "INSERT INTO latest_results
                (device_id, check_id, status, observed_at, result, report_id)
             SELECT * FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TIMESTAMPTZ[],
                $5::TEXT[], $6::UUID[])
             ON CONFLICT (device_id, check_id) DO UPDATE SET
                status = EXCLUDED.status, observed_at = EXCLUDED.observed_at,
                result = EXCLUDED.result, report_id = EXCLUDED.report_id
             WHERE EXCLUDED.observed_at >= latest_results.observed_at",
        )
        .bind(&devices)
        .bind(&checks)
        .bind(&statuses)
        .bind(&observed)
        .bind(&bodies)
        .bind(&report_ids)
        .execute(&mut *tx)
        .await?;
    }

    let events: Vec<(usize, &tandem_proto::v1::Event)> = stored
        .iter()
        .flat_map(|&i| reports[i].report.events.iter().map(move |e| (i, e)))
        .collect();
    if !events.is_empty() {
        sqlx::query(
            "INSERT INTO events (device_id, report_id, kind, at, check_id, detail)
             SELECT u.device_id, u.report_id, u.kind, u.at, u.check_id, u.detail
             FROM UNNEST($1::UUID[], $2::UUID[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::TEXT[],
                $6::TEXT[])
                WITH ORDINALITY AS u(device_id, report_id, kind, at, check_id, detail, n)
             ORDER BY u.n",
        )
        .bind(
            events
                .iter()
                .map(|(i, _)| reports[*i].device_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|(i, _)| reports[*i].report.report_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|(_, e)| e.kind.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|(_, e)| e.at).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|(_, e)| e.check_id.map(|c| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|(_, e)| e.detail.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }

    // The device rows, locked in id order first (an UPDATE … FROM takes them in whatever
    // order its join yields). One statement for the devices with one report in the batch;
    // a device whose outbox replayed several has them applied one at a time, in order,
    // since a later report without a user must not undo an earlier one's user.
    let mut devices: Vec<Uuid> = stored.iter().map(|&i| reports[i].device_id).collect();
    devices.dedup();
    sqlx::query("SELECT 1 FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&devices)
        .execute(&mut *tx)
        .await?;
    let mut per_device: HashMap<Uuid, u32> = HashMap::new();
    for &i in &stored {
        *per_device.entry(reports[i].device_id).or_default() += 1;
    }
    let (single, repeated): (Vec<usize>, Vec<usize>) = stored
        .iter()
        .partition(|&&i| per_device.get(&reports[i].device_id) == Some(&1));
    update_devices(&mut *tx, reports, &single).await?;
    for i in repeated {
        update_devices(&mut *tx, reports, &[i]).await?;
    }
    Ok(outcomes)
}
