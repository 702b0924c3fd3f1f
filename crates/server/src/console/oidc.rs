//! OpenID Connect sign-in to the console: discovery, the authorization-code flow with PKCE,
//! ID-token verification, and the mapping of a provider account to a console account.
//!
//! Decisions, in one place:
//! - The flow's secrets live in no table: `/console/oidc/start` sets a short-lived cookie
//!   (HttpOnly, SameSite=Lax so that it comes back with the provider's cross-site redirect)
//!   holding 256 random bits and the time it was made. `state`, `nonce` and the PKCE
//!   verifier are HMACs of that value under fixed labels, so the callback recomputes them.
//!   A page that cannot read the cookie cannot forge a matching `state` (login CSRF), a
//!   stolen code cannot be redeemed without the verifier, and a changed timestamp changes
//!   `state`, so the 10-minute expiry needs no server key.
//! - ID tokens are checked with `ring` (already in the build through rustls): RS256 and
//!   ES256 only, the key picked from the provider's JWKS by `kid`, whose key type must fit
//!   the algorithm. `none` and HMAC algorithms are refused outright, so a public key can
//!   never be used as an HMAC secret. An unknown `kid` refetches the JWKS once (rotation).
//! - A provider account signs in as an existing console account only: the one linked to
//!   its (issuer, subject), else, on its first sign-in, the one whose username is its
//!   verified email, which is then linked. Roles stay local; nothing is created here.
//!   Providers that vouch for no email (Microsoft Entra) are linked by an admin on the
//!   admins page, by `sub` or by Entra's object id (`oid`, stored as `oid:<id>` so that it
//!   only ever matches that claim).
//! - The session is the password sign-in's: same cookie, CSRF token and expiry. The callback
//!   answers with a page that moves on to `/console` by a meta refresh rather than a
//!   redirect: the callback is reached from the provider's site, and browsers do not send a
//!   SameSite=Strict cookie on a redirect chain that began cross-site.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::auth;
use crate::api::extract::PeerAddr;
use crate::api::SharedState;
use crate::config::{OidcConfig, DEFAULT_OIDC_SCOPES};
use crate::store::console::{NewConsoleSession, OidcSignIn, OidcSignInOutcome};

/// The flow cookie, scoped to the two OpenID Connect routes.
pub const FLOW_COOKIE: &str = "tandem_console_oidc";
const FLOW_PATH: &str = "/console/oidc";
/// How long a sign-in at the provider may take.
const FLOW_SECONDS: i64 = 600;
pub const START_PATH: &str = "/console/oidc/start";
pub const CALLBACK_PATH: &str = "/console/oidc/callback";
/// Clock difference tolerated between the provider and this server.
pub const CLOCK_SKEW_SECONDS: i64 = 60;
/// Discovery documents, key sets and token answers are small; more is not a provider.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long discovery metadata (and the key set fetched with it) is used before it is
/// fetched again: providers move endpoints and retire keys, and a process may run for months.
pub const DISCOVERY_MAX_AGE_HOURS: i64 = 24;
/// After a refresh failed, how long the metadata in hand is used before the next try, so
/// that a provider that is down does not slow every sign-in by a timeout.
pub const DISCOVERY_RETRY_MINUTES: i64 = 5;

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{0}")]
    Config(String),
    #[error("could not reach the identity provider at {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the identity provider answered {url} with {status}: {body}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("the identity provider's {what} is not acceptable: {why}")]
    Document { what: &'static str, why: String },
    #[error("the ID token is not acceptable: {0}")]
    IdToken(#[from] IdTokenError),
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("it is malformed ({0})")]
    Malformed(&'static str),
    #[error("its algorithm `{0}` is not accepted")]
    Algorithm(String),
    #[error("no signing key of the provider has kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("its signature does not verify")]
    Signature,
    #[error("it was issued by another issuer")]
    Issuer,
    #[error("it was issued for another client")]
    Audience,
    #[error("it has expired")]
    Expired,
    #[error("it was issued in the future")]
    IssuedInFuture,
    #[error("its nonce does not match this sign-in")]
    Nonce,
}

// ---------------------------------------------------------------------------------------
// ID tokens

/// A JSON Web Key Set as the provider publishes it. Keys are kept as published and decoded
/// when a token names them, so one odd key does not spoil the set.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Jwks {
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

/// The algorithms accepted: asymmetric only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// Whether `key` may verify this algorithm's signatures.
    fn fits(self, key: &Jwk) -> bool {
        let kty_fits = match self {
            Alg::Rs256 => key.kty == "RSA",
            Alg::Es256 => key.kty == "EC" && key.crv.as_deref() == Some("P-256"),
        };
        kty_fits
            && key.use_.as_deref().is_none_or(|u| u == "sig")
            && key.alg.as_deref().is_none_or(|a| a == self.name())
    }
}

impl Jwks {
    /// The key that verifies `alg` signatures with `kid`: the one with that kid, or without
    /// a kid the only key that fits.
    fn key_for(&self, alg: Alg, kid: Option<&str>) -> Result<&Jwk, IdTokenError> {
        let mut fitting = self.keys.iter().filter(|k| alg.fits(k));
        let found = match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        };
        found.ok_or_else(|| IdTokenError::UnknownKey(kid.map(str::to_owned)))
    }
}

/// What the callback checks an ID token against.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: DateTime<Utc>,
}

/// What a verified ID token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// How the provider authenticated them (`pwd`, `mfa`, `hwk`, …), when it says.
    pub amr: Vec<String>,
    /// Microsoft Entra's `oid`: the user's object id in the tenant, as the Entra admin
    /// center shows it. (Entra's `sub` differs per application and is shown nowhere.)
    pub object_id: Option<String>,
}

