//! The agent API: enrolment, reports, the policy long-poll, identity, bad input.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tandem_proto::v1::{self, problem, EnrollResponse, IdentityFacts, ReportAck, SignedPolicy};
use tandem_server::{EnrollSecretOptions, Role};

use crate::support::{problem, sample_report, verify, Backend, TestServer};

on_both_backends!(
    enrolment_with_a_good_secret_returns_a_token_and_the_signing_key,
    enrolment_with_a_bad_expired_or_used_up_secret_is_refused,
    re_enrolling_a_machine_keeps_its_id_and_retires_the_old_token,
    a_report_is_stored_once_and_a_replay_answers_200,
    the_raw_report_is_kept_verbatim,
    unknown_tokens_are_told_to_enrol_again,
    malformed_wrong_and_absurd_input_gets_a_problem_and_writes_nothing,
    the_built_in_policy_is_served_signed_until_a_group_has_one,
    a_long_poll_times_out_with_304_when_nothing_changes,
    a_policy_put_wakes_a_parked_long_poll_at_once,
    a_device_without_a_group_policy_follows_the_default_group,
    identity_is_empty_until_a_source_knows_the_user,
    health_and_readiness,
    shutdown_releases_parked_long_polls,
);

async fn enrolment_with_a_good_secret_returns_a_token_and_the_signing_key(backend: Backend) {
    let t = TestServer::start(backend).await;
    let secret = t.enroll_secret("default").await;
    let response = t.post_enroll(&secret, "m1").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let enrolled: EnrollResponse = response.json().await.unwrap();
    assert_eq!(
        enrolled.device_token.len(),
        43,
        "256 bits, base64url without padding"
    );
    assert_eq!(enrolled.policy_signing_key, t.app().policy_signing_key());
    assert_eq!(enrolled.device_id.get_version_num(), 7);
    // Only a hash of the token is stored.
    let hashes: Vec<Vec<u8>> = t.db.column("SELECT token_hash FROM device_tokens").await;
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], enrolled.device_token.as_bytes());
}

async fn enrolment_with_a_bad_expired_or_used_up_secret_is_refused(backend: Backend) {
    let t = TestServer::start(backend).await;
    let body = problem(
        t.post_enroll("not-a-secret", "m1").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["type"], problem::BAD_ENROLL_SECRET);

    let once = t
        .app()
        .create_enroll_secret(&EnrollSecretOptions {
            max_uses: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        t.post_enroll(&once, "m1").await.status(),
        StatusCode::CREATED
    );
    let body = problem(t.post_enroll(&once, "m2").await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], problem::BAD_ENROLL_SECRET);

    let options = EnrollSecretOptions {
        expires_in: Some(chrono::Duration::days(1)),
        ..Default::default()
    };
    let expiring = t.app().create_enroll_secret(&options).await.unwrap();
    t.clock.advance(chrono::Duration::days(2));
    let body = problem(
        t.post_enroll(&expiring, "m3").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["type"], problem::BAD_ENROLL_SECRET);
    assert_eq!(t.count("devices").await, 1);
}

async fn re_enrolling_a_machine_keeps_its_id_and_retires_the_old_token(backend: Backend) {
    let t = TestServer::start(backend).await;
    let first = t.enroll("default", "same-machine").await;
    // Used once, so that the server's token cache knows it when the machine re-enrols.
    let used = t.get_policy(&first.device_token, None, 0).await;
    assert_eq!(used.status(), StatusCode::OK);
    let second = t.enroll("eng", "same-machine").await;
    assert_eq!(first.device_id, second.device_id);
    assert_eq!(t.count("devices").await, 1);

    let old = t.get_policy(&first.device_token, None, 0).await;
    let body = problem(old, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], problem::ENROLL_AGAIN);
    let new = t.get_policy(&second.device_token, None, 0).await;
    assert_eq!(new.status(), StatusCode::OK);
}

