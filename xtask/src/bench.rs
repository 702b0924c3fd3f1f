//! `cargo xtask bench`: the speed and footprint figures of BENCHMARKS.md, printed with the
//! command that produced them. Release builds; numbers, not pass/fail.
//!
//! - `checks [--runs N]`: median wall time of `tandem check` against the median of the
//!   probes' own commands run back to back by a shell, and their ratio.
//! - `agent-idle [--minutes N]`: `tandem run` enrolled to a local `tandem-server`, idle:
//!   private memory (Private_Dirty from /proc/PID/smaps_rollup), RSS and average CPU, the
//!   agent's own and with the probes it started.
//! - `agent-day`: one simulated day of checks, reports, policy polls and nudge ticks in a
//!   few minutes (`crates/agent/examples/simulated_day.rs`), memory after every hour.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::util::{cargo, output, run as run_cmd, step, target_dir};

#[path = "bench_desktop.rs"]
mod desktop;

fn release_bins() -> anyhow::Result<PathBuf> {
    step("cargo build --release (tandem, tandem-server)", || {
        run_cmd(cargo().args([
            "build",
            "--release",
            "-p",
            "tandem-cli",
            "-p",
            "tandem-server",
        ]))
    })?;
    Ok(target_dir().join("release"))
}

fn flag(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| format!("bad value for {name}")),
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("checks") => checks(&args[1..]),
        Some("agent-idle") => agent_idle(&args[1..]),
        Some("desktop-idle") => desktop::run(&args[1..]),
        Some("agent-day") => agent_day(),
        Some("fleet") => crate::bench_fleet::run(&args[1..]),
        _ => bail!(
            "usage: cargo xtask bench checks [--runs N] | agent-idle [--minutes N] | agent-day | desktop-idle [--minutes N (0: window only)] [--opens N] [--no-build] [--debug] [--server-bins DIR] [--app-env NAME=VALUE] | fleet [--backend sqlite|postgres] [--agents N] …"
        ),
    }
}

fn checks(args: &[String]) -> anyhow::Result<()> {
    let runs = flag(args, "--runs", 21)?;
    let bin = release_bins()?;
    let dir = tempfile_dir("tandem-bench-checks")?;
    let tandem = bin.join("tandem");
    let data = dir.join("agent");
    let bundle = dir.join("bundle.json");
    output(
        Command::new(&tandem)
            .arg("--data-dir")
            .arg(&data)
            .args(["diagnose", "--out"])
            .arg(&bundle),
    )?;
    let text = std::fs::read_to_string(&bundle)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let mut script = String::from("export LC_ALL=C\n");
    for c in json["commands"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let mut line = shell_quote(c["program"].as_str().unwrap_or_default());
        for a in c["args"].as_array().map(Vec::as_slice).unwrap_or_default() {
            line.push(' ');
            line.push_str(&shell_quote(a.as_str().unwrap_or_default()));
        }
        script.push_str(&line);
        script.push_str(" >/dev/null 2>&1\n");
    }
    let time = |cmd: &mut Command| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
        let took = started.elapsed();
        if !status.success() {
            bail!("{cmd:?} failed");
        }
        Ok(took)
    };
    // One warm-up of each, so both read from a warm page cache.
    time(
        Command::new(&tandem)
            .arg("--data-dir")
            .arg(&data)
            .args(["check", "--json"]),
    )?;
    time(Command::new("sh").arg("-c").arg(&script))?;
    let mut agent = Vec::new();
    let mut shell = Vec::new();
    for _ in 0..runs {
        agent.push(time(
            Command::new(&tandem)
                .arg("--data-dir")
                .arg(&data)
                .args(["check", "--json"]),
        )?);
        shell.push(time(Command::new("sh").arg("-c").arg(&script))?);
    }
    let (a, s) = (median(agent), median(shell));
    println!(
        "bench checks: {runs} runs each, {} probe commands",
        script.lines().count() - 1
    );
    println!(
        "  tandem check --json (all checks, new process each run): median {:.1} ms",
        ms(a)
    );
    println!(
        "  the probes' commands back to back in sh:                 median {:.1} ms",
        ms(s)
    );
    println!(
        "  ratio tandem / shell: {:.2}",
        a.as_secs_f64() / s.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn tempfile_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// (Private_Dirty kB, Rss kB) of a process.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("Private_Dirty:"), field("Rss:")))
}