/// How a link made by hand to an Entra object id is stored: apart from subjects, so that
/// only a link an admin made for the `oid` claim ever matches that claim (another
/// provider may let people set a claim of that name).
pub fn object_id_subject(oid: &str) -> String {
    format!("oid:{oid}")
}

fn b64url(part: &str) -> Result<Vec<u8>, IdTokenError> {
    URL_SAFE_NO_PAD
        .decode(part.as_bytes())
        .map_err(|_| IdTokenError::Malformed("not base64url"))
}

fn jwk_bytes(value: &Option<String>) -> Result<Vec<u8>, IdTokenError> {
    let value = value
        .as_deref()
        .ok_or(IdTokenError::Malformed("incomplete key"))?;
    URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|_| IdTokenError::Malformed("key is not base64url"))
}

fn verify_signature(
    alg: Alg,
    key: &Jwk,
    message: &[u8],
    signature: &[u8],
) -> Result<(), IdTokenError> {
    use ring::signature as sig;
    let verified = match alg {
        Alg::Rs256 => {
            let n = jwk_bytes(&key.n)?;
            let e = jwk_bytes(&key.e)?;
            // ring wants both without leading zero bytes; JWKs should not have any.
            let strip = |b: &[u8]| b.iter().position(|x| *x != 0).map_or(0, |i| i);
            let components = sig::RsaPublicKeyComponents {
                n: &n[strip(&n)..],
                e: &e[strip(&e)..],
            };
            // Keys under 2048 bits are refused by this algorithm choice.
            components.verify(&sig::RSA_PKCS1_2048_8192_SHA256, message, signature)
        }
        Alg::Es256 => {
            let x = jwk_bytes(&key.x)?;
            let y = jwk_bytes(&key.y)?;
            if x.len() != 32 || y.len() != 32 {
                return Err(IdTokenError::Malformed(
                    "P-256 coordinates are not 32 bytes",
                ));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
        }
    };
    verified.map_err(|_| IdTokenError::Signature)
}

/// A numeric date claim (seconds since the epoch).
fn numeric_date(claims: &Value, name: &'static str) -> Result<i64, IdTokenError> {
    match claims.get(name) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or(IdTokenError::Malformed(name)),
        _ => Err(IdTokenError::Malformed(name)),
    }
}

