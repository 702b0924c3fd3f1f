//! First-seen times and deadlines: what turns a failing result into a nudge item.
//!
//! Pure functions over results and the previous map; the runtime stores the map.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tandem_proto::{CheckId, CheckResult, Owner, Policy, Status};

use crate::nudge::Item;

pub type FirstSeen = BTreeMap<String, DateTime<Utc>>;

fn needs_action(r: &CheckResult) -> bool {
    matches!(r.status, Status::Warn | Status::Fail)
}

/// The keys a result keeps first-seen times for: the check itself while it needs action, and
/// each pending update by package name (so a new update does not inherit an old deadline).
fn open_keys(r: &CheckResult) -> Vec<String> {
    if !needs_action(r) {
        return Vec::new();
    }
    let mut keys = vec![r.id.as_str().to_owned()];
    if r.id == CheckId::OsUpdates {
        if let Some(updates) = r.details.get("updates").and_then(|u| u.as_array()) {
            keys.extend(
                updates
                    .iter()
                    .filter_map(|u| u.get("name").and_then(|n| n.as_str()))
                    .map(|name| format!("os_updates/{name}")),
            );
        }
    }
    keys
}

/// Carries first-seen times over to a new run: keys still open keep their time, new keys
/// start now, keys no longer open are dropped (a recurrence starts afresh).
pub fn update_first_seen(
    previous: &FirstSeen,
    results: &[CheckResult],
    now: DateTime<Utc>,
) -> FirstSeen {
    results
        .iter()
        .flat_map(open_keys)
        .map(|key| {
            let at = previous.get(&key).copied().unwrap_or(now);
            (key, at)
        })
        .collect()
}

/// The nudge items for the user's part: failing or warning results owned by the user, each
/// with a deadline from the check (when it computed one), IT's fixed date, or first seen +
/// grace days — whichever is earliest.
pub fn items(
    results: &[CheckResult],
    first_seen: &FirstSeen,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Item> {
    results
        .iter()
        .filter(|r| needs_action(r) && r.owner == Owner::User)
        .map(|r| {
            let common = policy.checks.common(r.id);
            let seen = first_seen.get(r.id.as_str()).copied().unwrap_or(now);
            let mut deadline = seen + Duration::days(i64::from(common.grace_days));
            if let Some(fixed) = common.deadline {
                deadline = deadline.min(fixed);
            }
            let from_check = r
                .details
                .get("deadline")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<DateTime<Utc>>().ok());
            if let Some(d) = from_check {
                deadline = deadline.min(d);
            }
            Item {
                check_id: r.id,
                first_seen: seen,
                deadline,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_proto::Remediation;

    fn result(id: CheckId, status: Status, details: serde_json::Value) -> CheckResult {
        CheckResult {
            id,
            status,
            summary: String::new(),
            reason: None,
            details,
            evidence: vec![],
            remediation: Remediation::default(),
            owner: Owner::User,
            observed_at: Utc::now(),
            duration_ms: 0,
        }
    }

    #[test]
    fn first_seen_survives_runs_and_resets_after_a_fix() {
        let t0: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
        let t1 = t0 + Duration::days(2);
        let pending = |names: &[&str]| {
            let updates: Vec<_> = names.iter().map(|n| json!({"name": n})).collect();
            result(
                CheckId::OsUpdates,
                Status::Warn,
                json!({"updates": updates}),
            )
        };
        let m0 = update_first_seen(&FirstSeen::new(), &[pending(&["openssl"])], t0);
        let m1 = update_first_seen(&m0, &[pending(&["openssl", "bash"])], t1);
        assert_eq!(m1["os_updates/openssl"], t0);
        assert_eq!(m1["os_updates/bash"], t1);
        assert_eq!(m1["os_updates"], t0);
        let fixed = update_first_seen(
            &m1,
            &[result(CheckId::OsUpdates, Status::Pass, json!({}))],
            t1,
        );
        assert!(fixed.is_empty());
    }

    #[test]
    fn the_earliest_deadline_wins_and_it_owned_items_are_not_nudged() {
        let t0: DateTime<Utc> = "2026-11-01T10:00:00Z".parse().unwrap();
        let mut policy = Policy::default();
        policy.checks.os_updates.common.grace_days = 14;
        let seen = FirstSeen::from([("os_updates".to_owned(), t0)]);
        let r = result(
            CheckId::OsUpdates,
            Status::Warn,
            json!({"deadline": "2026-11-04T10:00:00Z"}),
        );
        let mut it = result(CheckId::Firewall, Status::Fail, json!({}));
        it.owner = Owner::It;
        let items = items(&[r.clone(), it], &seen, &policy, t0);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].deadline,
            "2026-11-04T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let no_check_deadline = result(CheckId::OsUpdates, Status::Warn, json!({}));
        assert_eq!(
            super::items(&[no_check_deadline], &seen, &policy, t0)[0].deadline,
            t0 + Duration::days(14)
        );
    }
}
