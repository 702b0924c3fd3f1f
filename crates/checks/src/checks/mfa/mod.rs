//! `mfa`: whether the user has multi-factor authentication, as the identity provider knows
//! it (the server passes it in the check context), with local signals where they exist.
//!
//! Without any source the answer is `unknown` with a reason, never `pass`.
//!
//! # Platform behaviour
//! - Linux: a second-factor PAM module (`pam_google_authenticator`, `pam_u2f`, `pam_oath`,
//!   `pam_duo`, `pam_yubico`) enforced in the sign-in stack (`common-auth`, `system-auth`,
//!   `gdm-password`, `login`, `sddm`, `lightdm`). With `nullok`, only users who enrolled a
//!   token are asked for one, so the user's token file is looked for (its time, not its
//!   secret contents). `sshd` and `sudo` stacks are reported but do not count for sign-in.
//! - Windows: `dsregcmd /status` `NgcSet : YES` (Windows Hello for Business provisioned).
//! - macOS: no local signal; the identity provider only.

pub mod parse;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::checks::os_updates::first_line;
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub struct Mfa;

pub const DSREGCMD: &str = r"C:\Windows\System32\dsregcmd.exe";

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[DSREGCMD];

/// PAM files whose `auth` stack guards signing in to the computer.
pub const PAM_SIGN_IN: &[&str] = &[
    "/etc/pam.d/common-auth",
    "/etc/pam.d/system-auth",
    "/etc/pam.d/gdm-password",
    "/etc/pam.d/login",
    "/etc/pam.d/sddm",
    "/etc/pam.d/lightdm",
];
/// PAM files read for the record only: they guard remote access or privilege, not sign-in.
pub const PAM_OTHER: &[&str] = &[
    "/etc/pam.d/sshd",
    "/etc/pam.d/password-auth",
    "/etc/pam.d/sudo",
];

/// Local evidence of a second factor, gathered by the probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalSignals {
    /// Each signal that counts, in words.
    pub found: Vec<String>,
    /// Configured second factors that do not count, and why.
    pub not_counted: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// One PAM file as read: its path, its contents (or the error), and for `nullok` modules
/// whether the user's token file exists.
#[derive(Debug, Clone)]
pub struct PamFile {
    pub path: String,
    pub text: Result<String, HostError>,
    /// `(module, token file, exists)` for modules with `nullok`.
    pub user_tokens: Vec<(String, String, bool)>,
}

/// Where a module keeps the user's token when its arguments do not say.
fn default_token_file(module: &str, home: &str) -> Option<String> {
    match module {
        "pam_google_authenticator" => Some(format!("{home}/.google_authenticator")),
        "pam_u2f" => Some(format!("{home}/.config/Yubico/u2f_keys")),
        "pam_yubico" => Some(format!("{home}/.yubico/authorized_yubikeys")),
        _ => None,
    }
}

/// The token file a module names with `secret=` / `authfile=`, with `${HOME}`, `~` and
/// `${USER}` expanded, else its default location.
pub fn token_file(f: &parse::PamSecondFactor, home: &str, user: &str) -> Option<String> {
    let named = f.args.iter().find_map(|a| {
        a.strip_prefix("secret=")
            .or_else(|| a.strip_prefix("authfile="))
    });
    match named {
        Some(p) => Some(
            p.replace("${HOME}", home)
                .replace("${USER}", user)
                .replacen('~', home, 1),
        ),
        None => default_token_file(&f.module, home),
    }
}

/// Judges the PAM files read for one user. Pure.
pub fn pam_signals(files: &[PamFile]) -> LocalSignals {
    let mut s = LocalSignals::default();
    for file in files {
        let Ok(text) = &file.text else { continue };
        let sign_in = PAM_SIGN_IN.contains(&file.path.as_str());
        for f in parse::parse_pam(text) {
            let at = format!(
                "{} line {}: {} ({})",
                file.path, f.line, f.module, f.control
            );
            s.evidence.push(Evidence {
                source: file.path.clone(),
                excerpt: text.lines().nth(f.line - 1).unwrap_or("").trim().to_owned(),
            });
            let token = file.user_tokens.iter().find(|(m, _, _)| *m == f.module);
            if !f.enforced {
                s.not_counted
                    .push(format!("{at}: not enforced, it can be skipped"));
            } else if !sign_in {
                s.not_counted.push(format!(
                    "{at}: guards remote access or sudo, not signing in"
                ));
            } else if f.nullok && !token.is_some_and(|(_, _, exists)| *exists) {
                s.not_counted
                    .push(format!("{at}: nullok, and this user has enrolled no token"));
            } else {
                s.found.push(format!(
                    "{} is required at sign-in ({})",
                    f.module, file.path
                ));
            }
        }
    }
    s
}

pub fn dsregcmd_cmd() -> Cmd {
    Cmd::new(DSREGCMD, &["/status"])
}

