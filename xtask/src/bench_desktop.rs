//! `cargo xtask bench desktop-idle [--minutes N] [--opens N] [--no-build]`: the desktop app's footprint,
//! side by side with the floor, a bare Tauri 2 tray app with no logic (`benches/bare-tray`),
//! in one private X session (Xvfb, a D-Bus session bus, the trayer tray host, dunst).
//!
//! 1. Idle: both apps run for N minutes (default 10), `tandem-desktop` enrolled to a local
//!    `tandem-server` with its checks running; Private_Dirty and RSS from smaps_rollup every
//!    5 s, CPU from /proc/PID/stat.
//! 2. The window, `--opens` rounds (default 3), each on a freshly started app: a second
//!    launch with `--open` opens it; the time from that launch until the window has painted
//!    (more than a handful of colours on screen) is "time to first paint" as the user sees
//!    it, broken down from the app's own log (the hand-over, the window's creation, WebKit's
//!    page load, the bundle's start, the first render and frame). Ctrl+W closes it and it is
//!    opened again within the grace (kept, hidden); closed again, the app's log says when it
//!    is destroyed, and the WebKit helpers and the app's memory are followed until they
//!    settle; then it is opened once more (after the grace). Medians over the rounds; the
//!    first round runs with a fresh home directory (no caches), as a user's first open.
//!    `--minutes 0` skips part 1; `--debug` runs the debug builds (for quick A/B, not for
//!    figures), `--app-env NAME=VALUE` adds to the app's environment (A/B of a variable).
//!
//! 3. The floor of part 2: the bare tray app opens a window with a static page the same
//!    way (a second launch with `--open`, handed over before Tauri starts; the same WebKit
//!    settings) and `--close` destroys it; its cold time to first paint and the memory it
//!    keeps after the close are printed next to the app's, as ratios.
//!
//! `--window-process-ab` runs only the floor, alternating its window in the app's process
//! with the same window hosted by a child process that exits on close: what moving
//! Tandem's window out of its process would cost in time to first paint and save in memory.
//!
//! A child of `bench.rs` (it shares that module's helpers); release builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{cpu_ticks, flag, memory_kb, start_server, tempfile_dir, Kill};
use crate::util::{cargo, output, run as run_cmd, step, target_dir};

/// A private X session: every process is killed when it is dropped.
struct Session {
    display: String,
    bus: String,
    dir: PathBuf,
    procs: Vec<Kill>,
}

/// Starts `cmd` and returns the first line it prints on stdout, which these daemons print
/// once they are ready (Xvfb's display number, dbus-daemon's address).
fn spawn_reporting(mut cmd: Command) -> anyhow::Result<(Kill, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .with_context(|| format!("{cmd:?} was not ready within 20 s"))?;
    if line.trim().is_empty() {
        bail!("{cmd:?} exited before it was ready");
    }
    Ok((child, line.trim().to_owned()))
}

