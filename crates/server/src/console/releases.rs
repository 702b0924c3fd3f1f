//! The releases page: the agent releases IT uploaded for the updater, an upload form
//! (artifact and minisign signature, checked against the server's updater key before
//! anything is stored) and the release channel each group follows.
//!
//! Uploads and channel changes take the same path as the admin API
//! (`api::updates::store_upload`, `Store::set_group_channel`), so both are refused for the
//! same reasons and audited the same way, as `admin:<username>`. The upload is a multipart
//! form, which `forms::AdminForm` does not read; its handler checks the same things itself,
//! in the same order: session, admin role, origin, then the form's CSRF token.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Session;
use super::forms::{same_origin, AdminForm};
use super::views::{self, PageCtx};
use super::ConsoleError;
use crate::api::error::ApiError;
use crate::api::updates::{check_channel, read_upload, store_upload};
use crate::api::SharedState;
use crate::releases::{public_key_id, signature_key_id};
use crate::store::releases::DEFAULT_CHANNEL;
use crate::store::ChangeBy;

type Page = Result<Response, ConsoleError>;

/// One stored release as the table shows it.
pub struct ReleaseRow {
    pub version: String,
    pub target: String,
    pub channel: String,
    pub uploaded: String,
    pub by: String,
    pub size: String,
    pub sha256: String,
    pub notes: String,
    /// The id of the key the signature was made with.
    pub key_id: String,
    /// Whether that is the key the server checks uploads with now. Every stored release
    /// verified at upload; after a key rotation the old ones no longer match what agents
    /// pinned with the new key.
    pub current_key: bool,
}

pub struct GroupChannelRow {
    pub group: String,
    pub channel: String,
    pub devices: i64,
}

