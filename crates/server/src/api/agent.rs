//! The agent API: enrolment, reports, the policy long-poll and identity facts.
//!
//! Everything a device sends is untrusted: it is bounded by `validate`, stored verbatim and
//! only ever attached to the device its token belongs to.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tandem_proto::v1::{EnrollRequest, EnrollResponse, IdentityFacts, ReportAck, StatusReport};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, DeviceAuth, PeerAddr, RawJson, ReportRoom};
use super::{validate, SharedState};
use crate::batch::{IngestError, QueuedReport};
use crate::keys::{hash_secret, new_secret};
use crate::store::{EnrollOutcome, IngestOutcome, NewDevice, StoredPolicy, DEFAULT_GROUP};
use crate::webhooks;

/// `POST /api/v1/enroll`.
#[utoipa::path(post, path = "/api/v1/enroll", tag = "agent",
    request_body(content = Object, description = "tandem_proto::v1::EnrollRequest"),
    responses((status = 201, description = "Enrolled: tandem_proto::v1::EnrollResponse", body = Object),
        (status = 401, description = "Bad enrolment secret", content_type = "application/problem+json"),
        (status = 429, description = "Too many enrolments from this address", content_type = "application/problem+json")))]
pub async fn enroll(
    State(state): State<SharedState>,
    PeerAddr(peer): PeerAddr,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    // Per source address, so that guessing secrets from one place is slow; checked before
    // the body is even validated, so malformed floods are limited too.
    if let (Some(limiter), Some(ip)) = (&state.enroll_limiter, peer) {
        super::spend(limiter, &ip, 10_000).inspect_err(|_| {
            state.metrics.enroll_rate_limited.inc();
        })?;
    }
    validate::enroll(&req)?;
    let token = new_secret();
    let now = state.clock.now();
    let new = NewDevice {
        candidate_id: Uuid::now_v7(),
        token_hash: hash_secret(&token),
        device: req.device,
        user: req.user,
        now,
    };
    match state
        .store
        .enroll(&hash_secret(&req.enroll_secret), &new)
        .await?
    {
        EnrollOutcome::BadSecret => Err(ApiError::BadEnrollSecret),
        EnrollOutcome::Enrolled { device_id, group } => {
            tracing::info!(%device_id, %group, "device enrolled");
            Ok((
                StatusCode::CREATED,
                Json(EnrollResponse {
                    device_id,
                    device_token: token,
                    policy_signing_key: state.signer.public_key_base64(),
                    server_time: now,
                }),
            ))
        }
    }
}

/// `POST /api/v1/agent/reports`: 202 when stored, 200 for a replay of a stored report.
#[utoipa::path(post, path = "/api/v1/agent/reports", tag = "agent", security(("device_token" = [])),
    request_body(content = Object, description = "tandem_proto::v1::StatusReport"),
    responses((status = 202, description = "Stored: tandem_proto::v1::ReportAck", body = Object),
        (status = 200, description = "A replay of a stored report; nothing written", body = Object),
        (status = 401, description = "Enrol again", content_type = "application/problem+json")))]