async fn a_report_is_stored_once_and_a_replay_answers_200(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let report = sample_report("m1");

    let first = t.post_report(&device.device_token, &report).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let ack: ReportAck = first.json().await.unwrap();
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack.policy_etag, current.etag);

    let replay = t.post_report(&device.device_token, &report).await;
    assert_eq!(replay.status(), StatusCode::OK);
    let replay_ack: ReportAck = replay.json().await.unwrap();
    assert_eq!(replay_ack, ack);

    assert_eq!(t.count("reports").await, 1);
    assert_eq!(t.count("latest_results").await, 2);
    assert_eq!(t.count("events").await, 1);

    // A second, newer report replaces the latest results rather than adding to them.
    let next = sample_report("m1");
    assert_eq!(
        t.post_report(&device.device_token, &next).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(t.count("reports").await, 2);
    assert_eq!(t.count("latest_results").await, 2);
    assert_eq!(t.count("events").await, 2);
}

async fn the_raw_report_is_kept_verbatim(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let text = serde_json::to_string_pretty(&sample_report("m1")).unwrap();
    let response = t
        .http
        .post(t.url(v1::PATH_REPORTS))
        .bearer_auth(&device.device_token)
        .header("content-type", "application/json")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // Byte for byte through every reader: the admin API's last report and the console's
    // history (SQLite keeps the body compressed, PostgreSQL as text).
    let viewer = t.api_token(Role::Viewer).await;
    let path = format!("/api/v1/admin/devices/{}", device.device_id);
    let detail: Value = t.get_admin(&viewer, &path).await.json().await.unwrap();
    assert_eq!(detail["last_report"], json!(text));
    let bodies = t
        .app()
        .store()
        .device_report_bodies(device.device_id, 10)
        .await
        .unwrap();
    let bodies: Vec<&str> = bodies.iter().map(|b| b.body.as_str()).collect();
    assert_eq!(bodies, [text.as_str()]);
    if matches!(backend, Backend::Sqlite) {
        let kinds: Vec<String> = t.db.column("SELECT typeof(body) FROM reports").await;
        assert_eq!(kinds, ["blob"]);
        let sizes: Vec<i64> = t.db.column("SELECT length(body) FROM reports").await;
        assert!(
            sizes[0] < text.len() as i64 / 2,
            "{sizes:?} of {}",
            text.len()
        );
    }
}

async fn unknown_tokens_are_told_to_enrol_again(backend: Backend) {
    let t = TestServer::start(backend).await;
    let report = sample_report("m1");
    let body = problem(
        t.post_report("made-up", &report).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["type"], problem::ENROLL_AGAIN);
    let body = problem(
        t.get_policy("made-up", None, 0).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["type"], problem::ENROLL_AGAIN);

    // No token at all is a plain 401: there is nothing to enrol again from.
    let response = t.http.get(t.url(v1::PATH_POLICY)).send().await.unwrap();
    let body = problem(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["type"], problem::UNAUTHORIZED);
    assert_eq!(t.count("reports").await, 0);
}

