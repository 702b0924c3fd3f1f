//! Tandem's agent runtime: the brain behind both the desktop app and the headless
//! `tandem run`. It runs the checks, keeps the local store and outbox, talks to the server
//! and resolves the policy in force. Nothing here knows about Tauri.
//!
//! The faces hold an [`Agent`] (cheap to clone), watch [`Agent::subscribe`] for state
//! changes and call its methods; [`Agent::run`] drives the schedule until cancelled.

pub mod bootstrap;
pub mod context;
pub mod credentials;
pub mod history;
pub mod managed;
pub mod nudge;
pub mod phishing;
pub mod policy;
pub mod schedule;
pub mod store;
pub mod sync;
pub mod track;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tandem_checks::{CheckContext, Host, RealHost};
use tandem_proto::state::{ActionItem, AgentState, Enrollment, PolicyState};
use tandem_proto::v1::{EnrollRequest, Event, EventKind, SignedPolicy, StatusReport};
use tandem_proto::{CheckId, Policy};
use tokio::sync::{watch, Mutex, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use credentials::{CredentialError, CredentialStoreKind, Credentials, DeviceToken};
pub use store::{Store, StoreError};
pub use sync::{PolicyPoll, SyncError};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("this device is not enrolled; run `tandem enroll --server URL --secret SECRET`")]
    NotEnrolled,
    #[error("policy rejected: {0}")]
    PolicyRejected(#[from] policy::PolicyRejected),
    #[error(transparent)]
    Defer(#[from] nudge::DeferError),
    #[error("{0} needs nothing from you right now")]
    NothingToDefer(CheckId),
    #[error("the policy does not allow pausing reminders")]
    PauseNotAllowed,
}

/// Where the agent keeps its state and its token.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// A managed policy file to read instead of the platform's managed location
    /// (`TANDEM_MANAGED_POLICY`).
    pub managed_policy: Option<PathBuf>,
    /// `None`: the store chosen at enrolment, else the OS keyring.
    pub credential_store: Option<CredentialStoreKind>,
}

impl AgentConfig {
    pub fn new(data_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            data_dir,
            managed_policy: None,
            credential_store: None,
        }
    }

    /// `TANDEM_DATA_DIR` (else the user's data dir + `tandem`), `TANDEM_CREDENTIAL_STORE` and
    /// `TANDEM_MANAGED_POLICY`.
    pub fn from_env() -> AgentConfig {
        let data_dir = std::env::var_os("TANDEM_DATA_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        let credential_store = std::env::var("TANDEM_CREDENTIAL_STORE")
            .ok()
            .and_then(|v| v.parse().ok());
        let managed_policy = std::env::var_os("TANDEM_MANAGED_POLICY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        AgentConfig {
            data_dir,
            managed_policy,
            credential_store,
        }
    }
}

/// The per-user data dir: `~/.local/share/tandem` on Linux, `~/Library/Application
/// Support/tandem` on macOS, `%APPDATA%\tandem` on Windows.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("tandem")
}

/// What the store remembers about the enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnrollmentRecord {
    server_url: String,
    device_id: Uuid,
    enrolled_at: DateTime<Utc>,
    policy_signing_key: String,
    credential_store: CredentialStoreKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPolicy {
    signed: SignedPolicy,
    received_at: DateTime<Utc>,
}

const KEY_ENROLLMENT: &str = "enrollment";
const KEY_SERVER_POLICY: &str = "server_policy";
const KEY_LAST_SYNC: &str = "last_sync_at";
const KEY_LAST_CHECK: &str = "last_check_at";
const KEY_FIRST_SEEN: &str = "first_seen";
const KEY_IDENTITY: &str = "identity";
const KEY_POLICY_REJECTED: &str = "policy_rejected";
/// The etag of the last server policy seen, applied or rejected: the long-poll waits for a
/// change from it, so a rejected policy is not fetched again and again.
const KEY_POLICY_SEEN: &str = "policy_seen_etag";
const KEY_NUDGES: &str = "nudge_history";
const KEY_PAUSED: &str = "reminders_paused_until";
/// How often the nudge engine is asked; its own rules decide whether anything is shown.
const TICK: Duration = Duration::from_secs(60);
/// After "Fix now", the item alone is checked again after each of these waits, until fixed:
/// the user needs a moment in the settings page, and a fix should turn green in seconds.
const FOLLOW_UPS: [Duration; 4] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(90),
    Duration::from_secs(240),
];