pub async fn report(
    State(state): State<SharedState>,
    // First: a full queue answers 503 before the token and the body cost anything.
    _room: ReportRoom,
    DeviceAuth(device): DeviceAuth,
    body: RawJson<StatusReport>,
) -> Result<(StatusCode, Json<ReportAck>), ApiError> {
    let now = state.clock.now();
    validate::report(&body.value, now)?;
    // Only counted when a webhook wants to hear that a device became compliant.
    let fixed_hook = state.webhooks.wants(webhooks::EventKind::DeviceFixed);
    let failing_before = if fixed_hook {
        state.store.failing_checks(device.id).await?
    } else {
        0
    };
    let hostname = body.value.inventory.device.hostname.clone();
    let sent_at = body.value.sent_at;
    // Here, in parallel, rather than in the one writer task that stores the batch.
    let queued = QueuedReport::new(&*state.store, device.id, body.value, body.raw, now)?;
    let outcome = state.writers.ingest(queued).await.map_err(|e| match e {
        IngestError::Full => ApiError::Overloaded,
        IngestError::Store(e) => e.into(),
    })?;
    if fixed_hook
        && failing_before > 0
        && outcome == IngestOutcome::Stored
        && state.store.failing_checks(device.id).await? == 0
    {
        state.webhooks.send(webhooks::Event::DeviceFixed {
            device_id: device.id,
            hostname,
            at: now,
        });
    }
    if outcome == IngestOutcome::Stored {
        state.metrics.reports_ingested.inc();
        let lag = (now - sent_at).num_milliseconds().max(0);
        state.metrics.ingest_lag.observe(lag as f64 / 1000.0);
    }
    let status = match outcome {
        IngestOutcome::Stored => StatusCode::ACCEPTED,
        IngestOutcome::Replayed => StatusCode::OK,
    };
    let effective = state
        .effective_policies
        .get(&*state.store, &state.hub, &device.group)
        .await?;
    Ok((
        status,
        Json(ReportAck {
            policy_etag: effective.etag.clone(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct PolicyQuery {
    /// Seconds to hold the request while the agent's policy is current.
    #[serde(default)]
    wait: u64,
}

/// The etags an `If-None-Match` header names.
enum Known {
    Nothing,
    Any,
    Tags(Vec<String>),
}

impl Known {
    fn from_headers(headers: &HeaderMap) -> Known {
        let mut tags = Vec::new();
        for value in headers.get_all(header::IF_NONE_MATCH) {
            let Ok(value) = value.to_str() else { continue };
            for tag in value.split(',') {
                let tag = tag.trim();
                if tag == "*" {
                    return Known::Any;
                }
                // Weak and unquoted tags are accepted: comparison is on the opaque value.
                let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
                if !tag.is_empty() {
                    tags.push(tag.to_owned());
                }
            }
        }
        if tags.is_empty() {
            Known::Nothing
        } else {
            Known::Tags(tags)
        }
    }

    fn matches(&self, etag: &str) -> bool {
        match self {
            Known::Nothing => false,
            Known::Any => true,
            Known::Tags(tags) => tags.iter().any(|t| t == etag),
        }
    }
}

fn etag_header(etag: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(format!("\"{etag}\"")).map_err(|e| ApiError::Internal(Box::new(e)))
}

fn not_modified(current: &StoredPolicy) -> Result<Response, ApiError> {
    Ok((
        StatusCode::NOT_MODIFIED,
        [(header::ETAG, etag_header(&current.etag)?)],
    )
        .into_response())
}

/// Waits for the next version published for the group `rx` follows. A closed channel never
/// reports anything again, so it waits forever (the deadline still ends the wait).
async fn next_version(rx: &mut Option<watch::Receiver<i64>>) {
    if let Some(rx) = rx {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// `GET /api/v1/agent/policy?wait=N` with `If-None-Match`: the signed effective policy at
/// once when the agent's copy is stale, else held until it changes (200) or `N` seconds
/// pass (304).
#[utoipa::path(get, path = "/api/v1/agent/policy", tag = "agent", security(("device_token" = [])),
    params(("wait" = Option<u64>, Query, description = "Seconds to hold the request while the policy is current"),
        ("If-None-Match" = Option<String>, Header, description = "The etag the agent holds")),
    responses((status = 200, description = "The signed policy: tandem_proto::v1::SignedPolicy", body = Object),
        (status = 304, description = "Unchanged")))]
pub async fn policy(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
    ApiQuery(query): ApiQuery<PolicyQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let known = Known::from_headers(&headers);
    let wait = Duration::from_secs(query.wait).min(state.max_long_poll);
    let deadline = Instant::now() + wait;
    // Subscribing before the first read means a version stored in between still wakes us.
    // A device follows its own group and, while that group has no policy, the default one.
    let mut own = Some(state.hub.subscribe(&device.group));
    let mut fallback = (device.group != DEFAULT_GROUP).then(|| state.hub.subscribe(DEFAULT_GROUP));
    let mut parked = None;
    loop {
        let current = state
            .effective_policies
            .get(&*state.store, &state.hub, &device.group)
            .await?;
        if !known.matches(&current.etag) {
            // Which version a device holds is for the admin's view only; failing to note it
            // must not cost the device its policy.
            // Written behind, in batches: after a push every device asks at once.
            state.writers.policy_delivered(device.id, current.version);
            let body = state
                .signed_policies
                .json(&state.signer, &current)
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
            return Ok((
                StatusCode::OK,
                [
                    (header::ETAG, etag_header(&current.etag)?),
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                ],
                body,
            )
                .into_response());
        }
        if wait.is_zero() {
            return not_modified(&current);
        }
        if parked.is_none() {
            parked = Some(state.hub.park());
        }
        tokio::select! {
            () = next_version(&mut own) => {}
            () = next_version(&mut fallback) => {}
            () = tokio::time::sleep_until(deadline) => return not_modified(&current),
            () = state.shutdown.cancelled() => return not_modified(&current),
        }
    }
}

/// `GET /api/v1/agent/identity`: the freshest fact any identity source has about the
/// device's user (matched by email, else login), with the MFA enrolment URL from the
/// device's policy. Empty facts when no source knows the user.
#[utoipa::path(get, path = "/api/v1/agent/identity", tag = "agent", security(("device_token" = [])),
    responses((status = 200, description = "tandem_proto::v1::IdentityFacts", body = Object)))]
pub async fn identity(
    State(state): State<SharedState>,
    DeviceAuth(device): DeviceAuth,
) -> Result<Json<IdentityFacts>, ApiError> {
    let fact = state.store.identity_for_device(device.id).await?;
    let policy = state
        .effective_policies
        .get(&*state.store, &state.hub, &device.group)
        .await?;
    // A stored policy parses strictly when pushed; leniently here so that an old row can
    // never cost the device its identity facts.
    let enroll_url = tandem_proto::Policy::deserialize(&policy.body)
        .ok()
        .and_then(|p| p.checks.mfa.enroll_url);
    Ok(Json(match fact {
        Some(f) => IdentityFacts {
            mfa_enrolled: f.mfa_enrolled,
            password_changed_at: f.password_changed_at,
            enroll_url,
            source: Some(f.source),
            as_of: Some(f.as_of),
        },
        None => IdentityFacts {
            enroll_url,
            ..IdentityFacts::default()
        },
    }))
}
