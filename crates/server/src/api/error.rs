//! `ApiError`: every way a request can fail, rendered as RFC 9457 `application/problem+json`.
//!
//! Client errors say precisely what was wrong. Server errors are logged in full and answered
//! with a generic body, so that no SQL, path or internal detail reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tandem_proto::policy::PolicyError;
use tandem_proto::v1::{problem, Problem};

use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

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
    #[error("method not allowed")]
    MethodNotAllowed,
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

/// The problem document plus RFC 9457 extension members.
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(flatten)]
    problem: Problem,
    /// For an invalid policy: the JSON pointer of the offending setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
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
            ApiError::InvalidPolicy(e) if !e.pointer.is_empty() => Some(e.pointer.as_str()),
            _ => None,
        };
        let body = ProblemBody {
            problem: Problem {
                kind: kind.to_owned(),
                title: title.to_owned(),
                status: status.as_u16(),
                detail,
            },
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