/// How long one policy long-poll waits on the server.
const POLICY_WAIT: Duration = Duration::from_secs(55);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

struct Inner {
    config: AgentConfig,
    store: Store,
    host: RealHost,
    state: watch::Sender<AgentState>,
    /// Wakes the scheduler for an immediate check run.
    check_requested: Notify,
    /// Wakes the sender to flush the outbox.
    flush_requested: Notify,
    /// Wakes the policy poller after enrolment.
    enrolled: Notify,
    /// Drops the open policy long-poll and connects again (after a wake or a network change).
    reconnect: Notify,
    /// One check run at a time.
    check_lock: Mutex<()>,
    /// One outbox flush at a time, so no report is sent twice concurrently.
    flush_lock: Mutex<()>,
    /// Nudges the engine decided on, for whichever face shows them.
    nudges: tokio::sync::broadcast::Sender<Nudge>,
    /// IT's new or changed replies to the user's phishing reports (`phishing.rs`).
    phishing_replies: tokio::sync::broadcast::Sender<phishing::PhishingReply>,
    /// One read-modify-write of the sent phishing reports at a time, so a reply is
    /// announced once and a report sent meanwhile is not lost.
    phishing_lock: Mutex<()>,
}

/// A reminder to show: the engine's decision with the words for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Nudge {
    pub decision: nudge::Decision,
    pub title: String,
    pub body: String,
}

/// A handle to the agent runtime.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

impl Agent {
    pub async fn open(config: AgentConfig) -> Result<Agent, AgentError> {
        let store = Store::open(&config.data_dir).await?;
        let mut state = AgentState {
            agent_version: AGENT_VERSION.into(),
            ..AgentState::default()
        };
        state.results = store.latest_results().await?;
        state.outbox_len = store.outbox_len().await?;
        state.last_sync_at = store.get(KEY_LAST_SYNC).await?;
        state.last_check_at = store.get(KEY_LAST_CHECK).await?;
        let agent = Agent {
            inner: Arc::new(Inner {
                config,
                store,
                host: RealHost::new(),
                state: watch::Sender::new({
                    state.refresh_tray();
                    state
                }),
                check_requested: Notify::new(),
                flush_requested: Notify::new(),
                enrolled: Notify::new(),
                reconnect: Notify::new(),
                check_lock: Mutex::new(()),
                flush_lock: Mutex::new(()),
                nudges: tokio::sync::broadcast::channel(16).0,
                phishing_replies: tokio::sync::broadcast::channel(16).0,
                phishing_lock: Mutex::new(()),
            }),
        };
        agent.refresh_enrollment_and_policy().await?;
        Ok(agent)
    }

    pub fn subscribe(&self) -> watch::Receiver<AgentState> {
        self.inner.state.subscribe()
    }

    pub fn state(&self) -> AgentState {
        self.inner.state.borrow().clone()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.config.data_dir
    }

    fn update(&self, f: impl FnOnce(&mut AgentState)) {
        self.inner.state.send_modify(|s| {
            f(s);
            s.refresh_tray();
        });
    }

    async fn enrollment(&self) -> Result<Option<EnrollmentRecord>, AgentError> {
        Ok(self.inner.store.get(KEY_ENROLLMENT).await?)
    }

    fn credentials(&self, record: Option<&EnrollmentRecord>) -> Credentials {
        let kind = self
            .inner
            .config
            .credential_store
            .or(record.map(|r| r.credential_store))
            .unwrap_or_default();
        Credentials::new(kind, &self.inner.config.data_dir)
    }

    /// A client for the enrolled server and the device token to present to it.
    async fn server_session(&self) -> Result<(sync::Client, DeviceToken), AgentError> {
        let record = self.enrollment().await?.ok_or(AgentError::NotEnrolled)?;
        let token = self.credentials(Some(&record)).load().await?;
        Ok((self.client_for(&record.server_url).await?, token))
    }

