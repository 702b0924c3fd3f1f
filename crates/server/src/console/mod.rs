//! The IT console: HTML pages served by the server itself under `/console`, for running the
//! programme from a browser.
//!
//! Security decisions, in one place:
//! - Everything a device sends is hostile. Pages are askama templates, which escape every
//!   value; nothing is marked safe. Raw reports and messages are shown as text in `<pre>`.
//! - Every response carries a strict Content-Security-Policy (no inline script or style, no
//!   framing, forms only to this origin) and `nosniff`; the one script is a static file.
//! - Sign-in takes a password (argon2id) and a TOTP code; repeated failures lock the
//!   account. Optionally OpenID Connect ([`oidc`]) signs in an existing account whose
//!   identity provider vouches for it (code flow, PKCE, state and nonce; no TOTP then). Sessions are random cookies (Secure, HttpOnly, SameSite=Strict) whose hashes
//!   the store keeps, so replicas share them.
//! - Every state-changing request is a POST through [`forms::AdminForm`] (or
//!   [`forms::SessionForm`] for signing out), which checks the session, the role and the
//!   form's CSRF token before the handler runs; a viewer can change nothing.
//! - Changes go through the same store methods as the admin API, so each is audited in the
//!   same transaction, as `admin:<username>`.

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::SharedState;
use crate::store::StoreError;

pub mod auth;
pub mod fleet;
pub mod forms;
pub mod integrations;
pub mod oidc;
pub mod pages;
pub mod policy_form;
pub mod reevaluate;
pub mod releases;
pub mod svg;
pub mod views;

/// Where the console lives.
pub const BASE: &str = "/console";

/// The Content-Security-Policy of every console response.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A raw policy document, a CSV import or a reply fits; more is abuse.
pub const FORM_BODY_LIMIT: usize = 1024 * 1024;

const CSS: &str = include_str!("../../static/console.css");
const JS: &str = include_str!("../../static/console.js");

/// Who may use a route: anyone (sign-in), any signed-in account, or admins only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    SignedIn,
    Admin,
}

/// Every console route, its method and who may use it. The router below is built from the
/// same paths, and the role tests walk this table, so a route added here is tested against
/// every role.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/console/login", Access::Public),
    ("POST", "/console/login", Access::Public),
    ("GET", "/console/oidc/start", Access::Public),
    ("GET", "/console/oidc/callback", Access::Public),
    ("GET", "/console/static/console.css", Access::Public),
    ("GET", "/console/static/console.js", Access::Public),
    ("POST", "/console/logout", Access::SignedIn),
    ("GET", "/console", Access::SignedIn),
    ("GET", "/console/devices/{id}", Access::SignedIn),
    ("POST", "/console/devices/{id}/revoke", Access::Admin),
    ("GET", "/console/policies", Access::SignedIn),
    ("GET", "/console/policies/{group}", Access::SignedIn),
    ("POST", "/console/policies/{group}/preview", Access::Admin),
    ("POST", "/console/policies/{group}/push", Access::Admin),
    ("POST", "/console/groups", Access::Admin),
    ("GET", "/console/enrollment", Access::SignedIn),
    ("POST", "/console/enrollment", Access::Admin),
    ("POST", "/console/enrollment/{id}/expire", Access::Admin),
    ("GET", "/console/identity", Access::SignedIn),
    ("POST", "/console/identity/poll", Access::Admin),
    ("POST", "/console/identity/import", Access::Admin),
    ("GET", "/console/identity/new", Access::SignedIn),
    ("POST", "/console/identity/sources", Access::Admin),
    ("GET", "/console/identity/sources/{name}", Access::SignedIn),
    ("POST", "/console/identity/sources/{name}", Access::Admin),
    (
        "POST",
        "/console/identity/sources/{name}/delete",
        Access::Admin,
    ),
    ("GET", "/console/phishing", Access::SignedIn),
    ("GET", "/console/phishing/{id}", Access::SignedIn),
    ("POST", "/console/phishing/{id}/triage", Access::Admin),
    ("GET", "/console/webhooks", Access::SignedIn),
    ("POST", "/console/webhooks", Access::Admin),
    ("GET", "/console/webhooks/{id}", Access::SignedIn),
    ("POST", "/console/webhooks/{id}", Access::Admin),
    ("POST", "/console/webhooks/{id}/delete", Access::Admin),
    ("POST", "/console/webhooks/{id}/test", Access::Admin),
    ("GET", "/console/tokens", Access::SignedIn),
    ("POST", "/console/tokens", Access::Admin),
    ("POST", "/console/tokens/{id}/revoke", Access::Admin),
    ("GET", "/console/admins", Access::SignedIn),
    ("POST", "/console/admins", Access::Admin),
    ("POST", "/console/admins/{id}/role", Access::Admin),
    ("POST", "/console/admins/{id}/disable", Access::Admin),
    ("POST", "/console/admins/{id}/oidc/link", Access::Admin),
    ("POST", "/console/admins/{id}/oidc/unlink", Access::Admin),
    ("GET", "/console/releases", Access::SignedIn),
    ("POST", "/console/releases", Access::Admin),
    ("POST", "/console/releases/channel", Access::Admin),
    ("GET", "/console/audit", Access::SignedIn),
    ("GET", "/console/audit.csv", Access::SignedIn),
    ("GET", "/console/export/compliance.csv", Access::SignedIn),
];

