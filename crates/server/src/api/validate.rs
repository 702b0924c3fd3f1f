//! Bounds on what a device may send. Serde already rejects wrong types; these checks reject
//! well-typed but absurd values (a 10 MB hostname, a report from the year 9999) before
//! anything is written, so a bad request never leaves half a report behind.

use std::collections::HashSet;
use std::fmt::{self, Display};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use tandem_proto::v1::{DeviceInfo, EnrollRequest, Inventory, StatusReport, UserInfo};

use super::error::ApiError;

pub const MAX_HOSTNAME: usize = 255;
pub const MAX_SHORT_TEXT: usize = 256;
pub const MAX_LONG_TEXT: usize = 4096;
pub const MAX_RESULTS: usize = 64;
pub const MAX_EVENTS: usize = 1000;
pub const MAX_LIST_ITEMS: usize = 64;
/// A check that runs longer than a day has not run.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

/// A field's name, such as `results[3]`, formatted only for an error message: a report
/// has dozens of fields, and naming each up front cost an allocation apiece.
#[derive(Clone, Copy)]
struct Indexed(&'static str, usize);

impl Display for Indexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// Clocks drift and agents queue reports offline, so timestamps get wide but finite bounds.
fn time(field: impl Display, t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let earliest = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    if t < earliest || t > now + Duration::days(1) {
        return Err(ApiError::Unprocessable(format!(
            "{field} is out of range (it must lie between the year 2000 and tomorrow)"
        )));
    }
    Ok(())
}

fn text(field: impl Display, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::Unprocessable(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    Ok(())
}

fn required(field: impl Display, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "{field} must not be empty"
        )));
    }
    text(field, value, max)
}

fn optional(field: impl Display, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| text(field, v, max))
}

fn count(field: impl Display, n: usize, max: usize) -> Result<(), ApiError> {
    if n > max {
        return Err(ApiError::Unprocessable(format!(
            "{field} has more than {max} items"
        )));
    }
    Ok(())
}

fn device(at: &str, d: &DeviceInfo) -> Result<(), ApiError> {
    required(
        format_args!("{at}.machine_id"),
        &d.machine_id,
        MAX_SHORT_TEXT,
    )?;
    required(format_args!("{at}.hostname"), &d.hostname, MAX_HOSTNAME)?;
    required(format_args!("{at}.os"), &d.os, MAX_SHORT_TEXT)?;
    text(
        format_args!("{at}.os_version"),
        &d.os_version,
        MAX_SHORT_TEXT,
    )?;
    optional(
        format_args!("{at}.model"),
        d.model.as_deref(),
        MAX_SHORT_TEXT,
    )?;
    optional(
        format_args!("{at}.serial"),
        d.serial.as_deref(),
        MAX_SHORT_TEXT,
    )
}

fn user(at: &str, u: &UserInfo) -> Result<(), ApiError> {
    required(format_args!("{at}.login"), &u.login, MAX_SHORT_TEXT)?;
    optional(
        format_args!("{at}.email"),
        u.email.as_deref(),
        MAX_SHORT_TEXT,
    )
}

pub fn enroll(req: &EnrollRequest) -> Result<(), ApiError> {
    required("enroll_secret", &req.enroll_secret, MAX_SHORT_TEXT)?;
    device("device", &req.device)?;
    user("user", &req.user)
}

fn inventory(inv: &Inventory) -> Result<(), ApiError> {
    device("inventory", &inv.device)?;
    optional("inventory.kernel", inv.kernel.as_deref(), MAX_SHORT_TEXT)?;
    optional("inventory.arch", inv.arch.as_deref(), MAX_SHORT_TEXT)?;
    inv.user
        .as_ref()
        .map_or(Ok(()), |u| user("inventory.user", u))?;
    count("inventory.extra", inv.extra.len(), MAX_LIST_ITEMS)
}

pub fn report(r: &StatusReport, now: DateTime<Utc>) -> Result<(), ApiError> {
    required("agent_version", &r.agent_version, MAX_SHORT_TEXT)?;
    optional("policy_etag", r.policy_etag.as_deref(), MAX_SHORT_TEXT)?;
    time("sent_at", r.sent_at, now)?;
    inventory(&r.inventory)?;
    count("results", r.results.len(), MAX_RESULTS)?;
    let mut seen = HashSet::new();
    for (n, result) in r.results.iter().enumerate() {
        let at = Indexed("results", n);
        if !seen.insert(result.id) {
            return Err(ApiError::Unprocessable(format!(
                "{at}: check `{}` appears more than once",
                result.id
            )));
        }
        text(format_args!("{at}.summary"), &result.summary, MAX_LONG_TEXT)?;
        optional(
            format_args!("{at}.reason"),
            result.reason.as_deref(),
            MAX_LONG_TEXT,
        )?;
        time(format_args!("{at}.observed_at"), result.observed_at, now)?;
        if result.duration_ms > MAX_DURATION_MS {
            return Err(ApiError::Unprocessable(format!(
                "{at}.duration_ms is out of range"
            )));
        }
        count(
            format_args!("{at}.evidence"),
            result.evidence.len(),
            MAX_LIST_ITEMS,
        )?;
        count(
            format_args!("{at}.remediation.steps"),
            result.remediation.steps.len(),
            MAX_LIST_ITEMS,
        )?;
    }
    count("events", r.events.len(), MAX_EVENTS)?;
    for (n, event) in r.events.iter().enumerate() {
        time(format_args!("events[{n}].at"), event.at, now)?;
        optional(
            format_args!("events[{n}].detail"),
            event.detail.as_deref(),
            MAX_LONG_TEXT,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::{CheckId, CheckResult, Owner, Remediation, Status};
    use uuid::Uuid;

    fn sample(now: DateTime<Utc>) -> StatusReport {
        StatusReport {
            report_id: Uuid::now_v7(),
            agent_version: "0.1.0".into(),
            sent_at: now,
            inventory: Inventory {
                device: DeviceInfo {
                    machine_id: "m".into(),
                    hostname: "h".into(),
                    os: "linux".into(),
                    os_version: "12".into(),
                    model: None,
                    serial: None,
                },
                ..Inventory::default()
            },
            results: vec![CheckResult {
                id: CheckId::Firewall,
                status: Status::Pass,
                summary: "ok".into(),
                reason: None,
                details: serde_json::Value::Null,
                evidence: vec![],
                remediation: Remediation::default(),
                owner: Owner::It,
                observed_at: now,
                duration_ms: 3,
            }],
            events: vec![],
            policy_etag: None,
        }
    }

    #[test]
    fn a_plain_report_passes_and_absurd_ones_do_not() {
        let now = Utc::now();
        assert!(report(&sample(now), now).is_ok());

        let mut r = sample(now);
        r.inventory.device.hostname = "x".repeat(256);
        assert!(report(&r, now).is_err());

        let mut r = sample(now);
        r.sent_at = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        assert!(report(&r, now).is_err());

        let mut r = sample(now);
        r.results.push(r.results[0].clone());
        assert!(report(&r, now).is_err());

        let mut r = sample(now);
        r.results[0].duration_ms = u64::MAX;
        assert!(report(&r, now).is_err());
    }
}
