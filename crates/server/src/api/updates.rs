//! Agent self-update (issue 8): IT uploads signed releases and picks a channel per group;
//! agents and the desktop app's Tauri updater ask for the newest release of their channel.
//!
//! The signature of every upload is verified here against the configured updater key, with
//! the verification the Tauri updater itself runs, so a bad upload is refused at once.
//! Agents verify again before installing: this server is not trusted to vouch for a binary,
//! it only distributes what the (offline) key signed.

use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tandem_proto::v1;

use super::error::ApiError;
use super::extract::{AdminAuth, ApiJson, ApiQuery, DeviceAuth};
use super::SharedState;
use crate::policy::check_group_name;
use crate::releases::{self, ReleaseError, Version};
use crate::store::releases::{NewRelease, ReleaseInfo, KEEP_PER_CHANNEL};
use crate::store::{ChangeBy, Role};

/// The largest artifact accepted: a desktop bundle is tens of megabytes.
pub const MAX_ARTIFACT: usize = 256 * 1024 * 1024;
/// A minisign signature file in base64 is about 400 bytes.
const MAX_SIGNATURE: usize = 4096;
const MAX_NOTES: usize = 16 * 1024;
const MAX_NAME: usize = 64;

/// What the update endpoints need from the server's configuration.
#[derive(Debug, Clone, Default)]
pub struct UpdateSettings {
    /// The updater's public key (base64 of the minisign `.pub` file).
    pub public_key: Option<String>,
    /// `https://host[:port]` without a trailing slash, for artifact URLs.
    pub public_url: Option<String>,
    /// Whether this process terminates TLS itself (the scheme when `public_url` is unset).
    pub tls: bool,
}

/// The Tauri updater's "dynamic server" answer: `version`, `url` and `signature` are
/// required; `pub_date` is RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdateJson {
    pub version: String,
    pub notes: String,
    pub pub_date: String,
    pub url: String,
    pub signature: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    target: String,
    current_version: String,
    /// Tauri's updater also sends `{arch}`; accepted and ignored (the target says it).
    #[serde(default)]
    #[allow(dead_code)]
    arch: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    pub channel: String,
}

/// `linux-x86_64`, `windows-aarch64`, `darwin-x86_64`…: the Tauri updater's `{target}`,
/// for the desktop app's bundles; with a `cli-` prefix, the headless `tandem` binary alone.
fn check_target(target: &str) -> Result<(), ApiError> {
    let platform = target.strip_prefix("cli-").unwrap_or(target);
    let ok = platform.split_once('-').is_some_and(|(os, arch)| {
        matches!(os, "linux" | "windows" | "darwin")
            && matches!(arch, "x86_64" | "aarch64" | "i686" | "armv7")
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "target `{}` is not [cli-]OS-ARCH (linux, windows or darwin; x86_64, aarch64, \
             i686 or armv7)",
            target
                .chars()
                .take(MAX_NAME)
                .collect::<String>()
                .escape_debug()
        )))
    }
}

/// Channel names: lower-case letters, digits, `-`, `_` and `.`, like group names.
pub(crate) fn check_channel(channel: &str) -> Result<(), ApiError> {
    let ok = !channel.is_empty()
        && channel.len() <= MAX_NAME
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "channel must be 1 to {MAX_NAME} lower-case letters, digits, `-`, `_` or `.`"
        )))
    }
}

fn parse_version(text: &str) -> Result<Version, ApiError> {
    text.parse()
        .map_err(|e: ReleaseError| ApiError::Unprocessable(e.to_string()))
}

/// Where agents fetch artifacts: the configured public address, else the `Host` this
/// agent used (it can only mislead itself).
fn base_url(state: &SharedState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = &state.updates.public_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .ok_or_else(|| ApiError::BadRequest("missing or malformed Host header".into()))?;
    let scheme = if state.updates.tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}

/// `GET /api/v1/agent/update?target=…&current_version=…`: the newest release of the
/// device's channel when it is newer than `current_version`, else 204. The Tauri updater's
/// endpoint template is `{server}/api/v1/agent/update?target={{target}}&current_version={{current_version}}`.
#[utoipa::path(get, path = "/api/v1/agent/update", tag = "agent", security(("device_token" = [])),
    params(("target" = String, Query), ("current_version" = String, Query)),
    responses((status = 200, body = UpdateJson), (status = 204, description = "No newer release")))]
