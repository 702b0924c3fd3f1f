//! The nudge engine: a pure function of (items, policy, history, user context, now) →
//! decisions. No clock, no I/O: the runtime feeds it, and tests replay weeks in
//! milliseconds.
//!
//! Every item that needs the user has a deadline. Its phase follows from now and the
//! deadline: `notice` (tray colour only) → `reminder` → `imminent` → `overdue`. Each phase has
//! a cadence. A nudge is shown only in working hours, never while the user is away, in
//! do-not-disturb, full screen or presenting (overdue items wait for the next chance; they do
//! not break into a meeting), at most `max_per_day` across all items (most urgent first),
//! never twice for one item within its cadence, and never two within [`MIN_GAP`] of each
//! other. Deferrals are counted and capped; past the deadline there is no "Later".

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, Offset, Utc};
use serde::{Deserialize, Serialize};
use tandem_proto::policy::{Nudges, Weekday};
use tandem_proto::CheckId;

/// No two nudges, of any items, closer than this: bursts are what makes people quit an app.
pub const MIN_GAP: Duration = Duration::minutes(30);

pub use tandem_proto::state::Phase;

/// Something the user has to do, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub check_id: CheckId,
    pub first_seen: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
}

/// What the engine remembers per item between calls (kept in the agent's store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemHistory {
    pub last_shown: Option<DateTime<Utc>>,
    pub deferrals: u32,
    pub deferred_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub items: BTreeMap<CheckId, ItemHistory>,
    /// Every nudge shown, newest last; only the last two days matter and older ones are
    /// pruned by [`History::record_shown`].
    pub shown: Vec<DateTime<Utc>>,
}

/// What the user is doing, as the platform tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserContext {
    /// The user's UTC offset now (a laptop that travels changes it).
    pub utc_offset: FixedOffset,
    /// Away from the keyboard (idle past a threshold) or the screen is locked.
    pub away: bool,
    pub do_not_disturb: bool,
    /// A full-screen window or a presentation is in front.
    pub fullscreen: bool,
}

impl Default for UserContext {
    fn default() -> Self {
        UserContext {
            utc_offset: Utc.fix(),
            away: false,
            do_not_disturb: false,
            fullscreen: false,
        }
    }
}

/// How a nudge reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A desktop notification with "Fix now" (and "Later" when allowed).
    Notification,
    /// Overdue: open the Tandem window on the item instead of another notification.
    OpenWindow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub check_id: CheckId,
    pub phase: Phase,
    pub delivery: Delivery,
    /// Whether the nudge may offer "Later".
    pub can_defer: bool,
}

/// The phase of an item at `now`.
pub fn phase(item: &Item, policy: &Nudges, now: DateTime<Utc>) -> Phase {
    let esc = &policy.escalation;
    if now >= item.deadline {
        Phase::Overdue
    } else if item.deadline - now <= Duration::hours(i64::from(esc.imminent_within_hours)) {
        Phase::Imminent
    } else if now - item.first_seen < Duration::hours(i64::from(esc.reminder_every_hours)) {
        Phase::Notice
    } else {
        Phase::Reminder
    }
}

/// How often an item in `phase` may be shown; `None` for the tray-only notice phase.
pub fn cadence(phase: Phase, policy: &Nudges) -> Option<Duration> {
    let esc = &policy.escalation;
    let hours = match phase {
        Phase::Notice => return None,
        Phase::Reminder => esc.reminder_every_hours,
        Phase::Imminent => esc.imminent_every_hours,
        Phase::Overdue => esc.overdue_every_hours,
    };
    Some(Duration::hours(i64::from(hours.max(1))))
}

fn weekday(d: chrono::Weekday) -> Weekday {
    match d {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    }
}

/// True inside the policy's working hours, in the user's local time.
pub fn in_working_hours(policy: &Nudges, ctx: &UserContext, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&ctx.utc_offset);
    let wh = &policy.working_hours;
    let time = local.time();
    wh.days.contains(&weekday(local.weekday())) && time >= wh.start && time < wh.end
}

/// The user's local calendar day of an instant.
fn local_day(t: DateTime<Utc>, ctx: &UserContext) -> NaiveDate {
    t.with_timezone(&ctx.utc_offset).date_naive()
}