/// The console's routes, to be merged into the API router (which adds the state).
pub fn router() -> Router<SharedState> {
    use integrations as i;
    use pages as p;
    Router::new()
        .route("/console/login", get(p::login_page).post(p::login))
        .route(oidc::START_PATH, get(oidc::start))
        .route(oidc::CALLBACK_PATH, get(oidc::callback))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/logout", post(p::logout))
        .route("/console", get(p::fleet))
        .route("/console/devices/{id}", get(p::device))
        .route("/console/devices/{id}/revoke", post(p::revoke_device))
        .route("/console/policies", get(p::policies))
        .route("/console/policies/{group}", get(p::policy))
        .route("/console/policies/{group}/preview", post(p::policy_preview))
        .route("/console/policies/{group}/push", post(p::policy_push))
        .route("/console/groups", post(p::create_group))
        .route(
            "/console/enrollment",
            get(p::enrollment).post(p::create_secret),
        )
        .route("/console/enrollment/{id}/expire", post(p::expire_secret))
        .route("/console/identity", get(i::identity))
        .route("/console/identity/poll", post(i::identity_poll))
        .route("/console/identity/import", post(i::identity_import))
        .route("/console/identity/new", get(i::identity_new))
        .route("/console/identity/sources", post(i::identity_create))
        .route(
            "/console/identity/sources/{name}",
            get(i::identity_edit).post(i::identity_update),
        )
        .route(
            "/console/identity/sources/{name}/delete",
            post(i::identity_delete),
        )
        .route("/console/phishing", get(p::phishing))
        .route("/console/phishing/{id}", get(p::phishing_report))
        .route("/console/phishing/{id}/triage", post(p::phishing_triage))
        .route(
            "/console/webhooks",
            get(i::webhooks).post(i::webhook_create),
        )
        .route(
            "/console/webhooks/{id}",
            get(i::webhook_edit).post(i::webhook_update),
        )
        .route("/console/webhooks/{id}/delete", post(i::webhook_delete))
        .route("/console/webhooks/{id}/test", post(i::webhook_test))
        .route("/console/tokens", get(p::tokens).post(p::create_token))
        .route("/console/tokens/{id}/revoke", post(p::revoke_token))
        .route("/console/admins", get(p::admins).post(p::create_admin))
        .route("/console/admins/{id}/role", post(p::admin_role))
        .route("/console/admins/{id}/disable", post(p::admin_disable))
        .route("/console/admins/{id}/oidc/link", post(p::admin_oidc_link))
        .route(
            "/console/admins/{id}/oidc/unlink",
            post(p::admin_oidc_unlink),
        )
        .route(
            "/console/releases",
            get(releases::releases)
                .post(releases::upload)
                .layer(DefaultBodyLimit::max(crate::api::RELEASE_BODY_LIMIT)),
        )
        .route("/console/releases/channel", post(releases::set_channel))
        .route("/console/audit", get(p::audit))
        .route("/console/audit.csv", get(p::audit_csv))
        .route("/console/export/compliance.csv", get(p::compliance_csv))
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
        .into_response()
}

/// Why a console request did not get its page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No valid session: the browser is sent to the sign-in page.
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request without this session's CSRF token (or from another origin).
    #[error("the form is stale or came from another site; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not render the page")]
    Render(#[from] askama::Error),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            ConsoleError::SignIn => return Redirect::to("/console/login").into_response(),
            ConsoleError::Forbidden(_) | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Store(e) if e.is_overloaded() => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Store(_) | ConsoleError::Render(_) => {
                tracing::error!(error = %self, cause = ?std::error::Error::source(&self), "console error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            ConsoleError::Store(_) | ConsoleError::Render(_) => {
                "Something went wrong on the server; the details are in its log.".to_owned()
            }
            other => other.to_string(),
        };
        (status, views::error_page(status, &message)).into_response()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keeps the compliance history current when nobody looks at the overview: refreshes the
/// failing streaks and today's counts every `every`, until `shutdown`.
pub fn spawn_refresher(
    state: SharedState,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let refreshed = match fleet::Fleet::load(&state).await {
                Ok(fleet) => crate::overdue::notify(&state, &fleet).await,
                Err(e) => Err(e),
            };
            if let Err(e) = refreshed {
                tracing::warn!(error = %e, "could not refresh compliance or send overdue notices");
            }
        }
    })
}
