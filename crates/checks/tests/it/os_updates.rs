//! `os_updates` on Debian/Ubuntu (apt) against recorded outputs.

use tandem_checks::checks::os_updates::{evaluate_apt, AptProbe};
use tandem_checks::CmdOutput;

use crate::fixtures::{assert_snapshot, now, read};

fn probe(stdout: &str, stderr: &str, exit_code: i32, reboot_required: bool) -> AptProbe {
    AptProbe {
        simulate: Ok(CmdOutput { exit_code: Some(exit_code), stdout: stdout.into(), stderr: stderr.into() }),
        reboot_required,
        metadata_updated_at: Some("2026-11-28T09:30:00Z".parse().unwrap()),
    }
}

#[test]
fn apt_many_updates_with_security_fixes() {
    let out = evaluate_apt(&probe(&read("os_updates/linux/apt-debian12-many-security.txt"), "", 0, false), now());
    assert_eq!(out.status, tandem_proto::Status::Warn);
    assert!(out.details["security"].as_u64().unwrap() > 0);
    assert_snapshot("os_updates/linux/apt-debian12-many-security.expected.json", &out);
}

#[test]
fn apt_up_to_date_but_reboot_pending() {
    let out = evaluate_apt(&probe(&read("os_updates/linux/apt-up-to-date.txt"), "", 0, false), now());
    assert_eq!(out.status, tandem_proto::Status::Pass);
    let out = evaluate_apt(&probe("", "", 0, true), now());
    assert_eq!(out.status, tandem_proto::Status::Warn);
    assert_snapshot("os_updates/linux/apt-up-to-date.expected.json", &out);
}

#[test]
fn apt_failure_is_unknown_not_fail() {
    let out = evaluate_apt(&probe("", &read("os_updates/linux/apt-error-stderr.txt"), 100, false), now());
    assert_eq!(out.status, tandem_proto::Status::Unknown);
    assert!(out.reason.unwrap().contains("exited with 100"));
}
