//! Credentials at rest (issue 7): the secrets of console-configured identity sources and
//! webhooks are sealed with the server's key file, as read back with plain SQL; they open
//! again for polling; a ciphertext moved to another row is refused; a replica with another
//! key says so in the source's health and rewrites nothing; plaintext left by an older
//! server is sealed on start, once. Each runs on both backends.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tandem_server::store::integrations::{StoredSourceConfig, StoredWebhook};
use tandem_server::store::{self, ChangeBy, SourceHealth, StoreOptions};
use tandem_server::Role;
use tempfile::TempDir;
use uuid::Uuid;

use crate::console::signed_in;
use crate::identity::okta_server;
use crate::support::{Backend, TestDb, TestServer};

on_both_backends!(
    console_credentials_are_sealed_in_the_database_and_still_work,
    a_ciphertext_moved_to_another_row_is_refused,
    a_replica_with_another_key_reports_it_and_rewrites_nothing,
    plaintext_from_an_older_server_is_sealed_on_start_once,
    the_key_is_rotated_and_a_cut_short_rotation_finishes,
    the_cli_takes_the_key_file_and_rotates_it,
);

const HOOK_URL_SECRET: &str = "T000-B000-hook-path-secret";
const HOOK_SIGNING_SECRET: &str = "hook-signing-secret-93";

/// A key file of its own in a temporary directory.
fn key_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    (dir, path)
}

async fn start(db: &Arc<TestDb>, key: &std::path::Path) -> TestServer {
    let key = key.to_owned();
    TestServer::start_with(Arc::clone(db), move |c| c.secrets_key_file = Some(key)).await
}

async fn raw_sources(db: &TestDb) -> Vec<String> {
    db.column("SELECT config FROM identity_source_configs ORDER BY name")
        .await
}

async fn raw_hooks(db: &TestDb) -> Vec<String> {
    db.column("SELECT config FROM webhook_configs ORDER BY name")
        .await
}

fn health<'a>(all: &'a [SourceHealth], name: &str) -> &'a SourceHealth {
    all.iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no health for {name}: {all:?}"))
}

