//! The agent's one SQLite file: enrolment, policy in force, check history and the outbox.
//!
//! A report is written to the outbox before any attempt to send it and deleted only after
//! the server acknowledged it. A store that cannot be opened (corrupted, not a database) is
//! moved aside with a log line and rebuilt, so the agent keeps working.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tandem_proto::v1::{Event, StatusReport};
use tandem_proto::CheckResult;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("local store {path}: {}", .cause.message)]
    Database { path: PathBuf, cause: DbCause },
    #[error("local store: {}", .0.message)]
    Query(DbCause),
    #[error("local store holds malformed data under `{key}`: {source}")]
    Malformed {
        key: String,
        source: serde_json::Error,
    },
}

/// What SQLite said, once: sqlx's errors repeat their cause in `source()`, which would print
/// it twice in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCause {
    pub message: String,
    /// SQLite's extended result code, when the database answered.
    pub code: Option<i64>,
}

impl DbCause {
    fn of(e: &sqlx::Error) -> DbCause {
        let (mut message, code) = match e {
            sqlx::Error::Database(db) => (
                db.message().to_owned(),
                db.code().and_then(|c| c.parse().ok()),
            ),
            other => (other.to_string(), None),
        };
        // SQLITE_FULL, and the shared-memory and write I/O errors a full file system causes.
        if matches!(code.map(|c| c & 0xff), Some(13) | Some(10)) {
            message.push_str(" (the disk may be full)");
        }
        DbCause { message, code }
    }

    /// SQLite's primary result code.
    fn primary(&self) -> Option<i64> {
        self.code.map(|c| c & 0xff)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(DbCause::of(&e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(source)
            | sqlx::migrate::MigrateError::ExecuteMigration(source, _) => {
                StoreError::Query(DbCause::of(&source))
            }
            other => StoreError::Query(DbCause {
                message: format!("migration failed: {other}"),
                code: None,
            }),
        }
    }
}

pub const STORE_FILE: &str = "agent.db";

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// True only for errors that mean the file itself is damaged (SQLITE_CORRUPT, SQLITE_NOTADB).
/// A full disk, a permission problem or a lock must never make the agent move its data
/// aside: the data is fine, the moment is not.
fn is_corruption(err: &StoreError) -> bool {
    match err {
        StoreError::Database { cause, .. } | StoreError::Query(cause) => {
            matches!(cause.primary(), Some(11) | Some(26))
        }
        _ => false,
    }
}

async fn connect(path: &Path) -> Result<SqlitePool, StoreError> {
    let db = |e: sqlx::Error| StoreError::Database {
        path: path.to_owned(),
        cause: DbCause::of(&e),
    };
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(db)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(5));
    // Two connections: the runtime rarely does more than one thing at a time, and each
    // connection costs memory in a process that is always running.
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(db)?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Query(cause) => StoreError::Database {
                path: path.to_owned(),
                cause,
            },
            other => other,
        })?;
    Ok(pool)
}

impl Store {
    /// Opens (creating when needed) the store in `data_dir`. A file that is not a usable
    /// database is renamed to `agent.db.corrupt-<timestamp>` and a fresh one is made.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(STORE_FILE);
        match connect(&path).await {
            Ok(pool) => Ok(Store { pool }),
            Err(err) if path.exists() && is_corruption(&err) => {
                let aside = path.with_extension(format!(
                    "db.corrupt-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S")
                ));
                tracing::error!(error = %err, moved_to = %aside.display(), "local store unusable; moving it aside and starting a new one");
                std::fs::rename(&path, &aside).map_err(|source| StoreError::DataDir {
                    path: path.clone(),
                    source,
                })?;
                for suffix in ["-wal", "-shm"] {
                    let side = PathBuf::from(format!("{}{suffix}", path.display()));
                    let _ = std::fs::remove_file(side);
                }
                Ok(Store {
                    pool: connect(&path).await?,
                })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn get_raw(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM kv WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    pub async fn put_raw(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM kv WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(key).await? {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|source| StoreError::Malformed {
                        key: key.to_owned(),
                        source,
                    })
            }
        }
    }

    pub async fn put<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(|source| StoreError::Malformed {
            key: key.to_owned(),
            source,
        })?;
        self.put_raw(key, &text).await
    }

    /// Saves a run's results to history.
    pub async fn record_results(&self, results: &[CheckResult]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in results {
            let body = serde_json::to_string(r).map_err(|source| StoreError::Malformed {
                key: "results".into(),
                source,
            })?;
            sqlx::query(
                "INSERT INTO results (check_id, status, observed_at, body) VALUES (?, ?, ?, ?)",
            )
            .bind(r.id.as_str())
            .bind(r.status.as_str())
            .bind(r.observed_at.to_rfc3339())
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest result of each check.
    pub async fn latest_results(&self) -> Result<Vec<CheckResult>, StoreError> {
        let rows = sqlx::query("SELECT body FROM results WHERE id IN (SELECT MAX(id) FROM results GROUP BY check_id) ORDER BY check_id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.get(0);
            match serde_json::from_str(&body) {
                Ok(r) => out.push(r),
                // A row written by another version of the agent is skipped, not fatal.
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable stored result"),
            }
        }
        Ok(out)
    }

    pub async fn push_event(&self, event: &Event) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|source| StoreError::Malformed {
            key: "event".into(),
            source,
        })?;
        sqlx::query("INSERT INTO pending_events (body) VALUES (?)")
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves every pending event into a new outbox entry built by `build`, atomically: an
    /// event is either still pending or inside exactly one queued report.
    pub async fn enqueue_report(
        &self,
        build: impl FnOnce(Vec<Event>) -> StatusReport,
    ) -> Result<StatusReport, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT id, body FROM pending_events ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let mut events = Vec::new();
        let mut max_id = 0i64;
        for row in rows {
            max_id = max_id.max(row.get::<i64, _>(0));
            if let Ok(e) = serde_json::from_str::<Event>(&row.get::<String, _>(1)) {
                events.push(e);
            }
        }
        let report = build(events);
        let body = serde_json::to_string(&report).map_err(|source| StoreError::Malformed {
            key: "report".into(),
            source,
        })?;
        sqlx::query("INSERT INTO outbox (report_id, created_at, body) VALUES (?, ?, ?)")
            .bind(report.report_id.to_string())
            .bind(report.sent_at.to_rfc3339())
            .bind(body)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM pending_events WHERE id <= ?")
            .bind(max_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Queued reports, oldest first.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT report_id, body FROM outbox ORDER BY created_at, report_id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(u64::try_from(n).unwrap_or_default())
    }

    pub async fn mark_attempt(&self, report_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE report_id = ?")
            .bind(report_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Called only after the server acknowledged the report.
    pub async fn remove_from_outbox(&self, report_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE report_id = ?")
            .bind(report_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_corrupted_store_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STORE_FILE),
            b"this is not a database, it is a text file of some length",
        )
        .unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store.put_raw("k", "v").await.unwrap();
        assert_eq!(store.get_raw("k").await.unwrap().as_deref(), Some("v"));
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[tokio::test]
    async fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store.put("n", &42u32).await.unwrap();
        store.close().await;
        let store = Store::open(dir.path()).await.unwrap();
        assert_eq!(store.get::<u32>("n").await.unwrap(), Some(42));
    }
}
