//! `cargo xtask bench fleet`: the server figures of BENCHMARKS.md. A release
//! `tandem-server` on SQLite or PostgreSQL and the fleet simulator (`crates/fleet-sim`) run
//! side by side on this machine; each measurement gets a fresh server process on the same
//! database, so that one's connections and memory do not leak into the next.
//!
//! - ingest: reports offered at `--rate` per second by `--ingest-agents` agents, then as
//!   fast as the server answers (closed loop); reports/s, p50/p99 latency, CPU of each side.
//! - push: `--push-agents` agents long-polling, one policy PUT; time until 99 % hold it.
//! - long-polls: `--agents` long-polls held by two simulator processes; the server's
//!   memory per held connection.
//!
//! Options: `--backend sqlite|postgres`, `--agents N` (20000), `--push-agents N` (10000),
//! `--ingest-agents N` (2000), `--rate R` (5000), `--duration S` (30), `--only
//! ingest|push|longpoll`, `--no-build`, `--server-bin PATH`, `--sim-bin PATH`, `--grown-mb N` (SQLite: start
//! from a database file that once held N MB, its pages now free, as on a server that has
//! run a while and pruned old reports; made with the `sqlite3` CLI). PostgreSQL: `TANDEM_BENCH_DATABASE_URL` names an existing empty
//! database; otherwise a temporary cluster is made with `initdb` (as the `postgres` user
//! when run as root, as the server refuses to run as root).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::util::{cargo, output, run as run_cmd, step, target_dir};

/// Makes `path` a SQLite file of `mb` MB of free pages, for the server to migrate: the
/// state of a database that held that much and had it pruned. A fresh file grows with the
/// pages the server writes where a used one takes them from its free list, and below 1 GB
/// SQLite's stock page cache does work at every commit (BENCHMARKS.md, session 9), so a
/// fresh file alone does not say how a server that has run a while behaves.
fn grow_sqlite(path: &Path, mb: u64) -> anyhow::Result<()> {
    let sql = format!(
        "PRAGMA journal_mode = OFF;
         CREATE TABLE bench_filler (b BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {mb})
         INSERT INTO bench_filler (b) SELECT zeroblob(1048576) FROM n;
         DROP TABLE bench_filler;"
    );
    run_cmd(Command::new("sqlite3").arg(path).arg(sql))
        .context("the sqlite3 CLI (apt package sqlite3, in `cargo xtask deps`)")
}

/// Issue 4's targets.
const TARGET_REPORTS_PER_S: f64 = 5000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_PUSH_MS: f64 = 2000.0;
/// What the reports/s of a run may fall short of the target by and still meet it: the
/// sends at its window's edges (see `print_ingest`).
const RATE_EDGE: f64 = 0.001;

/// Connections a simulator process holds at most (its own descriptors are limited too).
const AGENTS_PER_SIM: usize = 10_000;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .map_err(|_| anyhow::anyhow!("bad value for {name}")),
    }
}

/// Runs `program` with the soft descriptor limit raised to the hard one: every simulated
/// agent and every held long-poll is a socket.
fn with_fd_limit(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
        .arg(program);
    command
}

