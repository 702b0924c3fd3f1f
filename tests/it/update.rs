//! Agent self-update across processes: a real `tandem-server` holding a release signed with
//! `tauri signer`, and the real `tandem` CLI installing it — or refusing it, when a proxy
//! tampers with the signature on the way, leaving the binary as it was and telling IT.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tandem_e2e::procs::{bin, Server, Tandem};
use tandem_e2e::proxy::Proxy;

fn tauri_cli() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/node_modules/.bin/tauri");
    assert!(
        cli.exists(),
        "{} is missing: `cargo xtask deps` installs the frontend's npm packages",
        cli.display()
    );
    cli
}

/// A fresh updater key pair without a password: (private key path, public key).
pub(crate) fn keypair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("updater.key");
    let out = Command::new(tauri_cli())
        .args(["signer", "generate", "--ci", "-p", "", "-w"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(dir.join("updater.key.pub")).unwrap();
    (key, public.trim().to_owned())
}

/// `tauri signer sign`: the contents of the `.sig` file it writes beside the artifact.
pub(crate) fn sign(key: &Path, artifact: &Path) -> String {
    let out = Command::new(tauri_cli())
        .args(["signer", "sign", "-p", "", "-f"])
        .arg(key)
        .arg(artifact)
        .env("TAURI_SIGNING_PRIVATE_KEY_PASSWORD", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sig = artifact.as_os_str().to_owned();
    sig.push(".sig");
    std::fs::read_to_string(sig).unwrap().trim().to_owned()
}

/// The same number of characters, each one changed.
fn tampered(fragment: &str) -> String {
    fragment
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' => c.to_ascii_lowercase(),
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            '+' => '/',
            _ => '+',
        })
        .collect()
}

fn enrolled(server_url: &str, secret: &str, dir: &Path) -> Tandem {
    let agent = Tandem::new(dir).env("TANDEM_CREDENTIAL_STORE", "file");
    agent
        .run_ok(&["enroll", "--server", server_url, "--secret", secret])
        .unwrap();
    agent.run_ok(&["sync"]).unwrap();
    agent
}

/// A copy of the real `tandem` binary to be replaced, executable like an installed one.
fn installed_copy(dir: &Path) -> PathBuf {
    let path = dir.join("tandem");
    std::fs::copy(bin("tandem").unwrap(), &path).unwrap();
    path
}

#[test]
fn a_signed_update_is_installed_and_a_tampered_one_is_refused_and_reported() {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keypair(keys.path());
    let artifact_path = keys.path().join("tandem-99.0.0");
    let mut artifact = b"#!/bin/sh\necho 'tandem 99.0.0 (update test build)'\n".to_vec();
    artifact.extend((0..100_000u32).map(|i| b'#' + (i % 50) as u8));
    std::fs::write(&artifact_path, &artifact).unwrap();
    let signature = sign(&key, &artifact_path);

    let server = Server::start_sqlite_with_args(&["--updater-pubkey", &public]).unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let secret = server
        .admin_secret(&[
            "enroll-secret",
            "create",
            "--group",
            "default",
            "--max-uses",
            "5",
        ])
        .unwrap();
    let target = format!("cli-linux-{}", std::env::consts::ARCH);
    let form = reqwest::blocking::multipart::Form::new()
        .text("version", "99.0.0")
        .text("target", target.clone())
        .text("signature", signature.clone())
        .text("notes", "update test build")
        .part(
            "artifact",
            reqwest::blocking::multipart::Part::bytes(artifact.clone()).file_name("tandem"),
        );
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/admin/releases", server.url))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap());

    // A device talking to the server directly installs the signed release.
    let data = tempfile::tempdir().unwrap();
    let agent = enrolled(&server.url, &secret, data.path());
    let out = agent.run_ok(&["update", "--check"]).unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("99.0.0"), "{said}");
    let install = tempfile::tempdir().unwrap();
    let path = installed_copy(install.path());
    let mode_before =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    agent
        .run_ok(&[
            "update",
            "--install-path",
            path.to_str().unwrap(),
            "--pubkey",
            &public,
        ])
        .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        artifact,
        "the binary was replaced"
    );
    let mode_after =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode_after, mode_before);
    let installed = Command::new(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&installed.stdout).contains("tandem 99.0.0"));
    assert_eq!(
        std::fs::read_dir(install.path()).unwrap().count(),
        1,
        "no temporary file is left beside the binary"
    );

    // Another device reaches the server through a proxy that alters the signature.
    let proxy = Proxy::start(&server.url).unwrap();
    let data2 = tempfile::tempdir().unwrap();
    let victim = enrolled(&proxy.url, &secret, data2.path());
    let fragment = &signature[100..124];
    proxy.rewrite_answers(fragment, &tampered(fragment));
    let install2 = tempfile::tempdir().unwrap();
    let path2 = installed_copy(install2.path());
    let original = std::fs::read(&path2).unwrap();
    let out = victim
        .cmd()
        .unwrap()
        .args([
            "update",
            "--install-path",
            path2.to_str().unwrap(),
            "--pubkey",
            &public,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a tampered update was accepted: {stderr}"
    );
    assert!(
        stderr.contains("refused") && stderr.contains("signature"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&path2).unwrap(),
        original,
        "the binary is untouched"
    );
    assert_eq!(std::fs::read_dir(install2.path()).unwrap().count(), 1);

    // IT sees the refusal among the device's events; the first device's success too.
    for (who, kind) in [(&victim, "update_refused"), (&agent, "update_applied")] {
        let id = who.status_json().unwrap()["enrollment"]["device_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let device: Value = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/admin/devices/{id}", server.url))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let events = device["events"].as_array().unwrap();
        let event = events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {device}"));
        assert!(
            event["detail"].as_str().unwrap().contains("99.0.0"),
            "{event}"
        );
    }
}

