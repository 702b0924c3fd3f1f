//! Two real `tandem-server` processes on one PostgreSQL database, as replicas run in
//! production: a policy PUT through process A's admin API wakes a device's long-poll parked
//! on process B within a second (LISTEN/NOTIFY between processes, not an in-process hub);
//! a device revoked or re-enrolled through A is refused by B, whose token cache had it,
//! within a second (well inside the cache's 30 s safety expiry).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tandem_proto::v1::{self, EnrollResponse, SignedPolicy};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::pg::PgDatabase;
use crate::support::{sample_report, verify};

const BIN: &str = env!("CARGO_BIN_EXE_tandem-server");

/// How long a replica may take to migrate, bind and announce itself on a busy CI box.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The test's own secrets key, shared by its processes as replicas must share theirs,
/// rather than one in the data dir of whoever runs the tests.
fn secrets_key() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.key");
    (dir, file)
}

async fn cli(key: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("TANDEM_SECRETS_KEY_FILE", key)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "tandem-server {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

/// A `tandem-server serve` process; killed when dropped.
struct Replica {
    _child: Child,
    url: String,
}

impl Replica {
    async fn start(database: &str, key: &Path) -> Replica {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .env("RUST_LOG", "warn")
            .env("TANDEM_SECRETS_KEY_FILE", key)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = tokio::time::timeout(START_DEADLINE, async {
            loop {
                line.clear();
                assert_ne!(
                    stdout.read_line(&mut line).await.unwrap(),
                    0,
                    "tandem-server exited before listening"
                );
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    return url.to_owned();
                }
            }
        })
        .await
        .expect("tandem-server did not announce its address");
        // Nothing else is read from stdout; a full pipe must never block the server.
        tokio::spawn(async move { while stdout.read_line(&mut line).await.unwrap_or(0) > 0 {} });
        Replica { _child: child, url }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The `tandem_policy_long_polls_parked` gauge of this process's `/metrics`.
    async fn parked(&self, http: &reqwest::Client) -> u64 {
        let text = http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("tandem_policy_long_polls_parked "))
            .and_then(|v| v.trim().parse().ok())
            .expect("no tandem_policy_long_polls_parked gauge in /metrics")
    }

    /// Polls the gauge until `n` long-polls are parked (another process's state: there is
    /// nothing to subscribe to).
    async fn wait_parked(&self, http: &reqwest::Client, n: u64) {
        let started = Instant::now();
        while self.parked(http).await < n {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the long-poll never parked on {}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_policy_put_through_process_a_wakes_a_long_poll_on_process_b() {
    let db = PgDatabase::create().await;
    // The first process migrates the empty database; the CLI commands run after it so
    // that the two replicas do not race to create the schema.
    let (_keys, key) = secrets_key();
    let a = Replica::start(&db.url, &key).await;
    let b = Replica::start(&db.url, &key).await;
    let secret = cli(
        &key,
        &[
            "enroll-secret",
            "create",
            "--group",
            "eng",
            "--database",
            &db.url,
        ],
    )
    .await;
    let admin = cli(
        &key,
        &["token", "create", "--role", "admin", "--database", &db.url],
    )
    .await;
    let http = reqwest::Client::new();

    // Enrolled through A, polling B.
    let response = http
        .post(a.url(v1::PATH_ENROLL))
        .json(&json!({
            "enroll_secret": secret,
            "device": {"machine_id": "m1", "hostname": "h1", "os": "linux", "os_version": "12"},
            "user": {"login": "ada"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let device: EnrollResponse = response.json().await.unwrap();

    let mut wakes = Vec::new();
    for round in 1..=3 {
        let current: SignedPolicy = http
            .get(format!("{}?wait=0", b.url(v1::PATH_POLICY)))
            .bearer_auth(&device.device_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let poll = {
            let request = http
                .get(format!("{}?wait=60", b.url(v1::PATH_POLICY)))
                .bearer_auth(&device.device_token)
                .header("If-None-Match", format!("\"{}\"", current.etag));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (Instant::now(), response)
            })
        };
        b.wait_parked(&http, 1).await;

        let body = json!({"org": {"name": format!("Acme {round}")}});
        let pushed_at = Instant::now();
        let put = http
            .put(a.url("/api/v1/admin/groups/eng/policy"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::OK);

        let (answered_at, response) = poll.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let signed: SignedPolicy = response.json().await.unwrap();
        assert_eq!((signed.group.as_str(), signed.version), ("eng", round));
        assert_eq!(signed.policy, body);
        // B signs with the key the device pinned when A enrolled it.
        verify(&signed, &device.policy_signing_key);
        wakes.push(answered_at - pushed_at);
    }
    eprintln!("process A's policy PUT woke process B's long-poll in {wakes:?}");
    for latency in wakes {
        assert!(
            latency < Duration::from_secs(1),
            "process B woke after {latency:?}"
        );
    }
}

/// Polls `request` on another process until it answers `expected` (there is nothing to
/// subscribe to across processes); returns how long that took. Every 25 ms for at most 2 s:
/// about 80 requests, inside the per-token burst (100), so a slow answer fails as "still
/// 200", not as a rate limit.
async fn until_status(
    request: impl Fn() -> reqwest::RequestBuilder,
    expected: StatusCode,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = request().send().await.unwrap().status();
        if status == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still {status}, not {expected}, after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn enroll(http: &reqwest::Client, replica: &Replica, secret: &str) -> EnrollResponse {
    let response = http
        .post(replica.url(v1::PATH_ENROLL))
        .json(&json!({
            "enroll_secret": secret,
            "device": {"machine_id": "m1", "hostname": "h1", "os": "linux", "os_version": "12"},
            "user": {"login": "ada"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_device_revoked_or_re_enrolled_through_process_a_is_refused_by_process_b() {
    let db = PgDatabase::create().await;
    let (_keys, key) = secrets_key();
    let a = Replica::start(&db.url, &key).await;
    let b = Replica::start(&db.url, &key).await;
    let secret = cli(&key, &["enroll-secret", "create", "--database", &db.url]).await;
    let admin = cli(
        &key,
        &["token", "create", "--role", "admin", "--database", &db.url],
    )
    .await;
    let http = reqwest::Client::new();
    let report = |replica: &Replica, token: &str| {
        http.post(replica.url(v1::PATH_REPORTS))
            .bearer_auth(token)
            .json(&sample_report("m1"))
    };
    let policy = |replica: &Replica, token: &str| {
        http.get(format!("{}?wait=0", replica.url(v1::PATH_POLICY)))
            .bearer_auth(token)
    };

    // Re-enrolment through A: B, which has the old token cached, must refuse it.
    let first = enroll(&http, &a, &secret).await;
    for _ in 0..3 {
        let status = policy(&b, &first.device_token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "B knows the token (and caches it)");
    }
    let second = enroll(&http, &a, &secret).await;
    assert_eq!(second.device_id, first.device_id);
    let rotated = until_status(|| policy(&b, &first.device_token), StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        policy(&b, &second.device_token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        report(&b, &second.device_token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );

    // Revocation through A's admin API.
    let revoke = format!("/api/v1/admin/devices/{}/revoke", second.device_id);
    let response = http
        .post(a.url(&revoke))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A itself refuses at once: revocation through a process is exact in that process.
    let body: serde_json::Value = report(&a, &second.device_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["type"], v1::problem::ENROLL_AGAIN);
    let revoked = until_status(
        || report(&b, &second.device_token),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eprintln!("B refused the rotated token after {rotated:?}, the revoked one after {revoked:?}");
    for latency in [rotated, revoked] {
        assert!(
            latency < Duration::from_secs(1),
            "B refused after {latency:?}"
        );
    }
}
