//! Pure readers for the password-age probes: `chage -l` (Linux), AccountsService's
//! `GetPasswordExpirationPolicy` answer (Linux), `dscl . -read /Users/NAME
//! accountPolicyData` (macOS) and the `Get-LocalUser` JSON of the Windows probe.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;

/// What the OS records about the local password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "at", rename_all = "snake_case")]
pub enum LocalPassword {
    /// Last changed at this moment (Linux records days: midnight UTC of that day).
    Changed(DateTime<Utc>),
    /// An administrator forced a change at the next sign-in (shadow `lstchg` = 0).
    MustChange,
    /// The OS keeps no change date for this account (shadow `lstchg` empty, no
    /// `passwordLastSetTime`, a Windows account whose password was never set).
    NotRecorded,
}

/// Output that did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn day_to_utc(date: NaiveDate) -> Option<DateTime<Utc>> {
    date.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t))
}

/// Reads `chage -l USER` under `LC_ALL=C`: the `Last password change : …` line holds a date
/// (`%b %d, %Y`, or `%Y-%m-%d` with `-i`), `never`, or `password must be changed`.
pub fn parse_chage(stdout: &str) -> Result<LocalPassword, ParseError> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Last password change"))
        .ok_or_else(|| ParseError("chage printed no \"Last password change\" line".into()))?;
    let value = line
        .split_once(':')
        .map(|(_, v)| v.trim())
        .unwrap_or_default();
    match value {
        "never" => Ok(LocalPassword::NotRecorded),
        "password must be changed" => Ok(LocalPassword::MustChange),
        v => NaiveDate::parse_from_str(v, "%b %d, %Y")
            .or_else(|_| NaiveDate::parse_from_str(v, "%Y-%m-%d"))
            .ok()
            .and_then(day_to_utc)
            .map(LocalPassword::Changed)
            .ok_or_else(|| ParseError(format!("unexpected chage date \"{v}\""))),
    }
}

/// Reads AccountsService's answer. `last_change_time` comes from the shadow `sp_lstchg`
/// field (days since 1970-01-01; 0 = must change; unset = -1), but the unit differs by
/// version: older AccountsService copies the days, 22.08 (Debian 12) multiplies them by
/// 86400 and answers seconds (recorded: 1735689600 for 2025-01-01, -86400 for "never").
/// Days for any date before the year 2243 stay below 100000 and seconds for any date after
/// 1970-01-02 are above it, so the size of the number tells the unit.
pub fn parse_accounts_policy(answer: &Value) -> Result<LocalPassword, ParseError> {
    let value = answer
        .get("last_change_time")
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError(format!("no last_change_time in {answer}")))?;
    let seconds = match value {
        v if v < 0 => return Ok(LocalPassword::NotRecorded),
        0 => return Ok(LocalPassword::MustChange),
        v if v >= 100_000 => v,
        days => days.saturating_mul(86_400),
    };
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(LocalPassword::Changed)
        .ok_or_else(|| ParseError(format!("last_change_time {value} is out of range")))
}