#[derive(Template)]
#[template(path = "console/releases.html")]
pub struct ReleasesTpl {
    pub page: PageCtx,
    pub releases: Vec<ReleaseRow>,
    pub groups: Vec<GroupChannelRow>,
    /// Channels to suggest: `stable` and every channel in use.
    pub channels: Vec<String>,
    /// The updater key's id; `None` when the server has none and refuses every upload.
    pub key_id: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

fn size(bytes: i64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    // Display only: the precision lost converting to f64 does not show at one decimal.
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / MIB;
    if mib >= 0.1 {
        format!("{mib:.1} MiB")
    } else {
        format!("{bytes} B")
    }
}

async fn page(
    state: &SharedState,
    session: &Session,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Page {
    let key_id = state.updates.public_key.as_deref().and_then(public_key_id);
    let releases: Vec<ReleaseRow> = state
        .store
        .list_releases()
        .await?
        .into_iter()
        .map(|r| {
            let signed_by = signature_key_id(&r.signature);
            ReleaseRow {
                current_key: signed_by.is_some() && signed_by == key_id,
                key_id: signed_by.unwrap_or_else(|| "unreadable".into()),
                version: r.version,
                target: r.target,
                channel: r.channel,
                uploaded: views::time(r.created_at),
                by: r.created_by,
                size: size(r.size),
                sha256: r.sha256.chars().take(12).collect(),
                notes: r.notes,
            }
        })
        .collect();
    let chosen: HashMap<String, String> = state.store.group_channels().await?.into_iter().collect();
    let groups: Vec<GroupChannelRow> = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| GroupChannelRow {
            channel: chosen
                .get(&g.name)
                .cloned()
                .unwrap_or_else(|| DEFAULT_CHANNEL.to_owned()),
            group: g.name,
            devices: g.devices,
        })
        .collect();
    let channels: BTreeSet<String> = std::iter::once(DEFAULT_CHANNEL.to_owned())
        .chain(releases.iter().map(|r| r.channel.clone()))
        .chain(groups.iter().map(|g| g.channel.clone()))
        .collect();
    let html = ReleasesTpl {
        page: PageCtx::new(session, "Releases", "releases"),
        releases,
        groups,
        channels: channels.into_iter().collect(),
        key_id,
        notice,
        error,
    }
    .render()?;
    Ok((status, axum::response::Html(html)).into_response())
}

/// `GET /console/releases`.
pub async fn releases(State(state): State<SharedState>, session: Session) -> Page {
    page(&state, &session, StatusCode::OK, None, None).await
}

/// What an API refusal says on the page; server faults stay in the log.
fn refusal(e: &ApiError) -> String {
    match e {
        ApiError::Internal(_) | ApiError::Overloaded | ApiError::NotReady(_) => {
            "Something went wrong on the server; the details are in its log.".to_owned()
        }
        ApiError::PayloadTooLarge => format!(
            "The artifact is larger than {} MiB.",
            crate::api::updates::MAX_ARTIFACT / (1024 * 1024)
        ),
        other => {
            let mut s = other.to_string();
            if let Some(first) = s.get(..1) {
                let upper = first.to_uppercase();
                s.replace_range(..1, &upper);
            }
            s
        }
    }
}

fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Conflict(_) => StatusCode::CONFLICT,
        ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ApiError::Internal(_) | ApiError::NotReady(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// `POST /console/releases` (multipart): uploads a release.
pub async fn upload(
    State(state): State<SharedState>,
    session: Session,
    headers: HeaderMap,
    req: Request,
) -> Page {
    if !session.is_admin() {
        return Err(ConsoleError::Forbidden(
            "your account has the viewer role: it can look, not change".into(),
        ));
    }
    same_origin(&headers)?;
    // A body that is not a multipart form carries no CSRF token to check: refused as such.
    let form = Multipart::from_request(req, &state)
        .await
        .map_err(|_| ConsoleError::Csrf)?;
    let form = match read_upload(form, true).await {
        Ok(form) => form,
        Err(e) => {
            return page(&state, &session, status_of(&e), None, Some(refusal(&e))).await;
        }
    };
    if !session.csrf_matches(form.csrf.as_deref().unwrap_or_default()) {
        return Err(ConsoleError::Csrf);
    }
    match store_upload(&state, session.actor(), form).await {
        Ok(r) => {
            let notice = format!(
                "Release {} for {} is on channel {}: its signature verified with the updater key.",
                r.version, r.target, r.channel
            );
            page(&state, &session, StatusCode::CREATED, Some(notice), None).await
        }
        Err(e) => page(&state, &session, status_of(&e), None, Some(refusal(&e))).await,
    }
}

/// `POST /console/releases/channel` (`group`, `channel`): the group's devices follow that
/// channel from their next update check.
pub async fn set_channel(State(state): State<SharedState>, f: AdminForm) -> Page {
    let group = f.form.text("group").unwrap_or_default().to_owned();
    let channel = f.form.text("channel").unwrap_or_default().to_owned();
    crate::policy::check_group_name(&group).map_err(ConsoleError::BadRequest)?;
    if let Err(e) = check_channel(&channel) {
        return page(&state, &f.session, status_of(&e), None, Some(refusal(&e))).await;
    }
    let by = ChangeBy {
        actor: f.session.actor(),
        at: state.clock.now(),
    };
    if !state.store.set_group_channel(&group, &channel, &by).await? {
        return Err(ConsoleError::NotFound(format!("no group named {group}")));
    }
    tracing::info!(%group, %channel, actor = %by.actor, "group channel set");
    Ok(Redirect::to("/console/releases").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_mebibytes_above_a_tenth() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(30 * 1024 * 1024 + 512 * 1024), "30.5 MiB");
    }

    #[test]
    fn refusals_read_as_sentences_and_hide_server_faults() {
        let e = ApiError::Unprocessable("release refused: the signature does not match".into());
        assert_eq!(refusal(&e), "Release refused: the signature does not match");
        assert_eq!(status_of(&e), StatusCode::UNPROCESSABLE_ENTITY);
        let e = ApiError::Internal("disk on fire".into());
        assert!(!refusal(&e).contains("disk"));
    }
}
