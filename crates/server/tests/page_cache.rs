//! The server's layer over SQLite's page cache (`store/sqlite/page_cache.rs`), installed as
//! the server's `main` installs it: before the process opens a database. A test binary of
//! its own, because SQLite takes a page cache only before its first use in a process, and
//! the `it` suite opens databases from many threads at once. The store suite there runs on
//! SQLite's stock cache; the server processes that the `it` and e2e suites start run on
//! this layer.

use std::str::FromStr as _;

use chrono::Utc;
use sqlx::ConnectOptions as _;
use tandem_server::batch::QueuedReport;
use tandem_server::store::{self, sqlite::page_cache, NewReport, StoreOptions};

#[path = "common/store_fleet.rs"]
mod store_fleet;

#[tokio::test]
async fn the_layer_leaves_out_commit_scans_and_the_database_stays_whole() {
    assert!(
        page_cache::install(),
        "first thing in the process, so it must take"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = store::open(&url, &StoreOptions::default()).await.unwrap();
    const DEVICES: usize = 300;
    let ids = store_fleet::enrol(&*store, "layer", DEVICES).await.unwrap();
    let before = page_cache::truncates();
    // Enough reports, over devices in a scattered order, for B-tree pages to split and
    // the balancer to reorder siblings many times over.
    let rounds = 12;
    for round in 0..rounds {
        let queued: Vec<QueuedReport> = (0..DEVICES)
            .map(|n| {
                let d = (n * 7 + round * 13) % DEVICES;
                store_fleet::queued(&*store, "layer", ids[d], d, Utc::now()).unwrap()
            })
            .collect();
        for chunk in queued.chunks(50) {
            let news: Vec<NewReport<'_>> = chunk.iter().map(QueuedReport::as_new).collect();
            store.ingest_reports(&news).await.unwrap();
        }
    }
    let after = page_cache::truncates();
    assert!(
        after.1 > before.1,
        "commits whose scan the layer left out: {before:?} then {after:?}"
    );

    // Every device reads back with all of its results.
    for id in ids.iter().step_by(37) {
        let detail = store.device_detail(*id, 3).await.unwrap().unwrap();
        assert_eq!(detail.summary.device.results.len(), 11);
        assert_eq!(detail.reports.len(), 3);
    }
    drop(store);

    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let reports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(reports, (DEVICES * rounds) as i64);
}
