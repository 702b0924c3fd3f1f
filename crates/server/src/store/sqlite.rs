//! The embedded SQLite backend: one file, WAL mode, for a small company's single server.
//!
//! Queries are checked at run time (`sqlx::query`), not at build time, because there is no
//! database to check them against when the workspace builds. Every write transaction starts
//! with `BEGIN IMMEDIATE`: a deferred transaction that reads first and writes later can fail
//! with `SQLITE_BUSY` immediately (its read snapshot went stale), which the busy timeout does
//! not retry; taking the write lock up front makes concurrent writers queue instead.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
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

use super::{
    AuthedApiToken, AuthedDevice, ChangeFeed, EnrollOutcome, IngestOutcome, NewApiToken, NewDevice,
    NewEnrollSecret, NewPolicy, NewReport, PutPolicyOutcome, Role, SecretHash, Store, StoreError,
    StoreOptions, StoredPolicy, DEFAULT_GROUP,
};
use crate::hub::PolicyHub;
use crate::keys::policy_etag;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    change_poll_interval: Duration,
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
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // Each connection to `:memory:` is its own empty database, so an in-memory store
        // must live on exactly one connection that is never closed.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(connect)
        .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            change_poll_interval: options.change_poll_interval,
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

fn parse_json(s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

fn to_json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("serialize JSON: {e}")))
}