pub async fn check(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UpdateQuery>,
) -> Result<Response, ApiError> {
    check_target(&query.target)?;
    let current = parse_version(&query.current_version)?;
    let Some(release) = state
        .store
        .offered_release(&device.group, &query.target)
        .await?
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let offered = releases::Offered {
        version: parse_version(&release.version)?,
        pub_date: release.created_at,
        url: format!(
            "{}{}",
            base_url(&state, &headers)?,
            v1::PATH_UPDATE_ARTIFACT.replace("{sha256}", &release.sha256)
        ),
        signature: release.signature,
        notes: release.notes,
    };
    Ok(match releases::answer(current, Some(&offered)) {
        Some(a) => Json(UpdateJson {
            version: a.version,
            notes: a.notes,
            pub_date: a.pub_date,
            url: a.url,
            signature: a.signature,
        })
        .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `GET /api/v1/agent/update/artifacts/{sha256}`: an artifact by its content hash; the
/// same URL always means the same bytes, so caches may keep it for good.
#[utoipa::path(get, path = "/api/v1/agent/update/artifacts/{sha256}", tag = "agent", security(("device_token" = [])),
    params(("sha256" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404)))]
pub async fn artifact(
    State(state): State<SharedState>,
    DeviceAuth(_device): DeviceAuth,
    sha256: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(sha256) = sha256.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let well_formed = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(ApiError::NotFound(
            "artifacts are named by their lower-case hex SHA-256".into(),
        ));
    }
    let bytes = state
        .store
        .release_artifact(&sha256)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no artifact {sha256}")))?;
    let etag = HeaderValue::from_str(&format!("\"{sha256}\""))
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// A release upload's fields, from the admin API or the console's form.
#[derive(Debug, Default)]
pub(crate) struct UploadForm {
    pub version: Option<String>,
    pub target: Option<String>,
    pub channel: Option<String>,
    pub signature: Option<String>,
    pub notes: Option<String>,
    pub artifact: Option<Vec<u8>>,
    /// The console form's CSRF token (`read_upload` with `with_csrf`); the API takes none.
    pub csrf: Option<String>,
}

/// Reads an upload's multipart fields, each at most once; `with_csrf` also accepts the
/// console form's `csrf` field.
pub(crate) async fn read_upload(
    mut form: Multipart,
    with_csrf: bool,
) -> Result<UploadForm, ApiError> {
    let mut f = UploadForm::default();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "artifact" && f.artifact.is_none() {
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if bytes.len() > MAX_ARTIFACT {
                return Err(ApiError::PayloadTooLarge);
            }
            f.artifact = Some(bytes.to_vec());
            continue;
        }
        let slot =
            match name.as_str() {
                "version" => &mut f.version,
                "target" => &mut f.target,
                "channel" => &mut f.channel,
                "signature" => &mut f.signature,
                "notes" => &mut f.notes,
                "csrf" if with_csrf => &mut f.csrf,
                other => {
                    return Err(ApiError::Unprocessable(format!(
                    "unexpected form field `{}` (expected version, target, channel, signature, \
                     notes and artifact, once each)",
                    other.chars().take(MAX_NAME).collect::<String>().escape_debug()
                )))
                }
            };
        if slot.is_some() {
            return Err(ApiError::Unprocessable(format!(
                "form field `{name}` given twice"
            )));
        }
        *slot = Some(field.text().await.map_err(multipart_error)?);
    }
    Ok(f)
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::Unprocessable(format!("form field `{name}` is missing")))
}

/// `POST /api/v1/admin/releases` (multipart: `version`, `target`, `channel` (default
/// `stable`), `signature` (the `.sig` file's contents), `notes`, `artifact`): stores the
/// release once its signature verifies with the updater key; 422 otherwise, storing nothing.
#[utoipa::path(post, path = "/api/v1/admin/releases", tag = "admin", security(("api_token" = [])),
    request_body(description = "multipart/form-data: version, target, channel, signature, notes, artifact", content = Object),
    responses((status = 201, body = ReleaseInfo), (status = 403), (status = 409, description = "That version exists on that channel and target, or no updater key is configured"), (status = 422, description = "Bad signature or field")))]