impl Session {
    fn start(dir: &Path) -> anyhow::Result<Session> {
        let home = dir.join("home");
        std::fs::create_dir_all(&home)?;
        let mut xvfb = Command::new("Xvfb");
        xvfb.args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-noreset",
            "-screen",
            "0",
            "1280x800x24",
        ]);
        let (x, number) = spawn_reporting(xvfb)?;
        let mut session = Session {
            display: format!(":{number}"),
            bus: String::new(),
            dir: dir.to_owned(),
            procs: vec![x],
        };
        let mut dbus = Command::new("dbus-daemon");
        dbus.args(["--session", "--nofork", "--nopidfile", "--print-address=1"]);
        let (bus, address) = spawn_reporting(dbus)?;
        session.bus = address;
        session.procs.push(bus);
        for (name, args) in [
            ("dunst", &[][..]),
            (
                "trayer",
                &[
                    "--edge",
                    "bottom",
                    "--align",
                    "right",
                    "--widthtype",
                    "request",
                    "--height",
                    "32",
                    "--SetDockType",
                    "true",
                ][..],
            ),
        ] {
            let child = session
                .command(name)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {name}"))?;
            session.procs.push(Kill(child));
        }
        Ok(session)
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("HOME", self.dir.join("home"))
            .env("XDG_CONFIG_HOME", self.dir.join("home/.config"))
            .env("XDG_DATA_HOME", self.dir.join("home/.local/share"))
            .env("XDG_CACHE_HOME", self.dir.join("home/.cache"))
            .env_remove("WAYLAND_DISPLAY");
        cmd
    }

    fn spawn(&mut self, cmd: &mut Command) -> anyhow::Result<u32> {
        self.spawn_to(cmd, Stdio::null())
    }

    /// `spawn` with stderr (where the apps log) going to `stderr`.
    fn spawn_to(&mut self, cmd: &mut Command, stderr: impl Into<Stdio>) -> anyhow::Result<u32> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let pid = child.id();
        self.procs.push(Kill(child));
        Ok(pid)
    }

    /// The id of the top-level window titled exactly `Tandem`, if one is mapped.
    fn tandem_window(&self) -> Option<String> {
        self.window_titled("^Tandem$")
    }

    /// The id of a mapped top-level window whose title matches `pattern`.
    fn window_titled(&self, pattern: &str) -> Option<String> {
        let out = self
            .command("xdotool")
            .args(["search", "--onlyvisible", "--name", pattern])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// Distinct colours in the window: a painted page has many, a blank one a handful.
    fn colours_in(&self, window: &str) -> Option<u64> {
        // `import` can hang on a window destroyed while it grabs; coreutils' timeout bounds it.
        let out = self
            .command("timeout")
            .args([
                "10", "import", "-silent", "-window", window, "-format", "%k", "info:-",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Clients before the X server and the bus, which were started first.
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

/// The WebKit helper processes (`WebKitWebProcess`, `WebKitNetworkProcess`) whose parent is
/// `pid`: WebKitGTK starts them from the app for each web context.
fn webkit_children(pid: u32) -> BTreeSet<(u32, String)> {
    let mut found = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(n, _)| n.to_owned())
            .unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && name.starts_with("WebKit") {
            found.insert((child, name));
        }
    }
    found
}

fn kb_of_children(children: &BTreeSet<(u32, String)>) -> u64 {
    children
        .iter()
        .filter_map(|(pid, _)| memory_kb(*pid).ok())
        .map(|(pd, _)| pd)
        .sum()
}

fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Sampled {
    pd0: u64,
    pd1: u64,
    max_pd: u64,
    rss1: u64,
    cpu_s: f64,
}

/// The grace the bench gives the app (`TANDEM_WINDOW_GRACE_SECS`): long enough for the
/// re-open within it, short enough not to wait long for the destruction after it.
const BENCH_GRACE_SECS: u64 = 6;

/// A `--name VALUE` option given any number of times.
fn values<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

/// "median M unit (all values)", of the finite values.
fn median_of(mut xs: Vec<f64>, unit: &str) -> String {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return "?".into();
    }
    xs.sort_by(f64::total_cmp);
    let all = xs
        .iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("median {:.0} {unit} ({all})", xs[xs.len() / 2])
}

fn median_ms(xs: Vec<f64>) -> String {
    median_of(xs, "ms")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let minutes = flag(args, "--minutes", 10)?;
    let opens = flag(args, "--opens", 3)?.max(1);
    let debug = args.iter().any(|a| a == "--debug");
    if !debug && !args.iter().any(|a| a == "--no-build") {
        step(
            "npm run build (ui/dist, embedded in tandem-desktop)",
            crate::deps::build_ui,
        )?;
        step(
            "cargo build --release (tandem-desktop, bare tray, tandem, tandem-server)",
            || {
                run_cmd(cargo().args([
                    "build",
                    "--release",
                    "-p",
                    "tandem-desktop",
                    "-p",
                    "tandem-bench-bare-tray",
                    "-p",
                    "tandem-cli",
                    "-p",
                    "tandem-server",
                ]))
            },
        )?;
    }
    // `--debug`: the debug builds as they are, to compare variants quickly (not figures to
    // publish). `--app-env NAME=VALUE`: extra environment for the app, for A/B runs.
    let bin = target_dir().join(if debug { "debug" } else { "release" });
    let extra: Vec<(String, String)> = values(args, "--app-env")
        .into_iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // `--server-bins DIR`: `tandem-server` and `tandem` from elsewhere (say, the debug
    // builds while the server's release build is broken or busy); they only enrol the app.
    let server_bins = values(args, "--server-bins")
        .first()
        .map_or_else(|| bin.clone(), PathBuf::from);
    let dir = tempfile_dir("tandem-bench-desktop")?;
    let (_server, url, secret) = start_server(&server_bins, &dir)?;
    let mut session = Session::start(&dir)?;

    let data = dir.join("agent");
    let app_env = |cmd: &mut Command| {
        cmd.env("TANDEM_DATA_DIR", &data)
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .env("TANDEM_WINDOW_GRACE_SECS", BENCH_GRACE_SECS.to_string())
            .env("RUST_LOG", "warn");
        for (k, v) in &extra {
            cmd.env(k, v);
        }
    };
    let mut enroll = session.command(server_bins.join("tandem"));
    app_env(&mut enroll);
    output(enroll.args(["enroll", "--server", &url, "--secret", &secret]))?;

    if minutes > 0 {
        idle(&mut session, &bin, &app_env, &dir, minutes)?;
    }
    if args.iter().any(|a| a == "--window-process-ab") {
        return window_process_ab(&mut session, &bin, &app_env, &dir, opens);
    }
    windows(&mut session, &bin, &app_env, &dir, opens)
}

/// `--window-process-ab`: the floor's window in the app's own process against the same
/// window hosted by a child process that exits on close (the bare app's
/// `TANDEM_BENCH_WINDOW_PROCESS`), `opens` rounds of each, alternating so both see the same
/// load. What the child costs in time to first paint and saves in memory after close.
fn window_process_ab(
    session: &mut Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    dir: &Path,
    opens: u64,
) -> anyhow::Result<()> {
    println!(
        "bench desktop window process A/B: {opens} round(s) each, load average at start {}",
        load_average()
    );
    let child_env = |cmd: &mut Command| {
        app_env(cmd);
        cmd.env("TANDEM_BENCH_WINDOW_PROCESS", "1");
    };
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..opens {
        println!("  in the app's process:");
        runs[0].push(floor_windows(session, bin, app_env, dir, 1)?);
        println!("  in a child process:");
        runs[1].push(floor_windows(session, bin, &child_env, dir, 1)?);
    }
    for (name, floors) in ["in the app's process", "in a child process"]
        .iter()
        .zip(runs)
    {
        let all = |f: fn(&Floor) -> &Vec<f64>| -> Vec<f64> {
            floors.iter().flat_map(|x| f(x).iter().copied()).collect()
        };
        println!("  window {name}, {opens} round(s):");
        println!(
            "    cold (app restarted): on screen {}; after destruction {}",
            median_ms(all(|f| &f.cold)),
            median_ms(all(|f| &f.again))
        );
        println!(
            "    app memory after the window is destroyed, over idle: {}",
            median_of(all(|f| &f.over_idle), "kB")
        );
    }
    println!("  load average now {}", load_average());
    Ok(())
}

/// Starts `tandem-desktop` (logging the window's steps) and waits until it is the running
/// instance and its start-up work (first check run, sync) is over.
fn start_app(
    session: &mut Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    log: &Path,
) -> anyhow::Result<(u32, usize)> {
    let mut app = session.command(bin.join("tandem-desktop"));
    app_env(&mut app);
    // The window's timings are logged at info; nothing else of the app's is.
    app.env("RUST_LOG", "warn,tandem_desktop=info");
    let index = session.procs.len();
    let pid = session.spawn_to(&mut app, std::fs::File::create(log)?)?;
    let owned = wait_until(Duration::from_secs(60), || {
        let out = session
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:dev.tandem.agent.SingleInstance",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("boolean true")
            .then_some(())
    });
    owned.context("the app did not take its single-instance name")?;
    // Quiet: less than 2 clock ticks of CPU in a second (the first check run is over).
    let mut last = cpu_ticks(pid)?;
    wait_until(Duration::from_secs(90), || {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_ticks(pid).ok()?;
        let used = (now.0 + now.1).saturating_sub(last.0 + last.1);
        last = now;
        (used < 2).then_some(())
    });
    Ok((pid, index))
}

/// Private_Dirty once it has settled: five samples a second apart within 512 kB (the
/// memory of the start-up check run is handed back some seconds after it ends); at most a
/// minute.
fn settled_memory(pid: u32) -> anyhow::Result<u64> {
    let mut samples = vec![memory_kb(pid)?.0];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(memory_kb(pid)?.0);
        let last = &samples[samples.len().saturating_sub(5)..];
        let (lo, hi) = (last.iter().min(), last.iter().max());
        if last.len() == 5 && hi.zip(lo).is_some_and(|(h, l)| h - l <= 512) {
            break;
        }
    }
    Ok(samples.last().copied().unwrap_or_default())
}

