//! The embedded SQLite backend: one file, WAL mode, for a small company's single server.
//!
//! Queries are checked at run time (`sqlx::query`), not at build time, because there is no
//! database to check them against when the workspace builds. Every write transaction starts
//! with `BEGIN IMMEDIATE`: a deferred transaction that reads first and writes later can fail
//! with `SQLITE_BUSY` immediately (its read snapshot went stale), which the busy timeout does
//! not retry; taking the write lock up front makes concurrent writers queue instead.

use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqlitePool};
use tandem_proto::canonical::to_canonical_json;
use tandem_proto::v1::AdminDevice;
use tandem_proto::CheckResult;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::token_cache::TokenCache;
use super::{
    action, console, contains_pattern, device_filter_sql, integrations, latest_per_user,
    parse_json, parse_name, parse_opt_json, releases, to_json_text, AuditEntry, AuditQuery,
    AuthedApiToken, AuthedDevice, ChangeBy, ChangeFeed, DeviceDetail, DeviceFilter, DevicePage,
    DeviceSummary, EnrollOutcome, EnrollSecretInfo, EventRecord, GroupInfo, IdentityFact,
    IngestOutcome, NewApiToken, NewDevice, NewEnrollSecret, NewPhishingReport, NewPolicy,
    NewReport, PhishingReportInfo, PolicyVersionDetail, PolicyVersionInfo, PutPolicyOutcome,
    ReportSummary, Role, SecretHash, SourceHealth, Store, StoreError, StoreOptions, StoredPolicy,
    DEFAULT_GROUP,
};
use crate::hub::PolicyHub;
use crate::keys::policy_etag;

mod body;
mod latest;
pub mod page_cache;
mod raw;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection that writes policy deliveries, and report batches in memory (then the
    /// same pool as `pool`). SQLite drops a connection's whole page cache whenever another
    /// connection committed since its last transaction, so batches spread over the pool's
    /// connections would read every B-tree page they touch again; the floods of writes go
    /// to one connection each, which keeps its cache.
    ingest: SqlitePool,
    /// The connection that writes report batches to a file database (none in memory): its
    /// own, outside sqlx, see [`ReportWriter`].
    writer: Option<Arc<ReportWriter>>,
    /// The task that checkpoints the WAL after ingest commits (none in memory).
    checkpoints: Option<Checkpoints>,
    change_poll_interval: Duration,
    /// Device tokens already looked up; see `token_cache`.
    tokens: Arc<TokenCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses at most the last transactions on power loss, never
            // consistency; FULL would fsync on every report.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            // SQLite's default page cache is kept on purpose for these: a 32 MB cache per
            // connection and a 256 MB read map were tried against ingest on a quiet machine
            // (BENCHMARKS.md, session 4) and made no difference beyond the noise. The report
            // writer's connection differs: see `open_report_writer`.
            .foreign_keys(true);
        // Each connection to `:memory:` is its own empty database, so an in-memory store
        // must live on exactly one connection that is never closed.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let single = || {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let pool = if in_memory {
            single()
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(connect.clone())
        .await?;
        let migrator = sqlx::migrate!("migrations/sqlite");
        let pending = pending_migrations(&pool, &migrator).await;
        // An existing database being upgraded (a new one has every migration pending, and
        // nothing to rebuild). Some rebuild a table: on a database of millions of reports
        // the server is silent for minutes otherwise, which looks like a hang.
        if !pending.is_empty() && pending.len() < migrator.iter().count() {
            tracing::info!(
                migrations = %pending.join(", "),
                "updating the database schema; a migration that rebuilds the reports table \
                 takes about 25 s per million reports stored"
            );
        }
        migrator.run(&pool).await?;
        let ingest = if in_memory {
            pool.clone()
        } else {
            // Checkpoints (copying the WAL back into the database file, with two fsyncs)
            // are mostly left to a task on another connection, so that the writer does not
            // wait on them between batches; its own automatic checkpoint stays as the
            // backstop that keeps the WAL from growing without bound.
            let writer = connect
                .clone()
                .pragma("wal_autocheckpoint", INGEST_AUTOCHECKPOINT.to_string());
            single().connect_with(writer).await?
        };
        let checkpoints = (!in_memory).then(|| {
            let (wake, rx) = tokio::sync::mpsc::channel(1);
            let catch_up = Arc::new(AtomicBool::new(false));
            tokio::spawn(checkpoint_wal(pool.clone(), rx, Arc::clone(&catch_up)));
            Checkpoints { wake, catch_up }
        });
        let writer = match connect.get_filename() {
            _ if in_memory => None,
            path => Some(Arc::new(ReportWriter {
                conn: std::sync::Mutex::new(Some(open_report_writer(path)?)),
                path: path.to_owned(),
            })),
        };
        Ok(SqliteStore {
            pool,
            ingest,
            writer,
            change_poll_interval: options.change_poll_interval,
            tokens: Arc::new(TokenCache::default()),
            checkpoints,
        })
    }

    /// The pool, for tests and tools that inspect the database directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Policy rows after `cursor`, oldest first, as (id, group, version).
async fn read_policy_changes(
    pool: &SqlitePool,
    cursor: i64,
) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, group_name, version FROM policies WHERE id > ? ORDER BY id LIMIT 1000",
    )
    .bind(cursor)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                row.try_get("group_name")?,
                row.try_get("version")?,
            ))
        })
        .collect()
}

/// The migrations of `migrator` that `pool`'s database has not applied yet, as
/// "version description"; all of them for a new database.
async fn pending_migrations(pool: &SqlitePool, migrator: &sqlx::migrate::Migrator) -> Vec<String> {
    // No such table before the first migration ran: nothing is applied.
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    migrator
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect()
}

/// The one timestamp shape stored, fixed-width so that string order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp `{s}`: {e}")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_ts).transpose()
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("uuid `{s}`: {e}")))
}

fn policy_from_row(row: &SqliteRow) -> Result<StoredPolicy, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredPolicy {
        group: row.try_get("group_name")?,
        version: row.try_get("version")?,
        body: parse_json(&body)?,
        etag: row.try_get("etag")?,
    })
}

async fn ensure_group(
    conn: &mut sqlx::SqliteConnection,
    group: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(group)
    .bind(ts(now))
    .execute(conn)
    .await?;
    Ok(())
}

async fn audit(
    conn: &mut sqlx::SqliteConnection,
    by: &ChangeBy,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(ts(by.at))
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

fn release_from_row(row: &SqliteRow) -> Result<releases::ReleaseInfo, StoreError> {
    let created_at: String = row.try_get("created_at")?;
    Ok(releases::ReleaseInfo {
        channel: row.try_get("channel")?,
        target: row.try_get("target")?,
        version: row.try_get("version")?,
        signature: row.try_get("signature")?,
        notes: row.try_get("notes")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        created_at: parse_ts(&created_at)?,
        created_by: row.try_get("created_by")?,
    })
}

/// A version part as the database stores it (a signed 64-bit integer).
fn release_part(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("version part {n} is too large")))
}

/// A device's last rows stored in `table` (`reports` or `events`; ?1 the device's id, ?2
/// how many at most), newest first, as the rows of a table `chain`, each a row id: the chain
/// from the device row's `newest` column back through each row's `prev_id` (migrations 90
/// and 100), which ends where retention pruned. A row's `prev_id` is always older than it,
/// so the chain cannot loop; it is cut at ?2 anyway.
fn newest_of_device(table: &str, newest: &str) -> String {
    format!(
        "WITH RECURSIVE chain (id, n) AS (
             SELECT {newest}, 1 FROM devices
             WHERE id = ?1 AND {newest} IS NOT NULL AND ?2 > 0
             UNION ALL
             SELECT t.prev_id, chain.n + 1 FROM chain JOIN {table} t ON t.id = chain.id
             WHERE t.prev_id IS NOT NULL AND chain.n < ?2)"
    )
}

/// The columns `device_from_row` reads.
const DEVICE_COLUMNS: &str = "d.id, d.hostname, d.os, d.os_version, d.group_name, d.user_login,
    d.enrolled_at, d.last_report_at, d.policy_version, d.applied_policy_etag";

fn device_from_row(
    row: &SqliteRow,
    results: Vec<CheckResult>,
) -> Result<DeviceSummary, StoreError> {
    let id: String = row.try_get("id")?;
    let enrolled_at: String = row.try_get("enrolled_at")?;
    let mut results = results;
    results.sort_by_key(|r| r.id);
    Ok(DeviceSummary {
        device: AdminDevice {
            id: parse_uuid(&id)?,
            hostname: row.try_get("hostname")?,
            os: row.try_get("os")?,
            os_version: row.try_get("os_version")?,
            group: row.try_get("group_name")?,
            user_login: row.try_get("user_login")?,
            enrolled_at: parse_ts(&enrolled_at)?,
            last_report_at: parse_opt_ts(row.try_get("last_report_at")?)?,
            policy_version: row.try_get("policy_version")?,
            results,
        },
        applied_policy_etag: row.try_get("applied_policy_etag")?,
    })
}

fn secret_from_row(row: &SqliteRow) -> Result<EnrollSecretInfo, StoreError> {
    let id: String = row.try_get("id")?;
    let created_at: String = row.try_get("created_at")?;
    Ok(EnrollSecretInfo {
        id: parse_uuid(&id)?,
        group: row.try_get("group_name")?,
        created_at: parse_ts(&created_at)?,
        created_by: row.try_get("created_by")?,
        expires_at: parse_opt_ts(row.try_get("expires_at")?)?,
        max_uses: row.try_get("max_uses")?,
        uses: row.try_get("uses")?,
        revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
    })
}

