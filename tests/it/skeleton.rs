//! The walking skeleton across processes: a real `tandem-server` on a SQLite file, the real
//! `tandem` CLI enrolling, syncing and long-polling, and a policy change travelling back.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_e2e::procs::{wait_for, Server, Tandem};

fn admin_get(server: &Server, token: &str, path: &str) -> Value {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().unwrap()
}

#[test]
fn enrol_report_and_receive_a_pushed_policy_within_two_seconds() {
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let admin = server
        .admin_secret(&["token", "create", "--role", "admin"])
        .unwrap();
    assert!(!secret.is_empty() && !admin.is_empty());

    let data = tempfile::tempdir().unwrap();
    let agent = Tandem::new(data.path()).env("TANDEM_CREDENTIAL_STORE", "file");
    agent
        .run_ok(&["enroll", "--server", &server.url, "--secret", &secret])
        .unwrap();
    agent.run_ok(&["sync"]).unwrap();

    let status = agent.status_json().unwrap();
    assert_eq!(status["enrolled"], true);
    assert_eq!(
        status["outbox_len"], 0,
        "everything was delivered: {status}"
    );
    assert!(status["last_sync_at"].is_string());
    let device_id = status["enrollment"]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // IT sees the device, its report time and its latest results.
    let devices = admin_get(&server, &admin, "/api/v1/admin/devices");
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == device_id.as_str())
        .unwrap_or_else(|| panic!("device {device_id} missing from {devices}"));
    assert!(device["last_report_at"].is_string(), "{device}");
    assert!(!device["hostname"].as_str().unwrap().is_empty());
    let results = device["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["id"] == "os_updates"), "{device}");

    // The running agent holds a policy long-poll; a change made by IT reaches it.
    let run = agent.spawn_run().unwrap();
    let before = wait_for(
        Duration::from_secs(20),
        "the running agent to hold the server's policy",
        || {
            let s = agent.status_json().ok()?;
            (s["policy"]["source"] == "server").then(|| s["policy"]["version"].as_i64())?
        },
    )
    .unwrap();
    let policy = json!({"org": {"name": "E2E Corp"}, "intervals": {"check_minutes": 30, "report_minutes": 10}});
    let put_at = Instant::now();
    let resp = reqwest::blocking::Client::new()
        .put(format!("{}/api/v1/admin/groups/default/policy", server.url))
        .bearer_auth(&admin)
        .json(&policy)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "PUT policy: {}", resp.status());
    let put: Value = resp.json().unwrap();
    let new_version = put["version"].as_i64().unwrap();
    assert_ne!(Some(new_version), Some(before));
    let seen = wait_for(
        Duration::from_secs(5),
        "the new policy version in `tandem status`",
        || {
            let s = agent.status_json().ok()?;
            (s["policy"]["version"].as_i64() == Some(new_version)).then(Instant::now)
        },
    )
    .unwrap();
    let took = seen - put_at;
    eprintln!("policy change reached the agent in {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "policy took {took:?} to reach the agent"
    );
    run.terminate(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_wrong_enrolment_secret_is_refused_with_a_clear_message() {
    let server = Server::start_sqlite().unwrap();
    let data = tempfile::tempdir().unwrap();
    let agent = Tandem::new(data.path()).env("TANDEM_CREDENTIAL_STORE", "file");
    let out = agent
        .cmd()
        .unwrap()
        .args([
            "enroll",
            "--server",
            &server.url,
            "--secret",
            "not-a-secret",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enrolment secret"), "{stderr}");
    assert_eq!(agent.status_json().unwrap()["enrolled"], false);
}
