//! Tandem's check engine: every check is a probe that reads the machine only through the
//! [`Host`] door and a pure evaluation of what it read against policy.
//!
//! This crate does no networking and no SQL. It never fails as a whole: a run returns one
//! result per check, and a check that cannot tell says `unknown` with a reason.

pub mod bundle;
pub mod checks;
pub mod engine;
pub mod host;
pub mod inventory;
mod platform;

pub use bundle::{Bundle, RecordingHost, ReplayHost};
pub use engine::{is_slow, run_checks, run_selected, CheckContext};
pub use host::{Cmd, CmdOutput, DbusQuery, Host, HostError, OsFacts, RealHost};
