//! `ApiError`: every way a request can fail, rendered as RFC 9457 `application/problem+json`.
//!
//! Client errors say precisely what was wrong. Server errors are logged in full and answered
//! with a generic body, so that no SQL, path or internal detail reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tandem_proto::policy::PolicyError;
use tandem_proto::v1::{problem, Problem};

use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The problem type of a 429 (a rate limit), kept here like `CONFLICT`.
pub const RATE_LIMITED: &str = "https://tandem.dev/problems/rate-limited";

/// The problem type of a 409. Only admin tools see it, so it lives here until
/// `tandem_proto::v1::problem` grows one.
pub const CONFLICT: &str = "https://tandem.dev/problems/conflict";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed syntax: not JSON, not UTF-8, a bad header or query string.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but unacceptable: wrong types, missing fields, absurd values.
    #[error("{0}")]
    Unprocessable(String),
    #[error("invalid policy: {0}")]
    InvalidPolicy(PolicyError),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// No usable credentials at all.
    #[error("{0}")]
    Unauthorized(String),
    /// The device token is unknown or revoked.
    #[error("unknown or revoked device token")]
    EnrollAgain,
    #[error("unknown, expired or used-up enrolment secret")]
    BadEnrollSecret,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists (a group of that name).
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many requests from one source; retry after the given time.
    #[error("too many requests; retry in {} s", retry_after_secs(*.0))]
    TooManyRequests(std::time::Duration),
    /// The database is busy; the client should retry shortly.
    #[error("the server is busy")]
    Overloaded,
    /// `/readyz`: the server cannot serve requests right now.
    #[error("not ready")]
    NotReady(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_overloaded() {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "database busy");
            ApiError::Overloaded
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::BadRequest(_) => (S::BAD_REQUEST, problem::INVALID_REQUEST, "Bad request"),
            ApiError::Unprocessable(_) => (
                S::UNPROCESSABLE_ENTITY,
                problem::INVALID_REQUEST,
                "Invalid request",
            ),
            ApiError::InvalidPolicy(_) => (
                S::UNPROCESSABLE_ENTITY,
                problem::INVALID_POLICY,
                "Invalid policy",
            ),
            ApiError::UnsupportedMediaType(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                problem::INVALID_REQUEST,
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                problem::INVALID_REQUEST,
                "Request body too large",
            ),
            ApiError::Unauthorized(_) => (
                S::UNAUTHORIZED,
                problem::UNAUTHORIZED,
                "Authentication required",
            ),
            ApiError::EnrollAgain => (S::UNAUTHORIZED, problem::ENROLL_AGAIN, "Enrol again"),
            ApiError::BadEnrollSecret => (
                S::UNAUTHORIZED,
                problem::BAD_ENROLL_SECRET,
                "Bad enrolment secret",
            ),
            ApiError::Forbidden(_) => (S::FORBIDDEN, problem::FORBIDDEN, "Forbidden"),
            ApiError::NotFound(_) => (S::NOT_FOUND, problem::NOT_FOUND, "Not found"),
            ApiError::Conflict(_) => (S::CONFLICT, CONFLICT, "Conflict"),
            ApiError::TooManyRequests(_) => {
                (S::TOO_MANY_REQUESTS, RATE_LIMITED, "Too many requests")
            }
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                problem::INVALID_REQUEST,
                "Method not allowed",
            ),
            ApiError::Overloaded => (S::SERVICE_UNAVAILABLE, problem::OVERLOADED, "Server busy"),
            ApiError::NotReady(_) => (S::SERVICE_UNAVAILABLE, problem::INTERNAL, "Not ready"),
            ApiError::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                problem::INTERNAL,
                "Internal server error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            ApiError::Internal(cause) => {
                // The only place a 5xx cause is recorded; the client gets the generic title.
                tracing::error!(error = %cause, source = ?cause.source(), "internal error");
                None
            }
            ApiError::NotReady(cause) => {
                tracing::warn!(error = %cause, source = ?cause.source(), "readiness check failed");
                None
            }
            other => Some(other.to_string()),
        };
        let pointer = match &self {
            ApiError::InvalidPolicy(e) if !e.pointer.is_empty() => Some(e.pointer.clone()),
            _ => None,
        };
        let body = Problem {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            pointer,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            ApiError::Unauthorized(_) | ApiError::EnrollAgain => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Overloaded | ApiError::NotReady(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::TooManyRequests(wait) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(wait)),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let ct = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, ct, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, ct, body) = body_of(ApiError::Internal("secret table name".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct, PROBLEM_JSON);
        assert!(!body.to_string().contains("secret"));
        assert_eq!(body["type"], problem::INTERNAL);
    }

    #[tokio::test]
    async fn invalid_policy_names_the_pointer() {
        let e = PolicyError {
            pointer: "/checks/firewal".into(),
            message: "unknown setting".into(),
        };
        let (status, _, body) = body_of(ApiError::InvalidPolicy(e)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["pointer"], "/checks/firewal");
        assert_eq!(
            body["detail"],
            "invalid policy: /checks/firewal: unknown setting"
        );
        let parsed: Problem = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.kind, problem::INVALID_POLICY);
    }
}
