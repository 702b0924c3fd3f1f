//! Tandem Server: enrols devices, ingests their status reports, and pushes signed policy to
//! them through long-polls, with an admin API for IT.
//!
//! The binary is glue around this library so that tests run the real server in-process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), tandem_server::ServerError> {
//! let mut config = tandem_server::Config::new("sqlite:///tmp/tandem.db");
//! config.listen = "127.0.0.1:0".parse().unwrap_or(config.listen);
//! let app = tandem_server::App::open(&config).await?;
//! let secret = app.create_enroll_secret(&Default::default()).await?;
//! let server = app.bind(config.listen).await?;
//! println!("{} {secret}", server.url());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Decisions worth knowing:
//! - A machine that enrols again (same `machine_id`) keeps its device id and history; its
//!   earlier tokens are revoked and it moves to the group of the secret it used.
//! - `report_id` is unique per device: a replay from the same device answers 200 and writes
//!   nothing; the same id from another device cannot suppress that device's report.
//! - Policy changes made in this process wake its long-polls at once through [`hub`]; changes
//!   made elsewhere (the `policy push` command, another replica) arrive through the store's
//!   change feed (SQLite: polled every second; PostgreSQL: LISTEN/NOTIFY, at once).
//! - Every admin change is written with its audit-log row in one transaction; the CLI acts
//!   as `cli`, an API token as `token:<id>`.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use chrono::Duration as TimeDelta;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub mod api;
pub mod batch;
pub mod clock;
pub mod config;
pub mod console;
pub mod diff;
pub mod export;
pub mod hub;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod overdue;
pub mod policy;
pub mod releases;
pub mod retention;
pub mod secrets;
pub mod store;
pub mod tls;
pub mod webhooks;

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use store::{PutPolicyOutcome, Role, Store, StoreError};

use api::{AppState, SharedState};
use hub::PolicyHub;
use keys::{hash_secret, new_secret, PolicySigner};
use policy::PushPolicyError;
use store::{NewApiToken, NewEnrollSecret, DEFAULT_GROUP};

/// Failures of the library's entry points; the API has its own `ApiError`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
}

/// A keyed limiter for `limit`; `None` when either figure is 0 (the limit is off).
fn keyed_limiter<K: std::hash::Hash + Eq + Clone>(
    limit: config::RateLimit,
) -> Option<Arc<api::KeyedLimiter<K>>> {
    let per_minute = std::num::NonZeroU32::new(limit.per_minute)?;
    let burst = std::num::NonZeroU32::new(limit.burst)?;
    let quota = governor::Quota::per_minute(per_minute).allow_burst(burst);
    Some(Arc::new(governor::RateLimiter::keyed(quota)))
}

/// Options of a new enrolment secret.
#[derive(Debug, Clone)]
pub struct EnrollSecretOptions {
    /// The group devices enrolled with this secret join; created when missing.
    pub group: String,
    pub expires_in: Option<TimeDelta>,
    pub max_uses: Option<u32>,
    /// Who creates it, for the audit log.
    pub actor: String,
}

impl Default for EnrollSecretOptions {
    fn default() -> Self {
        EnrollSecretOptions {
            group: DEFAULT_GROUP.to_owned(),
            expires_in: None,
            max_uses: None,
            actor: CLI_ACTOR.to_owned(),
        }
    }
}

/// How the audit log names changes made through the command line (or the library itself).
pub const CLI_ACTOR: &str = "cli";