    /// The policy in force: built-in defaults < the server's last verified policy < the
    /// locally managed policy, with where each setting came from. A managed policy that
    /// cannot be read or used is reported in the state and left out; the rest still applies.
    pub async fn effective_policy(&self) -> Result<(Policy, PolicyState), AgentError> {
        let stored: Option<StoredPolicy> = self.inner.store.get(KEY_SERVER_POLICY).await?;
        let mut state = PolicyState::default();
        if let Some(stored) = &stored {
            state.version = Some(stored.signed.version);
            state.group = Some(stored.signed.group.clone());
            state.etag = Some(stored.signed.etag.clone());
            state.received_at = Some(stored.received_at);
        }
        state.rejected = self.inner.store.get(KEY_POLICY_REJECTED).await?;
        let managed = match managed::load(self.inner.config.managed_policy.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                state.managed_error = Some(e.to_string());
                None
            }
        };
        let server = stored.as_ref().map(|s| &s.signed.policy);
        let resolved = match policy::resolve(server, managed.as_ref().map(|m| &m.value)) {
            Ok(r) => Some(r),
            Err(e) if managed.is_some() => {
                state.managed_error = Some(format!(
                    "{}: {e}",
                    managed.as_ref().map_or("", |m| m.source_name.as_str())
                ));
                policy::resolve(server, None).ok()
            }
            Err(_) => None,
        };
        if let (Some(m), None) = (&managed, &state.managed_error) {
            state.managed_path = Some(m.source_name.clone());
        }
        let (policy, origins) = match resolved {
            Some(r) => r,
            // The stored server policy was verified when it arrived; if this build cannot use
            // it, the defaults are the safe fallback.
            None => policy::resolve(None, None)?,
        };
        state.source = origins.values().copied().max().unwrap_or_default();
        state.origins = origins;
        Ok((policy, state))
    }

    /// Everything a check run is judged against besides the machine itself.
    pub async fn check_context(&self) -> Result<CheckContext, AgentError> {
        let (policy, _) = self.effective_policy().await?;
        Ok(CheckContext {
            policy,
            identity: self.inner.store.get(KEY_IDENTITY).await?,
            first_seen: self
                .inner
                .store
                .get(KEY_FIRST_SEEN)
                .await?
                .unwrap_or_default(),
        })
    }

    async fn refresh_enrollment_and_policy(&self) -> Result<(), AgentError> {
        let enrollment = self.enrollment().await?.map(|r| Enrollment {
            server_url: r.server_url,
            device_id: r.device_id,
            enrolled_at: r.enrolled_at,
        });
        let (_, policy_state) = self.effective_policy().await?;
        self.update(|s| {
            s.enrollment = enrollment;
            s.policy = policy_state;
        });
        Ok(())
    }

    /// Enrols this device with a server and stores the token in the chosen credential store.
    pub async fn enroll(&self, server_url: &str, secret: &str) -> Result<Enrollment, AgentError> {
        let client = self.client_for(server_url).await?;
        let os = self.inner.host.os();
        let request = EnrollRequest {
            enroll_secret: secret.to_owned(),
            device: tandem_checks::inventory::device_info(os),
            user: tandem_checks::inventory::current_user(),
        };
        let credentials = self.credentials(None);
        // Fail before talking to the server when the credential store is unusable, so a
        // machine without a keyring does not burn an enrolment.
        credentials.delete().await?;
        let response = client.enroll(&request).await?;
        credentials
            .store(&DeviceToken::new(response.device_token))
            .await?;
        let record = EnrollmentRecord {
            server_url: client_base(server_url),
            device_id: response.device_id,
            enrolled_at: Utc::now(),
            policy_signing_key: response.policy_signing_key,
            credential_store: credentials.kind(),
        };
        self.inner.store.put(KEY_ENROLLMENT, &record).await?;
        for key in [
            KEY_SERVER_POLICY,
            KEY_POLICY_SEEN,
            KEY_POLICY_REJECTED,
            KEY_IDENTITY,
        ] {
            self.inner.store.delete(key).await?;
        }
        self.refresh_enrollment_and_policy().await?;
        self.inner.enrolled.notify_waiters();
        tracing::info!(device_id = %record.device_id, server = %record.server_url, "enrolled");
        Ok(Enrollment {
            server_url: record.server_url,
            device_id: record.device_id,
            enrolled_at: record.enrolled_at,
        })
    }

    /// Runs every check now, records the results and queues a report.
    pub async fn check_now(&self) -> Result<AgentState, AgentError> {
        self.run_checks_of(None).await
    }

    /// Runs only the checks named: the follow-up after the user acted on an item. The other
    /// results stand as they were; the report carries the merged set.
    pub async fn check_items(&self, ids: &[CheckId]) -> Result<AgentState, AgentError> {
        self.run_checks_of(Some(ids)).await
    }

    async fn run_checks_of(&self, only: Option<&[CheckId]>) -> Result<AgentState, AgentError> {
        let _running = self.inner.check_lock.lock().await;
        self.update(|s| s.checking = true);
        let ctx = self.check_context().await?;
        let selected = |id: CheckId| only.is_none_or(|ids| ids.contains(&id));
        let host = &self.inner.host;
        // Slow probes (a Windows Update search, `softwareupdate`) run beside the others; the
        // others' results are shown the moment they are in, not when the slowest is done.
        let quick = async {
            let quick = tandem_checks::run_selected(host, &ctx, |id| {
                selected(id) && !tandem_checks::is_slow(id)
            })
            .await;
            self.update(|s| s.results = merge_results(std::mem::take(&mut s.results), &quick));
            quick
        };
        let slow = tandem_checks::run_selected(host, &ctx, |id| {
            selected(id) && tandem_checks::is_slow(id)
        });
        let (mut fresh, slow) = tokio::join!(quick, slow);
        fresh.extend(slow);
        let results = match only {
            None => fresh.clone(),
            Some(_) => merge_results(self.state().results, &fresh),
        };
        let now = Utc::now();
        let outcome = async {
            self.inner.store.record_results(&fresh).await?;
            let first_seen = track::update_first_seen(&ctx.first_seen, &results, now);
            self.inner.store.put(KEY_FIRST_SEEN, &first_seen).await?;
            self.inner.store.put(KEY_LAST_CHECK, &now).await?;
            if self.enrollment().await?.is_some() {
                self.queue_report(results.clone()).await?;
            }
            Ok::<_, AgentError>(())
        }
        .await;
        let outbox_len = self.inner.store.outbox_len().await.unwrap_or_default();
        self.update(|s| {
            s.checking = false;
            s.results = results;
            s.last_check_at = Some(now);
            s.outbox_len = outbox_len;
        });
        outcome?;
        self.refresh_items().await?;
        self.inner.flush_requested.notify_one();
        Ok(self.state())
    }

    async fn queue_report(
        &self,
        results: Vec<tandem_proto::CheckResult>,
    ) -> Result<StatusReport, AgentError> {
        let inventory = tandem_checks::inventory::inventory(self.inner.host.os());
        let policy_etag = self
            .inner
            .store
            .get::<StoredPolicy>(KEY_SERVER_POLICY)
            .await?
            .map(|p| p.signed.etag);
        let report = self
            .inner
            .store
            .enqueue_report(|events| StatusReport {
                report_id: Uuid::now_v7(),
                agent_version: AGENT_VERSION.into(),
                sent_at: Utc::now(),
                inventory,
                results,
                events,
                policy_etag,
            })
            .await?;
        Ok(report)
    }

    /// Queues a report of the latest results (the periodic heartbeat).
    pub async fn queue_heartbeat(&self) -> Result<(), AgentError> {
        if self.enrollment().await?.is_none() {
            return Ok(());
        }
        let results = self.inner.store.latest_results().await?;
        self.queue_report(results).await?;
        let n = self.inner.store.outbox_len().await?;
        self.update(|s| s.outbox_len = n);
        Ok(())
    }

    /// Delivers every queued report, oldest first; stops at the first failure and leaves the
    /// rest queued. Returns how many were delivered.
    pub async fn flush_outbox(&self) -> Result<usize, AgentError> {
        let _flushing = self.inner.flush_lock.lock().await;
        let (client, token) = self.server_session().await?;
        let mut delivered = 0;
        let outcome = async {
            loop {
                let batch = self.inner.store.outbox(50).await?;
                if batch.is_empty() {
                    return Ok::<_, AgentError>(());
                }
                for (report_id, body) in batch {
                    self.inner.store.mark_attempt(&report_id).await?;
                    client.send_report(&token, &body).await?;
                    // Deleted only now that the server has acknowledged it; a crash before
                    // this line resends it, and the server drops the duplicate by report_id.
                    self.inner.store.remove_from_outbox(&report_id).await?;
                    delivered += 1;
                }
            }
        }
        .await;
        self.after_sync(&outcome).await;
        outcome.map(|()| delivered)
    }

    /// Records the outcome of talking to the server in the store and the state.
    async fn after_sync<T>(&self, outcome: &Result<T, AgentError>) {
        let outbox_len = self.inner.store.outbox_len().await.unwrap_or_default();
        match outcome {
            Ok(_) => {
                let now = Utc::now();
                if let Err(e) = self.inner.store.put(KEY_LAST_SYNC, &now).await {
                    tracing::warn!(error = %e, "could not record the sync time");
                }
                self.update(|s| {
                    s.last_sync_at = Some(now);
                    s.last_sync_error = None;
                    s.outbox_len = outbox_len;
                });
            }
            Err(e) => {
                let msg = e.to_string();
                self.update(|s| {
                    s.last_sync_error = Some(msg);
                    s.outbox_len = outbox_len;
                });
            }
        }
    }

    /// Applies a policy the server sent: verified against the pinned key, else rejected,
    /// reported, and the last good policy stays in force.
    pub async fn apply_server_policy(&self, signed: SignedPolicy) -> Result<(), AgentError> {
        let record = self.enrollment().await?.ok_or(AgentError::NotEnrolled)?;
        match policy::verify(&signed, &record.policy_signing_key) {
            Ok(_) => {
                let version = signed.version;
                self.inner.store.put(KEY_POLICY_SEEN, &signed.etag).await?;
                let stored = StoredPolicy {
                    signed,
                    received_at: Utc::now(),
                };
                self.inner.store.put(KEY_SERVER_POLICY, &stored).await?;
                self.inner.store.delete(KEY_POLICY_REJECTED).await?;
                self.push_event(EventKind::PolicyApplied, format!("version {version}"))
                    .await;
                self.refresh_enrollment_and_policy().await?;
                tracing::info!(version, "applied server policy");
                // New intervals or thresholds: judge the machine against them now.
                self.inner.check_requested.notify_one();
                Ok(())
            }
            Err(rejected) => {
                tracing::error!(error = %rejected, version = signed.version, "rejected server policy; keeping the last good one");
                let why = format!(
                    "version {} from the server was rejected: {rejected}",
                    signed.version
                );
                self.inner.store.put(KEY_POLICY_SEEN, &signed.etag).await?;
                self.inner.store.put(KEY_POLICY_REJECTED, &why).await?;
                self.refresh_enrollment_and_policy().await?;
                self.push_event(
                    EventKind::PolicyRejected,
                    format!("version {}: {rejected}", signed.version),
                )
                .await;
                Err(rejected.into())
            }
        }
    }

    async fn push_event(&self, kind: EventKind, detail: String) {
        let event = Event {
            kind,
            at: Utc::now(),
            check_id: None,
            detail: Some(detail),
        };
        if let Err(e) = self.inner.store.push_event(&event).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }

    /// One policy request. With `wait`, a long-poll. Returns whether the policy changed.
    pub async fn poll_policy(&self, wait: Option<Duration>) -> Result<bool, AgentError> {
        let (client, token) = self.server_session().await?;
        let seen: Option<String> = self.inner.store.get(KEY_POLICY_SEEN).await?;
        match client.poll_policy(&token, seen.as_deref(), wait).await? {
            PolicyPoll::NotModified => Ok(false),
            PolicyPoll::Changed(signed) if Some(&signed.etag) == seen.as_ref() => Ok(false),
            PolicyPoll::Changed(signed) => self.apply_server_policy(*signed).await.map(|()| true),
        }
    }

    /// Fetches and keeps what IT's identity provider says about the user, for the MFA and
    /// password-age checks. Kept across restarts; a failure leaves the last facts in place.
    pub async fn refresh_identity(&self) -> Result<(), AgentError> {
        let (client, token) = self.server_session().await?;
        let facts = client.identity(&token).await?;
        self.inner.store.put(KEY_IDENTITY, &facts).await?;
        Ok(())
    }

    /// `tandem sync`: fetch identity facts, run the checks, deliver everything queued, fetch
    /// the policy.
    pub async fn sync_now(&self) -> Result<AgentState, AgentError> {
        if self.enrollment().await?.is_none() {
            return Err(AgentError::NotEnrolled);
        }
        if let Err(e) = self.refresh_identity().await {
            // The checks still run on the last known facts; delivery reports the error.
            tracing::warn!(error = %e, "could not fetch identity facts");
        }
        self.check_now().await?;
        self.flush_outbox().await?;
        let polled = self.poll_policy(None).await;
        self.after_sync(&polled).await;
        polled?;
        Ok(self.state())
    }

    /// The nudge items that follow from the latest results, first-seen times, policy and
    /// nudge history.
    async fn current_items(
        &self,
    ) -> Result<(Vec<nudge::Item>, nudge::History, Policy), AgentError> {
        let (policy, _) = self.effective_policy().await?;
        let first_seen: track::FirstSeen = self
            .inner
            .store
            .get(KEY_FIRST_SEEN)
            .await?
            .unwrap_or_default();
        let history: nudge::History = self.inner.store.get(KEY_NUDGES).await?.unwrap_or_default();
        let results = self.state().results;
        let items = track::items(&results, &first_seen, &policy, Utc::now());
        Ok((items, history, policy))
    }

    /// Recomputes the open items shown in the state (phases move with the clock).
    pub async fn refresh_items(&self) -> Result<(), AgentError> {
        let (items, history, policy) = self.current_items().await?;
        self.publish_items(&items, history, &policy).await?;
        Ok(())
    }

    /// Puts the open items in the state, and forgets the nudge history of closed ones. The
    /// store is written only when that history changed: this runs every minute.
    async fn publish_items(
        &self,
        items: &[nudge::Item],
        mut history: nudge::History,
        policy: &Policy,
    ) -> Result<nudge::History, AgentError> {
        let open: Vec<_> = items.iter().map(|i| i.check_id).collect();
        let before = history.clone();
        history.retain_items(&open);
        if history != before {
            self.inner.store.put(KEY_NUDGES, &history).await?;
        }
        let now = Utc::now();
        let mut states: Vec<ActionItem> = items
            .iter()
            .map(|i| {
                let h = history.items.get(&i.check_id).cloned().unwrap_or_default();
                ActionItem {
                    check_id: i.check_id,
                    phase: nudge::phase(i, &policy.nudges, now),
                    first_seen: i.first_seen,
                    deadline: i.deadline,
                    deferrals_left: if now < i.deadline {
                        policy
                            .nudges
                            .deferrals
                            .max_count
                            .saturating_sub(h.deferrals)
                    } else {
                        0
                    },
                    deferred_until: h.deferred_until.filter(|t| *t > now),
                }
            })
            .collect();
        states.sort_by(|a, b| b.phase.cmp(&a.phase).then(a.deadline.cmp(&b.deadline)));
        let paused: Option<DateTime<Utc>> = self.inner.store.get(KEY_PAUSED).await?;
        self.update(|s| {
            s.items = states;
            s.paused_until = paused.filter(|t| *t > now);
        });
        Ok(history)
    }

    /// Asks the nudge engine whether to remind the user of something now. A decision is
    /// recorded as shown (and as an event for the next report) before it is returned.
    pub async fn nudge_tick(&self, ctx: &nudge::UserContext) -> Result<Option<Nudge>, AgentError> {
        let (items, history, policy) = self.current_items().await?;
        let history = self.publish_items(&items, history, &policy).await?;
        self.nudge_decide(&items, history, &policy, ctx).await
    }

    /// The scheduler's minute: refresh the items and, only when something could be shown,
    /// read the user's context (which starts probes) and decide.
    async fn nudge_round(&self) -> Result<Option<Nudge>, AgentError> {
        let (items, history, policy) = self.current_items().await?;
        let history = self.publish_items(&items, history, &policy).await?;
        if items.is_empty() {
            return Ok(None);
        }
        let unhindered = nudge::UserContext {
            utc_offset: context::local_offset(),
            ..nudge::UserContext::default()
        };
        // The context can only hold a nudge back, never bring one on.
        if nudge::decide(&items, &policy.nudges, &history, &unhindered, Utc::now()).is_none() {
            return Ok(None);
        }
        let ctx = context::current(&self.inner.host).await.to_context();
        self.nudge_decide(&items, history, &policy, &ctx).await
    }

    async fn nudge_decide(
        &self,
        items: &[nudge::Item],
        mut history: nudge::History,
        policy: &Policy,
        ctx: &nudge::UserContext,
    ) -> Result<Option<Nudge>, AgentError> {
        let now = Utc::now();
        let Some(decision) = nudge::decide(items, &policy.nudges, &history, ctx, now) else {
            return Ok(None);
        };
        if let Some(until) = self.state().paused_until.filter(|t| *t > now) {
            // Each tick a pause holds a reminder back says so: "why was I not reminded" has
            // an answer in the log, and tests can wait for it instead of for the clock.
            tracing::info!(check = %decision.check_id, %until, "reminder held: paused");
            return Ok(None);
        }
        history.record_shown(decision.check_id, now);
        self.inner.store.put(KEY_NUDGES, &history).await?;
        self.push_check_event(
            EventKind::NudgeShown,
            decision.check_id,
            format!("{:?}", decision.phase),
        )
        .await;
        let result = self
            .state()
            .results
            .into_iter()
            .find(|r| r.id == decision.check_id);
        let title = match decision.phase {
            nudge::Phase::Overdue => format!("Overdue: {}", decision.check_id.title()),
            nudge::Phase::Imminent => format!("Due soon: {}", decision.check_id.title()),
            _ => decision.check_id.title().to_owned(),
        };
        let body = result.map(|r| r.summary).unwrap_or_default();
        self.refresh_items().await?;
        let nudge = Nudge {
            decision,
            title,
            body,
        };
        // No face listening is fine: the nudge is recorded either way.
        let _ = self.inner.nudges.send(nudge.clone());
        Ok(Some(nudge))
    }

    /// Nudges as the running agent decides them.
    pub fn nudges(&self) -> tokio::sync::broadcast::Receiver<Nudge> {
        self.inner.nudges.subscribe()
    }

    /// The user chose "Later" on an item.
    pub async fn defer(&self, check_id: CheckId) -> Result<DateTime<Utc>, AgentError> {
        let (items, mut history, policy) = self.current_items().await?;
        let item = items
            .iter()
            .find(|i| i.check_id == check_id)
            .ok_or(AgentError::NothingToDefer(check_id))?;
        let until = history.record_deferral(item, &policy.nudges, Utc::now())?;
        self.inner.store.put(KEY_NUDGES, &history).await?;
        self.push_check_event(
            EventKind::NudgeDeferred,
            check_id,
            format!("until {}", until.to_rfc3339()),
        )
        .await;
        self.refresh_items().await?;
        Ok(until)
    }

    /// The user acted on an item ("Fix now"): recorded, and the machine is checked again
    /// soon so a fixed item turns green.
    pub async fn acted(&self, check_id: CheckId) {
        self.push_check_event(EventKind::NudgeActed, check_id, "fix opened".into())
            .await;
        let agent = self.clone();
        tokio::spawn(async move {
            for wait in FOLLOW_UPS {
                tokio::time::sleep(wait).await;
                match agent.check_items(&[check_id]).await {
                    Ok(state) if !state.items.iter().any(|i| i.check_id == check_id) => {
                        tracing::info!(check = %check_id, "fixed after the user acted on it");
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, check = %check_id, "follow-up check failed")
                    }
                }
            }
        });
    }

    /// "Pause reminders": allowed only while the policy allows deferring at all.
    pub async fn pause_reminders(&self, duration: Duration) -> Result<DateTime<Utc>, AgentError> {
        let (policy, _) = self.effective_policy().await?;
        if policy.nudges.deferrals.max_count == 0 {
            return Err(AgentError::PauseNotAllowed);
        }
        let until = Utc::now() + chrono::Duration::from_std(duration).unwrap_or_default();
        self.inner.store.put(KEY_PAUSED, &until).await?;
        self.refresh_items().await?;
        Ok(until)
    }

    async fn push_check_event(&self, kind: EventKind, check_id: CheckId, detail: String) {
        let event = Event {
            kind,
            at: Utc::now(),
            check_id: Some(check_id),
            detail: Some(detail),
        };
        if let Err(e) = self.inner.store.push_event(&event).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }

    /// Asks the running scheduler for a check run now (the tray's "Check now").
    pub fn request_check(&self) {
        self.inner.check_requested.notify_one();
    }

    /// Drives the agent until `shutdown` is cancelled: checks on their interval and on
    /// request, reports on theirs, and a policy long-poll kept open to the server.
    pub async fn run(&self, shutdown: CancellationToken) {
        tokio::join!(
            shutdown.run_until_cancelled(self.check_loop()),
            shutdown.run_until_cancelled(self.report_loop()),
            shutdown.run_until_cancelled(self.policy_loop()),
            shutdown.run_until_cancelled(self.tick_loop()),
        );
        self.inner.store.close().await;
    }

    async fn check_loop(&self) {
        loop {
            if let Err(e) = self.check_now().await {
                tracing::warn!(error = %e, "check run incomplete");
            }
            // Fresh results may make something due: decide now, not at the next tick (the
            // engine's budget and gaps still hold).
            if let Err(e) = self.nudge_round().await {
                tracing::warn!(error = %e, "nudge decision failed");
            }
            let minutes = self
                .effective_policy()
                .await
                .map(|(p, _)| p.intervals.check_minutes)
                .unwrap_or(60);
            let period = jittered(Duration::from_secs(u64::from(minutes) * 60));
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.inner.check_requested.notified() => {}
            }
        }
    }

    async fn report_loop(&self) {
        let mut failures = 0u32;
        loop {
            let wait = match self.flush_outbox().await {
                Ok(_) | Err(AgentError::NotEnrolled) => {
                    failures = 0;
                    if let Err(e) = self.refresh_identity().await {
                        tracing::debug!(error = %e, "identity facts not refreshed");
                    }
                    // IT's replies ride on the report interval, and only while some
                    // report still awaits a verdict.
                    self.refresh_phishing_if_pending().await;
                    let minutes = self
                        .effective_policy()
                        .await
                        .map(|(p, _)| p.intervals.report_minutes)
                        .unwrap_or(15);
                    Some(jittered(Duration::from_secs(u64::from(minutes) * 60)))
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "report delivery failed; will retry");
                    Some(backoff(failures))
                }
            };
            let timer = tokio::time::sleep(wait.unwrap_or(BACKOFF_MAX));
            tokio::pin!(timer);
            tokio::select! {
                () = &mut timer => {
                    // The heartbeat: the server hears from every device on the report interval.
                    if failures == 0 {
                        if let Err(e) = self.queue_heartbeat().await {
                            tracing::warn!(error = %e, "could not queue a report");
                        }
                    }
                }
                () = self.inner.flush_requested.notified() => {}
            }
        }
    }

    /// The once-a-minute tick: notices a wake from sleep or a network change (check again,
    /// flush, reconnect the policy poll), moves items through their phases and decides
    /// nudges. It is the agent's only timer while nothing is due.
    async fn tick_loop(&self) {
        let mut watch = schedule::Watch::new(Utc::now(), schedule::NetFingerprint::current());
        loop {
            tokio::time::sleep(TICK).await;
            let changes = watch.tick(Utc::now(), TICK, schedule::NetFingerprint::current());
            if changes.any() {
                tracing::info!(
                    woke = changes.woke,
                    network = changes.network,
                    "the machine woke or changed network; checking and syncing again"
                );
                self.request_check();
                self.inner.flush_requested.notify_one();
                self.inner.reconnect.notify_one();
            }
            if let Err(e) = self.nudge_round().await {
                tracing::warn!(error = %e, "nudge decision failed");
            }
        }
    }

    async fn policy_loop(&self) {
        let mut failures = 0u32;
        loop {
            let polled = tokio::select! {
                polled = self.poll_policy(Some(POLICY_WAIT)) => polled,
                () = self.inner.reconnect.notified() => {
                    failures = 0;
                    continue;
                }
            };
            match polled {
                Ok(_) => failures = 0,
                Err(AgentError::NotEnrolled) => {
                    self.inner.enrolled.notified().await;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "policy poll failed; will retry");
                    let failed = Err::<(), _>(e);
                    self.after_sync(&failed).await;
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        () = self.inner.reconnect.notified() => failures = 0,
                    }
                }
            }
        }
    }
}

