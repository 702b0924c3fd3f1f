//! Identity sources polled on a schedule: Okta, Microsoft Entra (Graph), Google Workspace
//! and Duo. Each turns its vendor's users into `IdentityFact`s; `poll_once` stores them and
//! records the source's health, and `spawn_pollers` repeats that on each source's interval.
//!
//! Vendors' paging links are followed only while they stay on the configured origin: a
//! `next` link elsewhere would otherwise receive the source's credentials.
//!
//! Google: only a ready OAuth access token is supported (`access_token`), not the service
//! account JWT exchange; Google's directory has no password-change time.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::secrets::SecretsKey;
use crate::store::{IdentityFact, SourceHealth, Store};

/// A credential that never shows up in logs or `Debug` output. It serializes as itself,
/// for the store only: whatever shows a configuration goes through
/// `store::integrations::redacted` first.
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// One configured source, as written in the server's sources file (a JSON array).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SourceConfig {
    /// Names the source in health reports and in the facts it stores.
    pub name: String,
    #[serde(default = "default_interval")]
    pub interval_minutes: u32,
    #[serde(flatten)]
    pub settings: SourceSettings,
}

fn default_interval() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceSettings {
    Okta(OktaConfig),
    Entra(EntraConfig),
    Google(GoogleConfig),
    Duo(DuoConfig),
}

impl SourceSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSettings::Okta(_) => "okta",
            SourceSettings::Entra(_) => "entra",
            SourceSettings::Google(_) => "google",
            SourceSettings::Duo(_) => "duo",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OktaConfig {
    /// `https://acme.okta.com`.
    pub base_url: String,
    pub api_token: Secret,
    /// Okta's user search expression.
    #[serde(default = "okta_default_search")]
    pub search: String,
}

fn okta_default_search() -> String {
    "status eq \"ACTIVE\"".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EntraConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default = "graph_default_url")]
    pub graph_url: String,
    /// Default: `https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default)]
    pub token_url: Option<String>,
}

fn graph_default_url() -> String {
    "https://graph.microsoft.com".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GoogleConfig {
    pub access_token: Secret,
    #[serde(default = "google_default_url")]
    pub base_url: String,
    #[serde(default = "google_default_customer")]
    pub customer: String,
}

fn google_default_url() -> String {
    "https://admin.googleapis.com".into()
}

fn google_default_customer() -> String {
    "my_customer".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DuoConfig {
    /// `api-XXXXXXXX.duosecurity.com`.
    pub api_host: String,
    pub integration_key: String,
    pub secret_key: Secret,
    /// `https`, or `http` for a local test server.
    #[serde(default = "https")]
    pub scheme: String,
}

fn https() -> String {
    "https".into()
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("unexpected answer from {url}: {message}")]
    Shape { url: String, message: String },
    #[error("refusing to follow a paging link off {origin}: {link}")]
    OffOrigin { origin: String, link: String },
}

/// The shared HTTP client for sources: rustls, bounded time per request.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("tandem-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

async fn get_json(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<(Value, reqwest::header::HeaderMap), SourceError> {
    let response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|source| SourceError::Http {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(SourceError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let headers = response.headers().clone();
    let body = response.json().await.map_err(|source| SourceError::Http {
        url: url.to_owned(),
        source,
    })?;
    Ok((body, headers))
}

fn shape(url: &str, message: impl Into<String>) -> SourceError {
    SourceError::Shape {
        url: url.to_owned(),
        message: message.into(),
    }
}

/// Parses a typed page out of a JSON answer.
fn parse<T: serde::de::DeserializeOwned>(url: &str, body: Value) -> Result<T, SourceError> {
    serde_json::from_value(body).map_err(|e| shape(url, e.to_string()))
}

/// Accepts `link` only on `base`'s scheme, host and port.
fn same_origin(base: &str, link: &str) -> Result<String, SourceError> {
    let origin = |u: &str| -> Option<String> {
        let (scheme, rest) = u.split_once("://")?;
        let host = rest.split('/').next()?;
        Some(format!(
            "{}://{}",
            scheme.to_lowercase(),
            host.to_lowercase()
        ))
    };
    match (origin(base), origin(link)) {
        (Some(a), Some(b)) if a == b => Ok(link.to_owned()),
        _ => Err(SourceError::OffOrigin {
            origin: origin(base).unwrap_or_else(|| base.to_owned()),
            link: link.to_owned(),
        }),
    }
}

/// The `rel="next"` target of a `Link` header (Okta's paging).
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            if pieces.any(|p| p.trim().replace(' ', "") == "rel=\"next\"") {
                return Some(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned(),
                );
            }
        }
    }
    None
}

// --- Okta ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaUser {
    id: String,
    #[serde(default)]
    password_changed: Option<DateTime<Utc>>,
    profile: OktaProfile,
}

