//! The extractors every state-changing console request goes through: session, role, origin
//! and CSRF token are checked before a handler sees the form.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderMap};
use axum::Form;

use super::auth::Session;
use super::ConsoleError;
use crate::api::SharedState;

/// A submitted form's fields in order, as sent.
#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// The last value of `name` (a checkbox follows its hidden "off" twin, so the last wins).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed, or `None` when missing or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Refuses a request whose `Origin` names another site. Browsers send `Origin` with every
/// POST; a request without one (curl, old browsers) still needs the CSRF token.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(ConsoleError::Csrf)?;
    let origin = origin.to_str().map_err(|_| ConsoleError::Csrf)?;
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or(ConsoleError::Csrf)?;
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ConsoleError::Csrf)
    }
}

async fn read_form(
    req: Request,
    state: &SharedState,
    admin_only: bool,
) -> Result<(Session, FormData), ConsoleError> {
    let (mut parts, body) = req.into_parts();
    let session = Session::from_request_parts(&mut parts, state).await?;
    if admin_only && !session.is_admin() {
        return Err(ConsoleError::Forbidden(
            "your account has the viewer role: it can look, not change".into(),
        ));
    }
    same_origin(&parts.headers)?;
    let req = Request::from_parts(parts, body);
    let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, state)
        .await
        .map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
    let form = FormData(fields);
    let token = form.get("csrf").unwrap_or_default();
    if !session.csrf_matches(token) {
        return Err(ConsoleError::Csrf);
    }
    Ok((session, form))
}

/// A form posted by an account with the admin role, with a valid CSRF token.
#[derive(Debug)]
pub struct AdminForm {
    pub session: Session,
    pub form: FormData,
}

impl FromRequest<SharedState> for AdminForm {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (session, form) = read_form(req, state, true).await?;
        Ok(AdminForm { session, form })
    }
}

/// A form posted by any signed-in account, with a valid CSRF token (signing out).
#[derive(Debug)]
pub struct SessionForm {
    pub session: Session,
    pub form: FormData,
}

impl FromRequest<SharedState> for SessionForm {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, Self::Rejection> {
        let (session, form) = read_form(req, state, false).await?;
        Ok(SessionForm { session, form })
    }
}
