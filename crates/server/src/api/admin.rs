//! The admin API for IT: bearer API tokens with a role; `viewer` reads, `admin` also writes.
//!
//! Every write names its actor (`token:<id>`) so the store records it in the audit log in
//! the same transaction as the change. Answers for lists are JSON arrays; the device list
//! pages with `limit`/`offset` and says the total in `X-Total-Count`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration as TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tandem_proto::v1::{PolicyVersion, SignedPolicy};
use tandem_proto::{CheckId, Status};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{AdminAuth, ApiJson, ApiQuery};
use super::SharedState;
use crate::diff::{self, Change};
use crate::identity;
use crate::policy::{self, check_group_name, PushPolicyError};
use crate::store::{
    AuditEntry, AuditQuery, ChangeBy, DeviceDetail, DeviceFilter, DeviceSummary, EnrollSecretInfo,
    GroupInfo, PolicyVersionDetail, PolicyVersionInfo, Role,
};
use crate::store::{IdentityFact, SourceHealth};
use crate::{EnrollSecretOptions, ServerError};

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;
/// Reports and events shown on a device's page.
pub const DEVICE_HISTORY: u32 = 50;
pub const MAX_SEARCH: usize = 256;

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::InvalidArgument(m) => ApiError::Unprocessable(m),
            ServerError::Store(e) => e.into(),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn group_from_path(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let group = path(p)?;
    check_group_name(&group).map_err(ApiError::Unprocessable)?;
    Ok(group)
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(_) => Err(ApiError::Unprocessable(format!(
            "limit must be between 1 and {MAX_PAGE}"
        ))),
    }
}

fn actor(auth: &AdminAuth, state: &SharedState) -> ChangeBy {
    ChangeBy {
        actor: auth.actor(),
        at: state.clock.now(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    group: Option<String>,
    check: Option<CheckId>,
    status: Option<Status>,
    /// Hostname, user login or email contains this, ignoring case.
    q: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

/// `GET /api/v1/admin/devices?group=&check=&status=&q=&limit=&offset=`: devices by
/// hostname, with `X-Total-Count` and a `Link: <…>; rel="next"` while more pages follow.
#[utoipa::path(get, path = "/api/v1/admin/devices", tag = "admin", security(("api_token" = [])), params(("group" = Option<String>, Query), ("check" = Option<String>, Query), ("status" = Option<String>, Query), ("q" = Option<String>, Query), ("limit" = Option<u32>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Vec<DeviceSummary>, headers(("X-Total-Count" = u64), ("Link" = String)))))]
pub async fn devices(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiQuery(query): ApiQuery<DeviceListQuery>,
) -> Result<Response, ApiError> {
    auth.require(Role::Viewer)?;
    if let Some(group) = &query.group {
        check_group_name(group).map_err(ApiError::Unprocessable)?;
    }
    let search = query.q.filter(|q| !q.trim().is_empty());
    if search.as_ref().is_some_and(|q| q.len() > MAX_SEARCH) {
        return Err(ApiError::Unprocessable(format!(
            "q is longer than {MAX_SEARCH} bytes"
        )));
    }
    if i64::try_from(query.offset).is_err() {
        return Err(ApiError::Unprocessable("offset is out of range".into()));
    }
    let filter = DeviceFilter {
        group: query.group,
        check: query.check,
        status: query.status,
        search,
        limit: page_limit(query.limit)?,
        offset: query.offset,
    };
    let page = state.store.list_devices(&filter).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(page.total),
    );
    let next = filter.offset + u64::from(filter.limit);
    if next < page.total {
        let mut params = url_params(&filter);
        params.push(("offset", next.to_string()));
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let link = format!(
            "<{}?{query}>; rel=\"next\"",
            tandem_proto::v1::PATH_ADMIN_DEVICES
        );
        if let Ok(value) = HeaderValue::try_from(link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok((headers, Json(page.devices)).into_response())
}

fn url_params(filter: &DeviceFilter) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if let Some(g) = &filter.group {
        params.push(("group", g.clone()));
    }
    if let Some(c) = filter.check {
        params.push(("check", c.as_str().to_owned()));
    }
    if let Some(s) = filter.status {
        params.push(("status", s.as_str().to_owned()));
    }
    if let Some(q) = &filter.search {
        params.push(("q", q.clone()));
    }
    params.push(("limit", filter.limit.to_string()));
    params
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
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

/// `GET /api/v1/admin/devices/{id}`: one device, revoked or not, with recent history.
#[utoipa::path(get, path = "/api/v1/admin/devices/{id}", tag = "admin", security(("api_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404)))]
pub async fn device(
    State(state): State<SharedState>,
    auth: AdminAuth,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<DeviceDetail>, ApiError> {
    auth.require(Role::Viewer)?;
    let id = path(id)?;
    state
        .store
        .device_detail(id, DEVICE_HISTORY)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no device with id {id}")))
}

/// `POST /api/v1/admin/devices/{id}/revoke`: the device's tokens stop working at once; its
/// next request is told to enrol again. Answers with the device as it is now.
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/revoke", tag = "admin", security(("api_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = DeviceDetail), (status = 403), (status = 404)))]
pub async fn revoke_device(
    State(state): State<SharedState>,
    auth: AdminAuth,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<DeviceDetail>, ApiError> {
    auth.require(Role::Admin)?;
    let id = path(id)?;
    if !state.store.revoke_device(id, &actor(&auth, &state)).await? {
        return Err(ApiError::NotFound(format!("no device with id {id}")));
    }
    tracing::info!(device_id = %id, actor = %auth.actor(), "device revoked");
    state
        .store
        .device_detail(id, DEVICE_HISTORY)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no device with id {id}")))
}

/// `GET /api/v1/admin/groups`.
#[utoipa::path(get, path = "/api/v1/admin/groups", tag = "admin", security(("api_token" = [])),
    responses((status = 200, body = Vec<GroupInfo>)))]