/// Part 1: both apps idle side by side for `minutes`.
fn idle(
    session: &mut Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    dir: &Path,
    minutes: u64,
) -> anyhow::Result<()> {
    let mut bare = session.command(bin.join("tandem-bench-bare-tray"));
    let bare_pid = session.spawn(&mut bare)?;
    let mut app = session.command(bin.join("tandem-desktop"));
    app_env(&mut app);
    let app_pid = session.spawn_to(&mut app, std::fs::File::create(dir.join("idle.log"))?)?;
    // The first check run and sync happen at start; measure from after them.
    std::thread::sleep(Duration::from_secs(20));

    let clk_tck: f64 = output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()
        .unwrap_or(100.0);
    let pids = [bare_pid, app_pid];
    let start_mem: Vec<(u64, u64)> = pids
        .iter()
        .map(|p| memory_kb(*p))
        .collect::<Result<_, _>>()?;
    let start_cpu: Vec<(u64, u64)> = pids
        .iter()
        .map(|p| cpu_ticks(*p))
        .collect::<Result<_, _>>()?;
    let mut max_pd: Vec<u64> = start_mem.iter().map(|m| m.0).collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        std::thread::sleep(Duration::from_secs(5));
        for (i, pid) in pids.iter().enumerate() {
            max_pd[i] = max_pd[i].max(memory_kb(*pid)?.0);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut sampled = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        let (pd1, rss1) = memory_kb(*pid)?;
        let t1 = cpu_ticks(*pid)?;
        sampled.push(Sampled {
            pd0: start_mem[i].0,
            pd1,
            max_pd: max_pd[i],
            rss1,
            cpu_s: (t1.0 + t1.1).saturating_sub(start_cpu[i].0 + start_cpu[i].1) as f64 / clk_tck,
        });
    }
    println!(
        "bench desktop-idle: {minutes} min idle side by side in one X session (release builds)"
    );
    for (name, s) in ["bare Tauri tray app", "tandem-desktop     "]
        .iter()
        .zip(&sampled)
    {
        println!(
            "  {name}: Private_Dirty {} → {} kB (max {}), RSS {} kB, CPU {:.2} s = {:.3} % of one core",
            s.pd0,
            s.pd1,
            s.max_pd,
            s.rss1,
            s.cpu_s,
            100.0 * s.cpu_s / elapsed
        );
    }
    println!(
        "  ratio (Private_Dirty at the end): {:.2}×",
        sampled[1].pd1 as f64 / sampled[0].pd1.max(1) as f64
    );
    // Both go before the window part, which starts the app afresh for each cold open.
    session.procs.truncate(session.procs.len() - 2);
    Ok(())
}

