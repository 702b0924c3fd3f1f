//! What the user can look back on: the last report IT received, verbatim ("What IT can
//! see"), and what changed when (the History page).
//!
//! Both come from what the store already keeps: the results table holds every check
//! outcome, and a trigger (`migrations/0002_last_sent_report.sql`) keeps the body of the
//! last report the server acknowledged.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection as _, Row as _};
use tandem_proto::activity::{HistoryEntry, PhishingSubject, SentReport};
use tandem_proto::{CheckId, Status};

use crate::store::{DbCause, StoreError, STORE_FILE};
use crate::{Agent, AgentError};

/// The store key the trigger writes.
const KEY_LAST_SENT: &str = "last_sent_report";

/// Status changes, newest first: each row whose status differs from the check's previous
/// row (or that is the check's first).
const CHANGES: &str = "SELECT check_id, status, observed_at, summary, prev FROM (
        SELECT id, check_id, status, observed_at,
               json_extract(body, '$.summary') AS summary,
               LAG(status) OVER (PARTITION BY check_id ORDER BY id) AS prev
        FROM results
    ) WHERE prev IS NULL OR prev <> status
    ORDER BY id DESC LIMIT ?";

fn query_error(e: &sqlx::Error) -> StoreError {
    StoreError::Query(DbCause {
        message: e.to_string(),
        code: None,
    })
}

/// A snake_case name back into its enum (`"os_updates"` → `CheckId::OsUpdates`).
fn parse_name<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

impl Agent {
    /// The last status report the server acknowledged, exactly as sent, if any was.
    pub async fn last_sent_report(&self) -> Result<Option<SentReport>, AgentError> {
        Ok(self.inner.store.get(KEY_LAST_SENT).await?)
    }

    /// What changed, newest first, at most `limit` entries: every change of a check's outcome
    /// and every phishing report sent.
    ///
    /// Read through a short-lived read-only connection of its own, so the runtime's pool is
    /// not held while the whole history is scanned (WAL lets readers and the writer overlap).
    pub async fn history(&self, limit: u32) -> Result<Vec<HistoryEntry>, AgentError> {
        let path = self.data_dir().join(STORE_FILE);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| query_error(&e))?
            .read_only(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| query_error(&e))?;
        let rows = sqlx::query(CHANGES)
            .bind(limit)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| query_error(&e));
        // Closing is best effort: the connection is read-only and dropped either way.
        let _ = conn.close().await;
        let mut entries: Vec<HistoryEntry> = rows?
            .iter()
            .filter_map(|row| {
                let check_id: CheckId = parse_name(&row.get::<String, _>(0))?;
                let to: Status = parse_name(&row.get::<String, _>(1))?;
                let at: DateTime<Utc> = row.get::<String, _>(2).parse().ok()?;
                let summary: Option<String> = row.get(3);
                let from: Option<Status> =
                    row.get::<Option<String>, _>(4).and_then(|s| parse_name(&s));
                Some(HistoryEntry::Status {
                    at,
                    check_id,
                    from,
                    to,
                    summary: summary.unwrap_or_default(),
                })
            })
            .collect();
        for receipt in self.phishing_reports().await? {
            entries.push(HistoryEntry::Phishing {
                at: receipt.received_at,
                tracking_id: receipt.tracking_id,
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.at()));
        entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(entries)
    }
}

/// A one-line description of what a phishing report carried, for logs and the CLI.
pub fn describe(subject: &PhishingSubject) -> String {
    match subject {
        PhishingSubject::Url { url } => url.clone(),
        PhishingSubject::Message { file_name, bytes } => format!("{file_name} ({bytes} bytes)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use tandem_proto::check::{CheckResult, Owner, Remediation};
    use tandem_proto::v1::{Inventory, StatusReport};

    fn result(id: CheckId, status: Status, at: DateTime<Utc>) -> CheckResult {
        CheckResult {
            id,
            status,
            summary: format!("{id} is {}", status.as_str()),
            reason: None,
            details: serde_json::Value::Null,
            evidence: vec![],
            remediation: Remediation::default(),
            owner: Owner::User,
            observed_at: at,
            duration_ms: 0,
        }
    }

    #[tokio::test]
    async fn history_lists_only_changes_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::open(crate::AgentConfig::new(dir.path().to_owned()))
            .await
            .unwrap();
        let t0 = Utc::now() - Duration::hours(3);
        let store = &agent.inner.store;
        for (hours, os, fw) in [
            (0, Status::Fail, Status::Pass),
            (1, Status::Fail, Status::Pass),
            (2, Status::Pass, Status::Pass),
        ] {
            let at = t0 + Duration::hours(hours);
            store
                .record_results(&[
                    result(CheckId::OsUpdates, os, at),
                    result(CheckId::Firewall, fw, at),
                ])
                .await
                .unwrap();
        }
        let history = agent.history(100).await.unwrap();
        let seen: Vec<_> = history
            .iter()
            .map(|e| match e {
                HistoryEntry::Status {
                    check_id, from, to, ..
                } => (*check_id, *from, *to),
                HistoryEntry::Phishing { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (CheckId::OsUpdates, Some(Status::Fail), Status::Pass),
                (CheckId::Firewall, None, Status::Pass),
                (CheckId::OsUpdates, None, Status::Fail),
            ]
        );
        assert_eq!(agent.history(1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_last_acknowledged_report_is_kept_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::open(crate::AgentConfig::new(dir.path().to_owned()))
            .await
            .unwrap();
        assert_eq!(agent.last_sent_report().await.unwrap(), None);
        let store = &agent.inner.store;
        let report = store
            .enqueue_report(|events| StatusReport {
                report_id: uuid::Uuid::now_v7(),
                agent_version: "test".into(),
                sent_at: Utc::now(),
                inventory: Inventory::default(),
                results: vec![],
                events,
                policy_etag: None,
            })
            .await
            .unwrap();
        // Queued is not sent: nothing to show yet.
        assert_eq!(agent.last_sent_report().await.unwrap(), None);
        let (id, body) = store.outbox(1).await.unwrap().remove(0);
        assert_eq!(id, report.report_id.to_string());
        store.remove_from_outbox(&id).await.unwrap();
        let sent = agent.last_sent_report().await.unwrap().unwrap();
        assert_eq!(sent.body, body);
        assert!((Utc::now() - sent.acknowledged_at).num_seconds().abs() < 60);
    }
}
