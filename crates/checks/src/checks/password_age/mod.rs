//! `password_age`: how long ago the signed-in user's password was last changed, from the
//! identity provider (when the server supplies it) and/or the local account, judged against
//! the policy's `max_age_days`.
//!
//! # Platform behaviour
//! - Linux: `chage -l USER` (works unprivileged for one's own account: chage is setgid
//!   `shadow`), else AccountsService `GetPasswordExpirationPolicy` over the system D-Bus.
//!   Local accounts only: LDAP/SSSD users need the identity provider.
//! - macOS: `dscl . -read /Users/NAME accountPolicyData`, key `passwordLastSetTime`.
//! - Windows: `Get-LocalUser` through PowerShell, printing the time as ISO 8601 UTC so the
//!   answer does not depend on the display language (`net user` is localised). Domain and
//!   Entra accounts are not local users: their password age comes from the identity
//!   provider.
//!
//! Policy `source` decides: `idp` uses only the identity provider, `local` only the OS,
//! `idp_then_local` (the default) the provider when it has an answer, else the OS.

pub mod parse;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::policy::PasswordSource;
use tandem_proto::thresholds;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::checks::os_updates::{evidence, exit_text, first_line};
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, CmdOutput, DbusQuery, Host, HostError};
pub use parse::LocalPassword;

pub struct PasswordAge;

pub const CHAGE: &str = "/usr/bin/chage";
pub const DSCL: &str = "/usr/bin/dscl";
pub const POWERSHELL: &str = crate::checks::os_updates::POWERSHELL;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[CHAGE, DSCL, POWERSHELL];

/// Warn this many days before the password reaches its maximum age.
pub const WARN_DAYS: i64 = thresholds::PASSWORD_WARN_DAYS;

/// What the OS said about the local password, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReading {
    pub password: LocalPassword,
    /// `chage`, `accountsservice`, `dscl` or `get-localuser`.
    pub source: &'static str,
    pub evidence: Vec<Evidence>,
}

/// Why the local password age could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalUnreadable {
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

fn unreadable(reason: impl Into<String>, evidence: Vec<Evidence>) -> LocalUnreadable {
    LocalUnreadable {
        reason: reason.into(),
        evidence,
    }
}

pub fn chage_cmd(user: &str) -> Cmd {
    Cmd::new(CHAGE, &["-l", user])
}

pub fn dscl_cmd(user: &str) -> Cmd {
    Cmd::new(
        DSCL,
        &[".", "-read", &format!("/Users/{user}"), "accountPolicyData"],
    )
}

/// PowerShell single-quoted strings escape a quote by doubling it.
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn local_user_cmd(user: &str) -> Cmd {
    let script = format!(
        "$ErrorActionPreference='Stop';$u=Get-LocalUser -Name {};\
ConvertTo-Json -Compress -InputObject ([pscustomobject]@{{Name=$u.Name;\
PasswordLastSet=$(if($u.PasswordLastSet){{$u.PasswordLastSet.ToUniversalTime().ToString('o')}}else{{$null}})}})",
        ps_quote(user)
    );
    Cmd::new(
        POWERSHELL,
        &["-NoProfile", "-NonInteractive", "-Command", &script],
    )
}

/// Linux: reads `chage -l`, falling back to AccountsService when chage could not answer.
pub fn linux_reading(
    user: &str,
    chage: &Result<CmdOutput, HostError>,
    accounts: Option<&Result<serde_json::Value, HostError>>,
) -> Result<LocalReading, LocalUnreadable> {
    let cmd = chage_cmd(user);
    let chage_problem = match chage {
        Ok(out) if out.exit_code == Some(0) => {
            let ev = vec![evidence(cmd.display(), &out.stdout)];
            return match parse::parse_chage(&out.stdout) {
                Ok(password) => Ok(LocalReading {
                    password,
                    source: "chage",
                    evidence: ev,
                }),
                Err(e) => Err(unreadable(e.0, ev)),
            };
        }
        Ok(out) if out.stderr.contains("does not exist in /etc/passwd") => {
            format!("{user} is not a local account (chage: {}); its password age must come from the identity provider", first_line(&out.stderr))
        }
        Ok(out) => format!(
            "chage exited with {}: {}",
            exit_text(out.exit_code),
            first_line(&out.stderr)
        ),
        Err(e) => e.to_string(),
    };
    let mut ev = match chage {
        Ok(out) => vec![evidence(
            cmd.display(),
            &format!("{}{}", out.stdout, out.stderr),
        )],
        Err(_) => Vec::new(),
    };
    match accounts {
        Some(Ok(answer)) => {
            ev.push(evidence(
                "org.freedesktop.Accounts GetPasswordExpirationPolicy",
                &serde_json::to_string(answer).unwrap_or_default(),
            ));
            match parse::parse_accounts_policy(answer) {
                Ok(password) => Ok(LocalReading {
                    password,
                    source: "accountsservice",
                    evidence: ev,
                }),
                Err(e) => Err(unreadable(
                    format!("{chage_problem}; AccountsService: {e}"),
                    ev,
                )),
            }
        }
        Some(Err(e)) => Err(unreadable(
            format!("{chage_problem}; AccountsService: {e}"),
            ev,
        )),
        None => Err(unreadable(chage_problem, ev)),
    }
}

