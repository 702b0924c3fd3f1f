//! Keeps `ui/src/generated/` in step with the Rust types: the frontend's declarations are
//! generated from `tandem-proto`, never written by hand. Run with `--features ts`;
//! `TANDEM_BLESS=1` rewrites the committed files.

#![cfg(feature = "ts")]

use std::path::PathBuf;

use ts_rs::TS;

fn declarations() -> String {
    use tandem_proto::{check, policy, state, v1};
    let decls = [
        check::CheckId::decl(),
        check::Status::decl(),
        check::Owner::decl(),
        check::RemediationAction::decl(),
        check::Remediation::decl(),
        check::Evidence::decl(),
        check::CheckResult::decl(),
        state::TrayState::decl(),
        state::Enrollment::decl(),
        state::PolicySource::decl(),
        state::PolicyState::decl(),
        state::Phase::decl(),
        state::ActionItem::decl(),
        state::AgentState::decl(),
        v1::DeviceInfo::decl(),
        v1::UserInfo::decl(),
        v1::Inventory::decl(),
        v1::EventKind::decl(),
        v1::Event::decl(),
        v1::StatusReport::decl(),
        policy::Policy::decl(),
        policy::Org::decl(),
        policy::ItCommitment::decl(),
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
