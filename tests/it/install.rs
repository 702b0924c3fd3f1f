//! The Linux packages: built by `xtask bundle` from the debug binaries, checked by lintian,
//! installed with apt into a clean Debian 12 root made by debootstrap, and the installed
//! `tandem` enrolling silently from a deployed `/etc/tandem/enroll.json` to a real server on
//! the host's loopback; then purged again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tandem_e2e::procs::{bin, bin_dir, run_ok, wait_for, Proc, Server};

const INSTALLED_CLI: &str = "/usr/bin/tandem";
const PACKAGE: &str = "tandem";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
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

#[test]
fn the_deb_passes_lintian_installs_enrols_silently_and_purges() {
    assert!(
        is_root(),
        "this test bootstraps a Debian root and chroots into it: it must run as root (as CI does)"
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

    // Installed into a clean Debian 12 root with apt, so the package's declared
    // dependencies (and nothing this build machine happens to have) make it work.
    let root = CleanRoot::new();
    std::fs::copy(&deb, root.path("/tmp/tandem.deb")).unwrap();
    let install_started = Instant::now();
    root.apt_install("/tmp/tandem.deb");
    eprintln!(
        "clean root: apt-get install ./tandem.deb took {:?}",
        install_started.elapsed()
    );
    let version = run_ok(&mut root.cmd(&[INSTALLED_CLI, "--version"])).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("tandem {}", env!("CARGO_PKG_VERSION"))
    );
    run_ok(
        Command::new("desktop-file-validate").arg(root.path("/etc/xdg/autostart/tandem.desktop")),
    )
    .unwrap();
    let conffiles =
        std::fs::read_to_string(root.path("/var/lib/dpkg/info/tandem.conffiles")).unwrap();
    assert!(conffiles.contains("/etc/xdg/autostart/tandem.desktop"));
    // The desktop app's shared libraries all resolve from the declared dependencies.
    let ldd = run_ok(&mut root.cmd(&["ldd", "/usr/bin/tandem-desktop"])).unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(!ldd.contains("not found"), "unresolved libraries:\n{ldd}");

    // IT drops /etc/tandem/enroll.json: the first `tandem run` (as the packaged unit runs
    // it) enrols without being asked, against a real server on the host's loopback.
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    std::fs::write(
        root.path("/etc/tandem/enroll.json"),
        serde_json::json!({"server_url": server.url, "enroll_secret": secret, "group": "default"})
            .to_string(),
    )
    .unwrap();
    assert_eq!(root.status()["enrolled"], false);

    let (run, lines) = spawn_run(root.agent(&[]));
    let log = wait_line(&lines, "enrolled silently");
    assert!(!log.contains(&secret), "the secret was logged:\n{log}");
    let device_id = root.status()["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The server's admin API sees the device and its first report: IT sees it without
    // anyone touching the machine.
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
    let (run, lines) = spawn_run(root.agent(&[]));
    wait_line(&lines, "already enrolled");
    run.terminate(Duration::from_secs(10)).unwrap();
    assert_eq!(root.status()["enrollment"]["device_id"], device_id.as_str());

    // A malformed file is reported clearly, without the secret, and the agent keeps running
    // unenrolled rather than crash-looping.
    std::fs::write(
        root.path("/etc/tandem/bad.json"),
        format!(r#"{{"server_url": "http://203.0.113.9", "enroll_secret": "{secret}"}}"#),
    )
    .unwrap();
    let mut fresh = root.agent(&[]);
    fresh
        .env("TANDEM_DATA_DIR", "/var/lib/tandem-fresh")
        .env("TANDEM_ENROLL_FILE", "/etc/tandem/bad.json");
    let (run, lines) = spawn_run(fresh);
    let log = wait_line(&lines, "silent enrolment failed");
    assert!(log.contains("plain http"), "{log}");
    assert!(!log.contains(&secret), "the secret was logged:\n{log}");
    run.terminate(Duration::from_secs(10)).unwrap();

    // Purge removes what the package installed and the headless agent's state.
    run_ok(&mut root.cmd(&["apt-get", "purge", "-y", "-qq", PACKAGE])).unwrap();
    for gone in [
        INSTALLED_CLI,
        "/usr/bin/tandem-desktop",
        "/etc/xdg/autostart/tandem.desktop",
        "/usr/lib/systemd/system/tandem.service",
        "/var/lib/tandem",
    ] {
        assert!(!root.path(gone).exists(), "{gone} is left after purge");
    }
}

/// A clean Debian 12 (bookworm, minbase) root to install the package into.
///
/// The bootstrapped root is kept as a tarball, and the packages apt downloads in a
/// directory, under `TANDEM_CLEAN_ROOT_CACHE` (default `/var/cache/tandem/clean-root`, the
/// directory CI keeps between runs): a cold run pays debootstrap and the downloads once, a
/// warm run unpacks the tarball and installs offline. Every command runs in a private mount
/// namespace (`unshare --mount`), so the /proc and cache mounts vanish with it even when a
/// test fails half-way.
struct CleanRoot {
    dir: tempfile::TempDir,
    archives: PathBuf,
}

const SUITE: &str = "bookworm";

impl CleanRoot {
    fn cache_dir() -> PathBuf {
        std::env::var_os("TANDEM_CLEAN_ROOT_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/tandem/clean-root"))
    }

    fn new() -> CleanRoot {
        let cache = Self::cache_dir();
        let archives = cache.join("apt-archives");
        std::fs::create_dir_all(archives.join("partial")).unwrap();
        let tarball = cache.join(format!("{SUITE}-minbase.tar.zst"));
        let started = Instant::now();
        if !tarball.exists() {
            Self::bootstrap(&tarball);
            eprintln!(
                "clean root: debootstrap (cold) took {:?}",
                started.elapsed()
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let unpacked = Instant::now();
        run_ok(
            Command::new("tar")
                .args(["--zstd", "--numeric-owner", "-xpf"])
                .arg(&tarball)
                .arg("-C")
                .arg(dir.path()),
        )
        .unwrap();
        eprintln!("clean root: unpacked in {:?}", unpacked.elapsed());
        // The root is thrown away after the test: dpkg need not fsync every file it
        // unpacks, which is most of an install's time on a busy disk.
        std::fs::write(
            dir.path().join("etc/dpkg/dpkg.cfg.d/unsafe-io"),
            "force-unsafe-io\n",
        )
        .unwrap();
        CleanRoot { dir, archives }
    }

    /// Runs debootstrap into a scratch directory and keeps the result as `tarball`, with
    /// apt's package lists, so later runs need no network for what is cached.
    fn bootstrap(tarball: &Path) {
        let mirror = std::env::var("TANDEM_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let scratch = tempfile::tempdir().unwrap();
        let archives = tarball.parent().unwrap().join("apt-archives");
        // debootstrap keeps what it downloads in its own cache dir, so even a lost tarball
        // is rebuilt without the network.
        let debs = tarball.parent().unwrap().join("debootstrap-debs");
        std::fs::create_dir_all(&debs).unwrap();
        run_ok(
            Command::new("debootstrap")
                .args(["--variant=minbase"])
                .arg(format!("--cache-dir={}", debs.display()))
                .arg(SUITE)
                .arg(scratch.path())
                .arg(&mirror),
        )
        .unwrap();
        let root = CleanRoot {
            dir: scratch,
            archives,
        };
        run_ok(&mut root.cmd(&["apt-get", "update", "-qq"])).unwrap();
        let tmp = tarball.with_extension("partial");
        run_ok(
            Command::new("tar")
                .args(["--zstd", "--numeric-owner", "-cpf"])
                .arg(&tmp)
                .arg("-C")
                .arg(root.dir.path())
                .arg("."),
        )
        .unwrap();
        std::fs::rename(&tmp, tarball).unwrap();
    }

    /// A path inside the root.
    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// `args` run inside the root, as root, with /proc and the package cache mounted.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "set -e; root=$1; archives=$2; shift 2; \
                 mount -t proc proc \"$root/proc\"; \
                 mount --bind \"$archives\" \"$root/var/cache/apt/archives\"; \
                 exec chroot \"$root\" \"$@\"",
            )
            .arg("sh")
            .arg(self.dir.path())
            .arg(&self.archives)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// `tandem` inside the root, configured as the packaged systemd unit runs it.
    fn agent(&self, args: &[&str]) -> Command {
        let mut all = vec![INSTALLED_CLI];
        all.extend_from_slice(args);
        let mut cmd = self.cmd(&all);
        cmd.env("TANDEM_DATA_DIR", "/var/lib/tandem")
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .env("TANDEM_LOG", "info,tandem_agent::bootstrap=debug");
        cmd
    }

    fn status(&self) -> serde_json::Value {
        let out = run_ok(&mut self.agent(&["status", "--json"])).unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Installs a local package with apt, which resolves its dependencies: from the cached
    /// downloads and lists first, and only when those fall short after refreshing the lists.
    fn apt_install(&self, deb: &str) {
        let install = || {
            run_ok(&mut self.cmd(&[
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                deb,
            ]))
        };
        if let Err(offline) = install() {
            eprintln!("clean root: installing from the cache fell short ({offline}); refreshing the lists");
            run_ok(&mut self.cmd(&["apt-get", "update", "-qq"])).unwrap();
            install().unwrap();
        }
    }
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