/// Verifies a compact-serialised ID token (OpenID Connect Core §3.1.3.7) and returns what
/// it says about the person.
pub fn verify_id_token(
    token: &str,
    jwks: &Jwks,
    expected: &Expected<'_>,
) -> Result<IdClaims, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(IdTokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("not three parts"));
    };
    let header: Value = serde_json::from_slice(&b64url(header_b64)?)
        .map_err(|_| IdTokenError::Malformed("header is not JSON"))?;
    if header.get("crit").is_some() {
        // Extensions this code does not know must be understood to accept the token.
        return Err(IdTokenError::Malformed("critical header extensions"));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Malformed("no alg"))?;
    let alg = Alg::parse(alg_name).ok_or_else(|| IdTokenError::Algorithm(alg_name.to_owned()))?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(IdTokenError::Malformed("kid is not a string")),
    };
    let key = jwks.key_for(alg, kid)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    verify_signature(
        alg,
        key,
        &token.as_bytes()[..signed_len],
        &b64url(signature_b64)?,
    )?;

    let claims: Value = serde_json::from_slice(&b64url(payload_b64)?)
        .map_err(|_| IdTokenError::Malformed("claims are not JSON"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Audience),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    // With other audiences beside this client, the token must say it was issued to this
    // client (`azp`); when it names an authorised party, that must be this client.
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 && azp.is_none()) || azp.is_some_and(|a| a != expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    let now = expected.now.timestamp();
    if now > numeric_date(&claims, "exp")?.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(IdTokenError::Expired);
    }
    if numeric_date(&claims, "iat")? > now.saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(IdTokenError::IssuedInFuture);
    }
    let nonce = claims.get("nonce").and_then(Value::as_str);
    if !nonce.is_some_and(|n| constant_time_eq(n, expected.nonce)) {
        return Err(IdTokenError::Nonce);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(IdTokenError::Malformed("sub"))?
        .to_owned();
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.len() <= 320)
        .map(str::to_owned);
    // Some providers send the boolean as a string.
    let email_verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true");
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(16)
                .map(|s| s.chars().take(32).collect())
                .collect()
        })
        .unwrap_or_default();
    let object_id = claims
        .get("oid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .map(str::to_owned);
    Ok(IdClaims {
        subject,
        email,
        email_verified,
        amr,
        object_id,
    })
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

// ---------------------------------------------------------------------------------------
// The flow cookie

/// One sign-in attempt, carried by the flow cookie.
#[derive(Debug, Clone)]
pub struct Flow {
    cookie: String,
}

impl Flow {
    pub fn new(now: DateTime<Utc>) -> Flow {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Flow {
            cookie: format!("{}.{}", URL_SAFE_NO_PAD.encode(bytes), now.timestamp()),
        }
    }

    /// The attempt a flow cookie carries, unless it is malformed or older than allowed.
    pub fn from_cookie(value: &str, now: DateTime<Utc>) -> Option<Flow> {
        let (random, made) = value.split_once('.')?;
        if random.len() != 43 || URL_SAFE_NO_PAD.decode(random.as_bytes()).is_err() {
            return None;
        }
        let age = now.timestamp().checked_sub(made.parse::<i64>().ok()?)?;
        (-CLOCK_SKEW_SECONDS..=FLOW_SECONDS)
            .contains(&age)
            .then(|| Flow {
                cookie: value.to_owned(),
            })
    }

    pub fn cookie_value(&self) -> &str {
        &self.cookie
    }

    /// HMAC-SHA256 of `label` keyed by the cookie. HMAC takes keys of any length, so this is
    /// never `None` in practice; `None` would only make every `state` fail to match.
    fn mac(&self, label: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.cookie.as_bytes()).ok()?;
        mac.update(label);
        Some(mac)
    }

    fn derive(&self, label: &[u8]) -> String {
        self.mac(label)
            .map(|mac| URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    pub fn state(&self) -> String {
        self.derive(b"tandem-oidc-state")
    }

    /// Compares the callback's `state` in constant time.
    pub fn state_matches(&self, submitted: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(submitted.as_bytes())
            .ok()
            .zip(self.mac(b"tandem-oidc-state"))
            .is_some_and(|(s, mac)| mac.verify_slice(&s).is_ok())
    }

    pub fn nonce(&self) -> String {
        self.derive(b"tandem-oidc-nonce")
    }

    /// The PKCE verifier: 43 characters of base64url, as RFC 7636 §4.1 asks.
    pub fn verifier(&self) -> String {
        self.derive(b"tandem-oidc-pkce")
    }

    /// The S256 challenge of the verifier (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier().as_bytes()))
    }
}

/// `Set-Cookie` for the flow cookie: Lax, so that it comes back on the provider's redirect.
fn flow_cookie(value: &str, max_age_seconds: i64) -> HeaderValue {
    let text = format!(
        "{FLOW_COOKIE}={value}; Path={FLOW_PATH}; Max-Age={max_age_seconds}; Secure; HttpOnly; SameSite=Lax"
    );
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

// ---------------------------------------------------------------------------------------
// The provider

/// The parts of the discovery document this client uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Provider {
    discovery: Arc<Discovery>,
    jwks: Arc<Jwks>,
}

/// The provider as last fetched, and when to fetch it again.
#[derive(Debug, Clone)]
struct Cached {
    provider: Provider,
    fetched_at: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
}

/// The console's OpenID Connect client.
pub struct Oidc {
    config: OidcConfig,
    redirect_uri: String,
    http: reqwest::Client,
    /// Discovery and keys, fetched on first use (the server starts while the provider is
    /// down) and again once a day (the old ones are kept while the provider cannot be
    /// reached); the keys are fetched again too when a token names an unknown one.
    provider: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("config", &self.config)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is https, or http to a loopback address (tests, a provider on this host).
fn secure_url(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

fn parse_secure(url: &str, what: &'static str) -> Result<reqwest::Url, OidcError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| OidcError::Document {
        what,
        why: format!("`{url}` is not a URL: {e}"),
    })?;
    if !secure_url(&parsed) {
        return Err(OidcError::Document {
            what,
            why: format!("`{url}` is not https (http is allowed for loopback only)"),
        });
    }
    Ok(parsed)
}

/// Reads at most `MAX_DOCUMENT_BYTES` of a successful answer.
async fn read_limited(url: &str, mut resp: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|source| OidcError::Fetch {
        url: url.to_owned(),
        source,
    })? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(OidcError::Document {
                what: "answer",
                why: format!("{url} answered more than {MAX_DOCUMENT_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(OidcError::Status {
            url: url.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        });
    }
    Ok(body)
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before they are joined for Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Oidc {
    /// A client for `config`; the redirect URI is `{public_url}/console/oidc/callback`.
    pub fn new(config: OidcConfig, public_url: &str) -> Result<Oidc, OidcError> {
        let issuer =
            parse_secure(&config.issuer, "issuer").map_err(|e| OidcError::Config(e.to_string()))?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(OidcError::Config(
                "the OpenID Connect issuer must not have a query or fragment".into(),
            ));
        }
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return Err(OidcError::Config(
                "OpenID Connect needs a client id and a client secret".into(),
            ));
        }
        let public = reqwest::Url::parse(public_url).map_err(|e| {
            OidcError::Config(format!("the public URL `{public_url}` is not a URL: {e}"))
        })?;
        if !matches!(public.scheme(), "https" | "http") {
            return Err(OidcError::Config(format!(
                "the public URL `{public_url}` is not http(s)"
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(Oidc {
            redirect_uri: format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/')),
            config,
            http,
            provider: tokio::sync::Mutex::new(None),
        })
    }

    /// The words after "Sign in with" on the sign-in page.
    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The configured issuer, exactly as ID tokens must name it.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, OidcError> {
        let resp = self
            .http
            .get(url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| OidcError::Fetch {
                url: url.to_owned(),
                source,
            })?;
        read_limited(url, resp).await
    }

    async fn fetch_jwks(&self, discovery: &Discovery) -> Result<Jwks, OidcError> {
        let body = self.get(&discovery.jwks_uri).await?;
        serde_json::from_slice(&body).map_err(|e| OidcError::Document {
            what: "key set",
            why: e.to_string(),
        })
    }

    async fn discover(&self) -> Result<Provider, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let body = self.get(&url).await?;
        let discovery: Discovery =
            serde_json::from_slice(&body).map_err(|e| OidcError::Document {
                what: "discovery document",
                why: e.to_string(),
            })?;
        // OpenID Connect Discovery §4.3: the issuer must be exactly the one configured, or a
        // document served elsewhere could name itself issuer of our tokens.
        if discovery.issuer != self.config.issuer {
            return Err(OidcError::Document {
                what: "discovery document",
                why: format!(
                    "it names issuer `{}`, not the configured `{}`",
                    discovery.issuer, self.config.issuer
                ),
            });
        }
        for (url, what) in [
            (&discovery.authorization_endpoint, "authorization endpoint"),
            (&discovery.token_endpoint, "token endpoint"),
            (&discovery.jwks_uri, "key set URL"),
        ] {
            parse_secure(url, what)?;
        }
        let jwks = self.fetch_jwks(&discovery).await?;
        Ok(Provider {
            discovery: Arc::new(discovery),
            jwks: Arc::new(jwks),
        })
    }

    /// The provider's metadata as of `now`: the cached one while younger than a day, else
    /// fetched again; when that fails, the cached one is kept (and the failure logged) and
    /// the next try waits a few minutes.
    async fn provider(&self, now: DateTime<Utc>) -> Result<Provider, OidcError> {
        let mut cached = self.provider.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(c.provider.clone());
        }
        match (self.discover().await, cached.as_mut()) {
            (Ok(provider), _) => {
                *cached = Some(Cached {
                    provider: provider.clone(),
                    fetched_at: now,
                    refresh_at: now + chrono::Duration::hours(DISCOVERY_MAX_AGE_HOURS),
                });
                Ok(provider)
            }
            (Err(e), Some(old)) => {
                tracing::warn!(error = %e, fetched_at = %old.fetched_at, "could not refresh the identity provider's discovery document; keeping the one fetched earlier");
                old.refresh_at = now + chrono::Duration::minutes(DISCOVERY_RETRY_MINUTES);
                Ok(old.provider.clone())
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Fetches the key set again after a token named a key it lacks (rotation).
    async fn refresh_keys(&self, now: DateTime<Utc>) -> Result<Provider, OidcError> {
        let mut cached = self.provider.lock().await;
        match cached.as_mut() {
            Some(c) => {
                c.provider.jwks = Arc::new(self.fetch_jwks(&c.provider.discovery).await?);
                Ok(c.provider.clone())
            }
            None => {
                let provider = self.discover().await?;
                *cached = Some(Cached {
                    provider: provider.clone(),
                    fetched_at: now,
                    refresh_at: now + chrono::Duration::hours(DISCOVERY_MAX_AGE_HOURS),
                });
                Ok(provider)
            }
        }
    }

    /// The provider's authorization URL for `flow`.
    pub async fn authorize_url(
        &self,
        flow: &Flow,
        now: DateTime<Utc>,
    ) -> Result<String, OidcError> {
        let provider = self.provider(now).await?;
        let mut url = parse_secure(
            &provider.discovery.authorization_endpoint,
            "authorization endpoint",
        )?;
        let mut scopes: Vec<&str> = self.config.scopes.iter().map(String::as_str).collect();
        if scopes.is_empty() {
            scopes = DEFAULT_OIDC_SCOPES.to_vec();
        }
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &flow.state())
            .append_pair("nonce", &flow.nonce())
            .append_pair("code_challenge", &flow.challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Redeems `code` at the token endpoint and verifies the ID token it answers.
    pub async fn redeem(
        &self,
        code: &str,
        flow: &Flow,
        now: DateTime<Utc>,
    ) -> Result<IdClaims, OidcError> {
        let provider = self.provider(now).await?;
        let d = &provider.discovery;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", flow.verifier()),
        ];
        // client_secret_basic is the default (OpenID Connect Discovery §3); _post only when
        // the provider does not offer basic.
        let methods = d.token_endpoint_auth_methods_supported.as_deref();
        let basic = methods.is_none_or(|m| m.iter().any(|x| x == "client_secret_basic"))
            || !methods.is_some_and(|m| m.iter().any(|x| x == "client_secret_post"));
        let mut request = self
            .http
            .post(&d.token_endpoint)
            .header(header::ACCEPT, "application/json");
        if basic {
            let pair = format!(
                "{}:{}",
                form_encode(&self.config.client_id),
                form_encode(&self.config.client_secret)
            );
            request = request.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(pair)),
            );
        } else {
            form.push(("client_id", self.config.client_id.clone()));
            form.push(("client_secret", self.config.client_secret.clone()));
        }
        let resp = request
            .form(&form)
            .send()
            .await
            .map_err(|source| OidcError::Fetch {
                url: d.token_endpoint.clone(),
                source,
            })?;
        let body = read_limited(&d.token_endpoint, resp).await?;
        let answer: Value = serde_json::from_slice(&body).map_err(|e| OidcError::Document {
            what: "token answer",
            why: e.to_string(),
        })?;
        let id_token = answer
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Document {
                what: "token answer",
                why: "it has no id_token".into(),
            })?;
        let nonce = flow.nonce();
        let expected = Expected {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce: &nonce,
            now,
        };
        match verify_id_token(id_token, &provider.jwks, &expected) {
            Err(IdTokenError::UnknownKey(_)) => {
                let provider = self.refresh_keys(now).await?;
                Ok(verify_id_token(id_token, &provider.jwks, &expected)?)
            }
            other => Ok(other?),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pages

#[derive(Template)]
#[template(path = "console/login_oidc.html")]
struct OidcPageTpl {
    title: String,
    message: String,
    /// Where the page moves on to (a meta refresh), after a sign-in.
    continue_to: Option<String>,
}

fn page(status: StatusCode, title: &str, message: &str, continue_to: Option<&str>) -> Response {
    let t = OidcPageTpl {
        title: title.to_owned(),
        message: message.to_owned(),
        continue_to: continue_to.map(str::to_owned),
    };
    let html = t
        .render()
        .unwrap_or_else(|_| "The console could not render this page.".to_owned());
    let mut resp = (status, Html(html)).into_response();
    // Whatever the outcome, this attempt is over.
    resp.headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", 0));
    resp
}

fn refused(status: StatusCode, message: &str) -> Response {
    page(status, "Sign-in refused", message, None)
}

/// `GET /console/oidc/start`: off to the provider, with a fresh flow cookie.
pub async fn start(State(state): State<SharedState>) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured on this server.",
        );
    };
    let now = state.clock.now();
    let flow = Flow::new(now);
    match oidc.authorize_url(&flow, now).await {
        Ok(url) => match HeaderValue::try_from(url) {
            Ok(location) => {
                let mut resp = StatusCode::SEE_OTHER.into_response();
                resp.headers_mut().insert(header::LOCATION, location);
                resp.headers_mut().append(
                    header::SET_COOKIE,
                    flow_cookie(flow.cookie_value(), FLOW_SECONDS),
                );
                resp
            }
            Err(_) => unavailable(&"the authorization URL is not a header value"),
        },
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "OpenID Connect sign-in failed");
    refused(
        StatusCode::BAD_GATEWAY,
        "The identity provider could not be used; the details are in the server's log.",
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /console/oidc/callback`: the provider sends the browser back here with a code.
pub async fn callback(
    State(state): State<SharedState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = state.oidc.as_ref() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured on this server.",
        );
    };
    // Anyone can make a flow cookie and its `state`; the limit keeps them from making this
    // server call the provider's token endpoint at will.
    if !auth::sign_in_allowed(&state, peer) {
        return refused(StatusCode::TOO_MANY_REQUESTS, auth::TOO_MANY_SIGN_INS);
    }
    let now = state.clock.now();
    let Some(flow) =
        auth::cookie(&headers, FLOW_COOKIE).and_then(|value| Flow::from_cookie(value, now))
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in expired or was started in another browser. Start again from the sign-in page.",
        );
    };
    if !query
        .state
        .as_deref()
        .is_some_and(|s| flow.state_matches(s))
    {
        tracing::warn!("OpenID Connect callback with a state that is not this browser's");
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in answer does not belong to this browser's sign-in (state mismatch). Start again from the sign-in page.",
        );
    }
    if let Some(error) = query.error.as_deref() {
        // The provider's words are shown as text (escaped), shortened.
        let detail: String = query
            .error_description
            .as_deref()
            .unwrap_or(error)
            .chars()
            .take(200)
            .collect();
        return refused(
            StatusCode::BAD_REQUEST,
            &format!("The identity provider did not sign you in: {detail}"),
        );
    }
    let Some(code) = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "The identity provider sent no code.",
        );
    };
    let claims = match oidc.redeem(code, &flow, now).await {
        Ok(claims) => claims,
        Err(OidcError::IdToken(e)) => {
            tracing::warn!(error = %e, "OpenID Connect ID token refused");
            return refused(
                StatusCode::BAD_REQUEST,
                &format!("The identity provider's answer was refused: the ID token {e}."),
            );
        }
        Err(e) => return unavailable(&e),
    };
    match sign_in(&state, oidc, &claims, now).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "OpenID Connect sign-in failed");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the server; the details are in its log.",
            )
        }
    }
}

/// Maps verified claims to a console account and opens its session.
async fn sign_in(
    state: &SharedState,
    oidc: &Oidc,
    claims: &IdClaims,
    now: DateTime<Utc>,
) -> Result<Response, crate::store::StoreError> {
    let issuer = &oidc.config.issuer;
    let mut linked = state
        .store
        .console_admin_by_oidc(issuer, &claims.subject)
        .await?;
    if let (None, Some(oid)) = (&linked, claims.object_id.as_deref()) {
        linked = state
            .store
            .console_admin_by_oidc(issuer, &object_id_subject(oid))
            .await?;
    }
    let (account, link) = match linked {
        Some(account) => (account, false),
        None => {
            let who = claims.email.as_deref().unwrap_or(&claims.subject);
            let Some(email) = claims.email.as_deref().filter(|_| claims.email_verified) else {
                tracing::warn!(subject = %claims.subject, "OpenID Connect sign-in without a verified email and no linked account");
                return Ok(refused(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "No Tandem admin account is linked to {who}, and the identity provider did not vouch for an email address to link one by. Ask an admin to link your subject {} to your account.", claims.subject
                    ),
                ));
            };
            let mut found = state.store.console_admins_by_email(email).await?;
            if found.len() != 1 {
                tracing::warn!(%email, matches = found.len(), "OpenID Connect sign-in matches no single account");
                return Ok(refused(
                    StatusCode::FORBIDDEN,
                    &format!("No Tandem admin account for {email} — ask an admin to create one."),
                ));
            }
            (found.remove(0), true)
        }
    };
    if account.disabled || account.locked_until.is_some_and(|u| u > now) {
        tracing::warn!(username = %account.username, "OpenID Connect sign-in to a disabled or locked account");
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "This Tandem admin account is disabled or locked.",
        ));
    }
    let token = auth::new_session_token();
    let outcome = state
        .store
        .console_oidc_sign_in(&OidcSignIn {
            admin_id: account.id,
            username: account.username.clone(),
            issuer: issuer.clone(),
            subject: claims.subject.clone(),
            link,
            amr: claims.amr.clone(),
            session: NewConsoleSession {
                token_hash: crate::keys::hash_secret(&token),
                admin_id: account.id,
                created_at: now,
                expires_at: now + chrono::Duration::hours(auth::SESSION_HOURS),
            },
        })
        .await?;
    match outcome {
        OidcSignInOutcome::SignedIn => {}
        OidcSignInOutcome::Refused => {
            return Ok(refused(
                StatusCode::FORBIDDEN,
                "This Tandem admin account is disabled or locked.",
            ))
        }
        OidcSignInOutcome::LinkedElsewhere => {
            tracing::warn!(username = %account.username, subject = %claims.subject, "OpenID Connect account matches an account linked to another subject");
            return Ok(refused(
                StatusCode::FORBIDDEN,
                &format!(
                    "The Tandem admin account {} is linked to another account at the identity provider.",
                    account.username
                ),
            ));
        }
    }
    tracing::info!(username = %account.username, linked = link, "console sign-in with OpenID Connect");
    let mut resp = page(
        StatusCode::OK,
        "Signed in",
        &format!("Signed in as {}.", account.username),
        Some("/console"),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(auth::SESSION_COOKIE, &token, auth::SESSION_HOURS * 3600),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, KeyPair as _};
    use serde_json::json;

    const ISSUER: &str = "https://idp.example.com";
    const CLIENT: &str = "tandem-console";
    const NONCE: &str = "n-0S6_WzA2Mj";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    fn rsa_key(pem: &str, kid: &str) -> (sig::RsaKeyPair, Jwk) {
        let pair = sig::RsaKeyPair::from_pkcs8(&pem_der(pem)).unwrap();
        let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)});
        (pair, serde_json::from_value(jwk).unwrap())
    }

    fn key_a() -> (sig::RsaKeyPair, Jwk) {
        rsa_key(include_str!("../../test-data/oidc/rsa-a.pem"), "a")
    }

    fn key_b() -> (sig::RsaKeyPair, Jwk) {
        rsa_key(include_str!("../../test-data/oidc/rsa-b.pem"), "b")
    }

    fn encode(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    fn rs256(pair: &sig::RsaKeyPair, kid: &str, claims: &Value) -> String {
        let input = encode(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims);
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &sig::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "00u1abc", "nonce": NONCE,
            "iat": now().timestamp() - 5, "exp": now().timestamp() + 300,
            "email": "alice@example.com", "email_verified": true, "amr": ["pwd", "mfa"],
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: NONCE,
            now: now(),
        }
    }

    fn jwks(keys: &[&Jwk]) -> Jwks {
        Jwks {
            keys: keys.iter().map(|k| (*k).clone()).collect(),
        }
    }

    #[test]
    fn a_good_token_verifies_and_says_who() {
        let (pair, jwk) = key_a();
        let token = rs256(&pair, "a", &claims());
        let got = verify_id_token(&token, &jwks(&[&jwk]), &expected()).unwrap();
        assert_eq!(
            got,
            IdClaims {
                subject: "00u1abc".into(),
                email: Some("alice@example.com".into()),
                email_verified: true,
                amr: vec!["pwd".into(), "mfa".into()],
                object_id: None,
            }
        );
        let entra = with(
            claims(),
            "oid",
            json!("7d3c0a3e-5b1f-4d6e-9a51-0f4e2b9c8d71"),
        );
        let got = verify_id_token(&rs256(&pair, "a", &entra), &jwks(&[&jwk]), &expected());
        assert_eq!(
            got.unwrap().object_id.as_deref(),
            Some("7d3c0a3e-5b1f-4d6e-9a51-0f4e2b9c8d71")
        );
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let (_, jwk_a) = key_a();
        let (pair_b, _) = key_b();
        // Signed with B but naming A's kid.
        let token = rs256(&pair_b, "a", &claims());
        assert_eq!(
            verify_id_token(&token, &jwks(&[&jwk_a]), &expected()),
            Err(IdTokenError::Signature)
        );
        // A changed payload under A's genuine signature fails too.
        let (pair_a, _) = key_a();
        let good = rs256(&pair_a, "a", &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let forged_claims = with(claims(), "sub", json!("admin"));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
            parts[2]
        );
        assert_eq!(
            verify_id_token(&forged, &jwks(&[&jwk_a]), &expected()),
            Err(IdTokenError::Signature)
        );
    }

    #[test]
    fn issuer_audience_and_nonce_must_be_ours() {
        let (pair, jwk) = key_a();
        let set = jwks(&[&jwk]);
        let check = |c: Value| verify_id_token(&rs256(&pair, "a", &c), &set, &expected());
        assert_eq!(
            check(with(claims(), "iss", json!("https://evil.example.com"))),
            Err(IdTokenError::Issuer)
        );
        // A trailing slash is another issuer: the comparison is exact.
        assert_eq!(
            check(with(claims(), "iss", json!(format!("{ISSUER}/")))),
            Err(IdTokenError::Issuer)
        );
        assert_eq!(
            check(with(claims(), "aud", json!("another-client"))),
            Err(IdTokenError::Audience)
        );
        // Several audiences: only with this client as the authorised party.
        let many = with(claims(), "aud", json!([CLIENT, "another-client"]));
        assert_eq!(check(many.clone()), Err(IdTokenError::Audience));
        assert!(check(with(many.clone(), "azp", json!(CLIENT))).is_ok());
        assert_eq!(
            check(with(many, "azp", json!("another-client"))),
            Err(IdTokenError::Audience)
        );
        assert!(check(with(claims(), "aud", json!([CLIENT]))).is_ok());
        assert_eq!(
            check(with(claims(), "nonce", json!("another-nonce"))),
            Err(IdTokenError::Nonce)
        );
        let mut no_nonce = claims();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(no_nonce), Err(IdTokenError::Nonce));
    }

    #[test]
    fn expiry_and_issue_time_allow_a_small_skew_only() {
        let (pair, jwk) = key_a();
        let set = jwks(&[&jwk]);
        let t = now().timestamp();
        let check = |c: Value| verify_id_token(&rs256(&pair, "a", &c), &set, &expected());
        assert_eq!(
            check(with(claims(), "exp", json!(t - CLOCK_SKEW_SECONDS - 1))),
            Err(IdTokenError::Expired)
        );
        assert!(check(with(claims(), "exp", json!(t - 30))).is_ok());
        assert_eq!(
            check(with(claims(), "iat", json!(t + CLOCK_SKEW_SECONDS + 1))),
            Err(IdTokenError::IssuedInFuture)
        );
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(no_exp), Err(IdTokenError::Malformed("exp")));
    }

    #[test]
    fn alg_none_and_hmac_with_the_public_key_are_refused() {
        let (_, jwk) = key_a();
        let set = jwks(&[&jwk]);
        let none = format!("{}.", encode(&json!({"alg": "none"}), &claims()));
        assert_eq!(
            verify_id_token(&none, &set, &expected()),
            Err(IdTokenError::Algorithm("none".into()))
        );
        // The classic confusion: HS256 keyed with the published public key.
        for secret in [
            jwk.n.clone().unwrap().into_bytes(),
            serde_json::to_vec(&json!({"kty": "RSA", "n": jwk.n, "e": jwk.e})).unwrap(),
        ] {
            let input = encode(&json!({"alg": "HS256", "kid": "a"}), &claims());
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            mac.update(input.as_bytes());
            let token = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert_eq!(
                verify_id_token(&token, &set, &expected()),
                Err(IdTokenError::Algorithm("HS256".into()))
            );
        }
        // An RSA key never verifies an ES256 token, whatever the header says.
        let es = format!(
            "{}.AAAA",
            encode(&json!({"alg": "ES256", "kid": "a"}), &claims())
        );
        assert_eq!(
            verify_id_token(&es, &set, &expected()),
            Err(IdTokenError::UnknownKey(Some("a".into())))
        );
    }

    #[test]
    fn an_unknown_kid_verifies_once_the_rotated_set_is_known() {
        let (_, jwk_a) = key_a();
        let (pair_b, jwk_b) = key_b();
        let token = rs256(&pair_b, "b", &claims());
        assert_eq!(
            verify_id_token(&token, &jwks(&[&jwk_a]), &expected()),
            Err(IdTokenError::UnknownKey(Some("b".into())))
        );
        let rotated = jwks(&[&jwk_a, &jwk_b]);
        assert!(verify_id_token(&token, &rotated, &expected()).is_ok());
        // Without a kid, a single fitting key is used; with two it is ambiguous.
        let input = encode(&json!({"alg": "RS256"}), &claims());
        let mut signature = vec![0; pair_b.public().modulus_len()];
        pair_b
            .sign(
                &sig::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        let no_kid = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        assert!(verify_id_token(&no_kid, &jwks(&[&jwk_b]), &expected()).is_ok());
        assert_eq!(
            verify_id_token(&no_kid, &rotated, &expected()),
            Err(IdTokenError::UnknownKey(None))
        );
    }

    #[test]
    fn es256_tokens_verify_with_p256_keys() {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk: Jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-256", "kid": "ec",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}))
        .unwrap();
        let input = encode(&json!({"alg": "ES256", "kid": "ec"}), &claims());
        let signature = pair.sign(&rng, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
        assert!(verify_id_token(&token, &jwks(&[&jwk]), &expected()).is_ok());
        let other = format!(
            "{}.{}",
            encode(
                &json!({"alg": "ES256", "kid": "ec"}),
                &with(claims(), "sub", json!("x"))
            ),
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        assert_eq!(
            verify_id_token(&other, &jwks(&[&jwk]), &expected()),
            Err(IdTokenError::Signature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (_, jwk) = key_a();
        let set = jwks(&[&jwk]);
        for token in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &"a".repeat(MAX_ID_TOKEN_BYTES + 1),
        ] {
            assert!(
                matches!(
                    verify_id_token(token, &set, &expected()),
                    Err(IdTokenError::Malformed(_))
                ),
                "{token:.20}"
            );
        }
        let crit = format!(
            "{}.AAAA",
            encode(
                &json!({"alg": "RS256", "kid": "a", "crit": ["exp"]}),
                &claims()
            )
        );
        assert_eq!(
            verify_id_token(&crit, &set, &expected()),
            Err(IdTokenError::Malformed("critical header extensions"))
        );
    }

    #[test]
    fn the_flow_cookie_carries_state_nonce_and_verifier() {
        let flow = Flow::new(now());
        let back =
            Flow::from_cookie(flow.cookie_value(), now() + chrono::Duration::minutes(9)).unwrap();
        assert!(back.state_matches(&flow.state()));
        assert_eq!(back.nonce(), flow.nonce());
        assert_eq!(back.verifier(), flow.verifier());
        assert_eq!(flow.verifier().len(), 43);
        assert_eq!(
            flow.challenge(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier().as_bytes()))
        );
        assert_ne!(flow.state(), flow.nonce());
        // Another browser's attempt, a stale one, and a moved timestamp do not match.
        assert!(!Flow::new(now()).state_matches(&flow.state()));
        assert!(!flow.state_matches(""));
        assert!(
            Flow::from_cookie(flow.cookie_value(), now() + chrono::Duration::minutes(11)).is_none()
        );
        let (random, _) = flow.cookie_value().split_once('.').unwrap();
        let moved =
            Flow::from_cookie(&format!("{random}.{}", now().timestamp() + 1), now()).unwrap();
        assert!(!moved.state_matches(&flow.state()));
        assert!(Flow::from_cookie("short.1800000000", now()).is_none());
    }

    /// A provider on loopback whose discovery document names endpoint version `version`,
    /// or answers 503 while `down`.
    struct FakeProvider {
        issuer: String,
        fetches: Arc<std::sync::atomic::AtomicU32>,
        version: Arc<std::sync::atomic::AtomicU32>,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    async fn fake_provider() -> FakeProvider {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicU32::new(0));
        let version = Arc::new(AtomicU32::new(1));
        let down = Arc::new(AtomicBool::new(false));
        let (i, f, v, d) = (
            issuer.clone(),
            Arc::clone(&fetches),
            Arc::clone(&version),
            Arc::clone(&down),
        );
        let discovery = move || {
            let (i, f, v, d) = (i.clone(), Arc::clone(&f), Arc::clone(&v), Arc::clone(&d));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
                }
                let v = v.load(Ordering::SeqCst);
                axum::Json(json!({
                    "issuer": i,
                    "authorization_endpoint": format!("{i}/authorize/v{v}"),
                    "token_endpoint": format!("{i}/token"),
                    "jwks_uri": format!("{i}/jwks"),
                }))
                .into_response()
            }
        };
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(discovery),
            )
            .route(
                "/jwks",
                axum::routing::get(|| async { axum::Json(json!({"keys": []})) }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeProvider {
            issuer,
            fetches,
            version,
            down,
        }
    }

    fn loopback_config(issuer: &str) -> OidcConfig {
        OidcConfig {
            issuer: issuer.into(),
            client_id: CLIENT.into(),
            client_secret: "s3cret".into(),
            display_name: "Fake".into(),
            scopes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn discovery_is_refreshed_daily_and_kept_while_the_refresh_fails() {
        use std::sync::atomic::Ordering;
        let idp = fake_provider().await;
        let oidc = Oidc::new(loopback_config(&idp.issuer), "https://tandem.example.com").unwrap();
        let endpoint = |t: DateTime<Utc>| {
            let oidc = &oidc;
            async move {
                let url = oidc.authorize_url(&Flow::new(t), t).await.unwrap();
                url.split('?')
                    .next()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            }
        };
        let fetches = || idp.fetches.load(Ordering::SeqCst);
        let t0 = now();
        let hours = chrono::Duration::hours;
        let minutes = chrono::Duration::minutes;

        assert_eq!(endpoint(t0).await, "v1");
        assert_eq!(fetches(), 1);
        // The provider moves its endpoint; the cached document is used for a day.
        idp.version.store(2, Ordering::SeqCst);
        assert_eq!(endpoint(t0 + hours(23) + minutes(59)).await, "v1");
        assert_eq!(fetches(), 1);
        let t1 = t0 + hours(DISCOVERY_MAX_AGE_HOURS);
        assert_eq!(endpoint(t1).await, "v2");
        assert_eq!(fetches(), 2);

        // A day later the provider is down: the document in hand is kept...
        idp.down.store(true, Ordering::SeqCst);
        idp.version.store(3, Ordering::SeqCst);
        let t2 = t1 + hours(DISCOVERY_MAX_AGE_HOURS);
        assert_eq!(endpoint(t2).await, "v2");
        assert_eq!(fetches(), 3);
        // ...without asking again at every sign-in...
        assert_eq!(
            endpoint(t2 + minutes(DISCOVERY_RETRY_MINUTES - 1)).await,
            "v2"
        );
        assert_eq!(fetches(), 3);
        assert_eq!(endpoint(t2 + minutes(DISCOVERY_RETRY_MINUTES)).await, "v2");
        assert_eq!(fetches(), 4);
        // ...and the next try after the provider is back takes the new one.
        idp.down.store(false, Ordering::SeqCst);
        let t3 = t2 + minutes(2 * DISCOVERY_RETRY_MINUTES);
        assert_eq!(endpoint(t3).await, "v3");
        assert_eq!(fetches(), 5);
        assert_eq!(endpoint(t3 + hours(1)).await, "v3");
        assert_eq!(fetches(), 5);

        // With nothing in hand, a provider that is down is an error, not a stale answer.
        idp.down.store(true, Ordering::SeqCst);
        let fresh = Oidc::new(loopback_config(&idp.issuer), "https://tandem.example.com").unwrap();
        assert!(matches!(
            fresh.authorize_url(&Flow::new(t0), t0).await,
            Err(OidcError::Status { .. })
        ));
    }

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        let config = |issuer: &str| OidcConfig {
            issuer: issuer.into(),
            client_id: CLIENT.into(),
            client_secret: "s3cret".into(),
            display_name: "Okta".into(),
            scopes: Vec::new(),
        };
        let public = "https://tandem.example.com/";
        assert!(Oidc::new(config("http://idp.example.com"), public).is_err());
        assert!(Oidc::new(config("ftp://idp.example.com"), public).is_err());
        assert!(Oidc::new(config("http://127.0.0.1:8081"), public).is_ok());
        assert!(Oidc::new(config("http://localhost:8081"), public).is_ok());
        let oidc = Oidc::new(config("https://idp.example.com"), public).unwrap();
        assert_eq!(
            oidc.redirect_uri(),
            "https://tandem.example.com/console/oidc/callback"
        );
        // The secret never reaches logs through Debug.
        assert!(!format!("{oidc:?}").contains("s3cret"));
    }
}
