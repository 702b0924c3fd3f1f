//! Integration tests of `tandem-server`: the real server, started in-process on
//! `127.0.0.1:0` over a temporary SQLite file or a database on a private PostgreSQL cluster
//! (`pg.rs`), driven over HTTP; and the built binary. The store contract and the API tests
//! run once per backend.

// Test helpers outside `#[test]` functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

mod admin;
mod admin_ops;
mod agent;
mod cli;
mod console;
mod identity;
mod integrations;
mod oidc;
mod ops;
mod pg;
mod phishing;
mod preview;
mod releases;
mod replica_processes;
mod replicas;
mod secrets;
mod store;
