//! The one integration-test binary of `tandem-e2e`.

// All of this binary is test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod desktop;
mod faults;
mod keyring;
mod skeleton;
