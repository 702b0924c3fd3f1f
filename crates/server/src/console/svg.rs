//! Charts drawn on the server as SVG geometry: no script, nothing for the CSP to allow. The
//! templates place the numbers computed here into `<svg>` elements (escaped like any value).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};

use crate::store::console::DailyCompliance;

/// One day of the trend: the share of counted device-checks that pass, due and overdue.
#[derive(Debug, Clone)]
pub struct TrendPoint {
    pub day: NaiveDate,
    pub pass: i64,
    pub due: i64,
    pub overdue: i64,
    pub unknown: i64,
}

impl TrendPoint {
    pub fn total(&self) -> i64 {
        self.pass + self.due + self.overdue + self.unknown
    }
}

/// The last `days` days ending `today`, summed over checks (or one check); days without a
/// record are left out rather than drawn as zero.
pub fn trend(
    rows: &[DailyCompliance],
    today: NaiveDate,
    days: i64,
    check: Option<&str>,
) -> Vec<TrendPoint> {
    let from = today - Duration::days(days - 1);
    let mut by_day: BTreeMap<NaiveDate, TrendPoint> = BTreeMap::new();
    for r in rows {
        if r.day < from || r.day > today || check.is_some_and(|c| c != r.check_id) {
            continue;
        }
        let p = by_day.entry(r.day).or_insert(TrendPoint {
            day: r.day,
            pass: 0,
            due: 0,
            overdue: 0,
            unknown: 0,
        });
        p.pass += r.pass;
        p.due += r.due;
        p.overdue += r.overdue;
        p.unknown += r.unknown;
    }
    by_day.into_values().collect()
}

/// A stacked bar per day (pass, due, overdue, unknown from the bottom), in a
/// `width` × `height` box, over `days` slots ending `today`.
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: String,
    pub width: String,
    /// (y, height, css class) per segment.
    pub segments: Vec<(String, String, &'static str)>,
    pub label: String,
}

pub fn stacked_bars(
    points: &[TrendPoint],
    today: NaiveDate,
    days: i64,
    width: f64,
    height: f64,
) -> Vec<Bar> {
    let slot = width / days as f64;
    points
        .iter()
        .filter(|p| p.total() > 0)
        .map(|p| {
            let index = days - 1 - (today - p.day).num_days();
            let x = index as f64 * slot + slot * 0.15;
            let total = p.total() as f64;
            let mut y = height;
            let mut segments = Vec::new();
            for (n, class) in [
                (p.pass, "seg-pass"),
                (p.due, "seg-due"),
                (p.overdue, "seg-overdue"),
                (p.unknown, "seg-unknown"),
            ] {
                if n == 0 {
                    continue;
                }
                let h = n as f64 / total * height;
                y -= h;
                segments.push((format!("{y:.1}"), format!("{h:.1}"), class));
            }
            let pct = p.pass as f64 / total * 100.0;
            Bar {
                x: format!("{x:.1}"),
                width: format!("{:.1}", slot * 0.7),
                segments,
                label: format!(
                    "{}: {pct:.0}% pass, {} due, {} overdue, {} unknown",
                    p.day, p.due, p.overdue, p.unknown
                ),
            }
        })
        .collect()
}

/// A sparkline of the passing share in a `width` × `height` box: the SVG `points` list,
/// and the newest point (drawn as a dot, so that a single day still shows).
pub fn sparkline(
    points: &[TrendPoint],
    today: NaiveDate,
    days: i64,
    width: f64,
    height: f64,
) -> (String, Option<(String, String)>) {
    let step = width / (days - 1).max(1) as f64;
    let xy: Vec<(String, String)> = points
        .iter()
        .filter(|p| p.total() > 0)
        .map(|p| {
            let index = days - 1 - (today - p.day).num_days();
            let share = p.pass as f64 / p.total() as f64;
            (
                format!("{:.1}", index as f64 * step),
                format!("{:.1}", height - share * (height - 4.0) - 2.0),
            )
        })
        .collect();
    let line = xy
        .iter()
        .map(|(x, y)| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ");
    (line, xy.last().cloned())
}
