//! The policy page's push preview judges the thresholds agents measure themselves from each
//! device's last evidence (issue 7): a password changed 100 days ago passes under a maximum
//! of 180 days and is overdue under 90, in the preview, before anything is pushed; a device
//! whose report holds no change date is named as not evaluated.

use reqwest::StatusCode;
use serde_json::json;
use tandem_proto::{CheckId, CheckResult, Owner, Remediation, Status};
use tandem_server::Role;

use crate::console::signed_in;
use crate::support::{sample_report, Backend, TestServer};

on_both_backends!(the_preview_judges_password_age_from_the_devices_evidence);

fn password_result(details: serde_json::Value) -> CheckResult {
    CheckResult {
        id: CheckId::PasswordAge,
        status: Status::Pass,
        summary: "Password changed 100 days ago (limit 180 days)".into(),
        reason: None,
        details,
        evidence: vec![],
        remediation: Remediation::default(),
        owner: Owner::User,
        observed_at: chrono::Utc::now(),
        duration_ms: 3,
    }
}

/// The number in the "Now" or "After push" column of a category's row.
fn moves(page: &str, category: &str) -> (i64, i64) {
    let row = format!("<span class=\"chip chip-{category}\">{category}</span></td>");
    let at = page
        .find(&row)
        .unwrap_or_else(|| panic!("no {category} row: {page}"));
    let cells: Vec<i64> = page[at + row.len()..]
        .split("</tr>")
        .next()
        .unwrap()
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().trim().parse().unwrap())
        .collect();
    (cells[0], cells[1])
}

async fn the_preview_judges_password_age_from_the_devices_evidence(backend: Backend) {
    let server = TestServer::start(backend).await;
    let policy = |max: u32| json!({"checks": {"password_age": {"enabled": true, "max_age_days": max, "grace_days": 14}}});
    server
        .app()
        .push_policy("default", policy(180), "test")
        .await
        .unwrap();
    let changed = chrono::Utc::now() - chrono::Duration::days(100);
    // A current agent reports the change date it measured; an older one reported none.
    for (machine, details) in [
        (
            "measured",
            json!({"source": "local:chage", "changed_at": changed, "age_days": 100, "max_age_days": 180}),
        ),
        ("old-agent", json!({"source": "local:chage"})),
    ] {
        let enrolled = server.enroll("default", machine).await;
        let mut report = sample_report(machine);
        report.results = vec![password_result(details)];
        let sent = server.post_report(&enrolled.device_token, &report).await;
        assert!(sent.status().is_success(), "{}", sent.status());
    }
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let csrf = admin.csrf("/console/policies/default").await;

    // Under a maximum of 90 days the measured device's password is 10 days past its limit.
    let raw = policy(90).to_string();
    let response = admin
        .post(
            "/console/policies/default/preview",
            &[("csrf", &csrf), ("mode", "raw"), ("raw", &raw)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<strong>1</strong> of 2 devices"),
        "one device changes state: {page}"
    );
    assert_eq!(moves(&page, "pass"), (2, 1));
    assert_eq!(moves(&page, "overdue"), (0, 1));
    assert!(page.contains("1 device checks judged again"), "{page}");
    let not_evaluated = page
        .split("id=\"not-evaluated\"")
        .nth(1)
        .expect("a not-evaluated table");
    assert!(not_evaluated.contains("host-old-agent"), "{not_evaluated}");
    assert!(!not_evaluated.contains("host-measured"));

    // The maximum in force changes nothing: both pass, nothing judged again.
    let raw = policy(180).to_string();
    let page = admin
        .post(
            "/console/policies/default/preview",
            &[("csrf", &csrf), ("mode", "raw"), ("raw", &raw)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<strong>0</strong> of 2 devices"), "{page}");
    assert_eq!(moves(&page, "pass"), (2, 2));
    assert!(!page.contains("id=\"not-evaluated\""));

    // A maximum of 200 days keeps the measured device passing.
    let raw = policy(200).to_string();
    let page = admin
        .post(
            "/console/policies/default/preview",
            &[("csrf", &csrf), ("mode", "raw"), ("raw", &raw)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(moves(&page, "pass"), (2, 2));
    assert!(page.contains("1 device checks judged again"), "{page}");
}