/// Exponential backoff with full jitter, capped: 1 s, 2 s, 4 s … up to five minutes.
fn backoff(failures: u32) -> Duration {
    let ceiling = Duration::from_secs(1u64 << failures.min(9)).min(BACKOFF_MAX);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

/// Spreads periodic work by ±10 % so a fleet does not report in lockstep.
fn jittered(period: Duration) -> Duration {
    let ms = u64::try_from(period.as_millis())
        .unwrap_or(u64::MAX)
        .max(10);
    Duration::from_millis(rand::thread_rng().gen_range(ms * 9 / 10..=ms * 11 / 10))
}

/// `previous` with each result of `fresh` put in place of the one with its id.
fn merge_results(
    mut previous: Vec<tandem_proto::CheckResult>,
    fresh: &[tandem_proto::CheckResult],
) -> Vec<tandem_proto::CheckResult> {
    for r in fresh {
        match previous.iter_mut().find(|p| p.id == r.id) {
            Some(slot) => *slot = r.clone(),
            None => previous.push(r.clone()),
        }
    }
    previous
}

/// The server URL as stored: without a trailing slash.
fn client_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(2));
        for n in 1..50 {
            assert!(backoff(n) <= BACKOFF_MAX);
        }
        assert!(backoff(20) >= BACKOFF_MAX / 2);
    }
}
