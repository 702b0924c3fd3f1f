//! The agent against faults: a server that is down, an agent killed mid-send, a full disk,
//! a tampered policy, an invalid policy — nothing lost, nothing applied that should not be.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tandem_e2e::procs::{run_ok, wait_for, Server, Tandem};
use tandem_e2e::proxy::Proxy;

/// Only the quick checks: the fault tests produce many reports.
const QUICK_CHECKS: &str = r#"{"checks": {"os_updates": {"enabled": false}}}"#;

struct Setup {
    dir: tempfile::TempDir,
    database: String,
    server: Option<Server>,
    proxy: Proxy,
    agent: Tandem,
    admin: String,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_data_dir(None)
    }

    fn with_data_dir(data_dir: Option<std::path::PathBuf>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("server.db").display());
        let server = Server::start(&database).unwrap();
        let proxy = Proxy::start(&server.url).unwrap();
        let managed = dir.path().join("managed.json");
        std::fs::write(&managed, QUICK_CHECKS).unwrap();
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("agent"));
        let agent = Tandem::new(&data_dir)
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .env("TANDEM_MANAGED_POLICY", managed.to_str().unwrap());
        let secret = server.admin_secret(&["enroll-secret", "create"]).unwrap();
        let admin = server
            .admin_secret(&["token", "create", "--role", "admin"])
            .unwrap();
        agent
            .run_ok(&["enroll", "--server", &proxy.url, "--secret", &secret])
            .unwrap();
        Setup {
            dir,
            database,
            server: Some(server),
            proxy,
            agent,
            admin,
        }
    }

    fn stop_server(&mut self) {
        drop(self.server.take());
    }

    fn start_server(&mut self) {
        let server = Server::start(&self.database).unwrap();
        self.proxy.set_upstream(&server.url).unwrap();
        self.server = Some(server);
    }

    fn server_sql(&self, sql: &str) -> String {
        let path = self.database.trim_start_matches("sqlite://");
        let out = run_ok(Command::new("sqlite3").arg(path).arg(sql)).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn agent_outbox_ids(&self) -> Vec<String> {
        let path = self.agent.data_dir.join("agent.db");
        let out = run_ok(
            Command::new("sqlite3")
                .arg(path)
                .arg("SELECT report_id FROM outbox ORDER BY report_id"),
        )
        .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn status(&self) -> Value {
        self.agent.status_json().unwrap()
    }

    fn put_policy(&self, body: &Value) -> Value {
        let url = format!(
            "{}/api/v1/admin/groups/default/policy",
            self.server.as_ref().unwrap().url
        );
        let resp = reqwest::blocking::Client::new()
            .put(url)
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "PUT policy: {}", resp.status());
        resp.json().unwrap()
    }
}

