//! The harness: a server per test, with its own database (SQLite file or PostgreSQL
//! database), clock and HTTP client, and `on_both_backends!`, which runs a test function
//! once per backend.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use reqwest::header::CONTENT_TYPE;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tandem_proto::canonical::policy_signing_bytes;
use tandem_proto::v1::{
    self, DeviceInfo, EnrollResponse, Event, EventKind, Inventory, Problem, SignedPolicy,
    StatusReport, UserInfo,
};
use tandem_proto::{CheckId, CheckResult, Owner, Remediation, Status};
use tandem_server::{App, Clock, Config, EnrollSecretOptions, Role, RunningServer};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::pg::PgDatabase;

/// Runs each named `async fn(Backend)` of the enclosing module as two tests,
/// `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A test's own empty database and a directory beside it (the SQLite file, the secrets key
/// every server on this database shares); dropping it lets the PostgreSQL cluster stop and
/// the files go.
#[derive(Debug)]
pub struct TestDb {
    engine: Engine,
    dir: TempDir,
}

#[derive(Debug)]
enum Engine {
    Sqlite { url: String },
    Postgres(PgDatabase),
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let engine = match backend {
            Backend::Sqlite => Engine::Sqlite {
                url: format!("sqlite://{}", dir.path().join("server.db").display()),
            },
            Backend::Postgres => Engine::Postgres(PgDatabase::create().await),
        };
        TestDb { engine, dir }
    }

    pub fn url(&self) -> &str {
        match &self.engine {
            Engine::Sqlite { url } => url,
            Engine::Postgres(db) => &db.url,
        }
    }

    /// The secrets key of the servers on this database, in the test's own directory rather
    /// than the default data dir of whoever runs the tests.
    pub fn secrets_key_file(&self) -> PathBuf {
        self.dir.path().join("secrets.key")
    }

    /// Runs a query returning one column, read through a connection of the test's own.
    pub async fn column<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        T: Send + Unpin,
    {
        match &self.engine {
            Engine::Sqlite { url } => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
            Engine::Postgres(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            }
        }
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        self.column(&format!("SELECT COUNT(*) FROM {table}")).await[0]
    }
}

