//! `mfa` from identity facts and local signals: PAM second factors (Linux) and
//! `dsregcmd /status` (Windows), against recorded files and outputs.

use chrono::Duration;
use tandem_checks::checks::mfa::{
    dsregcmd_signals, evaluate, pam_signals, parse, LocalSignals, PamFile,
};
use tandem_checks::{CheckContext, CmdOutput, HostError};
use tandem_proto::v1::IdentityFacts;
use tandem_proto::{RemediationAction, Status};

use crate::fixtures::{assert_snapshot, now, read};
use crate::os_updates::mutations;

fn pam(path: &str, text: &str, tokens: Vec<(String, String, bool)>) -> PamFile {
    PamFile {
        path: path.into(),
        text: Ok(text.into()),
        user_tokens: tokens,
    }
}

fn ctx_with(enrolled: Option<bool>) -> CheckContext {
    let mut c = CheckContext::default();
    c.policy.checks.mfa.enroll_url = Some("https://id.example.com/enroll".into());
    c.identity = Some(IdentityFacts {
        mfa_enrolled: enrolled,
        password_changed_at: None,
        enroll_url: None,
        source: Some("entra".into()),
        as_of: Some(now() - Duration::days(2)),
    });
    c
}

#[test]
fn identity_provider_answers_first() {
    let out = evaluate(&ctx_with(Some(true)), LocalSignals::default(), now());
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["age_days"], 2);
    let out = evaluate(&ctx_with(Some(false)), LocalSignals::default(), now());
    assert_eq!(out.status, Status::Fail);
    assert_eq!(
        out.remediation.action,
        Some(RemediationAction::OpenUrl {
            url: "https://id.example.com/enroll".into()
        })
    );
    assert_snapshot("mfa/linux/idp-not-enrolled.expected.json", &out);
}

#[test]
fn without_any_source_it_is_unknown_never_pass() {
    // Recorded: this Debian 12 machine's common-auth has no second factor.
    let files = vec![pam(
        "/etc/pam.d/common-auth",
        &read("mfa/linux/common-auth-debian12.txt"),
        vec![],
    )];
    let out = evaluate(&CheckContext::default(), pam_signals(&files), now());
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("mfa/linux/common-auth-debian12.expected.json", &out);
}

#[test]
fn pam_second_factor_counts_only_when_enforced_for_this_user() {
    let text = read("mfa/linux/common-auth-google-authenticator-nullok.txt");
    let token = "/home/alice/.google_authenticator".to_owned();
    // nullok and no token enrolled: the user signs in without a second factor.
    let files = vec![pam(
        "/etc/pam.d/common-auth",
        &text,
        vec![("pam_google_authenticator".into(), token.clone(), false)],
    )];
    let s = pam_signals(&files);
    assert!(s.found.is_empty());
    assert_eq!(
        evaluate(&CheckContext::default(), s, now()).status,
        Status::Unknown
    );
    // Token enrolled: required at sign-in.
    let files = vec![pam(
        "/etc/pam.d/common-auth",
        &text,
        vec![("pam_google_authenticator".into(), token, true)],
    )];
    let out = evaluate(&CheckContext::default(), pam_signals(&files), now());
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["source"], "local");
    assert_snapshot(
        "mfa/linux/common-auth-google-authenticator.expected.json",
        &out,
    );
}

#[test]
fn sufficient_modules_and_ssh_only_factors_do_not_count() {
    let files = vec![
        pam(
            "/etc/pam.d/gdm-password",
            &read("mfa/linux/gdm-password-u2f-sufficient.txt"),
            vec![],
        ),
        pam(
            "/etc/pam.d/sshd",
            &read("mfa/linux/sshd-duo-only.txt"),
            vec![],
        ),
        PamFile {
            path: "/etc/pam.d/system-auth".into(),
            text: Err(HostError::NotFound {
                path: "/etc/pam.d/system-auth".into(),
            }),
            user_tokens: vec![],
        },
    ];
    let s = pam_signals(&files);
    assert!(s.found.is_empty());
    assert_eq!(s.not_counted.len(), 2);
    let out = evaluate(&CheckContext::default(), s, now());
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("mfa/linux/u2f-sufficient-duo-ssh.expected.json", &out);
}

fn ok(stdout: &str, code: i32) -> Result<CmdOutput, HostError> {
    Ok(CmdOutput {
        exit_code: Some(code),
        stdout: stdout.into(),
        stderr: String::new(),
    })
}

#[test]
fn windows_hello_for_business() {
    let s = dsregcmd_signals(&ok(&read("mfa/windows/dsregcmd-entra-whfb.txt"), 0));
    assert_eq!(s.found.len(), 1);
    let out = evaluate(&CheckContext::default(), s, now());
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("mfa/windows/dsregcmd-entra-whfb.expected.json", &out);
    let s = dsregcmd_signals(&ok(&read("mfa/windows/dsregcmd-workgroup-no-ngc.txt"), 0));
    assert!(s.found.is_empty());
    // The identity provider's "no" wins over anything local.
    let s = dsregcmd_signals(&ok(&read("mfa/windows/dsregcmd-entra-whfb.txt"), 0));
    assert_eq!(
        evaluate(&ctx_with(Some(false)), s, now()).status,
        Status::Fail
    );
    let s = dsregcmd_signals(&ok(&read("mfa/windows/dsregcmd-garbage.txt"), 1));
    assert!(s.found.is_empty());
    assert_eq!(s.not_counted.len(), 1);
    let s = dsregcmd_signals(&Err(HostError::NotFound {
        path: r"C:\Windows\System32\dsregcmd.exe".into(),
    }));
    assert_eq!(
        evaluate(&CheckContext::default(), s, now()).status,
        Status::Unknown
    );
}

#[test]
fn no_mfa_parser_panics_on_any_input() {
    let seeds: Vec<String> = [
        "mfa/linux/common-auth-google-authenticator-nullok.txt",
        "mfa/linux/gdm-password-u2f-sufficient.txt",
        "mfa/linux/sshd-duo-only.txt",
        "mfa/windows/dsregcmd-entra-whfb.txt",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    for input in mutations(&seeds, 3000, 0x3fa_11ce) {
        let _ = parse::parse_pam(&input);
        let _ = parse::parse_dsregcmd(&input);
        let _ = pam_signals(&[pam("/etc/pam.d/common-auth", &input, vec![])]);
    }
}
