//! Keeps `ui/src/generated/` in step with the Rust types: the frontend's declarations are
//! generated from `tandem-proto`, never written by hand. Run with `--features ts`;
//! `TANDEM_BLESS=1` rewrites the committed files.

#![cfg(feature = "ts")]

use std::path::PathBuf;

use ts_rs::TS;

fn declarations() -> String {
    // serde writes 64-bit integers as JSON numbers, so TypeScript sees `number`, not `bigint`.
    let cfg = ts_rs::Config::new().with_large_int("number");
    use tandem_proto::{activity, check, policy, state, v1};
    let decls = [
        check::CheckId::decl(&cfg),
        check::Status::decl(&cfg),
        check::Owner::decl(&cfg),
        check::RemediationAction::decl(&cfg),
        check::Remediation::decl(&cfg),
        check::Evidence::decl(&cfg),
        check::CheckResult::decl(&cfg),
        state::TrayState::decl(&cfg),
        state::Enrollment::decl(&cfg),
        state::PolicySource::decl(&cfg),
        state::PolicyState::decl(&cfg),
        state::Phase::decl(&cfg),
        state::ActionItem::decl(&cfg),
        state::AgentState::decl(&cfg),
        v1::DeviceInfo::decl(&cfg),
        v1::UserInfo::decl(&cfg),
        v1::Inventory::decl(&cfg),
        v1::EventKind::decl(&cfg),
        v1::Event::decl(&cfg),
        v1::StatusReport::decl(&cfg),
        v1::PhishingAck::decl(&cfg),
        v1::TriageStatus::decl(&cfg),
        v1::PhishingReportStatus::decl(&cfg),
        activity::PhishingSubject::decl(&cfg),
        activity::PhishingReceipt::decl(&cfg),
        activity::SentReport::decl(&cfg),
        activity::HistoryEntry::decl(&cfg),
        policy::Policy::decl(&cfg),
        policy::Org::decl(&cfg),
        policy::ItCommitment::decl(&cfg),
        policy::Checks::decl(&cfg),
        policy::Severity::decl(&cfg),
        policy::Common::decl(&cfg),
        policy::OsUpdatesPolicy::decl(&cfg),
        policy::MfaPolicy::decl(&cfg),
        policy::PasswordSource::decl(&cfg),
        policy::PasswordAgePolicy::decl(&cfg),
        policy::PasswordManagerPolicy::decl(&cfg),
        policy::ScreenLockPolicy::decl(&cfg),
        policy::AntivirusPolicy::decl(&cfg),
        policy::OsSupportedPolicy::decl(&cfg),
        policy::Nudges::decl(&cfg),
        policy::WorkingHours::decl(&cfg),
        policy::Weekday::decl(&cfg),
        policy::Deferrals::decl(&cfg),
        policy::Escalation::decl(&cfg),
        policy::Intervals::decl(&cfg),
        policy::Desktop::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from crates/proto by `cargo test -p tandem-proto --features ts`.\n// Do not edit by hand: run it with TANDEM_BLESS=1 to regenerate.\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out
}

#[test]
fn ui_types_match_the_rust_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/generated/agent.ts");
    let want = declarations();
    if std::env::var_os("TANDEM_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "ui/src/generated/agent.ts is stale: run `TANDEM_BLESS=1 cargo test -p tandem-proto --features ts`"
    );
}
