//! Installs what the build and the tests need, when it is missing: Debian packages, the
//! frontend's npm packages, tauri-driver.

use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{have_program, output, root, run, step};

/// Packages to build the workspace (Tauri's WebKitGTK and tray libraries).
pub const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "libssl-dev",
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
];

/// Packages the tests drive for real: X server, tray host, D-Bus, keyring, notification
/// daemon, WebKit's WebDriver, PostgreSQL, screenshots.
pub const TEST_PACKAGES: &[&str] = &[
    "xvfb",
    "xauth",
    "x11-utils",
    "xdotool",
    "imagemagick",
    "trayer",
    "dbus",
    "dbus-x11",
    "dunst",
    "libnotify-bin",
    "gnome-keyring",
    "libsecret-tools",
    "webkit2gtk-driver",
    // The IT console's browser tests: headless Chromium and its WebDriver.
    "chromium",
    "chromium-driver",
    "postgresql",
    "sqlite3",
    "at-spi2-core",
    // Real probes in the check tests: nftables in network namespaces, GNOME settings in a
    // private D-Bus session.
    "nftables",
    "iproute2",
    "libglib2.0-bin",
    "gsettings-desktop-schemas",
    "dconf-gsettings-backend",
    "dconf-service",
    "dbus-daemon",
    // The agent's user-context probe: X11 idle time from the screensaver extension.
    "xprintidle",
    // The Linux packages: Debian's package checker, the desktop-entry validator, rpm to
    // read the .rpm.
    "lintian",
    "desktop-file-utils",
    "rpm",
    // A clean Debian root to install the .deb into, kept between runs as a zstd tarball.
    "debootstrap",
    "zstd",
];

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// Installs the Debian packages that are missing; explains what to run when not root.
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have_program("apt-get") {
        bail!("missing system packages {missing:?}, and apt-get is not available to install them");
    }
    if !is_root() {
        bail!(
            "missing system packages; install them with:\n  sudo apt-get update && sudo apt-get install -y {}",
            missing.join(" ")
        );
    }
    step(&format!("apt-get install {}", missing.join(" ")), || {
        run(Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })
}

/// tauri-driver, the WebDriver bridge for the desktop tests.
pub fn ensure_tauri_driver() -> anyhow::Result<()> {
    if have_program("tauri-driver") {
        return Ok(());
    }
    step("cargo install tauri-driver", || {
        run(crate::util::cargo().args(["install", "tauri-driver", "--locked", "--version", "^2"]))
    })
}

/// The frontend's packages and its production build in `ui/dist` (Tauri embeds it).
pub fn build_ui() -> anyhow::Result<()> {
    let ui = root().join("ui");
    if !ui.join("package.json").exists() {
        bail!("ui/package.json is missing");
    }
    step("ui: npm ci && npm run build", || {
        let lock = ui.join("package-lock.json");
        let installed = ui.join("node_modules/.package-lock.json");
        let stale = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
            (Ok(l), Ok(i)) => l.modified().ok() > i.modified().ok(),
            _ => true,
        };
        if stale {
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&ui))
            .context("installing the frontend's npm packages")?;
        }
        run(Command::new("npm").args(["run", "build"]).current_dir(&ui))
            .context("building the frontend")
    })
}

/// Node.js and npm for the frontend build. Some machines carry a newer Node.js that bundles
/// npm; Debian's separate `npm` package would conflict with it, so only absent programs
/// trigger an install.
pub fn ensure_node() -> anyhow::Result<()> {
    if have_program("node") && have_program("npm") {
        return Ok(());
    }
    ensure_packages(&["nodejs", "npm"])
}

pub fn ensure_all() -> anyhow::Result<()> {
    let all: Vec<&str> = BUILD_PACKAGES
        .iter()
        .chain(TEST_PACKAGES)
        .copied()
        .collect();
    ensure_packages(&all)?;
    ensure_node()?;
    ensure_tauri_driver()?;
    build_ui()
}