/// A new enrolment secret: shown once, stored only as a hash.
#[derive(Debug, Clone)]
pub struct CreatedSecret {
    pub id: Uuid,
    pub secret: String,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Validates the options and stores a new secret's hash (with its audit entry).
pub(crate) async fn create_enroll_secret(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
    options: &EnrollSecretOptions,
) -> Result<CreatedSecret, ServerError> {
    policy::check_group_name(&options.group).map_err(ServerError::InvalidArgument)?;
    if options.max_uses == Some(0) {
        return Err(ServerError::InvalidArgument(
            "max uses must be at least 1".into(),
        ));
    }
    let expires_at = match options.expires_in {
        Some(d) if d <= TimeDelta::zero() => {
            return Err(ServerError::InvalidArgument(
                "expiry must be in the future".into(),
            ))
        }
        Some(d) => Some(now.checked_add_signed(d).ok_or_else(|| {
            ServerError::InvalidArgument("expiry is too far in the future".into())
        })?),
        None => None,
    };
    let secret = new_secret();
    let id = Uuid::now_v7();
    store
        .create_enroll_secret(&NewEnrollSecret {
            id,
            hash: hash_secret(&secret),
            group: options.group.clone(),
            created_at: now,
            expires_at,
            max_uses: options.max_uses,
            created_by: options.actor.clone(),
        })
        .await?;
    Ok(CreatedSecret {
        id,
        secret,
        expires_at,
    })
}

/// An opened server: database migrated, signing key loaded. Serve it with [`App::bind`] or
/// use its admin operations directly (the CLI does).
#[derive(Clone)]
pub struct App {
    state: SharedState,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("backend", &self.state.store.backend())
            .finish()
    }
}

impl App {
    pub async fn open(config: &Config) -> Result<App, ServerError> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<App, ServerError> {
        let store = store::open(&config.database_url, &config.store).await?;
        let signer = PolicySigner::load_or_create(&*store, clock.now()).await?;
        let secrets_key =
            secrets::load_for(config.secrets_key_file.as_deref(), &config.database_url)?;
        // Credentials an older server stored in the clear are sealed before anyone reads them.
        secrets::seal_existing(&*store, &secrets_key).await?;
        let shutdown = CancellationToken::new();
        let webhooks = webhooks::Webhooks::start(
            config.webhooks.clone(),
            config.webhook_retry.clone(),
            shutdown.clone(),
            secrets_key.clone(),
        );
        // The console's hooks count from the first request on.
        webhooks.reload(&*store).await?;
        let oidc = match &config.oidc {
            None => None,
            Some(oidc) => {
                let public_url = config.public_url.as_deref().ok_or_else(|| {
                    ServerError::InvalidArgument(
                        "OpenID Connect sign-in needs the public URL (--public-url), from which its redirect URI is made".into(),
                    )
                })?;
                let client = console::oidc::Oidc::new(oidc.clone(), public_url)
                    .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
                Some(Arc::new(client))
            }
        };
        let writers = batch::Writers::start(Arc::clone(&store), config.report_queue);
        Ok(App {
            state: Arc::new(AppState {
                store,
                hub: Arc::new(PolicyHub::new()),
                signer: Arc::new(signer),
                clock,
                max_long_poll: config.max_long_poll,
                shutdown,
                identity_sources: config.identity_sources.clone(),
                webhooks,
                webhook_configs: config.webhooks.clone(),
                secrets: secrets_key,
                metrics: Arc::new(metrics::Metrics::default()),
                enroll_limiter: config.enroll_rate_limit.and_then(keyed_limiter),
                sign_in_limiter: config.sign_in_rate_limit.and_then(keyed_limiter),
                token_limiter: config.token_rate_limit.and_then(keyed_limiter),
                trusted_proxies: config.trusted_proxies.clone(),
                report_retention: config.report_retention,
                writers,
                signed_policies: policy::SignedCache::default(),
                effective_policies: policy::EffectiveCache::default(),
                updates: api::updates::UpdateSettings {
                    public_key: config.updater_public_key.clone(),
                    public_url: config.public_url.clone(),
                    tls: config.tls.is_some(),
                },
                oidc,
            }),
        })
    }