const SECRET_COLUMNS: &str =
    "id, group_name, created_at, created_by, expires_at, max_uses, uses, revoked_at";

fn version_info_from_row(row: &SqliteRow) -> Result<PolicyVersionInfo, StoreError> {
    let created_at: String = row.try_get("created_at")?;
    Ok(PolicyVersionInfo {
        group: row.try_get("group_name")?,
        version: row.try_get("version")?,
        etag: row.try_get("etag")?,
        created_at: parse_ts(&created_at)?,
        created_by: row.try_get("created_by")?,
    })
}

fn identity_from_row(row: &SqliteRow) -> Result<IdentityFact, StoreError> {
    let as_of: String = row.try_get("as_of")?;
    Ok(IdentityFact {
        email: row.try_get("email")?,
        login: row.try_get("login")?,
        mfa_enrolled: row.try_get("mfa_enrolled")?,
        password_changed_at: parse_opt_ts(row.try_get("password_changed_at")?)?,
        source: row.try_get("source")?,
        as_of: parse_ts(&as_of)?,
    })
}

/// A console account as sign-in needs it (password or OpenID Connect), from a
/// `console_admins` row.
fn admin_auth_from_row(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<console::ConsoleAdminAuth, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(console::ConsoleAdminAuth {
        id: parse_uuid(&row.try_get::<String, _>("id")?)?,
        username: row.try_get("username")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_last_step: row.try_get("totp_last_step")?,
        locked_until: parse_opt_ts(row.try_get("locked_until")?)?,
        disabled: row.try_get::<Option<String>, _>("disabled_at")?.is_some(),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
             VALUES (1, 'ed25519', ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&candidate[..])
        .bind(&candidate_public[..])
        .bind(ts(now))
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
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM groups WHERE name = ?")
            .bind(group)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn create_enroll_secret(&self, secret: &NewEnrollSecret) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_group(&mut tx, &secret.group, secret.created_at).await?;
        sqlx::query(
            "INSERT INTO enroll_secrets
                (id, secret_hash, group_name, created_at, created_by, expires_at, max_uses)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(secret.id.to_string())
        .bind(&secret.hash[..])
        .bind(&secret.group)
        .bind(ts(secret.created_at))
        .bind(&secret.created_by)
        .bind(secret.expires_at.map(ts))
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
        let now = ts(new.now);
        let mut tx = self.begin_write().await?;
        // Checking and consuming the secret in one statement keeps a use-limited secret from
        // being used more often than allowed by concurrent enrolments.
        let group: Option<String> = sqlx::query_scalar(
            "UPDATE enroll_secrets SET uses = uses + 1
             WHERE secret_hash = ? AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > ?)
               AND (max_uses IS NULL OR uses < max_uses)
             RETURNING group_name",
        )
        .bind(&secret_hash[..])
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(group) = group else {
            return Ok(EnrollOutcome::BadSecret);
        };

        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE machine_id = ?")
                .bind(&new.device.machine_id)
                .fetch_optional(&mut *tx)
                .await?;
        let d = &new.device;
        let device_id = match existing {
            Some(id) => {
                // The same machine enrolling again (a reinstall, a lost keyring, or after an
                // admin revoked it) keeps its identity and history; the newest enrolment wins
                // and earlier tokens stop working.
                sqlx::query(
                    "UPDATE devices SET group_name = ?, hostname = ?, os = ?, os_version = ?,
                        model = ?, serial = ?, user_login = ?, user_email = ?, revoked_at = NULL
                     WHERE id = ?",
                )
                .bind(&group)
                .bind(&d.hostname)
                .bind(&d.os)
                .bind(&d.os_version)
                .bind(&d.model)
                .bind(&d.serial)
                .bind(&new.user.login)
                .bind(&new.user.email)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE device_tokens SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
                )
                .bind(&now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                parse_uuid(&id)?
            }
            None => {
                sqlx::query(
                    "INSERT INTO devices (id, machine_id, group_name, hostname, os, os_version,
                        model, serial, user_login, user_email, enrolled_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(new.candidate_id.to_string())
                .bind(&d.machine_id)
                .bind(&group)
                .bind(&d.hostname)
                .bind(&d.os)
                .bind(&d.os_version)
                .bind(&d.model)
                .bind(&d.serial)
                .bind(&new.user.login)
                .bind(&new.user.email)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                new.candidate_id
            }
        };
        sqlx::query(
            "INSERT INTO device_tokens (token_hash, device_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(&new.token_hash[..])
        .bind(device_id.to_string())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // A re-enrolment revoked the earlier tokens and may have moved the device.
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
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND d.revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let device = row
            .map(|row| {
                let id: String = row.try_get("id")?;
                Ok::<_, StoreError>(AuthedDevice {
                    id: parse_uuid(&id)?,
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
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO overdue_notices (device_id, check_id, deadline, sent_at)
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(device.to_string())
        .bind(check)
        .bind(ts(deadline))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn create_release(
        &self,
        r: &releases::NewRelease,
        keep: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO release_artifacts (sha256, bytes, size) VALUES (?, ?, ?)
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(ts(r.by.at))
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
            "DELETE FROM releases WHERE channel = ? AND target = ? AND id NOT IN (
                 SELECT id FROM releases WHERE channel = ? AND target = ?
                 ORDER BY v_major DESC, v_minor DESC, v_patch DESC LIMIT ?)",
        )
        .bind(&r.channel)
        .bind(&r.target)
        .bind(&r.channel)
        .bind(&r.target)
        .bind(i64::from(keep))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM release_artifacts WHERE sha256 NOT IN (SELECT sha256 FROM releases)",
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
             WHERE r.target = ? AND r.channel = COALESCE(
                 (SELECT channel FROM group_channels WHERE group_name = ?), ?)
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
        let row = sqlx::query("SELECT bytes FROM release_artifacts WHERE sha256 = ?")
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
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = ?")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        let before: Option<String> =
            sqlx::query_scalar("SELECT channel FROM group_channels WHERE group_name = ?")
                .bind(group)
                .fetch_optional(&mut *tx)
                .await?;
        let before = before.unwrap_or_else(|| releases::DEFAULT_CHANNEL.to_owned());
        if before == channel {
            return Ok(true);
        }
        sqlx::query(
            "INSERT INTO group_channels (group_name, channel) VALUES (?, ?)
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
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM reports WHERE id IN (
                 SELECT r.id FROM reports r
                 WHERE r.received_at < ?
                   AND r.id NOT IN (SELECT last_report_id FROM devices
                                    WHERE last_report_id IS NOT NULL)
                 LIMIT ?)",
        )
        .bind(ts(before))
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    fn pack_report_body(&self, raw: &str) -> Option<Vec<u8>> {
        body::pack(raw)
    }

    async fn ingest_report(&self, new: NewReport<'_>) -> Result<IngestOutcome, StoreError> {
        let outcomes = self.ingest_reports(&[new]).await?;
        Ok(outcomes.first().copied().unwrap_or(IngestOutcome::Replayed))
    }

    async fn ingest_reports(
        &self,
        reports: &[NewReport<'_>],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let Some(writer) = &self.writer else {
            // In memory: the pool's one connection, which no other connection contends with
            // for the write lock.
            let mut writer = CloseUnlessDone {
                conn: self.ingest.acquire().await?,
                done: false,
            };
            let mut handle = writer.conn.lock_handle().await?;
            let raw = raw::Conn::new(&mut handle);
            let result = blocking(|| write_batch(&raw, false, reports));
            writer.done = !raw.in_transaction();
            return result.unwrap_or(Err(StoreError::Busy));
        };
        // The task copies the WAL into the database up to where it stood when each pass
        // began; what is left is the few commits made meanwhile. Copying those too, here
        // between two batches, leaves the WAL wholly copied when the next transaction
        // begins, and so its first commit starts the WAL over from its beginning: see
        // [`catch_up_due`] for when.
        let mut catch_up = self
            .checkpoints
            .as_ref()
            .is_some_and(Checkpoints::take_catch_up);
        // Another connection may hold the write lock (an admin's change, say). The writer
        // waits for it here, asleep on the runtime, rather than in SQLite's busy handler on
        // a runtime thread: that thread could be the one that has to run the task whose
        // transaction holds the lock.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        let result = loop {
            let attempt = blocking(|| writer.write(catch_up, reports));
            if let Some(result) = attempt {
                break result;
            }
            catch_up = false;
            if Instant::now() >= deadline {
                return Err(StoreError::Busy);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        if let (Ok(_), Some(checkpoints)) = (&result, &self.checkpoints) {
            // Full: a checkpoint is already due.
            let _ = checkpoints.wake.try_send(());
        }
        result
    }

    async fn effective_policy(&self, group: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let row = sqlx::query(
            "SELECT group_name, version, body, etag FROM policies
             WHERE group_name IN (?1, ?2)
             ORDER BY CASE WHEN group_name = ?1 THEN 0 ELSE 1 END, version DESC
             LIMIT 1",
        )
        .bind(group)
        .bind(DEFAULT_GROUP)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn put_policy(&self, new: &NewPolicy) -> Result<PutPolicyOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_group(&mut tx, &new.group, new.created_at).await?;
        let latest = sqlx::query(
            "SELECT group_name, version, body, etag FROM policies
             WHERE group_name = ? ORDER BY version DESC LIMIT 1",
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
        sqlx::query(
            "INSERT INTO policies (group_name, version, body, etag, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.group)
        .bind(version)
        .bind(to_json_text(&new.body)?)
        .bind(&etag)
        .bind(ts(new.created_at))
        .bind(&new.created_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PutPolicyOutcome::Created(StoredPolicy {
            group: new.group.clone(),
            version,
            body: new.body.clone(),
            etag,
        }))
    }

    async fn record_policies_delivered(
        &self,
        deliveries: &[(Uuid, i64)],
    ) -> Result<(), StoreError> {
        // On the ingest connection: deliveries come in floods too, and a commit from any
        // other connection would empty that connection's page cache.
        let mut tx = self.ingest.begin_with("BEGIN IMMEDIATE").await?;
        for (device, version) in deliveries {
            sqlx::query(
                "UPDATE devices SET policy_version = ?
                 WHERE id = ? AND (policy_version IS NULL OR policy_version <> ?)",
            )
            .bind(version)
            .bind(device.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_policy_delivered(&self, device: Uuid, version: i64) -> Result<(), StoreError> {
        self.record_policies_delivered(&[(device, version)]).await
    }

    async fn create_api_token(&self, token: &NewApiToken) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.hash[..])
        .bind(ts(token.created_at))
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
            "SELECT id, name, role FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let id: String = row.try_get("id")?;
            let role: String = row.try_get("role")?;
            Ok(AuthedApiToken {
                id: parse_uuid(&id)?,
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("api token role `{role}`")))?,
            })
        })
        .transpose()
    }

    async fn list_devices(&self, filter: &DeviceFilter) -> Result<DevicePage, StoreError> {
        let (where_sql, params) = device_filter_sql(filter, || "?".to_owned());
        // One read transaction, so the count, the page and its results agree.
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let count_sql = format!("SELECT COUNT(*) FROM devices d{where_sql}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for p in &params {
            count = count.bind(p);
        }
        let total = count.fetch_one(&mut *tx).await?;
        let page_sql = format!(
            "SELECT {DEVICE_COLUMNS}, {} FROM devices d{where_sql}
             ORDER BY d.hostname, d.id LIMIT ? OFFSET ?",
            latest::SELECT_RESULTS
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
        tx.commit().await?;
        let devices = rows
            .iter()
            .map(|row| device_from_row(row, latest::from_row(row)?))
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
        let id = id.to_string();
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let sql = format!(
            "SELECT {DEVICE_COLUMNS}, d.machine_id, d.model, d.serial, d.user_email,
                    d.agent_version, d.revoked_at, {}
             FROM devices d WHERE d.id = ?",
            latest::SELECT_RESULTS
        );
        let Some(row) = sqlx::query(&sql).bind(&id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let results = latest::from_row(&row)?;
        let reports = sqlx::query(&format!(
            "{}
             SELECT r.report_id, r.received_at, r.sent_at, r.agent_version
             FROM chain JOIN reports r ON r.id = chain.id
             WHERE r.device_id = ?1 ORDER BY r.id DESC",
            newest_of_device("reports", "last_report_id")
        ))
        .bind(&id)
        .bind(i64::from(history))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let report_id: String = r.try_get("report_id")?;
            let received_at: String = r.try_get("received_at")?;
            let sent_at: String = r.try_get("sent_at")?;
            Ok(ReportSummary {
                report_id: parse_uuid(&report_id)?,
                received_at: parse_ts(&received_at)?,
                sent_at: parse_ts(&sent_at)?,
                agent_version: r.try_get("agent_version")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let events = sqlx::query(&format!(
            "{}
             SELECT e.kind, e.at, e.check_id, e.detail, e.report_id
             FROM chain JOIN events e ON e.id = chain.id
             WHERE e.device_id = ?1 ORDER BY e.at DESC, e.id DESC",
            newest_of_device("events", "last_event_id")
        ))
        .bind(&id)
        .bind(i64::from(history))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let at: String = r.try_get("at")?;
            let check: Option<String> = r.try_get("check_id")?;
            let report_id: String = r.try_get("report_id")?;
            Ok(EventRecord {
                kind: parse_name(&kind)?,
                at: parse_ts(&at)?,
                check_id: check.as_deref().map(parse_name).transpose()?,
                detail: r.try_get("detail")?,
                report_id: parse_uuid(&report_id)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let last_report = sqlx::query(&format!(
            "SELECT {} FROM reports
             WHERE id = (SELECT last_report_id FROM devices WHERE id = ?)",
            body::SELECT_BODY
        ))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| body::from_row(&row))
        .transpose()?;
        tx.commit().await?;
        Ok(Some(DeviceDetail {
            summary: device_from_row(&row, results)?,
            machine_id: row.try_get("machine_id")?,
            model: row.try_get("model")?,
            serial: row.try_get("serial")?,
            user_email: row.try_get("user_email")?,
            agent_version: row.try_get("agent_version")?,
            revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
            reports,
            events,
            last_report,
        }))
    }

    async fn revoke_device(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let id_text = id.to_string();
        let at = ts(by.at);
        let mut tx = self.begin_write().await?;
        let revoked: Option<Option<String>> =
            sqlx::query_scalar("SELECT revoked_at FROM devices WHERE id = ?")
                .bind(&id_text)
                .fetch_optional(&mut *tx)
                .await?;
        match revoked {
            None => return Ok(false),
            Some(Some(_)) => return Ok(true),
            Some(None) => {}
        }
        sqlx::query("UPDATE devices SET revoked_at = ? WHERE id = ?")
            .bind(&at)
            .bind(&id_text)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE device_tokens SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
        )
        .bind(&at)
        .bind(&id_text)
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
        tx.commit().await?;
        // Before answering, so that the device's next request is refused.
        self.tokens.invalidate_device(id);
        Ok(true)
    }

    async fn policy_versions(&self, group: &str) -> Result<Vec<PolicyVersionInfo>, StoreError> {
        sqlx::query(
            "SELECT group_name, version, etag, created_at, created_by FROM policies
             WHERE group_name = ? ORDER BY version",
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
             WHERE group_name = ? AND version = ?",
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
            let created_at: String = row.try_get("created_at")?;
            Ok(GroupInfo {
                name: row.try_get("name")?,
                created_at: parse_ts(&created_at)?,
                devices: row.try_get("devices")?,
                policy_version: row.try_get("policy_version")?,
            })
        })
        .collect()
    }

    async fn create_group(&self, name: &str, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(ts(by.at))
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
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {SECRET_COLUMNS} FROM enroll_secrets WHERE id = ?");
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let before = secret_from_row(&row)?;
        if before.revoked_at.is_some() {
            return Ok(Some(before));
        }
        sqlx::query("UPDATE enroll_secrets SET revoked_at = ? WHERE id = ?")
            .bind(ts(by.at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        // Read back rather than built here, so the answer carries the stored precision.
        let sql = format!("SELECT {SECRET_COLUMNS} FROM enroll_secrets WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
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

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT id, at, actor, action, target, before, after FROM audit_log
             WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR action = ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(query.before_id)
        .bind(&query.action)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let at: String = row.try_get("at")?;
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: parse_ts(&at)?,
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
        let mut tx = self.begin_write().await?;
        let rows = latest_per_user(facts);
        for (key, fact) in &rows {
            sqlx::query(
                "INSERT INTO identities
                    (source, user_key, email, login, mfa_enrolled, password_changed_at, as_of)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (source, user_key) DO UPDATE SET
                    email = excluded.email, login = excluded.login,
                    mfa_enrolled = excluded.mfa_enrolled,
                    password_changed_at = excluded.password_changed_at, as_of = excluded.as_of",
            )
            .bind(&fact.source)
            .bind(key)
            .bind(&fact.email)
            .bind(&fact.login)
            .bind(fact.mfa_enrolled)
            .bind(fact.password_changed_at.map(ts))
            .bind(ts(fact.as_of))
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
        let row = sqlx::query("SELECT user_email, user_login FROM devices WHERE id = ?")
            .bind(device.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let email: Option<String> = row.try_get("user_email")?;
        let login: String = row.try_get("user_login")?;
        let keys = [email.map(|e| e.to_lowercase()), Some(login.to_lowercase())];
        for key in keys.into_iter().flatten() {
            let row = sqlx::query(
                "SELECT * FROM identities WHERE user_key = ? ORDER BY as_of DESC LIMIT 1",
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
            "SELECT * FROM identities WHERE (?1 IS NULL OR user_key LIKE ?1 ESCAPE '\\')
             ORDER BY user_key, source LIMIT ?2 OFFSET ?3",
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
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                last_run_at = excluded.last_run_at,
                last_success_at = COALESCE(excluded.last_success_at, identity_sources.last_success_at),
                last_error = excluded.last_error,
                users = COALESCE(excluded.users, identity_sources.users)",
        )
        .bind(&h.name)
        .bind(&h.kind)
        .bind(h.last_run_at.map(ts))
        .bind(h.last_success_at.map(ts))
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
                    last_run_at: parse_opt_ts(row.try_get("last_run_at")?)?,
                    last_success_at: parse_opt_ts(row.try_get("last_success_at")?)?,
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_string())
        .bind(&r.tracking_id)
        .bind(r.device_id.to_string())
        .bind(ts(r.received_at))
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
                    p.received_at, p.url, p.note, p.subject, length(p.message) AS message_bytes
             FROM phishing_reports p JOIN devices d ON d.id = p.device_id
             ORDER BY p.received_at DESC, p.id DESC LIMIT ? OFFSET ?",
        )
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(PhishingReportInfo {
                id: parse_uuid(&row.try_get::<String, _>("id")?)?,
                tracking_id: row.try_get("tracking_id")?,
                device_id: parse_uuid(&row.try_get::<String, _>("device_id")?)?,
                hostname: row.try_get("hostname")?,
                user_login: row.try_get("user_login")?,
                user_email: row.try_get("user_email")?,
                received_at: parse_ts(&row.try_get::<String, _>("received_at")?)?,
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
            "SELECT COUNT(*) FROM latest_results WHERE device_id = ? AND status = 'fail'",
        )
        .bind(device.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn phishing_message(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let found: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT message FROM phishing_reports WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.flatten())
    }

    async fn policy_change_feed(
        &self,
        hub: Arc<PolicyHub>,
        shutdown: CancellationToken,
    ) -> Result<ChangeFeed, StoreError> {
        // Versions that exist now are read by every long-poll anyway; only rows after this
        // cursor are news.
        let mut cursor: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM policies")
            .fetch_one(&self.pool)
            .await?;
        let pool = self.pool.clone();
        let mut tick = tokio::time::interval(self.change_poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Box::pin(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match read_policy_changes(&pool, cursor).await {
                    Ok(changes) => {
                        for (id, group, version) in changes {
                            cursor = id;
                            hub.publish(&group, version);
                        }
                    }
                    // The next tick tries again from the same cursor.
                    Err(e) => tracing::warn!(error = %e, "could not read the policy change feed"),
                }
            }
        }))
    }

    // The IT console (issue 7).

    async fn create_console_admin(
        &self,
        admin: &console::NewConsoleAdmin,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO console_admins
                (id, username, role, password_hash, totp_secret, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
        )
        .bind(admin.id.to_string())
        .bind(&admin.username)
        .bind(admin.role.as_str())
        .bind(&admin.password_hash)
        .bind(&admin.totp_secret)
        .bind(ts(admin.created_at))
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
             FROM console_admins WHERE username = ?",
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
        let mut tx = self.begin_write().await?;
        let found: Option<(i64, String)> = if reason.counts() {
            sqlx::query_as(
                "UPDATE console_admins SET failed_attempts = failed_attempts + 1 WHERE id = ?
                 RETURNING failed_attempts, username",
            )
            .bind(admin.to_string())
            .fetch_optional(&mut *tx)
            .await?
        } else {
            sqlx::query_as("SELECT failed_attempts, username FROM console_admins WHERE id = ?")
                .bind(admin.to_string())
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
        let outcome = if reason.counts() && failures >= i64::from(max_failures) {
            let until = now + lock_for;
            sqlx::query(
                "UPDATE console_admins SET failed_attempts = 0, locked_until = ? WHERE id = ?",
            )
            .bind(ts(until))
            .bind(admin.to_string())
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
        let mut tx = self.begin_write().await?;
        let username: Option<String> = sqlx::query_scalar(
            "UPDATE console_admins
             SET totp_last_step = ?, failed_attempts = 0, locked_until = NULL, last_login_at = ?
             WHERE id = ? AND totp_last_step < ? AND disabled_at IS NULL
             RETURNING username",
        )
        .bind(step)
        .bind(ts(session.created_at))
        .bind(session.admin_id.to_string())
        .bind(step)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(username) = username else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, admin_id, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&session.token_hash[..])
        .bind(session.admin_id.to_string())
        .bind(ts(session.created_at))
        .bind(ts(session.expires_at))
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
             WHERE s.token_hash = ? AND s.expires_at > ? AND a.disabled_at IS NULL",
        )
        .bind(&token_hash[..])
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(console::ConsoleSession {
                admin_id: parse_uuid(&row.try_get::<String, _>("id")?)?,
                username: row.try_get("username")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
                expires_at: parse_ts(&row.try_get::<String, _>("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn delete_console_session(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let found: Option<(String, String)> = sqlx::query_as(
            "SELECT a.id, a.username
             FROM console_sessions s JOIN console_admins a ON a.id = s.admin_id
             WHERE s.token_hash = ?",
        )
        .bind(&token_hash[..])
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = ?")
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
             WHERE l.issuer = ? AND l.subject = ?",
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
             FROM console_admins a WHERE lower(a.username) = ?",
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
        let mut tx = self.begin_write().await?;
        if sign_in.link {
            let linked: Option<String> = sqlx::query_scalar(
                "SELECT subject FROM console_oidc_links WHERE issuer = ? AND admin_id = ?",
            )
            .bind(&sign_in.issuer)
            .bind(sign_in.admin_id.to_string())
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
                         VALUES (?, ?, ?, ?)",
                    )
                    .bind(&sign_in.issuer)
                    .bind(&sign_in.subject)
                    .bind(sign_in.admin_id.to_string())
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // Disabled or locked since the caller looked: refused, and the link above is
        // rolled back with the transaction.
        let updated = sqlx::query(
            "UPDATE console_admins SET last_login_at = ?
             WHERE id = ? AND disabled_at IS NULL
               AND (locked_until IS NULL OR locked_until <= ?)",
        )
        .bind(ts(now))
        .bind(sign_in.admin_id.to_string())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(console::OidcSignInOutcome::Refused);
        }
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, admin_id, created_at, expires_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&sign_in.session.token_hash[..])
        .bind(sign_in.admin_id.to_string())
        .bind(ts(sign_in.session.created_at))
        .bind(ts(sign_in.session.expires_at))
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
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT admin_id, issuer, subject, linked_at FROM console_oidc_links
             ORDER BY admin_id, issuer",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(admin_id, issuer, subject, linked_at)| {
                Ok(console::OidcLink {
                    admin_id: parse_uuid(&admin_id)?,
                    issuer,
                    subject,
                    linked_at: parse_ts(&linked_at)?,
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
        let mut tx = self.begin_write().await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM console_admins WHERE id = ?")
            .bind(admin.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(console::OidcLinkOutcome::NoSuchAccount);
        }
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT admin_id FROM console_oidc_links WHERE issuer = ? AND subject = ?",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        match holder {
            Some(holder) if holder != admin.to_string() => {
                return Ok(console::OidcLinkOutcome::SubjectTaken)
            }
            // Linked so already: nothing to change or record.
            Some(_) => return Ok(console::OidcLinkOutcome::Linked),
            None => {}
        }
        let before: Option<(String, String)> = sqlx::query_as(
            "SELECT subject, linked_at FROM console_oidc_links WHERE issuer = ? AND admin_id = ?",
        )
        .bind(issuer)
        .bind(admin.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_oidc_links WHERE issuer = ? AND admin_id = ?")
            .bind(issuer)
            .bind(admin.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_oidc_links (issuer, subject, admin_id, linked_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(admin.to_string())
        .bind(ts(by.at))
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
        let mut tx = self.begin_write().await?;
        let before: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM console_oidc_links WHERE issuer = ? AND admin_id = ?
             RETURNING subject, linked_at",
        )
        .bind(issuer)
        .bind(admin.to_string())
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
                id: parse_uuid(&row.try_get::<String, _>("id")?)?,
                username: row.try_get("username")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("console admin role `{role}`")))?,
                created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
                created_by: row.try_get("created_by")?,
                last_login_at: parse_opt_ts(row.try_get("last_login_at")?)?,
                locked_until: parse_opt_ts(row.try_get("locked_until")?)?,
                disabled_at: parse_opt_ts(row.try_get("disabled_at")?)?,
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
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT role FROM console_admins WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        if before == role.as_str() {
            return Ok(true);
        }
        sqlx::query("UPDATE console_admins SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(id.to_string())
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
        let mut tx = self.begin_write().await?;
        let found: Option<Option<String>> =
            sqlx::query_scalar("SELECT disabled_at FROM console_admins WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match found {
            None => return Ok(false),
            Some(Some(_)) => return Ok(true),
            Some(None) => {}
        }
        sqlx::query("UPDATE console_admins SET disabled_at = ? WHERE id = ?")
            .bind(ts(by.at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM console_sessions WHERE admin_id = ?")
            .bind(id.to_string())
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
        let mut tx = self.begin_write().await?;
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
             SELECT device_id, check_id, since FROM latest_results
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
                    parse_uuid(&row.try_get::<String, _>("device_id")?)?,
                    row.try_get("check_id")?,
                    parse_ts(&row.try_get::<String, _>("since")?)?,
                ))
            })
            .collect()
    }

    async fn record_daily_compliance(
        &self,
        days: &[console::DailyCompliance],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for d in days {
            sqlx::query(
                "INSERT INTO console_compliance_daily (day, check_id, pass, due, overdue, unknown)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (day, check_id) DO UPDATE SET pass = excluded.pass,
                    due = excluded.due, overdue = excluded.overdue, unknown = excluded.unknown",
            )
            .bind(d.day.format("%Y-%m-%d").to_string())
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
             WHERE day >= ? ORDER BY day, check_id",
        )
        .bind(from.format("%Y-%m-%d").to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let day: String = row.try_get("day")?;
            Ok(console::DailyCompliance {
                day: chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|e| StoreError::Corrupt(format!("day `{day}`: {e}")))?,
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
        sqlx::query(&format!(
            "{}
             SELECT r.received_at, {}
             FROM chain JOIN reports r ON r.id = chain.id
             WHERE r.device_id = ?1 ORDER BY r.id DESC",
            newest_of_device("reports", "last_report_id"),
            body::SELECT_BODY
        ))
        .bind(device.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(console::StoredReportBody {
                received_at: parse_ts(&row.try_get::<String, _>("received_at")?)?,
                body: body::from_row(row)?,
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
                id: parse_uuid(&row.try_get::<String, _>("id")?)?,
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("api token role `{role}`")))?,
                created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
                created_by: row.try_get("created_by")?,
                revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
            })
        })
        .collect()
    }

    async fn revoke_api_token(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ts(by.at))
                .bind(id.to_string())
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
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM phishing_reports WHERE id = ?")
            .bind(triage.report_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO console_phishing_triage (report_id, status, reply, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (report_id) DO UPDATE SET status = excluded.status,
                reply = excluded.reply, updated_at = excluded.updated_at,
                updated_by = excluded.updated_by",
        )
        .bind(triage.report_id.to_string())
        .bind(&triage.status)
        .bind(&triage.reply)
        .bind(ts(triage.updated_at))
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
                report_id: parse_uuid(&row.try_get::<String, _>("report_id")?)?,
                status: row.try_get("status")?,
                reply: row.try_get("reply")?,
                updated_at: parse_ts(&row.try_get::<String, _>("updated_at")?)?,
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
                updated_at: parse_ts(&row.try_get::<String, _>("updated_at")?)?,
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
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO identity_source_configs
                (name, kind, config, created_at, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&source.name)
        .bind(&source.kind)
        .bind(to_json_text(&source.config)?)
        .bind(ts(by.at))
        .bind(ts(by.at))
        .bind(&by.actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        // A health row left by an earlier source of this name must not delay the first poll.
        sqlx::query("UPDATE identity_sources SET next_poll_at = NULL WHERE name = ?")
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
        let mut tx = self.begin_write().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT config FROM identity_source_configs WHERE name = ?")
                .bind(&source.name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE identity_source_configs SET kind = ?, config = ?, updated_at = ?,
                updated_by = ? WHERE name = ?",
        )
        .bind(&source.kind)
        .bind(to_json_text(&source.config)?)
        .bind(ts(by.at))
        .bind(&by.actor)
        .bind(&source.name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE identity_sources SET next_poll_at = NULL WHERE name = ?")
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
        let mut tx = self.begin_write().await?;
        let before: Option<String> = sqlx::query_scalar(
            "DELETE FROM identity_source_configs WHERE name = ? RETURNING config",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM identity_sources WHERE name = ?")
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
            "INSERT INTO identity_sources (name, kind, next_poll_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET next_poll_at = excluded.next_poll_at
             WHERE identity_sources.next_poll_at IS NULL OR identity_sources.next_poll_at <= ?",
        )
        .bind(name)
        .bind(kind)
        .bind(ts(next))
        .bind(ts(now))
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
                id: parse_uuid(&row.try_get::<String, _>("id")?)?,
                name: row.try_get("name")?,
                config: parse_json(&row.try_get::<String, _>("config")?)?,
                updated_at: parse_ts(&row.try_get::<String, _>("updated_at")?)?,
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
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_configs (id, name, config, created_at, updated_at, updated_by)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(hook.id.to_string())
        .bind(&hook.name)
        .bind(to_json_text(&hook.config)?)
        .bind(ts(by.at))
        .bind(ts(by.at))
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
        let mut tx = self.begin_write().await?;
        let before: Option<(String, String)> =
            sqlx::query_as("SELECT name, config FROM webhook_configs WHERE id = ?")
                .bind(hook.id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((name, before)) = before else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE webhook_configs SET config = ?, updated_at = ?, updated_by = ? WHERE id = ?",
        )
        .bind(to_json_text(&hook.config)?)
        .bind(ts(by.at))
        .bind(&by.actor)
        .bind(hook.id.to_string())
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
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT config FROM identity_source_configs WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if current.map(|c| parse_json(&c)).transpose()?.as_ref() != Some(before) {
            return Ok(false);
        }
        sqlx::query("UPDATE identity_source_configs SET config = ? WHERE name = ?")
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
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT config FROM webhook_configs WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if current.map(|c| parse_json(&c)).transpose()?.as_ref() != Some(before) {
            return Ok(false);
        }
        sqlx::query("UPDATE webhook_configs SET config = ? WHERE id = ?")
            .bind(to_json_text(after)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_webhook_config(&self, id: Uuid, by: &ChangeBy) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let before: Option<(String, String)> =
            sqlx::query_as("DELETE FROM webhook_configs WHERE id = ? RETURNING name, config")
                .bind(id.to_string())
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
        // `? IS NULL OR …` keeps one statement for the list and the single report.
        sqlx::query(
            "SELECT p.tracking_id, p.received_at, t.status, t.reply, t.updated_at
             FROM phishing_reports p
             LEFT JOIN console_phishing_triage t ON t.report_id = p.id
             WHERE p.device_id = ? AND (? IS NULL OR p.tracking_id = ?)
             ORDER BY p.received_at DESC, p.id DESC LIMIT ?",
        )
        .bind(device.to_string())
        .bind(tracking_id)
        .bind(tracking_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let status: Option<String> = row.try_get("status")?;
            let updated_at: Option<String> = row.try_get("updated_at")?;
            Ok(tandem_proto::v1::PhishingReportStatus {
                tracking_id: row.try_get("tracking_id")?,
                received_at: parse_ts(&row.try_get::<String, _>("received_at")?)?,
                status: status.as_deref().map_or(
                    tandem_proto::v1::TriageStatus::New,
                    tandem_proto::v1::TriageStatus::parse,
                ),
                reply: row.try_get("reply")?,
                updated_at: updated_at.as_deref().map(parse_ts).transpose()?,
            })
        })
        .collect()
    }
}

/// The ingest connection while a transaction may be open on it. Dropped before `done`
/// (an error, a failed rollback, or the future itself dropped while it waits) it closes
/// the connection rather than hand it back to the pool holding the write lock.
struct CloseUnlessDone {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    done: bool,
}

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

/// The WAL checkpoint task's two ends, as the store holds them.
#[derive(Debug, Clone)]
struct Checkpoints {
    /// Wakes the task after an ingest commit.
    wake: tokio::sync::mpsc::Sender<()>,
    /// Set by the task when the report writer should catch up before its next batch: see
    /// [`catch_up_due`].
    catch_up: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Whether the writer should catch up before its next batch, clearing the task's
    /// signal if so: of two writers racing here (the batch task and a report stored on
    /// its own), one catches up.
    fn take_catch_up(&self) -> bool {
        self.catch_up.swap(false, Ordering::AcqRel)
    }
}

/// Whether the report writer is due to catch up with the checkpoint task (copy the last few
/// commits into the database itself, so that its next transaction starts the WAL over),
/// `passes` passes of the task after it last did.
///
/// A catch-up ends in two fsyncs, and the batch and every report queued behind it wait for
/// them. After every pass (one batch in six under load) that was the whole of ingest's p99,
/// and the writer managed 5,800 reports/s of writing against 9,500 with a catch-up every
/// ten passes, its statements and commits quicker too (BENCHMARKS.md, session 8). So the
/// writer catches up every [`CATCH_UP_PASSES`] passes, about every 1.5 s under load, and
/// the WAL grows meanwhile (to a few hundred MB at 5,000 reports/s; the task keeps copying
/// it into the database). When reports are few, so are the task's passes, which it makes
/// only after ingest commits, and the WAL stays small. The WAL file keeps the size a burst
/// grew it to until the server stops: cutting it back whenever it started over
/// (`journal_size_limit`) took the gain away again, as the next burst had to grow it anew.
///
/// What a catch-up costs is what it copies: the commits made since the task's last pass
/// began, their pages scattered over the database file (an fsync of 1,000 scattered pages
/// takes 20 ms on this machine, of 100 about 6). So when one is due the task first
/// [`converge`]s, and signals the writer only then: the writer's catch-ups went from a
/// median of about 40 ms to 16–23 (BENCHMARKS.md, session 10).
fn catch_up_due(passes: u32) -> bool {
    passes >= CATCH_UP_PASSES
}

/// Passes of the checkpoint task between two catch-ups of the report writer.
const CATCH_UP_PASSES: u32 = 10;

/// How long a statement waits for another connection's lock before it fails as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The report writer's page cache: 64 MB at most, against SQLite's default of 2 MB. Each
/// report touches about six pages at random (its device's results, rows and index entries),
/// and a fleet's working set is tens of megabytes; with the batches written straight on the
/// C handle, re-reading those pages from the OS was what the writer had left to trim:
/// +9 % reports/s in closed-loop A/B pairs (BENCHMARKS.md, session 7).
const INGEST_CACHE: &str = "PRAGMA cache_size = -65536";

/// WAL pages after which the report writer's connection (and the ingest pool's)
/// checkpoints itself (SQLite's default is 1,000), 512 MB: a backstop only, as the
/// writer's catch-up (see [`catch_up_due`]) starts the WAL over long before.
const INGEST_AUTOCHECKPOINT: u32 = 131_072;

/// The checkpoint task's pace at most: every checkpoint ends in two fsyncs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// A pass of [`converge`] this short copied so little that the commits made meanwhile,
/// which the writer's catch-up copies, are few.
const CONVERGED: Duration = Duration::from_millis(8);

/// Passes [`converge`] makes at most: on a disk busy with other work a short pass may never
/// come, and the writer catches up anyway.
const CONVERGE_PASSES: u32 = 6;

/// Copies committed WAL pages into the database file after ingest commits, on a connection
/// of the shared pool, at most every [`CHECKPOINT_EVERY`]. A passive checkpoint takes no
/// lock that writers or readers wait for. Every [`CATCH_UP_PASSES`] passes that ran, it
/// [`converge`]s and then sets `catch_up` for the writer (see [`catch_up_due`]). Ends when
/// the store is dropped.
async fn checkpoint_wal(
    pool: SqlitePool,
    mut wake: tokio::sync::mpsc::Receiver<()>,
    catch_up: Arc<AtomicBool>,
) {
    let mut passes = 0;
    while wake.recv().await.is_some() {
        if checkpoint_pass(&pool).await.is_some() {
            passes += 1;
        }
        if catch_up_due(passes) {
            converge(&pool).await;
            passes = 0;
            catch_up.store(true, Ordering::Release);
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
}

/// Passes back to back, each copying what was committed during the one before, until one
/// takes less than [`CONVERGED`] (or [`CONVERGE_PASSES`] were made): then the WAL is copied
/// up to a few milliseconds ago. How many passes it made.
async fn converge(pool: &SqlitePool) -> u32 {
    for made in 1..=CONVERGE_PASSES {
        match checkpoint_pass(pool).await {
            Some(took) if took >= CONVERGED => {}
            _ => return made,
        }
    }
    CONVERGE_PASSES
}

/// One passive checkpoint: how long it took, or `None` when it failed (the writer's own
/// automatic checkpoint remains).
async fn checkpoint_pass(pool: &SqlitePool) -> Option<Duration> {
    let began = Instant::now();
    match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        Ok(_) => Some(began.elapsed()),
        Err(e) => {
            tracing::debug!(error = %e, "WAL checkpoint failed; the writer's own checkpoint remains");
            None
        }
    }
}

/// Runs `f`, which blocks on SQLite, without stalling the other tasks of this runtime worker:
/// on a multi-threaded runtime they move to another thread meanwhile. (A current-thread
/// runtime, as in tests, has no other worker to hand them to.)
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl From<raw::RawError> for StoreError {
    fn from(e: raw::RawError) -> Self {
        if e.is_busy() {
            StoreError::Busy
        } else {
            StoreError::Database(sqlx::Error::Database(Box::new(e)))
        }
    }
}

/// The connection report batches are written on, for a file database: one of its own,
/// outside sqlx (see `raw::Owned`), so that a batch runs from `BEGIN` to `COMMIT` on the
/// calling thread. Through sqlx, taking hold of the handle and beginning the transaction
/// were two trips to the connection's worker thread per batch, and on two busy cores those
/// trips took as long as writing the batch (BENCHMARKS.md, session 7).
#[derive(Debug)]
struct ReportWriter {
    path: std::path::PathBuf,
    /// `None` after a failure left the connection unusable: reopened by the next batch.
    conn: std::sync::Mutex<Option<raw::Owned>>,
}

impl ReportWriter {
    /// One attempt at writing `reports` in one transaction; `None` when another connection
    /// holds the write lock this moment.
    fn write(
        &self,
        catch_up: bool,
        reports: &[NewReport<'_>],
    ) -> Option<Result<Vec<IngestOutcome>, StoreError>> {
        // A panic mid-batch (poisoning the lock) cannot leave a transaction open on the
        // connection: the check below closes any such connection.
        let mut slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot
            .as_mut()
            .is_some_and(|owned| raw::Conn::owned(owned).in_transaction())
        {
            *slot = None;
        }
        let owned = match slot.as_mut() {
            Some(owned) => owned,
            None => match open_report_writer(&self.path) {
                Ok(owned) => slot.insert(owned),
                Err(e) => return Some(Err(e)),
            },
        };
        let conn = raw::Conn::owned(owned);
        let attempt = write_batch(&conn, catch_up, reports);
        if conn.in_transaction() {
            // Neither committed nor rolled back: start over on a new connection.
            *slot = None;
        }
        attempt
    }
}

/// The report writer's connection, set up as the pool's are, except for its automatic
/// checkpoint: see [`INGEST_AUTOCHECKPOINT`].
fn open_report_writer(path: &std::path::Path) -> Result<raw::Owned, StoreError> {
    let mut owned = raw::Owned::open(path, BUSY_TIMEOUT)?;
    let conn = raw::Conn::owned(&mut owned);
    conn.exec("PRAGMA synchronous = NORMAL")?;
    conn.exec("PRAGMA foreign_keys = ON")?;
    conn.exec(INGEST_CACHE)?;
    conn.exec(&format!(
        "PRAGMA wal_autocheckpoint = {INGEST_AUTOCHECKPOINT}"
    ))?;
    Ok(owned)
}

/// One attempt at a batch on `conn`: the catch-up checkpoint if asked (see
/// `ingest_reports`), then the batch in a write transaction; `None` when another connection
/// holds the write lock this moment, so nothing was written.
fn write_batch(
    conn: &raw::Conn<'_>,
    catch_up: bool,
    reports: &[NewReport<'_>],
) -> Option<Result<Vec<IngestOutcome>, StoreError>> {
    if catch_up {
        if let Err(e) = conn.exec_cached("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::debug!(error = %e, "catch-up WAL checkpoint failed");
        }
    }
    match conn.try_begin_immediate(BUSY_TIMEOUT) {
        Ok(true) => Some(ingest_batch(conn, reports)),
        Ok(false) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// The report's row id when stored, no row for a replay. The row names (?7) the device's
/// report before it, its newest until now, for the device's history to follow (migration
/// 90).
const INSERT_REPORT: &str = "
INSERT INTO reports (device_id, report_id, received_at, sent_at, agent_version, body, prev_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (report_id, device_id) DO NOTHING
RETURNING id";

/// What the writer reads of the device before it stores one of its reports: its newest
/// results as held ([`latest`]), to fold the report's into, and its newest report and
/// event, which the report's and its events' rows name as the ones before them.
const DEVICE_ROW: &str = "SELECT results, last_report_id, last_event_id FROM devices WHERE id = ?1";

/// A check's newest status when [`latest::merge`] found it changed (or new): the only
/// write to `latest_results` and its `latest_results_check_status` index, so a report
/// whose statuses stand touches neither.
const SET_CHECK_STATUS: &str = "
INSERT INTO latest_results (device_id, check_id, status, since) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (device_id, check_id) DO UPDATE SET status = excluded.status, since = excluded.since";

/// An event's row id. The row names (?7) the device's event stored before it (migration
/// 100).
const INSERT_EVENT: &str = "
INSERT INTO events (device_id, report_id, kind, at, check_id, detail, prev_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
RETURNING id";

/// The device's hostname from one of its reports (?1 id, ?2 hostname, ?3 sent_at), when it
/// changed and the report is at least as new as the inventory held: run before
/// [`UPDATE_DEVICE`], which moves `inventory_at` on. Apart because `devices_hostname` is
/// rewritten whenever a statement sets the column, changed or not, and hostnames seldom
/// change.
const UPDATE_DEVICE_HOSTNAME: &str = "
UPDATE devices SET hostname = ?2
WHERE id = ?1 AND hostname <> ?2 AND (inventory_at IS NULL OR inventory_at <= ?3)";

/// The device row after one of its reports (?1 id, ?2 received_at, ?3 sent_at): the last
/// report time moves forward only, and only a report at least as new as the inventory held
/// (by its send time) replaces it. SQLite evaluates every `SET` against the row as it was,
/// so each `CASE` sees the old `inventory_at`. A report without a user (?9 false) leaves
/// the enrolled user as it was; ?13 is the newest results merged with the report's
/// ([`latest::merge`]), NULL when none of them was newer; ?14 the report's row id, the
/// newest of the device's as row ids only grow; ?15 the device's newest event's, the
/// report's last if it had any.
const UPDATE_DEVICE: &str = "
UPDATE devices SET
    last_report_id = ?14,
    last_event_id = ?15,
    last_report_at = CASE WHEN last_report_at IS NULL OR last_report_at < ?2
        THEN ?2 ELSE last_report_at END,
    os = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3 THEN ?4 ELSE os END,
    os_version = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3 THEN ?5 ELSE os_version END,
    model = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3 THEN ?6 ELSE model END,
    serial = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3 THEN ?7 ELSE serial END,
    agent_version = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3
        THEN ?8 ELSE agent_version END,
    user_login = CASE WHEN (inventory_at IS NULL OR inventory_at <= ?3) AND ?9
        THEN ?10 ELSE user_login END,
    user_email = CASE WHEN (inventory_at IS NULL OR inventory_at <= ?3) AND ?9
        THEN ?11 ELSE user_email END,
    applied_policy_etag = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3
        THEN ?12 ELSE applied_policy_etag END,
    results = COALESCE(?13, results),
    inventory_at = CASE WHEN inventory_at IS NULL OR inventory_at <= ?3
        THEN ?3 ELSE inventory_at END
WHERE id = ?1";

/// Writes a batch of reports in the write transaction the caller began, and commits it (or
/// rolls it back on an error); each statement is prepared once for the batch and run once
/// per row. The outcome is that of storing the reports one by one in batch order: a report
/// already stored (or earlier in the batch) is a replay and writes nothing, the newest
/// observation of a check wins, and the device row keeps the newest report's inventory.
fn ingest_batch(
    conn: &raw::Conn<'_>,
    reports: &[NewReport<'_>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let written = ingest_in_transaction(conn, reports);
    let result = match written {
        Ok(outcomes) => conn
            .exec_cached("COMMIT")
            .map(|()| outcomes)
            .map_err(Into::into),
        Err(e) => Err(e),
    };
    // After an error, or a COMMIT that failed, the transaction is still open.
    if result.is_err() && conn.in_transaction() {
        let _ = conn.exec_cached("ROLLBACK");
    }
    result
}

fn ingest_in_transaction(
    conn: &raw::Conn<'_>,
    reports: &[NewReport<'_>],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut insert_report = conn.prepare_cached(INSERT_REPORT)?;
    let mut device_row = conn.prepare_cached(DEVICE_ROW)?;
    let mut set_status = conn.prepare_cached(SET_CHECK_STATUS)?;
    let mut insert_event = conn.prepare_cached(INSERT_EVENT)?;
    let mut update_hostname = conn.prepare_cached(UPDATE_DEVICE_HOSTNAME)?;
    let mut update_device = conn.prepare_cached(UPDATE_DEVICE)?;
    let mut outcomes = Vec::with_capacity(reports.len());
    for new in reports {
        let device = new.device_id.to_string();
        let report_id = new.report.report_id.to_string();
        let report = new.report;
        let received_at = ts(new.received_at);
        let sent_at = ts(report.sent_at);
        // Packed by the handler, else here; a body that cannot be packed is kept as text.
        let packed = match new.raw_packed {
            Some(p) => Some(std::borrow::Cow::Borrowed(p)),
            None => body::pack(new.raw).map(std::borrow::Cow::Owned),
        };
        let body = packed
            .as_deref()
            .map_or(raw::Param::Text(new.raw), raw::Param::Blob);
        // No row for a device that is not enrolled: the insert below fails on its foreign
        // key, as it did before the device was read here.
        let [held, last_report, last_event] = match device_row
            .query_row(&[device.as_str().into()])?
            .map(<[raw::Value; 3]>::try_from)
        {
            Some(Ok(columns)) => columns,
            None => [raw::Value::Null, raw::Value::Null, raw::Value::Null],
            Some(Err(other)) => {
                return Err(StoreError::Corrupt(format!(
                    "device row: {} columns",
                    other.len()
                )))
            }
        };
        let inserted = insert_report.query_value(&[
            device.as_str().into(),
            report_id.as_str().into(),
            received_at.as_str().into(),
            sent_at.as_str().into(),
            report.agent_version.as_str().into(),
            body,
            id_param(stored_id(last_report, "device's newest report")?),
        ])?;
        let Some(row_id) = inserted_id(inserted, "report")? else {
            outcomes.push(IngestOutcome::Replayed);
            continue;
        };
        outcomes.push(IngestOutcome::Stored);
        let texts = (0..report.results.len())
            .map(|n| new.result_text(n))
            .collect::<Result<Vec<_>, _>>()?;
        let observed: Vec<String> = report.results.iter().map(|r| ts(r.observed_at)).collect();
        let incoming: Vec<latest::Incoming<'_>> = report
            .results
            .iter()
            .zip(&texts)
            .zip(&observed)
            .map(|((result, text), observed_at)| latest::Incoming {
                check: result.id.as_str(),
                status: result.status.as_str(),
                observed_at,
                report_id: &report_id,
                result: text,
            })
            .collect();
        let held = match held {
            raw::Value::Blob(packed) => latest::stored_json(Some(packed), None)?,
            raw::Value::Text(text) => Some(text),
            raw::Value::Null => None,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "device's latest results: {other:?} is neither text nor a blob"
                )))
            }
        };
        let merged = latest::merge(held.as_deref(), &incoming)?;
        for change in &merged.changes {
            set_status.execute(&[
                device.as_str().into(),
                change.check.as_str().into(),
                change.status.as_str().into(),
                change.since.as_str().into(),
            ])?;
        }
        // Compressed, else (when it cannot be) as text; NULL keeps the value held.
        let packed_results = merged.json.as_deref().map(|json| (body::pack(json), json));
        let results_param = match &packed_results {
            Some((Some(packed), _)) => raw::Param::Blob(packed),
            Some((None, json)) => raw::Param::Text(json),
            None => raw::Param::Null,
        };
        let mut last_event = stored_id(last_event, "device's newest event")?;
        for event in &report.events {
            let inserted = insert_event.query_value(&[
                device.as_str().into(),
                report_id.as_str().into(),
                event.kind.as_str().into(),
                ts(event.at).as_str().into(),
                event.check_id.map(|c| c.as_str()).into(),
                event.detail.as_deref().into(),
                id_param(last_event),
            ])?;
            last_event = inserted_id(inserted, "event")?;
        }
        let inv = &report.inventory;
        update_hostname.execute(&[
            device.as_str().into(),
            inv.device.hostname.as_str().into(),
            sent_at.as_str().into(),
        ])?;
        update_device.execute(&[
            device.as_str().into(),
            received_at.as_str().into(),
            sent_at.as_str().into(),
            inv.device.os.as_str().into(),
            inv.device.os_version.as_str().into(),
            inv.device.model.as_deref().into(),
            inv.device.serial.as_deref().into(),
            report.agent_version.as_str().into(),
            inv.user.is_some().into(),
            inv.user.as_ref().map(|u| u.login.as_str()).into(),
            inv.user.as_ref().and_then(|u| u.email.as_deref()).into(),
            report.policy_etag.as_deref().into(),
            results_param,
            raw::Param::Int(row_id),
            id_param(last_event),
        ])?;
    }
    Ok(outcomes)
}

/// A row id column read as stored (`what` names it in the error a damaged one gives):
/// `None` for NULL.
fn stored_id(value: raw::Value, what: &str) -> Result<Option<i64>, StoreError> {
    match value {
        raw::Value::Int(id) => Ok(Some(id)),
        raw::Value::Null => Ok(None),
        other => Err(StoreError::Corrupt(format!("{what}'s row id: {other:?}"))),
    }
}

/// A row id as a parameter, NULL for none.
fn id_param(id: Option<i64>) -> raw::Param<'static> {
    id.map_or(raw::Param::Null, raw::Param::Int)
}

/// The row id an `INSERT … RETURNING id` of a `what` returned, `None` when it inserted
/// nothing.
fn inserted_id(returned: Option<raw::Value>, what: &str) -> Result<Option<i64>, StoreError> {
    match returned {
        Some(raw::Value::Int(id)) => Ok(Some(id)),
        None => Ok(None),
        Some(other) => Err(StoreError::Corrupt(format!(
            "a stored {what}'s row id: {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file at the schema from before migration `version`, with two devices
    /// enrolled, Ada's and Bob's (`ids`): its directory, URL and a pool on it.
    async fn database_before(
        version: i64,
        ids: [Uuid; 2],
    ) -> (tempfile::TempDir, String, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let mut before = sqlx::migrate!("migrations/sqlite");
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&pool).await.unwrap();
        for (id, user) in ids.into_iter().zip(["ada", "bob"]) {
            sqlx::query(
                "INSERT INTO devices (id, machine_id, group_name, hostname, os, os_version,
                                      user_login, enrolled_at)
                 VALUES (?1, ?2, 'default', ?2 || '-laptop', 'linux', '12', ?2,
                         '2026-11-01T09:00:00.000000Z')",
            )
            .bind(id.to_string())
            .bind(user)
            .execute(&pool)
            .await
            .unwrap();
        }
        (dir, url, pool)
    }

    /// A database written before a device's newest report id moved onto its row (migration
    /// 80) finds each device's newest report, and retention keeps it.
    #[tokio::test]
    async fn a_devices_newest_report_moves_onto_its_row_in_the_migration() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (_dir, url, pool) = database_before(80, [ada, bob]).await;
        // Ada's three reports, interleaved with one of Bob's, all older than retention.
        for (device, n) in [(ada, 1), (bob, 1), (ada, 2), (ada, 3)] {
            sqlx::query(
                "INSERT INTO reports (device_id, report_id, received_at, sent_at,
                                      agent_version, body)
                 VALUES (?, ?, '2026-10-01T09:00:00.000000Z', '2026-10-01T09:00:00.000000Z',
                         '0.1.0', ?)",
            )
            .bind(device.to_string())
            .bind(Uuid::now_v7().to_string())
            .bind(format!("{{\"n\":{n}}}"))
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let newest = |device: Uuid| {
            let store = &store;
            async move {
                store
                    .device_detail(device, 5)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_report
            }
        };
        assert_eq!(newest(ada).await.as_deref(), Some("{\"n\":3}"));
        assert_eq!(newest(bob).await.as_deref(), Some("{\"n\":1}"));
        let dropped: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM pragma_index_list('reports') WHERE name = 'reports_device'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(dropped.is_empty(), "reports_device is dropped");
        // Retention keeps each device's newest report, by the column.
        let cutoff = "2026-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(store.prune_reports(cutoff, 100).await.unwrap(), 2);
        assert_eq!(newest(ada).await.as_deref(), Some("{\"n\":3}"));
        assert_eq!(newest(bob).await.as_deref(), Some("{\"n\":1}"));
        assert_eq!(
            store
                .device_detail(ada, 5)
                .await
                .unwrap()
                .unwrap()
                .reports
                .len(),
            1
        );
    }

    /// Stores `report` from `device`, received now, as the API would.
    async fn store_report(
        store: &SqliteStore,
        device: Uuid,
        report: &tandem_proto::v1::StatusReport,
    ) -> IngestOutcome {
        let raw = serde_json::to_string(report).unwrap();
        store
            .ingest_report(NewReport {
                device_id: device,
                report,
                raw: &raw,
                received_at: Utc::now(),
                result_texts: None,
                raw_packed: None,
            })
            .await
            .unwrap()
    }

    /// A database written before reports were chained (migration 90) lists each device's
    /// history as before, newest first and only its own; ingest and retention go on from
    /// it, and no row id is handed out twice.
    #[tokio::test]
    async fn each_devices_reports_are_chained_in_the_migration() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (_dir, url, pool) = database_before(90, [ada, bob]).await;
        // Ada's three reports, interleaved with Bob's one, older than retention. Bob's
        // second is deleted again: the sequence stands past the largest id left.
        let mut report_ids = Vec::new();
        for (device, n, day) in [
            (ada, 1, "01"),
            (bob, 1, "02"),
            (ada, 2, "03"),
            (ada, 3, "04"),
            (bob, 2, "05"),
        ] {
            let report_id = Uuid::now_v7();
            report_ids.push(report_id);
            sqlx::query(
                "INSERT INTO reports (device_id, report_id, received_at, sent_at,
                                      agent_version, body)
                 VALUES (?1, ?2, ?3, ?3, '0.1.0', ?4)",
            )
            .bind(device.to_string())
            .bind(report_id.to_string())
            .bind(format!("2026-10-{day}T09:00:00.000000Z"))
            .bind(format!("{{\"n\":{n}}}"))
            .execute(&pool)
            .await
            .unwrap();
        }
        let sequence = "SELECT seq FROM sqlite_sequence WHERE name = 'reports'";
        let old_seq: i64 = sqlx::query_scalar(sequence).fetch_one(&pool).await.unwrap();
        sqlx::query("DELETE FROM reports WHERE id = (SELECT MAX(id) FROM reports)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE devices SET last_report_id =
                 (SELECT MAX(r.id) FROM reports r WHERE r.device_id = devices.id)",
        )
        .execute(&pool)
        .await
        .unwrap();
        // What the server names in its log before it starts on them.
        let migrator = sqlx::migrate!("migrations/sqlite");
        let pending = pending_migrations(&pool, &migrator).await;
        assert_eq!(pending[..2], ["90 report chain", "100 event chain"]);
        pool.close().await;

        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        assert!(pending_migrations(store.pool(), &migrator).await.is_empty());
        let history = |device: Uuid, n: u32| {
            let store = &store;
            async move {
                let detail = store.device_detail(device, n).await.unwrap().unwrap();
                detail
                    .reports
                    .iter()
                    .map(|r| r.report_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            history(ada, 10).await,
            [report_ids[3], report_ids[2], report_ids[0]]
        );
        assert_eq!(history(ada, 2).await, [report_ids[3], report_ids[2]]);
        assert_eq!(history(ada, 0).await, Vec::<Uuid>::new());
        assert_eq!(history(bob, 10).await, [report_ids[1]]);
        let bodies: Vec<String> = store
            .device_report_bodies(ada, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.body)
            .collect();
        assert_eq!(bodies, ["{\"n\":3}", "{\"n\":2}", "{\"n\":1}"]);

        // The uniqueness is led by the report id now.
        let unique: Vec<String> = sqlx::query_scalar(
            "SELECT i.name FROM pragma_index_list('reports') l, pragma_index_info(l.name) i
             WHERE l.\"unique\" = 1 AND i.seqno = 0",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(unique, ["report_id"]);

        // A report stored after the migration goes on from the old sequence and joins
        // Ada's chain; a replay of it is one still.
        let report = tandem_fleet_sim::report("m", 1, Utc::now());
        assert_eq!(
            store_report(&store, ada, &report).await,
            IngestOutcome::Stored
        );
        assert_eq!(
            store_report(&store, ada, &report).await,
            IngestOutcome::Replayed
        );
        let new_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM reports")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(new_id > old_seq, "{new_id} after {old_seq}");
        assert_eq!(
            history(ada, 10).await,
            [
                report.report_id,
                report_ids[3],
                report_ids[2],
                report_ids[0]
            ]
        );

        // Retention cuts the chain where it pruned: the October reports go but for Bob's
        // newest, and each history ends there.
        let cutoff = "2026-11-01T00:00:00Z".parse().unwrap();
        assert_eq!(store.prune_reports(cutoff, 100).await.unwrap(), 3);
        assert_eq!(history(ada, 10).await, [report.report_id]);
        assert_eq!(history(bob, 10).await, [report_ids[1]]);
    }

    /// A database written before events were chained (migration 100) lists each device's
    /// recent events from the ones it sent last, and a new report's events join the chain.
    #[tokio::test]
    async fn each_devices_events_are_chained_in_the_migration() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (_dir, url, pool) = database_before(100, [ada, bob]).await;
        // Ada's first event is dated latest (her clock ran ahead); Bob's sits between hers.
        for (device, kind, minute) in [
            (ada, "nudge_shown", 50),
            (ada, "nudge_deferred", 10),
            (bob, "nudge_shown", 20),
            (ada, "nudge_acted", 30),
        ] {
            sqlx::query(
                "INSERT INTO events (device_id, report_id, kind, at)
                 VALUES (?1, ?2, ?3, '2026-11-01T09:' || ?4 || ':00.000000Z')",
            )
            .bind(device.to_string())
            .bind(Uuid::now_v7().to_string())
            .bind(kind)
            .bind(minute.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let recent = |device: Uuid, n: u32| {
            let store = &store;
            async move {
                let detail = store.device_detail(device, n).await.unwrap().unwrap();
                detail
                    .events
                    .iter()
                    .map(|e| e.kind.as_str())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            recent(ada, 10).await,
            ["nudge_shown", "nudge_acted", "nudge_deferred"]
        );
        assert_eq!(recent(ada, 2).await, ["nudge_acted", "nudge_deferred"]);
        assert_eq!(recent(bob, 10).await, ["nudge_shown"]);
        let dropped: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM pragma_index_list('events') WHERE name = 'events_device_at'",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert!(dropped.is_empty(), "events_device_at is dropped");

        // The simulator's report carries one event, a nudge shown now: the newest.
        let report = tandem_fleet_sim::report("m", 1, Utc::now());
        store_report(&store, ada, &report).await;
        assert_eq!(recent(ada, 2).await, ["nudge_shown", "nudge_acted"]);
        assert_eq!(recent(bob, 10).await, ["nudge_shown"]);
    }

    /// A database written before results moved onto the devices row (migration 70) keeps
    /// every device's results, statuses and the filters on them.
    #[tokio::test]
    async fn results_held_as_rows_move_onto_their_device_in_the_migration() {
        let device = Uuid::now_v7();
        // Bob's device never reported, and keeps no results.
        let (_dir, url, pool) = database_before(70, [device, Uuid::now_v7()]).await;
        for (check, status, at) in [
            ("firewall", "fail", "2026-11-28T10:00:00.000000Z"),
            ("screen_lock", "pass", "2026-11-28T10:00:01.000000Z"),
        ] {
            let result = json!({
                "id": check, "status": status, "observed_at": at, "duration_ms": 4,
                "summary": format!("{check}: \"{status}\" <b>as sent</b>"),
            });
            sqlx::query(
                "INSERT INTO latest_results
                     (device_id, check_id, status, observed_at, result, report_id)
                 VALUES (?, ?, ?, ?, ?, 'r-1')",
            )
            .bind(device.to_string())
            .bind(check)
            .bind(status)
            .bind(at)
            .bind(result.to_string())
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = super::super::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        let detail = store.device_detail(device, 5).await.unwrap().unwrap();
        let results = &detail.summary.device.results;
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].id, tandem_proto::CheckId::Firewall);
        assert_eq!(results[0].status, tandem_proto::Status::Fail);
        assert_eq!(results[0].summary, "firewall: \"fail\" <b>as sent</b>");
        assert_eq!(store.failing_checks(device).await.unwrap(), 1);
        let failing = store
            .list_devices(&DeviceFilter {
                check: Some(tandem_proto::CheckId::Firewall),
                status: Some(tandem_proto::Status::Fail),
                limit: 10,
                ..DeviceFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(failing.total, 1);
        assert_eq!(failing.devices[0].device.results.len(), 2);
        let all = store
            .list_devices(&DeviceFilter {
                limit: 10,
                ..DeviceFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.total, 2);
        assert!(
            all.devices[1].device.results.is_empty(),
            "bob never reported"
        );
        store.refresh_failing_since().await.unwrap();
        let since = store.failing_since().await.unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].1, "firewall");
        assert_eq!(since[0].2.to_rfc3339(), "2026-11-28T10:00:00+00:00");
    }

    /// A WAL database at `path` that only the checkpoint task under test checkpoints, with
    /// an empty table `t (v)`.
    async fn wal_database(path: &std::path::Path) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    #[tokio::test]
    async fn the_checkpoint_task_copies_the_wal_into_the_database_file_and_ends_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let pool = wal_database(&path).await;
        for _ in 0..64 {
            sqlx::query("INSERT INTO t (v) VALUES (?)")
                .bind("x".repeat(4000))
                .execute(&pool)
                .await
                .unwrap();
        }
        let size = || std::fs::metadata(&path).unwrap().len();
        assert!(size() < 64 * 4000, "the rows are still only in the WAL");

        let wakes = |n| {
            let (wake, rx) = tokio::sync::mpsc::channel(1);
            let catch_up = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(checkpoint_wal(pool.clone(), rx, Arc::clone(&catch_up)));
            async move {
                for _ in 0..n {
                    wake.send(()).await.unwrap();
                }
                drop(wake);
                // Dropping the last sender (the store) ends the task after its passes.
                task.await.unwrap();
                catch_up.load(Ordering::Acquire)
            }
        };
        assert!(!wakes(1).await, "one pass does not call for a catch-up");
        assert!(size() >= 64 * 4000, "checkpointed: {} bytes", size());
        assert!(
            !wakes(CATCH_UP_PASSES - 1).await,
            "{} passes do not either",
            CATCH_UP_PASSES - 1
        );
        assert!(
            wakes(CATCH_UP_PASSES).await,
            "{CATCH_UP_PASSES} passes call for one"
        );
    }

    #[tokio::test]
    async fn one_writer_takes_each_catch_up() {
        let (wake, _rx) = tokio::sync::mpsc::channel(1);
        let checkpoints = Checkpoints {
            wake,
            catch_up: Arc::new(AtomicBool::new(false)),
        };
        assert!(!checkpoints.take_catch_up(), "none signalled");
        checkpoints.catch_up.store(true, Ordering::Release);
        assert!(checkpoints.take_catch_up(), "signalled");
        assert!(!checkpoints.take_catch_up(), "taken once");
    }

    #[tokio::test]
    async fn converging_stops_at_a_short_pass() {
        let dir = tempfile::tempdir().unwrap();
        let pool = wal_database(&dir.path().join("c.db")).await;
        // Nothing is committed meanwhile, so the second pass has nothing to copy.
        let made = converge(&pool).await;
        assert!((1..=2).contains(&made), "{made} passes on an idle database");
    }
}
