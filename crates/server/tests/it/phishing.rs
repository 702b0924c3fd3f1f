//! Phishing reports from agents (an `.eml` upload or a URL), IT's inbox, and the webhooks
//! that tell IT's systems: signed, retried, generic or Slack-shaped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use axum::Router;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tandem_proto::v1;
use tandem_proto::Status;
use tandem_server::store::PhishingReportInfo;
use tandem_server::webhooks::{signature, RetryPolicy, WebhookConfig};
use tandem_server::Role;
use tokio::sync::{mpsc, Mutex};

use crate::support::{problem, sample_report, Backend, TestDb, TestServer};

on_both_backends!(
    a_message_or_a_url_is_stored_and_listed_with_a_tracking_id,
    bad_phishing_reports_are_refused_and_store_nothing,
    webhooks_are_signed_retried_and_shaped_per_receiver,
    a_device_past_its_deadline_is_announced_once,
    the_reporter_reads_its_own_reports_triage_and_no_one_elses,
);

const EML: &str = "From: \"Bank\" <alerts@bank.example>\r\nTo: ada@example.test\r\n\
    Subject: Urgent: verify your account\r\nContent-Type: text/plain\r\n\r\n\
    Click <a href=\"https://evil.example\">here</a>\r\n";

async fn upload(t: &TestServer, token: &str, form: Form) -> reqwest::Response {
    t.http
        .post(t.url(v1::PATH_PHISHING))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn a_message_or_a_url_is_stored_and_listed_with_a_tracking_id(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let viewer = t.api_token(Role::Viewer).await;

    let form = Form::new()
        .part(
            "message",
            Part::bytes(EML.as_bytes().to_vec())
                .file_name("suspicious.eml")
                .mime_str("message/rfc822")
                .unwrap(),
        )
        .text("note", "Looks like our bank but isn't");
    let response = upload(&t, &device.device_token, form).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let ack: Value = response.json().await.unwrap();
    let tracking = ack["tracking_id"].as_str().unwrap().to_owned();
    assert!(tracking.starts_with("PH-"), "{tracking}");

    let response = t
        .http
        .post(t.url(v1::PATH_PHISHING))
        .bearer_auth(&device.device_token)
        .json(&json!({"url": "https://evil.example/login", "note": "sent by SMS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let inbox: Vec<PhishingReportInfo> = t
        .get_admin(&viewer, "/api/v1/admin/phishing-reports")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2);
    let (url_report, eml_report) = (&inbox[0], &inbox[1]);
    assert_eq!(
        url_report.url.as_deref(),
        Some("https://evil.example/login")
    );
    assert_eq!(url_report.message_bytes, None);
    assert_eq!(eml_report.tracking_id, tracking);
    assert_eq!(
        eml_report.subject.as_deref(),
        Some("Urgent: verify your account")
    );
    assert_eq!(eml_report.message_bytes, Some(EML.len() as i64));
    assert_eq!(
        (eml_report.hostname.as_str(), eml_report.user_login.as_str()),
        ("host-m1", "ada")
    );

    let response = t
        .get_admin(
            &viewer,
            &format!("/api/v1/admin/phishing-reports/{}/message", eml_report.id),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "message/rfc822");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.bytes().await.unwrap(), EML.as_bytes());
    problem(
        t.get_admin(
            &viewer,
            &format!("/api/v1/admin/phishing-reports/{}/message", url_report.id),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn bad_phishing_reports_are_refused_and_store_nothing(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("default", "m1").await;
    let token = device.device_token.as_str();
    let json_report = |body: Value| {
        t.http
            .post(t.url(v1::PATH_PHISHING))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    for body in [
        json!({"url": "javascript:alert(1)"}),
        json!({"url": format!("https://x.example/{}", "a".repeat(3000))}),
        json!({"url": "https://x.example", "note": "n".repeat(5000)}),
        json!({"url": "https://x.example", "colour": "red"}),
        json!({"note": "no url"}),
    ] {
        problem(
            json_report(body).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    problem(
        upload(&t, token, Form::new().text("note", "nothing attached")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        upload(&t, token, Form::new().text("message", "").text("note", "x")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        upload(
            &t,
            token,
            Form::new().text("message", EML).text("evil", "x"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let huge = Form::new().part("message", Part::bytes(vec![b'x'; 11 * 1024 * 1024]));
    problem(upload(&t, token, huge).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    let anonymous = t
        .http
        .post(t.url(v1::PATH_PHISHING))
        .json(&json!({"url": "https://x.example"}))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED).await;
    let wrong_type = t
        .http
        .post(t.url(v1::PATH_PHISHING))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body("https://x.example")
        .send()
        .await
        .unwrap();
    problem(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(t.count("phishing_reports").await, 0);
}

/// What a receiver saw: headers and body of each request.
type Seen = mpsc::UnboundedSender<(HeaderMap, String)>;

/// A receiver that fails its first `failures` requests with 503, then answers 200.
async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<(HeaderMap, String)>) {
    async fn hook(
        State((seen, left)): State<(Seen, Arc<Mutex<usize>>)>,
        headers: HeaderMap,
        body: String,
    ) -> AxumStatus {
        let _ = seen.send((headers, body));
        let mut left = left.lock().await;
        if *left > 0 {
            *left -= 1;
            AxumStatus::SERVICE_UNAVAILABLE
        } else {
            AxumStatus::OK
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/hook", post(hook))
        .with_state((tx, Arc::new(Mutex::new(failures))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(HeaderMap, String)>) -> (HeaderMap, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no webhook arrived")
        .unwrap()
}

fn verify_signature(headers: &HeaderMap, body: &str, secret: &str) {
    let timestamp: i64 = headers["x-tandem-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-tandem-signature"].to_str().unwrap(),
        signature(secret, timestamp, body.as_bytes())
    );
}

async fn webhooks_are_signed_retried_and_shaped_per_receiver(backend: Backend) {
    let (generic_url, mut generic) = receiver(1).await;
    let (slack_url, mut slack) = receiver(0).await;
    let hooks: Vec<WebhookConfig> = serde_json::from_value(json!([
        {"url": generic_url, "secret": "generic-secret"},
        {"url": slack_url, "format": "slack", "secret": "slack-secret", "events": ["phishing_reported"]},
    ]))
    .unwrap();
    let db = Arc::new(TestDb::new(backend).await);
    let t = TestServer::start_with(db, |c| {
        c.webhooks = hooks;
        c.webhook_retry = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
    })
    .await;
    let device = t.enroll("default", "m1").await;
    let response = t
        .http
        .post(t.url(v1::PATH_PHISHING))
        .bearer_auth(&device.device_token)
        .json(&json!({"url": "https://<!channel>.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let tracking = response.json::<Value>().await.unwrap()["tracking_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The generic receiver failed once: the same delivery comes again, signed again.
    let (first_headers, first_body) = next(&mut generic).await;
    let (headers, body) = next(&mut generic).await;
    assert_eq!(first_body, body);
    assert_eq!(
        first_headers["x-tandem-delivery"],
        headers["x-tandem-delivery"]
    );
    verify_signature(&headers, &body, "generic-secret");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["event"], "phishing_reported");
    assert_eq!(body["data"]["tracking_id"], tracking.as_str());
    assert_eq!(body["data"]["device_id"], json!(device.device_id));

    let (headers, body) = next(&mut slack).await;
    verify_signature(&headers, &body, "slack-secret");
    let text = serde_json::from_str::<Value>(&body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains(&tracking), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");

    // A device whose last failing check passes is "fixed" (for the generic hook only).
    let mut failing = sample_report("m1");
    failing.results[1].status = Status::Fail;
    assert_eq!(
        t.post_report(&device.device_token, &failing).await.status(),
        StatusCode::ACCEPTED
    );
    let mut fixed = sample_report("m1");
    for r in &mut fixed.results {
        r.status = Status::Pass;
    }
    assert_eq!(
        t.post_report(&device.device_token, &fixed).await.status(),
        StatusCode::ACCEPTED
    );
    let (headers, body) = next(&mut generic).await;
    verify_signature(&headers, &body, "generic-secret");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["event"], "device_fixed");
    assert_eq!(body["data"]["hostname"], "host-m1");
    assert!(
        slack.try_recv().is_err(),
        "the Slack hook did not ask for device_fixed"
    );
}

async fn a_device_past_its_deadline_is_announced_once(backend: Backend) {
    let (url, mut hook) = receiver(0).await;
    let hooks: Vec<WebhookConfig> = serde_json::from_value(json!([
        {"url": url, "secret": "s", "events": ["device_overdue"]},
    ]))
    .unwrap();
    let db = Arc::new(TestDb::new(backend).await);
    let replica_hooks = hooks.clone();
    let t = TestServer::start_with(db, |c| c.webhooks = hooks).await;
    let device = t.enroll("default", "m1").await;
    // `os_updates` fails in the sample report.
    assert_eq!(
        t.post_report(&device.device_token, &sample_report("m1"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        t.app().refresh_compliance().await.unwrap(),
        0,
        "not due yet"
    );

    let grace = tandem_proto::Policy::default()
        .checks
        .common(tandem_proto::CheckId::OsUpdates)
        .grace_days;
    t.clock
        .advance(chrono::Duration::days(i64::from(grace)) + chrono::Duration::hours(12));
    assert_eq!(t.app().refresh_compliance().await.unwrap(), 1);
    let (headers, body) = next(&mut hook).await;
    verify_signature(&headers, &body, "s");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["event"], "device_overdue");
    assert_eq!(body["data"]["hostname"], "host-m1");
    assert_eq!(body["data"]["checks"][0]["check"], "os_updates");

    // The next refresh, on this replica or another, does not announce it again.
    assert_eq!(t.app().refresh_compliance().await.unwrap(), 0);
    let again = TestServer::start_with(Arc::clone(&t.db), |c| c.webhooks = replica_hooks).await;
    again
        .clock
        .advance(chrono::Duration::days(i64::from(grace)) + chrono::Duration::hours(13));
    assert_eq!(again.app().refresh_compliance().await.unwrap(), 0);
}

/// Issues 6 and 7: the reporter's agent reads IT's verdict and reply on its own reports, and
/// another device's tracking id is as unknown to it as a made-up one.
async fn the_reporter_reads_its_own_reports_triage_and_no_one_elses(backend: Backend) {
    let t = TestServer::start(backend).await;
    let a = t.enroll("default", "m1").await;
    let b = t.enroll("default", "m2").await;
    let admin = t.api_token(Role::Admin).await;
    let viewer = t.api_token(Role::Viewer).await;
    let get = |token: &str, path: String| t.http.get(t.url(&path)).bearer_auth(token).send();
    let one = |id: &str| v1::PATH_PHISHING_REPORT.replace("{tracking_id}", id);

    let response = upload(
        &t,
        &a.device_token,
        Form::new().part("message", Part::bytes(EML.as_bytes().to_vec())),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let ack: v1::PhishingAck = response.json().await.unwrap();

    let mine: Vec<v1::PhishingReportStatus> = get(&a.device_token, v1::PATH_PHISHING.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let untouched = v1::PhishingReportStatus {
        tracking_id: ack.tracking_id.clone(),
        // Stored to the microsecond.
        received_at: mine[0].received_at,
        status: v1::TriageStatus::New,
        reply: None,
        updated_at: None,
    };
    assert_eq!(mine, vec![untouched.clone()]);
    assert!(
        (mine[0].received_at - ack.received_at)
            .num_milliseconds()
            .abs()
            < 1
    );

    // Device B neither lists nor reads A's report; an unknown id looks the same.
    let theirs: Vec<v1::PhishingReportStatus> = get(&b.device_token, v1::PATH_PHISHING.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(theirs.is_empty());
    let denied = problem(
        get(&b.device_token, one(&ack.tracking_id)).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let unknown = problem(
        get(&a.device_token, one("PH-00000000")).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(denied["detail"], unknown["detail"]);
    problem(
        t.http
            .get(t.url(&one(&ack.tracking_id)))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // IT triages it through the admin API: admins only, known statuses, bounded replies.
    let inbox: Vec<PhishingReportInfo> = t
        .get_admin(&viewer, "/api/v1/admin/phishing-reports")
        .await
        .json()
        .await
        .unwrap();
    let triage_path =
        |id: String| tandem_server::api::PATH_ADMIN_PHISHING_TRIAGE.replace("{id}", &id);
    let put = |token: &str, path: String, body: Value| {
        t.http
            .put(t.url(&path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let path = triage_path(inbox[0].id.to_string());
    let reply = "Thanks — confirmed phishing. <b>Delete it</b>";
    problem(
        put(&viewer, path.clone(), json!({"status": "phishing"}))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        put(&admin, path.clone(), json!({"status": "evil"}))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put(
            &admin,
            path.clone(),
            json!({"status": "spam", "reply": "r".repeat(2001)}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put(
            &admin,
            triage_path(uuid::Uuid::now_v7().to_string()),
            json!({"status": "safe"}),
        )
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        get(&a.device_token, v1::PATH_PHISHING.into())
            .await
            .unwrap()
            .json::<Vec<v1::PhishingReportStatus>>()
            .await
            .unwrap(),
        vec![untouched]
    );
    let response = put(&admin, path, json!({"status": "phishing", "reply": reply}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let seen: v1::PhishingReportStatus = get(&a.device_token, one(&ack.tracking_id))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.status, v1::TriageStatus::Phishing);
    assert!(seen.status.is_final());
    assert_eq!(seen.reply.as_deref(), Some(reply));
    assert!(seen.updated_at.is_some());
    problem(
        get(&b.device_token, one(&ack.tracking_id)).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let audit: Vec<Value> = t
        .get_admin(&viewer, "/api/v1/admin/audit")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "phishing_report.triage"),
        "{audit:?}"
    );
}
