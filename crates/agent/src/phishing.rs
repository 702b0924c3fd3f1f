//! Phishing reports: the user forwards a suspicious link or message file to IT
//! (`POST /api/v1/agent/phishing-reports`) and keeps the tracking id the server answers with.
//!
//! The reports sent are remembered in the store (newest first, a bounded list) so the window
//! can show their tracking ids and the History page can list them. IT's triage of each
//! (`GET /api/v1/agent/phishing-reports`) is kept with it, fetched when the window asks and on
//! the report interval while a report awaits a verdict; a new or changed reply is announced
//! once to whichever face listens (`Agent::phishing_replies`).

use chrono::{DateTime, Utc};
use tandem_proto::activity::{PhishingReceipt, PhishingSubject};
use tandem_proto::v1::{PhishingReportStatus, PhishingUrlReport, TriageStatus};
use tokio::sync::broadcast;

use crate::sync::SyncError;
use crate::{Agent, AgentError};

/// The store key of the reports sent, newest first.
const KEY_PHISHING: &str = "phishing_reports";
/// How many sent reports are remembered.
const KEEP: usize = 50;
/// The server's limits (`crates/server/src/api/phishing.rs`), checked here first so the user
/// hears about an oversized message before it is uploaded.
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
pub const MAX_NOTE: usize = 4096;
pub const MAX_URL: usize = 2048;

/// What the user reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhishingSubmission {
    /// A link, as pasted.
    Url { url: String, note: Option<String> },
    /// A message saved from the mail program (`.eml`), byte for byte.
    Message {
        file_name: String,
        bytes: Vec<u8>,
        note: Option<String>,
    },
}

