//! The Linux packages: built by `xtask bundle` from the debug binaries, checked by lintian,
//! installed with dpkg on this machine, and the installed `tandem` enrolling silently from
//! a deployed enrolment file to a real server; then removed again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tandem_e2e::procs::{bin, bin_dir, run_ok, wait_for, Proc, Server};

const INSTALLED_CLI: &str = "/usr/bin/tandem";
const PACKAGE: &str = "tandem";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Purges the package when the test ends, passed or not, so the machine is left as found.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
    }
}

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// `tandem` as installed, on its own data dir and token file.
fn installed(data: &Path, enroll_file: &Path) -> Command {
    let mut cmd = Command::new(INSTALLED_CLI);
    cmd.env("TANDEM_DATA_DIR", data)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .env("TANDEM_ENROLL_FILE", enroll_file)
        .env("TANDEM_LOG", "info,tandem_agent::bootstrap=debug");
    cmd
}

/// Starts `tandem run` and hands back its stderr lines as they come.
fn spawn_run(mut cmd: Command) -> (Proc, mpsc::Receiver<String>) {
    let mut child = cmd
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let proc = Proc {
        child,
        name: "installed tandem run".into(),
    };
    (proc, rx)
}

/// Reads lines until one contains `needle`; returns everything read.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return seen;
                }
            }
            Err(e) => panic!("no line with `{needle}` ({e}); saw:\n{seen}"),
        }
    }
}