/// Judges `dsregcmd /status`. Pure.
pub fn dsregcmd_signals(answer: &Result<CmdOutput, HostError>) -> LocalSignals {
    let mut s = LocalSignals::default();
    match answer {
        Ok(out) if out.exit_code == Some(0) => {
            let m = parse::parse_dsregcmd(&out.stdout);
            let keep: String = ["AzureAdJoined", "DomainJoined", "WorkplaceJoined", "NgcSet"]
                .iter()
                .filter_map(|k| m.get(*k).map(|v| format!("{k} : {v}")))
                .collect::<Vec<_>>()
                .join("\n");
            s.evidence.push(Evidence {
                source: dsregcmd_cmd().display(),
                excerpt: keep,
            });
            if m.get("NgcSet")
                .is_some_and(|v| v.eq_ignore_ascii_case("YES"))
            {
                s.found.push(
                    "Windows Hello for Business is set up for this user (NgcSet : YES)".into(),
                );
            }
        }
        Ok(out) => s.not_counted.push(format!(
            "dsregcmd /status failed: {}",
            first_line(&out.stderr)
        )),
        Err(e) => s.not_counted.push(format!("dsregcmd: {e}")),
    }
    s
}

fn enroll_url(ctx: &CheckContext) -> Option<String> {
    ctx.policy
        .checks
        .mfa
        .enroll_url
        .clone()
        .or_else(|| ctx.identity.as_ref().and_then(|i| i.enroll_url.clone()))
}

fn remediation(ctx: &CheckContext) -> Remediation {
    let url = enroll_url(ctx);
    let mut steps = vec!["Set up a second sign-in step (an authenticator app, a security key or a passkey) for your work account.".to_owned()];
    steps.push(match &url {
        Some(_) => "Open the enrolment page and follow the steps.".to_owned(),
        None => format!("Ask {} IT how to enrol.", ctx.policy.org.name),
    });
    Remediation {
        steps,
        action: url.map(|url| RemediationAction::OpenUrl { url }),
    }
}

/// Judges MFA from the identity facts and the local signals. Pure.
pub fn evaluate(ctx: &CheckContext, local: LocalSignals, now: DateTime<Utc>) -> Outcome {
    let identity = ctx.identity.as_ref();
    let source = identity.and_then(|i| i.source.clone());
    let as_of = identity.and_then(|i| i.as_of);
    let age_days = as_of.map(|t| (now - t).num_days().max(0));
    let details = |source: &str| {
        json!({
            "source": source,
            "identity_source": identity.and_then(|i| i.source.clone()),
            "as_of": as_of,
            "age_days": age_days,
            "local_signals": local.found,
            "not_counted": local.not_counted,
        })
    };
    let (status, summary, details, remediation) = match identity.and_then(|i| i.mfa_enrolled) {
        Some(true) => (
            Status::Pass,
            format!(
                "MFA is set up for your account ({})",
                source.as_deref().unwrap_or("identity provider")
            ),
            details("idp"),
            Remediation::default(),
        ),
        Some(false) => (
            Status::Fail,
            format!(
                "MFA is not set up for your account ({})",
                source.as_deref().unwrap_or("identity provider")
            ),
            details("idp"),
            remediation(ctx),
        ),
        None if !local.found.is_empty() => (
            Status::Pass,
            format!(
                "A second factor protects sign-in on this computer: {}",
                local.found.join("; ")
            ),
            details("local"),
            Remediation::default(),
        ),
        None => {
            let mut o = Outcome::unknown(
                "no identity provider has reported this user's MFA enrolment, and no second factor is required to sign in to this computer",
            );
            o.details = details("none");
            o.evidence = local.evidence;
            o.remediation = remediation(ctx);
            return o;
        }
    };
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence: local.evidence,
        remediation,
        default_owner: Owner::User,
    }
}

/// Reads the local signals on a live or recorded host.
///
/// # Platform behaviour
/// Linux reads PAM files and token-file times; Windows runs `dsregcmd /status`; other
/// platforms have no local signal.
pub async fn probe_local(host: &dyn Host) -> LocalSignals {
    match host.os().family.as_str() {
        "linux" => {
            let home = host.os().home.clone().unwrap_or_default();
            let user = host.os().user.clone();
            let mut files = Vec::new();
            for path in PAM_SIGN_IN.iter().chain(PAM_OTHER) {
                let text = host
                    .read_file(path)
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                let mut user_tokens = Vec::new();
                if let Ok(t) = &text {
                    for f in parse::parse_pam(t)
                        .into_iter()
                        .filter(|f| f.nullok && f.enforced)
                    {
                        if let Some(token) =
                            token_file(&f, &home, &user).filter(|_| !home.is_empty())
                        {
                            // The modification time only: the file holds the user's secret.
                            let exists = host.modified(&token).await.is_ok();
                            user_tokens.push((f.module.clone(), token, exists));
                        }
                    }
                }
                files.push(PamFile {
                    path: (*path).to_owned(),
                    text,
                    user_tokens,
                });
            }
            pam_signals(&files)
        }
        "windows" => dsregcmd_signals(&host.run(&dsregcmd_cmd()).await),
        _ => LocalSignals::default(),
    }
}

#[async_trait]
impl Check for Mfa {
    fn id(&self) -> CheckId {
        CheckId::Mfa
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let local = probe_local(host).await;
        evaluate(ctx, local, host.now())
    }
}
