//! What the agent remembers of its own activity for the user to look at: the phishing reports
//! they sent, the last status report IT received ("What IT can see") and what changed when.
//!
//! Like `state`, a contract between the runtime and its faces; the desktop frontend's
//! TypeScript declarations are generated from these types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::{CheckId, Status};
use crate::v1::TriageStatus;

/// What a phishing report carried: a link, or a message file by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PhishingSubject {
    Url { url: String },
    Message { file_name: String, bytes: u64 },
}

/// A phishing report the user sent, as acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhishingReceipt {
    pub tracking_id: String,
    /// When the server received it (the server's clock).
    pub received_at: DateTime<Utc>,
    pub subject: PhishingSubject,
    #[serde(default)]
    pub note: Option<String>,
    /// IT's triage as last fetched from the server; `None` until it was first asked.
    #[serde(default)]
    pub status: Option<TriageStatus>,
    /// IT's reply to the reporter, plain text.
    #[serde(default)]
    pub reply: Option<String>,
    /// When IT last changed the status or the reply.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl PhishingReceipt {
    /// Whether the agent should still ask the server about this report.
    pub fn awaits_verdict(&self) -> bool {
        !self.status.is_some_and(TriageStatus::is_final)
    }
}

/// The last status report the server acknowledged, exactly as it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SentReport {
    /// When the server acknowledged it.
    pub acknowledged_at: DateTime<Utc>,
    /// The JSON body, byte for byte as it went over the wire.
    pub body: String,
}

/// One thing that changed, for the History page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// A check's outcome changed (or was seen for the first time, `from: null`).
    Status {
        at: DateTime<Utc>,
        check_id: CheckId,
        from: Option<Status>,
        to: Status,
        summary: String,
    },
    /// The user sent a phishing report.
    Phishing {
        at: DateTime<Utc>,
        tracking_id: String,
    },
}

impl HistoryEntry {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            HistoryEntry::Status { at, .. } | HistoryEntry::Phishing { at, .. } => *at,
        }
    }
}
