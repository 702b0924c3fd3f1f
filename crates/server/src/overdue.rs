//! The "device became overdue" webhook. After every compliance refresh, each device × check
//! whose deadline passed recently is claimed in the store (one row per device × check ×
//! deadline) and the claimer sends one webhook per device listing its newly overdue checks.
//! The claim makes the notice exactly-once across restarts and replicas.
//!
//! Only deadlines within [`NOTICE_WINDOW`] count: when the server first starts, or after
//! downtime, devices that have been overdue for weeks are not announced as news.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::api::SharedState;
use crate::console::fleet::{Category, Fleet};
use crate::store::StoreError;
use crate::webhooks::{Event, EventKind};

/// How far back a deadline may lie and still be news.
pub const NOTICE_WINDOW: Duration = Duration::hours(24);

/// One device's newly overdue checks, before claiming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub device_id: Uuid,
    pub hostname: String,
    pub user: String,
    pub checks: Vec<(String, DateTime<Utc>)>,
}

/// The overdue device × checks whose deadline fell within the window before `fleet.now`.
pub fn candidates(fleet: &Fleet) -> Vec<Candidate> {
    let mut by_device: BTreeMap<Uuid, Candidate> = BTreeMap::new();
    for d in &fleet.devices {
        for (check, category, deadline) in &d.checks {
            let Some(deadline) = deadline else { continue };
            if *category != Category::Overdue || fleet.now - *deadline > NOTICE_WINDOW {
                continue;
            }
            let device = &d.summary.device;
            by_device
                .entry(device.id)
                .or_insert_with(|| Candidate {
                    device_id: device.id,
                    hostname: device.hostname.clone(),
                    user: device.user_login.clone(),
                    checks: Vec::new(),
                })
                .checks
                .push((check.as_str().to_owned(), *deadline));
        }
    }
    by_device.into_values().collect()
}

/// Claims and sends the notices of a refresh. Does nothing unless a webhook wants them.
/// Returns how many webhooks were queued.
pub async fn notify(state: &SharedState, fleet: &Fleet) -> Result<usize, StoreError> {
    if !state.webhooks.wants(EventKind::DeviceOverdue) {
        return Ok(0);
    }
    let mut sent = 0;
    for mut c in candidates(fleet) {
        let mut claimed = Vec::new();
        for (check, deadline) in c.checks.drain(..) {
            if state
                .store
                .claim_overdue_notice(c.device_id, &check, deadline, fleet.now)
                .await?
            {
                claimed.push((check, deadline));
            }
        }
        if claimed.is_empty() {
            continue;
        }
        state.webhooks.send(Event::DeviceOverdue {
            device_id: c.device_id,
            hostname: c.hostname,
            user: Some(c.user),
            checks: claimed,
            at: fleet.now,
        });
        sent += 1;
    }
    Ok(sent)
}