async fn create_okta_in_console(
    admin: &mut crate::console::Browser,
    name: &str,
    okta: &str,
    token: &str,
) {
    let csrf = admin.csrf("/console/identity").await;
    let created = admin
        .post(
            "/console/identity/sources",
            &[
                ("csrf", &csrf),
                ("kind", "okta"),
                ("name", name),
                ("interval_minutes", "30"),
                ("base_url", okta),
                ("api_token", token),
                ("search", "status eq \"ACTIVE\""),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "{name}");
}

async fn console_credentials_are_sealed_in_the_database_and_still_work(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    // SQLite: the default key file, next to the database. PostgreSQL: a file of the test's.
    let (_keys, key_path) = key_file();
    let server = match backend {
        Backend::Sqlite => {
            TestServer::start_with(Arc::clone(&db), |c| c.secrets_key_file = None).await
        }
        Backend::Postgres => start(&db, &key_path).await,
    };
    if backend == Backend::Sqlite {
        let db_file = PathBuf::from(db.url().trim_start_matches("sqlite://"));
        let key = db_file.parent().unwrap().join("secrets.key");
        let meta = std::fs::metadata(&key).expect("secrets.key next to the database");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert!(meta.len() > 32, "base64 of 32 bytes and a newline");
    }
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    create_okta_in_console(&mut admin, "okta-main", &okta, "okta-token").await;
    let csrf = admin.csrf("/console/webhooks").await;
    let hook_url = format!("http://127.0.0.1:9/services/{HOOK_URL_SECRET}");
    let created = admin
        .post(
            "/console/webhooks",
            &[
                ("csrf", &csrf),
                ("name", "siem"),
                ("format", "generic"),
                ("url", &hook_url),
                ("secret", HOOK_SIGNING_SECRET),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);

    // The database holds ciphertexts only, read with plain SQL.
    let sources = raw_sources(&db).await;
    assert_eq!(sources.len(), 1);
    assert!(!sources[0].contains("okta-token"), "{}", sources[0]);
    let stored: serde_json::Value = serde_json::from_str(&sources[0]).unwrap();
    assert!(stored["api_token"].as_str().unwrap().starts_with("enc:v1:"));
    // Only the secrets: the rest stays readable for support.
    assert_eq!(stored["base_url"], okta.as_str());
    let hooks = raw_hooks(&db).await;
    assert_eq!(hooks.len(), 1);
    for secret in [HOOK_URL_SECRET, HOOK_SIGNING_SECRET, "127.0.0.1:9"] {
        assert!(!hooks[0].contains(secret), "{secret} in {}", hooks[0]);
    }
    let audit: Vec<String> = db
        .column("SELECT COALESCE(CAST(after AS TEXT), '') FROM audit_log")
        .await;
    assert!(audit
        .iter()
        .all(|a| !a.contains("okta-token") && !a.contains(HOOK_SIGNING_SECRET)));

    // They open again: Okta accepts the token only as given, and the hook's target shows.
    let tested = admin
        .post(
            "/console/identity/poll",
            &[("csrf", &csrf), ("name", "okta-main")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        tested.contains("okta-main answered: 2 users synced."),
        "{tested}"
    );
    let page = admin.get("/console/webhooks").await.text().await.unwrap();
    assert!(page.contains("http://127.0.0.1:9/…"), "{page}");
    assert!(!page.contains(HOOK_URL_SECRET));
    // The edit form keeps a blank secret: the poll still works after an edit.
    let edited = admin
        .post(
            "/console/identity/sources/okta-main",
            &[
                ("csrf", &csrf),
                ("interval_minutes", "45"),
                ("base_url", &okta),
                ("api_token", ""),
                ("search", "status eq \"ACTIVE\""),
            ],
        )
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    assert!(!raw_sources(&db).await[0].contains("okta-token"));
    let polled = server.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-main").users, Some(2));
    assert_eq!(health(&polled, "okta-main").last_error, None);
}

async fn a_ciphertext_moved_to_another_row_is_refused(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    let (_keys, key_path) = key_file();
    let server = start(&db, &key_path).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    create_okta_in_console(&mut admin, "okta-a", &okta, "okta-token").await;
    create_okta_in_console(&mut admin, "okta-b", &okta, "wrong-token").await;
    // Someone with write access to the database copies a's sealed token into b's row,
    // hoping the server will send it with b's settings.
    let raw = raw_sources(&db).await;
    let a: serde_json::Value = serde_json::from_str(&raw[0]).unwrap();
    let mut b: serde_json::Value = serde_json::from_str(&raw[1]).unwrap();
    b["api_token"] = a["api_token"].clone();
    let moved: Vec<String> = db
        .column(&format!(
            "UPDATE identity_source_configs SET config = '{}' WHERE name = 'okta-b' RETURNING name",
            b.to_string().replace('\'', "''")
        ))
        .await;
    assert_eq!(moved, ["okta-b"]);

    let polled = server.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-a").users, Some(2));
    let b = health(&polled, "okta-b");
    assert_eq!(b.users, None);
    assert_eq!(
        b.last_error.as_deref(),
        Some("cannot decrypt credentials: the stored api_token does not belong to this record")
    );
}

async fn a_replica_with_another_key_reports_it_and_rewrites_nothing(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    let (_keys, key_a) = key_file();
    let (_other, key_b) = key_file();
    let a = start(&db, &key_a).await;
    let mut admin = signed_in(&a, "root", Role::Admin).await;
    create_okta_in_console(&mut admin, "okta-main", &okta, "okta-token").await;
    let sealed_before = raw_sources(&db).await;

    // A replica started with another key file.
    let b = start(&db, &key_b).await;
    let polled = b.app().poll_identity_sources().await.unwrap();
    assert_eq!(
        health(&polled, "okta-main").last_error.as_deref(),
        Some("cannot decrypt credentials: secrets key does not match")
    );
    // It keeps serving, and its console says what is wrong.
    let ready = b.http.get(b.url("/healthz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let mut other_admin = signed_in(&b, "rooty", Role::Admin).await;
    let page = other_admin
        .get("/console/identity")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("cannot decrypt credentials: secrets key does not match"),
        "{page}"
    );
    let edit = other_admin
        .get("/console/identity/sources/okta-main")
        .await
        .text()
        .await
        .unwrap();
    assert!(edit.contains("secrets key does not match"), "{edit}");
    assert_eq!(raw_sources(&db).await, sealed_before, "nothing rewritten");

    // A plaintext record (as an older server wrote it) is not sealed by the replica whose
    // key is not the fleet's: the right replica can still read and seal it.
    let legacy = okta_source("legacy", &okta, "okta-token");
    assert!(b
        .app()
        .store()
        .create_source_config(&legacy, &by())
        .await
        .unwrap());
    let c = start(&db, &key_b).await;
    drop(c);
    assert!(
        raw_sources(&db).await[0].contains("okta-token"),
        "legacy left as it was"
    );
    let d = start(&db, &key_a).await;
    let raw = raw_sources(&db).await;
    assert!(raw.iter().all(|r| !r.contains("okta-token")), "{raw:?}");
    let polled = d.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-main").users, Some(2));
    assert_eq!(health(&polled, "legacy").users, Some(2));
}

fn by() -> ChangeBy {
    ChangeBy {
        actor: "admin:older-version".into(),
        at: chrono::Utc::now(),
    }
}

fn okta_source(name: &str, base_url: &str, token: &str) -> StoredSourceConfig {
    StoredSourceConfig {
        name: name.into(),
        kind: "okta".into(),
        config: json!({"name": name, "kind": "okta", "interval_minutes": 60,
            "base_url": base_url, "api_token": token, "search": "status eq \"ACTIVE\""}),
        updated_at: chrono::Utc::now(),
        updated_by: "test".into(),
    }
}

async fn plaintext_from_an_older_server_is_sealed_on_start_once(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    // What an older server left: plaintext secrets, written through the same store.
    {
        let store = store::open(db.url(), &StoreOptions::default())
            .await
            .unwrap();
        assert!(store
            .create_source_config(&okta_source("okta-old", &okta, "okta-token"), &by())
            .await
            .unwrap());
        let hook = StoredWebhook {
            id: Uuid::now_v7(),
            name: "siem".into(),
            config: json!({"url": format!("http://127.0.0.1:9/{HOOK_URL_SECRET}"),
                "format": "generic", "secret": HOOK_SIGNING_SECRET, "events": []}),
            updated_at: chrono::Utc::now(),
            updated_by: "test".into(),
        };
        assert!(store.create_webhook_config(&hook, &by()).await.unwrap());
    }
    assert!(raw_sources(&db).await[0].contains("okta-token"));
    let audit_before = db.count("audit_log").await;

    let (_keys, key_path) = key_file();
    let server = start(&db, &key_path).await;
    let sources = raw_sources(&db).await;
    let hooks = raw_hooks(&db).await;
    assert!(!sources[0].contains("okta-token"), "{sources:?}");
    assert!(sources[0].contains("enc:v1:"));
    for secret in [HOOK_URL_SECRET, HOOK_SIGNING_SECRET] {
        assert!(!hooks[0].contains(secret), "{hooks:?}");
    }
    // Sealing is not a change of settings: no audit entry.
    assert_eq!(db.count("audit_log").await, audit_before);
    let polled = server.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-old").users, Some(2));
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    let page = admin.get("/console/webhooks").await.text().await.unwrap();
    assert!(page.contains("http://127.0.0.1:9/…"), "{page}");

    // A second start (or a replica) finds nothing to seal and changes nothing.
    let again = start(&db, &key_path).await;
    assert_eq!(raw_sources(&db).await, sources);
    assert_eq!(raw_hooks(&db).await, hooks);
    drop(again);
}

async fn the_key_is_rotated_and_a_cut_short_rotation_finishes(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    let (_keys, old_key) = key_file();
    let (_new, new_key) = key_file();
    let server = start(&db, &old_key).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    create_okta_in_console(&mut admin, "okta-main", &okta, "okta-token").await;
    let before = raw_sources(&db).await;

    let (id, n) = server.app().rotate_secrets_key(&new_key).await.unwrap();
    assert_eq!(n, 1);
    assert!(
        std::fs::metadata(&new_key).is_ok(),
        "the new key file is created"
    );
    let after = raw_sources(&db).await;
    assert_ne!(after, before);
    assert!(after[0].contains(&format!("enc:v1:{id}:")), "{after:?}");
    // Run again (as after a crash half way): nothing left to do.
    assert_eq!(
        server.app().rotate_secrets_key(&new_key).await.unwrap().1,
        0
    );

    // A server on the new key reads it; one still on the old key says so.
    let renewed = start(&db, &new_key).await;
    let polled = renewed.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-main").users, Some(2));
    let stale = server.app().poll_identity_sources().await.unwrap();
    assert_eq!(
        health(&stale, "okta-main").last_error.as_deref(),
        Some("cannot decrypt credentials: secrets key does not match")
    );
}

/// `--secrets-key-file` / `TANDEM_SECRETS_KEY_FILE` and `secrets-key rotate`, through the
/// built binary.
async fn the_cli_takes_the_key_file_and_rotates_it(backend: Backend) {
    let okta = okta_server().await;
    let db = Arc::new(TestDb::new(backend).await);
    let (_keys, old_key) = key_file();
    let new_key = old_key.with_file_name("next.key");
    let server = start(&db, &old_key).await;
    let mut admin = signed_in(&server, "root", Role::Admin).await;
    create_okta_in_console(&mut admin, "okta-main", &okta, "okta-token").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args([
            "--database",
            db.url(),
            "secrets-key",
            "rotate",
            "--new-key-file",
        ])
        .arg(&new_key)
        .env("TANDEM_SECRETS_KEY_FILE", &old_key)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("1 records encrypted again"), "{stderr}");
    let renewed = start(&db, &new_key).await;
    let polled = renewed.app().poll_identity_sources().await.unwrap();
    assert_eq!(health(&polled, "okta-main").users, Some(2));
}