/// A clock the test can move.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
    pub clock: TestClock,
    pub db_url: String,
    pub db: Arc<TestDb>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let db = Arc::new(TestDb::new(backend).await);
        Self::start_on(db).await
    }

    /// Another server on the same database: a replica.
    pub async fn start_on(db: Arc<TestDb>) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    /// A server whose configuration the test adjusts first.
    pub async fn start_with(db: Arc<TestDb>, configure: impl FnOnce(&mut Config)) -> TestServer {
        let db_url = db.url().to_owned();
        let mut config = Config::new(db_url.clone());
        config.secrets_key_file = Some(db.secrets_key_file());
        // Fast enough that a cross-process policy push shows up well within a test's patience.
        config.store.change_poll_interval = Duration::from_millis(50);
        // Many tests share one PostgreSQL cluster; none needs more.
        config.store.max_connections = 4;
        // Tests fire requests faster than any agent; the ones about the limit set it.
        config.token_rate_limit = None;
        configure(&mut config);
        let clock = TestClock(Arc::new(Mutex::new(Utc::now())));
        let app = App::open_with_clock(&config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let server = app.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        TestServer {
            server,
            http: reqwest::Client::new(),
            clock,
            db_url,
            db,
        }
    }

    pub fn app(&self) -> &App {
        self.server.app()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn enroll_secret(&self, group: &str) -> String {
        let options = EnrollSecretOptions {
            group: group.into(),
            ..Default::default()
        };
        self.app().create_enroll_secret(&options).await.unwrap()
    }

    pub async fn api_token(&self, role: Role) -> String {
        self.app().create_api_token(role, "test").await.unwrap()
    }

    pub async fn post_enroll(&self, secret: &str, machine_id: &str) -> Response {
        self.http
            .post(self.url(v1::PATH_ENROLL))
            .json(&json!({
                "enroll_secret": secret,
                "device": DeviceInfo {
                    machine_id: machine_id.into(),
                    hostname: format!("host-{machine_id}"),
                    os: "linux".into(),
                    os_version: "12".into(),
                    model: None,
                    serial: None,
                },
                "user": UserInfo { login: "ada".into(), email: Some("ada@example.test".into()) },
            }))
            .send()
            .await
            .unwrap()
    }

    /// Enrols a device with a new secret for `group`.
    pub async fn enroll(&self, group: &str, machine_id: &str) -> EnrollResponse {
        let secret = self.enroll_secret(group).await;
        let response = self.post_enroll(&secret, machine_id).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    pub async fn post_report(&self, token: &str, report: &StatusReport) -> Response {
        self.http
            .post(self.url(v1::PATH_REPORTS))
            .bearer_auth(token)
            .json(report)
            .send()
            .await
            .unwrap()
    }

    fn policy_request(&self, token: &str, etag: Option<&str>, wait: u64) -> RequestBuilder {
        let request = self
            .http
            .get(format!("{}?wait={wait}", self.url(v1::PATH_POLICY)))
            .bearer_auth(token);
        match etag {
            Some(etag) => request.header("If-None-Match", format!("\"{etag}\"")),
            None => request,
        }
    }

    pub async fn get_policy(&self, token: &str, etag: Option<&str>, wait: u64) -> Response {
        self.policy_request(token, etag, wait).send().await.unwrap()
    }

    /// Starts a long-poll for a policy newer than `etag` and returns once the server has
    /// parked it; the task answers with the moment the poll was answered, and the answer.
    pub async fn park_policy_poll(
        &self,
        token: &str,
        etag: &str,
        wait: u64,
    ) -> JoinHandle<(Instant, Response)> {
        let request = self.policy_request(token, Some(etag), wait);
        let poll = tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (Instant::now(), response)
        });
        self.parked(1).await;
        poll
    }

    pub async fn put_policy(&self, token: &str, group: &str, body: &Value) -> Response {
        self.http
            .put(self.url(&format!("/api/v1/admin/groups/{group}/policy")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits, without sleeping, until `n` long-polls are parked on the server.
    pub async fn parked(&self, n: usize) {
        let mut parked = self.app().hub().parked();
        tokio::time::timeout(Duration::from_secs(10), parked.wait_for(|p| *p >= n))
            .await
            .expect("the long-poll never parked")
            .unwrap();
    }

    /// Rows in `table`, read through a connection of the test's own.
    pub async fn count(&self, table: &str) -> i64 {
        self.db.count(table).await
    }

    pub async fn get_admin(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_admin(&self, token: &str, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

pub fn sample_report(machine_id: &str) -> StatusReport {
    let now = Utc::now();
    let result = |id, status| CheckResult {
        id,
        status,
        summary: format!("{id} is {status}"),
        reason: None,
        details: json!({"n": 1}),
        evidence: vec![],
        remediation: Remediation::default(),
        owner: Owner::User,
        observed_at: now,
        duration_ms: 12,
    };
    StatusReport {
        report_id: Uuid::now_v7(),
        agent_version: "0.1.0".into(),
        sent_at: now,
        inventory: Inventory {
            device: DeviceInfo {
                machine_id: machine_id.into(),
                hostname: format!("host-{machine_id}"),
                os: "linux".into(),
                os_version: "12".into(),
                model: None,
                serial: None,
            },
            ..Inventory::default()
        },
        results: vec![
            result(CheckId::OsUpdates, Status::Fail),
            result(CheckId::Firewall, Status::Pass),
        ],
        events: vec![Event {
            kind: EventKind::NudgeShown,
            at: now,
            check_id: Some(CheckId::OsUpdates),
            detail: None,
        }],
        policy_etag: None,
    }
}

/// Asserts a problem+json answer and returns the problem.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let ct = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    let parsed: Problem = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(parsed.status, status.as_u16());
    body
}

/// Verifies a signed policy against the key a device pinned at enrolment.
pub fn verify(signed: &SignedPolicy, pinned_key: &str) {
    let key: [u8; 32] = STANDARD.decode(pinned_key).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&key).unwrap();
    let signature = Signature::from_slice(&STANDARD.decode(&signed.signature).unwrap()).unwrap();
    key.verify(
        &policy_signing_bytes(signed.version, &signed.group, &signed.policy),
        &signature,
    )
    .expect("the policy signature does not verify");
}