fn is_root() -> bool {
    run_ok(Command::new("id").arg("-u"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn reports_made_offline_arrive_exactly_once_even_when_the_agent_is_killed_mid_send() {
    let mut s = Setup::new();
    s.stop_server();
    for _ in 0..20 {
        // Each sync queues a report, then fails to deliver it.
        let out = s.agent.cmd().unwrap().arg("sync").output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot reach the server"), "{stderr}");
    }
    let queued = s.agent_outbox_ids();
    assert_eq!(queued.len(), 20, "{queued:?}");
    assert_eq!(s.status()["outbox_len"], 20);

    // The server comes back, but answers slowly: the agent is killed while a report it
    // sent is stored and not yet acknowledged.
    s.start_server();
    s.proxy.set_delay(Duration::from_millis(1500));
    let before: usize = s
        .server_sql("SELECT COUNT(*) FROM reports")
        .parse()
        .unwrap();
    let run = s.agent.spawn_run().unwrap();
    wait_for(Duration::from_secs(60), "five reports stored", || {
        let n: usize = s.server_sql("SELECT COUNT(*) FROM reports").parse().ok()?;
        (n >= before + 5).then_some(())
    })
    .unwrap();
    let pid = run.pid().to_string();
    run_ok(Command::new("kill").args(["-KILL", &pid])).unwrap();
    drop(run);

    s.proxy.set_delay(Duration::ZERO);
    let run = s.agent.spawn_run().unwrap();
    wait_for(Duration::from_secs(60), "the outbox to drain", || {
        (s.agent.status_json().ok()?["outbox_len"] == 0).then_some(())
    })
    .unwrap();
    run.terminate(Duration::from_secs(10)).unwrap();

    let mut resent = 0;
    for id in &queued {
        let stored: usize = s
            .server_sql(&format!(
                "SELECT COUNT(*) FROM reports WHERE report_id = '{id}'"
            ))
            .parse()
            .unwrap();
        assert_eq!(stored, 1, "report {id} stored {stored} times");
        if s.proxy.times_sent(id) > 1 {
            resent += 1;
        }
    }
    eprintln!(
        "{} reports delivered exactly once; {resent} of them were sent twice",
        queued.len()
    );
    assert!(
        resent >= 1,
        "the kill did not interrupt a send: nothing was resent"
    );
}

#[test]
fn a_full_disk_is_reported_and_loses_nothing_already_queued() {
    if !is_root() {
        eprintln!("note: mounting a small tmpfs needs root; this test ran nothing");
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let mnt = mount.path().to_str().unwrap().to_owned();
    run_ok(Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs", &mnt])).unwrap();
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").args(["-l", &self.0]).status();
        }
    }
    let _unmount = Unmount(mnt.clone());

    let mut s = Setup::with_data_dir(Some(mount.path().join("agent")));
    s.stop_server();
    for _ in 0..3 {
        let _ = s.agent.cmd().unwrap().arg("sync").output().unwrap();
    }
    let queued = s.agent_outbox_ids();
    assert_eq!(queued.len(), 3);

    // Fill the file system to the last byte.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={mnt}/filler"), "bs=64k"])
        .stderr(std::process::Stdio::null())
        .status();
    let out = s.agent.cmd().unwrap().arg("sync").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("full"),
        "the error should say the disk is full: {stderr}"
    );

    std::fs::remove_file(format!("{mnt}/filler")).unwrap();
    let after = s.agent_outbox_ids();
    for id in &queued {
        assert!(
            after.contains(id),
            "report {id} was lost while the disk was full"
        );
    }
    s.start_server();
    s.agent.run_ok(&["sync"]).unwrap();
    for id in &queued {
        assert_eq!(
            s.server_sql(&format!(
                "SELECT COUNT(*) FROM reports WHERE report_id = '{id}'"
            )),
            "1"
        );
    }
}

#[test]
fn tampered_and_invalid_policies_are_rejected_and_the_running_policy_stays() {
    let s = Setup::new();
    let good = s.put_policy(&serde_json::json!({"intervals": {"check_minutes": 30}}));
    s.agent.run_ok(&["sync"]).unwrap();
    let st = s.status();
    assert_eq!(st["policy"]["version"], good["version"]);

    // A policy altered on the way: its signature no longer matches.
    s.proxy
        .rewrite_answers("\"check_minutes\":45", "\"check_minutes\":99");
    let tampered = s.put_policy(&serde_json::json!({"intervals": {"check_minutes": 45}}));
    let out = s.agent.cmd().unwrap().arg("sync").output().unwrap();
    assert!(
        !out.status.success(),
        "a tampered policy must fail the sync"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = s.status();
    assert_eq!(st["policy"]["version"], good["version"], "{st}");
    assert!(st["policy"]["rejected"]
        .as_str()
        .unwrap()
        .contains("signature"));
    assert_ne!(good["version"], tampered["version"]);
    s.proxy.clear_rewrites();

    // A correctly signed policy that breaks the rules (written past the server's own
    // validation, as a compromised or buggy server might).
    let next = tampered["version"].as_i64().unwrap() + 1;
    s.server_sql(&format!(
        "INSERT INTO policies (group_name, version, body, etag, created_at, created_by) \
         SELECT group_name, {next}, '{{\"intervals\":{{\"check_minutes\":0}}}}', 'invalid-{next}', created_at, created_by \
         FROM policies WHERE group_name = 'default' ORDER BY version DESC LIMIT 1"
    ));
    let mut rejected = String::new();
    wait_for(
        Duration::from_secs(10),
        "the invalid policy to be rejected",
        || {
            let _ = s.agent.cmd().ok()?.arg("sync").output();
            let st = s.status();
            rejected = st["policy"]["rejected"].as_str()?.to_owned();
            rejected.contains(&format!("version {next}")).then_some(())
        },
    )
    .unwrap();
    assert!(rejected.contains("check_minutes"), "{rejected}");
    assert_eq!(s.status()["policy"]["version"], good["version"]);
}

#[test]
fn a_managed_policy_beats_the_server_and_says_so() {
    let s = Setup::new();
    let managed = s.dir.path().join("managed.json");
    std::fs::write(
        &managed,
        r#"{"checks": {"os_updates": {"enabled": false}, "screen_lock": {"max_idle_minutes": 5}}}"#,
    )
    .unwrap();
    s.put_policy(&serde_json::json!({"checks": {"screen_lock": {"max_idle_minutes": 15}}, "intervals": {"check_minutes": 20}}));
    s.agent.run_ok(&["sync"]).unwrap();
    let st = s.status();
    let origins = &st["policy"]["origins"];
    assert_eq!(
        origins["/checks/screen_lock/max_idle_minutes"], "managed",
        "{st}"
    );
    assert_eq!(origins["/intervals/check_minutes"], "server");
    assert_eq!(
        origins["/nudges/max_per_day"], "built_in",
        "the server sends only what IT wrote"
    );
    assert_eq!(st["policy"]["source"], "managed");
    assert_eq!(st["policy"]["managed_path"], managed.to_str().unwrap());

    // A broken managed file is reported and left out; the server's policy still applies.
    std::fs::write(&managed, "{ not json").unwrap();
    let st = s.status();
    assert!(
        st["policy"]["managed_error"]
            .as_str()
            .unwrap()
            .contains("not valid"),
        "{st}"
    );
    assert_eq!(
        st["policy"]["origins"]["/checks/screen_lock/max_idle_minutes"],
        "server"
    );
}
