//! `cargo xtask`: the project's own tasks. `demo` and `test` are the two set-up commands of
//! the README: each installs what the machine lacks, then does its job.

mod bench;
mod bench_fleet;
mod bundle;
mod cross_check;
mod demo;
mod deps;
mod test;
mod util;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo                 build everything, start tandem-server on SQLite, enrol this machine's
                       agent to it and start the desktop app (or `tandem run` without a display)
  test                 install what is missing, then run every check and test
  deps                 install the system packages and tools the build and tests need
  ui                   build the desktop frontend (ui/dist)
  bundle               the Linux packages (.deb, .rpm) with Tauri's bundler
                       ([--debug] [--no-build] [--bundles deb,rpm] [--out DIR])
  bench checks|agent-idle|agent-day|desktop-idle
                       the figures of BENCHMARKS.md (release builds)
  bench fleet          the server's: ingest, 20,000 long-polls, push to 10,000 agents
                       ([--backend sqlite|postgres] [--agents N]; see xtask/src/bench_fleet.rs)
  cross-check          type-check and lint the agent-side crates for Windows and macOS
                       ([--target T]... [--no-clippy]; see `cargo xtask cross-check --help`)
";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprint!("{USAGE}");
        bail!("no task given");
    };
    let rest = &args[1..];
    match task.as_str() {
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "bundle" => bundle::run_cmd(rest),
        "test" => test::run(rest),
        "deps" => deps::ensure_all(),
        "ui" => deps::build_ui(),
        "cross-check" => cross_check::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown task `{other}`")
        }
    }
}