/// Presses Ctrl+W in the window (the page handles it) and waits for the window to go off
/// the screen; false when the key did not reach it.
fn close_window(session: &Session, window: &str) -> bool {
    let _ = session
        .command("xdotool")
        .args([
            "windowfocus",
            "--sync",
            window,
            "mousemove",
            "--window",
            window,
            "20",
            "300",
            "click",
            "1",
            "key",
            "--clearmodifiers",
            "ctrl+w",
        ])
        .status();
    wait_until(Duration::from_secs(10), || {
        session.tandem_window().is_none().then_some(())
    })
    .is_some()
}

/// Waits for a line containing `what` written to `log` after its first `from` bytes.
fn wait_for_log(log: &Path, from: usize, what: &str, limit: Duration) -> bool {
    wait_until(limit, || {
        let text = std::fs::read_to_string(log).ok()?;
        text.get(from..)?.contains(what).then_some(())
    })
    .is_some()
}

fn log_len(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |l| l.len())
}

/// Part 2: the window, `opens` rounds. Each round starts the app afresh and opens the window
/// by a second launch (cold: the app's first window, WebKit's processes not running), closes
/// it and opens it again within the grace (kept), closes it and waits for its destruction
/// (the after-close memory), then opens it once more (after the grace: a new web process in
/// the context Tauri keeps). The first round runs with a fresh home directory, as on a
/// user's first open ever; later rounds find its caches.
fn windows(
    session: &mut Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    dir: &Path,
    opens: u64,
) -> anyhow::Result<()> {
    println!(
        "bench desktop window: {opens} round(s), grace {BENCH_GRACE_SECS} s, load average at start {}",
        load_average()
    );
    let mut cold = (Vec::new(), Vec::new());
    let mut kept = (Vec::new(), Vec::new());
    let mut after = (Vec::new(), Vec::new());
    let mut over_idle = Vec::new();
    for round in 0..opens {
        let log = dir.join(format!("tandem-desktop-{round}.log"));
        let (app_pid, index) = start_app(session, bin, app_env, &log)?;
        let idle_pd = settled_memory(app_pid)?;
        let before = webkit_children(app_pid);
        if !before.is_empty() {
            println!(
                "  note: {} WebKit helper(s) ran before the window was opened",
                before.len()
            );
        }
        let label = if round == 0 {
            "cold, first ever"
        } else {
            "cold"
        };
        let (window, painted, page) = open_window(session, bin, app_env, &log, label)?;
        cold.0.push(painted);
        cold.1.push(page);
        let open_pd = memory_kb(app_pid)?.0;
        let open_children = webkit_children(app_pid);
        println!(
            "    open: app Private_Dirty {open_pd} kB (idle {idle_pd} kB), WebKit helpers {} kB: {}",
            kb_of_children(&open_children),
            open_children.iter().map(|(p, n)| format!("{n}[{p}]")).collect::<Vec<_>>().join(", ")
        );
        if !close_window(session, &window) {
            println!("    Ctrl+W did not reach the window; round ends here");
            session.procs.remove(index);
            continue;
        }
        // Within the grace: the same window, shown again.
        let (window, painted, page) = open_window(session, bin, app_env, &log, "within the grace")?;
        kept.0.push(painted);
        kept.1.push(page);
        let from = log_len(&log);
        if close_window(session, &window) {
            let grace = Duration::from_secs(BENCH_GRACE_SECS + 30);
            let destroyed = wait_for_log(&log, from, "window destroyed after the grace", grace);
            let gone = wait_until(Duration::from_secs(15), || {
                webkit_children(app_pid)
                    .iter()
                    .all(|(_, n)| n.starts_with("WebKitNetwork"))
                    .then_some(())
            });
            // Let the allocator hand back what the window freed.
            let after_pd = settled_memory(app_pid)?;
            let left = webkit_children(app_pid);
            over_idle.push(after_pd as f64 - idle_pd as f64);
            println!(
                "    after close: window {}, web processes {}, still running: {} ({} kB); app Private_Dirty {after_pd} kB = idle {:+} kB",
                if destroyed { "destroyed after the grace" } else { "NOT destroyed" },
                if gone.is_some() { "gone" } else { "NOT gone" },
                left.iter().map(|(p, n)| format!("{n}[{p}]")).collect::<Vec<_>>().join(", "),
                kb_of_children(&left),
                after_pd as i64 - idle_pd as i64
            );
            let (window, painted, page) =
                open_window(session, bin, app_env, &log, "after the grace")?;
            after.0.push(painted);
            after.1.push(page);
            close_window(session, &window);
        }
        session.procs.remove(index);
    }
    let skip_first = |v: &Vec<f64>| v.iter().skip(1).copied().collect::<Vec<_>>();
    println!("  summary (load average now {}):", load_average());
    println!(
        "    cold, first ever (fresh home): on screen {:.0} ms, page's first frame {:.0} ms",
        cold.0[0], cold.1[0]
    );
    if opens > 1 {
        println!(
            "    cold (app restarted): on screen {}; page's first frame {}",
            median_ms(skip_first(&cold.0)),
            median_ms(skip_first(&cold.1))
        );
    }
    println!(
        "    re-open within the grace: on screen {}",
        median_ms(kept.0)
    );
    println!(
        "    re-open after the grace: on screen {}; page's first frame {}",
        median_ms(after.0.clone()),
        median_ms(after.1)
    );
    println!(
        "    app memory after the window is destroyed, over idle: {}",
        median_of(over_idle.clone(), "kB")
    );
    let floor = floor_windows(session, bin, app_env, dir, opens)?;
    // The app's cold rounds without the first (fresh home), as the floor's, which find the
    // caches the app's first round filled.
    let app_cold = if opens > 1 {
        skip_first(&cold.0)
    } else {
        cold.0.clone()
    };
    println!("  floor: the bare Tauri app's window (static page, same window settings), {opens} round(s):");
    println!(
        "    cold (app restarted): on screen {}; hand-over {}",
        median_ms(floor.cold.clone()),
        median_ms(floor.handover.clone())
    );
    println!(
        "    re-open after the window was destroyed: on screen {}",
        median_ms(floor.again.clone())
    );
    println!(
        "    memory after the window is destroyed, over idle: {}",
        median_of(floor.over_idle.clone(), "kB")
    );
    let ratio = |app: Vec<f64>, floor: Vec<f64>| match (median(app), median(floor)) {
        (Some(a), Some(f)) if f > 0.0 => format!("{:.2}× ({a:.0} / {f:.0})", a / f),
        _ => "?".into(),
    };
    println!("  app ÷ floor (medians):");
    println!(
        "    cold first paint on screen: {}",
        ratio(app_cold, floor.cold)
    );
    println!(
        "    first paint after the grace / after destruction: {}",
        ratio(after.0, floor.again)
    );
    let (app_left, floor_left) = (median(over_idle), median(floor.over_idle));
    println!(
        "    memory left after close, over idle: app {} kB, floor {} kB, difference {} kB",
        app_left.map_or("?".into(), |v| format!("{v:+.0}")),
        floor_left.map_or("?".into(), |v| format!("{v:+.0}")),
        app_left
            .zip(floor_left)
            .map_or("?".into(), |(a, f)| format!("{:+.0}", a - f)),
    );
    Ok(())
}

