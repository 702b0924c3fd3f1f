//! Request extractors that fail with `ApiError` (problem+json) instead of axum's plain-text
//! rejections: JSON bodies, query strings, device tokens and API tokens.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::ApiError;
use super::SharedState;
use crate::keys::hash_secret;
use crate::store::SecretHash;
use crate::store::{AuthedApiToken, AuthedDevice, Role};

/// A JSON body, parsed with problem+json errors: syntax errors are 400, well-formed JSON of
/// the wrong shape is 422, a body over the route's limit is 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Like [`ApiJson`], also keeping the body's text exactly as received.
#[derive(Debug)]
pub struct RawJson<T> {
    pub value: T,
    pub raw: String,
}

impl<S, T> FromRequest<S> for RawJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        let raw = String::from_utf8(bytes.into())
            .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
        let value = serde_json::from_str(&raw).map_err(|e| match e.classify() {
            Category::Data => ApiError::Unprocessable(format!("invalid request body: {e}")),
            Category::Io | Category::Syntax | Category::Eof => {
                ApiError::BadRequest(format!("malformed JSON: {e}"))
            }
        })?;
        Ok(RawJson { value, raw })
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        RawJson::from_request(req, state)
            .await
            .map(|json| ApiJson(json.value))
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type.map(|ct| ct.split(';').next().unwrap_or_default().trim());
    match essence {
        Some(ct) if ct.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(ct) if ct.to_ascii_lowercase().ends_with("+json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        )),
    }
}

/// A query string, rejected with a 400 problem when it does not parse.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::Unauthorized("expected an `Authorization: Bearer` header".into());
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// The client's address, when the server was started with connection info (`App::bind`
/// does; a router served some other way may not be). Behind a trusted reverse proxy it is
/// the address the proxies recorded in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<IpAddr>);

impl FromRequestParts<SharedState> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(PeerAddr(peer.map(|peer| {
            client_addr(peer, &parts.headers, &state.trusted_proxies)
        })))
    }
}

/// Room in the report writer's queue, checked before anything else about a report: when the
/// database is behind, a report is turned away with 503 before its token is looked up and
/// its body read and parsed, so that overload spends the server's CPU on the reports it
/// can store rather than on the ones it must refuse.
#[derive(Debug, Clone, Copy)]
pub struct ReportRoom;

impl FromRequestParts<SharedState> for ReportRoom {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        if state.writers.has_room() {
            Ok(ReportRoom)
        } else {
            Err(ApiError::Overloaded)
        }
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` from the right (the entry the nearest proxy appended), the first address
/// that is not a trusted proxy. Entries left of it are the client's own say and are ignored,
/// so a client cannot pick the address its rate limit is keyed by. A malformed entry stops
/// the walk at the last address known good.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in entries.into_iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Takes one request from a token's bucket (keyed by the token's hash, so the limiter holds
/// no secret), or answers 429 with the wait.
fn spend_token_budget(state: &SharedState, hash: &SecretHash) -> Result<(), ApiError> {
    match &state.token_limiter {
        Some(limiter) => super::spend(limiter, hash, 100_000),
        None => Ok(()),
    }
}

/// The enrolled device a request's bearer token belongs to. An unknown or revoked token is
/// answered with the problem type that tells the agent to enrol again.
#[derive(Debug)]
pub struct DeviceAuth(pub AuthedDevice);

impl FromRequestParts<SharedState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let hash = hash_secret(bearer(&parts.headers)?);
        spend_token_budget(state, &hash)?;
        let device = state.store.device_by_token(&hash).await?;
        device.map(DeviceAuth).ok_or(ApiError::EnrollAgain)
    }
}

/// The API token a request to the admin API carries.
#[derive(Debug)]
pub struct AdminAuth(pub AuthedApiToken);

impl AdminAuth {
    /// Fails with 403 unless the token has `role` or a stronger one.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        match (self.0.role, role) {
            (Role::Admin, _) | (Role::Viewer, Role::Viewer) => Ok(()),
            (Role::Viewer, Role::Admin) => Err(ApiError::Forbidden(
                "this needs an API token with the admin role".into(),
            )),
        }
    }

    /// How the audit trail names this token.
    pub fn actor(&self) -> String {
        format!("token:{}", self.0.id)
    }
}

impl FromRequestParts<SharedState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let hash = hash_secret(bearer(&parts.headers)?);
        spend_token_budget(state, &hash)?;
        let found = state.store.api_token_by_hash(&hash).await?;
        found
            .map(AdminAuth)
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_direct_client_is_its_own_address_whatever_it_claims() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_addr(ip("203.0.113.7"), &xff("1.2.3.4"), &trusted),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_entry_is_the_client() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the proxies appended the real one and their own.
        let headers = xff("6.6.6.6, 198.51.100.9, 10.0.0.3");
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers, &trusted),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn a_garbled_header_leaves_the_last_good_address() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_addr(ip("10.0.0.2"), &xff("<script>, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_addr(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }
}