/// The string serde gives a unit enum variant (`nudge_shown`), so the column holds the same
/// word as the wire.
fn serde_name<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => Ok(s),
        _ => Err(StoreError::Corrupt(
            "expected an enum that serializes as a string".into(),
        )),
    }
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
            "INSERT INTO enroll_secrets (id, secret_hash, group_name, created_at, expires_at, max_uses)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(secret.id.to_string())
        .bind(&secret.hash[..])
        .bind(&secret.group)
        .bind(ts(secret.created_at))
        .bind(secret.expires_at.map(ts))
        .bind(secret.max_uses.map(i64::from))
        .execute(&mut *tx)
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
        Ok(EnrollOutcome::Enrolled { device_id, group })
    }

    async fn device_by_token(&self, hash: &SecretHash) -> Result<Option<AuthedDevice>, StoreError> {
        let row = sqlx::query(
            "SELECT d.id, d.group_name FROM device_tokens t JOIN devices d ON d.id = t.device_id
             WHERE t.token_hash = ? AND t.revoked_at IS NULL AND d.revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let id: String = row.try_get("id")?;
            Ok(AuthedDevice {
                id: parse_uuid(&id)?,
                group: row.try_get("group_name")?,
            })
        })
        .transpose()
    }

    async fn ingest_report(&self, new: NewReport<'_>) -> Result<IngestOutcome, StoreError> {
        let report = new.report;
        let device_id = new.device_id.to_string();
        let report_id = report.report_id.to_string();
        let received_at = ts(new.received_at);
        let sent_at = ts(report.sent_at);

        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO reports (device_id, report_id, received_at, sent_at, agent_version, body)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, report_id) DO NOTHING",
        )
        .bind(&device_id)
        .bind(&report_id)
        .bind(&received_at)
        .bind(&sent_at)
        .bind(&report.agent_version)
        .bind(new.raw)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Dropping the transaction rolls it back; it wrote nothing anyway.
            return Ok(IngestOutcome::Replayed);
        }

        for result in &report.results {
            // An outbox may deliver an old report after a newer one; the newer observation
            // must win, whatever order the reports arrive in.
            sqlx::query(
                "INSERT INTO latest_results (device_id, check_id, status, observed_at, result, report_id)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (device_id, check_id) DO UPDATE SET
                    status = excluded.status, observed_at = excluded.observed_at,
                    result = excluded.result, report_id = excluded.report_id
                 WHERE excluded.observed_at >= latest_results.observed_at",
            )
            .bind(&device_id)
            .bind(result.id.as_str())
            .bind(result.status.as_str())
            .bind(ts(result.observed_at))
            .bind(to_json_text(result)?)
            .bind(&report_id)
            .execute(&mut *tx)
            .await?;
        }

        for event in &report.events {
            sqlx::query(
                "INSERT INTO events (device_id, report_id, kind, at, check_id, detail)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&device_id)
            .bind(&report_id)
            .bind(serde_name(&event.kind)?)
            .bind(ts(event.at))
            .bind(event.check_id.map(|c| c.as_str()))
            .bind(&event.detail)
            .execute(&mut *tx)
            .await?;
        }

        sqlx::query(
            "UPDATE devices SET last_report_at = ?
             WHERE id = ? AND (last_report_at IS NULL OR last_report_at < ?)",
        )
        .bind(&received_at)
        .bind(&device_id)
        .bind(&received_at)
        .execute(&mut *tx)
        .await?;

        let inv = &report.inventory;
        sqlx::query(
            "UPDATE devices SET hostname = ?, os = ?, os_version = ?, model = ?, serial = ?,
                agent_version = ?,
                user_login = CASE WHEN ? THEN ? ELSE user_login END,
                user_email = CASE WHEN ? THEN ? ELSE user_email END,
                inventory_at = ?
             WHERE id = ? AND (inventory_at IS NULL OR inventory_at <= ?)",
        )
        .bind(&inv.device.hostname)
        .bind(&inv.device.os)
        .bind(&inv.device.os_version)
        .bind(&inv.device.model)
        .bind(&inv.device.serial)
        .bind(&report.agent_version)
        // A report without a user leaves the enrolled user as it was.
        .bind(inv.user.is_some())
        .bind(inv.user.as_ref().map(|u| u.login.as_str()))
        .bind(inv.user.is_some())
        .bind(inv.user.as_ref().and_then(|u| u.email.as_deref()))
        .bind(&sent_at)
        .bind(&device_id)
        .bind(&sent_at)
        .execute(&mut *tx)
        .await?;

        tx.commit().await?;
        Ok(IngestOutcome::Stored)
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
        let version = latest.map_or(1, |p| p.version + 1);
        let etag = policy_etag(&new.group, version, &new.body);
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

    async fn record_policy_delivered(&self, device: Uuid, version: i64) -> Result<(), StoreError> {
        // Skipping the write when nothing changes keeps long-poll answers from queueing for
        // SQLite's single write lock.
        sqlx::query(
            "UPDATE devices SET policy_version = ?
             WHERE id = ? AND (policy_version IS NULL OR policy_version <> ?)",
        )
        .bind(version)
        .bind(device.to_string())
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_api_token(&self, token: &NewApiToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.hash[..])
        .bind(ts(token.created_at))
        .execute(&self.pool)
        .await?;
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

    async fn list_devices(&self) -> Result<Vec<AdminDevice>, StoreError> {
        // Two queries rather than a join: a device has up to a dozen results, and one pass
        // over each table is cheaper than repeating every device column per result.
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let rows = sqlx::query(
            "SELECT id, hostname, os, os_version, group_name, user_login, enrolled_at,
                    last_report_at, policy_version
             FROM devices WHERE revoked_at IS NULL ORDER BY hostname, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let result_rows = sqlx::query(
            "SELECT r.device_id, r.result FROM latest_results r
             JOIN devices d ON d.id = r.device_id WHERE d.revoked_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut results: HashMap<String, Vec<CheckResult>> = HashMap::new();
        for row in result_rows {
            let device: String = row.try_get("device_id")?;
            let text: String = row.try_get("result")?;
            let result: CheckResult = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("stored check result: {e}")))?;
            results.entry(device).or_default().push(result);
        }

        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let mut device_results = results.remove(&id).unwrap_or_default();
                device_results.sort_by_key(|r| r.id);
                let enrolled_at: String = row.try_get("enrolled_at")?;
                Ok(AdminDevice {
                    id: parse_uuid(&id)?,
                    hostname: row.try_get("hostname")?,
                    os: row.try_get("os")?,
                    os_version: row.try_get("os_version")?,
                    group: row.try_get("group_name")?,
                    user_login: row.try_get("user_login")?,
                    enrolled_at: parse_ts(&enrolled_at)?,
                    last_report_at: parse_opt_ts(row.try_get("last_report_at")?)?,
                    policy_version: row.try_get("policy_version")?,
                    results: device_results,
                })
            })
            .collect()
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
}