/// Nudges already shown on the user's current local day.
pub fn shown_today(history: &History, ctx: &UserContext, now: DateTime<Utc>) -> u32 {
    let today = local_day(now, ctx);
    let n = history
        .shown
        .iter()
        .filter(|t| local_day(**t, ctx) == today)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether "Later" may be offered for an item now.
pub fn can_defer(item: &Item, history: &ItemHistory, policy: &Nudges, now: DateTime<Utc>) -> bool {
    now < item.deadline && history.deferrals < policy.deferrals.max_count
}

/// Decides which nudge, if any, to show now. At most one per call: the runtime calls this
/// on its tick (once a minute at most) and after every check run.
pub fn decide(
    items: &[Item],
    policy: &Nudges,
    history: &History,
    ctx: &UserContext,
    now: DateTime<Utc>,
) -> Option<Decision> {
    if !in_working_hours(policy, ctx, now) || ctx.away || ctx.fullscreen {
        return None;
    }
    if ctx.do_not_disturb && policy.respect_do_not_disturb {
        return None;
    }
    if shown_today(history, ctx, now) >= policy.max_per_day {
        return None;
    }
    if history
        .shown
        .last()
        .is_some_and(|last| now - *last < MIN_GAP)
    {
        return None;
    }
    let empty = ItemHistory::default();
    let mut due: Vec<(&Item, Phase, &ItemHistory)> = items
        .iter()
        .filter_map(|item| {
            let h = history.items.get(&item.check_id).unwrap_or(&empty);
            let phase = phase(item, policy, now);
            let every = cadence(phase, policy)?;
            if h.last_shown.is_some_and(|t| now - t < every) {
                return None;
            }
            // A deferral holds until it ends, except once the deadline has passed: then the
            // item is shown at the next allowed moment.
            if phase != Phase::Overdue && h.deferred_until.is_some_and(|t| now < t) {
                return None;
            }
            Some((item, phase, h))
        })
        .collect();
    // Most urgent first: later phase, then earlier deadline.
    due.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.0.deadline.cmp(&b.0.deadline))
            .then(a.0.check_id.cmp(&b.0.check_id))
    });
    let (item, phase, h) = due.into_iter().next()?;
    Some(Decision {
        check_id: item.check_id,
        phase,
        delivery: if phase == Phase::Overdue {
            Delivery::OpenWindow
        } else {
            Delivery::Notification
        },
        can_defer: can_defer(item, h, policy, now),
    })
}

/// Why a deferral was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeferError {
    #[error("the deadline has passed; this can no longer be postponed")]
    PastDeadline,
    #[error("this has been postponed {0} times already, the most the policy allows")]
    TooMany(u32),
}

impl History {
    /// Records that a nudge was shown (and prunes what no longer matters).
    pub fn record_shown(&mut self, check_id: CheckId, now: DateTime<Utc>) {
        self.items.entry(check_id).or_default().last_shown = Some(now);
        self.shown.push(now);
        let horizon = now - Duration::hours(48);
        self.shown.retain(|t| *t >= horizon);
    }

    /// Records "Later": the item is held for one cadence of its phase, capped by the policy's
    /// `max_hours` and by the deadline.
    pub fn record_deferral(
        &mut self,
        item: &Item,
        policy: &Nudges,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DeferError> {
        let h = self.items.entry(item.check_id).or_default();
        if now >= item.deadline {
            return Err(DeferError::PastDeadline);
        }
        if h.deferrals >= policy.deferrals.max_count {
            return Err(DeferError::TooMany(h.deferrals));
        }
        let every = cadence(phase(item, policy, now), policy).unwrap_or(Duration::hours(24));
        let until = (now + every)
            .min(now + Duration::hours(i64::from(policy.deferrals.max_hours)))
            .min(item.deadline);
        h.deferrals += 1;
        h.deferred_until = Some(until);
        Ok(until)
    }

    /// Forgets items that no longer need the user (fixed), so a recurrence starts afresh.
    pub fn retain_items(&mut self, open: &[CheckId]) {
        self.items.retain(|id, _| open.contains(id));
    }
}

#[cfg(test)]
mod tests;
