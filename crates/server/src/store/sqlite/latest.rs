//! A device's newest result of each check, at rest as one value on its `devices` row.
//!
//! The results used to be rows of their own, one per device and check (`latest_results`).
//! A report carries all eleven checks, each with a new observation time, so every report
//! rewrote eleven rows of about 560 bytes: two or three random pages of that table, the
//! single largest share of the pages a report dirtied and so of the WAL written and the
//! checkpoints that copy it back. Kept as one zstd-compressed JSON array (about an eighth of
//! its size) on the `devices` row, which the report updates anyway, the same facts dirty no
//! page of their own. What the admin filters and counts need, each check's status, stays a
//! row per device and check in `latest_results`, written only when a status changes.
//!
//! The value is a JSON array of entries, one per check, sorted by check id:
//! `{"check":…,"status":…,"observed_at":…,"report_id":…,"result":{the CheckResult}}`.
//! `observed_at` is the store's fixed-width timestamp text, so it orders as text. As with
//! report bodies ([`super::body`]), a BLOB is compressed and a TEXT is the JSON as it is:
//! the migration that moved the rows here wrote text, the writer writes blobs.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;
use tandem_proto::CheckResult;

use super::super::{parse_check_result, StoreError};
use super::body;

/// The SQL that reads `d.results` as `results_packed` and `results_text`, for [`from_row`].
pub const SELECT_RESULTS: &str =
    "CASE WHEN typeof(d.results) = 'blob' THEN d.results END AS results_packed, \
     CASE WHEN typeof(d.results) = 'blob' THEN NULL ELSE d.results END AS results_text";

/// One check's newest result as stored.
#[derive(Debug, Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    check: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    observed_at: Cow<'a, str>,
    #[serde(borrow)]
    report_id: Cow<'a, str>,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// A check's result from a report being stored, its result already as JSON text.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub check: &'a str,
    pub status: &'a str,
    /// As [`super::ts`] writes it.
    pub observed_at: &'a str,
    pub report_id: &'a str,
    pub result: &'a str,
}

/// A check whose newest status changed (or that is new), for its `latest_results` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub check: String,
    pub status: String,
    /// The observation that brought the status.
    pub since: String,
}

/// What [`merge`] made of a report's results.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The device's new value, or `None` when every result was older than the one held.
    pub json: Option<String>,
    pub changes: Vec<StatusChange>,
}

/// The stored value's JSON, from the two columns of [`SELECT_RESULTS`] (or the writer's
/// read of the column); `None` for a device that never reported a result.
pub fn stored_json(
    packed: Option<Vec<u8>>,
    text: Option<String>,
) -> Result<Option<String>, StoreError> {
    match (packed, text) {
        (Some(packed), _) => body::inflate(&packed, "device's latest results").map(Some),
        (None, text) => Ok(text),
    }
}

fn parse(json: &str) -> Result<Vec<Entry<'_>>, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("device's latest results: {e}")))
}

/// The device's results, in check order, from a row that selected [`SELECT_RESULTS`].
pub fn from_row(row: &SqliteRow) -> Result<Vec<CheckResult>, StoreError> {
    decode(row.try_get("results_packed")?, row.try_get("results_text")?)
}

/// The device's results, in check order, from the two columns of [`SELECT_RESULTS`].
fn decode(packed: Option<Vec<u8>>, text: Option<String>) -> Result<Vec<CheckResult>, StoreError> {
    let Some(json) = stored_json(packed, text)? else {
        return Ok(Vec::new());
    };
    parse(&json)?
        .iter()
        .map(|entry| parse_check_result(entry.result.get()))
        .collect()
}

