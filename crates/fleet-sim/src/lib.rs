//! What a simulated agent sends, shared by the fleet simulator (`main.rs`) and the server's
//! own benches, so that every server figure in BENCHMARKS.md is taken with the same report.

use chrono::{DateTime, Utc};
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::v1::{DeviceInfo, Event, EventKind, Inventory, StatusReport, UserInfo};
use tandem_proto::{CheckId, CheckResult, Owner, Remediation, Status};
use uuid::Uuid;

/// Agent `i` of the fleet named `name`: its machine.
pub fn device(name: &str, i: usize) -> DeviceInfo {
    DeviceInfo {
        machine_id: format!("{name}-{i:06}"),
        hostname: format!("{name}-laptop-{i:06}"),
        os: "linux".into(),
        os_version: "Debian GNU/Linux 12 (bookworm)".into(),
        model: Some("ThinkPad T14 Gen 3".into()),
        serial: Some(format!("PF{i:08}")),
    }
}

/// Agent `i` of the fleet named `name`: its user.
pub fn user(name: &str, i: usize) -> UserInfo {
    UserInfo {
        login: format!("{name}{i}"),
        email: Some(format!("{name}{i}@example.test")),
    }
}

/// A report like the agent's from agent `i`, observed and sent at `now`: 11 results with
/// evidence and remediation, an inventory and an event. Its id is a fresh UUIDv7, as the
/// agent's are.
pub fn report(name: &str, i: usize, now: DateTime<Utc>) -> StatusReport {
    let status = |id: CheckId| match (id, i % 7) {
        (CheckId::OsUpdates, 0 | 3) => Status::Fail,
        (CheckId::ScreenLock, 1) => Status::Warn,
        (CheckId::Antivirus, _) => Status::NotApplicable,
        (CheckId::Mfa, 5) => Status::Unknown,
        _ => Status::Pass,
    };
    let results = CheckId::ALL
        .into_iter()
        .map(|id| CheckResult {
            id,
            status: status(id),
            summary: format!("{}: {} on this laptop", id.title(), status(id)),
            reason: (status(id) == Status::Unknown)
                .then(|| "the identity provider has not answered yet".to_owned()),
            details: json!({"checked": id.as_str(), "pending": i % 13, "source": "simulated"}),
            evidence: vec![Evidence {
                source: format!("/usr/bin/probe --{}", id.as_str()),
                excerpt: "Listing... Done\n12 packages can be upgraded. Run 'apt list --upgradable' to see them.".into(),
            }],
            remediation: Remediation {
                steps: vec![
                    format!("Open the settings for {}.", id.title()),
                    "Follow the steps your IT team sent you.".into(),
                ],
                action: None,
            },
            owner: if matches!(id, CheckId::Mfa | CheckId::PasswordAge) {
                Owner::It
            } else {
                Owner::User
            },
            observed_at: now,
            duration_ms: 40 + (i as u64 % 200),
        })
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("cpu".into(), json!("12th Gen Intel(R) Core(TM) i7-1260P"));
    extra.insert("memory_mb".into(), json!(32_000));
    extra.insert("uptime_s".into(), json!(86_400 + i));
    StatusReport {
        report_id: Uuid::now_v7(),
        agent_version: "0.1.0".into(),
        sent_at: now,
        inventory: Inventory {
            device: device(name, i),
            kernel: Some("6.1.0-28-amd64".into()),
            arch: Some("x86_64".into()),
            user: Some(user(name, i)),
            extra,
        },
        results,
        events: vec![Event {
            kind: EventKind::NudgeShown,
            at: now,
            check_id: Some(CheckId::OsUpdates),
            detail: None,
        }],
        policy_etag: None,
    }
}
