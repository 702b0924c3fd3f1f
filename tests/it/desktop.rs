//! The desktop app under Xvfb, in a private session with a real tray host (trayer), D-Bus,
//! gnome-keyring and dunst: the tray icon appears, a second launch opens the window in the
//! running instance, and WebDriver (tauri-driver + WebKitWebDriver) reads the results list.
//!
//! Screenshots land in `test-output/desktop/` at the workspace root.
//!
//! Each test has its own session bus, and the single-instance lock of `tandem-desktop` lives
//! on the session bus, so no other running Tandem (the developer's own, or a parallel test)
//! can take a launch over.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tandem_e2e::desktop_session::{DesktopSession, Rect, SessionOptions, XWindow};
use tandem_e2e::procs::{bin_dir, wait_for, Server, Tandem};
use tandem_e2e::webdriver::WebDriver;

use crate::desktop_reminders::plain;

/// Generous: a cold WebKit start on a busy two-core machine takes seconds.
pub(crate) const APP_READY: Duration = Duration::from_secs(60);

/// The built `tandem-desktop`: `TANDEM_DESKTOP_BIN`, else next to this test's binaries, else
/// in `$CARGO_TARGET_DIR/debug`. It is not a dependency of this crate, so it must be built
/// first (after the UI, which it embeds).
pub(crate) fn desktop_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("TANDEM_DESKTOP_BIN") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(bin_dir().join("tandem-desktop"));
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug/tandem-desktop"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "tandem-desktop is not built (looked at {candidates:?}); build it with \
             `(cd ui && npm ci && npm run build) && cargo build -p tandem-desktop`, \
             or point TANDEM_DESKTOP_BIN at it"
            )
        })
}

/// `tauri-driver`: `TAURI_DRIVER_BIN`, else on PATH, else in cargo's bin dir.
pub(crate) fn tauri_driver_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TAURI_DRIVER_BIN") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("tauri-driver"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let in_cargo = cargo_home.map(|c| c.join("bin/tauri-driver"));
    on_path.into_iter().chain(in_cargo).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("tauri-driver is not installed; run `cargo install tauri-driver --locked --version ^2`")
    })
}