/// The median of the finite values, if any.
fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.retain(|x| x.is_finite());
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

/// What the floor's window rounds measured, in ms and kB.
struct Floor {
    cold: Vec<f64>,
    handover: Vec<f64>,
    again: Vec<f64>,
    over_idle: Vec<f64>,
}

/// The floor of part 2: the bare Tauri app (`benches/bare-tray`) opens a window with a
/// static page the same way (a second launch with `--open`, handed over before Tauri starts,
/// the same WebKit settings), `--close` destroys it (then `malloc_trim`, as the app does).
/// Each round on a freshly started bare app: open (cold), close, wait for the web process to
/// go and the memory to settle, open again.
fn floor_windows(
    session: &mut Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    dir: &Path,
    opens: u64,
) -> anyhow::Result<Floor> {
    let mut floor = Floor {
        cold: Vec::new(),
        handover: Vec::new(),
        again: Vec::new(),
        over_idle: Vec::new(),
    };
    let socket = dir.join("home/.tandem-bench-bare-tray.sock");
    for round in 0..opens {
        let log = dir.join(format!("bare-tray-{round}.log"));
        let _ = std::fs::remove_file(&socket);
        let mut bare = session.command(bin.join("tandem-bench-bare-tray"));
        app_env(&mut bare);
        let index = session.procs.len();
        let pid = session.spawn_to(&mut bare, std::fs::File::create(&log)?)?;
        // Listening: the bare app binds its socket once Tauri is set up.
        wait_until(Duration::from_secs(60), || socket.exists().then_some(()))
            .context("the bare app did not start")?;
        let idle_pd = settled_memory(pid)?;
        let (painted, handover) = open_bare(session, bin, app_env, &log, "cold")?;
        floor.cold.push(painted);
        floor.handover.push(handover);
        let open_children = webkit_children(pid);
        println!(
            "    open: bare Private_Dirty {} kB (idle {idle_pd} kB), WebKit helpers {} kB",
            memory_kb(pid)?.0,
            kb_of_children(&open_children),
        );
        bare_request(session, bin, app_env, "--close")?;
        wait_until(Duration::from_secs(10), || {
            session.window_titled("^Bare tray$").is_none().then_some(())
        })
        .context("the bare window did not close")?;
        let gone = wait_until(Duration::from_secs(15), || {
            webkit_children(pid)
                .iter()
                .all(|(_, n)| n.starts_with("WebKitNetwork"))
                .then_some(())
        });
        let after_pd = settled_memory(pid)?;
        floor.over_idle.push(after_pd as f64 - idle_pd as f64);
        println!(
            "    after close: web processes {}; bare Private_Dirty {after_pd} kB = idle {:+} kB",
            if gone.is_some() { "gone" } else { "NOT gone" },
            after_pd as i64 - idle_pd as i64
        );
        let (painted, _) = open_bare(session, bin, app_env, &log, "after destruction")?;
        floor.again.push(painted);
        bare_request(session, bin, app_env, "--close")?;
        session.procs.remove(index);
    }
    Ok(floor)
}

