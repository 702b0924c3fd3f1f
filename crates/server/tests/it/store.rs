//! The `Store` contract, written against `&dyn Store` so that every backend runs the same
//! checks: SQLite on a file and in memory, PostgreSQL on a database of the test cluster.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tandem_proto::v1::{DeviceInfo, UserInfo};
use tandem_server::hub::PolicyHub;
use tandem_server::keys::hash_secret;
use tandem_server::store::{
    self, action, AuditQuery, ChangeBy, DeviceFilter, EnrollOutcome, IngestOutcome, NewApiToken,
    NewDevice, NewEnrollSecret, NewPolicy, NewReport, PutPolicyOutcome, Role, SecretHash, Store,
    StoreError, StoreOptions, DEFAULT_GROUP,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::pg::PgDatabase;
use crate::support::sample_report;

fn options() -> StoreOptions {
    StoreOptions {
        change_poll_interval: Duration::from_millis(20),
        max_connections: 4,
    }
}

/// An enrolment secret into the default group, created in `store`; answers its hash, which
/// is what `Store::enroll` takes.
async fn default_group_secret(
    store: &dyn Store,
    name: &str,
    now: chrono::DateTime<Utc>,
) -> SecretHash {
    let hash = hash_secret(name);
    store
        .create_enroll_secret(&NewEnrollSecret {
            id: Uuid::now_v7(),
            hash,
            group: DEFAULT_GROUP.into(),
            created_at: now,
            expires_at: None,
            max_uses: None,
            created_by: "test".into(),
        })
        .await
        .unwrap();
    hash
}

/// A device of user `ada` enrolling as `machine` (also its hostname) with `token`.
fn new_device(machine: &str, token: &str, now: chrono::DateTime<Utc>) -> NewDevice {
    NewDevice {
        candidate_id: Uuid::now_v7(),
        token_hash: hash_secret(token),
        device: DeviceInfo {
            machine_id: machine.into(),
            hostname: machine.into(),
            ..Default::default()
        },
        user: UserInfo {
            login: "ada".into(),
            email: None,
        },
        now,
    }
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    contract(store::open(&url, &options()).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_prunes_old_reports() {
    prune_contract(store::open("sqlite::memory:", &options()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_prunes_old_reports() {
    let db = PgDatabase::create().await;
    prune_contract(store::open(&db.url, &options()).await.unwrap()).await;
}

/// Raw reports past the retention go, each device's newest stays, nothing else is touched.
async fn prune_contract(store: Arc<dyn Store>) {
    let now = Utc::now();
    let days = |n: i64| now - chrono::Duration::days(n);
    let secret = default_group_secret(store.as_ref(), "prune", now).await;
    let busy = new_device("busy", "t-busy", now);
    let quiet = new_device("quiet", "t-quiet", now);
    for d in [&busy, &quiet] {
        store.enroll(&secret, d).await.unwrap();
    }
    let ingest = |device: Uuid, received_at| {
        let store = Arc::clone(&store);
        async move {
            let report = sample_report("m");
            let raw = serde_json::to_string(&report).unwrap();
            store
                .ingest_report(NewReport {
                    device_id: device,
                    report: &report,
                    raw: &raw,
                    received_at,
                    result_texts: None,
                    raw_packed: None,
                })
                .await
                .unwrap()
        }
    };
    for age in [120, 100, 95, 10, 1] {
        ingest(busy.candidate_id, days(age)).await;
    }
    // A device silent for half a year keeps its one report: it is its newest.
    ingest(quiet.candidate_id, days(200)).await;

    // Batches: two rows a call, until none is left.
    assert_eq!(store.prune_reports(days(90), 2).await.unwrap(), 2);
    assert_eq!(store.prune_reports(days(90), 2).await.unwrap(), 1);
    assert_eq!(store.prune_reports(days(90), 2).await.unwrap(), 0);
    let busy_detail = store
        .device_detail(busy.candidate_id, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        busy_detail.reports.len(),
        2,
        "the reports of the last 90 days stay"
    );
    assert!(busy_detail.last_report.is_some());
    let quiet_detail = store
        .device_detail(quiet.candidate_id, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quiet_detail.reports.len(), 1);
}

#[tokio::test]
async fn sqlite_in_memory() {
    contract(store::open("sqlite::memory:", &options()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres() {
    let db = PgDatabase::create().await;
    contract(store::open(&db.url, &options()).await.unwrap()).await;
    // Opening again (a restart, a second replica) finds the schema in place.
    let again = store::open(&db.url, &options()).await.unwrap();
    assert!(again.group_exists(DEFAULT_GROUP).await.unwrap());
}

#[tokio::test]
async fn unsupported_urls_are_named() {
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
        created_by: "test".into(),
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
        result_texts: None,
        raw_packed: None,
    };
    assert_eq!(
        store.ingest_report(new_report).await.unwrap(),
        IngestOutcome::Stored
    );
    assert_eq!(
        store.ingest_report(new_report).await.unwrap(),
        IngestOutcome::Replayed
    );
    let all = DeviceFilter {
        limit: 100,
        ..DeviceFilter::default()
    };
    let page = store.list_devices(&all).await.unwrap();
    assert_eq!(page.total, 1);
    let devices: Vec<_> = page.devices.into_iter().map(|d| d.device).collect();
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
        store.list_devices(&all).await.unwrap().devices[0]
            .device
            .policy_version,
        Some(1)
    );

    let token = NewApiToken {
        id: Uuid::now_v7(),
        name: "ci".into(),
        role: Role::Viewer,
        hash: hash_secret("api"),
        created_at: now,
        created_by: "test".into(),
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

    admin_operations(&*store, authed.id).await;
}

/// Groups, versions, secrets, revocation, device detail, filters and the audit log.
async fn admin_operations(store: &dyn Store, device: Uuid) {
    let by = ChangeBy {
        actor: "token:t".into(),
        at: Utc::now(),
    };
    // Groups: created once, listed with their devices and latest version.
    assert!(store.create_group("sales", &by).await.unwrap());
    assert!(!store.create_group("sales", &by).await.unwrap());
    let groups = store.list_groups().await.unwrap();
    let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["default", "eng", "sales"]);
    let eng = groups.iter().find(|g| g.name == "eng").unwrap();
    assert_eq!((eng.devices, eng.policy_version), (1, Some(2)));

    // Versions: listed oldest first, each readable.
    let versions = store.policy_versions("eng").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[0].created_by, "test");
    let v1 = store.policy_version("eng", 1).await.unwrap().unwrap();
    assert_eq!(v1.policy, json!({"org": {"name": "E"}}));
    assert!(store.policy_version("eng", 9).await.unwrap().is_none());
    assert!(store.policy_versions("nobody").await.unwrap().is_empty());

    // Device detail: results, history and the raw report.
    let detail = store.device_detail(device, 10).await.unwrap().unwrap();
    assert_eq!(detail.summary.device.results.len(), 2);
    assert_eq!(detail.reports.len(), 1);
    assert_eq!(detail.events.len(), 1);
    assert!(detail.last_report.unwrap().contains("report_id"));
    assert_eq!(detail.machine_id, "m1");
    assert!(store
        .device_detail(Uuid::now_v7(), 10)
        .await
        .unwrap()
        .is_none());

    // Filters.
    let filter = |f: DeviceFilter| async move {
        let f = DeviceFilter { limit: 10, ..f };
        store.list_devices(&f).await.unwrap().total
    };
    use tandem_proto::{CheckId, Status};
    assert_eq!(
        filter(DeviceFilter {
            group: Some("eng".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        filter(DeviceFilter {
            group: Some("sales".into()),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        filter(DeviceFilter {
            search: Some("HOST-M".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        filter(DeviceFilter {
            search: Some("ad%".into()),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        filter(DeviceFilter {
            search: Some("ada".into()),
            ..Default::default()
        })
        .await,
        1
    );
    let failing = DeviceFilter {
        check: Some(CheckId::OsUpdates),
        status: Some(Status::Fail),
        ..Default::default()
    };
    assert_eq!(filter(failing).await, 1);
    let passing = DeviceFilter {
        check: Some(CheckId::OsUpdates),
        status: Some(Status::Pass),
        ..Default::default()
    };
    assert_eq!(filter(passing).await, 0);
    assert_eq!(
        filter(DeviceFilter {
            status: Some(Status::Pass),
            ..Default::default()
        })
        .await,
        1
    );
    let beyond = DeviceFilter {
        offset: 5,
        limit: 10,
        ..Default::default()
    };
    let page = store.list_devices(&beyond).await.unwrap();
    assert_eq!((page.total, page.devices.len()), (1, 0));

    // Secrets: listed without hashes, expired once.
    let secrets = store.list_enroll_secrets().await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].uses, 1);
    let expired = store
        .expire_enroll_secret(secrets[0].id, &by)
        .await
        .unwrap()
        .unwrap();
    assert!(expired.revoked_at.is_some());
    let again = store
        .expire_enroll_secret(secrets[0].id, &by)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at, expired.revoked_at);
    assert!(store
        .expire_enroll_secret(Uuid::now_v7(), &by)
        .await
        .unwrap()
        .is_none());

    // Revocation: the token stops working, the device leaves the list, detail remains.
    assert!(store.revoke_device(device, &by).await.unwrap());
    assert!(store.revoke_device(device, &by).await.unwrap());
    assert!(!store.revoke_device(Uuid::now_v7(), &by).await.unwrap());
    assert!(store
        .device_by_token(&hash_secret("t"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(filter(DeviceFilter::default()).await, 0);
    assert!(store
        .device_detail(device, 10)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());

    // The audit log holds every change once, newest first, with before and after.
    let log = store
        .list_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            action::DEVICE_REVOKE,
            action::ENROLL_SECRET_EXPIRE,
            action::GROUP_CREATE,
            action::POLICY_PUT,
            action::API_TOKEN_CREATE,
            action::POLICY_PUT,
            action::POLICY_PUT,
            action::ENROLL_SECRET_CREATE,
        ]
    );
    let e2 = &log[3];
    assert_eq!(e2.target, "group:eng");
    assert_eq!(
        e2.before.as_ref().unwrap()["policy"],
        json!({"org": {"name": "E"}})
    );
    assert_eq!(e2.after.as_ref().unwrap()["version"], 2);
    assert!(log[7].before.is_none());
    let page = store
        .list_audit(&AuditQuery {
            limit: 2,
            before_id: Some(log[1].id),
            action: None,
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        [log[2].id, log[3].id]
    );
    let puts = store
        .list_audit(&AuditQuery {
            limit: 100,
            before_id: None,
            action: Some(action::POLICY_PUT.into()),
        })
        .await
        .unwrap();
    assert_eq!(puts.len(), 3);
}

#[tokio::test]
async fn sqlite_batches_like_one_by_one() {
    batch_contract(store::open("sqlite::memory:", &options()).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_file_batches_like_one_by_one() {
    // A file database has its own report writer connection (an in-memory one shares the
    // pool's): the same outcomes through it.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    batch_contract(store::open(&url, &options()).await.unwrap()).await;
}

/// While another connection holds SQLite's write lock, a report batch waits for it (without
/// holding up the runtime) and is stored once it is free, next to the other connection's
/// write.
#[tokio::test]
async fn sqlite_reports_wait_for_another_writer_and_then_land() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = store::open(&url, &options()).await.unwrap();
    let now = Utc::now();
    let secret = default_group_secret(store.as_ref(), "wait", now).await;
    let laptop = new_device("laptop", "laptop", now);
    store.enroll(&secret, &laptop).await.unwrap();

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut holder = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let writing = {
        let store = Arc::clone(&store);
        let device_id = laptop.candidate_id;
        tokio::spawn(async move {
            let report = sample_report("laptop");
            let raw = serde_json::to_string(&report).unwrap();
            let new = NewReport {
                device_id,
                report: &report,
                raw: &raw,
                received_at: Utc::now(),
                result_texts: None,
                raw_packed: None,
            };
            store.ingest_reports(&[new]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writing.is_finished(), "the batch waits for the lock");
    sqlx::query("UPDATE devices SET hostname = 'renamed-by-admin' WHERE id = ?")
        .bind(laptop.candidate_id.to_string())
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    assert_eq!(
        writing.await.unwrap().unwrap(),
        [IngestOutcome::Stored],
        "stored once the lock was free"
    );
    pool.close().await;
    let detail = store
        .device_detail(laptop.candidate_id, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.reports.len(), 1);
    assert_eq!(
        detail.summary.device.results.len(),
        sample_report("x").results.len()
    );
}

#[tokio::test]
async fn sqlite_history_is_what_each_device_sent_last() {
    history_contract(store::open("sqlite::memory:", &options()).await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    history_contract(store::open(&url, &options()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_history_is_what_each_device_sent_last() {
    let db = PgDatabase::create().await;
    history_contract(store::open(&db.url, &options()).await.unwrap()).await;
}

/// A device's recent reports and events are the ones it sent last, only its own, up to the
/// number asked for: reports newest first, events newest by their own time first. A report
/// of the same device stored in the same batch, and events of one report, count in order.
async fn history_contract(store: Arc<dyn Store>) {
    use tandem_proto::v1::{Event, EventKind};

    let now = Utc::now();
    let secret = default_group_secret(store.as_ref(), "history", now).await;
    let (ada, bob) = (
        new_device("ada", "t-ada", now),
        new_device("bob", "t-bob", now),
    );
    for d in [&ada, &bob] {
        store.enroll(&secret, d).await.unwrap();
    }
    let minutes = |m: i64| now + chrono::Duration::minutes(m);
    let event = |kind, at| Event {
        kind,
        at,
        check_id: None,
        detail: None,
    };
    // Ada's clock ran an hour ahead for her first report; her later events are dated right.
    let mut first = sample_report("ada");
    first.events = vec![event(EventKind::NudgeShown, minutes(60))];
    let mut second = sample_report("ada");
    second.events = vec![
        event(EventKind::NudgeDeferred, minutes(1)),
        event(EventKind::NudgeActed, minutes(2)),
    ];
    let mut third = sample_report("ada");
    third.events = vec![event(EventKind::NudgeShown, minutes(3))];
    let mut bobs = sample_report("bob");
    bobs.events = vec![event(EventKind::NudgeShown, minutes(4))];
    let raw = |r: &tandem_proto::v1::StatusReport| serde_json::to_string(r).unwrap();
    let (raws, device) = (
        [raw(&first), raw(&second), raw(&third), raw(&bobs)],
        |r: &tandem_proto::v1::StatusReport| {
            if r.inventory.device.machine_id == "ada" {
                ada.candidate_id
            } else {
                bob.candidate_id
            }
        },
    );
    let new = |n: usize, report| NewReport {
        device_id: device(report),
        report,
        raw: &raws[n],
        received_at: now,
        result_texts: None,
        raw_packed: None,
    };
    store.ingest_report(new(0, &first)).await.unwrap();
    // The second and third in one batch, with Bob's between them.
    let outcomes = store
        .ingest_reports(&[new(1, &second), new(3, &bobs), new(2, &third)])
        .await
        .unwrap();
    assert_eq!(outcomes, [IngestOutcome::Stored; 3]);

    let detail = |id: Uuid, n: u32| {
        let store = Arc::clone(&store);
        async move { store.device_detail(id, n).await.unwrap().unwrap() }
    };
    let report_ids =
        |d: &store::DeviceDetail| -> Vec<Uuid> { d.reports.iter().map(|r| r.report_id).collect() };
    let kinds = |d: &store::DeviceDetail| -> Vec<(EventKind, Uuid)> {
        d.events.iter().map(|e| (e.kind, e.report_id)).collect()
    };

    let all = detail(ada.candidate_id, 10).await;
    assert_eq!(
        report_ids(&all),
        [third.report_id, second.report_id, first.report_id]
    );
    assert_eq!(
        kinds(&all),
        [
            (EventKind::NudgeShown, first.report_id),
            (EventKind::NudgeShown, third.report_id),
            (EventKind::NudgeActed, second.report_id),
            (EventKind::NudgeDeferred, second.report_id),
        ],
        "all four, by their time"
    );
    let last_two = detail(ada.candidate_id, 2).await;
    assert_eq!(report_ids(&last_two), [third.report_id, second.report_id]);
    assert_eq!(
        kinds(&last_two),
        [
            (EventKind::NudgeShown, third.report_id),
            (EventKind::NudgeActed, second.report_id),
        ],
        "the two sent last, not the one dated an hour ahead"
    );
    let none = detail(ada.candidate_id, 0).await;
    assert!(none.reports.is_empty() && none.events.is_empty());
    let bob_detail = detail(bob.candidate_id, 10).await;
    assert_eq!(report_ids(&bob_detail), [bobs.report_id]);
    assert_eq!(
        kinds(&bob_detail),
        [(EventKind::NudgeShown, bobs.report_id)]
    );

    // The console's recent bodies follow the same history.
    let bodies = store
        .device_report_bodies(ada.candidate_id, 2)
        .await
        .unwrap();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].body.contains(&third.report_id.to_string()));
    assert!(bodies[1].body.contains(&second.report_id.to_string()));
}

#[tokio::test]
async fn postgres_batches_like_one_by_one() {
    let db = PgDatabase::create().await;
    batch_contract(store::open(&db.url, &options()).await.unwrap()).await;
}

/// One batch holding a device's newer report, its older one delivered late by the outbox,
/// a replay of the newer one, and another device's report: the outcome is the one of
/// writing them one by one — a replay stores nothing, the newest observation and the
/// newest inventory win, and the last report time is the latest receipt.
async fn batch_contract(store: Arc<dyn Store>) {
    let now = Utc::now();
    let secret = default_group_secret(store.as_ref(), "batch", now).await;
    let (laptop, desktop) = (
        new_device("laptop", "laptop", now),
        new_device("desktop", "desktop", now),
    );
    for d in [&laptop, &desktop] {
        store.enroll(&secret, d).await.unwrap();
    }

    let hour = chrono::Duration::hours(1);
    let mut newer = sample_report("laptop");
    newer.inventory.device.hostname = "laptop-renamed".into();
    let mut older = sample_report("laptop");
    older.sent_at = now - hour;
    older.inventory.device.hostname = "laptop-old-name".into();
    for r in &mut older.results {
        r.observed_at = now - hour;
        r.status = tandem_proto::Status::Pass;
    }
    let other = sample_report("desktop");
    let raws: Vec<String> = [&newer, &older, &newer, &other]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let batch = [
        (laptop.candidate_id, &newer, now),
        (
            laptop.candidate_id,
            &older,
            now + chrono::Duration::seconds(1),
        ),
        (laptop.candidate_id, &newer, now),
        (desktop.candidate_id, &other, now),
    ];
    // Results serialized by the caller, as the API does (one by one, the store does it).
    let texts: Vec<Vec<String>> = batch
        .iter()
        .map(|(_, report, _)| {
            report
                .results
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect()
        })
        .collect();
    let reports: Vec<NewReport<'_>> = batch
        .iter()
        .zip(&raws)
        .zip(&texts)
        .map(
            |(((device_id, report, received_at), raw), texts)| NewReport {
                device_id: *device_id,
                report,
                raw,
                received_at: *received_at,
                result_texts: Some(texts),
                raw_packed: None,
            },
        )
        .collect();
    assert_eq!(
        store.ingest_reports(&reports).await.unwrap(),
        [
            IngestOutcome::Stored,
            IngestOutcome::Stored,
            IngestOutcome::Replayed,
            IngestOutcome::Stored
        ]
    );
    // The whole batch again: all replays, nothing written twice.
    assert_eq!(
        store.ingest_reports(&reports).await.unwrap(),
        [IngestOutcome::Replayed; 4]
    );

    let detail = store
        .device_detail(laptop.candidate_id, 10)
        .await
        .unwrap()
        .unwrap();
    let device = &detail.summary.device;
    assert_eq!(
        device.hostname, "laptop-renamed",
        "the newest inventory wins"
    );
    assert_eq!(detail.reports.len(), 2, "the replay was not stored");
    let latest = device.last_report_at.unwrap();
    assert!(
        (latest - (now + chrono::Duration::seconds(1)))
            .num_milliseconds()
            .abs()
            < 1,
        "the last receipt counts, even for an older report: {latest}"
    );
    let os_updates = device
        .results
        .iter()
        .find(|r| r.id == tandem_proto::CheckId::OsUpdates)
        .unwrap();
    assert_eq!(
        os_updates.status,
        tandem_proto::Status::Fail,
        "the newer observation wins over the late older one"
    );
    let other_detail = store
        .device_detail(desktop.candidate_id, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_detail.summary.device.hostname, "host-desktop");
    assert_eq!(other_detail.reports.len(), 1);
}

#[tokio::test]
async fn sqlite_keeps_the_newest_result_and_body_through_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = store::open(&url, &options()).await.unwrap();
    let device = refresh_contract(Arc::clone(&store)).await;

    // A body stored as text, as every body was before they were compressed, still reads.
    let old = "{ \"written\": \"as text, before compression\" }";
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE reports SET body = ? WHERE id = (SELECT MAX(id) FROM reports WHERE device_id = ?)",
    )
    .bind(old)
    .bind(device.to_string())
    .execute(&pool)
    .await
    .unwrap();
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT typeof(body) FROM reports WHERE device_id = ? ORDER BY id")
            .bind(device.to_string())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds.last().map(String::as_str), Some("text"));
    assert!(
        kinds[..kinds.len() - 1].iter().all(|k| k == "blob"),
        "{kinds:?}"
    );
    pool.close().await;
    let detail = store.device_detail(device, 10).await.unwrap().unwrap();
    assert_eq!(detail.last_report.as_deref(), Some(old));
    let bodies = store.device_report_bodies(device, 10).await.unwrap();
    assert_eq!(bodies[0].body, old);
    assert!(bodies[1].body.contains("\"report_id\""));
}

#[tokio::test]
async fn postgres_keeps_the_newest_result_and_body_through_every_path() {
    let db = PgDatabase::create().await;
    refresh_contract(store::open(&db.url, &options()).await.unwrap()).await;
}

/// Reports one at a time whose results keep or change their status, some delivered late:
/// the newest observation of each check wins, the status filter (and its index) follows
/// it, the hostname follows the newest inventory, and every body reads back byte for byte,
/// whether the caller packed it or the store did. Returns the device.
async fn refresh_contract(store: Arc<dyn Store>) -> Uuid {
    use tandem_proto::{CheckId, Status};

    let now = Utc::now();
    let secret = default_group_secret(store.as_ref(), "refresh", now).await;
    let device = new_device("refresh", "refresh-device", now);
    store.enroll(&secret, &device).await.unwrap();
    let id = device.candidate_id;

    // (minutes after `now` observed and sent, os_updates status, summary, hostname)
    let steps = [
        (0, Status::Fail, "first", "host-a"),
        (10, Status::Fail, "same status, newer", "host-a"),
        (20, Status::Pass, "fixed", "host-b"),
        (15, Status::Pass, "late, same status", "host-late"),
        (5, Status::Fail, "late, other status", "host-late"),
        (20, Status::Pass, "same instant again", "host-b"),
    ];
    let mut raws = Vec::new();
    for (n, (minutes, status, summary, hostname)) in steps.into_iter().enumerate() {
        let at = now + chrono::Duration::minutes(minutes);
        let mut report = sample_report("refresh");
        report.sent_at = at;
        report.inventory.device.hostname = hostname.into();
        for r in &mut report.results {
            r.observed_at = at;
            r.summary = summary.into();
            if r.id == CheckId::OsUpdates {
                r.status = status;
            }
        }
        // Odd spacing that a re-serialization would lose.
        let raw = format!("{}\n ", serde_json::to_string_pretty(&report).unwrap());
        // Every other body packed by the caller, as the report handler does.
        let packed = (n % 2 == 0).then(|| store.pack_report_body(&raw)).flatten();
        let outcome = store
            .ingest_report(NewReport {
                device_id: id,
                report: &report,
                raw: &raw,
                received_at: now + chrono::Duration::seconds(n as i64),
                result_texts: None,
                raw_packed: packed.as_deref(),
            })
            .await
            .unwrap();
        assert_eq!(outcome, IngestOutcome::Stored);
        raws.push(raw);
    }

    let detail = store.device_detail(id, 10).await.unwrap().unwrap();
    let device = &detail.summary.device;
    assert_eq!(device.hostname, "host-b", "the newest inventory's hostname");
    let os = device
        .results
        .iter()
        .find(|r| r.id == CheckId::OsUpdates)
        .unwrap();
    assert_eq!(
        (os.status, os.summary.as_str()),
        (Status::Pass, "same instant again"),
        "an observation as new as the one held replaces it; late ones do not"
    );
    let firewall = device
        .results
        .iter()
        .find(|r| r.id == CheckId::Firewall)
        .unwrap();
    assert_eq!(firewall.summary, "same instant again");
    let with = |status| DeviceFilter {
        check: Some(CheckId::OsUpdates),
        status: Some(status),
        limit: 10,
        ..DeviceFilter::default()
    };
    assert_eq!(
        store.list_devices(&with(Status::Fail)).await.unwrap().total,
        0
    );
    assert_eq!(
        store.list_devices(&with(Status::Pass)).await.unwrap().total,
        1
    );
    let search = |s: &str| DeviceFilter {
        search: Some(s.into()),
        limit: 10,
        ..DeviceFilter::default()
    };
    assert_eq!(
        store.list_devices(&search("host-b")).await.unwrap().total,
        1
    );
    assert_eq!(
        store.list_devices(&search("host-a")).await.unwrap().total,
        0
    );
    assert_eq!(
        store
            .list_devices(&search("host-late"))
            .await
            .unwrap()
            .total,
        0
    );

    assert_eq!(
        detail.last_report.as_deref(),
        raws.last().map(String::as_str)
    );
    let bodies = store.device_report_bodies(id, 10).await.unwrap();
    let bodies: Vec<&str> = bodies.iter().map(|b| b.body.as_str()).collect();
    let expected: Vec<&str> = raws.iter().rev().map(String::as_str).collect();
    assert_eq!(bodies, expected, "every body verbatim, newest first");
    id
}
