//! The one integration-test binary of `tandem-checks`: every parser and evaluation against
//! recorded real outputs under `test-data/<check>/<os>/`, with snapshots of the result.

mod fixtures;
mod os_updates;