pub async fn groups(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Json<Vec<GroupInfo>>, ApiError> {
    auth.require(Role::Viewer)?;
    Ok(Json(state.store.list_groups().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    name: String,
}

/// `POST /api/v1/admin/groups` `{"name": …}`: 201, or 409 when the group exists.
#[utoipa::path(post, path = "/api/v1/admin/groups", tag = "admin", security(("api_token" = [])), request_body = Object,
    responses((status = 201, body = GroupInfo), (status = 409)))]
pub async fn create_group(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupInfo>), ApiError> {
    auth.require(Role::Admin)?;
    check_group_name(&body.name).map_err(ApiError::Unprocessable)?;
    let by = actor(&auth, &state);
    if !state.store.create_group(&body.name, &by).await? {
        return Err(ApiError::Conflict(format!(
            "a group named `{}` exists already",
            body.name
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(GroupInfo {
            name: body.name,
            created_at: by.at,
            devices: 0,
            policy_version: None,
        }),
    ))
}

/// `PUT /api/v1/admin/groups/{group}/policy`: stores the body as the group's next version
/// and wakes the group's long-polls. Creates the group when it is new.
#[utoipa::path(put, path = "/api/v1/admin/groups/{group}/policy", tag = "admin", security(("api_token" = [])), params(("group" = String, Path)), request_body(content = Object, description = "A policy document"),
    responses((status = 200, description = "tandem_proto::v1::PolicyVersion", body = Object), (status = 422)))]
pub async fn put_policy(
    State(state): State<SharedState>,
    auth: AdminAuth,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<PolicyVersion>, ApiError> {
    auth.require(Role::Admin)?;
    let group = group_from_path(path)?;
    let outcome = policy::push(
        &*state.store,
        &state.hub,
        &group,
        body,
        auth.actor(),
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        PushPolicyError::InvalidGroup(m) => ApiError::Unprocessable(m),
        PushPolicyError::InvalidPolicy(e) => ApiError::InvalidPolicy(e),
        PushPolicyError::Store(e) => e.into(),
    })?;
    let p = outcome.policy();
    tracing::info!(group = %p.group, version = p.version, actor = %auth.actor(), "policy stored");
    Ok(Json(PolicyVersion {
        group: p.group.clone(),
        version: p.version,
        etag: p.etag.clone(),
    }))
}

async fn existing_group(state: &SharedState, group: &str) -> Result<(), ApiError> {
    if state.store.group_exists(group).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no group named `{group}`")))
    }
}