/// macOS: reads `dscl`'s account policy data.
pub fn macos_reading(
    user: &str,
    dscl: &Result<CmdOutput, HostError>,
) -> Result<LocalReading, LocalUnreadable> {
    let cmd = dscl_cmd(user);
    let out = dscl
        .as_ref()
        .map_err(|e| unreadable(e.to_string(), Vec::new()))?;
    let ev = vec![evidence(
        cmd.display(),
        &format!("{}{}", out.stdout, out.stderr),
    )];
    if out.stdout.contains("No such key: accountPolicyData")
        || out.stderr.contains("No such key: accountPolicyData")
    {
        return Ok(LocalReading {
            password: LocalPassword::NotRecorded,
            source: "dscl",
            evidence: ev,
        });
    }
    if out.exit_code != Some(0) {
        return Err(unreadable(
            format!(
                "dscl exited with {}: {}",
                exit_text(out.exit_code),
                first_line(&out.stderr)
            ),
            ev,
        ));
    }
    match parse::parse_dscl_account_policy(&out.stdout) {
        Ok(password) => Ok(LocalReading {
            password,
            source: "dscl",
            evidence: ev,
        }),
        Err(e) => Err(unreadable(e.0, ev)),
    }
}

/// Windows: reads the `Get-LocalUser` JSON.
pub fn windows_reading(
    user: &str,
    answer: &Result<CmdOutput, HostError>,
) -> Result<LocalReading, LocalUnreadable> {
    let out = answer
        .as_ref()
        .map_err(|e| unreadable(e.to_string(), Vec::new()))?;
    let ev = vec![evidence(
        "powershell: Get-LocalUser",
        &format!("{}{}", out.stdout, out.stderr),
    )];
    if out.exit_code != Some(0) {
        let reason = if out.stderr.contains("was not found") {
            format!("{user} is not a local account (a domain or Entra account); its password age must come from the identity provider")
        } else {
            format!("Get-LocalUser failed: {}", first_line(&out.stderr))
        };
        return Err(unreadable(reason, ev));
    }
    match parse::parse_local_user_json(&out.stdout) {
        Ok(password) => Ok(LocalReading {
            password,
            source: "get-localuser",
            evidence: ev,
        }),
        Err(e) => Err(unreadable(e.0, ev)),
    }
}

/// Judges the password age. `local` is `None` when the policy did not call for the OS's
/// answer (source `idp`, or the identity provider answered first). Pure.
pub fn evaluate(
    local: Option<Result<LocalReading, LocalUnreadable>>,
    ctx: &CheckContext,
    family: &str,
    now: DateTime<Utc>,
) -> Outcome {
    let policy = &ctx.policy.checks.password_age;
    let idp = ctx.identity.as_ref().and_then(|i| {
        i.password_changed_at
            .map(|t| (t, i.source.clone(), i.as_of))
    });
    let use_idp = matches!(
        policy.source,
        PasswordSource::Idp | PasswordSource::IdpThenLocal
    ) && idp.is_some();
    if use_idp {
        if let Some((changed, source, as_of)) = idp {
            let source = format!("idp:{}", source.as_deref().unwrap_or("unknown"));
            let mut o = judge(
                changed,
                &source,
                policy.max_age_days,
                family,
                ctx,
                now,
                true,
            );
            if let Some(obj) = o.details.as_object_mut() {
                obj.insert("as_of".into(), json!(as_of));
            }
            return o;
        }
    }
    if policy.source == PasswordSource::Idp {
        return Outcome::unknown("the identity provider has not reported when the password was last changed (policy source: idp)");
    }
    let Some(local) = local else {
        return Outcome::unknown("the local password age was not read");
    };
    let reading = match local {
        Ok(r) => r,
        Err(e) => {
            let mut o = Outcome::unknown(e.reason);
            o.evidence = e.evidence;
            return o;
        }
    };
    let mut o = match reading.password {
        LocalPassword::Changed(at) => judge(at, &format!("local:{}", reading.source), policy.max_age_days, family, ctx, now, false),
        LocalPassword::MustChange => Outcome {
            status: Status::Fail,
            summary: "Your password has expired: it must be changed at the next sign-in".into(),
            reason: None,
            details: json!({"source": format!("local:{}", reading.source), "must_change": true, "max_age_days": policy.max_age_days}),
            evidence: Vec::new(),
            remediation: remediation(family, ctx, false),
            default_owner: Owner::User,
        },
        LocalPassword::NotRecorded => Outcome::unknown(
            "the operating system keeps no password-change date for this account (password ageing is off or the password was never set)",
        ),
    };
    o.evidence = reading.evidence;
    o
}

