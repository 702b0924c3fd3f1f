//! The built binaries and the processes the tests start from them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The directory holding the workspace's built binaries: `TANDEM_BIN_DIR`, else the profile
/// directory this test binary was built into (`target/debug/deps/it-…` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TANDEM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The path of a workspace binary; fails with the command that builds it when missing.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.is_file() {
        bail!(
            "{} is not built; run `cargo build --workspace --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a command to completion and returns its output, failing with its stderr.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The last non-empty line of a command's stdout (where secrets are printed).
pub fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit, up to `timeout`; kills it after that.
    pub fn terminate(mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("{} did not stop within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tandem-server` on a free loopback port with its own SQLite file (or a given URL).
pub struct Server {
    pub url: String,
    pub database: String,
    pub proc: Proc,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh SQLite file in a temporary directory.
    pub fn start_sqlite() -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let database = format!("sqlite://{}", dir.path().join("server.db").display());
        let mut server = Server::start(&database)?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts `tandem-server serve --listen 127.0.0.1:0` and waits for its "listening on"
    /// line (no sleeping: the line is printed once the socket is bound).
    pub fn start(database: &str) -> anyhow::Result<Server> {
        Server::start_with_args(database, &[])
    }

    /// Like [`Server::start_sqlite`], with more `serve` arguments.
    pub fn start_sqlite_with_args(extra: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let database = format!("sqlite://{}", dir.path().join("server.db").display());
        let mut server = Server::start_with_args(&database, extra)?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Like [`Server::start`], with more `serve` arguments.
    pub fn start_with_args(database: &str, extra: &[&str]) -> anyhow::Result<Server> {
        let mut child = Command::new(bin("tandem-server")?)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start tandem-server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let proc = Proc {
            child,
            name: "tandem-server".into(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .context("tandem-server did not print its listening address within 30 s")?;
        Ok(Server {
            url,
            database: database.to_owned(),
            proc,
            _dir: None,
        })
    }

    /// Runs a `tandem-server` admin subcommand on this server's database; returns the
    /// secret it printed on its last line.
    pub fn admin_secret(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = run_ok(
            Command::new(bin("tandem-server")?)
                .args(args)
                .args(["--database", &self.database]),
        )?;
        Ok(last_line(&out))
    }
}

/// `tandem` bound to one data dir.
pub struct Tandem {
    pub data_dir: PathBuf,
    pub envs: Vec<(String, String)>,
}

impl Tandem {
    pub fn new(data_dir: &Path) -> Tandem {
        Tandem {
            data_dir: data_dir.to_owned(),
            envs: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Tandem {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn cmd(&self) -> anyhow::Result<Command> {
        let mut cmd = Command::new(bin("tandem")?);
        cmd.env("TANDEM_DATA_DIR", &self.data_dir)
            .env("TANDEM_LOG", "info");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    pub fn run_ok(&self, args: &[&str]) -> anyhow::Result<Output> {
        run_ok(self.cmd()?.args(args))
    }

    pub fn status_json(&self) -> anyhow::Result<serde_json::Value> {
        let out = self.run_ok(&["status", "--json"])?;
        serde_json::from_slice(&out.stdout).context("tandem status --json printed malformed JSON")
    }

    /// Starts `tandem run` in the background.
    pub fn spawn_run(&self) -> anyhow::Result<Proc> {
        let child = self
            .cmd()?
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Proc {
            child,
            name: "tandem run".into(),
        })
    }
}

/// Polls `f` until it returns `Some`, or fails after `timeout`. For conditions another
/// process brings about, where there is nothing to wait on directly.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
