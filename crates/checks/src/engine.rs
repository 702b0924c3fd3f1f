//! The registry of checks and the engine that runs them all.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tandem_proto::{CheckId, CheckResult, Owner, Policy, Remediation, Status};

use crate::host::Host;

/// What a check knows besides the machine: the policy in force, what IT's identity
/// provider says about the user, and history the agent keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CheckContext {
    pub policy: Policy,
    /// MFA enrolment and password-change facts from the server, when it has them.
    pub identity: Option<tandem_proto::v1::IdentityFacts>,
    /// When each pending item was first seen, keyed `"<check_id>/<item>"` (for example
    /// `"os_updates/openssl"`). Checks report these in their details; the agent keeps them.
    pub first_seen: std::collections::BTreeMap<String, DateTime<Utc>>,
}

/// One check: a probe through the [`Host`] plus a pure evaluation.
#[async_trait]
pub trait Check: Send + Sync {
    fn id(&self) -> CheckId;
    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome;
}

/// What a check decided; the engine adds id, owner, timing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub status: Status,
    pub summary: String,
    pub reason: Option<String>,
    pub details: serde_json::Value,
    pub evidence: Vec<tandem_proto::check::Evidence>,
    pub remediation: Remediation,
    pub default_owner: Owner,
}

impl Outcome {
    /// "Could not tell", with the reason in words.
    pub fn unknown(reason: impl Into<String>) -> Outcome {
        let reason = reason.into();
        Outcome {
            status: Status::Unknown,
            summary: format!("Could not check: {reason}"),
            reason: Some(reason),
            details: serde_json::Value::Object(Default::default()),
            evidence: Vec::new(),
            remediation: Remediation::default(),
            default_owner: Owner::User,
        }
    }
}

/// Every check this build knows, in presentation order.
pub fn registry() -> Vec<Box<dyn Check>> {
    use crate::checks::*;
    vec![
        Box::new(os_updates::OsUpdates),
        Box::new(mfa::Mfa),
        Box::new(password_age::PasswordAge),
        Box::new(password_manager::PasswordManager),
        Box::new(firewall::Firewall),
        Box::new(disk_encryption::DiskEncryption),
        Box::new(screen_lock::ScreenLock),
        Box::new(antivirus::Antivirus),
        Box::new(auto_updates::AutoUpdates),
        Box::new(os_supported::OsSupported),
        Box::new(software_sources::SoftwareSources),
    ]
}

/// Checks whose probes can take seconds to minutes (a package-manager simulation, a Windows
/// Update search, `softwareupdate --list`): the runtime runs them beside the others and does
/// not make the quick results wait for them.
pub fn is_slow(id: CheckId) -> bool {
    matches!(id, CheckId::OsUpdates)
}

/// A check that does not answer within this time is reported as `unknown`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every enabled check concurrently. Never fails: a check that errors, hangs or panics
/// becomes an `unknown` result, and the others are unaffected.
pub async fn run_checks(host: &dyn Host, ctx: &CheckContext) -> Vec<CheckResult> {
    run_selected(host, ctx, |_| true).await
}

/// Runs the enabled checks that `only` selects, concurrently, as [`run_checks`] does: the
/// runtime re-runs just the item a user has acted on, so a fix turns green in seconds
/// without waiting on the slow probes of the others.
pub async fn run_selected(
    host: &dyn Host,
    ctx: &CheckContext,
    only: impl Fn(CheckId) -> bool,
) -> Vec<CheckResult> {
    let checks = registry();
    let runs = checks
        .iter()
        .filter(|c| ctx.policy.checks.common(c.id()).enabled && only(c.id()))
        .map(|check| async move {
            let started = Instant::now();
            let observed_at: DateTime<Utc> = host.now();
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.run(host, ctx)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::unknown(format!(
                    "the check did not finish within {} s",
                    CHECK_TIMEOUT.as_secs()
                )),
            };
            let owner = ctx
                .policy
                .checks
                .common(check.id())
                .owner
                .unwrap_or(outcome.default_owner);
            CheckResult {
                id: check.id(),
                status: outcome.status,
                summary: outcome.summary,
                reason: outcome.reason,
                details: outcome.details,
                evidence: outcome.evidence,
                remediation: outcome.remediation,
                owner,
                observed_at,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }
        });
    futures_util::future::join_all(runs).await
}
