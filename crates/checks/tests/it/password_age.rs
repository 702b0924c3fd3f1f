//! `password_age` against recorded `chage`, AccountsService, `dscl` and `Get-LocalUser`
//! answers, the identity-provider sources of policy, a no-panic sweep over its parsers, and
//! a live test on a throwaway user whose last change is set with `chage -d`.

use chrono::{DateTime, Duration, Utc};
use tandem_checks::checks::password_age::{
    self, evaluate, linux_reading, macos_reading, parse, windows_reading, LocalPassword,
};
use tandem_checks::{CheckContext, CmdOutput, HostError};
use tandem_proto::policy::PasswordSource;
use tandem_proto::v1::IdentityFacts;
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, now, read};
use crate::os_updates::mutations;

fn ok(stdout: &str, stderr: &str, exit_code: i32) -> Result<CmdOutput, HostError> {
    Ok(CmdOutput {
        exit_code: Some(exit_code),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

fn ctx() -> CheckContext {
    CheckContext::default()
}

fn linux(
    chage: Result<CmdOutput, HostError>,
    accounts: Option<Result<serde_json::Value, HostError>>,
) -> tandem_checks::engine::Outcome {
    evaluate(
        Some(linux_reading("alice", &chage, accounts.as_ref())),
        &ctx(),
        "linux",
        now(),
    )
}

#[test]
fn chage_typical_over_the_limit() {
    // Recorded `chage -l root` on this Debian 12 machine: changed May 20, 2025, which is
    // more than 365 days before the fixed "now" (2026-11-28).
    let out = linux(ok(&read("password_age/linux/chage-root.txt"), "", 0), None);
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["age_days"], 557);
    assert_snapshot("password_age/linux/chage-root.expected.json", &out);
}

#[test]
fn chage_edges_must_change_never_and_warning_window() {
    let out = linux(
        ok(&read("password_age/linux/chage-must-change.txt"), "", 0),
        None,
    );
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["must_change"], true);
    let out = linux(ok(&read("password_age/linux/chage-never.txt"), "", 0), None);
    assert_eq!(out.status, Status::Unknown);
    // Recorded after `chage -d 2025-01-01 -M 90`: the OS maximum is reported by chage but
    // policy decides; with a 700-day policy that date is 696 days old: within 14 days.
    let mut c = ctx();
    c.policy.checks.password_age.max_age_days = 700;
    let chage = ok(&read("password_age/linux/chage-max-90-days.txt"), "", 0);
    let out = evaluate(
        Some(linux_reading("alice", &chage, None)),
        &c,
        "linux",
        now(),
    );
    assert_eq!(out.status, Status::Warn);
    assert_snapshot(
        "password_age/linux/chage-warning-window.expected.json",
        &out,
    );
}

#[test]
fn chage_failures_fall_back_to_accounts_service() {
    // Recorded: chage for another user without privilege.
    let denied = ok(
        "",
        &read("password_age/linux/chage-permission-denied.stderr.txt"),
        1,
    );
    let out = linux(denied.clone(), None);
    assert_eq!(out.status, Status::Unknown);
    assert!(out.reason.as_deref().unwrap().contains("Permission denied"));
    // Recorded from AccountsService 22.08 (Debian 12) with busctl for a user whose change
    // was set with `chage -d 2025-01-01`: the date arrives in seconds.
    let answer = |rel: &str| -> serde_json::Value { serde_json::from_str(&read(rel)).unwrap() };
    let out = linux(
        denied.clone(),
        Some(Ok(answer(
            "password_age/linux/accounts-policy-debian12-seconds.json",
        ))),
    );
    assert_eq!(out.details["source"], "local:accountsservice");
    assert_eq!(out.details["changed_at"], "2025-01-01T00:00:00Z");
    assert_snapshot("password_age/linux/accounts-fallback.expected.json", &out);
    // Older AccountsService answers days; the same day must come out.
    let out = linux(
        denied.clone(),
        Some(Ok(answer(
            "password_age/linux/accounts-policy-older-days.json",
        ))),
    );
    assert_eq!(out.details["changed_at"], "2025-01-01T00:00:00Z");
    // Recorded after `chage -d 0` and `chage -d -1`.
    let out = linux(
        denied.clone(),
        Some(Ok(answer(
            "password_age/linux/accounts-policy-debian12-must-change.json",
        ))),
    );
    assert_eq!(out.status, Status::Fail);
    let out = linux(
        denied,
        Some(Ok(answer(
            "password_age/linux/accounts-policy-debian12-never.json",
        ))),
    );
    assert_eq!(out.status, Status::Unknown);
    // Recorded: a user unknown to /etc/passwd (an LDAP or SSSD account).
    let out = linux(
        ok(
            "",
            &read("password_age/linux/chage-no-such-user.stderr.txt"),
            1,
        ),
        Some(Err(HostError::NotFound {
            path: "the system D-Bus socket".into(),
        })),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out
        .reason
        .as_deref()
        .unwrap()
        .contains("not a local account"));
}

#[test]
fn macos_dscl_real_date_and_failures() {
    let out = evaluate(
        Some(macos_reading(
            "alice",
            &ok(&read("password_age/macos/dscl-real.txt"), "", 0),
        )),
        &ctx(),
        "macos",
        now(),
    );
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["changed_at"], "2021-11-15T11:22:10Z");
    assert_snapshot("password_age/macos/dscl-real.expected.json", &out);
    let out = evaluate(
        Some(macos_reading(
            "alice",
            &ok(&read("password_age/macos/dscl-date.txt"), "", 0),
        )),
        &ctx(),
        "macos",
        now(),
    );
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["changed_at"], "2026-10-01T08:00:00Z");
    let out = evaluate(
        Some(macos_reading(
            "alice",
            &ok(&read("password_age/macos/dscl-no-key.txt"), "", 0),
        )),
        &ctx(),
        "macos",
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    let out = evaluate(
        Some(macos_reading(
            "alice",
            &ok(
                "",
                &read("password_age/macos/dscl-record-not-found.stderr.txt"),
                56,
            ),
        )),
        &ctx(),
        "macos",
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out.reason.as_deref().unwrap().contains("eDSRecordNotFound"));
}

