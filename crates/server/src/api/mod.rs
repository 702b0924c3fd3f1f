//! The HTTP API: the router, the state every handler shares, and the health endpoints.
//!
//! Paths come from `tandem_proto::v1` wherever the agent also uses them, so the two cannot
//! drift. Each route that takes a body sets its own size limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use axum::Router;
use tandem_proto::v1;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::hub::PolicyHub;
use crate::keys::PolicySigner;
use crate::store::Store;

pub mod admin;
pub mod agent;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod phishing;
pub mod sources;
pub mod updates;
pub mod validate;

use error::ApiError;

// Admin paths that only IT's tools use. (Proposed for `tandem_proto::v1` beside
// `PATH_ADMIN_DEVICES`, so that a CLI or the e2e tests can share them.)
pub const PATH_ADMIN_DEVICE: &str = "/api/v1/admin/devices/{id}";
pub const PATH_ADMIN_DEVICE_REVOKE: &str = "/api/v1/admin/devices/{id}/revoke";
pub const PATH_ADMIN_GROUPS: &str = "/api/v1/admin/groups";
pub const PATH_ADMIN_POLICY_VERSIONS: &str = "/api/v1/admin/groups/{group}/policy/versions";
pub const PATH_ADMIN_POLICY_VERSION: &str =
    "/api/v1/admin/groups/{group}/policy/versions/{version}";
pub const PATH_ADMIN_POLICY_DIFF: &str = "/api/v1/admin/groups/{group}/policy/diff";
pub const PATH_ADMIN_ENROLL_SECRETS: &str = "/api/v1/admin/enroll-secrets";
pub const PATH_ADMIN_ENROLL_SECRET_EXPIRE: &str = "/api/v1/admin/enroll-secrets/{id}/expire";
pub const PATH_ADMIN_AUDIT: &str = "/api/v1/admin/audit";
pub const PATH_ADMIN_EXPORT_COMPLIANCE: &str = "/api/v1/admin/export/compliance.csv";
pub const PATH_OPENAPI: &str = "/api/v1/openapi.json";
pub const PATH_ADMIN_PHISHING: &str = "/api/v1/admin/phishing-reports";
pub const PATH_ADMIN_PHISHING_MESSAGE: &str = "/api/v1/admin/phishing-reports/{id}/message";
/// IT's triage of a report and the reply its reporter sees.
pub const PATH_ADMIN_PHISHING_TRIAGE: &str = "/api/v1/admin/phishing-reports/{id}/triage";
pub const PATH_ADMIN_IDENTITIES: &str = "/api/v1/admin/identities";
pub const PATH_ADMIN_IDENTITY_IMPORT: &str = "/api/v1/admin/identities/import";
pub const PATH_ADMIN_IDENTITY_SOURCES: &str = "/api/v1/admin/identity-sources";
/// One identity source stored in the database (configured in the console or this API).
pub const PATH_ADMIN_IDENTITY_SOURCE: &str = "/api/v1/admin/identity-sources/{name}";

/// An enrolment request is a few hundred bytes.
pub const ENROLL_BODY_LIMIT: usize = 64 * 1024;
/// A report with every check's evidence fits comfortably; more is abuse.
pub const REPORT_BODY_LIMIT: usize = 1024 * 1024;
pub const POLICY_BODY_LIMIT: usize = 256 * 1024;
/// A 10 MB message plus the form around it.
pub const PHISHING_BODY_LIMIT: usize = phishing::MAX_MESSAGE + 64 * 1024;
/// 100,000 users of a bulk identity import, with room to spare.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// An agent release artifact (an AppImage, MSI or app bundle) with the form around it.
pub const RELEASE_BODY_LIMIT: usize = updates::MAX_ARTIFACT + 64 * 1024;
/// Everything else takes no body worth the name.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// What every handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hub: Arc<PolicyHub>,
    pub signer: Arc<PolicySigner>,
    pub clock: Arc<dyn Clock>,
    /// The longest `?wait=` a policy long-poll is held for.
    pub max_long_poll: Duration,
    /// Fires on shutdown, so parked long-polls answer at once instead of holding it up.
    pub shutdown: CancellationToken,
    pub identity_sources: Vec<crate::identity::sources::SourceConfig>,
    pub webhooks: crate::webhooks::Webhooks,
    /// The configured hooks, for the console's read-only list (their secrets stay unshown).
    pub webhook_configs: Vec<crate::webhooks::WebhookConfig>,
    /// Seals and opens the credentials of console-configured sources and hooks.
    pub secrets: crate::secrets::SecretsKey,
    pub metrics: crate::metrics::SharedMetrics,
    /// Enrolments per source address; `None` turns the limit off.
    pub enroll_limiter: Option<Arc<AddressLimiter>>,
    /// Console sign-in attempts per source address; `None` turns the limit off.
    pub sign_in_limiter: Option<Arc<AddressLimiter>>,
    /// Requests per token (device or API), keyed by the token's hash; `None`: no limit.
    pub token_limiter: Option<Arc<TokenLimiter>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long raw reports are kept.
    pub report_retention: Duration,
    /// The batched writers of reports and policy deliveries.
    pub writers: crate::batch::Writers,
    /// Signed policies by etag.
    pub signed_policies: crate::policy::SignedCache,
    /// Effective policies by group, until the next publication.
    pub effective_policies: crate::policy::EffectiveCache,
    /// The updater key and the public address, for agent releases.
    pub updates: updates::UpdateSettings,
    /// The console's OpenID Connect client; `None` when not configured.
    pub oidc: Option<Arc<crate::console::oidc::Oidc>>,
}