fn status(data: &Path, enroll_file: &Path) -> serde_json::Value {
    let out = run_ok(installed(data, enroll_file).args(["status", "--json"])).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_deb_passes_lintian_installs_enrols_silently_and_purges() {
    assert!(
        is_root(),
        "this test installs the .deb with dpkg and must run as root (as CI does)"
    );
    let out_dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(bin("xtask").unwrap())
            .args(["bundle", "--debug", "--no-build", "--bundles", "deb,rpm"])
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--out")
            .arg(out_dir.path()),
    )
    .unwrap();
    let find = |ext: &str| {
        std::fs::read_dir(out_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap_or_else(|| panic!("no .{ext} was built"))
    };
    let deb = find("deb");
    let rpm = find("rpm");

    // Debian's own checker finds no error (warnings are allowed and listed in the log).
    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--allow-root"])
        .arg(&deb)
        .output()
        .unwrap();
    let lint_out = String::from_utf8_lossy(&lint.stdout);
    eprintln!("lintian:\n{lint_out}");
    assert!(
        lint.status.success() && !lint_out.lines().any(|l| l.starts_with("E:")),
        "lintian found errors:\n{lint_out}\n{}",
        String::from_utf8_lossy(&lint.stderr)
    );

    // The autostart entry as shipped is a valid desktop entry.
    run_ok(
        Command::new("desktop-file-validate")
            .arg(repo_root().join("installer/linux/tandem-autostart.desktop")),
    )
    .unwrap();

    // The .rpm carries the same files and its scriptlets.
    let listing = run_ok(Command::new("rpm").arg("-qpl").arg(&rpm)).unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in [
        "/usr/bin/tandem",
        "/usr/bin/tandem-desktop",
        "/etc/xdg/autostart/tandem.desktop",
        "/usr/lib/systemd/system/tandem.service",
    ] {
        assert!(
            listing.lines().any(|l| l == path),
            "{path} missing from the rpm:\n{listing}"
        );
    }
    let scripts = run_ok(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm)).unwrap();
    assert!(String::from_utf8_lossy(&scripts.stdout).contains("disable --now tandem.service"));

    // Installed with dpkg on this machine (its dependencies are the build's own libraries).
    let _purge = Installed;
    run_ok(Command::new("dpkg").arg("-i").arg(&deb)).unwrap();
    let version = run_ok(Command::new(INSTALLED_CLI).arg("--version")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
    run_ok(Command::new("desktop-file-validate").arg("/etc/xdg/autostart/tandem.desktop")).unwrap();
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/tandem.conffiles").unwrap();
    assert!(conffiles.contains("/etc/xdg/autostart/tandem.desktop"));

    // A deployed enrolment file: the first `tandem run` enrols without being asked. The file
    // is named through TANDEM_ENROLL_FILE rather than written to /etc/tandem, so other
    // agents on this machine (other tests) do not pick it up.
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let conf = tempfile::tempdir().unwrap();
    let enroll_file = conf.path().join("enroll.json");
    std::fs::write(
        &enroll_file,
        serde_json::json!({"server_url": server.url, "enroll_secret": secret, "group": "default"})
            .to_string(),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    assert_eq!(status(data.path(), &enroll_file)["enrolled"], false);

    let (run, lines) = spawn_run(installed(data.path(), &enroll_file));
    let log = wait_line(&lines, "enrolled silently");
    assert!(!log.contains(&secret), "the secret was logged:\n{log}");
    let device_id = status(data.path(), &enroll_file)["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The device's first report reaches the server: IT sees it without anyone touching it.
    let client = reqwest::blocking::Client::new();
    wait_for(Duration::from_secs(30), "the device's first report", || {
        let devices: serde_json::Value = client
            .get(format!("{}/api/v1/admin/devices", server.url))
            .bearer_auth(&admin)
            .send()
            .ok()?
            .json()
            .ok()?;
        let device = devices
            .as_array()?
            .iter()
            .find(|d| d["id"] == device_id.as_str())?
            .clone();
        device["last_report_at"].is_string().then_some(())
    })
    .unwrap();
    run.terminate(Duration::from_secs(10)).unwrap();

    // A restart does not enrol again: same device, the file is not even used.
    let (run, lines) = spawn_run(installed(data.path(), &enroll_file));
    wait_line(&lines, "already enrolled");
    run.terminate(Duration::from_secs(10)).unwrap();
    assert_eq!(
        status(data.path(), &enroll_file)["enrollment"]["device_id"],
        device_id.as_str()
    );

    // A malformed file is reported clearly, without the secret, and the agent keeps running
    // unenrolled rather than crash-looping.
    let bad = conf.path().join("bad.json");
    std::fs::write(
        &bad,
        format!(r#"{{"server_url": "http://203.0.113.9", "enroll_secret": "{secret}"}}"#),
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (run, lines) = spawn_run(installed(fresh.path(), &bad));
    let log = wait_line(&lines, "silent enrolment failed");
    assert!(log.contains("plain http"), "{log}");
    assert!(!log.contains(&secret), "the secret was logged:\n{log}");
    run.terminate(Duration::from_secs(10)).unwrap();

    // Purge removes what the package installed.
    run_ok(Command::new("dpkg").args(["--purge", PACKAGE])).unwrap();
    assert!(!Path::new(INSTALLED_CLI).exists());
    assert!(!Path::new("/etc/xdg/autostart/tandem.desktop").exists());
    assert!(!Path::new("/usr/lib/systemd/system/tandem.service").exists());
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").args(args).current_dir(dir)).unwrap();
}

/// A CA and, when `server` is set, a certificate for 127.0.0.1 and localhost signed by it.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

#[test]
fn the_server_terminates_tls_and_the_agent_trusts_only_the_pinned_ca() {
    let pki = tempfile::tempdir().unwrap();
    make_ca(pki.path(), "tandem-ca");
    make_ca(pki.path(), "other-ca");
    make_server_cert(pki.path(), "tandem-ca");

    let db = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", db.path().join("server.db").display());
    let mut child = Command::new(bin("tandem-server").unwrap())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .arg("--tls-cert")
        .arg(pki.path().join("server.pem"))
        .arg("--tls-key")
        .arg(pki.path().join("server.key"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _server = Proc {
        child,
        name: "tandem-server (TLS)".into(),
    };
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let admin = |args: &[&str]| {
        let out = run_ok(
            Command::new(bin("tandem-server").unwrap())
                .args(args)
                .args(["--database", &database]),
        )
        .unwrap();
        tandem_e2e::procs::last_line(&out)
    };
    let secret = admin(&["enroll-secret", "create"]);

    let data = tempfile::tempdir().unwrap();
    let agent = tandem_e2e::procs::Tandem::new(data.path()).env("TANDEM_CREDENTIAL_STORE", "file");
    let enroll = |ca: Option<&str>| {
        let mut cmd = agent.cmd().unwrap();
        cmd.args(["enroll", "--server", &url, "--secret", &secret]);
        if let Some(ca) = ca {
            cmd.arg("--ca-file").arg(pki.path().join(ca));
        }
        cmd.output().unwrap()
    };
    // The public roots do not know the test CA, and a different pinned CA is no better.
    for ca in [None, Some("other-ca.pem")] {
        let out = enroll(ca);
        assert!(!out.status.success(), "enrolled with CA {ca:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("certificate") || err.contains("cannot reach"),
            "{err}"
        );
    }
    let out = enroll(Some("tandem-ca.pem"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pin is remembered: later requests go through without naming the CA again.
    agent.run_ok(&["sync"]).unwrap();
    assert_eq!(agent.status_json().unwrap()["enrolled"], true);
}
