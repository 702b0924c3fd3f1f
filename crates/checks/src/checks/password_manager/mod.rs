//! `password_manager` (scaffold: its probes and parsers land with the check-engine issue).

use async_trait::async_trait;
use tandem_proto::CheckId;

use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

pub struct PasswordManager;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[];

#[async_trait]
impl Check for PasswordManager {
    fn id(&self) -> CheckId {
        CheckId::PasswordManager
    }

    async fn run(&self, _host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        Outcome::unknown("this check is not implemented yet")
    }
}
