//! The push preview's second look at thresholds the agents measure themselves: each
//! device's last reported evidence (a password's change date, the screen lock's delay,
//! each pending update's first-seen time) judged again under the policy about to be pushed,
//! with the same pure functions the agent judges with (`tandem_proto::thresholds`).
//!
//! Only checks whose threshold differs between the policy in force and the new one are
//! judged again; the rest keep the result the device reported. Evidence is device-supplied:
//! a missing or malformed field makes the check "not evaluated" (an older agent, or no
//! evidence), never a guess.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tandem_proto::thresholds;
use tandem_proto::{CheckId, CheckResult, Policy, Status};

use crate::store::DeviceSummary;

/// What a second look at one result came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Reevaluation {
    /// The threshold did not change, or the result holds no measurement to judge.
    Unchanged,
    /// The result as the agent would report it under the new policy, now.
    Judged(CheckResult),
    /// The threshold changed but the report lacks the evidence to judge it again.
    NotEvaluated(&'static str),
}

/// Why a result could not be judged again, as the preview says it.
pub const NO_EVIDENCE: &str =
    "the last report holds no evidence for this setting (an older agent, or nothing measured)";

/// Whether a setting the agent measures `check` against differs between the policies.
pub fn threshold_changed(check: CheckId, old: &Policy, new: &Policy) -> bool {
    let (o, n) = (&old.checks, &new.checks);
    match check {
        CheckId::PasswordAge => o.password_age.max_age_days != n.password_age.max_age_days,
        CheckId::ScreenLock => o.screen_lock.max_idle_minutes != n.screen_lock.max_idle_minutes,
        CheckId::OsUpdates => {
            o.os_updates.security_grace_days != n.os_updates.security_grace_days
                || o.os_updates.common.grace_days != n.os_updates.common.grace_days
                || o.os_updates.common.deadline != n.os_updates.common.deadline
        }
        _ => false,
    }
}

/// Judges `result` again under `new` at `now`, if `new` changes what it is measured against.
pub fn reevaluate(
    result: &CheckResult,
    old: &Policy,
    new: &Policy,
    now: DateTime<Utc>,
) -> Reevaluation {
    if !threshold_changed(result.id, old, new) {
        return Reevaluation::Unchanged;
    }
    // "Could not tell" and "not applicable" hold no measurement to judge.
    if !matches!(result.status, Status::Pass | Status::Warn | Status::Fail) {
        return Reevaluation::Unchanged;
    }
    let judged = match result.id {
        CheckId::PasswordAge => password_age(result, new, now),
        CheckId::ScreenLock => screen_lock(result, new),
        CheckId::OsUpdates => os_updates(result, new, now),
        _ => return Reevaluation::Unchanged,
    };
    match judged {
        Some(Some(r)) => Reevaluation::Judged(r),
        Some(None) => Reevaluation::Unchanged,
        None => Reevaluation::NotEvaluated(NO_EVIDENCE),
    }
}

/// `summary` with each result judged again under `new`, and the checks that could not be.
pub fn summary_under(
    summary: &DeviceSummary,
    old: &Policy,
    new: &Policy,
    now: DateTime<Utc>,
) -> (DeviceSummary, Vec<(CheckId, &'static str)>, usize) {
    let mut out = summary.clone();
    let mut not_evaluated = Vec::new();
    let mut judged = 0;
    for r in &mut out.device.results {
        match reevaluate(r, old, new, now) {
            Reevaluation::Unchanged => {}
            Reevaluation::Judged(next) => {
                judged += 1;
                *r = next;
            }
            Reevaluation::NotEvaluated(why) => not_evaluated.push((r.id, why)),
        }
    }
    (out, not_evaluated, judged)
}

/// A time from the evidence, within years chrono and the policy arithmetic handle safely.
fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let t: DateTime<Utc> = v?.as_str()?.parse().ok()?;
    let year = chrono::Datelike::year(&t);
    (1970..=9000).contains(&year).then_some(t)
}

fn with_status(
    result: &CheckResult,
    status: Status,
    deadline: Option<DateTime<Utc>>,
) -> CheckResult {
    let mut r = result.clone();
    r.status = status;
    if let Value::Object(map) = &mut r.details {
        match deadline {
            Some(d) => {
                map.insert("deadline".into(), Value::String(d.to_rfc3339()));
            }
            None => {
                map.remove("deadline");
            }
        }
    }
    r
}

