//! Phishing reports: a user forwards a suspicious message (the `.eml` file, as multipart
//! form data) or a URL with a note (JSON); IT reads them in the admin inbox.
//!
//! Everything in a report is untrusted: the message is stored byte for byte and only ever
//! handed back as an attachment, never rendered; its subject is extracted for the list.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest as _, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tandem_proto::v1::{PhishingReportStatus, TriageStatus};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AdminAuth, ApiJson, ApiQuery, DeviceAuth};
use super::SharedState;
use crate::store::{NewPhishingReport, PhishingReportInfo, Role};

/// The largest message accepted; the route's body limit leaves room for the form around it.
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
pub const MAX_NOTE: usize = 4096;
pub const MAX_URL: usize = 2048;

/// The answer a user sees: the id to quote when talking to IT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhishingAck {
    pub tracking_id: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlReport {
    url: String,
    #[serde(default)]
    note: Option<String>,
}

/// `PH-` and eight characters of Crockford's base32: short enough to read out on the
/// phone, random enough (40 bits) not to be guessed.
fn tracking_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::thread_rng();
    let tail: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("PH-{tail}")
}

/// The message's `Subject` header, unfolded and cut to 256 bytes, if it has one.
pub fn subject_of(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&message[..message.len().min(64 * 1024)]);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut subject: Option<String> = None;
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        match (&mut subject, line.starts_with([' ', '\t'])) {
            // A folded continuation of the subject.
            (Some(s), true) => {
                s.push(' ');
                s.push_str(line.trim());
            }
            (Some(_), false) => break,
            (None, _) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("subject") {
                        subject = Some(value.trim().to_owned());
                    }
                }
            }
        }
    }
    subject.map(|mut s| {
        if s.len() > 256 {
            let mut end = 256;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    })
}

fn check_url(url: &str) -> Result<(), ApiError> {
    let lower = url.trim().to_ascii_lowercase();
    if url.len() > MAX_URL {
        return Err(ApiError::Unprocessable(format!(
            "url is longer than {MAX_URL} bytes"
        )));
    }
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ApiError::Unprocessable(
            "url must start with http:// or https://".into(),
        ));
    }
    Ok(())
}

fn check_note(note: Option<&str>) -> Result<(), ApiError> {
    if note.is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(ApiError::Unprocessable(format!(
            "note is longer than {MAX_NOTE} bytes"
        )));
    }
    Ok(())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Reads the form: a `message` file part (the `.eml`) and optional `note` and `url` parts.
async fn read_form(
    mut form: Multipart,
) -> Result<(Option<Vec<u8>>, Option<String>, Option<String>), ApiError> {
    let (mut message, mut note, mut url) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "message" if message.is_none() => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > MAX_MESSAGE {
                    return Err(ApiError::PayloadTooLarge);
                }
                message = Some(bytes.to_vec());
            }
            "note" if note.is_none() => note = Some(field.text().await.map_err(multipart_error)?),
            "url" if url.is_none() => url = Some(field.text().await.map_err(multipart_error)?),
            other => {
                return Err(ApiError::Unprocessable(format!(
                    "unexpected form field `{}` (expected message, note and url once each)",
                    other.escape_debug()
                )))
            }
        }
    }
    Ok((message, note, url))
}

/// `POST /api/v1/agent/phishing-reports`: multipart with the `.eml` as `message` (and an
/// optional `note`), or JSON `{"url", "note"?}`. 201 with the tracking id.
#[utoipa::path(post, path = "/api/v1/agent/phishing-reports", tag = "agent", security(("device_token" = [])),
    request_body(description = "multipart/form-data with `message` (.eml) and `note`, or JSON {url, note}", content = Object),
    responses((status = 201, body = PhishingAck), (status = 413, description = "Message too large")))]
