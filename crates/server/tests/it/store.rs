//! The `Store` contract, written against `&dyn Store` so that every backend runs the same
//! checks (the PostgreSQL backend joins with its URL).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tandem_proto::v1::{DeviceInfo, UserInfo};
use tandem_server::hub::PolicyHub;
use tandem_server::keys::hash_secret;
use tandem_server::store::{
    self, EnrollOutcome, IngestOutcome, NewApiToken, NewDevice, NewEnrollSecret, NewPolicy,
    NewReport, PutPolicyOutcome, Role, Store, StoreError, StoreOptions, DEFAULT_GROUP,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::sample_report;

fn options() -> StoreOptions {
    StoreOptions {
        change_poll_interval: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    contract(store::open(&url, &options()).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_in_memory() {
    contract(store::open("sqlite::memory:", &options()).await.unwrap()).await;
}

#[tokio::test]
async fn unsupported_urls_are_named() {
    let e = store::open("postgres://db/tandem", &options())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::PostgresNotYetSupported), "{e}");
    let e = store::open("mysql://db/tandem", &options())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, StoreError::UnsupportedUrl(ref s) if s == "mysql"),
        "{e}"
    );
}

fn policy(group: &str, body: serde_json::Value) -> NewPolicy {
    NewPolicy {
        group: group.into(),
        body,
        created_at: Utc::now(),
        created_by: "test".into(),
    }
}

async fn contract(store: Arc<dyn Store>) {
    let now = Utc::now();
    store.ping().await.unwrap();

    // The first key stored wins for good.
    let key = store
        .signing_key_or_insert(&[1; 32], &[2; 32], now)
        .await
        .unwrap();
    assert_eq!(key, [1; 32]);
    assert_eq!(
        store
            .signing_key_or_insert(&[3; 32], &[4; 32], now)
            .await
            .unwrap(),
        [1; 32]
    );

    assert!(store.group_exists(DEFAULT_GROUP).await.unwrap());
    assert!(!store.group_exists("eng").await.unwrap());

    // Enrolment consumes the secret and hands out a token that finds the device.
    let secret = hash_secret("s");
    let new_secret = NewEnrollSecret {
        id: Uuid::now_v7(),
        hash: secret,
        group: "eng".into(),
        created_at: now,
        expires_at: None,
        max_uses: Some(1),
    };
    store.create_enroll_secret(&new_secret).await.unwrap();
    assert!(store.group_exists("eng").await.unwrap());
    let device = NewDevice {
        candidate_id: Uuid::now_v7(),
        token_hash: hash_secret("t"),
        device: DeviceInfo {
            machine_id: "m1".into(),
            hostname: "h".into(),
            ..Default::default()
        },
        user: UserInfo {
            login: "ada".into(),
            email: None,
        },
        now,
    };
    let outcome = store.enroll(&secret, &device).await.unwrap();
    assert_eq!(
        outcome,
        EnrollOutcome::Enrolled {
            device_id: device.candidate_id,
            group: "eng".into()
        }
    );
    assert_eq!(
        store.enroll(&secret, &device).await.unwrap(),
        EnrollOutcome::BadSecret
    );
    let authed = store
        .device_by_token(&hash_secret("t"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (authed.id, authed.group.as_str()),
        (device.candidate_id, "eng")
    );
    assert!(store
        .device_by_token(&hash_secret("x"))
        .await
        .unwrap()
        .is_none());

    // Reports are idempotent per device.
    let report = sample_report("m1");
    let raw = serde_json::to_string(&report).unwrap();
    let new_report = NewReport {
        device_id: authed.id,
        report: &report,
        raw: &raw,
        received_at: now,
    };
    assert_eq!(
        store.ingest_report(new_report).await.unwrap(),
        IngestOutcome::Stored
    );
    assert_eq!(
        store.ingest_report(new_report).await.unwrap(),
        IngestOutcome::Replayed
    );
    let devices = store.list_devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].results.len(), 2);
    assert_eq!(
        devices[0].hostname, "host-m1",
        "the report's inventory updates the device"
    );
    assert_eq!(
        devices[0].last_report_at.map(|t| t.timestamp_micros()),
        Some(now.timestamp_micros())
    );

    // Effective policy: own group, else default, else none.
    assert_eq!(store.effective_policy("eng").await.unwrap(), None);
    let d1 = store
        .put_policy(&policy(DEFAULT_GROUP, json!({"org": {"name": "D"}})))
        .await
        .unwrap();
    assert!(matches!(d1, PutPolicyOutcome::Created(ref p) if p.version == 1));
    assert_eq!(
        store.effective_policy("eng").await.unwrap().as_ref(),
        Some(d1.policy())
    );
    let e1 = store
        .put_policy(&policy("eng", json!({"org": {"name": "E"}})))
        .await
        .unwrap();
    assert_eq!(
        store.effective_policy("eng").await.unwrap().as_ref(),
        Some(e1.policy())
    );
    let same = store
        .put_policy(&policy("eng", json!({"org": {"name": "E"}})))
        .await
        .unwrap();
    assert_eq!(same, PutPolicyOutcome::Unchanged(e1.policy().clone()));

    store.record_policy_delivered(authed.id, 1).await.unwrap();
    assert_eq!(
        store.list_devices().await.unwrap()[0].policy_version,
        Some(1)
    );

    let token = NewApiToken {
        id: Uuid::now_v7(),
        name: "ci".into(),
        role: Role::Viewer,
        hash: hash_secret("api"),
        created_at: now,
    };
    store.create_api_token(&token).await.unwrap();
    let found = store
        .api_token_by_hash(&hash_secret("api"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.role), (token.id, Role::Viewer));

    // A version written without telling the hub still reaches it through the change feed.
    let hub = Arc::new(PolicyHub::new());
    let mut rx = hub.subscribe("eng");
    let shutdown = CancellationToken::new();
    let feed = store
        .policy_change_feed(Arc::clone(&hub), shutdown.clone())
        .await
        .unwrap();
    let follower = tokio::spawn(feed);
    let e2 = store
        .put_policy(&policy("eng", json!({"org": {"name": "E2"}})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("the change feed did not publish the new version")
        .unwrap();
    assert_eq!(*rx.borrow(), e2.policy().version);
    shutdown.cancel();
    follower.await.unwrap();
}