/// `None`: no evidence; `Some(None)`: nothing to judge (an expired password stays expired).
fn password_age(
    result: &CheckResult,
    new: &Policy,
    now: DateTime<Utc>,
) -> Option<Option<CheckResult>> {
    let d = &result.details;
    if d.get("must_change").and_then(Value::as_bool) == Some(true) {
        return Some(None);
    }
    let changed = time(d.get("changed_at"))?;
    let verdict = thresholds::password_age(changed, new.checks.password_age.max_age_days, now);
    Some(Some(with_status(result, verdict.status, verdict.deadline)))
}

fn screen_lock(result: &CheckResult, new: &Policy) -> Option<Option<CheckResult>> {
    let seconds = match result.details.get("lock_after_seconds")? {
        Value::Null => None,
        v => Some(v.as_u64()?),
    };
    let status = thresholds::screen_lock(seconds, new.checks.screen_lock.max_idle_minutes);
    Some(Some(with_status(result, status, None)))
}

fn os_updates(
    result: &CheckResult,
    new: &Policy,
    now: DateTime<Utc>,
) -> Option<Option<CheckResult>> {
    let d = &result.details;
    let updates = d.get("updates")?.as_array()?;
    let reboot_required = d
        .get("reboot_required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut earliest: Option<DateTime<Utc>> = None;
    for u in updates {
        let first_seen = time(u.get("first_seen"))?;
        let security = u.get("security").and_then(Value::as_bool).unwrap_or(false);
        let deadline = thresholds::update_deadline(&new.checks.os_updates, security, first_seen);
        earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
    }
    let status = thresholds::os_updates(updates.len(), reboot_required, earliest, now);
    Some(Some(with_status(result, status, earliest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn result(id: &str, status: Status, details: Value) -> CheckResult {
        serde_json::from_value(serde_json::json!({
            "id": id, "status": status, "summary": "s", "details": details,
            "observed_at": Utc::now(), "duration_ms": 1
        }))
        .unwrap()
    }

    fn with_max_age(days: u32) -> Policy {
        let mut p = Policy::default();
        p.checks.password_age.max_age_days = days;
        p
    }

    #[test]
    fn a_password_is_judged_again_from_its_change_date() {
        let now = Utc::now();
        let changed = now - Duration::days(100);
        let r = result(
            "password_age",
            Status::Pass,
            serde_json::json!({"source": "local:chage", "changed_at": changed, "age_days": 100, "max_age_days": 180}),
        );
        let (old, new) = (with_max_age(180), with_max_age(90));
        let Reevaluation::Judged(next) = reevaluate(&r, &old, &new, now) else {
            panic!("not judged");
        };
        assert_eq!(next.status, Status::Fail);
        assert_eq!(
            time(next.details.get("deadline")),
            Some(changed + Duration::days(90))
        );
        // The same threshold: the reported result stands.
        assert_eq!(reevaluate(&r, &old, &old, now), Reevaluation::Unchanged);
        // An older agent's report without the date cannot be judged.
        let bare = result("password_age", Status::Pass, serde_json::json!({}));
        assert_eq!(
            reevaluate(&bare, &old, &new, now),
            Reevaluation::NotEvaluated(NO_EVIDENCE)
        );
        // Hostile values are refused, not guessed at.
        let absurd = result(
            "password_age",
            Status::Pass,
            serde_json::json!({"changed_at": "+200000-01-01T00:00:00Z"}),
        );
        assert!(matches!(
            reevaluate(&absurd, &old, &new, now),
            Reevaluation::NotEvaluated(_)
        ));
    }

    #[test]
    fn screen_locks_and_updates_are_judged_again() {
        let now = Utc::now();
        let mut old = Policy::default();
        let mut new = Policy::default();
        old.checks.screen_lock.max_idle_minutes = 15;
        new.checks.screen_lock.max_idle_minutes = 5;
        let lock = result(
            "screen_lock",
            Status::Pass,
            serde_json::json!({"lock_after_seconds": 600}),
        );
        let Reevaluation::Judged(next) = reevaluate(&lock, &old, &new, now) else {
            panic!("not judged");
        };
        assert_eq!(next.status, Status::Warn);
        old.checks.os_updates.security_grace_days = 30;
        new.checks.os_updates.security_grace_days = 3;
        let updates = result(
            "os_updates",
            Status::Warn,
            serde_json::json!({"reboot_required": false, "updates": [
                {"name": "openssl", "security": true, "first_seen": now - Duration::days(10)}
            ]}),
        );
        let Reevaluation::Judged(next) = reevaluate(&updates, &old, &new, now) else {
            panic!("not judged");
        };
        assert_eq!(next.status, Status::Fail);
    }
}