fn hard_fd_limit() -> usize {
    output(Command::new("sh").args(["-c", "ulimit -Hn"]))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let backend = flag(args, "--backend", "sqlite".to_owned())?;
    let agents: usize = flag(args, "--agents", 20_000)?;
    let push_agents: usize = flag(args, "--push-agents", 10_000)?;
    let ingest_agents: usize = flag(args, "--ingest-agents", 2_000)?;
    let rate: f64 = flag(args, "--rate", TARGET_REPORTS_PER_S)?;
    let duration: u64 = flag(args, "--duration", 30)?;
    let only = flag(args, "--only", String::new())?;
    let grown_mb: u64 = flag(args, "--grown-mb", 0)?;
    let wants = |what: &str| only.is_empty() || only.split(',').any(|o| o == what);

    // `--no-build` reuses release binaries already built (another build may hold the lock).
    let build = !args.iter().any(|a| a == "--no-build");
    step(
        "cargo build --release (tandem-server, tandem-fleet-sim)",
        || {
            if !build {
                return Ok(());
            }
            run_cmd(cargo().args([
                "build",
                "--release",
                "-p",
                "tandem-server",
                "-p",
                "tandem-fleet-sim",
            ]))
        },
    )?;
    let bin = target_dir().join("release");
    // `--server-bin` runs another build of the server against the same simulator: A/B pairs
    // of two builds, alternated, on a machine whose speed drifts (BENCHMARKS.md).
    let server_bin = match flag(args, "--server-bin", String::new())? {
        path if path.is_empty() => bin.join("tandem-server"),
        path => std::path::PathBuf::from(path),
    };
    // `--sim-bin` likewise, for A/B pairs of two simulator builds.
    let sim_bin = match flag(args, "--sim-bin", String::new())? {
        path if path.is_empty() => bin.join("tandem-fleet-sim"),
        path => std::path::PathBuf::from(path),
    };
    let dir = std::env::temp_dir().join(format!("tandem-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let (pg, database) = match backend.as_str() {
        "sqlite" => {
            let path = dir.join("server.db");
            if grown_mb > 0 {
                step(
                    &format!("sqlite3: a database grown to {grown_mb} MB"),
                    || grow_sqlite(&path, grown_mb),
                )?;
            }
            (None, format!("sqlite://{}", path.display()))
        }
        "postgres" => match std::env::var("TANDEM_BENCH_DATABASE_URL") {
            Ok(url) => (None, url),
            Err(_) => {
                let cluster = PgCluster::start(&dir)?;
                let url = cluster.create_database("tandem_bench")?;
                (Some(cluster), url)
            }
        },
        other => bail!("--backend is sqlite or postgres, not {other}"),
    };
    let last_line = |out: String| out.lines().last().unwrap_or_default().trim().to_owned();
    // The run's own secrets key, for the CLI as for the server below, rather than one in
    // the data dir of whoever runs the bench.
    let key_file = dir.join("secrets.key");
    let cli = || {
        let mut command = Command::new(&server_bin);
        command.env("TANDEM_SECRETS_KEY_FILE", &key_file);
        command
    };
    let secret = last_line(output(cli().args([
        "enroll-secret",
        "create",
        "--database",
        &database,
    ]))?);
    let admin = last_line(output(cli().args([
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "bench",
        "--database",
        &database,
    ]))?);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let fd_limit = hard_fd_limit();
    println!(
        "bench fleet: tandem-server ({backend}) and tandem-fleet-sim side by side on {cores} cores, \
         release builds, descriptor limit {fd_limit} per process"
    );

    let mut sim_run = 0u32;
    let mut sim = |server: &Server, extra: &[&str]| -> anyhow::Result<Value> {
        sim_run += 1;
        let mut command = with_fd_limit(&sim_bin);
        command
            .args(["--server", &server.url, "--secret", &secret])
            .args(["--server-pid", &server.pid.to_string()])
            .args(["--name", &format!("run{sim_run}")])
            .args(extra);
        result_of(&output(&mut command)?)
    };

    if wants("ingest") {
        let server = Server::start(&server_bin, &database, &dir)?;
        let rate_s = rate.to_string();
        let n_s = ingest_agents.to_string();
        let d_s = duration.to_string();
        let fixed = sim(
            &server,
            &[
                "ingest",
                "--agents",
                &n_s,
                "--rate",
                &rate_s,
                "--duration",
                &d_s,
            ],
        )?;
        print_ingest(&format!("offered {rate}/s"), &fixed);
        let closed = sim(
            &server,
            &[
                "ingest",
                "--agents",
                "256",
                "--rate",
                "0",
                "--duration",
                &d_s,
            ],
        )?;
        print_ingest("closed loop", &closed);
    }

    if wants("push") {
        let server = Server::start(&server_bin, &database, &dir)?;
        let n_s = push_agents.to_string();
        let result = sim(
            &server,
            &[
                "--source-addrs",
                "4",
                "push",
                "--agents",
                &n_s,
                "--admin-token",
                &admin,
            ],
        )?;
        let p99 = num(&result, "p99_ms");
        println!(
            "  push to {} long-polling agents: PUT answered in {:.0} ms; first {:.0} ms, 50 % {:.0} ms, \
             99 % {p99:.0} ms, all {:.0} ms ({} of {} received)",
            result["agents"],
            num(&result, "put_ms"),
            num(&result, "first_ms"),
            num(&result, "p50_ms"),
            num(&result, "all_ms"),
            result["received"],
            result["agents"],
        );
        println!(
            "    target 99 % within {TARGET_PUSH_MS:.0} ms: ratio {:.2} ({})",
            p99 / TARGET_PUSH_MS,
            if p99 < TARGET_PUSH_MS {
                "met"
            } else {
                "NOT met"
            }
        );
    }

    if wants("longpoll") {
        let server = Server::start(&server_bin, &database, &dir)?;
        // The server needs a descriptor per connection plus its own few dozen.
        let budget = fd_limit.saturating_sub(100);
        let n = if agents > budget {
            println!(
                "  {agents} long-polls asked, {budget} held: the server's descriptor limit is \
                 {fd_limit} and cannot be raised here"
            );
            budget
        } else {
            agents
        };
        let result = longpolls(&sim_bin, &server, &secret, n)?;
        let kb = |k: &str| result[k].as_u64().unwrap_or_default();
        println!(
            "  {} long-polls held (ramped up in {:.1} s); server RSS {} → {} kB, Private_Dirty {} → {} kB; \
             open descriptors {} → {}",
            result["parked"],
            num(&result, "seconds_to_park"),
            kb("server_rss_kb_before"),
            kb("server_rss_kb_after"),
            kb("server_private_dirty_kb_before"),
            kb("server_private_dirty_kb_after"),
            result["server_fds_before"],
            result["server_fds_after"],
        );
        println!(
            "    per held long-poll: {:.0} bytes RSS, {:.0} bytes Private_Dirty",
            num(&result, "rss_bytes_per_connection"),
            num(&result, "private_dirty_bytes_per_connection"),
        );
    }
    // The cluster stops before its directory goes; a failed run leaves the files to read.
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn result_of(stdout: &str) -> anyhow::Result<Value> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("the simulator printed no RESULT line")?;
    Ok(serde_json::from_str(line)?)
}

fn print_ingest(label: &str, r: &Value) {
    let rate = num(r, "reports_per_s");
    let p99 = num(r, "p99_ms");
    println!(
        "  ingest ({label}, {} agents, {} s): {rate:.0} reports/s accepted, p50 {:.1} ms, p99 {p99:.1} ms, \
         max {:.1} ms (p99 from the scheduled send {:.1} ms); 503s {}, errors {}; \
         CPU cores used: server {:.2}, simulator {:.2}",
        r["agents"],
        r["duration_s"],
        num(r, "p50_ms"),
        num(r, "max_ms"),
        num(r, "p99_from_schedule_ms"),
        r["overloaded_503"],
        r["errors"],
        num(r, "server_cpu_cores"),
        num(r, "sim_cpu_cores"),
    );
    // A run offered exactly the target counts the reports sent within its window, and the
    // sends at the window's two edges fall in or out of it by chance: a report or two either
    // way, which is not a shortfall. A server that falls behind loses far more than 0.1 %
    // and answers 503 besides, so the rate is met within that margin and only without 503s
    // or errors.
    let clean = r["overloaded_503"].as_u64() == Some(0) && r["errors"].as_u64() == Some(0);
    let rate_met = clean && rate >= TARGET_REPORTS_PER_S * (1.0 - RATE_EDGE);
    println!(
        "    targets ≥ {TARGET_REPORTS_PER_S:.0}/s and p99 < {TARGET_P99_MS:.0} ms: rate ratio {:.4} ({}), \
         p99 ratio {:.2} ({})",
        rate / TARGET_REPORTS_PER_S,
        if rate_met { "met" } else { "NOT met" },
        p99 / TARGET_P99_MS,
        if p99 < TARGET_P99_MS { "met" } else { "NOT met" },
    );
}

/// `n` long-polls from as many simulator processes as their own descriptor limits need;
/// the first one reads the server's memory once all of them are parked.
fn longpolls(sim_bin: &Path, server: &Server, secret: &str, n: usize) -> anyhow::Result<Value> {
    let procs = n.div_ceil(AGENTS_PER_SIM).max(1);
    let mut sims: Vec<(Kill, ChildStdin, BufReader<std::process::ChildStdout>)> = Vec::new();
    for k in 0..procs {
        let agents = n / procs + usize::from(k < n % procs);
        let mut command = with_fd_limit(sim_bin);
        command
            .args(["--server", &server.url, "--secret", secret])
            .args(["--name", &format!("poll{k}")])
            .args(["--source-addrs", "4", "--first-source"])
            .arg((1 + 4 * k).to_string());
        if k == 0 {
            command.args(["--server-pid", &server.pid.to_string()]);
        }
        command
            .args(["longpoll", "--sync", "--agents", &agents.to_string()])
            .args(["--expect-parked", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn().context("could not start the simulator")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        sims.push((Kill(child), stdin, stdout));
    }
    // Everyone enrolled before anyone polls, so the memory baseline is taken after all
    // enrolment work.
    for (_, _, stdout) in &mut sims {
        let mut line = String::new();
        while line.trim() != "READY" {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                bail!("a simulator exited before it was ready");
            }
        }
    }
    for (_, stdin, _) in &mut sims {
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
    }
    let mut result = None;
    if let Some((_, _, stdout)) = sims.first_mut() {
        let mut line = String::new();
        while result.is_none() {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                bail!("the simulator exited before its result");
            }
            if let Some(json) = line.trim().strip_prefix("RESULT ") {
                result = Some(serde_json::from_str(json)?);
            }
        }
    }
    // Closing stdin ends each simulator; Kill reaps them.
    drop(sims);
    result.context("no simulator")
}

struct Server {
    _child: Kill,
    url: String,
    pid: u32,
}

impl Server {
    fn start(bin: &Path, database: &str, dir: &Path) -> anyhow::Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let mut child = with_fd_limit(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            // The fleet enrols from one host and reports more often than real agents.
            .env("TANDEM_SERVER_ENROLL_RATE_LIMIT", "0")
            .env("TANDEM_SERVER_TOKEN_RATE_LIMIT", "0")
            .env("TANDEM_SECRETS_KEY_FILE", dir.join("secrets.key"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout")?;
        let child = Kill(child);
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => bail!(
                    "tandem-server exited before listening (log: {})",
                    dir.join("server.log").display()
                ),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            _child: child,
            url,
            pid,
        })
    }
}

/// A throwaway PostgreSQL cluster, stopped on drop.
struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir(&self.dir);
        command
    }

    fn start(parent: &Path) -> anyhow::Result<PgCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("no /usr/lib/postgresql: install postgresql or set TANDEM_BENCH_DATABASE_URL")?
            .flatten()
            .filter_map(|e| {
                let major: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((major, bin))
            })
            .max()
            .map(|(_, bin)| bin)
            .context("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let dir = parent.join("pg");
        std::fs::create_dir_all(&dir)?;
        let as_postgres = output(Command::new("id").arg("-u"))?.trim() == "0";
        if as_postgres {
            run_cmd(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir),
            )?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = PgCluster {
            bin,
            data: dir.join("data"),
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data.display().to_string();
        output(cluster.command("initdb").args([
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]))?;
        // Durable commits as a production server would have them; a bigger connection
        // limit than the server's pool needs.
        let options = format!(
            "-k {} -p {port} -h 127.0.0.1 -c max_connections=200",
            cluster.dir.display()
        );
        let log = cluster.dir.join("postgres.log").display().to_string();
        output(
            cluster
                .command("pg_ctl")
                .args(["-D", &data, "-l", &log, "-o", &options, "-w", "start"]),
        )?;
        let started = Instant::now();
        let port_s = port.to_string();
        loop {
            let ready = cluster
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &port_s, "-t", "1"])
                .output()?;
            if ready.status.success() {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("PostgreSQL did not start; see {log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(cluster)
    }

    fn create_database(&self, name: &str) -> anyhow::Result<String> {
        output(self.command("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