pub async fn upload_release(
    State(state): State<SharedState>,
    auth: AdminAuth,
    form: Multipart,
) -> Result<(StatusCode, Json<ReleaseInfo>), ApiError> {
    auth.require(Role::Admin)?;
    let form = read_upload(form, false).await?;
    let release = store_upload(&state, auth.actor(), form).await?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// Checks an upload's fields and its signature against the server's updater key, then
/// stores it with its audit row as `actor`: the one path for the admin API and the console.
pub(crate) async fn store_upload(
    state: &SharedState,
    actor: String,
    form: UploadForm,
) -> Result<ReleaseInfo, ApiError> {
    let Some(public_key) = state.updates.public_key.clone() else {
        return Err(ApiError::Conflict(
            "this server has no updater public key (--updater-pubkey), so it cannot check \
             release signatures"
                .into(),
        ));
    };
    let version = parse_version(&required(form.version, "version")?)?;
    let target = required(form.target, "target")?;
    check_target(&target)?;
    let channel = form
        .channel
        .unwrap_or_else(|| crate::store::releases::DEFAULT_CHANNEL.to_owned());
    check_channel(&channel)?;
    let signature = required(form.signature, "signature")?.trim().to_owned();
    if signature.len() > MAX_SIGNATURE {
        return Err(ApiError::Unprocessable(format!(
            "signature is longer than {MAX_SIGNATURE} bytes"
        )));
    }
    let notes = form.notes.unwrap_or_default();
    if notes.len() > MAX_NOTES {
        return Err(ApiError::Unprocessable(format!(
            "notes are longer than {MAX_NOTES} bytes"
        )));
    }
    let artifact = form.artifact.filter(|a| !a.is_empty()).ok_or_else(|| {
        ApiError::Unprocessable("form field `artifact` is missing or empty".into())
    })?;
    releases::verify_signature(&public_key, &artifact, &signature).map_err(|e| {
        tracing::warn!(%actor, %version, %target, error = %e, "release upload refused");
        ApiError::Unprocessable(format!("release refused: {e}"))
    })?;
    let sha256 = hex::encode(Sha256::digest(&artifact));
    let by = ChangeBy {
        actor,
        at: state.clock.now(),
    };
    let release = NewRelease {
        channel: channel.clone(),
        target: target.clone(),
        version,
        signature: signature.clone(),
        notes: notes.clone(),
        sha256: sha256.clone(),
        artifact,
        by: by.clone(),
    };
    let size = release.artifact.len() as i64;
    if !state
        .store
        .create_release(&release, KEEP_PER_CHANNEL)
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "release {version} for {target} exists on channel `{channel}`"
        )));
    }
    tracing::info!(%version, %target, %channel, %sha256, actor = %by.actor, "release stored");
    Ok(ReleaseInfo {
        channel,
        target,
        version: version.to_string(),
        signature,
        notes,
        sha256,
        size,
        created_at: by.at,
        created_by: by.actor,
    })
}

/// `GET /api/v1/admin/releases`: stored releases, newest upload first.
#[utoipa::path(get, path = "/api/v1/admin/releases", tag = "admin", security(("api_token" = [])),
    responses((status = 200, body = Vec<ReleaseInfo>)))]
pub async fn list_releases(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Json<Vec<ReleaseInfo>>, ApiError> {
    auth.require(Role::Viewer)?;
    Ok(Json(state.store.list_releases().await?))
}

/// `PUT /api/v1/admin/groups/{group}/channel` `{"channel": "beta"}`: the group's devices
/// follow that channel from their next update check.
#[utoipa::path(put, path = "/api/v1/admin/groups/{group}/channel", tag = "admin", security(("api_token" = [])),
    params(("group" = String, Path)), request_body = ChannelBody,
    responses((status = 200, body = ChannelBody), (status = 403), (status = 404)))]
pub async fn set_channel(
    State(state): State<SharedState>,
    auth: AdminAuth,
    group: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<Json<ChannelBody>, ApiError> {
    auth.require(Role::Admin)?;
    let Path(group) = group.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_group_name(&group).map_err(ApiError::Unprocessable)?;
    check_channel(&body.channel)?;
    let by = ChangeBy {
        actor: auth.actor(),
        at: state.clock.now(),
    };
    if !state
        .store
        .set_group_channel(&group, &body.channel, &by)
        .await?
    {
        return Err(ApiError::NotFound(format!("no group named `{group}`")));
    }
    tracing::info!(%group, channel = %body.channel, actor = %by.actor, "group channel set");
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_channels_are_checked() {
        assert!(check_target("linux-x86_64").is_ok());
        assert!(check_target("darwin-aarch64").is_ok());
        assert!(check_target("cli-linux-x86_64").is_ok());
        assert!(check_target("cli-cli-linux-x86_64").is_err());
        assert!(check_target("linux").is_err());
        assert!(check_target("linux-x86_64/../../x").is_err());
        assert!(check_channel("stable").is_ok());
        assert!(check_channel("beta-2").is_ok());
        assert!(check_channel("").is_err());
        assert!(check_channel("Beta").is_err());
        assert!(check_channel("a/b").is_err());
    }
}
