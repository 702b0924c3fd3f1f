//! `cargo xtask bundle`: the Linux packages (.deb and .rpm) with Tauri's bundler, offline.
//!
//! Tauri's bundler packages `tandem-desktop` and the files `tauri.conf.json` lists (XDG
//! autostart entry, systemd unit, copyright, maintainer scripts). The `tandem` CLI joins
//! them through a configuration overlay, because its path depends on the target dir.
//!
//! The binaries are copied, stripped, into a staging "target dir" that the bundler is
//! pointed at; that way a package can be made from the debug build the tests already have
//! (`--debug --no-build`) without rebuilding tandem-desktop in another profile. The release
//! path (`cargo xtask bundle`) builds with the release profile and Tauri's
//! `custom-protocol` feature, as `tauri build` would.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{cargo, have_program, root, run, step, target_dir};

const USAGE: &str = "\
usage: cargo xtask bundle [--debug] [--no-build] [--bin-dir DIR] [--bundles deb,rpm] [--out DIR]

  --debug          package the debug build (for tests; the release build is the default)
  --no-build       use the binaries already built (in --bin-dir, else the target dir)
  --bin-dir DIR    where tandem-desktop and tandem are
  --bundles LIST   deb, rpm or both (default: deb,rpm)
  --out DIR        where the packages are copied (default: <target>/packages)
";

/// The binaries a Linux package carries: the desktop app (the bundle's main binary) and the
/// headless CLI.
const DESKTOP_BIN: &str = "tandem-desktop";
const CLI_BIN: &str = "tandem";

#[derive(Debug)]
struct Options {
    debug: bool,
    build: bool,
    bin_dir: Option<PathBuf>,
    bundles: String,
    out: PathBuf,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut opts = Options {
        debug: false,
        build: true,
        bin_dir: None,
        bundles: "deb,rpm".into(),
        out: target_dir().join("packages"),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--debug" => opts.debug = true,
            "--no-build" => opts.build = false,
            "--bin-dir" => opts.bin_dir = Some(PathBuf::from(value("--bin-dir")?)),
            "--bundles" => opts.bundles = value("--bundles")?,
            "--out" => opts.out = PathBuf::from(value("--out")?),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprint!("{USAGE}");
                bail!("unknown argument `{other}`");
            }
        }
    }
    for b in opts.bundles.split(',') {
        if !matches!(b, "deb" | "rpm") {
            bail!("unknown bundle `{b}` (deb or rpm)");
        }
    }
    Ok(opts)
}

pub fn run_cmd(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let packages = bundle(&opts)?;
    for p in packages {
        println!("{}", p.display());
    }
    Ok(())
}

/// The Tauri CLI from the frontend's npm packages (prebuilt, so nothing is compiled).
fn tauri_cli() -> anyhow::Result<PathBuf> {
    let cli = root().join("ui/node_modules/.bin/tauri");
    if !cli.exists() {
        crate::deps::build_ui()?;
    }
    if !cli.exists() {
        bail!(
            "{} is missing; `npm ci` in ui/ installs @tauri-apps/cli",
            cli.display()
        );
    }
    Ok(cli)
}

fn bundle(opts: &Options) -> anyhow::Result<Vec<PathBuf>> {
    let profile = if opts.debug { "debug" } else { "release" };
    if opts.build {
        step(
            &format!("cargo build ({profile}) tandem-desktop, tandem"),
            || {
                let mut desktop = cargo();
                desktop.args([
                    "build",
                    "--locked",
                    "-p",
                    "tandem-desktop",
                    "--bin",
                    DESKTOP_BIN,
                ]);
                let mut cli = cargo();
                cli.args(["build", "--locked", "-p", "tandem-cli", "--bin", CLI_BIN]);
                if !opts.debug {
                    // What `tauri build` adds: the frontend is served from the embedded assets.
                    desktop.args(["--release", "--features", "tauri/custom-protocol"]);
                    cli.arg("--release");
                }
                run(&mut desktop)?;
                run(&mut cli)
            },
        )?;
    }
    let bin_dir = opts
        .bin_dir
        .clone()
        .unwrap_or_else(|| target_dir().join(profile));
    if !root().join("ui/dist/index.html").exists() {
        crate::deps::build_ui()?;
    }
    let cli = tauri_cli()?;

    // The bundler always reads `<target>/release/<bin>` when not told `--debug`; a private
    // target dir keeps it away from cargo's own files.
    let stage = opts.out.join("stage");
    let stage_bins = stage.join("release");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot clear {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage_bins)?;
    for name in [DESKTOP_BIN, CLI_BIN] {
        let from = bin_dir.join(name);
        let to = stage_bins.join(name);
        std::fs::copy(&from, &to).with_context(|| {
            format!(
                "cannot copy {} (build it first, or drop --no-build)",
                from.display()
            )
        })?;
        strip(&to)?;
    }

    let overlay = serde_json::json!({
        "bundle": {"linux": {
            "deb": {"files": {"/usr/bin/tandem": stage_bins.join(CLI_BIN)}},
            "rpm": {"files": {"/usr/bin/tandem": stage_bins.join(CLI_BIN)}},
        }}
    });
    let overlay_path = stage.join("tauri.bundle.json");
    std::fs::write(&overlay_path, serde_json::to_vec_pretty(&overlay)?)?;

    step(&format!("tauri bundle --bundles {}", opts.bundles), || {
        run(Command::new(&cli)
            .args(["bundle", "--ci", "--no-sign", "--bundles", &opts.bundles])
            .arg("--config")
            .arg(&overlay_path)
            .current_dir(root().join("src-tauri"))
            .env("CARGO_TARGET_DIR", &stage)
            .env("CARGO_BUILD_TARGET_DIR", &stage))
    })?;

    let mut packages = Vec::new();
    for kind in opts.bundles.split(',') {
        let dir = stage_bins.join("bundle").join(kind);
        for entry in std::fs::read_dir(&dir)
            .with_context(|| format!("the bundler wrote nothing to {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == kind) {
                let file_name = path.file_name().context("no file name")?;
                let to = opts.out.join(file_name);
                if kind == "deb" {
                    // xz for what ships; gzip at level 1 for test packages, where xz over
                    // the debug binaries costs minutes on the two-core machines.
                    let compression: &[&str] = if opts.debug {
                        &["-Zgzip", "-z1"]
                    } else {
                        &["-Zxz"]
                    };
                    let work = stage.join("deb-root");
                    finish_deb(&path, &to, &work, &stage_bins, compression)?;
                } else {
                    std::fs::copy(&path, &to)?;
                }
                packages.push(to);
            }
        }
    }
    if packages.is_empty() {
        bail!("the bundler produced no package");
    }
    Ok(packages)
}