/// `GET /api/v1/admin/groups/{group}/policy`: the policy a device of this group receives,
/// signed exactly as the device gets it. `group` in the answer names where it came from
/// (the default group, or version 0 for the built-in defaults, when the group has none).
#[utoipa::path(get, path = "/api/v1/admin/groups/{group}/policy", tag = "admin", security(("api_token" = [])), params(("group" = String, Path)),
    responses((status = 200, description = "tandem_proto::v1::SignedPolicy", body = Object)))]
pub async fn get_policy(
    State(state): State<SharedState>,
    auth: AdminAuth,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SignedPolicy>, ApiError> {
    auth.require(Role::Viewer)?;
    let group = group_from_path(path)?;
    existing_group(&state, &group).await?;
    let current = policy::effective(&*state.store, &group).await?;
    Ok(Json(policy::sign(&state.signer, &current)))
}

/// `GET /api/v1/admin/groups/{group}/policy/versions`: the group's own versions, oldest
/// first (empty while it follows the default group).
#[utoipa::path(get, path = "/api/v1/admin/groups/{group}/policy/versions", tag = "admin", security(("api_token" = [])), params(("group" = String, Path)),
    responses((status = 200, body = Vec<PolicyVersionInfo>)))]
pub async fn policy_versions(
    State(state): State<SharedState>,
    auth: AdminAuth,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<PolicyVersionInfo>>, ApiError> {
    auth.require(Role::Viewer)?;
    let group = group_from_path(path)?;
    existing_group(&state, &group).await?;
    Ok(Json(state.store.policy_versions(&group).await?))
}

/// One stored version, or version 0: the built-in defaults.
async fn version_body(
    state: &SharedState,
    group: &str,
    version: i64,
) -> Result<PolicyVersionDetail, ApiError> {
    if version == 0 {
        let builtin = policy::builtin();
        return Ok(PolicyVersionDetail {
            info: PolicyVersionInfo {
                group: group.to_owned(),
                version: 0,
                etag: builtin.etag.clone(),
                created_at: chrono::DateTime::UNIX_EPOCH,
                created_by: "built-in".into(),
            },
            policy: builtin.body.clone(),
        });
    }
    state
        .store
        .policy_version(group, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("group `{group}` has no version {version}")))
}

/// `GET /api/v1/admin/groups/{group}/policy/versions/{version}`.
#[utoipa::path(get, path = "/api/v1/admin/groups/{group}/policy/versions/{version}", tag = "admin", security(("api_token" = [])), params(("group" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = PolicyVersionDetail)))]
pub async fn policy_version(
    State(state): State<SharedState>,
    auth: AdminAuth,
    p: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<PolicyVersionDetail>, ApiError> {
    auth.require(Role::Viewer)?;
    let (group, version) = path(p)?;
    check_group_name(&group).map_err(ApiError::Unprocessable)?;
    existing_group(&state, &group).await?;
    if version < 0 {
        return Err(ApiError::Unprocessable("versions start at 0".into()));
    }
    Ok(Json(version_body(&state, &group, version).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i64,
    to: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyDiff {
    pub group: String,
    pub from: i64,
    pub to: i64,
    pub changes: Vec<Change>,
}

/// `GET /api/v1/admin/groups/{group}/policy/diff?from=A&to=B`: what changed between two
/// versions, as JSON pointers with the value before and after. Version 0 is the built-in
/// defaults, so `from=0` shows everything IT set.
#[utoipa::path(get, path = "/api/v1/admin/groups/{group}/policy/diff", tag = "admin", security(("api_token" = [])), params(("group" = String, Path), ("from" = i64, Query), ("to" = i64, Query)),
    responses((status = 200, body = PolicyDiff)))]
pub async fn policy_diff(
    State(state): State<SharedState>,
    auth: AdminAuth,
    path: Result<Path<String>, PathRejection>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> Result<Json<PolicyDiff>, ApiError> {
    auth.require(Role::Viewer)?;
    let group = group_from_path(path)?;
    existing_group(&state, &group).await?;
    if query.from < 0 || query.to < 0 {
        return Err(ApiError::Unprocessable("versions start at 0".into()));
    }
    let before = version_body(&state, &group, query.from).await?;
    let after = version_body(&state, &group, query.to).await?;
    Ok(Json(PolicyDiff {
        changes: diff::diff(&before.policy, &after.policy),
        group,
        from: query.from,
        to: query.to,
    }))
}

/// An enrolment secret as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollSecretView {
    #[serde(flatten)]
    pub info: EnrollSecretInfo,
    /// Whether a device could enrol with it now.
    pub usable: bool,
}

/// `GET /api/v1/admin/enroll-secrets`: newest first; the secrets themselves are never shown
/// again after creation.
#[utoipa::path(get, path = "/api/v1/admin/enroll-secrets", tag = "admin", security(("api_token" = [])),
    responses((status = 200, body = Vec<EnrollSecretView>)))]