/// The events the server holds for the device `agent` enrolled as.
fn device_events(server: &Server, admin: &str, agent: &Tandem) -> Vec<Value> {
    let id = agent.status_json().unwrap()["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let device: Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/admin/devices/{id}", server.url))
        .bearer_auth(admin)
        .send()
        .unwrap()
        .json()
        .unwrap();
    device["events"].as_array().cloned().unwrap_or_default()
}

/// `tandem run` from `binary`, checking for updates every second with `public` pinned; its
/// stdout lines come back on the receiver (the restarted build prints there).
fn run_updating(
    agent: &Tandem,
    binary: &Path,
    public: &str,
) -> (tandem_e2e::procs::Proc, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut cmd = Command::new(binary);
    cmd.env("TANDEM_DATA_DIR", &agent.data_dir)
        .env("TANDEM_LOG", "info")
        .env("TANDEM_UPDATER_PUBKEY", public)
        .env("TANDEM_UPDATE_INTERVAL_SECS", "1");
    for (k, v) in &agent.envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let proc = tandem_e2e::procs::Proc {
        child,
        name: "tandem run (self-updating)".into(),
    };
    (proc, rx)
}

#[test]
fn the_running_agent_updates_itself_and_restarts_and_keeps_running_on_a_bad_signature() {
    use std::time::Duration;

    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keypair(keys.path());
    let artifact_path = keys.path().join("tandem-99.1.0");
    // The "new build" says it was started, and with which arguments, then exits.
    let mut artifact = b"#!/bin/sh\necho \"tandem 99.1.0 started with: $*\"\n".to_vec();
    artifact.extend((0..50_000u32).map(|i| b'#' + (i % 50) as u8));
    std::fs::write(&artifact_path, &artifact).unwrap();
    let signature = sign(&key, &artifact_path);

    let server = Server::start_sqlite_with_args(&["--updater-pubkey", &public]).unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--max-uses", "5"])
        .unwrap();
    let form = reqwest::blocking::multipart::Form::new()
        .text("version", "99.1.0")
        .text("target", format!("cli-linux-{}", std::env::consts::ARCH))
        .text("signature", signature.clone())
        .part(
            "artifact",
            reqwest::blocking::multipart::Part::bytes(artifact.clone()).file_name("tandem"),
        );
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/admin/releases", server.url))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().unwrap());

    // Through a proxy that alters the signature, the running agent refuses the update,
    // tells IT, and goes on running the binary it has.
    let proxy = tandem_e2e::proxy::Proxy::start(&server.url).unwrap();
    let fragment = &signature[100..124];
    proxy.rewrite_answers(fragment, &tampered(fragment));
    let data = tempfile::tempdir().unwrap();
    let victim = enrolled(&proxy.url, &secret, data.path());
    let install = tempfile::tempdir().unwrap();
    let path = installed_copy(install.path());
    let original = std::fs::read(&path).unwrap();
    let (mut run, _lines) = run_updating(&victim, &path, &public);
    tandem_e2e::procs::wait_for(
        Duration::from_secs(120),
        "update_refused on the server",
        || {
            device_events(&server, &admin, &victim)
                .iter()
                .any(|e| e["kind"] == "update_refused")
                .then_some(())
        },
    )
    .unwrap();
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the agent stopped after a refused update"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "the binary is untouched"
    );
    assert_eq!(std::fs::read_dir(install.path()).unwrap().count(), 1);
    run.terminate(Duration::from_secs(10)).unwrap();

    // Straight to the server: the running agent installs the signed build, reports it and
    // restarts into it with the same arguments.
    let data = tempfile::tempdir().unwrap();
    let agent = enrolled(&server.url, &secret, data.path());
    let install = tempfile::tempdir().unwrap();
    let path = installed_copy(install.path());
    let (mut run, lines) = run_updating(&agent, &path, &public);
    let line = lines
        .recv_timeout(Duration::from_secs(120))
        .expect("the updated build never started");
    assert_eq!(line, "tandem 99.1.0 started with: run");
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        artifact,
        "the binary was replaced"
    );
    let events = device_events(&server, &admin, &agent);
    let applied = events
        .iter()
        .find(|e| e["kind"] == "update_applied")
        .unwrap_or_else(|| panic!("no update_applied event in {events:?}"));
    assert!(
        applied["detail"].as_str().unwrap().contains("99.1.0"),
        "{applied}"
    );
}
