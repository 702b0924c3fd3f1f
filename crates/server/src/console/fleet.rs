//! The fleet's compliance as the overview shows it: each device × check is pass, due,
//! overdue or unknown under its group's policy.
//!
//! A check that warns or fails is *due* until its deadline and *overdue* after it. The
//! deadline is when the server first saw the current failing streak plus the check's
//! `grace_days`, IT's fixed `deadline`, or the deadline the check computed itself (in its
//! details, as `os_updates` does with `security_grace_days`) — whichever is earliest, as the
//! agent computes it. Disabled
//! and not-applicable checks are not counted. The streak start is kept by the store's
//! `refresh_failing_since`, run on every overview and by the background refresher, so it is
//! at most one refresh late (which errs towards "due").

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use tandem_proto::{CheckId, CheckResult, Policy, Status};
use uuid::Uuid;

use crate::api::SharedState;
use crate::store::console::DailyCompliance;
use crate::store::{DeviceSummary, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Pass,
    Due,
    Overdue,
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pass => "pass",
            Category::Due => "due",
            Category::Overdue => "overdue",
            Category::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        [
            Category::Pass,
            Category::Due,
            Category::Overdue,
            Category::Unknown,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A check's deadline for a streak that started at `since`, under `policy`.
pub fn deadline(policy: &Policy, check: CheckId, since: DateTime<Utc>) -> DateTime<Utc> {
    let common = policy.checks.common(check);
    let by_grace = since + Duration::days(i64::from(common.grace_days));
    match common.deadline {
        Some(fixed) if fixed < by_grace => fixed,
        _ => by_grace,
    }
}

/// One device × check under `policy`; `None` when it does not count (disabled or not
/// applicable).
pub fn categorize(
    policy: &Policy,
    check: CheckId,
    result: Option<&CheckResult>,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<(Category, Option<DateTime<Utc>>)> {
    if !policy.checks.common(check).enabled {
        return None;
    }
    let Some(result) = result else {
        return Some((Category::Unknown, None));
    };
    match result.status {
        Status::NotApplicable => None,
        Status::Pass => Some((Category::Pass, None)),
        Status::Unknown => Some((Category::Unknown, None)),
        Status::Warn | Status::Fail => {
            let mut due = deadline(policy, check, since.unwrap_or(result.observed_at));
            // A check may compute a sooner deadline itself, as `os_updates` does from each
            // pending update's first-seen time and `security_grace_days`: the agent nudges
            // by it, so IT's view follows it too.
            let from_check = result
                .details
                .get("deadline")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<DateTime<Utc>>().ok());
            if let Some(d) = from_check {
                due = due.min(d);
            }
            if now > due {
                Some((Category::Overdue, Some(due)))
            } else {
                Some((Category::Due, Some(due)))
            }
        }
    }
}

/// A policy document as the agent reads it: leniently, over the built-in defaults.
pub fn lenient(body: &serde_json::Value) -> Policy {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

/// One device with its category per check.
#[derive(Debug, Clone)]
pub struct DeviceState {
    pub summary: DeviceSummary,
    pub checks: Vec<(CheckId, Category, Option<DateTime<Utc>>)>,
}

impl DeviceState {
    pub fn worst(&self) -> Option<Category> {
        let rank = |c: Category| match c {
            Category::Pass => 0,
            Category::Unknown => 1,
            Category::Due => 2,
            Category::Overdue => 3,
        };
        self.checks
            .iter()
            .map(|(_, c, _)| *c)
            .max_by_key(|c| rank(*c))
    }

    pub fn category(&self, check: CheckId) -> Option<Category> {
        self.checks
            .iter()
            .find(|(id, _, _)| *id == check)
            .map(|(_, c, _)| *c)
    }
}

/// Everything the overview needs, computed once per request.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub now: DateTime<Utc>,
    pub devices: Vec<DeviceState>,
    /// Each group's effective policy, parsed as agents read it.
    pub policies: HashMap<String, Policy>,
    pub streaks: HashMap<(Uuid, String), DateTime<Utc>>,
}

impl Fleet {
    /// Refreshes the failing streaks, computes every device's state and records today's
    /// counts for the trend chart.
    pub async fn load(state: &SharedState) -> Result<Fleet, StoreError> {
        let store = &*state.store;
        store.refresh_failing_since().await?;
        let now = state.clock.now();
        let summaries = crate::export::all_devices(store).await?;
        let streaks: HashMap<(Uuid, String), DateTime<Utc>> = store
            .failing_since()
            .await?
            .into_iter()
            .map(|(d, c, t)| ((d, c), t))
            .collect();
        let mut policies = HashMap::new();
        for group in store.list_groups().await? {
            let p = crate::policy::effective(store, &group.name).await?;
            policies.insert(group.name, lenient(&p.body));
        }
        let fleet = Fleet::compute(now, summaries, policies, streaks);
        store.record_daily_compliance(&fleet.today()).await?;
        Ok(fleet)
    }

    pub fn compute(
        now: DateTime<Utc>,
        summaries: Vec<DeviceSummary>,
        policies: HashMap<String, Policy>,
        streaks: HashMap<(Uuid, String), DateTime<Utc>>,
    ) -> Fleet {
        let fallback = Policy::default();
        let devices = summaries
            .into_iter()
            .map(|summary| {
                let policy = policies.get(&summary.device.group).unwrap_or(&fallback);
                let checks = device_checks(&summary, policy, &streaks, now);
                DeviceState { summary, checks }
            })
            .collect();
        Fleet {
            now,
            devices,
            policies,
            streaks,
        }
    }

    /// Per check: pass, due, overdue, unknown.
    pub fn counts(&self) -> Vec<(CheckId, [i64; 4])> {
        CheckId::ALL
            .iter()
            .map(|&check| {
                let mut n = [0i64; 4];
                for d in &self.devices {
                    if let Some(c) = d.category(check) {
                        n[c as usize] += 1;
                    }
                }
                (check, n)
            })
            .collect()
    }

    /// Today's counts, as the trend chart stores them.
    pub fn today(&self) -> Vec<DailyCompliance> {
        let day = self.now.date_naive();
        self.counts()
            .into_iter()
            .map(|(check, [pass, due, overdue, unknown])| DailyCompliance {
                day,
                check_id: check.as_str().to_owned(),
                pass,
                due,
                overdue,
                unknown,
            })
            .collect()
    }
}

/// A device's categories under `policy`.
pub fn device_checks(
    summary: &DeviceSummary,
    policy: &Policy,
    streaks: &HashMap<(Uuid, String), DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<(CheckId, Category, Option<DateTime<Utc>>)> {
    let id = summary.device.id;
    CheckId::ALL
        .iter()
        .filter_map(|&check| {
            let result = summary.device.results.iter().find(|r| r.id == check);
            let since = streaks.get(&(id, check.as_str().to_owned())).copied();
            categorize(policy, check, result, since, now).map(|(c, due)| (check, c, due))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status, observed_at: DateTime<Utc>) -> CheckResult {
        serde_json::from_value(serde_json::json!({
            "id": "firewall", "status": status, "summary": "s",
            "observed_at": observed_at, "duration_ms": 1
        }))
        .unwrap()
    }

    #[test]
    fn failing_checks_are_due_until_their_grace_runs_out() {
        let policy = Policy::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let grace = policy.checks.firewall.grace_days;
        let r = result(Status::Fail, t0);
        let at = |days: i64| t0 + Duration::days(days);
        let c = |now| categorize(&policy, CheckId::Firewall, Some(&r), Some(t0), now).map(|x| x.0);
        assert_eq!(c(at(1)), Some(Category::Due));
        assert_eq!(c(at(i64::from(grace) + 1)), Some(Category::Overdue));
        let pass = result(Status::Pass, t0);
        assert_eq!(
            categorize(&policy, CheckId::Firewall, Some(&pass), None, at(1)).map(|x| x.0),
            Some(Category::Pass)
        );
        assert_eq!(
            categorize(&policy, CheckId::Firewall, None, None, at(1)).map(|x| x.0),
            Some(Category::Unknown)
        );
        let mut off = policy.clone();
        off.checks.firewall.enabled = false;
        assert_eq!(
            categorize(&off, CheckId::Firewall, Some(&r), Some(t0), at(1)),
            None
        );
    }

    #[test]
    fn a_deadline_the_check_computed_wins_when_sooner() {
        let policy = Policy::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        // Security updates pending: the check's own deadline is t0 + 3 days, before grace.
        let mut r = result(Status::Warn, t0);
        r.details = serde_json::json!({"deadline": (t0 + Duration::days(3)).to_rfc3339()});
        let c = |now| categorize(&policy, CheckId::Firewall, Some(&r), Some(t0), now);
        assert_eq!(c(t0 + Duration::days(2)).map(|x| x.0), Some(Category::Due));
        let (category, due) = c(t0 + Duration::days(4)).unwrap();
        assert_eq!(category, Category::Overdue);
        assert_eq!(due, Some(t0 + Duration::days(3)));
        // A garbled device-supplied deadline is ignored, not trusted.
        r.details = serde_json::json!({"deadline": "<script>"});
        let c = |now| categorize(&policy, CheckId::Firewall, Some(&r), Some(t0), now);
        assert_eq!(c(t0 + Duration::days(4)).map(|x| x.0), Some(Category::Due));
    }
}
