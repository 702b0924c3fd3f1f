//! The built binary: its commands print secrets on the last line, `serve` announces its
//! address, and a policy pushed from another process reaches parked long-polls (on both
//! backends: the CLI takes a `postgres://` URL as well).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tandem_proto::v1::{self, SignedPolicy};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::support::{verify, Backend, TestServer};

on_both_backends!(
    secrets_made_by_the_cli_work_against_the_server,
    a_policy_pushed_from_the_cli_reaches_a_parked_long_poll,
);

const BIN: &str = env!("CARGO_BIN_EXE_tandem-server");

/// Runs the CLI on `t`'s database, with the secrets key `t`'s server has.
async fn run_on(t: &TestServer, args: &[&str]) -> String {
    run(args, Some(&t.db.secrets_key_file())).await
}

/// Runs the CLI; without `key`, the key file is wherever the CLI puts it by default.
async fn run(args: &[&str], key: Option<&Path>) -> String {
    let mut command = Command::new(BIN);
    command.args(args).env("RUST_LOG", "warn");
    if let Some(key) = key {
        command.env("TANDEM_SECRETS_KEY_FILE", key);
    }
    let output = command.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tandem-server {args:?} failed: {stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

fn last_line(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

async fn secrets_made_by_the_cli_work_against_the_server(backend: Backend) {
    let t = TestServer::start(backend).await;
    let db = t.db_url.as_str();

    let out = run_on(
        &t,
        &[
            "enroll-secret",
            "create",
            "--group",
            "eng",
            "--database",
            db,
        ],
    )
    .await;
    let secret = last_line(&out);
    assert_eq!(secret.len(), 43, "{out}");
    let response = t.post_enroll(secret, "m1").await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let out = run_on(
        &t,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "ci",
            "--database",
            db,
        ],
    )
    .await;
    let token = last_line(&out);
    let response = t
        .http
        .get(t.url(v1::PATH_ADMIN_DEVICES))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_data_dir_holds_the_default_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("nested").join("data");
    let data_dir = data_path.to_str().unwrap();
    let out = run(
        &[
            "--data-dir",
            data_dir,
            "enroll-secret",
            "create",
            "--max-uses",
            "2",
        ],
        None,
    )
    .await;
    assert_eq!(last_line(&out).len(), 43);
    assert!(dir.path().join("nested/data/tandem-server.db").exists());

    // The environment variable works as well as the flag.
    let output = Command::new(BIN)
        .args(["token", "create", "--role", "admin"])
        .env("TANDEM_SERVER_DATA_DIR", data_dir)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        last_line(&String::from_utf8(output.stdout).unwrap()).len(),
        43
    );
}

#[tokio::test]
async fn serve_prints_where_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    let read = stdout.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap()
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    child.kill().await.unwrap();
}

async fn a_policy_pushed_from_the_cli_reaches_a_parked_long_poll(backend: Backend) {
    let t = TestServer::start(backend).await;
    let device = t.enroll("eng", "m1").await;
    let current: SignedPolicy = t
        .get_policy(&device.device_token, None, 0)
        .await
        .json()
        .await
        .unwrap();
    let poll = t
        .park_policy_poll(&device.device_token, &current.etag, 60)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, r#"{"org": {"name": "From the CLI"}}"#).unwrap();
    let pushed_at = Instant::now();
    let out = run_on(
        &t,
        &[
            "policy",
            "push",
            "--group",
            "eng",
            "--file",
            file.to_str().unwrap(),
            "--database",
            &t.db_url,
        ],
    )
    .await;
    assert!(out.starts_with("group eng version 1 etag "), "{out}");

    let (_, response) = poll.await.unwrap();
    eprintln!(
        "{backend:?}: a policy pushed by another process reached a parked long-poll in {:?} \
         (including that process's start)",
        pushed_at.elapsed()
    );
    // The other process's change reaches this one through the store's change feed: polled
    // every 50 ms in tests (every second by default) on SQLite, NOTIFY on PostgreSQL.
    assert!(pushed_at.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), StatusCode::OK);
    let signed: SignedPolicy = response.json().await.unwrap();
    assert_eq!((signed.group.as_str(), signed.version), ("eng", 1));
    verify(&signed, &device.policy_signing_key);
}

#[tokio::test]
async fn the_cli_exports_the_compliance_csv() {
    let t = TestServer::start(Backend::Sqlite).await;
    t.enroll("default", "m1").await;
    let out = run_on(&t, &["export", "compliance", "--database", &t.db_url]).await;
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("device_id,hostname,"));
    assert!(lines.next().unwrap().contains(",host-m1,"));
}

#[tokio::test]
async fn the_cli_refuses_an_invalid_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, r#"{"checks": {"firewal": {}}}"#).unwrap();
    let output = Command::new(BIN)
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "policy",
            "push",
            "--group",
            "eng",
        ])
        .arg("--file")
        .arg(&file)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/checks/firewal"), "{stderr}");
}