    /// The axum router, for callers that serve it themselves.
    pub fn router(&self) -> Router {
        api::router(Arc::clone(&self.state))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    pub fn hub(&self) -> &Arc<PolicyHub> {
        &self.state.hub
    }

    /// The Ed25519 public key agents pin, base64 standard.
    pub fn policy_signing_key(&self) -> String {
        self.state.signer.public_key_base64()
    }

    /// Creates an enrolment secret and returns it; only its hash is stored.
    pub async fn create_enroll_secret(
        &self,
        options: &EnrollSecretOptions,
    ) -> Result<String, ServerError> {
        let created =
            create_enroll_secret(&*self.state.store, self.state.clock.now(), options).await?;
        Ok(created.secret)
    }

    /// Creates an admin API token and returns it; only its hash is stored.
    pub async fn create_api_token(&self, role: Role, name: &str) -> Result<String, ServerError> {
        if name.len() > 256 {
            return Err(ServerError::InvalidArgument(
                "token name is longer than 256 bytes".into(),
            ));
        }
        let token = new_secret();
        self.state
            .store
            .create_api_token(&NewApiToken {
                id: Uuid::now_v7(),
                name: name.to_owned(),
                role,
                hash: hash_secret(&token),
                created_at: self.state.clock.now(),
                created_by: CLI_ACTOR.to_owned(),
            })
            .await?;
        Ok(token)
    }

    /// Creates an IT console account and returns its TOTP secret (base32), which the
    /// person adds to an authenticator app; only the password's argon2id hash is stored.
    pub async fn create_console_admin(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<String, ServerError> {
        console::pages::create_account(
            &*self.state.store,
            username,
            password,
            role,
            CLI_ACTOR,
            self.state.clock.now(),
        )
        .await
        .map_err(ServerError::InvalidArgument)
    }

    /// Seals every stored credential again with the key in `new_key_file` (created when
    /// missing); the servers must then be given that file in place of their current one.
    /// Returns the new key's id and how many records were sealed again.
    pub async fn rotate_secrets_key(
        &self,
        new_key_file: &std::path::Path,
    ) -> Result<(String, usize), ServerError> {
        let (new, _) = secrets::SecretsKey::load_or_create(new_key_file)?;
        let n = secrets::rotate(&*self.state.store, &self.state.secrets, &new)
            .await
            .map_err(|e| match e {
                secrets::RotateError::Store(e) => ServerError::Store(e),
                other => ServerError::InvalidArgument(other.to_string()),
            })?;
        Ok((new.id().to_owned(), n))
    }

    /// The fleet compliance CSV, as `GET /api/v1/admin/export/compliance.csv` serves it.
    pub async fn compliance_csv(&self) -> Result<Vec<u8>, ServerError> {
        let devices = export::all_devices(&*self.state.store).await?;
        export::compliance_csv(&devices)
            .map_err(|e| ServerError::InvalidArgument(format!("could not write the CSV: {e}")))
    }

    /// Polls every identity source (the file's and the console's) once, now, and returns
    /// their health.
    pub async fn poll_identity_sources(&self) -> Result<Vec<store::SourceHealth>, StoreError> {
        let s = &self.state;
        let http = identity::sources::http_client();
        let mut health = Vec::new();
        let (sources, faults) =
            identity::sources::sources_and_faults(&s.identity_sources, &*s.store, &s.secrets)
                .await?;
        for (source, _) in sources {
            health.push(identity::sources::poll_once(&source, &*s.store, &*s.clock, &http).await);
        }
        for fault in faults {
            health.push(identity::sources::record_unreadable(&fault, &*s.store, &*s.clock).await);
        }
        Ok(health)
    }

    /// What the background refresher does every quarter hour: recompute the fleet's
    /// compliance (failing streaks, today's trend point) and send the "became overdue"
    /// notices. Returns how many notices were sent.
    pub async fn refresh_compliance(&self) -> Result<usize, StoreError> {
        let fleet = console::fleet::Fleet::load(&self.state).await?;
        overdue::notify(&self.state, &fleet).await
    }

    /// Validates and stores a policy version, waking this process's long-polls.
    pub async fn push_policy(
        &self,
        group: &str,
        body: Value,
        actor: &str,
    ) -> Result<PutPolicyOutcome, PushPolicyError> {
        let s = &self.state;
        policy::push(
            &*s.store,
            &s.hub,
            group,
            body,
            actor.to_owned(),
            s.clock.now(),
        )
        .await
    }

    /// Starts serving on `addr` (port 0 picks a free port) in background tasks. An `App`
    /// serves once: shutting the server down also ends anything else its clones serve.
    pub async fn bind(self, addr: SocketAddr) -> Result<RunningServer, ServerError> {
        self.bind_with(addr, None).await
    }

    /// [`App::bind`], terminating TLS with `tls` when given.
    pub async fn bind_with(
        self,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<RunningServer, ServerError> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shutdown = self.state.shutdown.clone();

        // The feed starts before the first request is served, so no version written by
        // another process in between can slip past a long-poll.
        let feed = self
            .state
            .store
            .policy_change_feed(Arc::clone(&self.state.hub), shutdown.clone())
            .await?;
        let follower = tokio::spawn(feed);
        // The pollers end with the shutdown token; nothing waits on them.
        drop(identity::sources::spawn_pollers(
            &self.state.identity_sources,
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
            identity::sources::POLL_TICK,
            shutdown.clone(),
            self.state.secrets.clone(),
        ));
        // Hooks changed through another replica arrive on the next refresh.
        drop(self.state.webhooks.spawn_refresher(
            Arc::clone(&self.state.store),
            webhooks::REFRESH,
            shutdown.clone(),
        ));

        drop(retention::spawn_pruner(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
            self.state.report_retention,
            shutdown.clone(),
        ));

        // The console's compliance history: the trend chart has a point for every day the
        // server runs, whether or not anyone looks at the overview that day.
        drop(console::spawn_refresher(
            Arc::clone(&self.state),
            std::time::Duration::from_secs(15 * 60),
            shutdown.clone(),
        ));

        let router = self.router();
        let serve_shutdown = shutdown.clone();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let server = match tls {
            None => tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(serve_shutdown.cancelled_owned())
                    .await
            }),
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor)
                    .map_err(|source| ServerError::Bind { addr, source })?;
                // `tap_io` only so axum's connect-info for `SocketAddr` applies.
                let listener = axum::serve::ListenerExt::tap_io(listener, |_| ());
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(serve_shutdown.cancelled_owned())
                        .await
                })
            }
        };
        tracing::info!(%local_addr, backend = self.state.store.backend(), "serving");
        Ok(RunningServer {
            local_addr,
            scheme,
            app: self,
            server,
            follower,
            _cancel_on_drop: shutdown.drop_guard(),
        })
    }
}