/// A second launch of the bare app with `request` (`--open`, `--close`).
fn bare_request(
    session: &Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    request: &str,
) -> anyhow::Result<()> {
    let mut second = session.command(bin.join("tandem-bench-bare-tray"));
    app_env(&mut second);
    let status = second.arg(request).status()?;
    if !status.success() {
        bail!("the bare app's second launch ({request}) failed: {status}");
    }
    Ok(())
}

/// Opens the bare app's window by a second launch; answers the milliseconds from the launch
/// until it was painted on screen, and until the running app heard the request.
fn open_bare(
    session: &Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    log: &Path,
    which: &str,
) -> anyhow::Result<(f64, f64)> {
    let from = log_len(log);
    let launched = Instant::now();
    let launched_at = seconds_of_day(std::time::SystemTime::now());
    bare_request(session, bin, app_env, "--open")?;
    let handed_over = launched.elapsed();
    let window = wait_until(Duration::from_secs(30), || {
        session.window_titled("^Bare tray$")
    })
    .context("the bare window did not appear")?;
    let mapped = launched.elapsed();
    wait_until(Duration::from_secs(30), || {
        (session.colours_in(&window)? > 16).then_some(())
    })
    .context("the bare window did not paint")?;
    let painted = launched.elapsed().as_secs_f64() * 1000.0;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let new = text.get(from..).unwrap_or_default();
    let asked = new
        .lines()
        .find_map(|l| l.strip_prefix("bare window asked at "))
        .and_then(|t| t.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |t| (t - launched_at) * 1000.0);
    let at = |what: &str| {
        new.lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.rsplit_once("at_ms="))
            .map_or("?".to_owned(), |(_, v)| v.trim().to_owned())
    };
    println!(
        "  bare window ({which}): second launch exited {:.0} ms, mapped {:.0} ms, first paint {painted:.0} ms after the launch",
        handed_over.as_secs_f64() * 1000.0,
        mapped.as_secs_f64() * 1000.0,
    );
    println!(
        "    breakdown: hand-over {asked:.0} ms; then window created +{} ms, page load started +{} ms, finished +{} ms",
        at("window created"),
        at("page load started"),
        at("page load finished"),
    );
    Ok((painted, asked))
}