#[test]
fn windows_local_user() {
    let out = evaluate(
        Some(windows_reading(
            "alice",
            &ok(&read("password_age/windows/localuser-alice.json"), "", 0),
        )),
        &ctx(),
        "windows",
        now(),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("password_age/windows/localuser-alice.expected.json", &out);
    let out = evaluate(
        Some(windows_reading(
            "kiosk",
            &ok(&read("password_age/windows/localuser-never.json"), "", 0),
        )),
        &ctx(),
        "windows",
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    let out = evaluate(
        Some(windows_reading(
            "bob",
            &ok(
                &read("password_age/windows/localuser-ps51-date.json"),
                "",
                0,
            ),
        )),
        &ctx(),
        "windows",
        now(),
    );
    assert_eq!(out.details["changed_at"], "2024-10-27T03:33:20Z");
    let out = evaluate(
        Some(windows_reading(
            "alice",
            &ok(
                "",
                &read("password_age/windows/localuser-not-found.stderr.txt"),
                1,
            ),
        )),
        &ctx(),
        "windows",
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out
        .reason
        .as_deref()
        .unwrap()
        .contains("not a local account"));
}

fn idp(changed: Option<DateTime<Utc>>) -> CheckContext {
    let mut c = ctx();
    c.identity = Some(IdentityFacts {
        mfa_enrolled: None,
        password_changed_at: changed,
        enroll_url: None,
        source: Some("okta".into()),
        as_of: Some(now() - Duration::hours(3)),
    });
    c
}

#[test]
fn policy_source_decides_between_idp_and_local() {
    let local = || {
        Some(linux_reading(
            "alice",
            &ok(&read("password_age/linux/chage-root.txt"), "", 0),
            None,
        ))
    };
    // idp_then_local: the provider's recent change wins over the old local date.
    let c = idp(Some(now() - Duration::days(20)));
    let out = evaluate(local(), &c, "linux", now());
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["source"], "idp:okta");
    assert_snapshot("password_age/linux/idp-then-local.expected.json", &out);
    // local: the OS date, whatever the provider says.
    let mut c = idp(Some(now() - Duration::days(20)));
    c.policy.checks.password_age.source = PasswordSource::Local;
    assert_eq!(evaluate(local(), &c, "linux", now()).status, Status::Fail);
    // idp without an answer from the provider: unknown, never a guess from the OS.
    let mut c = idp(None);
    c.policy.checks.password_age.source = PasswordSource::Idp;
    assert_eq!(evaluate(None, &c, "linux", now()).status, Status::Unknown);
    // idp_then_local without a provider answer: the OS.
    assert_eq!(
        evaluate(local(), &idp(None), "linux", now()).status,
        Status::Fail
    );
}

#[test]
fn no_password_age_parser_panics_on_any_input() {
    let seeds: Vec<String> = [
        "password_age/linux/chage-root.txt",
        "password_age/linux/chage-must-change.txt",
        "password_age/macos/dscl-real.txt",
        "password_age/macos/dscl-date.txt",
        "password_age/windows/localuser-alice.json",
        "password_age/windows/localuser-ps51-date.json",
        "password_age/linux/accounts-policy-debian12-seconds.json",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    for input in mutations(&seeds, 3000, 0x51d3_0b77) {
        let _ = parse::parse_chage(&input);
        let _ = parse::parse_dscl_account_policy(&input);
        let _ = parse::parse_local_user_json(&input);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&input) {
            let _ = parse::parse_accounts_policy(&v);
        }
        let _ = evaluate(
            Some(macos_reading("a", &ok(&input, &input, 0))),
            &ctx(),
            "macos",
            now(),
        );
    }
    // Extreme values: AccountsService days far in the future, absurd epoch seconds.
    let _ = parse::parse_accounts_policy(&serde_json::json!({"last_change_time": i64::MAX}));
    let _ = parse::parse_dscl_account_policy(
        "<plist><dict><key>passwordLastSetTime</key><real>1e300</real></dict></plist>",
    );
}

/// Removes the throwaway user however the test ends.
struct TestUser(String);

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("/usr/sbin/userdel")
            .arg(&self.0)
            .status();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A real account whose last password change is set with `chage -d 2025-01-01`: the probe
/// must read exactly that day through `chage -l`, and judge it by the policy.
#[tokio::test]
async fn live_chage_on_a_throwaway_user() {
    if !running_as_root() {
        println!("note: skipped: creating a test user with useradd needs root");
        return;
    }
    let name = format!("tandem-pw{}", std::process::id());
    let status = std::process::Command::new("/usr/sbin/useradd")
        .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
        .status()
        .unwrap();
    assert!(status.success(), "useradd failed");
    let _guard = TestUser(name.clone());
    let status = std::process::Command::new("/usr/bin/chage")
        .args(["-d", "2025-01-01", &name])
        .status()
        .unwrap();
    assert!(status.success(), "chage -d failed");
    let host = tandem_checks::RealHost::new();
    let reading = password_age::probe_local(&host, &name).await.unwrap();
    assert_eq!(reading.source, "chage");
    assert_eq!(
        reading.password,
        LocalPassword::Changed("2025-01-01T00:00:00Z".parse().unwrap())
    );
    // Judged on the fixed "now": 696 days old against the default 365-day limit.
    let out = evaluate(Some(Ok(reading)), &ctx(), "linux", now());
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["age_days"], 696);
}
