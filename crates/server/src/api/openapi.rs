//! The OpenAPI document at `/api/v1/openapi.json`, generated from the handlers' annotations.
//!
//! Wire types that `tandem_proto` defines appear as plain objects named in the description:
//! the protocol crate keeps to serde-level dependencies, so it derives no OpenAPI schemas.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, agent, phishing, sources, updates};
use crate::diff;
use crate::store;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tandem server", description = "Agent and admin API, v1"),
    paths(
        agent::enroll, agent::report, agent::policy, agent::identity, phishing::report,
        phishing::mine, phishing::one, phishing::set_triage,
        admin::devices, admin::device, admin::revoke_device, admin::groups, admin::create_group,
        admin::put_policy, admin::get_policy, admin::policy_versions, admin::policy_version,
        admin::policy_diff, admin::enroll_secrets, admin::create_enroll_secret,
        admin::expire_enroll_secret, admin::audit, admin::export_compliance, admin::identities,
        admin::import_identities, admin::identity_sources, phishing::inbox, phishing::message,
        updates::check, updates::artifact, updates::upload_release, updates::list_releases,
        updates::set_channel, sources::create, sources::replace, sources::delete,
    ),
    components(schemas(
        store::AuditEntry, store::DeviceSummary, store::DeviceDetail, store::ReportSummary,
        store::EventRecord, store::EnrollSecretInfo, store::GroupInfo, store::PolicyVersionInfo,
        store::PolicyVersionDetail, store::IdentityFact, store::SourceHealth,
        store::PhishingReportInfo, diff::Change, diff::ChangeKind, admin::PolicyDiff,
        admin::EnrollSecretView, admin::CreatedSecretView, admin::ImportOutcome,
        phishing::PhishingAck, phishing::TriageBody, store::releases::ReleaseInfo, updates::UpdateJson,
        updates::ChannelBody,
    )),
    modifiers(&BearerTokens),
)]
pub struct ApiDoc;

struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["device_token", "api_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