async fn malformed_wrong_and_absurd_input_gets_a_problem_and_writes_nothing(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let post = |body: String| {
        t.http
            .post(t.url(v1::PATH_REPORTS))
            .bearer_auth(&device.device_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let body = problem(
        post("{not json".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["type"], problem::INVALID_REQUEST);

    let wrong_type = json!({"report_id": 5, "agent_version": "x"}).to_string();
    problem(
        post(wrong_type).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let mut report = serde_json::to_value(sample_report("m1")).unwrap();
    report["inventory"]["hostname"] = Value::String("h".repeat(10_000));
    let body = problem(
        post(report.to_string()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("hostname"));

    let mut report = serde_json::to_value(sample_report("m1")).unwrap();
    report["sent_at"] = json!("9999-01-01T00:00:00Z");
    problem(
        post(report.to_string()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let mut report = serde_json::to_value(sample_report("m1")).unwrap();
    report["results"][1]["duration_ms"] = json!(-1);
    problem(
        post(report.to_string()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    problem(post(huge).await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE).await;

    let response = t
        .http
        .post(t.url(v1::PATH_ENROLL))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let response = t
        .http
        .get(format!("{}?wait=soon", t.url(v1::PATH_POLICY)))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST).await;

    assert_eq!(t.count("reports").await, 0);
    assert_eq!(t.count("latest_results").await, 0);
    assert_eq!(t.count("events").await, 0);
}

async fn the_built_in_policy_is_served_signed_until_a_group_has_one(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let response = t.get_policy(&device.device_token, None, 0).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag_header = response.headers()["etag"].to_str().unwrap().to_owned();
    let signed: SignedPolicy = response.json().await.unwrap();
    assert_eq!(etag_header, format!("\"{}\"", signed.etag));
    assert_eq!((signed.version, signed.group.as_str()), (0, "default"));
    verify(&signed, &device.policy_signing_key);
    let parsed = tandem_proto::Policy::parse_strict(&signed.policy).unwrap();
    assert_eq!(parsed, tandem_proto::Policy::default());
}

async fn a_long_poll_times_out_with_304_when_nothing_changes(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();

    // Without `wait` the answer is immediate.
    let response = t
        .get_policy(&device.device_token, Some(&current.etag), 0)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    let started = Instant::now();
    let response = t
        .get_policy(&device.device_token, Some(&current.etag), 1)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", current.etag)
    );
}

async fn a_policy_put_wakes_a_parked_long_poll_at_once(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("eng", "m1").await;
    let admin = t.api_token(Role::Admin).await;
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();

    let poll = t
        .park_policy_poll(&device.device_token, &current.etag, 60)
        .await;

    let pushed_at = Instant::now();
    let new_policy = json!({"org": {"name": "Acme"}, "intervals": {"report_minutes": 5}});
    let put = t.put_policy(&admin, "eng", &new_policy).await;
    assert_eq!(put.status(), StatusCode::OK);
    let version: v1::PolicyVersion = put.json().await.unwrap();
    assert_eq!((version.group.as_str(), version.version), ("eng", 1));

    let (answered_at, response) = poll.await.unwrap();
    let latency = answered_at - pushed_at;
    eprintln!("{backend:?}: a policy PUT answered a parked long-poll in {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "the long-poll took {latency:?} to wake"
    );
    assert_eq!(response.status(), StatusCode::OK);
    let signed: SignedPolicy = response.json().await.unwrap();
    assert_eq!((signed.group.as_str(), signed.version), ("eng", 1));
    assert_eq!(signed.etag, version.etag);
    assert_eq!(signed.policy, new_policy);
    verify(&signed, &device.policy_signing_key);
}

async fn a_device_without_a_group_policy_follows_the_default_group(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("eng", "m1").await;
    let admin = t.api_token(Role::Admin).await;
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();

    let poll = t
        .park_policy_poll(&device.device_token, &current.etag, 60)
        .await;
    let put = t
        .put_policy(&admin, "default", &json!({"org": {"name": "Everyone"}}))
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let signed: SignedPolicy = poll.await.unwrap().1.json().await.unwrap();
    assert_eq!((signed.group.as_str(), signed.version), ("default", 1));
    verify(&signed, &device.policy_signing_key);
}

async fn identity_is_empty_until_a_source_knows_the_user(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let response = t
        .http
        .get(t.url(v1::PATH_IDENTITY))
        .bearer_auth(&device.device_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let facts: IdentityFacts = response.json().await.unwrap();
    assert_eq!(facts, IdentityFacts::default());
}

async fn health_and_readiness(backend: Backend) {
    let t = TestServer::start(backend).await;
    let health = t.http.get(t.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (health.status(), health.text().await.unwrap().as_str()),
        (StatusCode::OK, "ok")
    );
    let ready = t.http.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    problem(
        t.http.get(t.url("/nowhere")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn shutdown_releases_parked_long_polls(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();
    let poll = t
        .park_policy_poll(&device.device_token, &current.etag, 300)
        .await;
    let started = Instant::now();
    t.server.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(poll.await.unwrap().1.status(), StatusCode::NOT_MODIFIED);
}
