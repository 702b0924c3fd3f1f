//! `cargo xtask demo`: the whole product on one machine — tandem-server on embedded SQLite,
//! an enrolment secret and an admin token, this machine's agent enrolled to it, and the
//! desktop app (or the headless agent when there is no display).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use crate::deps;
use crate::util::{cargo, output, run as run_cmd, step, target_dir};

/// Kills the demo's processes however the demo ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn last_line(text: &str) -> anyhow::Result<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
        .context("the command printed nothing")
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let listen = match args {
        [] => "127.0.0.1:8080".to_owned(),
        [flag, addr] if flag == "--listen" => addr.clone(),
        _ => bail!("usage: cargo xtask demo [--listen ADDR]"),
    };
    let has_display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    step("system packages", || {
        let mut packages: Vec<&str> = deps::BUILD_PACKAGES.to_vec();
        packages.extend(["sqlite3", "oathtool"]);
        deps::ensure_packages(&packages)?;
        deps::ensure_node()
    })?;
    step("frontend", deps::build_ui)?;
    step("build", || {
        run_cmd(cargo().args([
            "build",
            "-p",
            "tandem-server",
            "-p",
            "tandem-cli",
            "-p",
            "tandem-desktop",
        ]))
    })?;

    let bin = target_dir().join("debug");
    let demo_dir = dirs_home().join(".local/share/tandem-demo");
    let server_dir = demo_dir.join("server");
    let agent_dir = demo_dir.join("agent");
    std::fs::create_dir_all(&server_dir)
        .with_context(|| format!("cannot create {}", server_dir.display()))?;
    let database = format!("sqlite://{}", server_dir.join("tandem-server.db").display());
    let server = bin.join("tandem-server");

    let secret = last_line(&output(Command::new(&server).args([
        "enroll-secret",
        "create",
        "--group",
        "default",
        "--database",
        &database,
    ]))?)?;
    let admin_token = last_line(&output(Command::new(&server).args([
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "demo",
        "--database",
        &database,
    ]))?)?;

    // An IT console account: a fresh password each run; the TOTP secret is printed once,
    // when the account is created (an earlier demo run's account keeps its own).
    let console_password = random_hex(12)?;
    let console = Command::new(&server)
        .args([
            "admin",
            "create",
            "--username",
            "demo",
            "--role",
            "admin",
            "--database",
            &database,
        ])
        .env("TANDEM_SERVER_ADMIN_PASSWORD", &console_password)
        .output()
        .context("cannot run tandem-server admin create")?;
    let console_totp = if console.status.success() {
        Some(last_line(&String::from_utf8_lossy(&console.stdout))?)
    } else {
        None
    };

    let mut children = Children(Vec::new());
    let mut child = Command::new(&server)
        .args(["serve", "--listen", &listen, "--database", &database])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start tandem-server")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from tandem-server")?;
    children.0.push(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => {
                bail!("tandem-server exited before it was listening (is {listen} already in use?)")
            }
        }
    };
    // Keep draining the server's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    // The OS keyring when a Secret Service answers on this session, else a 0600 file.
    let store = if has_secret_service() {
        "keyring"
    } else {
        "file"
    };
    let tandem = bin.join("tandem");
    run_cmd(
        Command::new(&tandem)
            .args(["enroll", "--server", &url, "--secret", &secret])
            .env("TANDEM_DATA_DIR", &agent_dir)
            .env("TANDEM_CREDENTIAL_STORE", store),
    )?;

    let face = if has_display {
        Command::new(bin.join("tandem-desktop"))
            .arg("--open")
            .env("TANDEM_DATA_DIR", &agent_dir)
            .env("TANDEM_CREDENTIAL_STORE", store)
            .spawn()
            .context("cannot start tandem-desktop")?
    } else {
        Command::new(&tandem)
            .arg("run")
            .env("TANDEM_DATA_DIR", &agent_dir)
            .env("TANDEM_CREDENTIAL_STORE", store)
            .spawn()
            .context("cannot start tandem run")?
    };
    children.0.push(face);

    println!();
    println!("Tandem demo is running.");
    println!("  Server:       {url}");
    println!("  Admin token:  {admin_token}");
    println!(
        "  Agent data:   {}  (token in the {store} store)",
        agent_dir.display()
    );
    println!(
        "  Agent face:   {}",
        if has_display {
            "tandem-desktop (tray + window)"
        } else {
            "tandem run (no display found)"
        }
    );
    match &console_totp {
        Some(totp) => {
            println!("  IT console:   {url}/console  user demo, password {console_password}");
            println!("                TOTP secret {totp} (add it to an authenticator app, or");
            println!("                `oathtool --totp -b {totp}` prints the current code)");
        }
        None => println!(
            "  IT console:   {url}/console  (the `demo` account from an earlier run; delete {} to start afresh)",
            demo_dir.display()
        ),
    }
    println!();
    println!("Try:");
    println!("  curl -s -H 'Authorization: Bearer {admin_token}' {url}/api/v1/admin/devices");
    println!(
        "  TANDEM_DATA_DIR={} {} status",
        agent_dir.display(),
        tandem.display()
    );
    println!("Press Ctrl-C to stop.");

    // Wait for the agent face; Ctrl-C ends the whole process group, and Drop cleans up
    // when the face exits on its own.
    if let Some(face) = children.0.last_mut() {
        let _ = face.wait();
    }
    Ok(())
}

/// `bytes` random bytes from the OS, hex-encoded.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn has_secret_service() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return false;
    }
    Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        .unwrap_or(false)
}
