//! Operating the server: Prometheus metrics, and the rate limits per source address (behind
//! trusted proxies too) and per token.

use std::sync::Arc;

use reqwest::StatusCode;
use tandem_proto::v1::{self, SignedPolicy};
use tandem_server::config::RateLimit;
use tandem_server::Role;

use crate::support::{problem, sample_report, Backend, TestDb, TestServer};

on_both_backends!(
    metrics_count_requests_by_route_parked_polls_and_ingest_lag,
    enrolment_is_rate_limited_per_source_address,
);

async fn metrics(t: &TestServer) -> String {
    let response = t.http.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_by_route_parked_polls_and_ingest_lag(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let viewer = t.api_token(Role::Viewer).await;
    assert_eq!(
        t.post_report(&device.device_token, &sample_report("m1"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let detail = format!("/api/v1/admin/devices/{}", device.device_id);
    assert_eq!(t.get_admin(&viewer, &detail).await.status(), StatusCode::OK);

    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();
    let poll = t
        .park_policy_poll(&device.device_token, &current.etag, 60)
        .await;

    let text = metrics(&t).await;
    assert_eq!(
        sample(&text, "tandem_policy_long_polls_parked "),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tandem_http_requests_total{method=\"POST\",route=\"/api/v1/agent/reports\",status=\"202\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // Routes are labelled by pattern: no device id in any label.
    assert!(
        text.contains("route=\"/api/v1/admin/devices/{id}\""),
        "{text}"
    );
    assert!(!text.contains(&device.device_id.to_string()));
    assert_eq!(
        sample(&text, "tandem_report_ingest_lag_seconds_count "),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tandem_reports_ingested_total "),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("tandem_http_request_duration_seconds_bucket"));

    t.server.shutdown().await.unwrap();
    assert_eq!(poll.await.unwrap().1.status(), StatusCode::NOT_MODIFIED);
}

async fn enrolment_is_rate_limited_per_source_address(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let t = TestServer::start_with(db, |c| {
        c.enroll_rate_limit = Some(RateLimit {
            per_minute: 1,
            burst: 2,
        });
    })
    .await;
    let secret = t.enroll_secret("default").await;
    for machine in ["m1", "m2"] {
        assert_eq!(
            t.post_enroll(&secret, machine).await.status(),
            StatusCode::CREATED
        );
    }
    // Bad secrets count too: the limit is what makes guessing slow.
    let response = t.post_enroll("guess", "m3").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "https://tandem.dev/problems/rate-limited");
    assert_eq!(t.count("devices").await, 2);
    let text = metrics(&t).await;
    assert_eq!(
        sample(&text, "tandem_enroll_rate_limited_total "),
        Some(1.0),
        "{text}"
    );
    // Other endpoints are not limited by it.
    let viewer = t.api_token(Role::Viewer).await;
    assert_eq!(
        t.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_token_has_its_own_request_budget() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let t = TestServer::start_with(db, |c| {
        c.token_rate_limit = Some(RateLimit {
            per_minute: 1,
            burst: 3,
        });
    })
    .await;
    let a = t.enroll("default", "m-a").await;
    let b = t.enroll("default", "m-b").await;
    let identity = |token: String| {
        let t = &t;
        async move {
            t.http
                .get(t.url(v1::PATH_IDENTITY))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(
            identity(a.device_token.clone()).await.status(),
            StatusCode::OK
        );
    }
    let limited = identity(a.device_token.clone()).await;
    assert!(limited.headers().contains_key("retry-after"));
    let body = problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["type"], "https://tandem.dev/problems/rate-limited");
    // Another device is not held back by the first one's traffic.
    assert_eq!(
        identity(b.device_token.clone()).await.status(),
        StatusCode::OK
    );
    // Nor are admin tokens, which have buckets of their own.
    let viewer = t.api_token(Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(
            t.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        t.get_admin(&viewer, v1::PATH_ADMIN_DEVICES).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_rate_limited() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let t = TestServer::start_with(db, |c| {
        c.enroll_rate_limit = Some(RateLimit {
            per_minute: 1,
            burst: 1,
        });
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let secret = t.enroll_secret("default").await;
    let enroll_from = |client: &'static str, machine: &'static str| {
        let t = &t;
        let secret = secret.clone();
        async move {
            let body = serde_json::json!({
                "enroll_secret": secret,
                "device": {"machine_id": machine, "hostname": machine, "os": "linux", "os_version": "12"},
                "user": {"login": "ada"}
            });
            t.http
                .post(t.url(v1::PATH_ENROLL))
                .header("x-forwarded-for", client)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Two clients behind the same proxy each have their own budget…
    assert_eq!(enroll_from("198.51.100.1", "m1").await, StatusCode::CREATED);
    assert_eq!(enroll_from("198.51.100.2", "m2").await, StatusCode::CREATED);
    // …and a client cannot escape its own by claiming another address left of it.
    assert_eq!(
        enroll_from("203.0.113.9, 198.51.100.1", "m3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    use tandem_server::api;
    let t = TestServer::start(Backend::Sqlite).await;
    let response = t.http.get(t.url(api::PATH_OPENAPI)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        (v1::PATH_ENROLL, "post"),
        (v1::PATH_REPORTS, "post"),
        (v1::PATH_POLICY, "get"),
        (v1::PATH_IDENTITY, "get"),
        (v1::PATH_PHISHING, "post"),
        (v1::PATH_ADMIN_DEVICES, "get"),
        (api::PATH_ADMIN_DEVICE, "get"),
        (api::PATH_ADMIN_DEVICE_REVOKE, "post"),
        (api::PATH_ADMIN_GROUPS, "get"),
        (api::PATH_ADMIN_GROUPS, "post"),
        (v1::PATH_ADMIN_GROUP_POLICY, "get"),
        (v1::PATH_ADMIN_GROUP_POLICY, "put"),
        (api::PATH_ADMIN_POLICY_VERSIONS, "get"),
        (api::PATH_ADMIN_POLICY_VERSION, "get"),
        (api::PATH_ADMIN_POLICY_DIFF, "get"),
        (api::PATH_ADMIN_ENROLL_SECRETS, "get"),
        (api::PATH_ADMIN_ENROLL_SECRETS, "post"),
        (api::PATH_ADMIN_ENROLL_SECRET_EXPIRE, "post"),
        (api::PATH_ADMIN_AUDIT, "get"),
        (api::PATH_ADMIN_EXPORT_COMPLIANCE, "get"),
        (api::PATH_ADMIN_IDENTITIES, "get"),
        (api::PATH_ADMIN_IDENTITY_IMPORT, "post"),
        (api::PATH_ADMIN_IDENTITY_SOURCES, "get"),
        (api::PATH_ADMIN_IDENTITY_SOURCES, "post"),
        (api::PATH_ADMIN_IDENTITY_SOURCE, "put"),
        (api::PATH_ADMIN_IDENTITY_SOURCE, "delete"),
        (api::PATH_ADMIN_PHISHING, "get"),
        (api::PATH_ADMIN_PHISHING_MESSAGE, "get"),
        (v1::PATH_PHISHING, "get"),
        (v1::PATH_PHISHING_REPORT, "get"),
        (api::PATH_ADMIN_PHISHING_TRIAGE, "put"),
        (v1::PATH_UPDATE, "get"),
        (v1::PATH_UPDATE_ARTIFACT, "get"),
        (v1::PATH_ADMIN_RELEASES, "get"),
        (v1::PATH_ADMIN_RELEASES, "post"),
        (v1::PATH_ADMIN_GROUP_CHANNEL, "put"),
    ];
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        if path.starts_with("/api/v1/admin/") {
            assert_eq!(
                operation["security"][0]["api_token"],
                serde_json::json!([]),
                "{path}"
            );
        }
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "an undocumented or stale operation"
    );
    assert!(doc["components"]["schemas"]["DeviceDetail"].is_object());
}

/// A database that cannot keep up makes the server refuse reports with 503 and
/// `Retry-After` once its bounded queue is full, instead of buffering them; what it accepted
/// it stores once the database is free again. The "slow database" is a real lock: another
/// connection holds SQLite's write lock.
#[tokio::test]
async fn a_locked_database_back_pressures_reports_and_loses_none_it_accepted() {
    use sqlx::Connection as _;

    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let t = TestServer::start_with(Arc::clone(&db), |c| c.report_queue = 2).await;
    let device = t.enroll("default", "m1").await;
    let before = t.count("reports").await;

    let mut locker = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..6 {
        let http = t.http.clone();
        let url = t.url(v1::PATH_REPORTS);
        let token = device.device_token.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&sample_report("m1"))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            let _ = tx.send((response.status(), retry_after));
        });
    }
    drop(tx);
    // At most two wait in the queue and two in the writer's batch: at least two of six are
    // turned away while the lock is held.
    let mut statuses = Vec::new();
    while statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .count()
        < 2
    {
        statuses.push(rx.recv().await.unwrap());
    }
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    while let Some(s) = rx.recv().await {
        statuses.push(s);
    }
    assert_eq!(statuses.len(), 6);
    for (status, retry_after) in &statuses {
        match *status {
            StatusCode::ACCEPTED => {}
            StatusCode::SERVICE_UNAVAILABLE => assert!(retry_after.is_some()),
            other => panic!("unexpected {other}"),
        }
    }
    let accepted = statuses
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    assert!(accepted >= 1, "{statuses:?}");
    assert_eq!(
        t.count("reports").await - before,
        i64::try_from(accepted).unwrap(),
        "every accepted report stored, no refused one"
    );
}
