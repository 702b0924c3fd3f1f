//! Write-behind for the two writes that come in floods: reports (every device, every quarter
//! hour) and "which policy version a device holds" (every device at once, right after a
//! push). One task per kind takes whatever has queued and writes it in one transaction, so
//! a burst costs a handful of commits instead of one per request.
//!
//! Reports are acknowledged only after their batch commits (the agent deletes its copy on
//! the acknowledgement). The queue is bounded: when the database cannot keep up, a report
//! that finds it full is answered 503 with `Retry-After`, and the agent keeps it and retries,
//! instead of the server buffering without bound.
//!
//! Policy deliveries are for the admin's view only; they are queued without waiting and
//! written within milliseconds. If the queue is ever full, a delivery is dropped with a
//! warning: the device's next report carries the etag it applied anyway.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tandem_proto::v1::StatusReport;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::{to_json_text, IngestOutcome, NewReport, Store, StoreError};

/// Reports waiting for the writer; each holds at most one request body.
pub const REPORT_QUEUE: usize = 512;
/// Reports per transaction at most.
pub const REPORT_BATCH: usize = 128;
/// Policy deliveries waiting for the writer.
const DELIVERY_QUEUE: usize = 65_536;
const DELIVERY_BATCH: usize = 4096;

/// A report on its way to the store.
pub struct QueuedReport {
    pub device_id: Uuid,
    pub report: StatusReport,
    pub raw: String,
    pub received_at: DateTime<Utc>,
    /// `report.results` as JSON, serialized by the handler so the writer need not.
    pub result_texts: Vec<String>,
    /// `raw` as the store keeps it, packed by the handler for the same reason.
    pub raw_packed: Option<Vec<u8>>,
}

impl QueuedReport {
    /// A report received as `raw` and parsed as `report`, with the work done that the
    /// writer would otherwise do in its one task: its results serialized and its body
    /// packed as `store` keeps it.
    pub fn new(
        store: &dyn Store,
        device_id: Uuid,
        report: StatusReport,
        raw: String,
        received_at: DateTime<Utc>,
    ) -> Result<QueuedReport, StoreError> {
        let result_texts = report
            .results
            .iter()
            .map(to_json_text)
            .collect::<Result<Vec<_>, _>>()?;
        let raw_packed = store.pack_report_body(&raw);
        Ok(QueuedReport {
            device_id,
            report,
            raw,
            received_at,
            result_texts,
            raw_packed,
        })
    }

    /// The report as the store takes it.
    pub fn as_new(&self) -> NewReport<'_> {
        NewReport {
            device_id: self.device_id,
            report: &self.report,
            raw: &self.raw,
            received_at: self.received_at,
            result_texts: Some(&self.result_texts),
            raw_packed: self.raw_packed.as_deref(),
        }
    }
}

type Reply = oneshot::Sender<Result<IngestOutcome, StoreError>>;

/// Why a report was not queued.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the report queue is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sending halves, shared by the handlers.
#[derive(Debug, Clone)]
pub struct Writers {
    reports: mpsc::Sender<(QueuedReport, Reply)>,
    deliveries: mpsc::Sender<(Uuid, i64)>,
}

impl Writers {
    /// Starts the writer tasks; they end when every `Writers` clone is dropped, after writing
    /// what was queued.
    pub fn start(store: Arc<dyn Store>, report_queue: usize) -> Writers {
        let (reports, report_rx) = mpsc::channel(report_queue.max(1));
        let (deliveries, delivery_rx) = mpsc::channel(DELIVERY_QUEUE);
        tokio::spawn(write_reports(Arc::clone(&store), report_rx));
        tokio::spawn(write_deliveries(store, delivery_rx));
        Writers {
            reports,
            deliveries,
        }
    }

    /// Whether a report would find room in the queue now (it may still not, by the time it
    /// is parsed: [`Writers::ingest`] decides).
    pub fn has_room(&self) -> bool {
        self.reports.capacity() > 0
    }

    /// Stores a report with the next batch and answers once that batch committed.
    pub async fn ingest(&self, report: QueuedReport) -> Result<IngestOutcome, IngestError> {
        let (tx, rx) = oneshot::channel();
        self.reports
            .try_send((report, tx))
            .map_err(|_| IngestError::Full)?;
        // A writer that went away (shutdown) dropped the reply: the report was not stored.
        rx.await.map_err(|_| IngestError::Full)?.map_err(Into::into)
    }

    /// Notes, without waiting, which policy version a device was sent.
    pub fn policy_delivered(&self, device: Uuid, version: i64) {
        if self.deliveries.try_send((device, version)).is_err() {
            tracing::warn!(%device, "policy delivery queue full; not recorded");
        }
    }
}

async fn write_reports(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(QueuedReport, Reply)>) {
    let mut batch = Vec::with_capacity(REPORT_BATCH);
    while rx.recv_many(&mut batch, REPORT_BATCH).await > 0 {
        let (reports, replies): (Vec<QueuedReport>, Vec<Reply>) = batch.drain(..).unzip();
        let news: Vec<NewReport<'_>> = reports.iter().map(QueuedReport::as_new).collect();
        match store.ingest_reports(&news).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            // A busy database fails the whole batch alike; the agents retry.
            Err(e) if e.is_overloaded() => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Busy));
                }
            }
            // Anything else: one report may be at fault; store each on its own so the others
            // are not refused with it.
            Err(_) => {
                for (new, reply) in news.into_iter().zip(replies) {
                    let _ = reply.send(store.ingest_report(new).await);
                }
            }
        }
    }
}

async fn write_deliveries(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(Uuid, i64)>) {
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while rx.recv_many(&mut batch, DELIVERY_BATCH).await > 0 {
        // The newest version per device is all that matters.
        let mut latest: HashMap<Uuid, i64> = HashMap::new();
        for (device, version) in batch.drain(..) {
            let v = latest.entry(device).or_insert(version);
            *v = (*v).max(version);
        }
        let deliveries: Vec<(Uuid, i64)> = latest.into_iter().collect();
        if let Err(e) = store.record_policies_delivered(&deliveries).await {
            tracing::warn!(error = %e, n = deliveries.len(), "could not record policy deliveries");
        }
    }
}