/// IT answered a report the user sent: a verdict, a reply, or both changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhishingReply {
    pub tracking_id: String,
    pub status: TriageStatus,
    /// IT's words to the user, plain text.
    pub reply: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PhishingError {
    #[error("the link is empty")]
    EmptyUrl,
    #[error("the link is longer than {MAX_URL} characters")]
    UrlTooLong,
    #[error("the message file is empty")]
    EmptyMessage,
    #[error("the message file is larger than 10 MB")]
    MessageTooLarge,
    #[error("the note is longer than {MAX_NOTE} characters")]
    NoteTooLong,
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl From<SyncError> for PhishingError {
    fn from(e: SyncError) -> Self {
        PhishingError::Agent(AgentError::Sync(e))
    }
}

impl From<crate::StoreError> for PhishingError {
    fn from(e: crate::StoreError) -> Self {
        PhishingError::Agent(AgentError::Store(e))
    }
}

impl PhishingSubmission {
    /// Trims what the user typed and checks it against the server's limits.
    fn validated(self) -> Result<PhishingSubmission, PhishingError> {
        let clean_note = |note: Option<String>| -> Result<Option<String>, PhishingError> {
            let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            match note {
                Some(n) if n.len() > MAX_NOTE => Err(PhishingError::NoteTooLong),
                other => Ok(other),
            }
        };
        match self {
            PhishingSubmission::Url { url, note } => {
                let url = url.trim().to_owned();
                if url.is_empty() {
                    return Err(PhishingError::EmptyUrl);
                }
                if url.len() > MAX_URL {
                    return Err(PhishingError::UrlTooLong);
                }
                Ok(PhishingSubmission::Url {
                    url,
                    note: clean_note(note)?,
                })
            }
            PhishingSubmission::Message {
                file_name,
                bytes,
                note,
            } => {
                if bytes.is_empty() {
                    return Err(PhishingError::EmptyMessage);
                }
                if bytes.len() > MAX_MESSAGE {
                    return Err(PhishingError::MessageTooLarge);
                }
                Ok(PhishingSubmission::Message {
                    file_name,
                    bytes,
                    note: clean_note(note)?,
                })
            }
        }
    }
}

/// A multipart/form-data body with a `message` file part and an optional `note` part,
/// written by hand: reqwest's multipart feature would add a MIME-guessing dependency for
/// the one form the agent ever sends.
fn multipart(file_name: &str, bytes: &[u8], note: Option<&str>) -> (String, Vec<u8>) {
    let boundary = format!("tandem-{}", uuid::Uuid::now_v7().simple());
    // The file name is informational for the server; quotes and line breaks would end the
    // header early, so they are replaced.
    let safe_name: String = file_name
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\r' | '\n' => '_',
            c => c,
        })
        .collect();
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"; filename=\"{safe_name}\"\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n");
    if let Some(note) = note {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Agent {
    /// Sends a phishing report to IT and remembers the tracking id the server gave it.
    pub async fn report_phishing(
        &self,
        submission: PhishingSubmission,
    ) -> Result<PhishingReceipt, PhishingError> {
        let submission = submission.validated()?;
        let (client, token) = self.server_session().await?;
        let (content_type, body, subject, note) = match submission {
            PhishingSubmission::Url { url, note } => {
                let body = serde_json::to_vec(&PhishingUrlReport {
                    url: url.clone(),
                    note: note.clone(),
                })
                .map_err(|e| SyncError::Malformed(e.to_string()))?;
                (
                    "application/json".to_owned(),
                    body,
                    PhishingSubject::Url { url },
                    note,
                )
            }
            PhishingSubmission::Message {
                file_name,
                bytes,
                note,
            } => {
                let (content_type, body) = multipart(&file_name, &bytes, note.as_deref());
                let subject = PhishingSubject::Message {
                    file_name,
                    bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                };
                (content_type, body, subject, note)
            }
        };
        let ack = client.report_phishing(&token, &content_type, body).await?;
        let receipt = PhishingReceipt {
            tracking_id: ack.tracking_id,
            received_at: ack.received_at,
            subject,
            note,
            status: None,
            reply: None,
            updated_at: None,
        };
        let _writing = self.inner.phishing_lock.lock().await;
        let mut sent = self.phishing_reports().await?;
        sent.insert(0, receipt.clone());
        sent.truncate(KEEP);
        self.inner.store.put(KEY_PHISHING, &sent).await?;
        tracing::info!(tracking_id = %receipt.tracking_id, "phishing report sent");
        Ok(receipt)
    }

    /// The phishing reports sent from this device, newest first.
    pub async fn phishing_reports(&self) -> Result<Vec<PhishingReceipt>, AgentError> {
        Ok(self
            .inner
            .store
            .get(KEY_PHISHING)
            .await?
            .unwrap_or_default())
    }

    /// IT's new or changed answers to the user's phishing reports, each announced once.
    pub fn phishing_replies(&self) -> broadcast::Receiver<PhishingReply> {
        self.inner.phishing_replies.subscribe()
    }

    /// Asks the server where IT's triage of the sent reports stands, keeps it with them and
    /// announces each new or changed answer once. Returns the reports, newest first.
    pub async fn refresh_phishing_reports(&self) -> Result<Vec<PhishingReceipt>, PhishingError> {
        let (client, token) = self.server_session().await?;
        let statuses = client.phishing_statuses(&token).await?;
        let _writing = self.inner.phishing_lock.lock().await;
        let mut sent = self.phishing_reports().await?;
        let news = merge_statuses(&mut sent, &statuses);
        if !news.is_empty() {
            self.inner.store.put(KEY_PHISHING, &sent).await?;
        }
        for reply in news {
            tracing::info!(tracking_id = %reply.tracking_id, status = reply.status.as_str(), "IT answered a phishing report");
            // Nobody listening (the headless agent) is fine: the reply is in the store.
            let _ = self.inner.phishing_replies.send(reply);
        }
        Ok(sent)
    }

    /// The report loop's variant: asks only while some report awaits a verdict, and only
    /// logs a failure (the next interval asks again).
    pub(crate) async fn refresh_phishing_if_pending(&self) {
        match self.phishing_reports().await {
            Ok(sent) if sent.iter().any(PhishingReceipt::awaits_verdict) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sent phishing reports");
                return;
            }
        }
        if let Err(e) = self.refresh_phishing_reports().await {
            tracing::debug!(error = %e, "phishing report statuses not refreshed");
        }
    }

    /// When the newest phishing report was received, if any was sent.
    pub async fn last_phishing_report_at(&self) -> Result<Option<DateTime<Utc>>, AgentError> {
        Ok(self
            .phishing_reports()
            .await?
            .first()
            .map(|r| r.received_at))
    }
}