pub async fn enroll_secrets(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Json<Vec<EnrollSecretView>>, ApiError> {
    auth.require(Role::Viewer)?;
    let now = state.clock.now();
    let secrets = state.store.list_enroll_secrets().await?;
    Ok(Json(
        secrets
            .into_iter()
            .map(|info| EnrollSecretView {
                usable: info.usable_at(now),
                info,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSecretRequest {
    #[serde(default = "default_group")]
    group: String,
    expires_in_days: Option<u32>,
    max_uses: Option<u32>,
}

fn default_group() -> String {
    crate::store::DEFAULT_GROUP.to_owned()
}

/// The one answer that shows a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedSecretView {
    pub id: Uuid,
    pub secret: String,
    pub group: String,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub max_uses: Option<u32>,
}

/// `POST /api/v1/admin/enroll-secrets` `{"group", "expires_in_days"?, "max_uses"?}`.
#[utoipa::path(post, path = "/api/v1/admin/enroll-secrets", tag = "admin", security(("api_token" = [])), request_body = Object,
    responses((status = 201, body = CreatedSecretView)))]
pub async fn create_enroll_secret(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<NewSecretRequest>,
) -> Result<(StatusCode, Json<CreatedSecretView>), ApiError> {
    auth.require(Role::Admin)?;
    if body.expires_in_days == Some(0) || body.expires_in_days.is_some_and(|d| d > 3650) {
        return Err(ApiError::Unprocessable(
            "expires_in_days must be between 1 and 3650".into(),
        ));
    }
    let options = EnrollSecretOptions {
        group: body.group.clone(),
        expires_in: body.expires_in_days.map(|d| TimeDelta::days(d.into())),
        max_uses: body.max_uses,
        actor: auth.actor(),
    };
    let created = crate::create_enroll_secret(&*state.store, state.clock.now(), &options).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSecretView {
            id: created.id,
            secret: created.secret,
            group: body.group,
            expires_at: created.expires_at,
            max_uses: body.max_uses,
        }),
    ))
}

