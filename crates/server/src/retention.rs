//! Raw reports are kept for the retention period set in config, then deleted in small
//! batches by a background task. Each device's newest report stays whatever its age (the
//! device page shows it), and so do the latest results, events and audit log.
//!
//! With several replicas each one prunes; the deletes are idempotent, so that is only
//! redundant work.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Rows deleted per statement: small enough that ingest never waits long on the lock.
const BATCH: u32 = 1000;
/// How often the pruner wakes.
const EVERY: Duration = Duration::from_secs(60 * 60);

/// Deletes every raw report older than `retention` (but each device's newest), batch by
/// batch. Returns how many were deleted.
pub async fn prune_once(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<u64, StoreError> {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return Ok(0);
    };
    let before = clock.now() - retention;
    let mut total = 0;
    loop {
        let n = store.prune_reports(before, BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
        // Let waiting writers in between batches.
        tokio::task::yield_now().await;
    }
}

/// Prunes now and then every hour until `shutdown`.
pub fn spawn_pruner(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match prune_once(&*store, &*clock, retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "raw reports past their retention deleted"),
                Err(e) => tracing::warn!(error = %e, "could not prune old reports; will retry"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    })
}
