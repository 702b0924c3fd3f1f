//! The HTTP API: the router, the state every handler shares, and the health endpoints.
//!
//! Paths come from `tandem_proto::v1` wherever the agent also uses them, so the two cannot
//! drift. Each route that takes a body sets its own size limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
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
pub mod validate;

use error::ApiError;

/// `PUT`/`GET` one group's policy. (Proposed for `tandem_proto::v1` beside the others.)
pub const PATH_ADMIN_GROUP_POLICY: &str = "/api/v1/admin/groups/{group}/policy";

/// An enrolment request is a few hundred bytes.
pub const ENROLL_BODY_LIMIT: usize = 64 * 1024;
/// A report with every check's evidence fits comfortably; more is abuse.
pub const REPORT_BODY_LIMIT: usize = 1024 * 1024;
pub const POLICY_BODY_LIMIT: usize = 256 * 1024;
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
        .route(v1::PATH_ADMIN_DEVICES, get(admin::devices))
        .route(
            PATH_ADMIN_GROUP_POLICY,
            get(admin::get_policy)
                .put(admin::put_policy)
                .layer(DefaultBodyLimit::max(POLICY_BODY_LIMIT)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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
