//! IT's day-to-day operations through the admin API: revoking devices, device detail and
//! filters, enrolment secrets, groups, policy versions and diffs, the audit log, the CSV
//! export, and the route table checked against each role.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_proto::v1::{self, problem, SignedPolicy};
use tandem_proto::Status;
use tandem_server::store::{action, AuditEntry, DeviceDetail, DeviceSummary, GroupInfo};
use tandem_server::Role;
use uuid::Uuid;

use crate::support::{problem, sample_report, Backend, TestServer};

on_both_backends!(
    a_revoked_device_is_told_to_enrol_again,
    the_device_page_shows_history_and_the_raw_report,
    devices_filter_by_group_check_status_and_search_and_page,
    enrolment_secrets_are_listed_created_and_expired,
    groups_are_listed_and_created_once,
    policy_versions_are_listed_read_and_diffed,
    every_admin_change_is_in_the_audit_log,
    the_compliance_export_defuses_formulas,
    each_route_answers_each_role_as_the_table_says,
    malformed_admin_input_gets_a_problem_and_writes_nothing,
);

async fn json_of<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    assert!(
        response.status().is_success(),
        "{}: {}",
        response.status(),
        response.text().await.unwrap()
    );
    response.json().await.unwrap()
}

async fn a_revoked_device_is_told_to_enrol_again(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let other = t.enroll("default", "m2").await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let revoke = format!("/api/v1/admin/devices/{}/revoke", device.device_id);

    let body = problem(
        t.post_admin(&viewer, &revoke, &json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["type"], problem::FORBIDDEN);
    assert_eq!(
        t.post_report(&device.device_token, &sample_report("m1"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );

    let detail: DeviceDetail = json_of(t.post_admin(&admin, &revoke, &json!({})).await).await;
    assert!(detail.revoked_at.is_some());
    for response in [
        t.post_report(&device.device_token, &sample_report("m1"))
            .await,
        t.get_policy(&device.device_token, None, 0).await,
    ] {
        let body = problem(response, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["type"], problem::ENROLL_AGAIN);
    }
    // Other devices are untouched; the revoked one leaves the list.
    assert_eq!(
        t.get_policy(&other.device_token, None, 0).await.status(),
        StatusCode::OK
    );
    let list: Vec<DeviceSummary> =
        json_of(t.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].device.id, other.device_id);

    // Revoking again is harmless; unknown and malformed ids are told apart.
    assert_eq!(
        t.post_admin(&admin, &revoke, &json!({})).await.status(),
        StatusCode::OK
    );
    let unknown = format!("/api/v1/admin/devices/{}/revoke", Uuid::now_v7());
    problem(
        t.post_admin(&admin, &unknown, &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        t.post_admin(
            &admin,
            "/api/v1/admin/devices/not-a-uuid/revoke",
            &json!({}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Enrolling again with a fresh secret brings the machine back under its old id.
    let again = t.enroll("default", "m1").await;
    assert_eq!(again.device_id, device.device_id);
    assert_eq!(
        t.get_policy(&again.device_token, None, 0).await.status(),
        StatusCode::OK
    );
}

async fn the_device_page_shows_history_and_the_raw_report(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("eng", "m1").await;
    let viewer = t.api_token(Role::Viewer).await;
    let signed: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();
    let mut first = sample_report("m1");
    first.policy_etag = Some(signed.etag.clone());
    first.inventory.device.hostname = "<script>alert(1)</script>".into();
    assert_eq!(
        t.post_report(&device.device_token, &first).await.status(),
        StatusCode::ACCEPTED
    );
    let second = sample_report("m1");
    let mut second = second;
    second.policy_etag = Some(signed.etag.clone());
    assert_eq!(
        t.post_report(&device.device_token, &second).await.status(),
        StatusCode::ACCEPTED
    );

    let path = format!("/api/v1/admin/devices/{}", device.device_id);
    let detail: DeviceDetail = json_of(t.get_admin(&viewer, &path).await).await;
    assert_eq!(detail.summary.device.id, device.device_id);
    assert_eq!(
        detail.summary.applied_policy_etag.as_deref(),
        Some(signed.etag.as_str())
    );
    assert_eq!(detail.machine_id, "m1");
    assert_eq!(detail.user_email.as_deref(), Some("ada@example.test"));
    assert_eq!(detail.agent_version.as_deref(), Some("0.1.0"));
    let ids: Vec<Uuid> = detail.reports.iter().map(|r| r.report_id).collect();
    assert_eq!(ids, [second.report_id, first.report_id], "newest first");
    assert_eq!(detail.events.len(), 2);
    let raw: Value = serde_json::from_str(detail.last_report.as_deref().unwrap()).unwrap();
    assert_eq!(raw["report_id"], json!(second.report_id));
    assert_eq!(detail.summary.device.results.len(), 2);

    // The list shows what the agent applied too.
    let list: Vec<DeviceSummary> =
        json_of(t.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await).await;
    assert_eq!(
        list[0].applied_policy_etag.as_deref(),
        Some(signed.etag.as_str())
    );

    problem(
        t.get_admin(
            &viewer,
            &format!("/api/v1/admin/devices/{}", Uuid::now_v7()),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn devices_filter_by_group_check_status_and_search_and_page(backend: Backend) {
    let t = TestServer::start(backend).await;
    let viewer = t.api_token(Role::Viewer).await;
    for (n, group) in ["eng", "eng", "eng", "sales", "sales"].iter().enumerate() {
        let machine = format!("m{n}");
        let device = t.enroll(group, &machine).await;
        let mut report = sample_report(&machine);
        // m0 and m3 pass os_updates; the others fail it.
        if n % 3 == 0 {
            report.results[0].status = Status::Pass;
        }
        if n == 4 {
            report.inventory.user = Some(tandem_proto::v1::UserInfo {
                login: "grace".into(),
                email: Some("Grace@Example.test".into()),
            });
        }
        assert_eq!(
            t.post_report(&device.device_token, &report).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let hosts = |query: &'static str| {
        let t = &t;
        let viewer = &viewer;
        async move {
            let response = t
                .get_admin(viewer, &format!("{}?{query}", v1::PATH_ADMIN_DEVICES))
                .await;
            let total = response.headers()["x-total-count"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap();
            let link = response
                .headers()
                .get("link")
                .map(|l| l.to_str().unwrap().to_owned());
            let list: Vec<DeviceSummary> = json_of(response).await;
            let names: Vec<String> = list.into_iter().map(|d| d.device.hostname).collect();
            (names, total, link)
        }
    };
    assert_eq!(
        hosts("").await.0,
        ["host-m0", "host-m1", "host-m2", "host-m3", "host-m4"]
    );
    assert_eq!(hosts("group=sales").await.0, ["host-m3", "host-m4"]);
    assert_eq!(
        hosts("check=os_updates&status=fail").await.0,
        ["host-m1", "host-m2", "host-m4"]
    );
    assert_eq!(
        hosts("group=eng&check=os_updates&status=pass").await.0,
        ["host-m0"]
    );
    assert_eq!(hosts("q=GRACE@example").await.0, ["host-m4"]);
    assert_eq!(hosts("q=HOST-M2").await.0, ["host-m2"]);
    assert!(hosts("q=%25").await.0.is_empty(), "`%` is not a wildcard");

    let (page, total, link) = hosts("limit=2").await;
    assert_eq!((page.len(), total), (2, 5));
    assert_eq!(
        link.as_deref(),
        Some("</api/v1/admin/devices?limit=2&offset=2>; rel=\"next\"")
    );
    let (page, _, link) = hosts("limit=2&offset=4").await;
    assert_eq!((page, link), (vec!["host-m4".to_owned()], None));

    for bad in [
        "status=broken",
        "check=nope",
        "limit=0",
        "limit=5000",
        "offset=-1",
        "group=a%20b",
        "colour=red",
    ] {
        let response = t
            .get_admin(&viewer, &format!("{}?{bad}", v1::PATH_ADMIN_DEVICES))
            .await;
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }
}

async fn enrolment_secrets_are_listed_created_and_expired(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let path = "/api/v1/admin/enroll-secrets";

    let response = t
        .post_admin(
            &admin,
            path,
            &json!({"group": "eng", "expires_in_days": 7, "max_uses": 10}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43);
    assert_eq!(
        t.post_enroll(&secret, "m1").await.status(),
        StatusCode::CREATED
    );

    let list: Vec<Value> = json_of(t.get_admin(&viewer, path).await).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["group"], "eng");
    assert_eq!(list[0]["uses"], 1);
    assert_eq!(list[0]["usable"], true);
    assert!(
        !list[0].to_string().contains(&secret),
        "a secret is shown only once"
    );

    let expire = format!("{path}/{id}/expire");
    problem(
        t.post_admin(&viewer, &expire, &json!({})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let expired: Value = json_of(t.post_admin(&admin, &expire, &json!({})).await).await;
    assert_eq!(expired["usable"], false);
    let body = problem(t.post_enroll(&secret, "m2").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], problem::BAD_ENROLL_SECRET);
    problem(
        t.post_admin(
            &admin,
            &format!("{path}/{}/expire", Uuid::now_v7()),
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    for bad in [
        json!({"group": "a b"}),
        json!({"max_uses": 0}),
        json!({"expires_in_days": 0}),
        json!({"expires_in_days": -3}),
        json!({"group": "eng", "colour": "red"}),
    ] {
        problem(
            t.post_admin(&admin, path, &bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    assert_eq!(t.count("enroll_secrets").await, 1);
}

async fn groups_are_listed_and_created_once(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let path = "/api/v1/admin/groups";
    let response = t.post_admin(&admin, path, &json!({"name": "eng"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = problem(
        t.post_admin(&admin, path, &json!({"name": "eng"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("eng"));
    problem(
        t.post_admin(&viewer, path, &json!({"name": "x"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        t.post_admin(&admin, path, &json!({"name": "../etc"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    t.enroll("eng", "m1").await;
    let groups: Vec<GroupInfo> = json_of(t.get_admin(&viewer, path).await).await;
    let summary: Vec<_> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.devices, g.policy_version))
        .collect();
    assert_eq!(summary, [("default", 0, None), ("eng", 1, None)]);
}

async fn policy_versions_are_listed_read_and_diffed(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let v1_body = json!({"org": {"name": "A"}, "intervals": {"check_minutes": 30}});
    let v2_body = json!({"org": {"name": "B"}, "nudges": {"max_per_day": 2}});
    for body in [&v1_body, &v2_body] {
        assert_eq!(
            t.put_policy(&admin, "eng", body).await.status(),
            StatusCode::OK
        );
    }
    let base = "/api/v1/admin/groups/eng/policy";
    let versions: Vec<Value> =
        json_of(t.get_admin(&viewer, &format!("{base}/versions")).await).await;
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["version"], 2);
    assert!(versions[1]["created_by"]
        .as_str()
        .unwrap()
        .starts_with("token:"));

    let one: Value = json_of(t.get_admin(&viewer, &format!("{base}/versions/1")).await).await;
    assert_eq!(one["policy"], v1_body);
    let builtin: Value = json_of(t.get_admin(&viewer, &format!("{base}/versions/0")).await).await;
    assert_eq!(builtin["version"], 0);
    problem(
        t.get_admin(&viewer, &format!("{base}/versions/3")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        t.get_admin(&viewer, &format!("{base}/versions/two")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let diff: Value = json_of(
        t.get_admin(&viewer, &format!("{base}/diff?from=1&to=2"))
            .await,
    )
    .await;
    assert_eq!(
        diff["changes"],
        json!([
            {"op": "removed", "pointer": "/intervals", "before": {"check_minutes": 30}},
            {"op": "added", "pointer": "/nudges", "after": {"max_per_day": 2}},
            {"op": "changed", "pointer": "/org/name", "before": "A", "after": "B"},
        ])
    );
    let from_defaults: Value = json_of(
        t.get_admin(&viewer, &format!("{base}/diff?from=0&to=2"))
            .await,
    )
    .await;
    assert!(!from_defaults["changes"].as_array().unwrap().is_empty());
    problem(
        t.get_admin(&viewer, &format!("{base}/diff?from=1")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        t.get_admin(&viewer, "/api/v1/admin/groups/nobody/policy/versions")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn every_admin_change_is_in_the_audit_log(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let device = t.enroll("default", "m1").await;
    let policy = json!({"org": {"name": "A"}});
    assert_eq!(
        t.put_policy(&admin, "eng", &policy).await.status(),
        StatusCode::OK
    );
    // An unchanged push and a refused one change nothing and record nothing.
    assert_eq!(
        t.put_policy(&admin, "eng", &policy).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        t.put_policy(&viewer, "eng", &json!({})).await.status(),
        StatusCode::FORBIDDEN
    );
    let created: Value = json_of(
        t.post_admin(
            &admin,
            "/api/v1/admin/enroll-secrets",
            &json!({"group": "eng"}),
        )
        .await,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    t.post_admin(
        &admin,
        &format!("/api/v1/admin/enroll-secrets/{id}/expire"),
        &json!({}),
    )
    .await;
    t.post_admin(
        &admin,
        &format!("/api/v1/admin/devices/{}/revoke", device.device_id),
        &json!({}),
    )
    .await;
    t.post_admin(&admin, "/api/v1/admin/groups", &json!({"name": "ops"}))
        .await;

    let log: Vec<AuditEntry> = json_of(t.get_admin(&viewer, "/api/v1/admin/audit").await).await;
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            action::GROUP_CREATE,
            action::DEVICE_REVOKE,
            action::ENROLL_SECRET_EXPIRE,
            action::ENROLL_SECRET_CREATE,
            action::POLICY_PUT,
            action::ENROLL_SECRET_CREATE,
            action::API_TOKEN_CREATE,
            action::API_TOKEN_CREATE,
        ]
    );
    let admin_id = log[7].target.trim_start_matches("api_token:").to_owned();
    assert_eq!(log[0].actor, format!("token:{admin_id}"));
    assert_eq!(log[7].actor, "cli");
    assert_eq!(log[4].after.as_ref().unwrap()["policy"], policy);
    assert_eq!(log[1].target, format!("device:{}", device.device_id));
    assert!(
        !serde_json::to_string(&log).unwrap().contains(secret),
        "secrets never reach the audit log"
    );

    let page: Vec<AuditEntry> = json_of(
        t.get_admin(
            &viewer,
            &format!("/api/v1/admin/audit?limit=2&before={}", log[1].id),
        )
        .await,
    )
    .await;
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [log[2].id, log[3].id]
    );
    let puts: Vec<AuditEntry> = json_of(
        t.get_admin(&viewer, "/api/v1/admin/audit?action=policy.put")
            .await,
    )
    .await;
    assert_eq!(puts.len(), 1);
}

async fn the_compliance_export_defuses_formulas(backend: Backend) {
    let t = TestServer::start(backend).await;
    let viewer = t.api_token(Role::Viewer).await;
    let device = t.enroll("default", "m1").await;
    let mut report = sample_report("m1");
    report.inventory.device.hostname = "=HYPERLINK(\"http://evil.example\",\"x\")".into();
    report.inventory.user = Some(tandem_proto::v1::UserInfo {
        login: "@ada".into(),
        email: None,
    });
    report.inventory.device.os_version = "+1, \"quoted\"\nline".into();
    assert_eq!(
        t.post_report(&device.device_token, &report).await.status(),
        StatusCode::ACCEPTED
    );
    t.enroll("default", "m2").await;

    let response = t
        .get_admin(&viewer, "/api/v1/admin/export/compliance.csv")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..3], ["device_id", "hostname", "user_login"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let row = rows
        .iter()
        .find(|r| r[0] == device.device_id.to_string())
        .unwrap();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(
        &row[col("hostname")],
        "'=HYPERLINK(\"http://evil.example\",\"x\")"
    );
    assert_eq!(&row[col("user_login")], "'@ada");
    assert_eq!(&row[col("os_version")], "'+1, \"quoted\"\nline");
    assert_eq!(&row[col("os_updates")], "fail");
    assert_eq!(&row[col("firewall")], "pass");
    assert_eq!(&row[col("worst_status")], "fail");
    assert_eq!(&row[col("mfa")], "");
}

/// Every admin route, with a valid request shape, and whether it writes.
fn route_table(device: Uuid, secret: &str) -> Vec<(Method, String, Option<Value>, bool)> {
    let get = |p: String| (Method::GET, p, None, false);
    vec![
        get(v1::PATH_ADMIN_DEVICES.into()),
        get(format!("/api/v1/admin/devices/{device}")),
        get("/api/v1/admin/groups".into()),
        get("/api/v1/admin/groups/default/policy".into()),
        get("/api/v1/admin/groups/default/policy/versions".into()),
        get("/api/v1/admin/groups/default/policy/versions/0".into()),
        get("/api/v1/admin/groups/default/policy/diff?from=0&to=0".into()),
        get("/api/v1/admin/enroll-secrets".into()),
        get("/api/v1/admin/audit".into()),
        get("/api/v1/admin/export/compliance.csv".into()),
        get("/api/v1/admin/identities".into()),
        get("/api/v1/admin/identity-sources".into()),
        get("/api/v1/admin/phishing-reports".into()),
        (
            Method::POST,
            "/api/v1/admin/identities/import".into(),
            Some(json!([{"email": "ada@example.test", "mfa_enrolled": true}])),
            true,
        ),
        (
            Method::PUT,
            "/api/v1/admin/groups/eng/policy".into(),
            Some(json!({"org": {"name": "X"}})),
            true,
        ),
        (
            Method::POST,
            "/api/v1/admin/groups".into(),
            Some(json!({"name": "new"})),
            true,
        ),
        (
            Method::POST,
            "/api/v1/admin/enroll-secrets".into(),
            Some(json!({"group": "eng"})),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/enroll-secrets/{secret}/expire"),
            Some(json!({})),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/devices/{device}/revoke"),
            Some(json!({})),
            true,
        ),
    ]
}

async fn each_route_answers_each_role_as_the_table_says(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let device = t.enroll("default", "m1").await;
    let secrets: Vec<Value> =
        json_of(t.get_admin(&admin, "/api/v1/admin/enroll-secrets").await).await;
    let secret = secrets[0]["id"].as_str().unwrap().to_owned();
    let table = route_table(device.device_id, &secret);
    let send = |method: Method, path: &str, body: Option<&Value>, token: Option<&str>| {
        let mut request = t.http.request(method, t.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send()
    };

    let audit_before = t.count("audit_log").await;
    for (method, path, body, writes) in &table {
        let anonymous = send(method.clone(), path, body.as_ref(), None)
            .await
            .unwrap();
        problem(anonymous, StatusCode::UNAUTHORIZED).await;
        let as_device = send(
            method.clone(),
            path,
            body.as_ref(),
            Some(&device.device_token),
        )
        .await
        .unwrap();
        problem(as_device, StatusCode::UNAUTHORIZED).await;
        let as_viewer = send(method.clone(), path, body.as_ref(), Some(&viewer))
            .await
            .unwrap();
        if *writes {
            let body = problem(as_viewer, StatusCode::FORBIDDEN).await;
            assert_eq!(body["type"], problem::FORBIDDEN, "{method} {path}");
        } else {
            assert_eq!(as_viewer.status(), StatusCode::OK, "{method} {path}");
        }
    }
    assert_eq!(
        t.count("audit_log").await,
        audit_before,
        "no refused request changed anything"
    );
    for (method, path, body, _) in &table {
        let as_admin = send(method.clone(), path, body.as_ref(), Some(&admin))
            .await
            .unwrap();
        assert!(
            as_admin.status().is_success(),
            "{method} {path}: {}",
            as_admin.status()
        );
    }
}

async fn malformed_admin_input_gets_a_problem_and_writes_nothing(backend: Backend) {
    let t = TestServer::start(backend).await;
    let admin = t.api_token(Role::Admin).await;
    let audit_before = t.count("audit_log").await;
    let raw = |method: Method, path: &'static str, body: &'static str, ct: &'static str| {
        t.http
            .request(method, t.url(path))
            .bearer_auth(&admin)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let cases = [
        (
            Method::POST,
            "/api/v1/admin/groups",
            "{\"name\":",
            "application/json",
            400,
        ),
        (
            Method::POST,
            "/api/v1/admin/groups",
            "{\"name\": 5}",
            "application/json",
            422,
        ),
        (
            Method::POST,
            "/api/v1/admin/groups",
            "{}",
            "application/json",
            422,
        ),
        (
            Method::POST,
            "/api/v1/admin/groups",
            "name=x",
            "text/plain",
            415,
        ),
        (
            Method::POST,
            "/api/v1/admin/enroll-secrets",
            "{\"max_uses\": 99999999999}",
            "application/json",
            422,
        ),
        (
            Method::DELETE,
            "/api/v1/admin/groups",
            "",
            "application/json",
            405,
        ),
    ];
    for (method, path, body, ct, status) in cases {
        let response = raw(method.clone(), path, body, ct).await.unwrap();
        problem(response, StatusCode::from_u16(status).unwrap()).await;
    }
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(100_000));
    let response = t
        .http
        .post(t.url("/api/v1/admin/groups"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(t.count("audit_log").await, audit_before);
    assert_eq!(t.count("groups").await, 1);
}
