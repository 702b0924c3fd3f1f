//! `password_age` (scaffold: its probes and parsers land with the check-engine issue).

use async_trait::async_trait;
use tandem_proto::CheckId;

use crate::engine::{Check, CheckContext, Outcome};
use crate::host::Host;

pub struct PasswordAge;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[];

#[async_trait]
impl Check for PasswordAge {
    fn id(&self) -> CheckId {
        CheckId::PasswordAge
    }

    async fn run(&self, _host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        Outcome::unknown("this check is not implemented yet")
    }
}
