//! `cargo xtask cross-check`: type-checks and lints the agent-side crates for Windows and
//! macOS on this Linux machine, so code behind `cfg(windows)` or `cfg(target_os = "macos")`
//! is compiled on every CI run although no Windows or macOS machine exists here.
//!
//! How it works: rustup's toolchains ship no standard library for those targets that could be
//! built here, so the gate uses Debian's `rustc-web` / `cargo-web` together with
//! `rust-web-src`, the library sources of exactly the same compiler version. With
//! `RUSTC_BOOTSTRAP=1`, `cargo -Zbuild-std` then builds `core` and `std` for the foreign
//! target. Nothing is linked, so no Windows or Apple SDK is needed; build scripts that compile
//! C (ring, mac-notification-sys) go through a check-only compiler shim that falls back to an
//! empty object for the target when SDK headers are missing.
//!
//! The gate proves that the code compiles and lints for those targets; it runs nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::deps;
use crate::util::{output, root, step, target_dir};

/// The targets checked when none is named: one Windows and one macOS target.
pub const DEFAULT_TARGETS: &[&str] = &["x86_64-pc-windows-msvc", "aarch64-apple-darwin"];

/// What `--target all` stands for: every target this gate knows how to set up.
const ALL_TARGETS: &[&str] = &[
    "x86_64-pc-windows-msvc",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-gnu",
    "x86_64-apple-darwin",
];

/// The crates that run on the user's machine. The server only ever runs on Linux.
const CRATES: &[&str] = &[
    "tandem-proto",
    "tandem-checks",
    "tandem-agent",
    "tandem-cli",
    "tandem-desktop",
];

/// Debian packages of the gate: the compiler, its own std sources and clippy (all one
/// version, from bookworm-security), MinGW for `windows-gnu`, clang for the C shim, and LLVM
/// for `llvm-ar`, `llvm-lib` and `llvm-rc`.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "libstd-rust-web-dev",
    "rust-web-clippy",
    "binutils-mingw-w64-x86-64",
    "gcc-mingw-w64-x86-64",
    "clang",
    "llvm",
];

/// Debian's toolchain, not rustup's proxies of the same names: `-Zbuild-std` needs the library
/// sources of the compiler's exact version, rustup cannot download `rust-src` here (only
/// package registries are reachable), and Debian packages a matching set.
const CARGO: &str = "/usr/bin/cargo";
const RUSTC: &str = "/usr/bin/rustc";
const RUSTDOC: &str = "/usr/bin/rustdoc";
const CLIPPY_DRIVER: &str = "/usr/bin/clippy-driver";

/// `PATH` with the system directories first, so that `cargo clippy` finds Debian's
/// `cargo-clippy` (and so `clippy-driver`) rather than rustup's.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const USAGE: &str = "\
usage: cargo xtask cross-check [--target T]... [--no-clippy]

  --target T    check for target T (repeatable); `all` stands for every known target
                default: x86_64-pc-windows-msvc and aarch64-apple-darwin
                known: x86_64-pc-windows-msvc aarch64-apple-darwin x86_64-pc-windows-gnu
                       x86_64-apple-darwin
  --no-clippy   type-check only; skip `cargo clippy -- -D warnings`
";

#[derive(Debug)]
pub struct Options {
    pub targets: Vec<String>,
    pub clippy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: DEFAULT_TARGETS.iter().map(|t| (*t).to_owned()).collect(),
            clippy: true,
        }
    }
}

fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut targets = Vec::new();
    let mut clippy = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let target = match arg.as_str() {
            "--no-clippy" => {
                clippy = false;
                continue;
            }
            "-h" | "--help" => return Ok(None),
            "--target" => args.next().context("`--target` needs a value")?.as_str(),
            other => match other.strip_prefix("--target=") {
                Some(t) => t,
                None => {
                    eprint!("{USAGE}");
                    bail!("unknown argument `{other}`");
                }
            },
        };
        let named: &[&str] = if target == "all" {
            ALL_TARGETS
        } else if let Some(known) = ALL_TARGETS.iter().find(|t| **t == target) {
            std::slice::from_ref(known)
        } else {
            bail!(
                "unknown target `{target}`; known: {} (or `all`)",
                ALL_TARGETS.join(" ")
            );
        };
        for t in named {
            if !targets.iter().any(|known: &String| known == t) {
                targets.push((*t).to_owned());
            }
        }
    }
    if targets.is_empty() {
        targets = Options::default().targets;
    }
    Ok(Some(Options { targets, clippy }))
}

/// `cargo xtask cross-check [--target T]... [--no-clippy]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match parse_args(args)? {
        Some(options) => cross_check(&options),
        None => {
            print!("{USAGE}");
            Ok(())
        }
    }
}

/// The gate as `cargo xtask test` runs it: the default targets, with clippy.
pub fn run_default() -> anyhow::Result<()> {
    cross_check(&Options::default())
}