/// `test-output/desktop/` at the workspace root.
pub(crate) fn output_dir() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-output/desktop");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// The app's own settings: an isolated data dir and a file credential store.
pub(crate) fn app_env(session: &DesktopSession) -> Vec<(&'static str, String)> {
    vec![
        (
            "TANDEM_DATA_DIR",
            session.dir().join("tandem").display().to_string(),
        ),
        ("TANDEM_CREDENTIAL_STORE", "file".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

/// The number of distinct colours in a PNG: a window that has painted text has many.
pub(crate) fn colours(png: &Path) -> anyhow::Result<u64> {
    let out = Command::new("identify")
        .args(["-format", "%k"])
        .arg(png)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("identify printed `{text}` for {}", png.display()))
}

/// Waits until the screen area has painted (more than a handful of colours) and then stayed
/// the same for a moment, so the picture shows the state rather than a first blank or
/// "Loading…" frame; then leaves it at `path`.
pub(crate) fn screenshot_settled(
    session: &DesktopSession,
    rect: Rect,
    path: &Path,
) -> anyhow::Result<()> {
    const QUIET: Duration = Duration::from_millis(700);
    let mut last: Option<(Vec<u8>, Instant)> = None;
    wait_for(APP_READY, &format!("{} to settle", path.display()), || {
        session.screenshot_rect(rect, path).ok()?;
        if colours(path).ok()? <= 16 {
            return None;
        }
        let pixels = std::fs::read(path).ok()?;
        match &last {
            Some((previous, since)) if *previous == pixels => {
                (since.elapsed() >= QUIET).then_some(())
            }
            _ => {
                last = Some((pixels, Instant::now()));
                None
            }
        }
    })
}

/// Saves a 4× enlarged copy of a small screenshot, pixels kept sharp.
pub(crate) fn enlarge(small: &Path, large: &Path) -> anyhow::Result<()> {
    let status = Command::new("convert")
        .arg(small)
        .args(["-filter", "point", "-resize", "400%"])
        .arg(large)
        .status()?;
    if !status.success() {
        bail!("convert could not enlarge {}", small.display());
    }
    Ok(())
}

pub(crate) fn grow(rect: Rect, by: i32) -> Rect {
    Rect {
        x: (rect.x - by).max(0),
        y: (rect.y - by).max(0),
        width: rect.width + 2 * by as u32,
        height: rect.height + 2 * by as u32,
    }
}

pub(crate) fn tandem_tray_icon(session: &DesktopSession) -> Option<XWindow> {
    session.tray_icons().ok()?.into_iter().find(|w| {
        w.name.as_deref() == Some("tandem-desktop") || w.class.iter().any(|c| c.contains("tandem"))
    })
}

/// Clicks the tray icon until its menu is on screen, and returns the menu. A click that
/// lands while the panel is still settling (a loaded machine, another session starting
/// beside this one) opens nothing, so the icon is clicked again after a few quiet seconds,
/// within `APP_READY` in all.
pub(crate) fn open_tray_menu(session: &DesktopSession) -> XWindow {
    const PER_CLICK: Duration = Duration::from_secs(5);
    let started = Instant::now();
    loop {
        let icon = wait_for(APP_READY, "the tray icon", || tandem_tray_icon(session)).unwrap();
        let (cx, cy) = (
            icon.x + icon.width as i32 / 2,
            icon.y + icon.height as i32 / 2,
        );
        let click = session
            .command("xdotool")
            .args(["mousemove", &cx.to_string(), &cy.to_string(), "click", "1"])
            .status()
            .unwrap();
        assert!(click.success());
        let menu = wait_for(PER_CLICK, "the tray menu", || {
            session.windows().ok()?.into_iter().find(|w| {
                w.depth == 1
                    && w.name.as_deref() == Some("tandem-desktop")
                    && w.width > 100
                    && w.height > 60
                    && w.x >= 0
            })
        });
        match menu {
            Ok(menu) => return menu,
            Err(e) if started.elapsed() > APP_READY => panic!(
                "{e:#}\n{}\napp log:\n{}",
                session.x_tree().unwrap_or_default(),
                session.log("tandem-desktop")
            ),
            Err(_) => {}
        }
    }
}

#[test]
fn the_tray_icon_appears_and_a_second_launch_opens_the_window() {
    let out = output_dir().unwrap();
    let mut session = DesktopSession::start().unwrap();
    let bin = desktop_bin();

    let mut app = Command::new(&bin);
    app.envs(app_env(&session));
    let app = session.spawn("tandem-desktop", app).unwrap();

    wait_for(APP_READY, "the Tandem icon in the tray", || {
        tandem_tray_icon(&session)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}\napp log:\n{}",
            session.x_tree().unwrap_or_default(),
            session.log("tandem-desktop")
        )
    });
    assert!(
        session.windows_named("Tandem").unwrap().is_empty(),
        "a window exists before anyone asked for one"
    );

    // The pictures are worth more with results in them: wait for the first check run, as
    // the agent's store (read by `tandem status`) records it.
    let cli = Tandem::new(&session.dir().join("tandem")).env("TANDEM_CREDENTIAL_STORE", "file");
    wait_for(APP_READY, "the first check run", || {
        let status = cli.status_json().ok()?;
        (!status["last_check_at"].is_null()).then_some(())
    })
    .unwrap();

    // The tray: the panel and a little of the screen around it, and an enlarged copy.
    let panel = session.tray_panel().unwrap().expect("trayer's panel");
    screenshot_settled(&session, grow(panel.rect(), 8), &out.join("tray.png")).unwrap();
    enlarge(&out.join("tray.png"), &out.join("tray@4x.png")).unwrap();

    // The menu opens on a click on the icon.
    let menu = open_tray_menu(&session);
    let menu_area = Rect {
        x: menu.x.min(panel.x) - 8,
        y: menu.y - 8,
        width: (panel.x + panel.width as i32).max(menu.x + menu.width as i32) as u32
            - (menu.x.min(panel.x) - 8) as u32,
        height: (panel.y + panel.height as i32) as u32 - (menu.y - 8) as u32,
    };
    screenshot_settled(&session, menu_area, &out.join("tray-menu.png")).unwrap();
    assert!(session
        .command("xdotool")
        .args(["key", "Escape"])
        .status()
        .unwrap()
        .success());

    // A second launch with --open hands over to the running instance and exits at once.
    let second = session
        .command(&bin)
        .arg("--open")
        .envs(app_env(&session))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "second launch failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );

    let window = wait_for(APP_READY, "the Tandem window", || {
        session.windows_named("Tandem").ok()?.into_iter().next()
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    screenshot_settled(&session, window.rect(), &out.join("window.png")).unwrap();
    session.screenshot(&out.join("screen.png")).unwrap();

    assert!(
        session.is_running(app),
        "the first instance exited:\n{}",
        session.log("tandem-desktop")
    );
    assert_eq!(
        session.windows_named("Tandem").unwrap().len(),
        1,
        "the second launch made its own window"
    );

    // Ctrl+W hides the window for the grace (45 s by default); opened again within it, the
    // same window comes back at once, with its web process and page as they were.
    let closed = session
        .command("xdotool")
        .args([
            "windowfocus",
            "--sync",
            &window.id,
            "mousemove",
            "--window",
            &window.id,
            "20",
            "300",
            "click",
            "1",
            "key",
            "--clearmodifiers",
            "ctrl+w",
        ])
        .status()
        .unwrap();
    assert!(closed.success());
    wait_for(APP_READY, "the window hidden for the grace", || {
        plain(&session.log("tandem-desktop"))
            .contains("window hidden; destroyed after the grace")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let again = session
        .command(&bin)
        .arg("--open")
        .envs(app_env(&session))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(again.status.success());
    wait_for(APP_READY, "the kept window shown again", || {
        plain(&session.log("tandem-desktop"))
            .contains("window shown again within the grace")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\napp log:\n{}", session.log("tandem-desktop")));
    let log = plain(&session.log("tandem-desktop"));
    assert_eq!(
        log.matches("window created").count(),
        1,
        "a second window was created instead of showing the kept one:\n{log}"
    );
    let shown = wait_for(APP_READY, "the kept window painted", || {
        let window = session.windows_named("Tandem").ok()?.into_iter().next()?;
        let png = out.join("window-again.png");
        session.screenshot_rect(window.rect(), &png).ok()?;
        (colours(&png).ok()? > 16).then_some(window)
    })
    .unwrap();
    assert_eq!(shown.id, window.id, "not the same window");
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts tauri-driver in the session and a WebDriver session on `tandem-desktop --open`:
/// WebDriver can only drive a webview that exists when the session starts.
pub(crate) fn webdriver(session: &mut DesktopSession, env: &[(&str, String)]) -> WebDriver {
    let (port, native_port) = (free_port().unwrap(), free_port().unwrap());
    let mut driver = Command::new(tauri_driver_bin());
    driver
        .args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        // tauri-driver passes its environment through WebKitWebDriver to the app.
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    if Path::new("/usr/bin/WebKitWebDriver").is_file() {
        driver.args(["--native-driver", "/usr/bin/WebKitWebDriver"]);
    }
    session.spawn("tauri-driver", driver).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    wait_for(APP_READY, "tauri-driver to answer", || {
        probe
            .get(format!("{base}/status"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", session.log("tauri-driver")));
    let capabilities = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
        "application": desktop_bin(), "args": ["--open"]
    }}}});
    WebDriver::new_session(&base, capabilities)
        .unwrap_or_else(|e| panic!("{e:#}\ndriver log:\n{}", session.log("tauri-driver")))
}

/// The fill colours of the tray icons drawn for light panels (icons/src/tray/*-on-light.svg).
const TRAY_FILLS: [(&str, &str); 3] = [
    ("ok", "#1B7A3A"),
    ("attention", "#B25F00"),
    ("urgent", "#C0262D"),
];

/// Which tray state's fill colour a screenshot shows, if any.
fn tray_fill(png: &Path) -> Option<&'static str> {
    let out = Command::new("convert")
        .arg(png)
        .args(["-format", "%c", "histogram:info:-"])
        .output()
        .ok()?;
    let histogram = String::from_utf8_lossy(&out.stdout).to_uppercase();
    TRAY_FILLS
        .iter()
        .find(|(_, hex)| histogram.contains(hex))
        .map(|(state, _)| *state)
}

#[test]
fn once_enrolled_the_tray_icon_takes_the_colour_of_the_results() {
    let out = output_dir().unwrap();
    let server = Server::start_sqlite().unwrap();
    let secret = server
        .admin_secret(&["enroll-secret", "create", "--group", "default"])
        .unwrap();
    let mut session = DesktopSession::with(SessionOptions {
        keyring: false,
        ..SessionOptions::default()
    })
    .unwrap();

    // Enrol with the CLI into the data dir the desktop app then opens.
    let data = session.dir().join("tandem");
    Tandem::new(&data)
        .env("TANDEM_CREDENTIAL_STORE", "file")
        .run_ok(&["enroll", "--server", &server.url, "--secret", &secret])
        .unwrap();

    let mut app = Command::new(desktop_bin());
    app.envs(app_env(&session));
    session.spawn("tandem-desktop", app).unwrap();
    wait_for(APP_READY, "the Tandem icon in the tray", || {
        tandem_tray_icon(&session)
    })
    .unwrap();

    // Offline (grey) until the first results are in; then green, amber or red. The icon is
    // looked up again each time: on a loaded machine trayer may still be laying the panel
    // out after the icon first appeared, and a stale rectangle shows only the panel.
    let shot = out.join("tray-enrolled.png");
    let state = wait_for(
        APP_READY * 2,
        "the tray icon to leave the offline state",
        || {
            let icon = tandem_tray_icon(&session)?;
            session.screenshot_rect(icon.rect(), &shot).ok()?;
            tray_fill(&shot)
        },
    )
    .unwrap_or_else(|e| {
        let status = Tandem::new(&data)
            .env("TANDEM_CREDENTIAL_STORE", "file")
            .run_ok(&["status", "--json"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("{e:#}"));
        panic!(
            "{e:#}\nagent status:\n{status}\napp log:\n{}",
            session.log("tandem-desktop")
        )
    });
    let panel = session.tray_panel().unwrap().expect("trayer's panel");
    screenshot_settled(&session, grow(panel.rect(), 8), &shot).unwrap();
    enlarge(&shot, &out.join("tray-enrolled@4x.png")).unwrap();
    eprintln!("tray icon once enrolled: {state}");
}

/// Runs a command to completion, killing it after `timeout` (a keyring prompt would hang).
pub(crate) fn output_within(
    cmd: &mut Command,
    timeout: Duration,
) -> anyhow::Result<std::process::Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + timeout;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            bail!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

#[test]
fn the_session_has_an_unlocked_keyring_and_a_notification_daemon() {
    let session = DesktopSession::with(SessionOptions {
        tray: false,
        ..SessionOptions::default()
    })
    .unwrap();
    let limit = Duration::from_secs(10);

    // Store and read back a secret through the Secret Service, with no prompt.
    let mut store = session.command("secret-tool");
    store
        .args([
            "store",
            "--label=tandem e2e",
            "service",
            "tandem-e2e",
            "account",
            "probe",
        ])
        .stdin(Stdio::piped());
    let mut child = store
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"s3cret").unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "secret-tool store hung: is the keyring locked?\n{}",
            session.log("keyring")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored = child.wait_with_output().unwrap();
    assert!(
        stored.status.success(),
        "secret-tool store: {}",
        String::from_utf8_lossy(&stored.stderr)
    );
    let lookup = output_within(
        session.command("secret-tool").args([
            "lookup",
            "service",
            "tandem-e2e",
            "account",
            "probe",
        ]),
        limit,
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&lookup.stdout), "s3cret");

    // A notification reaches dunst.
    let sent = output_within(
        session.command("notify-send").args(["Tandem", "e2e probe"]),
        limit,
    )
    .unwrap();
    assert!(
        sent.status.success(),
        "notify-send: {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    wait_for(limit, "dunst to show the notification", || {
        let shown = output_within(
            session.command("dunstctl").args(["count", "displayed"]),
            limit,
        )
        .ok()?;
        let shown: u32 = String::from_utf8_lossy(&shown.stdout).trim().parse().ok()?;
        (shown >= 1).then_some(())
    })
    .unwrap();
}
