//! The SQLite report writer on its own: batches of reports from an enrolled fleet, stored
//! back to back through `Store::ingest_reports` on a database file, with no HTTP and no
//! simulator sharing the two cores. What it prints is the writer's capacity (reports per
//! second of writing), the time each batch took (its tail is what the WAL's checkpoints
//! cost) and the server's CPU per report.
//!
//! `cargo bench -p tandem-server --bench store_ingest -- [--devices N] [--batch N]
//! [--seconds N] [--rounds N] [--grown-mb N] [--stock-page-cache]`; BENCHMARKS.md has the figures. With
//! `TANDEM_BENCH_KEEP` set, each round's database is kept (its path is printed) for a look
//! with `dbstat`.
//!
//! `--grown-mb N` starts from a database file that once held N MB more than it does (the
//! pages are free, as after pruning old reports), like a server that has run for a while:
//! under 1 GB, SQLite's stock page cache does work at each commit that it does not on a
//! larger database (BENCHMARKS.md, session 9; `store/sqlite/page_cache.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tandem_server::batch::QueuedReport;
use tandem_server::store::{self, NewReport, Store, StoreOptions};

#[path = "../tests/common/store_fleet.rs"]
mod store_fleet;

/// The simulated fleet's name, as in its machine ids and hostnames.
const FLEET: &str = "bench";

struct Args {
    devices: usize,
    batch: usize,
    seconds: u64,
    rounds: usize,
    grown_mb: u64,
}

fn args() -> anyhow::Result<Args> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u64| -> anyhow::Result<u64> {
        match argv.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => argv
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{name} needs a number")),
        }
    };
    // `cargo bench` passes `--bench`; run any other way (`cargo test --benches`), this is
    // a smoke test of a second on a small fleet.
    let bench = argv.iter().any(|a| a == "--bench");
    Ok(Args {
        devices: value("--devices", if bench { 2_000 } else { 20 })? as usize,
        batch: value("--batch", if bench { 100 } else { 10 })? as usize,
        seconds: value("--seconds", if bench { 20 } else { 1 })?,
        rounds: value("--rounds", 1)? as usize,
        grown_mb: value("--grown-mb", 0)?,
    })
}

/// The process's CPU time so far (user + system), from `/proc/self/stat`; `None` where
/// there is no such file.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted from after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Makes the database at `url` a file of `mb` MB of free pages, before the store opens
/// (and migrates) it.
async fn grow(url: &str, mb: u64) -> anyhow::Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::ConnectOptions as _;
    use std::str::FromStr as _;
    let mut conn = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .connect()
        .await?;
    sqlx::query("CREATE TABLE bench_filler (b BLOB NOT NULL)")
        .execute(&mut conn)
        .await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO bench_filler (b) SELECT zeroblob(1048576) FROM n",
    )
    .bind(i64::try_from(mb)?)
    .execute(&mut conn)
    .await?;
    sqlx::query("DROP TABLE bench_filler")
        .execute(&mut conn)
        .await?;
    Ok(())
}

async fn round(args: &Args, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}", path.display());
    if args.grown_mb > 0 {
        grow(&url, args.grown_mb).await?;
    }
    let store: Arc<dyn Store> = store::open(&url, &StoreOptions::default()).await?;
    let devices = store_fleet::enrol(&*store, FLEET, args.devices).await?;

    // Devices take turns in a shuffled order, as agents on timers do.
    let mut order: Vec<usize> = (0..args.devices).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ n as u64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let mut next = order.iter().copied().cycle();

    let mut batches = Vec::new();
    let mut writing = Duration::ZERO;
    let mut stored = 0usize;
    let cpu_start = cpu_time();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let prepared: Vec<QueuedReport> = (0..args.batch)
            .map(|_| {
                let d = next.next().unwrap_or_default();
                store_fleet::queued(&*store, FLEET, devices[d], d, Utc::now())
            })
            .collect::<anyhow::Result<_>>()?;
        let news: Vec<NewReport<'_>> = prepared.iter().map(QueuedReport::as_new).collect();
        let t = Instant::now();
        let outcomes = store.ingest_reports(&news).await?;
        let took = t.elapsed();
        writing += took;
        batches.push(took);
        stored += outcomes.len();
    }
    let cpu = cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    let wall = started.elapsed();
    batches.sort();
    let wal = std::fs::metadata(dir.path().join("bench.db-wal")).map_or(0, |m| m.len());
    if std::env::var_os("TANDEM_BENCH_KEEP").is_some() {
        drop(store);
        println!("  kept: {}", dir.keep().display());
    }
    println!(
        "  round {n}: {:.0} reports/s of writing ({stored} reports in {:.1} s writing, {:.1} s in all), \
         batch of {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU {}; WAL {:.1} MB at the end",
        stored as f64 / writing.as_secs_f64(),
        writing.as_secs_f64(),
        wall.as_secs_f64(),
        args.batch,
        percentile(&batches, 0.50),
        percentile(&batches, 0.99),
        percentile(&batches, 1.0),
        cpu.map_or("not measured".to_owned(), |c| format!(
            "{:.3} ms a report (preparing the reports included)",
            c.as_secs_f64() * 1000.0 / stored.max(1) as f64
        )),
        wal as f64 / 1e6,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // As the server does, before any database opens; `--stock-page-cache` leaves SQLite's
    // page cache as it is, for A/B runs.
    let stock = std::env::args().any(|a| a == "--stock-page-cache");
    let layered = !stock && tandem_server::store::sqlite::page_cache::install();
    let args = args()?;
    println!(
        "store ingest: SQLite file{}, {} devices, batches of {}, {} s a round",
        if args.grown_mb > 0 {
            format!(" grown to {} MB before", args.grown_mb)
        } else {
            String::new()
        },
        args.devices,
        args.batch,
        args.seconds
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for n in 1..=args.rounds {
        runtime.block_on(round(&args, n))?;
    }
    let (forwarded, skipped) = tandem_server::store::sqlite::page_cache::truncates();
    println!(
        "  page cache: {}; commit-time truncates passed on {forwarded}, left out {skipped}",
        if layered {
            "SQLite's, with the server's truncate layer"
        } else {
            "SQLite's stock cache"
        }
    );
    Ok(())
}