/// Prepares the toolchain once, then checks (and lints) every target, and fails when any
/// target failed. Every target is tried, so one run shows every broken platform.
pub fn cross_check(options: &Options) -> anyhow::Result<()> {
    step("cross-check: toolchain", || {
        deps::ensure_packages(PACKAGES)?;
        verify_toolchain(options.clippy)
    })?;
    if !root().join("ui/dist/index.html").is_file() {
        // tauri's macros embed the frontend, so the desktop crate does not compile without it.
        deps::ensure_node()?;
        deps::build_ui()?;
    }
    let target_dir = xcheck_target_dir();
    let shim_dir = target_dir.join("shim");
    write_shims(&shim_dir, &options.targets)?;

    let mut results = Vec::new();
    for target in &options.targets {
        let started = Instant::now();
        let result = check_target(target, &target_dir, &shim_dir, options.clippy);
        if let Err(e) = &result {
            // Cargo has printed the compile errors; this names what failed and why.
            eprintln!("cross-check {target}: {e:#}");
        }
        results.push((target, result.is_ok(), started.elapsed().as_secs_f64()));
    }

    eprintln!();
    for (target, ok, secs) in &results {
        let verdict = if *ok { "OK" } else { "FAILED" };
        eprintln!("cross-check {target}: {verdict} ({secs:.0} s)");
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(t, _, _)| t.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("cross-check failed for {}", failed.join(", "));
    }
    Ok(())
}

fn check_target(
    target: &str,
    target_dir: &Path,
    shim_dir: &Path,
    clippy: bool,
) -> anyhow::Result<()> {
    let mut check = cargo_for(target, target_dir, shim_dir);
    check.arg("check").args(common_args(target));
    run_cargo(target, "check", &mut check)?;
    if clippy {
        let mut lint = cargo_for(target, target_dir, shim_dir);
        lint.arg("clippy")
            .args(common_args(target))
            .args(["--", "-D", "warnings"]);
        run_cargo(target, "clippy", &mut lint)?;
    }
    Ok(())
}

/// Runs one cargo command as a step. The command line, with its whole environment, is
/// echoed first, so a failure can be reproduced by copying it; the error then only says
/// which command failed.
fn run_cargo(target: &str, subcommand: &str, cmd: &mut Command) -> anyhow::Result<()> {
    step(&format!("cross-check {target}: cargo {subcommand}"), || {
        eprintln!("$ {cmd:?}");
        let status = cmd
            .status()
            .with_context(|| format!("cannot start {CARGO}"))?;
        if !status.success() {
            bail!("cargo {subcommand} failed ({status})");
        }
        Ok(())
    })
}

fn common_args(target: &str) -> Vec<&str> {
    let mut args = vec![
        "-Zbuild-std=std,panic_abort",
        "--target",
        target,
        "--locked",
    ];
    for krate in CRATES {
        args.extend(["-p", krate]);
    }
    args
}

/// The gate's own target directory beside the usual one, `<target>-xcheck`: foreign-target
/// artifacts and a foreign compiler's fingerprints would otherwise evict the host build's.
fn xcheck_target_dir() -> PathBuf {
    // Collecting the components drops a trailing slash, so `/x/target/` gives `/x/target-xcheck`.
    let base: PathBuf = target_dir().components().collect();
    let mut dir = OsString::from(base.as_os_str());
    dir.push("-xcheck");
    PathBuf::from(dir)
}

/// Debian's cargo with the environment that makes `-Zbuild-std` work for `target`.
fn cargo_for(target: &str, target_dir: &Path, shim_dir: &Path) -> Command {
    let mut cmd = Command::new(CARGO);
    cmd.current_dir(root())
        .env("PATH", system_first_path())
        .env("RUSTC", RUSTC)
        .env("RUSTDOC", RUSTDOC)
        // Unlocks `-Z` flags on this stable compiler; the gate needs only `build-std`.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        // Debug info is never read in a check; leaving it out saves disk and time.
        .env("CARGO_PROFILE_DEV_DEBUG", "0");
    // The outer `cargo xtask` runs under rustup and a developer's own settings; none of them
    // may reach Debian's cargo. RUSTFLAGS would also apply to the std build and change it.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let var_target = target.replace('-', "_");
    let shim = shim_dir.join(shim_name(target));
    if target.ends_with("-windows-gnu") {
        // MinGW is a complete cross toolchain: real compiles, no shim needed.
        cmd.env(format!("CC_{var_target}"), "x86_64-w64-mingw32-gcc")
            .env(format!("CXX_{var_target}"), "x86_64-w64-mingw32-g++")
            .env(format!("AR_{var_target}"), "x86_64-w64-mingw32-ar");
    } else {
        let ar = if target.ends_with("-windows-msvc") {
            "llvm-lib"
        } else {
            "llvm-ar"
        };
        cmd.env(format!("CC_{var_target}"), &shim)
            .env(format!("CXX_{var_target}"), &shim)
            .env(format!("AR_{var_target}"), ar);
    }
    cmd
}

fn system_first_path() -> OsString {
    let mut path = OsString::from(SYSTEM_PATH);
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    path
}

