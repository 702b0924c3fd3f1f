//! `cargo xtask test`: everything CI runs, in the order that fails fastest.

use anyhow::bail;

use crate::deps;
use crate::util::{cargo, run as run_cmd, step};

pub fn run_all() -> anyhow::Result<()> {
    step("system packages and tools", deps::ensure_all)?;
    step("cargo fmt --check", || {
        run_cmd(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("cargo clippy", || {
        run_cmd(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // Windows and macOS code is compiled and linted here, on Linux; nothing of it runs.
    step("cross-check", crate::cross_check::run_default)?;
    step("cargo build (all binaries)", || {
        run_cmd(cargo().args(["build", "--workspace", "--bins", "--locked"]))
    })?;
    step("cargo test (all but the cross-process tests)", || {
        run_cmd(cargo().args(["test", "--workspace", "--exclude", "tandem-e2e", "--locked"]))
    })?;
    // The cross-process tests start X servers, WebKit and Chromium windows, servers and
    // package installs; all of them at once on a two-core machine starve each other past
    // their timeouts. Two at a time (one per core) keeps them honest and the run short.
    step("cargo test (cross-process: tandem-e2e)", || {
        run_cmd(cargo().args([
            "test",
            "-p",
            "tandem-e2e",
            "--locked",
            "--",
            "--test-threads=2",
        ]))
    })?;
    step("frontend types match the Rust types", || {
        run_cmd(cargo().args([
            "test",
            "-p",
            "tandem-proto",
            "--features",
            "ts",
            "--test",
            "ts_bindings",
            "--locked",
        ]))
    })?;
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask test` takes no arguments (got `{extra}`)");
    }
    run_all()
}