/// Opens the window by a second launch with `--open`, as from the applications menu, and
/// prints where the time went. Answers with the window, and the milliseconds from the launch
/// until it was painted on screen and until the page's own first frame (NaN when the page
/// was already loaded: a window kept within the grace).
fn open_window(
    session: &Session,
    bin: &Path,
    app_env: &dyn Fn(&mut Command),
    app_log: &Path,
    which: &str,
) -> anyhow::Result<(String, f64, f64)> {
    let logged_before = std::fs::read_to_string(app_log).unwrap_or_default().len();
    let launched = Instant::now();
    let launched_at = seconds_of_day(std::time::SystemTime::now());
    let mut second = session.command(bin.join("tandem-desktop"));
    app_env(&mut second);
    second.arg("--open");
    let status = second.status()?;
    if !status.success() {
        bail!("the second launch failed: {status}");
    }
    let handed_over = launched.elapsed();
    let window = wait_until(Duration::from_secs(30), || session.tandem_window())
        .context("the window did not appear")?;
    let mapped = launched.elapsed();
    wait_until(Duration::from_secs(30), || {
        (session.colours_in(&window)? > 16).then_some(())
    })
    .context("the window did not paint")?;
    let painted = launched.elapsed();
    // The page reports its first frame just after painting it; a kept window says so.
    let log = wait_until(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(app_log).ok()?;
        let new = log.get(logged_before..)?.to_owned();
        (new.contains("window first paint") || new.contains("window shown again")).then_some(new)
    })
    .unwrap_or_default();
    let line = |what: &str| log.lines().find(|l| l.contains(what)).map(plain);
    let field = |line: &Option<String>, name: &str| -> Option<f64> {
        line.as_deref()?
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))?
            .parse()
            .ok()
    };
    // The running app heard the second launch at this time, on the wall clock.
    let asked = line("another launch asked")
        .and_then(|l| l.split_whitespace().next().and_then(time_of_day))
        .map(|t| (t - launched_at) * 1000.0);
    let created = line("window created");
    let started = line("window page load started");
    let finished = line("window page load finished");
    let first = line("window first paint");
    let ms = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0}"));
    println!(
        "  window ({which}): second launch exited {:.0} ms, mapped {:.0} ms, first paint {:.0} ms after the launch",
        handed_over.as_secs_f64() * 1000.0,
        mapped.as_secs_f64() * 1000.0,
        painted.as_secs_f64() * 1000.0
    );
    // From the moment the running app was asked (tray, reminder or second launch alike).
    println!(
        "    breakdown: hand-over (launch → running app asked) {} ms; then window created +{} ms, \
         page load started +{} ms, bundle running +{} ms, first render +{} ms, first update +{} ms, next frame began +{} ms, \
         WebKit's first contentful paint +{} ms, first frame +{} ms, page load finished +{} ms",
        ms(asked),
        ms(field(&created, "at_ms")),
        ms(field(&started, "at_ms")),
        ms(field(&first, "script_ms")),
        ms(field(&first, "rendered_ms")),
        ms(field(&first, "first_update_ms")),
        ms(field(&first, "frame_ms")),
        ms(field(&first, "contentful_ms")),
        ms(field(&first, "painted_ms")),
        ms(field(&finished, "at_ms")),
    );
    let page = asked
        .zip(field(&first, "painted_ms"))
        .map_or(f64::NAN, |(a, p)| a + p);
    Ok((window, painted.as_secs_f64() * 1000.0, page))
}

/// A log line without ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since midnight UTC of a time.
fn seconds_of_day(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() % 86_400.0)
        .unwrap_or_default()
}

/// Seconds since midnight of a tracing timestamp (`2026-11-28T22:30:01.123456Z`).
fn time_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