/// Reads `dscl . -read /Users/NAME accountPolicyData`: an attribute line followed by an XML
/// plist whose `passwordLastSetTime` is a `<real>` of epoch seconds (older systems: a
/// `<date>`; both are accepted, and `<integer>` too).
pub fn parse_dscl_account_policy(stdout: &str) -> Result<LocalPassword, ParseError> {
    let start = stdout
        .find('<')
        .ok_or_else(|| ParseError("dscl printed no account policy plist".into()))?;
    let value = plist::Value::from_reader_xml(&stdout.as_bytes()[start..])
        .map_err(|e| ParseError(format!("the account policy plist is malformed: {e}")))?;
    let dict = value
        .as_dictionary()
        .ok_or_else(|| ParseError("the account policy plist is not a dictionary".into()))?;
    let seconds = match dict.get("passwordLastSetTime") {
        None => return Ok(LocalPassword::NotRecorded),
        Some(plist::Value::Real(r)) => *r,
        Some(plist::Value::Integer(i)) => i.as_signed().map(|i| i as f64).unwrap_or(f64::NAN),
        Some(plist::Value::Date(d)) => {
            let t: std::time::SystemTime = (*d).into();
            return Ok(LocalPassword::Changed(DateTime::<Utc>::from(t)));
        }
        Some(other) => {
            return Err(ParseError(format!(
                "passwordLastSetTime has an unexpected type: {other:?}"
            )))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Ok(LocalPassword::NotRecorded);
    }
    // Whole seconds are plenty for an age in days; the cast saturates on absurd values.
    DateTime::<Utc>::from_timestamp(seconds as i64, 0)
        .map(LocalPassword::Changed)
        .ok_or_else(|| ParseError(format!("passwordLastSetTime {seconds} is out of range")))
}

/// Reads the Windows probe's JSON: `{"Name": s, "PasswordLastSet": "2024-03-01T08:15:00.0000000Z" | null}`.
/// PowerShell 5.1 writes a bare `DateTime` as `"\/Date(1709280900000)\/"`; that is accepted too.
pub fn parse_local_user_json(stdout: &str) -> Result<LocalPassword, ParseError> {
    let text = stdout.trim_start_matches('\u{feff}').trim();
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ParseError(format!("Get-LocalUser printed no JSON result ({e})")))?;
    let last_set = value
        .get("PasswordLastSet")
        .ok_or_else(|| ParseError("no PasswordLastSet in the answer".into()))?;
    let Some(s) = last_set.as_str() else {
        return if last_set.is_null() {
            Ok(LocalPassword::NotRecorded)
        } else {
            Err(ParseError(format!("unexpected PasswordLastSet {last_set}")))
        };
    };
    if let Some(ms) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let ms: i64 = ms
            .split(['+', '-'])
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| ParseError(format!("unexpected date {s}")))?;
        return DateTime::<Utc>::from_timestamp_millis(ms)
            .map(LocalPassword::Changed)
            .ok_or_else(|| ParseError(format!("date {s} is out of range")));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| LocalPassword::Changed(t.with_timezone(&Utc)))
        .map_err(|e| ParseError(format!("unexpected PasswordLastSet \"{s}\": {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chage_dates_and_words() {
        let t =
            parse_chage("Last password change\t\t\t\t\t: May 20, 2025\nPassword expires : never\n")
                .unwrap();
        assert_eq!(
            t,
            LocalPassword::Changed("2025-05-20T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_chage("Last password change : 2025-01-01").unwrap(),
            LocalPassword::Changed("2025-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_chage("Last password change : never").unwrap(),
            LocalPassword::NotRecorded
        );
        assert_eq!(
            parse_chage("Last password change : password must be changed").unwrap(),
            LocalPassword::MustChange
        );
        assert!(parse_chage("").is_err());
        assert!(parse_chage("Last password change : 20 mai 2025").is_err());
    }

    #[test]
    fn accounts_service_days() {
        assert_eq!(
            parse_accounts_policy(&json!({"last_change_time": 20089})).unwrap(),
            LocalPassword::Changed("2025-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_accounts_policy(&json!({"last_change_time": 1735689600})).unwrap(),
            LocalPassword::Changed("2025-01-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_accounts_policy(&json!({"last_change_time": -86400})).unwrap(),
            LocalPassword::NotRecorded
        );
        assert_eq!(
            parse_accounts_policy(&json!({"last_change_time": 0})).unwrap(),
            LocalPassword::MustChange
        );
        assert_eq!(
            parse_accounts_policy(&json!({"last_change_time": -1})).unwrap(),
            LocalPassword::NotRecorded
        );
        assert!(parse_accounts_policy(&json!({})).is_err());
    }

    #[test]
    fn windows_dates() {
        assert_eq!(
            parse_local_user_json(
                r#"{"Name":"alice","PasswordLastSet":"2024-03-01T08:15:00.0000000Z"}"#
            )
            .unwrap(),
            LocalPassword::Changed("2024-03-01T08:15:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_local_user_json(r#"{"Name":"alice","PasswordLastSet":"/Date(1709280900000)/"}"#)
                .unwrap(),
            LocalPassword::Changed("2024-03-01T08:15:00Z".parse().unwrap())
        );
        assert_eq!(
            parse_local_user_json(r#"{"Name":"a","PasswordLastSet":null}"#).unwrap(),
            LocalPassword::NotRecorded
        );
    }
}
