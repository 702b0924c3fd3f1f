//! A simulated fleet straight in a `Store`, for the writer bench (`benches/store_ingest.rs`)
//! and the page-cache test (`tests/page_cache.rs`), which include this file: devices enrolled
//! through the store, and the fleet simulator's report queued as the handler queues it.

use chrono::{DateTime, Utc};
use tandem_fleet_sim::{device, report, user};
use tandem_server::batch::QueuedReport;
use tandem_server::store::{EnrollOutcome, NewDevice, NewEnrollSecret, Store};
use uuid::Uuid;

/// Enrols `count` simulated devices of the fleet `name` (`tandem_fleet_sim::device(name,
/// i)`), each with its own token; their ids, in order.
pub async fn enrol(store: &dyn Store, name: &str, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let secret = [7u8; 32];
    store
        .create_enroll_secret(&NewEnrollSecret {
            id: Uuid::now_v7(),
            hash: secret,
            group: "default".into(),
            created_at: Utc::now(),
            expires_at: None,
            max_uses: None,
            created_by: name.into(),
        })
        .await?;
    let mut devices = Vec::with_capacity(count);
    for i in 0..count {
        let mut token = [0u8; 32];
        token[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let outcome = store
            .enroll(
                &secret,
                &NewDevice {
                    candidate_id: Uuid::now_v7(),
                    token_hash: token,
                    device: device(name, i),
                    user: user(name, i),
                    now: Utc::now(),
                },
            )
            .await?;
        match outcome {
            EnrollOutcome::Enrolled { device_id, .. } => devices.push(device_id),
            EnrollOutcome::BadSecret => anyhow::bail!("the fleet's enrolment secret was refused"),
        }
    }
    Ok(devices)
}

/// Device `i`'s report, made at `now`, as the handler hands it to the writer: parsed, its
/// body as sent, its results serialized and its body packed.
pub fn queued(
    store: &dyn Store,
    name: &str,
    device_id: Uuid,
    i: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<QueuedReport> {
    let report = report(name, i, now);
    let raw = serde_json::to_string(&report)?;
    Ok(QueuedReport::new(store, device_id, report, raw, now)?)
}
