//! The admin API for IT: bearer API tokens with a role; `viewer` reads, `admin` also writes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;
use tandem_proto::v1::{AdminDevice, PolicyVersion, SignedPolicy};

use super::error::ApiError;
use super::extract::{AdminAuth, ApiJson};
use super::SharedState;
use crate::policy::{self, check_group_name, PushPolicyError};
use crate::store::Role;

/// `GET /api/v1/admin/devices`.
pub async fn devices(
    State(state): State<SharedState>,
    auth: AdminAuth,
) -> Result<Json<Vec<AdminDevice>>, ApiError> {
    auth.require(Role::Viewer)?;
    Ok(Json(state.store.list_devices().await?))
}

fn group_from_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(group) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_group_name(&group).map_err(ApiError::Unprocessable)?;
    Ok(group)
}

/// `PUT /api/v1/admin/groups/{group}/policy`: stores the body as the group's next version
/// and wakes the group's long-polls. Creates the group when it is new.
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

/// `GET /api/v1/admin/groups/{group}/policy`: the policy a device of this group receives,
/// signed exactly as the device gets it. `group` in the answer names where it came from
/// (the default group, or version 0 for the built-in defaults, when the group has none).
pub async fn get_policy(
    State(state): State<SharedState>,
    auth: AdminAuth,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SignedPolicy>, ApiError> {
    auth.require(Role::Viewer)?;
    let group = group_from_path(path)?;
    if !state.store.group_exists(&group).await? {
        return Err(ApiError::NotFound(format!("no group named `{group}`")));
    }
    let current = policy::effective(&*state.store, &group).await?;
    Ok(Json(policy::sign(&state.signer, &current)))
}
