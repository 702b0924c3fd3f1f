//! Identity sources and webhooks configured in the console (issue 7): the store's records
//! and poll leases, the forms (validation, write-only secrets, audit, roles), "Test
//! connection" against a local Okta, "Send test" to a local receiver checked by its HMAC,
//! and the server picking up changes without a restart. Each runs on both backends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde_json::json;
use tandem_server::identity::sources;
use tandem_server::store::integrations::{action, StoredSourceConfig, StoredWebhook};
use tandem_server::store::{self, AuditQuery, ChangeBy, StoreOptions};
use tandem_server::Role;
use uuid::Uuid;

use crate::console::signed_in;
use crate::identity::okta_server;
use crate::support::{Backend, TestDb, TestServer};

on_both_backends!(
    records_are_audited_with_secrets_redacted_and_one_claim_wins,
    the_poller_picks_up_a_console_source_without_a_restart,
    an_okta_source_is_created_tested_edited_and_deleted_in_the_console,
    bad_source_forms_are_refused_and_store_nothing,
    a_console_webhook_is_signed_tested_and_used_without_a_restart,
    the_admin_api_manages_stored_sources_too,
);

fn by(actor: &str) -> ChangeBy {
    ChangeBy {
        actor: actor.into(),
        at: chrono::Utc::now(),
    }
}

fn okta_record(name: &str, base_url: &str, token: &str) -> StoredSourceConfig {
    StoredSourceConfig {
        name: name.into(),
        kind: "okta".into(),
        config: json!({"name": name, "kind": "okta", "interval_minutes": 60,
            "base_url": base_url, "api_token": token, "search": "status eq \"ACTIVE\""}),
        updated_at: chrono::Utc::now(),
        updated_by: "test".into(),
    }
}