/// Folds a report's results into the device's stored value (`held`, its JSON): the
/// newest observation of each check wins, a tie going to the report, whatever order
/// reports arrive in; a check repeated within the report is folded in order.
pub fn merge(held: Option<&str>, incoming: &[Incoming<'_>]) -> Result<Merged, StoreError> {
    struct Slot<'a> {
        check: Cow<'a, str>,
        status: Cow<'a, str>,
        observed_at: Cow<'a, str>,
        report_id: Cow<'a, str>,
        result: &'a str,
        /// The status held before this report, `None` for a check not held.
        was: Option<Cow<'a, str>>,
    }
    let mut slots: Vec<Slot<'_>> = match held {
        Some(json) => parse(json)?
            .into_iter()
            .map(|e| Slot {
                was: Some(e.status.clone()),
                check: e.check,
                status: e.status,
                observed_at: e.observed_at,
                report_id: e.report_id,
                result: e.result.get(),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut changed = false;
    for new in incoming {
        let slot = match slots.iter_mut().find(|s| s.check == new.check) {
            Some(slot) if slot.observed_at.as_ref() > new.observed_at => continue,
            Some(slot) => slot,
            None => {
                slots.push(Slot {
                    check: Cow::Borrowed(new.check),
                    status: Cow::Borrowed(new.status),
                    observed_at: Cow::Borrowed(new.observed_at),
                    report_id: Cow::Borrowed(new.report_id),
                    result: new.result,
                    was: None,
                });
                changed = true;
                continue;
            }
        };
        slot.status = Cow::Borrowed(new.status);
        slot.observed_at = Cow::Borrowed(new.observed_at);
        slot.report_id = Cow::Borrowed(new.report_id);
        slot.result = new.result;
        changed = true;
    }
    if !changed {
        return Ok(Merged::default());
    }
    slots.sort_by(|a, b| a.check.cmp(&b.check));
    let mut json = String::with_capacity(slots.iter().map(|s| s.result.len() + 128).sum());
    json.push('[');
    for (n, slot) in slots.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str("{\"check\":");
        push_string(&mut json, &slot.check);
        json.push_str(",\"status\":");
        push_string(&mut json, &slot.status);
        json.push_str(",\"observed_at\":");
        push_string(&mut json, &slot.observed_at);
        json.push_str(",\"report_id\":");
        push_string(&mut json, &slot.report_id);
        json.push_str(",\"result\":");
        json.push_str(slot.result);
        json.push('}');
    }
    json.push(']');
    let changes = slots
        .iter()
        .filter(|s| s.was.as_deref() != Some(s.status.as_ref()))
        .map(|s| StatusChange {
            check: s.check.clone().into_owned(),
            status: s.status.clone().into_owned(),
            since: s.observed_at.clone().into_owned(),
        })
        .collect();
    Ok(Merged {
        json: Some(json),
        changes,
    })
}

/// `s` as a JSON string. Check ids, statuses, timestamps and report ids need no escape,
/// so they are copied between quotes; anything else goes through serde_json.
fn push_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // A `&str` always serializes; the fallback only keeps this free of a panic path.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, status: &str, at: &str) -> String {
        serde_json::json!({
            "id": check, "status": status, "observed_at": at,
            "summary": format!("{check} is {status}"), "duration_ms": 3,
        })
        .to_string()
    }

    fn incoming<'a>(check: &'a str, status: &'a str, at: &'a str, text: &'a str) -> Incoming<'a> {
        Incoming {
            check,
            status,
            observed_at: at,
            report_id: "r",
            result: text,
        }
    }

    const T1: &str = "2026-11-29T10:00:00.000000Z";
    const T2: &str = "2026-11-29T11:00:00.000000Z";

    #[test]
    fn the_first_report_stores_every_check_and_every_status_is_new() {
        let (a, b) = (
            result("firewall", "pass", T1),
            result("disk_encryption", "fail", T1),
        );
        let merged = merge(
            None,
            &[
                incoming("firewall", "pass", T1, &a),
                incoming("disk_encryption", "fail", T1, &b),
            ],
        )
        .unwrap();
        let json = merged.json.unwrap();
        let entries = parse(&json).unwrap();
        // Sorted by check, each result embedded as it came.
        let checks: Vec<&str> = entries.iter().map(|e| e.check.as_ref()).collect();
        assert_eq!(checks, ["disk_encryption", "firewall"]);
        assert_eq!(entries[1].result.get(), a);
        assert_eq!(merged.changes.len(), 2);
        assert_eq!(merged.changes[0].status, "fail");
        assert_eq!(merged.changes[0].since, T1);
    }

    #[test]
    fn a_newer_observation_replaces_and_only_a_new_status_is_a_change() {
        let (a1, b1) = (
            result("firewall", "pass", T1),
            result("screen_lock", "pass", T1),
        );
        let held = merge(
            None,
            &[
                incoming("firewall", "pass", T1, &a1),
                incoming("screen_lock", "pass", T1, &b1),
            ],
        )
        .unwrap()
        .json
        .unwrap();
        let (a2, b2) = (
            result("firewall", "pass", T2),
            result("screen_lock", "warn", T2),
        );
        let merged = merge(
            Some(&held),
            &[
                incoming("firewall", "pass", T2, &a2),
                incoming("screen_lock", "warn", T2, &b2),
            ],
        )
        .unwrap();
        assert_eq!(
            merged.changes,
            [StatusChange {
                check: "screen_lock".into(),
                status: "warn".into(),
                since: T2.into()
            }]
        );
        let json = merged.json.unwrap();
        let entries = parse(&json).unwrap();
        assert_eq!(entries[0].result.get(), a2);
        assert_eq!(entries[1].observed_at, T2);
    }

    #[test]
    fn an_older_report_arriving_late_changes_nothing() {
        let new = result("firewall", "fail", T2);
        let held = merge(None, &[incoming("firewall", "fail", T2, &new)])
            .unwrap()
            .json
            .unwrap();
        let old = result("firewall", "pass", T1);
        let merged = merge(Some(&held), &[incoming("firewall", "pass", T1, &old)]).unwrap();
        assert_eq!(merged, Merged::default());
    }

    #[test]
    fn a_late_report_still_adds_a_check_the_device_had_not_reported() {
        let new = result("firewall", "pass", T2);
        let held = merge(None, &[incoming("firewall", "pass", T2, &new)])
            .unwrap()
            .json
            .unwrap();
        let (old_fw, old_av) = (
            result("firewall", "fail", T1),
            result("antivirus", "fail", T1),
        );
        let merged = merge(
            Some(&held),
            &[
                incoming("firewall", "fail", T1, &old_fw),
                incoming("antivirus", "fail", T1, &old_av),
            ],
        )
        .unwrap();
        assert_eq!(merged.changes.len(), 1);
        assert_eq!(merged.changes[0].check, "antivirus");
        let json = merged.json.unwrap();
        let results = decode(None, Some(json)).unwrap();
        assert_eq!(results.len(), 2);
        let firewall = results
            .iter()
            .find(|r| r.id.as_str() == "firewall")
            .unwrap();
        assert_eq!(firewall.status.as_str(), "pass");
    }

    #[test]
    fn a_tie_goes_to_the_report_and_a_check_repeated_in_it_ends_with_its_last_newest() {
        let first = result("firewall", "pass", T1);
        let held = merge(None, &[incoming("firewall", "pass", T1, &first)])
            .unwrap()
            .json
            .unwrap();
        let (tie, later, stale) = (
            result("firewall", "warn", T1),
            result("firewall", "fail", T2),
            result("firewall", "pass", T1),
        );
        let merged = merge(
            Some(&held),
            &[
                incoming("firewall", "warn", T1, &tie),
                incoming("firewall", "fail", T2, &later),
                incoming("firewall", "pass", T1, &stale),
            ],
        )
        .unwrap();
        assert_eq!(merged.changes.len(), 1);
        assert_eq!(merged.changes[0].status, "fail");
        assert_eq!(parse(&merged.json.unwrap()).unwrap()[0].status, "fail");
    }

    #[test]
    fn compressed_and_text_values_read_the_same_and_damage_is_an_error() {
        let a = result("firewall", "pass", T1);
        let json = merge(None, &[incoming("firewall", "pass", T1, &a)])
            .unwrap()
            .json
            .unwrap();
        let packed = body::pack(&json).unwrap();
        assert_eq!(
            decode(Some(packed.clone()), None).unwrap(),
            decode(None, Some(json.clone())).unwrap()
        );
        assert!(decode(None, None).unwrap().is_empty());
        let mut cut = packed;
        cut.truncate(cut.len() / 2);
        assert!(matches!(
            decode(Some(cut), None),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            merge(Some("[{\"check\":1}]"), &[]),
            Err(StoreError::Corrupt(_))
        ));
        // Device-supplied text in a result is escaped inside the embedded JSON already;
        // the entry's own strings are escaped here.
        let odd = result("firewall", "pass", T1);
        let merged = merge(
            None,
            &[Incoming {
                report_id: "quote\" and \\ backslash\n",
                ..incoming("firewall", "pass", T1, &odd)
            }],
        )
        .unwrap();
        let json = merged.json.unwrap();
        assert_eq!(
            parse(&json).unwrap()[0].report_id,
            "quote\" and \\ backslash\n"
        );
    }
}