/// `POST /api/v1/admin/enroll-secrets/{id}/expire`: no device enrols with it any more.
#[utoipa::path(post, path = "/api/v1/admin/enroll-secrets/{id}/expire", tag = "admin", security(("api_token" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = EnrollSecretView)))]
pub async fn expire_enroll_secret(
    State(state): State<SharedState>,
    auth: AdminAuth,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<EnrollSecretView>, ApiError> {
    auth.require(Role::Admin)?;
    let id = path(id)?;
    let by = actor(&auth, &state);
    let info = state
        .store
        .expire_enroll_secret(id, &by)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no enrolment secret with id {id}")))?;
    Ok(Json(EnrollSecretView {
        usable: info.usable_at(by.at),
        info,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditListQuery {
    /// The last id of the previous page.
    before: Option<i64>,
    action: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/admin/audit?before=&action=&limit=`: newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", security(("api_token" = [])), params(("before" = Option<i64>, Query), ("action" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = Vec<AuditEntry>)))]
pub async fn audit(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiQuery(query): ApiQuery<AuditListQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    auth.require(Role::Viewer)?;
    if query.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::Unprocessable(
            "action is longer than 64 bytes".into(),
        ));
    }
    let query = AuditQuery {
        before_id: query.before,
        action: query.action,
        limit: page_limit(query.limit)?,
    };
    Ok(Json(state.store.list_audit(&query).await?))
}

/// `GET /api/v1/admin/export/compliance.csv`: one row per device, one column per check
/// with its latest status, for auditors' spreadsheets.
#[utoipa::path(get, path = "/api/v1/admin/export/compliance.csv", tag = "admin", security(("api_token" = [])),
    responses((status = 200, description = "One row per device", content_type = "text/csv")))]
pub async fn export_compliance(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Response, ApiError> {
    auth.require(Role::Viewer)?;
    let devices = crate::export::all_devices(&*state.store).await?;
    let body = crate::export::compliance_csv(&devices).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"compliance.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityListQuery {
    q: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u64,
}

/// `GET /api/v1/admin/identities?q=&limit=&offset=`: what the identity sources say, by user.
#[utoipa::path(get, path = "/api/v1/admin/identities", tag = "admin", security(("api_token" = [])), params(("q" = Option<String>, Query), ("limit" = Option<u32>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, body = Vec<IdentityFact>)))]
pub async fn identities(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiQuery(query): ApiQuery<IdentityListQuery>,
) -> Result<Json<Vec<IdentityFact>>, ApiError> {
    auth.require(Role::Viewer)?;
    let search = query.q.filter(|q| !q.trim().is_empty());
    if search.as_ref().is_some_and(|q| q.len() > MAX_SEARCH) {
        return Err(ApiError::Unprocessable(format!(
            "q is longer than {MAX_SEARCH} bytes"
        )));
    }
    if i64::try_from(query.offset).is_err() {
        return Err(ApiError::Unprocessable("offset is out of range".into()));
    }
    let limit = page_limit(query.limit)?;
    Ok(Json(
        state
            .store
            .list_identities(search.as_deref(), limit, query.offset)
            .await?,
    ))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    /// Users stored (a user listed twice counts once: the later row wins).
    pub imported: u64,
}

/// `POST /api/v1/admin/identities/import`: a bulk import, as `text/csv` (a header row, then
/// `email,login,mfa_enrolled,password_changed_at,as_of` in any order) or as a JSON array of
/// the same fields. All rows or none: one bad row refuses the whole file, naming the row.
#[utoipa::path(post, path = "/api/v1/admin/identities/import", tag = "admin", security(("api_token" = [])), request_body(content = String, description = "text/csv or a JSON array"),
    responses((status = 200, body = ImportOutcome), (status = 422)))]
pub async fn import_identities(
    State(state): State<SharedState>,
    auth: AdminAuth,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ImportOutcome>, ApiError> {
    auth.require(Role::Admin)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let now = state.clock.now();
    let facts = match content_type.as_deref() {
        Some("text/csv") => identity::parse_csv(&body, now),
        Some("application/json") => identity::parse_json(&body, now),
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: text/csv or application/json".into(),
            ))
        }
    }
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let by = actor(&auth, &state);
    let imported = state.store.upsert_identities(&facts, Some(&by)).await?;
    tracing::info!(imported, actor = %auth.actor(), "identities imported");
    Ok(Json(ImportOutcome { imported }))
}

/// `GET /api/v1/admin/identity-sources`: each configured source's last poll.
#[utoipa::path(get, path = "/api/v1/admin/identity-sources", tag = "admin", security(("api_token" = [])),
    responses((status = 200, body = Vec<SourceHealth>)))]
pub async fn identity_sources(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Json<Vec<SourceHealth>>, ApiError> {
    auth.require(Role::Viewer)?;
    Ok(Json(state.store.list_source_health().await?))
}