/// A token bucket per token hash.
pub type TokenLimiter = KeyedLimiter<[u8; 32]>;

/// A token bucket per source address (enrolments, console sign-ins).
pub type AddressLimiter = KeyedLimiter<std::net::IpAddr>;

/// A token bucket per key.
pub type KeyedLimiter<K> = governor::RateLimiter<
    K,
    governor::state::keyed::DefaultKeyedStateStore<K>,
    governor::clock::DefaultClock,
>;

/// Takes one request from `key`'s bucket, or answers 429 with the wait. Once the limiter
/// holds more than `forget_over` keys, those whose bucket is full again are dropped, so
/// keys that come once (random tokens, passing addresses) cannot grow it without bound.
pub fn spend<K: std::hash::Hash + Eq + Clone>(
    limiter: &KeyedLimiter<K>,
    key: &K,
    forget_over: usize,
) -> Result<(), ApiError> {
    if let Err(not_until) = limiter.check_key(key) {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        return Err(ApiError::TooManyRequests(not_until.wait_time_from(now)));
    }
    if limiter.len() > forget_over {
        limiter.retain_recent();
    }
    Ok(())
}

pub type SharedState = Arc<AppState>;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route(
            v1::PATH_ENROLL,
            post(agent::enroll).layer(DefaultBodyLimit::max(ENROLL_BODY_LIMIT)),
        )
        .route(
            v1::PATH_REPORTS,
            post(agent::report).layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(v1::PATH_POLICY, get(agent::policy))
        .route(v1::PATH_IDENTITY, get(agent::identity))
        .route(
            v1::PATH_PHISHING,
            post(phishing::report)
                .get(phishing::mine)
                .layer(DefaultBodyLimit::max(PHISHING_BODY_LIMIT)),
        )
        .route(v1::PATH_PHISHING_REPORT, get(phishing::one))
        .route(PATH_ADMIN_PHISHING_TRIAGE, put(phishing::set_triage))
        .route(PATH_ADMIN_PHISHING, get(phishing::inbox))
        .route(PATH_ADMIN_PHISHING_MESSAGE, get(phishing::message))
        .route(v1::PATH_ADMIN_DEVICES, get(admin::devices))
        .route(PATH_ADMIN_DEVICE, get(admin::device))
        .route(PATH_ADMIN_DEVICE_REVOKE, post(admin::revoke_device))
        .route(
            PATH_ADMIN_GROUPS,
            get(admin::groups).post(admin::create_group),
        )
        .route(
            v1::PATH_ADMIN_GROUP_POLICY,
            get(admin::get_policy)
                .put(admin::put_policy)
                .layer(DefaultBodyLimit::max(POLICY_BODY_LIMIT)),
        )
        .route(PATH_ADMIN_POLICY_VERSIONS, get(admin::policy_versions))
        .route(PATH_ADMIN_POLICY_VERSION, get(admin::policy_version))
        .route(PATH_ADMIN_POLICY_DIFF, get(admin::policy_diff))
        .route(
            PATH_ADMIN_ENROLL_SECRETS,
            get(admin::enroll_secrets).post(admin::create_enroll_secret),
        )
        .route(
            PATH_ADMIN_ENROLL_SECRET_EXPIRE,
            post(admin::expire_enroll_secret),
        )
        .route(PATH_ADMIN_AUDIT, get(admin::audit))
        .route(PATH_ADMIN_IDENTITIES, get(admin::identities))
        .route(
            PATH_ADMIN_IDENTITY_IMPORT,
            post(admin::import_identities).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            PATH_ADMIN_IDENTITY_SOURCES,
            get(admin::identity_sources).post(sources::create),
        )
        .route(
            PATH_ADMIN_IDENTITY_SOURCE,
            put(sources::replace).delete(sources::delete),
        )
        .route(PATH_ADMIN_EXPORT_COMPLIANCE, get(admin::export_compliance))
        .route(v1::PATH_UPDATE, get(updates::check))
        .route(v1::PATH_UPDATE_ARTIFACT, get(updates::artifact))
        .route(
            v1::PATH_ADMIN_RELEASES,
            get(updates::list_releases)
                .post(updates::upload_release)
                .layer(DefaultBodyLimit::max(RELEASE_BODY_LIMIT)),
        )
        .route(v1::PATH_ADMIN_GROUP_CHANNEL, put(updates::set_channel))
        .route(PATH_OPENAPI, get(openapi::serve))
        .route("/metrics", get(crate::metrics::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::metrics::track,
        ))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // The IT console's HTML pages, with their own headers and body limit.
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        // Spans carry the method and path only; headers (tokens) are never logged.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers too.
async fn readyz(State(state): State<SharedState>) -> Result<&'static str, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::NotReady(Box::new(e)))?;
    Ok("ready")
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
