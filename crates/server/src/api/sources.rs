//! Admin API parity with the console's identity-source pages: create, replace and delete
//! the sources stored in the database. A source is the same JSON object as in the server's
//! sources file; answers show it with its secrets redacted, and a replacement that leaves a
//! secret out keeps the stored one.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{AdminAuth, ApiJson};
use super::SharedState;
use crate::identity::sources::{self, SourceConfig};
use crate::store::integrations::{redacted, StoredSourceConfig, SECRET_FIELDS};
use crate::store::{ChangeBy, Role};

fn by(auth: &AdminAuth, state: &SharedState) -> ChangeBy {
    ChangeBy {
        actor: auth.actor(),
        at: state.clock.now(),
    }
}

fn sealing(e: crate::secrets::SecretsError) -> ApiError {
    ApiError::Internal(Box::new(e))
}

/// Parses and checks a source; `name` (from the path) wins over the body's.
fn checked(mut body: Value, name: Option<&str>) -> Result<(SourceConfig, Value), ApiError> {
    let Value::Object(map) = &mut body else {
        return Err(ApiError::Unprocessable(
            "expected a JSON object describing one source".into(),
        ));
    };
    if let Some(name) = name {
        map.insert("name".into(), Value::String(name.to_owned()));
    }
    let config: SourceConfig =
        serde_json::from_value(body).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    sources::validate(&config).map_err(ApiError::Unprocessable)?;
    let stored = serde_json::to_value(&config).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((config, stored))
}

/// `POST /api/v1/admin/identity-sources` with one source as in the sources file: 201, 409
/// when the name is taken (here or in the file), 422 when it does not validate.
#[utoipa::path(post, path = "/api/v1/admin/identity-sources", tag = "admin", security(("api_token" = [])),
    request_body(content = Object, description = "One source, as in the --identity-sources file"),
    responses((status = 201, description = "The stored source, secrets redacted", body = Object), (status = 409), (status = 422)))]
pub async fn create(
    State(state): State<SharedState>,
    auth: AdminAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(Role::Admin)?;
    let (config, stored) = checked(body, None)?;
    if state.identity_sources.iter().any(|s| s.name == config.name) {
        return Err(ApiError::Conflict(format!(
            "a source named `{}` is configured in the server's file",
            config.name
        )));
    }
    let record = StoredSourceConfig {
        name: config.name.clone(),
        kind: config.settings.kind().to_owned(),
        config: stored,
        updated_at: state.clock.now(),
        updated_by: auth.actor(),
    };
    let record = state.secrets.seal_source(record).map_err(sealing)?;
    if !state
        .store
        .create_source_config(&record, &by(&auth, &state))
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "a source named `{}` exists already",
            config.name
        )));
    }
    Ok((StatusCode::CREATED, Json(redacted(&record.config))))
}

/// `PUT /api/v1/admin/identity-sources/{name}`: replaces a stored source; secret fields
/// left out keep their stored values. 404 for sources from the file.
#[utoipa::path(put, path = "/api/v1/admin/identity-sources/{name}", tag = "admin", security(("api_token" = [])),
    params(("name" = String, Path)), request_body(content = Object, description = "The source; secrets may be left out"),
    responses((status = 200, description = "The stored source, secrets redacted", body = Object), (status = 404), (status = 422)))]
pub async fn replace(
    State(state): State<SharedState>,
    auth: AdminAuth,
    name: Result<Path<String>, PathRejection>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Role::Admin)?;
    let Path(name) = name.map_err(|e| ApiError::NotFound(e.body_text()))?;
    let stored = state
        .store
        .list_source_configs()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no stored identity source `{name}`")))?;
    // Secrets left out are kept, so they must open; with another server's key they cannot.
    let stored = state
        .secrets
        .open_source(&stored)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    if let Value::Object(map) = &mut body {
        for key in SECRET_FIELDS {
            if !map.contains_key(*key) {
                if let Some(v) = stored.config.get(*key) {
                    map.insert((*key).to_owned(), v.clone());
                }
            }
        }
    }
    let (config, value) = checked(body, Some(&name))?;
    if config.settings.kind() != stored.kind {
        return Err(ApiError::Unprocessable(format!(
            "a source keeps its kind (`{}`); delete it and create a new one instead",
            stored.kind
        )));
    }
    let record = StoredSourceConfig {
        config: value,
        updated_at: state.clock.now(),
        updated_by: auth.actor(),
        ..stored
    };
    let record = state.secrets.seal_source(record).map_err(sealing)?;
    if !state
        .store
        .update_source_config(&record, &by(&auth, &state))
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "no stored identity source `{name}`"
        )));
    }
    Ok(Json(redacted(&record.config)))
}

/// `DELETE /api/v1/admin/identity-sources/{name}`: 204; the users it synced stay.
#[utoipa::path(delete, path = "/api/v1/admin/identity-sources/{name}", tag = "admin", security(("api_token" = [])),
    params(("name" = String, Path)), responses((status = 204), (status = 404)))]
pub async fn delete(
    State(state): State<SharedState>,
    auth: AdminAuth,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let Path(name) = name.map_err(|e| ApiError::NotFound(e.body_text()))?;
    if !state
        .store
        .delete_source_config(&name, &by(&auth, &state))
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "no stored identity source `{name}`"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
