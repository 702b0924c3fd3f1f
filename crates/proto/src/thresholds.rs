//! Judgements against the thresholds an agent measures itself — password age, the screen
//! lock's delay, the grace an update gets — as pure functions of the evidence and the
//! policy. The agent's checks judge with them, and the server's push preview judges each
//! device's last reported evidence with them under a policy not yet pushed, so the two
//! cannot disagree.

use chrono::{DateTime, Duration, Utc};

use crate::policy::OsUpdatesPolicy;
use crate::Status;

/// A password this close to its maximum age warns.
pub const PASSWORD_WARN_DAYS: i64 = 14;

/// What a password's age comes to under a maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAge {
    pub status: Status,
    /// Whole days since the change (never negative).
    pub age_days: i64,
    /// When it must be changed by; `None` when no maximum is set (`max_age_days` 0).
    pub deadline: Option<DateTime<Utc>>,
    /// Whole days left until the deadline (negative once past).
    pub days_left: Option<i64>,
}

/// A password changed at `changed`, with a maximum of `max_age_days` (0: none), at `now`:
/// past the maximum fails, within [`PASSWORD_WARN_DAYS`] of it warns, else passes.
pub fn password_age(changed: DateTime<Utc>, max_age_days: u32, now: DateTime<Utc>) -> PasswordAge {
    let age_days = (now - changed).num_days().max(0);
    if max_age_days == 0 {
        return PasswordAge {
            status: Status::Pass,
            age_days,
            deadline: None,
            days_left: None,
        };
    }
    let deadline = changed + Duration::days(i64::from(max_age_days));
    let days_left = (deadline - now).num_days();
    let status = if now >= deadline {
        Status::Fail
    } else if days_left < PASSWORD_WARN_DAYS {
        Status::Warn
    } else {
        Status::Pass
    };
    PasswordAge {
        status,
        age_days,
        deadline: Some(deadline),
        days_left: Some(days_left),
    }
}

/// A screen that locks `lock_after_seconds` after the last input (`None`: never) against a
/// maximum of `max_idle_minutes`: never locking fails; locking later than the maximum
/// warns (the control exists and the user can shorten it in a minute); else passes.
pub fn screen_lock(lock_after_seconds: Option<u64>, max_idle_minutes: u32) -> Status {
    match lock_after_seconds {
        None => Status::Fail,
        Some(s) if s > u64::from(max_idle_minutes) * 60 => Status::Warn,
        Some(_) => Status::Pass,
    }
}

/// A pending update's deadline: first seen plus `grace_days` (`security_grace_days` for a
/// security update), or IT's fixed `deadline` when earlier.
pub fn update_deadline(
    policy: &OsUpdatesPolicy,
    security: bool,
    first_seen: DateTime<Utc>,
) -> DateTime<Utc> {
    let days = if security {
        policy.security_grace_days
    } else {
        policy.common.grace_days
    };
    let by_grace = first_seen + Duration::days(i64::from(days));
    match policy.common.deadline {
        Some(fixed) if fixed < by_grace => fixed,
        _ => by_grace,
    }
}

/// The updates' status: nothing pending passes (or warns while a restart is due); pending
/// updates warn until the `earliest` deadline has passed, then fail.
pub fn os_updates(
    pending: usize,
    reboot_required: bool,
    earliest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Status {
    match (pending, reboot_required) {
        (0, false) => Status::Pass,
        (0, true) => Status::Warn,
        _ if earliest.is_some_and(|d| now > d) => Status::Fail,
        _ => Status::Warn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::days(days)
    }

    #[test]
    fn a_password_passes_warns_and_fails_as_it_ages() {
        let changed = t(0);
        assert_eq!(password_age(changed, 180, t(100)).status, Status::Pass);
        assert_eq!(password_age(changed, 90, t(100)).status, Status::Fail);
        assert_eq!(password_age(changed, 110, t(100)).status, Status::Warn);
        let none = password_age(changed, 0, t(100));
        assert_eq!((none.status, none.deadline), (Status::Pass, None));
        assert_eq!(password_age(changed, 90, t(100)).deadline, Some(t(90)));
        assert_eq!(password_age(t(5), 90, t(0)).age_days, 0);
    }

    #[test]
    fn a_screen_lock_is_judged_against_its_maximum() {
        assert_eq!(screen_lock(None, 10), Status::Fail);
        assert_eq!(screen_lock(Some(600), 10), Status::Pass);
        assert_eq!(screen_lock(Some(601), 10), Status::Warn);
    }

    #[test]
    fn updates_fail_once_the_earliest_deadline_passed() {
        let policy = OsUpdatesPolicy::default();
        let d = update_deadline(&policy, true, t(0));
        assert_eq!(d, t(i64::from(policy.security_grace_days)));
        assert_eq!(os_updates(2, false, Some(d), t(1)), Status::Warn);
        assert_eq!(os_updates(2, false, Some(d), t(10)), Status::Fail);
        assert_eq!(os_updates(0, true, None, t(10)), Status::Warn);
        assert_eq!(os_updates(0, false, None, t(10)), Status::Pass);
        let mut fixed = policy.clone();
        fixed.common.deadline = Some(t(1));
        assert_eq!(update_deadline(&fixed, false, t(0)), t(1));
    }
}