async fn records_are_audited_with_secrets_redacted_and_one_claim_wins(backend: Backend) {
    let db = TestDb::new(backend).await;
    let options = StoreOptions {
        max_connections: 8,
        ..Default::default()
    };
    let a = store::open(db.url(), &options).await.unwrap();
    // A second store on the same database: a second replica.
    let b = store::open(db.url(), &options).await.unwrap();

    let record = okta_record("okta", "https://acme.okta.com", "hunter2-token");
    assert!(a
        .create_source_config(&record, &by("admin:ada"))
        .await
        .unwrap());
    assert!(!b
        .create_source_config(&record, &by("admin:ada"))
        .await
        .unwrap());
    let mut changed = record.clone();
    changed.config["api_token"] = json!("new-token-42");
    assert!(b
        .update_source_config(&changed, &by("admin:ada"))
        .await
        .unwrap());
    let listed = a.list_source_configs().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].config["api_token"], "new-token-42");

    let hook = StoredWebhook {
        id: Uuid::now_v7(),
        name: "siem".into(),
        config: json!({"url": "https://siem.example/in", "format": "slack",
            "secret": "hook-secret-77", "events": ["device_fixed"]}),
        updated_at: chrono::Utc::now(),
        updated_by: "test".into(),
    };
    assert!(a
        .create_webhook_config(&hook, &by("admin:ada"))
        .await
        .unwrap());
    let twin = StoredWebhook {
        id: Uuid::now_v7(),
        ..hook.clone()
    };
    assert!(!a
        .create_webhook_config(&twin, &by("admin:ada"))
        .await
        .unwrap());
    let mut edited = hook.clone();
    edited.config["format"] = json!("generic");
    assert!(a
        .update_webhook_config(&edited, &by("admin:ada"))
        .await
        .unwrap());
    assert_eq!(
        b.list_webhook_configs().await.unwrap()[0].config["format"],
        "generic"
    );
    assert!(a
        .delete_webhook_config(hook.id, &by("admin:ada"))
        .await
        .unwrap());
    assert!(!a
        .delete_webhook_config(hook.id, &by("admin:ada"))
        .await
        .unwrap());
    assert!(a.list_webhook_configs().await.unwrap().is_empty());

    // One replica wins each due poll, however many ask at once.
    let now = chrono::Utc::now();
    let next = now + chrono::Duration::minutes(60);
    let mut claims = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        claims.push(tokio::spawn(async move {
            s.claim_source_poll("okta", "okta", now, next)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one claim wins");
    assert!(!a
        .claim_source_poll("okta", "okta", now + chrono::Duration::minutes(59), next)
        .await
        .unwrap());
    assert!(b
        .claim_source_poll("okta", "okta", next, next + chrono::Duration::minutes(60))
        .await
        .unwrap());
    // Changing a source makes it due at once.
    assert!(a
        .update_source_config(&changed, &by("admin:ada"))
        .await
        .unwrap());
    assert!(a
        .claim_source_poll("okta", "okta", now, next)
        .await
        .unwrap());

    assert!(a
        .delete_source_config("okta", &by("admin:ada"))
        .await
        .unwrap());
    assert!(!a
        .delete_source_config("okta", &by("admin:ada"))
        .await
        .unwrap());
    assert!(a.list_source_configs().await.unwrap().is_empty());
    assert!(a.list_source_health().await.unwrap().is_empty());

    let audit = a
        .list_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        action::SOURCE_CREATE,
        action::SOURCE_UPDATE,
        action::SOURCE_DELETE,
        action::WEBHOOK_CREATE,
        action::WEBHOOK_UPDATE,
        action::WEBHOOK_DELETE,
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let text = serde_json::to_string(&audit).unwrap();
    for secret in ["hunter2-token", "new-token-42", "hook-secret-77"] {
        assert!(!text.contains(secret), "{secret} leaked into the audit log");
    }
    let update = audit
        .iter()
        .find(|e| e.action == action::SOURCE_UPDATE)
        .unwrap();
    assert_eq!(update.actor, "admin:ada");
    assert_eq!(update.before.as_ref().unwrap()["api_token"], "<redacted>");
    assert_eq!(
        update.after.as_ref().unwrap()["base_url"],
        "https://acme.okta.com"
    );
}

async fn the_poller_picks_up_a_console_source_without_a_restart(backend: Backend) {
    let okta = okta_server().await;
    let db = TestDb::new(backend).await;
    let store = store::open(db.url(), &StoreOptions::default())
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    // Two replicas' pollers, looking often, on one database.
    for _ in 0..2 {
        drop(sources::spawn_pollers(
            &[],
            Arc::clone(&store),
            Arc::new(tandem_server::SystemClock),
            Duration::from_millis(20),
            shutdown.clone(),
            tandem_server::secrets::SecretsKey::generate(),
        ));
    }
    // Added while they run: the next tick finds it.
    let record = okta_record("okta-live", &okta, "okta-token");
    assert!(store
        .create_source_config(&record, &by("admin:ada"))
        .await
        .unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        let health = store.list_source_health().await.unwrap();
        if let Some(h) = health.iter().find(|h| h.users.is_some()) {
            break h.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never polled: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(health.name, "okta-live");
    assert_eq!(health.users, Some(2));
    assert_eq!(health.last_error, None);
    let facts = store.list_identities(None, 10, 0).await.unwrap();
    assert_eq!(facts.len(), 2);
    assert!(facts.iter().all(|f| f.source == "okta-live"));
}

async fn an_okta_source_is_created_tested_edited_and_deleted_in_the_console(backend: Backend) {
    let okta = okta_server().await;
    let server = TestServer::start(backend).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let csrf = admin.csrf("/console/identity").await;

    let form = admin
        .get("/console/identity/new?kind=okta")
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains("name=\"api_token\""), "{form}");
    let created = admin
        .post(
            "/console/identity/sources",
            &[
                ("csrf", &csrf),
                ("kind", "okta"),
                ("name", "okta-main"),
                ("interval_minutes", "30"),
                ("base_url", &okta),
                ("api_token", "okta-token"),
                ("search", "status eq \"ACTIVE\""),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let page = admin.get("/console/identity").await.text().await.unwrap();
    assert!(page.contains("okta-main"), "{page}");
    assert!(!page.contains("okta-token"));

    // "Test connection" runs one poll and shows what came back.
    let tested = admin
        .post(
            "/console/identity/poll",
            &[("csrf", &csrf), ("name", "okta-main")],
        )
        .await;
    assert_eq!(tested.status(), StatusCode::OK);
    let text = tested.text().await.unwrap();
    assert!(
        text.contains("okta-main answered: 2 users synced."),
        "{text}"
    );

    // The secret is write-only: the edit page says it is set and never shows it.
    let edit = admin
        .get("/console/identity/sources/okta-main")
        .await
        .text()
        .await
        .unwrap();
    assert!(edit.contains("set — leave blank to keep"), "{edit}");
    assert!(!edit.contains("okta-token"));
    // Saving with the secret left blank keeps it: the next test still authenticates.
    let saved = admin
        .post(
            "/console/identity/sources/okta-main",
            &[
                ("csrf", &csrf),
                ("interval_minutes", "120"),
                ("base_url", &okta),
                ("api_token", ""),
                ("search", "status eq \"ACTIVE\""),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let stored = server.app().store().list_source_configs().await.unwrap();
    assert_eq!(stored[0].config["interval_minutes"], 120);
    // Kept, sealed (`secrets.rs`); the poll below proves it still opens to the token.
    assert!(stored[0].config["api_token"]
        .as_str()
        .unwrap()
        .starts_with("enc:v1:"));
    let again = admin
        .post(
            "/console/identity/poll",
            &[("csrf", &csrf), ("name", "okta-main")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(again.contains("2 users synced"), "{again}");
    // A wrong token shows the vendor's refusal.
    admin
        .post(
            "/console/identity/sources/okta-main",
            &[
                ("csrf", &csrf),
                ("interval_minutes", "120"),
                ("base_url", &okta),
                ("api_token", "wrong"),
                ("search", "status eq \"ACTIVE\""),
            ],
        )
        .await;
    let failed = admin
        .post(
            "/console/identity/poll",
            &[("csrf", &csrf), ("name", "okta-main")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        failed.contains("okta-main failed:") && failed.contains("401"),
        "{failed}"
    );

    // A viewer sees the form but cannot change anything.
    let mut viewer = signed_in(&server, "val", Role::Viewer).await;
    let vcsrf = viewer.csrf("/console/identity").await;
    let page = viewer
        .get("/console/identity/sources/okta-main")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("viewer role") && !page.contains("save-source"));
    let refused = viewer
        .post(
            "/console/identity/sources/okta-main/delete",
            &[("csrf", &vcsrf)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let deleted = admin
        .post(
            "/console/identity/sources/okta-main/delete",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(server
        .app()
        .store()
        .list_source_configs()
        .await
        .unwrap()
        .is_empty());
    let mine = audit_of(&**server.app().store(), "identity_source:okta-main").await;
    assert_eq!(mine.len(), 4, "create, two updates, delete");
    assert!(mine.iter().all(|e| e.actor == "admin:root"));
    let text = serde_json::to_string(&mine).unwrap();
    assert!(!text.contains("okta-token") && !text.contains("\"wrong\""));
}

async fn bad_source_forms_are_refused_and_store_nothing(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let server = TestServer::start_with(Arc::clone(&db), |c| {
        c.identity_sources = serde_json::from_value(json!([{"name": "from-file", "kind": "google",
            "access_token": "g", "base_url": "http://127.0.0.1:9"}]))
        .unwrap();
    })
    .await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let csrf = admin.csrf("/console/identity").await;
    let audit_before = server.count("audit_log").await;
    let good = [
        ("kind", "okta"),
        ("name", "okta"),
        ("interval_minutes", "60"),
        ("base_url", "https://acme.okta.com"),
        ("api_token", "t"),
        ("search", "status eq \"ACTIVE\""),
    ];
    let cases: &[(&str, &str, &str)] = &[
        ("base_url", "acme.okta.com", "not a valid URL"),
        ("base_url", "http://acme.okta.com", "http://"),
        ("base_url", "https://user:pw@acme.okta.com", "user name"),
        ("name", "", "name is empty"),
        ("name", "from-file", "is configured in the server"),
        ("name", "import", "reserved"),
        ("interval_minutes", "0", "interval"),
        ("interval_minutes", "525600000", "interval"),
        ("interval_minutes", "soon", "whole number"),
        ("api_token", "", "API token is required"),
    ];
    for (field, value, message) in cases {
        let mut form: Vec<(&str, &str)> =
            good.iter().filter(|(k, _)| k != field).copied().collect();
        form.push((field, value));
        form.push(("csrf", &csrf));
        let response = admin.post("/console/identity/sources", &form).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains(message), "{field}={value}: {page}");
    }
    assert!(server
        .app()
        .store()
        .list_source_configs()
        .await
        .unwrap()
        .is_empty());
    // A duplicate name: the first is stored, the second refused.
    let mut form = good.to_vec();
    form.push(("csrf", &csrf));
    assert_eq!(
        admin
            .post("/console/identity/sources", &form)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let twice = admin.post("/console/identity/sources", &form).await;
    assert_eq!(twice.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(twice.text().await.unwrap().contains("exists already"));
    assert_eq!(server.count("audit_log").await, audit_before + 1);
    // The file's source shows read-only, with no edit or delete.
    let page = admin.get("/console/identity").await.text().await.unwrap();
    assert!(page.contains("from file (read-only)"));
    assert!(!page.contains("/console/identity/sources/from-file"));
    assert_eq!(
        admin
            .get("/console/identity/sources/from-file")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// What a local receiver got: (headers, body) per request.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Received) {
    async fn hook(State(got): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
        got.lock().unwrap().push((headers, body));
        "ok"
    }
    let got: Received = Arc::default();
    let router = Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, got)
}

/// Checks the signature the way a receiver would, independently of the server's code.
fn assert_signed(headers: &HeaderMap, body: &[u8], secret: &str) {
    let timestamp = headers["x-tandem-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-tandem-signature"].to_str().unwrap(), expected);
}

async fn a_console_webhook_is_signed_tested_and_used_without_a_restart(backend: Backend) {
    let (url, got) = receiver().await;
    let server = TestServer::start(backend).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let csrf = admin.csrf("/console/webhooks").await;

    // Refused forms store nothing.
    for (form, message) in [
        (
            vec![("name", "siem"), ("url", "ftp://x/"), ("secret", "s")],
            "https://",
        ),
        (
            vec![
                ("name", "siem"),
                ("url", "http://siem.example/in"),
                ("secret", "s"),
            ],
            "http://",
        ),
        (
            vec![("name", "siem"), ("url", url.as_str())],
            "secret is required",
        ),
        (
            vec![("name", ""), ("url", url.as_str()), ("secret", "s")],
            "name is empty",
        ),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let response = admin.post("/console/webhooks", &form).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = response.text().await.unwrap();
        assert!(page.contains(message), "{message}: {page}");
    }
    assert!(server
        .app()
        .store()
        .list_webhook_configs()
        .await
        .unwrap()
        .is_empty());

    let created = admin
        .post(
            "/console/webhooks",
            &[
                ("csrf", &csrf),
                ("name", "siem"),
                ("format", "generic"),
                ("url", &url),
                ("secret", "receiver-secret"),
                ("events", "phishing_reported"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let page = admin.get("/console/webhooks").await.text().await.unwrap();
    assert!(
        !page.contains("receiver-secret") && !page.contains(&url),
        "{page}"
    );
    let id = server.app().store().list_webhook_configs().await.unwrap()[0].id;

    let tested = admin
        .post(&format!("/console/webhooks/{id}/test"), &[("csrf", &csrf)])
        .await
        .text()
        .await
        .unwrap();
    assert!(tested.contains("answered HTTP 200"), "{tested}");
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        assert_signed(headers, body, "receiver-secret");
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["event"], "test");
    }

    // The running server sends real events to the new hook: no restart.
    let enrolled = server.enroll("default", "m-hook").await;
    let phish = server
        .http
        .post(server.url(tandem_proto::v1::PATH_PHISHING))
        .bearer_auth(&enrolled.device_token)
        .json(&json!({"url": "https://evil.example/login", "note": "odd"}))
        .send()
        .await
        .unwrap();
    assert!(phish.status().is_success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no phishing event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let got = got.lock().unwrap();
        let (headers, body) = &got[1];
        assert_signed(headers, body, "receiver-secret");
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["event"], "phishing_reported");
    }

    // Edited with blank URL and secret: both kept; the new secret signs from then on.
    let edited = admin
        .post(
            &format!("/console/webhooks/{id}"),
            &[
                ("csrf", &csrf),
                ("format", "slack"),
                ("url", ""),
                ("secret", "rotated-secret"),
            ],
        )
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    admin
        .post(&format!("/console/webhooks/{id}/test"), &[("csrf", &csrf)])
        .await;
    {
        let got = got.lock().unwrap();
        let (headers, body) = got.last().unwrap();
        assert_signed(headers, body, "rotated-secret");
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("test delivery"));
    }

    // Deleted: no more events.
    let deleted = admin
        .post(
            &format!("/console/webhooks/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(server
        .app()
        .store()
        .list_webhook_configs()
        .await
        .unwrap()
        .is_empty());
    let mine = audit_of(&**server.app().store(), &format!("webhook:{id}")).await;
    assert_eq!(mine.len(), 3, "create, update, delete");
    let text = serde_json::to_string(&mine).unwrap();
    assert!(!text.contains("receiver-secret") && !text.contains("rotated-secret"));
}

async fn the_admin_api_manages_stored_sources_too(backend: Backend) {
    let okta = okta_server().await;
    let server = TestServer::start(backend).await;
    let admin = server.api_token(Role::Admin).await;
    let viewer = server.api_token(Role::Viewer).await;
    let url = server.url(tandem_server::api::PATH_ADMIN_IDENTITY_SOURCES);
    let one = |name: &str| server.url(&format!("/api/v1/admin/identity-sources/{name}"));
    let source = json!({"name": "okta-api", "kind": "okta", "interval_minutes": 15,
        "base_url": okta, "api_token": "okta-token"});

    let refused = server
        .http
        .post(&url)
        .bearer_auth(&viewer)
        .json(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let created = server
        .http
        .post(&url)
        .bearer_auth(&admin)
        .json(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["api_token"], "<redacted>");
    assert_eq!(body["search"], "status eq \"ACTIVE\"");
    let twice = server
        .http
        .post(&url)
        .bearer_auth(&admin)
        .json(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    let mut bad = source.clone();
    bad["name"] = json!("okta-bad");
    bad["base_url"] = json!("http://okta.example");
    let bad = server
        .http
        .post(&url)
        .bearer_auth(&admin)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Replaced without its token: the stored one stays and still works.
    let replaced = server
        .http
        .put(one("okta-api"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "okta", "interval_minutes": 45, "base_url": okta}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    let health = server.app().poll_identity_sources().await.unwrap();
    let h = health.iter().find(|h| h.name == "okta-api").unwrap();
    assert_eq!((h.users, h.last_error.clone()), (Some(2), None));
    let stored = server.app().store().list_source_configs().await.unwrap();
    assert_eq!(stored[0].config["interval_minutes"], 45);

    let gone = server
        .http
        .delete(one("okta-api"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let again = server
        .http
        .delete(one("okta-api"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

/// The newest audit entries (up to 100) about `target`.
async fn audit_of(store: &dyn store::Store, target: &str) -> Vec<store::AuditEntry> {
    store
        .list_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.target == target)
        .collect()
}
