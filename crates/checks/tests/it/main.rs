//! The one integration-test binary of `tandem-checks`: every parser and evaluation against
//! recorded real outputs under `test-data/<check>/<os>/`, with snapshots of the result.

// `allow-unwrap-in-tests` covers `#[test]` functions only; the shared helpers (fixture
// readers, host builders) run inside tests too, where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod antivirus;
mod auto_updates;
mod disk_encryption;
mod firewall;
mod fixtures;
mod mfa;
mod os_supported;
mod os_updates;
mod password_age;
mod password_manager;
mod screen_lock;
mod software_sources;
