//! A private PostgreSQL cluster for the tests: `initdb` into a temporary directory, started
//! on a free loopback port with its socket in that directory, one database per test, and
//! stopped when the last test using it lets go.
//!
//! Needs the PostgreSQL server binaries (Debian: `apt-get install postgresql`, which puts
//! them in `/usr/lib/postgresql/<major>/bin`; elsewhere set `TANDEM_TEST_PG_BIN` to the
//! directory holding `initdb`, `pg_ctl` and `pg_isready`). PostgreSQL refuses to run as
//! root, so as root the cluster belongs to the `postgres` OS user (which the Debian package
//! creates) and every server command runs through `runuser -u postgres --`. A missing
//! binary or user fails the tests with a message saying so: they are never skipped.

use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use tempfile::TempDir;

/// How long a fresh cluster may take to accept connections (a cold disk on a busy CI box).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The running cluster, shared by every test that holds an `Arc` to it.
static CLUSTER: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// Databases created so far in this process, for unique names.
static DATABASES: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Whether server commands run as the `postgres` user (we are root).
    as_postgres: bool,
    /// Removed after the server has stopped (fields drop after `Drop::drop`).
    dir: TempDir,
}

/// One test's own database on the shared cluster.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    _cluster: Arc<PgCluster>,
}

impl PgDatabase {
    /// Creates an empty database on the shared cluster, starting the cluster if needed.
    pub async fn create() -> PgDatabase {
        let cluster = PgCluster::shared();
        let name = format!(
            "tandem_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL cluster: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        PgDatabase {
            url: cluster.url(&name),
            _cluster: cluster,
        }
    }
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TANDEM_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    // Debian keeps the server binaries off PATH, one directory per major version.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "the PostgreSQL tests need the PostgreSQL server binaries, and no \
             /usr/lib/postgresql/<version>/bin/initdb exists: install them \
             (`apt-get install postgresql` on Debian) or set TANDEM_TEST_PG_BIN to the \
             directory holding initdb, pg_ctl and pg_isready"
        ),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl PgCluster {
    fn shared() -> Arc<PgCluster> {
        let mut slot = CLUSTER.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(PgCluster::start());
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A command for one of the server binaries, as the user that owns the cluster.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The postgres user may not be allowed into the test's working directory.
        command.current_dir(self.dir.path());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} for the PostgreSQL tests: {e}"))
    }

    fn start() -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("tandem-pg-")
            .tempdir()
            .unwrap();
        let as_postgres = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(
                chown.status.success(),
                "PostgreSQL cannot run as root and the tests could not hand their directory to \
                 the `postgres` user (does it exist? the Debian package creates it): {}",
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let data = dir.path().join("data");
        let mut cluster = PgCluster {
            bin,
            data,
            port: 0,
            as_postgres,
            dir,
        };
        let data = cluster.data.to_str().unwrap().to_owned();
        let init = cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert_success("initdb", &init);

        // A port can be taken between choosing and binding it; a second try settles that.
        for attempt in 0..3 {
            cluster.port = free_port();
            let options = format!(
                "-k {} -p {} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=300",
                cluster.dir.path().display(),
                cluster.port
            );
            let log = cluster.dir.path().join("server.log");
            let start = cluster.run(
                "pg_ctl",
                &[
                    "-D",
                    &data,
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &options,
                    "-W",
                    "start",
                ],
            );
            assert_success("pg_ctl start", &start);
            if cluster.wait_until_ready() {
                return cluster;
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            if attempt == 2 || !log.contains("could not bind") {
                panic!(
                    "the test PostgreSQL server did not accept connections within {:?}; its log:\n{log}",
                    START_DEADLINE
                );
            }
            cluster.stop();
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls `pg_isready` until the server accepts connections, the postmaster is gone, or
    /// the deadline passes.
    fn wait_until_ready(&self) -> bool {
        let started = Instant::now();
        let port = self.port.to_string();
        while started.elapsed() < START_DEADLINE {
            let ready = self.run(
                "pg_isready",
                &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-t", "1"],
            );
            if ready.status.success() {
                return true;
            }
            // The postmaster writes its pid file within moments of starting and removes it
            // when it exits: no file after a while means it gave up (its log says why).
            if started.elapsed() > Duration::from_secs(5)
                && !self.data.join("postmaster.pid").exists()
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn stop(&self) {
        let data = self.data.to_str().unwrap_or_default();
        let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]);
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed for the PostgreSQL tests ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