pub async fn report(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
    request: Request,
) -> Result<(StatusCode, Json<PhishingAck>), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (message, note, url) = if content_type.starts_with("multipart/form-data") {
        let form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        read_form(form).await?
    } else {
        let ApiJson(body) = ApiJson::<UrlReport>::from_request(request, &state).await?;
        (None, body.note, Some(body.url))
    };
    let note = note.filter(|n| !n.trim().is_empty());
    check_note(note.as_deref())?;
    if let Some(url) = &url {
        check_url(url)?;
    }
    match &message {
        Some(m) if m.is_empty() => {
            return Err(ApiError::Unprocessable("the message is empty".into()))
        }
        None if url.is_none() => {
            return Err(ApiError::Unprocessable(
                "a report needs a message (.eml) or a url".into(),
            ))
        }
        _ => {}
    }
    let received_at = state.clock.now();
    let report = NewPhishingReport {
        id: Uuid::now_v7(),
        tracking_id: tracking_id(),
        device_id: device.id,
        received_at,
        subject: message.as_deref().and_then(subject_of),
        url,
        note,
        message,
    };
    state.store.create_phishing_report(&report).await?;
    tracing::info!(device_id = %device.id, tracking_id = %report.tracking_id, "phishing report received");
    state
        .webhooks
        .send(crate::webhooks::Event::PhishingReported {
            tracking_id: report.tracking_id.clone(),
            device_id: device.id,
            subject: report.subject.clone(),
            url: report.url.clone(),
            at: received_at,
        });
    Ok((
        StatusCode::CREATED,
        Json(PhishingAck {
            tracking_id: report.tracking_id,
            received_at,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

/// `GET /api/v1/admin/phishing-reports?limit=&offset=`: the inbox, newest first.
#[utoipa::path(get, path = "/api/v1/admin/phishing-reports", tag = "admin", security(("api_token" = [])),
    params(("limit" = Option<u32>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Vec<PhishingReportInfo>)))]
pub async fn inbox(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiQuery(query): ApiQuery<InboxQuery>,
) -> Result<Json<Vec<PhishingReportInfo>>, ApiError> {
    auth.require(Role::Viewer)?;
    let limit = match query.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => {
            return Err(ApiError::Unprocessable(
                "limit must be between 1 and 1000".into(),
            ))
        }
    };
    if i64::try_from(query.offset).is_err() {
        return Err(ApiError::Unprocessable("offset is out of range".into()));
    }
    Ok(Json(
        state
            .store
            .list_phishing_reports(limit, query.offset)
            .await?,
    ))
}

/// `GET /api/v1/admin/phishing-reports/{id}/message`: the `.eml` exactly as uploaded, as a
/// download that no browser renders.
#[utoipa::path(get, path = "/api/v1/admin/phishing-reports/{id}/message", tag = "admin", security(("api_token" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The .eml as uploaded", content_type = "message/rfc822")))]
pub async fn message(
    State(state): State<SharedState>,
    auth: AdminAuth,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Response, ApiError> {
    auth.require(Role::Viewer)?;
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let message = state
        .store
        .phishing_message(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no uploaded message for report {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.eml\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        message,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// What the reporter sees of IT's triage (issues 6 and 7): a device reads only its own reports.

/// How many of its reports a device is told about: the agent keeps the newest 50.
pub const DEVICE_REPORTS: u32 = 100;
/// A reply IT writes for the reporter; the console keeps the same bound.
pub const MAX_REPLY: usize = 2000;

/// `GET /api/v1/agent/phishing-reports`: the reports this device sent, newest first, each
/// with IT's triage status and reply.
#[utoipa::path(get, path = "/api/v1/agent/phishing-reports", tag = "agent", security(("device_token" = [])),
    responses((status = 200, description = "`PhishingReportStatus` objects (tandem_proto::v1), newest first", body = Vec<Object>)))]
pub async fn mine(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
) -> Result<Json<Vec<PhishingReportStatus>>, ApiError> {
    Ok(Json(
        state
            .store
            .device_phishing_reports(device.id, None, DEVICE_REPORTS)
            .await?,
    ))
}

/// `GET /api/v1/agent/phishing-reports/{tracking_id}`: one report this device sent. Another
/// device's tracking id is answered exactly like an unknown one, so ids cannot be probed.
#[utoipa::path(get, path = "/api/v1/agent/phishing-reports/{tracking_id}", tag = "agent", security(("device_token" = [])),
    params(("tracking_id" = String, Path, description = "`PH-` and eight characters")),
    responses((status = 200, description = "A `PhishingReportStatus` (tandem_proto::v1)", body = Object),
        (status = 404, description = "No report of this device has that tracking id")))]
pub async fn one(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
    tracking_id: Result<Path<String>, PathRejection>,
) -> Result<Json<PhishingReportStatus>, ApiError> {
    let Path(tracking_id) = tracking_id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let not_found =
        || ApiError::NotFound("this device sent no report with that tracking id".into());
    // Tracking ids are 11 characters; anything far longer is not worth a query.
    if tracking_id.len() > 64 {
        return Err(not_found());
    }
    state
        .store
        .device_phishing_reports(device.id, Some(&tracking_id), 1)
        .await?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(not_found)
}

/// `PUT /api/v1/admin/phishing-reports/{id}/triage`: IT's verdict and the reply the reporter
/// sees, as the console's triage form sets them (for IT's scripts and tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageBody {
    /// `new`, `investigating`, `phishing`, `spam` or `safe`.
    pub status: String,
    #[serde(default)]
    pub reply: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/admin/phishing-reports/{id}/triage", tag = "admin", security(("api_token" = [])),
    params(("id" = Uuid, Path)), request_body = TriageBody,
    responses((status = 204, description = "Stored and audited"), (status = 404, description = "No such report"),
        (status = 422, description = "Unknown status or reply too long")))]
pub async fn set_triage(
    State(state): State<SharedState>,
    auth: AdminAuth,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(body): ApiJson<TriageBody>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = TriageStatus::parse(&body.status);
    if status == TriageStatus::Unknown {
        return Err(ApiError::Unprocessable(
            "status must be one of new, investigating, phishing, spam, safe".into(),
        ));
    }
    let reply = body.reply.filter(|r| !r.trim().is_empty());
    if reply.as_ref().is_some_and(|r| r.len() > MAX_REPLY) {
        return Err(ApiError::Unprocessable(format!(
            "reply is longer than {MAX_REPLY} bytes"
        )));
    }
    let found = state
        .store
        .set_phishing_triage(&crate::store::console::PhishingTriage {
            report_id: id,
            status: status.as_str().to_owned(),
            reply,
            updated_at: state.clock.now(),
            updated_by: auth.actor(),
        })
        .await?;
    if !found {
        return Err(ApiError::NotFound(format!("no phishing report {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_found_unfolded_and_only_in_the_header() {
        let eml = b"From: a@b\r\nSubject: Your invoice\r\n is overdue\r\nTo: c@d\r\n\r\nSubject: not this\r\n";
        assert_eq!(subject_of(eml).as_deref(), Some("Your invoice is overdue"));
        assert_eq!(subject_of(b"From: a@b\n\nSubject: body\n"), None);
        let long = format!("Subject: {}\n\n", "é".repeat(300));
        assert!(subject_of(long.as_bytes()).unwrap().len() <= 256);
    }

    #[test]
    fn tracking_ids_are_short_and_unambiguous() {
        let id = tracking_id();
        assert_eq!(id.len(), 11);
        assert!(id.starts_with("PH-"));
        assert!(!id[3..].contains(['I', 'L', 'O', 'U']));
    }
}