/// A server serving in the background. Dropping it stops it; [`RunningServer::shutdown`]
/// also waits until in-flight requests have finished.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    /// `http`, or `https` when the server terminates TLS.
    scheme: &'static str,
    app: App,
    server: JoinHandle<std::io::Result<()>>,
    follower: JoinHandle<()>,
    _cancel_on_drop: DropGuard,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://IP:PORT` (`https://` with TLS), with no trailing slash.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Stops accepting connections, answers parked long-polls with 304 and waits for
    /// in-flight requests.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let RunningServer {
            server,
            follower,
            _cancel_on_drop,
            ..
        } = self;
        drop(_cancel_on_drop);
        // A task that panicked or was aborted has nothing left to wait for.
        let _ = follower.await;
        match server.await {
            Ok(result) => result.map_err(ServerError::Serve),
            Err(_) => Ok(()),
        }
    }
}

/// Runs the server until `shutdown` completes. Once listening it prints exactly one line,
/// `listening on http://IP:PORT`, to stdout: other processes read it to find the port.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let server = App::open(&config)
        .await?
        .bind_with(config.listen, tls)
        .await?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server; the address is in the log as well.
    let _ = writeln!(stdout, "listening on {}", server.url()).and_then(|()| stdout.flush());
    drop(stdout);
    shutdown.await;
    tracing::info!("shutting down");
    server.shutdown().await
}