/// CPU time of a process in clock ticks: (its own user + system, that of its children
/// that have exited and been waited for — the probes it ran).
fn cpu_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    Ok((n(11) + n(12), n(13) + n(14)))
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(bin: &Path, dir: &Path) -> anyhow::Result<(Kill, String, String)> {
    let db = format!("sqlite://{}", dir.join("server.db").display());
    let secret = output(Command::new(bin.join("tandem-server")).args([
        "enroll-secret",
        "create",
        "--database",
        &db,
    ]))?;
    let secret = secret.lines().last().unwrap_or_default().trim().to_owned();
    let mut child = Command::new(bin.join("tandem-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        // A simulated day makes a day's requests in minutes; the per-token limit is for
        // leaked tokens, not for this.
        .env("TANDEM_SERVER_TOKEN_RATE_LIMIT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Kill(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => bail!("tandem-server exited before listening"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url, secret))
}

fn agent_idle(args: &[String]) -> anyhow::Result<()> {
    let minutes = flag(args, "--minutes", 10)?;
    let bin = release_bins()?;
    let dir = tempfile_dir("tandem-bench-idle")?;
    let (_server, url, secret) = start_server(&bin, &dir)?;
    let data = dir.join("agent");
    let tandem = bin.join("tandem");
    output(
        Command::new(&tandem)
            .env("TANDEM_DATA_DIR", &data)
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .args(["enroll", "--server", &url, "--secret", &secret]),
    )?;
    let child = Command::new(&tandem)
        .env("TANDEM_DATA_DIR", &data)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .env("TANDEM_LOG", "warn")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let _agent = Kill(child);
    // The first check run and sync happen at start; measure from after them.
    std::thread::sleep(Duration::from_secs(20));
    let clk_tck: f64 = output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()
        .unwrap_or(100.0);
    let (pd0, rss0) = memory_kb(pid)?;
    let t0 = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut max_pd = pd0;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        std::thread::sleep(Duration::from_secs(5));
        max_pd = max_pd.max(memory_kb(pid)?.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (pd1, rss1) = memory_kb(pid)?;
    let t1 = cpu_ticks(pid)?;
    let cpu = t1.0.saturating_sub(t0.0) as f64 / clk_tck;
    let children = t1.1.saturating_sub(t0.1) as f64 / clk_tck;
    println!("bench agent-idle: `tandem run` enrolled to a local tandem-server, {minutes} min idle (release build)");
    println!("  Private_Dirty: start {pd0} kB, end {pd1} kB, max {max_pd} kB");
    println!("  RSS:           start {rss0} kB, end {rss1} kB");
    println!(
        "  CPU: {cpu:.2} s over {elapsed:.0} s = {:.3} % of one core",
        100.0 * cpu / elapsed
    );
    println!(
        "  CPU with the probes it ran: {:.2} s = {:.3} % of one core",
        cpu + children,
        100.0 * (cpu + children) / elapsed
    );
    Ok(())
}

fn agent_day() -> anyhow::Result<()> {
    let bin = release_bins()?;
    step("cargo build --release --example simulated_day", || {
        run_cmd(cargo().args([
            "build",
            "--release",
            "-p",
            "tandem-agent",
            "--example",
            "simulated_day",
        ]))
    })?;
    let dir = tempfile_dir("tandem-bench-day")?;
    let (_server, url, secret) = start_server(&bin, &dir)?;
    let data = dir.join("agent");
    output(
        Command::new(bin.join("tandem"))
            .env("TANDEM_DATA_DIR", &data)
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .args(["enroll", "--server", &url, "--secret", &secret]),
    )?;
    println!("bench agent-day: one simulated day of an enrolled agent (release build)");
    run_cmd(
        Command::new(bin.join("examples").join("simulated_day"))
            .env("TANDEM_LOG", "warn")
            .arg(&data),
    )
}