#[derive(Deserialize)]
struct OktaProfile {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct OktaFactor {
    status: String,
}

async fn okta(
    c: &OktaConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
    name: &str,
) -> Result<Vec<IdentityFact>, SourceError> {
    let base = c.base_url.trim_end_matches('/');
    let auth = format!("SSWS {}", c.api_token.0);
    let first = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/users"),
        [("limit", "200"), ("search", c.search.as_str())],
    )
    .map_err(|e| shape(base, e.to_string()))?;
    let mut next = Some(first.to_string());
    let mut facts = Vec::new();
    while let Some(url) = next.take() {
        let (body, headers) = get_json(
            http.get(&url).header(reqwest::header::AUTHORIZATION, &auth),
            &url,
        )
        .await?;
        let users: Vec<OktaUser> = parse(&url, body)?;
        for user in users {
            // A user has MFA when at least one factor is ACTIVE (not pending activation).
            let factors_url = format!("{base}/api/v1/users/{}/factors", user.id);
            let (body, _) = get_json(
                http.get(&factors_url)
                    .header(reqwest::header::AUTHORIZATION, &auth),
                &factors_url,
            )
            .await?;
            let factors: Vec<OktaFactor> = parse(&factors_url, body)?;
            facts.push(IdentityFact {
                email: user.profile.email,
                login: user.profile.login,
                mfa_enrolled: Some(factors.iter().any(|f| f.status == "ACTIVE")),
                password_changed_at: user.password_changed,
                source: name.to_owned(),
                as_of: now,
            });
        }
        next = next_link(&headers)
            .map(|l| same_origin(base, &l))
            .transpose()?;
    }
    Ok(facts)
}

// --- Microsoft Entra (Graph) ----------------------------------------------------------------

#[derive(Deserialize)]
struct GraphPage<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphRegistration {
    id: String,
    #[serde(default)]
    is_mfa_registered: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    id: String,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    last_password_change_date_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

async fn graph_pages<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &str,
    first: String,
    token: &str,
) -> Result<Vec<T>, SourceError> {
    let mut next = Some(first);
    let mut items = Vec::new();
    while let Some(url) = next.take() {
        let (body, _) = get_json(http.get(&url).bearer_auth(token), &url).await?;
        let page: GraphPage<T> = parse(&url, body)?;
        items.extend(page.value);
        next = page.next_link.map(|l| same_origin(base, &l)).transpose()?;
    }
    Ok(items)
}