/// Puts the server's triage into the sent reports it matches (by tracking id; the server's
/// reports this agent does not remember are ignored). Returns the answers to announce: a
/// report whose status or reply changed and that now has a reply or a verdict. A bare move
/// from `new` to `investigating` is kept but not announced.
fn merge_statuses(
    sent: &mut [PhishingReceipt],
    statuses: &[PhishingReportStatus],
) -> Vec<PhishingReply> {
    let mut news = Vec::new();
    for receipt in sent.iter_mut() {
        let Some(status) = statuses
            .iter()
            .find(|s| s.tracking_id == receipt.tracking_id)
        else {
            continue;
        };
        let changed = receipt.status != Some(status.status)
            || receipt.reply != status.reply
            || receipt.updated_at != status.updated_at;
        if !changed {
            continue;
        }
        let reply_changed = status.reply.is_some() && receipt.reply != status.reply;
        let verdict_reached = status.status.is_final() && receipt.status != Some(status.status);
        receipt.status = Some(status.status);
        receipt.reply.clone_from(&status.reply);
        receipt.updated_at = status.updated_at;
        if reply_changed || verdict_reached {
            news.push(PhishingReply {
                tracking_id: receipt.tracking_id.clone(),
                status: status.status,
                reply: status.reply.clone(),
            });
        }
    }
    news
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str) -> PhishingReceipt {
        PhishingReceipt {
            tracking_id: id.into(),
            received_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            subject: PhishingSubject::Url {
                url: "https://evil.example".into(),
            },
            note: None,
            status: None,
            reply: None,
            updated_at: None,
        }
    }

    fn status(
        id: &str,
        status: TriageStatus,
        reply: Option<&str>,
        at: &str,
    ) -> PhishingReportStatus {
        PhishingReportStatus {
            tracking_id: id.into(),
            received_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            status,
            reply: reply.map(str::to_owned),
            updated_at: Some(at.parse().unwrap()),
        }
    }

    #[test]
    fn a_reply_is_announced_once_and_again_only_when_it_changes() {
        let mut sent = vec![receipt("PH-A"), receipt("PH-B")];
        assert!(sent.iter().all(PhishingReceipt::awaits_verdict));
        let untouched = PhishingReportStatus {
            updated_at: None,
            ..status("PH-A", TriageStatus::New, None, "2026-11-28T10:00:00Z")
        };
        // First answer: nothing to say yet, but the status is kept.
        assert!(merge_statuses(&mut sent, &[untouched]).is_empty());
        assert_eq!(sent[0].status, Some(TriageStatus::New));
        // Investigating without a reply is kept quietly.
        let looking = status(
            "PH-A",
            TriageStatus::Investigating,
            None,
            "2026-11-28T11:00:00Z",
        );
        assert!(merge_statuses(&mut sent, &[looking]).is_empty());
        assert_eq!(sent[0].status, Some(TriageStatus::Investigating));

        let confirmed = status(
            "PH-A",
            TriageStatus::Phishing,
            Some("thanks — confirmed phishing"),
            "2026-11-28T12:00:00Z",
        );
        let stranger = status(
            "PH-Z",
            TriageStatus::Safe,
            Some("not yours"),
            "2026-11-28T12:00:00Z",
        );
        let news = merge_statuses(&mut sent, &[confirmed.clone(), stranger]);
        assert_eq!(
            news,
            vec![PhishingReply {
                tracking_id: "PH-A".into(),
                status: TriageStatus::Phishing,
                reply: Some("thanks — confirmed phishing".into()),
            }]
        );
        assert_eq!(
            sent[0].reply.as_deref(),
            Some("thanks — confirmed phishing")
        );
        assert!(!sent[0].awaits_verdict());
        assert!(sent[1].awaits_verdict());
        assert_eq!(
            sent.len(),
            2,
            "a report this agent does not know is not added"
        );

        // The same answer again: said once already.
        assert!(merge_statuses(&mut sent, &[confirmed]).is_empty());
        // IT rewords its reply: said again.
        let reworded = status(
            "PH-A",
            TriageStatus::Phishing,
            Some("Confirmed phishing; we blocked the sender."),
            "2026-11-28T13:00:00Z",
        );
        assert_eq!(merge_statuses(&mut sent, &[reworded]).len(), 1);
        // A verdict without words is still news.
        let safe = status("PH-B", TriageStatus::Safe, None, "2026-11-28T13:00:00Z");
        assert_eq!(merge_statuses(&mut sent, &[safe])[0].tracking_id, "PH-B");
    }

    #[test]
    fn receipts_stored_before_triage_existed_still_load() {
        let old = r#"{"tracking_id":"PH-1","received_at":"2026-11-28T10:00:00Z","subject":{"kind":"url","url":"https://x"},"note":null}"#;
        let r: PhishingReceipt = serde_json::from_str(old).unwrap();
        assert_eq!((r.status, r.reply.as_deref()), (None, None));
        assert!(r.awaits_verdict());
    }

    #[test]
    fn submissions_are_trimmed_and_bounded() {
        let ok = PhishingSubmission::Url {
            url: "  https://evil.example/login \n".into(),
            note: Some("   ".into()),
        }
        .validated()
        .unwrap();
        assert_eq!(
            ok,
            PhishingSubmission::Url {
                url: "https://evil.example/login".into(),
                note: None
            }
        );
        assert!(matches!(
            PhishingSubmission::Url {
                url: " ".into(),
                note: None
            }
            .validated(),
            Err(PhishingError::EmptyUrl)
        ));
        assert!(matches!(
            PhishingSubmission::Message {
                file_name: "a.eml".into(),
                bytes: vec![],
                note: None
            }
            .validated(),
            Err(PhishingError::EmptyMessage)
        ));
        assert!(matches!(
            PhishingSubmission::Url {
                url: "https://x".into(),
                note: Some("n".repeat(MAX_NOTE + 1))
            }
            .validated(),
            Err(PhishingError::NoteTooLong)
        ));
    }

    #[test]
    fn the_form_carries_the_message_verbatim_and_a_tame_file_name() {
        let (content_type, body) =
            multipart("a\"b\r\n.eml", b"Subject: hi\r\n\r\nbody", Some("odd"));
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("filename=\"a_b__.eml\""));
        assert!(text.contains("\r\n\r\nSubject: hi\r\n\r\nbody\r\n"));
        assert!(text.contains("name=\"note\""));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