/// Strips symbols (lintian and package size want it; the release profile already does).
fn strip(path: &Path) -> anyhow::Result<()> {
    if !have_program("strip") {
        bail!("`strip` (binutils) is missing");
    }
    run(Command::new("strip")
        .args([
            "--strip-unneeded",
            "--remove-section=.comment",
            "--remove-section=.note",
        ])
        .arg(path))
}

/// The maintainer the Debian package names (Tauri writes the Cargo authors, without the
/// address Debian policy asks for).
const DEB_MAINTAINER: &str = "The Tandem developers <tandem@example.invalid>";

/// Completes what Tauri's .deb lacks for Debian policy (and lintian): files under `/etc`
/// marked as conffiles, so a local edit survives upgrades; the changelog in
/// `/usr/share/doc/<package>`; a maintainer with an address; the libc dependency, read from
/// the binaries' symbol versions since Tauri does not run dpkg-shlibdeps.
fn finish_deb(
    deb: &Path,
    to: &Path,
    work: &Path,
    bins: &Path,
    compression: &[&str],
) -> anyhow::Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(work))?;
    let control_path = work.join("DEBIAN/control");
    let control = std::fs::read_to_string(&control_path)?;
    let package = control
        .lines()
        .find_map(|l| l.strip_prefix("Package: "))
        .context("the control file names no package")?
        .trim()
        .to_owned();

    let glibc = [DESKTOP_BIN, CLI_BIN]
        .iter()
        .map(|b| max_glibc(&bins.join(b)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .max();
    let mut fixed = String::new();
    for line in control.lines() {
        if line.starts_with("Maintainer:") {
            fixed.push_str(&format!("Maintainer: {DEB_MAINTAINER}\n"));
        } else if let Some(deps) = line.strip_prefix("Depends: ") {
            let mut seen = Vec::new();
            for d in deps.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                if !seen.contains(&d) {
                    seen.push(d);
                }
            }
            let libc = glibc.map(|(a, b)| format!("libc6 (>= {a}.{b})"));
            let all: Vec<&str> = libc.as_deref().into_iter().chain(seen).collect();
            fixed.push_str(&format!("Depends: {}\n", all.join(", ")));
        } else {
            fixed.push_str(line);
            fixed.push('\n');
        }
    }
    std::fs::write(&control_path, fixed)?;

    // Tauri names the doc dir after the product ("Tandem"); Debian wants the package name.
    let doc = work.join("usr/share/doc");
    let product_doc = std::fs::read_dir(&doc)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n != package.as_str()));
    if let Some(product_doc) = product_doc {
        let package_doc = doc.join(&package);
        std::fs::create_dir_all(&package_doc)?;
        for entry in std::fs::read_dir(&product_doc)? {
            let entry = entry?;
            std::fs::rename(entry.path(), package_doc.join(entry.file_name()))?;
        }
        std::fs::remove_dir(&product_doc)?;
    }

    let mut conffiles = Vec::new();
    let mut md5sums = String::new();
    let mut files = Vec::new();
    collect_files(work, work, &mut files)?;
    files.sort();
    for rel in &files {
        if rel.starts_with("DEBIAN/") {
            continue;
        }
        if rel.starts_with("etc/") {
            conffiles.push(format!("/{rel}\n"));
        }
        let sum = crate::util::output(Command::new("md5sum").arg(work.join(rel)))?;
        let hash = sum.split_whitespace().next().unwrap_or_default();
        md5sums.push_str(&format!("{hash}  {rel}\n"));
    }
    std::fs::write(work.join("DEBIAN/conffiles"), conffiles.concat())?;
    std::fs::write(work.join("DEBIAN/md5sums"), md5sums)?;
    run(Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .args(compression)
        .arg("--build")
        .arg(work)
        .arg(to))?;
    std::fs::remove_dir_all(work)?;
    Ok(())
}

/// Every regular file under `dir`, as paths relative to `base` with `/` separators.
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(base, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(base)?.to_string_lossy().into_owned();
            out.push(rel);
        }
    }
    Ok(())
}

/// The newest glibc symbol version a binary needs, as (major, minor).
fn max_glibc(bin: &Path) -> anyhow::Result<Option<(u32, u32)>> {
    let dump = crate::util::output(Command::new("objdump").arg("-T").arg(bin))?;
    Ok(dump
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
            Some((major, minor))
        })
        .max())
}