async fn entra(
    c: &EntraConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
    name: &str,
) -> Result<Vec<IdentityFact>, SourceError> {
    let token_url = c.token_url.clone().unwrap_or_else(|| {
        format!(
            "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
            c.tenant_id
        )
    });
    // The client-credentials grant: an app registration with AuditLog.Read.All and
    // User.Read.All application permissions.
    let response = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.0.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .map_err(|source| SourceError::Http {
            url: token_url.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(SourceError::Status {
            url: token_url,
            status: response.status().as_u16(),
        });
    }
    let token: TokenAnswer = response.json().await.map_err(|source| SourceError::Http {
        url: token_url.clone(),
        source,
    })?;

    let base = c.graph_url.trim_end_matches('/');
    let registrations: Vec<GraphRegistration> = graph_pages(
        http,
        base,
        format!("{base}/v1.0/reports/authenticationMethods/userRegistrationDetails"),
        &token.access_token,
    )
    .await?;
    let users: Vec<GraphUser> = graph_pages(
        http,
        base,
        format!("{base}/v1.0/users?$select=id,userPrincipalName,mail,lastPasswordChangeDateTime"),
        &token.access_token,
    )
    .await?;
    let mfa: std::collections::HashMap<String, Option<bool>> = registrations
        .into_iter()
        .map(|r| (r.id, r.is_mfa_registered))
        .collect();
    Ok(users
        .into_iter()
        .map(|u| IdentityFact {
            mfa_enrolled: mfa.get(&u.id).copied().flatten(),
            email: u.mail.or_else(|| u.user_principal_name.clone()),
            login: u.user_principal_name,
            password_changed_at: u.last_password_change_date_time,
            source: name.to_owned(),
            as_of: now,
        })
        .collect())
}

// --- Google Workspace -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GooglePage {
    #[serde(default)]
    users: Vec<GoogleUser>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoogleUser {
    primary_email: String,
    #[serde(default)]
    is_enrolled_in2_sv: Option<bool>,
}

async fn google(
    c: &GoogleConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
    name: &str,
) -> Result<Vec<IdentityFact>, SourceError> {
    let base = c.base_url.trim_end_matches('/');
    let url = format!("{base}/admin/directory/v1/users");
    let mut page_token: Option<String> = None;
    let mut facts = Vec::new();
    loop {
        let mut query = vec![
            ("customer", c.customer.clone()),
            ("maxResults", "500".into()),
        ];
        if let Some(t) = page_token.take() {
            query.push(("pageToken", t));
        }
        let request = http.get(&url).bearer_auth(&c.access_token.0).query(&query);
        let (body, _) = get_json(request, &url).await?;
        let page: GooglePage = parse(&url, body)?;
        facts.extend(page.users.into_iter().map(|u| IdentityFact {
            email: Some(u.primary_email),
            login: None,
            mfa_enrolled: u.is_enrolled_in2_sv,
            password_changed_at: None,
            source: name.to_owned(),
            as_of: now,
        }));
        match page.next_page_token.filter(|t| !t.is_empty()) {
            Some(t) => page_token = Some(t),
            None => return Ok(facts),
        }
    }
}

// --- Duo ------------------------------------------------------------------------------------

/// RFC 3986 percent-encoding of everything but unreserved characters, as Duo's canonical
/// request wants it.
fn duo_quote(s: &str) -> String {
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

/// The sorted, encoded parameter string Duo signs (and the query string sent).
pub fn duo_canonical_params(params: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (duo_quote(k), duo_quote(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Duo's v2 request signature (HMAC-SHA1 over date, method, host, path and parameters),
/// as the `Authorization` header's value.
pub fn duo_sign(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &[(&str, &str)],
    integration_key: &str,
    secret_key: &str,
) -> String {
    let canonical = [
        date.to_owned(),
        method.to_uppercase(),
        host.to_lowercase(),
        path.to_owned(),
        duo_canonical_params(params),
    ]
    .join("\n");
    let signature = match Hmac::<sha1::Sha1>::new_from_slice(secret_key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(canonical.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => String::new(),
    };
    format!(
        "Basic {}",
        STANDARD.encode(format!("{integration_key}:{signature}"))
    )
}

#[derive(Deserialize)]
struct DuoAnswer {
    stat: String,
    #[serde(default)]
    response: Vec<DuoUser>,
    #[serde(default)]
    metadata: DuoMetadata,
}

#[derive(Deserialize, Default)]
struct DuoMetadata {
    #[serde(default)]
    next_offset: Option<Value>,
}

#[derive(Deserialize)]
struct DuoUser {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    is_enrolled: Option<bool>,
    #[serde(default)]
    status: Option<String>,
}

async fn duo(
    c: &DuoConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
    name: &str,
) -> Result<Vec<IdentityFact>, SourceError> {
    let path = "/admin/v1/users";
    let mut offset = 0u64;
    let mut facts = Vec::new();
    loop {
        let offset_text = offset.to_string();
        let params = [("limit", "300"), ("offset", offset_text.as_str())];
        let date = now.format("%a, %d %b %Y %H:%M:%S -0000").to_string();
        let auth = duo_sign(
            &date,
            "GET",
            &c.api_host,
            path,
            &params,
            &c.integration_key,
            &c.secret_key.0,
        );
        let url = format!(
            "{}://{}{path}?{}",
            c.scheme,
            c.api_host,
            duo_canonical_params(&params)
        );
        let request = http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::DATE, date);
        let (body, _) = get_json(request, &url).await?;
        let answer: DuoAnswer = parse(&url, body)?;
        if answer.stat != "OK" {
            return Err(shape(&url, format!("stat is {}", answer.stat)));
        }
        let n = answer.response.len();
        facts.extend(answer.response.into_iter().map(|u| IdentityFact {
            // A user in bypass signs in without a second factor: not enrolled in practice.
            mfa_enrolled: match u.status.as_deref() {
                Some("bypass") => Some(false),
                _ => u.is_enrolled,
            },
            email: u.email.filter(|e| !e.is_empty()),
            login: Some(u.username),
            password_changed_at: None,
            source: name.to_owned(),
            as_of: now,
        }));
        // Duo sends next_offset as a number (or, in older APIs, a string) while more follow.
        let next = match answer.metadata.next_offset {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        match next {
            Some(next) if next > offset && n > 0 => offset = next,
            _ => return Ok(facts),
        }
    }
}

/// Fetches every user a source knows.
pub async fn fetch(
    config: &SourceConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> Result<Vec<IdentityFact>, SourceError> {
    let name = config.name.as_str();
    match &config.settings {
        SourceSettings::Okta(c) => okta(c, http, now, name).await,
        SourceSettings::Entra(c) => entra(c, http, now, name).await,
        SourceSettings::Google(c) => google(c, http, now, name).await,
        SourceSettings::Duo(c) => duo(c, http, now, name).await,
    }
}

/// Polls one source once: stores what it returned and records its health. A failed poll
/// keeps the facts stored before, so an outage at the vendor does not erase what was known.
pub async fn poll_once(
    config: &SourceConfig,
    store: &dyn Store,
    clock: &dyn Clock,
    http: &reqwest::Client,
) -> SourceHealth {
    let now = clock.now();
    let mut health = SourceHealth {
        name: config.name.clone(),
        kind: config.settings.kind().to_owned(),
        last_run_at: Some(now),
        last_success_at: None,
        last_error: None,
        users: None,
    };
    let outcome = match fetch(config, http, now).await {
        Ok(facts) => store
            .upsert_identities(&facts, None)
            .await
            .map_err(|e| format!("could not store its users: {e}")),
        Err(e) => Err(error_chain(&e)),
    };
    match outcome {
        Ok(n) => {
            health.last_success_at = Some(now);
            health.users = Some(i64::try_from(n).unwrap_or(i64::MAX));
            tracing::info!(source = %config.name, users = n, "identity source polled");
        }
        Err(message) => {
            tracing::warn!(source = %config.name, error = %message, "identity source failed");
            health.last_error = Some(message);
        }
    }
    if let Err(e) = store.record_source_health(&health).await {
        tracing::warn!(source = %config.name, error = %e, "could not record source health");
    }
    health
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Where a source's configuration comes from: the server's sources file (read-only in the
/// console) or the console itself (stored in the database, editable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Console,
}

/// Every source the server polls: the file's, then the console's. A stored configuration
/// that no longer parses is skipped with a warning rather than stopping the others; one
/// whose credentials do not open is left out too (see [`sources_and_faults`]).
pub async fn all_sources(
    file: &[SourceConfig],
    store: &dyn Store,
    key: &SecretsKey,
) -> Result<Vec<(SourceConfig, Origin)>, crate::store::StoreError> {
    Ok(sources_and_faults(file, store, key).await?.0)
}

/// A console source whose stored credentials do not open with this server's secrets key.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub name: String,
    pub kind: String,
    pub interval_minutes: u32,
    /// Why, e.g. "cannot decrypt credentials: secrets key does not match".
    pub error: String,
}

/// [`all_sources`], and the console's sources whose credentials do not open: those are
/// shown and recorded with their error, never polled and never rewritten.
pub async fn sources_and_faults(
    file: &[SourceConfig],
    store: &dyn Store,
    key: &SecretsKey,
) -> Result<(Vec<(SourceConfig, Origin)>, Vec<Unreadable>), crate::store::StoreError> {
    let mut sources: Vec<(SourceConfig, Origin)> =
        file.iter().cloned().map(|c| (c, Origin::File)).collect();
    let mut faults = Vec::new();
    for stored in store.list_source_configs().await? {
        let stored = match key.open_source(&stored) {
            Ok(opened) => opened,
            Err(e) => {
                faults.push(Unreadable {
                    interval_minutes: stored
                        .config
                        .get("interval_minutes")
                        .and_then(Value::as_u64)
                        .and_then(|m| u32::try_from(m).ok())
                        .unwrap_or(60),
                    name: stored.name,
                    kind: stored.kind,
                    error: e.to_string(),
                });
                continue;
            }
        };
        match serde_json::from_value::<SourceConfig>(stored.config) {
            // A file source of the same name wins; the console refuses to create one.
            Ok(c) if !file.iter().any(|f| f.name == c.name) => sources.push((c, Origin::Console)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(source = %stored.name, error = %e, "stored identity source does not parse")
            }
        }
    }
    Ok((sources, faults))
}

/// Records a source whose credentials do not open as failed, without asking its vendor.
pub async fn record_unreadable(
    source: &Unreadable,
    store: &dyn Store,
    clock: &dyn Clock,
) -> SourceHealth {
    tracing::error!(source = %source.name, error = %source.error, "identity source not polled");
    let health = SourceHealth {
        name: source.name.clone(),
        kind: source.kind.clone(),
        last_run_at: Some(clock.now()),
        last_success_at: None,
        last_error: Some(source.error.clone()),
        users: None,
    };
    if let Err(e) = store.record_source_health(&health).await {
        tracing::warn!(source = %source.name, error = %e, "could not record source health");
    }
    health
}

/// The shortest and longest polling intervals the console accepts, in minutes.
pub const MIN_INTERVAL_MINUTES: u32 = 5;
pub const MAX_INTERVAL_MINUTES: u32 = 7 * 24 * 60;
/// The longest source name.
pub const MAX_NAME: usize = 64;

/// Checks a source name: it keys the facts the source stores and appears in URLs.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("the name may hold only letters, digits, `-`, `_` and `.`".into());
    }
    if name == super::IMPORT_SOURCE {
        return Err(format!(
            "`{}` is reserved for bulk imports",
            super::IMPORT_SOURCE
        ));
    }
    Ok(())
}

/// Whether `host` is this machine: `localhost` or a loopback address.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks an address credentials will be sent to: an absolute `https://` URL with a host,
/// without user information; plain `http://` only to this machine (a test or a local
/// proxy), since it would carry the credentials in the clear.
pub fn check_url(label: &str, url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("{label} is not a valid URL ({e})"))?;
    if parsed.host().is_none() {
        return Err(format!("{label} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{label} must not hold a user name or password"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "{label} uses http:// to another machine: the credentials would travel in the \
             clear; use https://"
        )),
        other => Err(format!("{label} must be an https:// URL, not {other}:")),
    }
}

fn check_text(label: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{label} is empty"));
    }
    if value.len() > max {
        return Err(format!("{label} is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{label} holds control characters"));
    }
    Ok(())
}

/// Checks a source configured in the console before it is stored.
pub fn validate(config: &SourceConfig) -> Result<(), String> {
    check_name(&config.name)?;
    if !(MIN_INTERVAL_MINUTES..=MAX_INTERVAL_MINUTES).contains(&config.interval_minutes) {
        return Err(format!(
            "the interval must lie between {MIN_INTERVAL_MINUTES} minutes and \
             {MAX_INTERVAL_MINUTES} minutes (a week)"
        ));
    }
    const TEXT: usize = 1024;
    const SECRET: usize = 8 * 1024;
    match &config.settings {
        SourceSettings::Okta(c) => {
            check_url("the Okta URL", &c.base_url)?;
            check_text("the API token", &c.api_token.0, SECRET)?;
            check_text("the search expression", &c.search, TEXT)?;
        }
        SourceSettings::Entra(c) => {
            check_text("the tenant id", &c.tenant_id, TEXT)?;
            if !c
                .tenant_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
            {
                return Err("the tenant id may hold only letters, digits, `-` and `.`".into());
            }
            check_text("the client id", &c.client_id, TEXT)?;
            check_text("the client secret", &c.client_secret.0, SECRET)?;
            check_url("the Graph URL", &c.graph_url)?;
            if let Some(t) = &c.token_url {
                check_url("the token URL", t)?;
            }
        }
        SourceSettings::Google(c) => {
            check_text("the access token", &c.access_token.0, SECRET)?;
            check_url("the directory URL", &c.base_url)?;
            check_text("the customer", &c.customer, TEXT)?;
        }
        SourceSettings::Duo(c) => {
            check_text("the API host", &c.api_host, TEXT)?;
            check_text("the integration key", &c.integration_key, TEXT)?;
            check_text("the secret key", &c.secret_key.0, SECRET)?;
            if c.api_host.contains(['/', '?', '#', '@', ' ']) {
                return Err(
                    "the API host is a host name only, like api-XXXX.duosecurity.com".into(),
                );
            }
            check_url("the API host", &format!("{}://{}/", c.scheme, c.api_host))?;
        }
    }
    Ok(())
}

/// How often the poller looks for due sources; a source is polled on its own interval.
pub const POLL_TICK: Duration = Duration::from_secs(30);

/// Polls every source whose interval has passed, looking every `tick` until `shutdown`
/// fires. The list is read again on each tick, so sources added, changed or deleted in the
/// console take effect without a restart. A poll is claimed in the store first, so with
/// several replicas on one database each due poll runs on one of them.
pub fn spawn_pollers(
    file_sources: &[SourceConfig],
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tick: Duration,
    shutdown: CancellationToken,
    key: SecretsKey,
) -> tokio::task::JoinHandle<()> {
    let file_sources = file_sources.to_vec();
    let http = http_client();
    // Sources this process is polling now: a slow vendor must not be polled twice at once.
    let busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let (sources, faults) = match sources_and_faults(&file_sources, &*store, &key).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the identity sources");
                    continue;
                }
            };
            // A source this replica cannot read shows the reason in its health, on the
            // source's own schedule, claimed like any poll.
            for fault in faults {
                let now = clock.now();
                let next =
                    now + chrono::Duration::minutes(i64::from(fault.interval_minutes.max(1)));
                if let Ok(true) = store
                    .claim_source_poll(&fault.name, &fault.kind, now, next)
                    .await
                {
                    record_unreadable(&fault, &*store, &*clock).await;
                }
            }
            for (config, _) in sources {
                if busy
                    .lock()
                    .map(|b| b.contains(&config.name))
                    .unwrap_or(true)
                {
                    continue;
                }
                let now = clock.now();
                let minutes = i64::from(config.interval_minutes.max(1));
                let next = now + chrono::Duration::minutes(minutes);
                match store
                    .claim_source_poll(&config.name, config.settings.kind(), now, next)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(source = %config.name, error = %e, "could not claim a poll");
                        continue;
                    }
                }
                if let Ok(mut b) = busy.lock() {
                    b.insert(config.name.clone());
                }
                let (store, clock, http, shutdown, busy) = (
                    Arc::clone(&store),
                    Arc::clone(&clock),
                    http.clone(),
                    shutdown.clone(),
                    Arc::clone(&busy),
                );
                tokio::spawn(async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        _ = poll_once(&config, &*store, &*clock, &http) => {}
                    }
                    if let Ok(mut b) = busy.lock() {
                        b.remove(&config.name);
                    }
                });
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duo_signatures_match_duos_published_test_vector() {
        let params = [
            (
                "\u{469a}\u{287b}\u{35d0}\u{8ef3}\u{6727}\u{502a}\u{0810}\u{d091}\u{c8}\u{c170}",
                "\u{0f45}\u{1a76}\u{341a}\u{654c}\u{c23f}\u{9b09}\u{abe2}\u{8343}\u{1b27}\u{60d0}",
            ),
            (
                "\u{7449}\u{7e4b}\u{ccfb}\u{59ff}\u{fe5f}\u{83b7}\u{adcc}\u{900c}\u{cfd1}\u{7813}",
                "\u{8db7}\u{5022}\u{92d3}\u{42ef}\u{207d}\u{8730}\u{acfe}\u{5617}\u{0946}\u{4e30}",
            ),
            (
                "\u{7470}\u{9314}\u{901c}\u{9eae}\u{40d8}\u{4201}\u{82d8}\u{8c70}\u{1d31}\u{a042}",
                "\u{17d9}\u{0ba8}\u{9358}\u{aadf}\u{a42a}\u{48be}\u{fb96}\u{6fe9}\u{b7ff}\u{32f3}",
            ),
            (
                "\u{c2c5}\u{2c1d}\u{2620}\u{3617}\u{96b3}F\u{8605}\u{20e8}\u{ac21}\u{5934}",
                "\u{fba9}\u{41aa}\u{bd83}\u{840b}\u{2615}\u{3e6e}\u{652d}\u{a8b5}\u{d56b}U",
            ),
        ];
        let auth = duo_sign(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            &params,
            "test_ikey",
            "gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT",
        );
        assert_eq!(
            auth,
            "Basic dGVzdF9pa2V5OmYwMTgxMWNiYmY5NTYxNjIzYWI0NWI4OTMwOTYyNjdmZDQ2YTUxNzg="
        );
    }

    #[test]
    fn paging_links_must_stay_on_the_origin() {
        let base = "https://acme.okta.com";
        assert!(same_origin(base, "https://acme.okta.com/api/v1/users?after=x").is_ok());
        assert!(same_origin(base, "https://evil.example/api/v1/users").is_err());
        assert!(same_origin(base, "http://acme.okta.com/api").is_err());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(
            reqwest::header::LINK,
            "<https://a/x?limit=2>; rel=\"self\", <https://a/x?after=b>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("https://a/x?after=b"));
    }

    #[test]
    fn secrets_do_not_print() {
        let config: SourceConfig = serde_json::from_value(serde_json::json!({
            "name": "okta", "kind": "okta", "base_url": "https://a", "api_token": "hunter2"
        }))
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.interval_minutes, 60);
    }
}
