//! Tandem's shared vocabulary: check results, policy, the agent ↔ server protocol (`v1`) and
//! the agent state the desktop shell renders.
//!
//! Only this crate defines the wire format. It depends on serde-level crates only and does
//! no I/O, so the agent, the desktop shell, the server and the tests all agree by construction.

pub mod activity;
pub mod canonical;
pub mod check;
pub mod policy;
pub mod state;
pub mod thresholds;
pub mod v1;

pub use check::{CheckId, CheckResult, Owner, Remediation, RemediationAction, Status};
pub use policy::Policy;