/// Checks that Debian's compiler is installed and that the std sources beside it are of its
/// exact version: `-Zbuild-std` with mismatched sources fails deep inside `core`.
fn verify_toolchain(clippy: bool) -> anyhow::Result<()> {
    let mut needed = vec![CARGO, RUSTC, RUSTDOC];
    if clippy {
        needed.push(CLIPPY_DRIVER);
    }
    for program in needed {
        if !Path::new(program).is_file() {
            bail!("{program} is missing; the cross-check needs Debian's packages {PACKAGES:?}");
        }
    }
    let version = output(Command::new(RUSTC).arg("-V"))?;
    let version = version
        .split_whitespace()
        .nth(1)
        .with_context(|| {
            format!(
                "cannot read the version of {RUSTC} from `{}`",
                version.trim()
            )
        })?
        .to_owned();
    let sysroot = output(Command::new(RUSTC).args(["--print", "sysroot"]))?;
    let link = Path::new(sysroot.trim()).join("lib/rustlib/src/rust");
    let sources = std::fs::canonicalize(&link).with_context(|| {
        format!(
            "the std sources {} are missing (package rust-web-src)",
            link.display()
        )
    })?;
    let matches = sources
        .file_name()
        .is_some_and(|n| n == format!("rustc-{version}").as_str());
    if !matches || !sources.join("library/Cargo.lock").is_file() {
        bail!(
            "{RUSTC} is version {version} but the std sources at {} are not its own",
            sources.display()
        );
    }
    if clippy {
        let clippy_version = output(Command::new(CLIPPY_DRIVER).arg("-V"))?;
        let (major_minor, _) = version.rsplit_once('.').unwrap_or((&version, ""));
        if !clippy_version.contains(&format!(" 0.{major_minor}")) {
            bail!(
                "{CLIPPY_DRIVER} (`{}`) is not built for rustc {version}",
                clippy_version.trim()
            );
        }
    }
    eprintln!(
        "rustc {version} with its std sources at {}",
        sources.display()
    );
    Ok(())
}

fn shim_name(target: &str) -> String {
    format!("{target}-cc")
}

/// Writes one C compiler shim per target into `dir`. The target is written into the shim,
/// so the fallback object is always for the right target whatever flags the caller passed.
fn write_shims(dir: &Path, targets: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for target in targets.iter().filter(|t| !t.ends_with("-windows-gnu")) {
        let path = dir.join(shim_name(target));
        std::fs::write(&path, shim_script(target))
            .with_context(|| format!("cannot write {}", path.display()))?;
        make_executable(&path)?;
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    bail!("the cross-check runs on Linux only")
}

/// The shim for `target`. MSVC-targeted build scripts (through the `cc` crate) speak `cl.exe`
/// flags, so for those targets clang runs in its `cl` driver mode, where an argument such as
/// `/work/x.c` reads as the option `/w`: the shim hands existing absolute paths to clang-cl
/// as relative ones.
fn shim_script(target: &str) -> String {
    let (driver, cl_paths) = if target.ends_with("-windows-msvc") {
        (
            "clang --driver-mode=cl",
            r#"args=()
for arg in "$@"; do
  if [[ $arg == /* && -e $arg ]]; then arg=$(realpath -s --relative-to=. -- "$arg"); fi
  args+=("$arg")
done
set -- "${args[@]}"
"#,
        )
    } else {
        ("clang", "")
    };
    format!(
        r#"#!/bin/bash
# Written by `cargo xtask cross-check`. CHECK-ONLY C compiler for {target}: never use it for
# a real build. It runs clang; when a compile (-c) fails, usually because the Windows or
# Apple SDK headers are not on this machine, it writes an empty object for {target} in
# place of the real one. A check links nothing, so the empty object is never used, and the
# build script that asked for it can finish.
{cl_paths}{driver} "$@" && exit 0
compile=no out= prev=
for arg in "$@"; do
  case $arg in
    -c|/c) compile=yes ;;
    -Fo*|/Fo*) out=${{arg:3}} ;;
  esac
  if [ "$prev" = -o ]; then out=$arg; fi
  prev=$arg
done
if [ $compile = no ] || [ -z "$out" ]; then exit 1; fi
echo "{target}-cc: compile failed (check-only build): writing an empty object to $out" >&2
exec clang --target={target} -c -x c /dev/null -o "$out"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn targets_default_repeat_and_all() {
        let o = parse_args(&args(&[])).unwrap().unwrap();
        assert_eq!(o.targets, DEFAULT_TARGETS);
        assert!(o.clippy);

        let o = parse_args(&args(&["--target", "x86_64-apple-darwin", "--no-clippy"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.targets, ["x86_64-apple-darwin"]);
        assert!(!o.clippy);

        let o = parse_args(&args(&["--target=all", "--target", "aarch64-apple-darwin"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.targets, ALL_TARGETS);

        assert!(parse_args(&args(&["--target", "wasm32-unknown-unknown"])).is_err());
        assert!(parse_args(&args(&["--target"])).is_err());
    }
}