fn judge(
    changed: DateTime<Utc>,
    source: &str,
    max_age_days: u32,
    family: &str,
    ctx: &CheckContext,
    now: DateTime<Utc>,
    idp: bool,
) -> Outcome {
    let age_days = (now - changed).num_days().max(0);
    let mut details = json!({
        "source": source,
        "changed_at": changed,
        "age_days": age_days,
        "max_age_days": max_age_days,
    });
    // A maximum of 0 means IT set no maximum: report the age, judge nothing.
    if max_age_days == 0 {
        return Outcome {
            status: Status::Pass,
            summary: format!("Password last changed {age_days} days ago; no maximum age is set"),
            reason: None,
            details,
            evidence: Vec::new(),
            remediation: Remediation::default(),
            default_owner: Owner::User,
        };
    }
    // The judgement itself is shared with the server's push preview.
    let verdict = thresholds::password_age(changed, max_age_days, now);
    if let Some(obj) = details.as_object_mut() {
        obj.insert("deadline".into(), json!(verdict.deadline));
    }
    let days_left = verdict.days_left.unwrap_or_default();
    let (status, summary) = if verdict.status == Status::Fail {
        (
            Status::Fail,
            format!("Your password is {age_days} days old; the limit is {max_age_days} days"),
        )
    } else if verdict.status == Status::Warn {
        (
            Status::Warn,
            format!(
                "Your password reaches its maximum age of {max_age_days} days in {} day{}",
                days_left.max(1),
                if days_left == 1 { "" } else { "s" }
            ),
        )
    } else {
        (
            Status::Pass,
            format!("Password changed {age_days} days ago (limit {max_age_days} days)"),
        )
    };
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence: Vec::new(),
        remediation: if status == Status::Pass {
            Remediation::default()
        } else {
            remediation(family, ctx, idp)
        },
        default_owner: Owner::User,
    }
}

fn remediation(family: &str, ctx: &CheckContext, idp: bool) -> Remediation {
    if idp {
        return Remediation {
            steps: vec![
                format!("Change your password where you sign in to {} (your organisation's account portal).", ctx.policy.org.name),
                "Use a new, unique password; a password manager can create one.".into(),
            ],
            action: ctx.policy.org.helpdesk_url.clone().map(|url| RemediationAction::OpenUrl { url }),
        };
    }
    let (step, target) = match family {
        "macos" => ("Open System Settings → Users & Groups, select your account and choose Change Password.", "x-apple.systempreferences:com.apple.Users-Groups-Settings.extension"),
        "windows" => ("Press Ctrl+Alt+Delete and choose Change a password, or open Settings → Accounts → Sign-in options.", "ms-settings:signinoptions"),
        _ => ("Open Settings → Users and choose Password, or run `passwd` in a terminal.", "gnome-control-center user-accounts"),
    };
    Remediation {
        steps: vec![
            step.into(),
            "Use a new, unique password; a password manager can create one.".into(),
        ],
        action: Some(RemediationAction::OpenSettings {
            target: target.into(),
        }),
    }
}

/// Reads the local password age of `user` on a live or recorded host.
///
/// # Platform behaviour
/// Chooses the probe by `host.os().family`; see the module documentation.
pub async fn probe_local(host: &dyn Host, user: &str) -> Result<LocalReading, LocalUnreadable> {
    match host.os().family.as_str() {
        "linux" => {
            let chage = host.run(&chage_cmd(user)).await;
            let chage_ok = matches!(&chage, Ok(o) if o.exit_code == Some(0));
            let accounts = match (chage_ok, host.os().uid) {
                (false, Some(uid)) => {
                    Some(host.dbus(&DbusQuery::AccountsPasswordPolicy { uid }).await)
                }
                _ => None,
            };
            linux_reading(user, &chage, accounts.as_ref())
        }
        "macos" => macos_reading(user, &host.run(&dscl_cmd(user)).await),
        "windows" => windows_reading(user, &host.run(&local_user_cmd(user)).await),
        other => Err(unreadable(
            format!("the local password age is not read on {other}"),
            Vec::new(),
        )),
    }
}

#[async_trait]
impl Check for PasswordAge {
    fn id(&self) -> CheckId {
        CheckId::PasswordAge
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let policy = &ctx.policy.checks.password_age;
        let idp_has_answer = ctx
            .identity
            .as_ref()
            .is_some_and(|i| i.password_changed_at.is_some());
        let need_local = match policy.source {
            PasswordSource::Local => true,
            PasswordSource::IdpThenLocal => !idp_has_answer,
            PasswordSource::Idp => false,
        };
        let user = host.os().user.clone();
        let local = if need_local {
            if user.is_empty() {
                Some(Err(unreadable(
                    "the signed-in user is not known",
                    Vec::new(),
                )))
            } else {
                Some(probe_local(host, &user).await)
            }
        } else {
            None
        };
        evaluate(local, ctx, &host.os().family, host.now())
    }
}
