//! Integration tests of `tandem-server`: the real server, started in-process on
//! `127.0.0.1:0` over a temporary SQLite file, driven over HTTP; and the built binary.

// Test helpers outside `#[test]` functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod agent;
mod cli;
mod store;
mod support;
