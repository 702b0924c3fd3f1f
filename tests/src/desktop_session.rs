//! A private desktop session for one test: Xvfb on a free display, a D-Bus session bus, an
//! unlocked gnome-keyring, the dunst notification daemon and the trayer tray host, all in a
//! fresh HOME and XDG directories, all stopped when the session is dropped.
//!
//! Nothing here is Tandem-specific: the desktop tests start `tandem-desktop` in it, the
//! keyring tests store and read secrets through it. Every step waits on a readiness
//! condition (the display number Xvfb writes once it accepts clients, the bus address, a name
//! owned on the bus, a window on the screen), never on a fixed sleep.
//!
//! # Platform behaviour
//! Linux with X11 tools only: `Xvfb`, `dbus-daemon`, `dbus-send`, `gnome-keyring-daemon`,
//! `dunst`, `trayer`, `xwininfo` and ImageMagick's `import`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::procs::wait_for;

/// How long a session service gets to become ready.
const READY: Duration = Duration::from_secs(20);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// The keyring password the session unlocks its fresh login keyring with.
pub const KEYRING_PASSWORD: &str = "tandem-e2e";

/// What a session runs besides the X server and the bus (both always run).
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Screen size in pixels.
    pub screen: (u32, u32),
    /// An unlocked gnome-keyring serving the Secret Service.
    pub keyring: bool,
    /// dunst serving org.freedesktop.Notifications.
    pub notifications: bool,
    /// trayer as the XEmbed system tray host, docked along the bottom edge.
    pub tray: bool,
    /// The tray panel's colour (`0xRRGGBB`): light by default, dark to see the icons drawn
    /// for dark panels.
    pub tray_colour: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            screen: (1280, 800),
            keyring: true,
            notifications: true,
            tray: true,
            tray_colour: 0xe8e8e8,
        }
    }
}

/// One X11 window as `xwininfo -root -tree` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XWindow {
    /// The window id, as X prints it (`0x600007`).
    pub id: String,
    /// WM_NAME, when the window has one.
    pub name: Option<String>,
    /// WM_CLASS: instance and class.
    pub class: Vec<String>,
    pub width: u32,
    pub height: u32,
    /// Position relative to the root window.
    pub x: i32,
    pub y: i32,
    /// Nesting below the root window: 1 for top-level windows.
    pub depth: usize,
    /// The ids of the windows this one is nested in, outermost first.
    pub ancestors: Vec<String>,
}

/// A rectangle on the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl XWindow {
    pub fn rect(&self) -> Rect {
        Rect {
            x: self.x,
            y: self.y,
            width: self.width,
            height: self.height,
        }
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.class.iter().any(|c| c == class)
    }
}

/// A process the session started, stopped with its whole process group on drop.
struct Daemon {
    name: String,
    child: Child,
}

impl Daemon {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Each daemon leads its own process group, so its helpers (a WebDriver's browser,
        // a bus's activated services) go with it.
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = killpg(group, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "desktop session: {} ignored SIGTERM for {STOP_GRACE:?}; killing it",
            self.name
        );
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A running private desktop session. Dropping it stops every process it started.
pub struct DesktopSession {
    dir: tempfile::TempDir,
    display: String,
    bus_address: String,
    env: Vec<(String, OsString)>,
    daemons: Vec<Daemon>,
}

impl DesktopSession {
    /// Starts a session with everything: X, bus, keyring, notifications and a tray host.
    pub fn start() -> anyhow::Result<DesktopSession> {
        DesktopSession::with(SessionOptions::default())
    }

    /// Starts a session with the given services.
    pub fn with(options: SessionOptions) -> anyhow::Result<DesktopSession> {
        let dir = tempfile::Builder::new()
            .prefix("tandem-desktop-session-")
            .tempdir()?;
        for sub in [
            "home", "data", "config", "cache", "state", "runtime", "logs",
        ] {
            fs::create_dir_all(dir.path().join(sub))?;
        }
        // The XDG base directory spec requires the runtime dir to be private.
        fs::set_permissions(
            dir.path().join("runtime"),
            fs::Permissions::from_mode(0o700),
        )?;

        let mut session = DesktopSession {
            dir,
            display: String::new(),
            bus_address: String::new(),
            env: Vec::new(),
            daemons: Vec::new(),
        };
        session.start_x(options.screen)?;
        session.start_bus()?;
        session.env = session.build_env();
        if options.keyring {
            session.start_keyring()?;
        }
        if options.notifications {
            session.start_notifications()?;
        }
        if options.tray {
            session.start_tray(options.tray_colour)?;
        }
        Ok(session)
    }

    /// The X display, such as `:99`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The private session bus's address.
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// The session's HOME.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A scratch directory inside the session, removed with it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the session's daemons write their output.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// The output of a process started in this session, by name.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.log_dir().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The variables a child needs to live in this session: DISPLAY,
    /// DBUS_SESSION_BUS_ADDRESS, HOME and the XDG directories, and a few that keep GTK quiet.
    pub fn env(&self) -> &[(String, OsString)] {
        &self.env
    }

    /// The variables of the user's own desktop that must not leak into the session.
    pub const FOREIGN_ENV: [&'static str; 9] = [
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "SESSION_MANAGER",
        "GNOME_KEYRING_CONTROL",
        "SSH_AUTH_SOCK",
        "XDG_SESSION_ID",
        "XDG_SESSION_TYPE",
        "XDG_CURRENT_DESKTOP",
        "DESKTOP_SESSION",
    ];

    /// A command that runs inside this session.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.apply_env(&mut cmd);
        cmd
    }

    /// Puts the session's environment on a command built elsewhere.
    pub fn apply_env(&self, cmd: &mut Command) {
        for var in Self::FOREIGN_ENV {
            cmd.env_remove(var);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
    }

    /// Starts a long-running process in the session, stopped (with its process group) when
    /// the session is dropped. Its stdout and stderr go to `log(name)`. Returns its pid.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<u32> {
        self.apply_env(&mut cmd);
        let log = self.log_file(name)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.spawn_daemon(name, cmd).map(|d| d.child.id())
    }

    /// Stops a process started with [`spawn`](Self::spawn) now, with its process group.
    pub fn stop(&mut self, pid: u32) {
        if let Some(pos) = self.daemons.iter().position(|d| d.child.id() == pid) {
            let mut daemon = self.daemons.remove(pos);
            daemon.stop();
        }
    }

    /// Whether a process started with [`spawn`](Self::spawn) is still running.
    pub fn is_running(&mut self, pid: u32) -> bool {
        self.daemons
            .iter_mut()
            .find(|d| d.child.id() == pid)
            .is_some_and(|d| matches!(d.child.try_wait(), Ok(None)))
    }

    /// Whether a well-known name is owned on the session bus.
    pub fn bus_has_name(&self, name: &str) -> anyhow::Result<bool> {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply=literal",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
            ])
            .arg(format!("string:{name}"))
            .output()
            .context("cannot run dbus-send")?;
        if !out.status.success() {
            bail!("dbus-send failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).contains("true"))
    }

    /// Waits until a name is owned on the session bus.
    pub fn wait_for_bus_name(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        wait_for(timeout, &format!("{name} on the session bus"), || {
            self.bus_has_name(name)
                .ok()
                .filter(|owned| *owned)
                .map(|_| ())
        })
    }

    /// Every window on the display, from `xwininfo -root -tree`.
    pub fn windows(&self) -> anyhow::Result<Vec<XWindow>> {
        Ok(parse_tree(&self.x_tree()?))
    }

    /// The raw `xwininfo -root -tree` listing.
    pub fn x_tree(&self) -> anyhow::Result<String> {
        let out = self
            .command("xwininfo")
            .args(["-root", "-tree"])
            .output()
            .context("cannot run xwininfo")?;
        if !out.status.success() {
            bail!("xwininfo failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The tray host's panel window (trayer's window of class `panel`).
    pub fn tray_panel(&self) -> anyhow::Result<Option<XWindow>> {
        Ok(self
            .windows()?
            .into_iter()
            .find(|w| w.name.as_deref() == Some("panel") && w.has_class("trayer")))
    }

    /// The named windows embedded in the tray host: one per tray icon.
    pub fn tray_icons(&self) -> anyhow::Result<Vec<XWindow>> {
        let windows = self.windows()?;
        let Some(panel) = windows
            .iter()
            .find(|w| w.name.as_deref() == Some("panel") && w.has_class("trayer"))
        else {
            return Ok(Vec::new());
        };
        Ok(windows
            .iter()
            .filter(|w| {
                w.ancestors.contains(&panel.id) && w.name.is_some() && w.width > 1 && w.height > 1
            })
            .cloned()
            .collect())
    }

    /// Top-level windows with this WM_NAME.
    pub fn windows_named(&self, name: &str) -> anyhow::Result<Vec<XWindow>> {
        Ok(self
            .windows()?
            .into_iter()
            .filter(|w| w.depth == 1 && w.name.as_deref() == Some(name))
            .collect())
    }

    /// Saves a PNG of the whole screen.
    pub fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        self.import(&["-window", "root"], path)
    }

    /// Saves a PNG of part of the screen.
    pub fn screenshot_rect(&self, rect: Rect, path: &Path) -> anyhow::Result<()> {
        let crop = format!(
            "{}x{}+{}+{}",
            rect.width,
            rect.height,
            rect.x.max(0),
            rect.y.max(0)
        );
        self.import(&["-window", "root", "-crop", &crop, "+repage"], path)
    }

    /// Saves a PNG of one window (a top-level window with its children).
    pub fn screenshot_window(&self, window: &XWindow, path: &Path) -> anyhow::Result<()> {
        self.screenshot_rect(window.rect(), path)
    }

    fn import(&self, args: &[&str], path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let out = self
            .command("import")
            .args(args)
            .arg(path)
            .output()
            .context("cannot run ImageMagick's import")?;
        if !out.status.success() {
            bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn log_file(&self, name: &str) -> anyhow::Result<File> {
        let path = self.log_dir().join(format!("{name}.log"));
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))
    }

    fn spawn_daemon(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<&mut Daemon> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        self.daemons.push(Daemon {
            name: name.to_owned(),
            child,
        });
        let last = self.daemons.len() - 1;
        Ok(&mut self.daemons[last])
    }

    /// Starts a daemon that reports readiness by printing one line on stdout, and returns
    /// that line. Its stderr goes to its log.
    fn spawn_reporting(&mut self, name: &str, mut cmd: Command) -> anyhow::Result<String> {
        let log = self.log_file(name)?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let daemon = self.spawn_daemon(name, cmd)?;
        let stdout = daemon.child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        // A thread, so that a daemon that never prints cannot hang the test past READY.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line.trim().to_owned());
            let _ = tx.send(read);
            // Keep draining, so the daemon never blocks or dies on a full or closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        match rx.recv_timeout(READY) {
            Ok(Ok(line)) if !line.is_empty() => Ok(line),
            Ok(_) => bail!("{name} exited before it was ready:\n{}", self.log(name)),
            Err(_) => bail!("{name} was not ready within {READY:?}:\n{}", self.log(name)),
        }
    }

    fn start_x(&mut self, (width, height): (u32, u32)) -> anyhow::Result<()> {
        // `-displayfd 1`: Xvfb picks a free display and writes its number to stdout once it
        // accepts connections, which is the readiness signal.
        let mut cmd = Command::new("Xvfb");
        cmd.args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-noreset",
            "-screen",
            "0",
        ])
        .arg(format!("{width}x{height}x24"));
        let number = self.spawn_reporting("xvfb", cmd)?;
        number
            .parse::<u32>()
            .with_context(|| format!("Xvfb printed `{number}` as its display"))?;
        self.display = format!(":{number}");
        Ok(())
    }

    fn start_bus(&mut self) -> anyhow::Result<()> {
        let socket_dir = self.dir.path().join("runtime");
        let mut cmd = Command::new("dbus-daemon");
        cmd.args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:dir={}", socket_dir.display()))
            // Services the bus activates (dconf, the a11y bus) must see the session too.
            .env("DISPLAY", &self.display)
            .env("HOME", self.home())
            // dconf-service writes where its clients read: the session's config dir.
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_RUNTIME_DIR", &socket_dir);
        self.bus_address = self.spawn_reporting("dbus", cmd)?;
        Ok(())
    }

    fn build_env(&self) -> Vec<(String, OsString)> {
        let root = self.dir.path();
        vec![
            ("DISPLAY".into(), self.display.clone().into()),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                self.bus_address.clone().into(),
            ),
            ("HOME".into(), root.join("home").into()),
            ("XDG_DATA_HOME".into(), root.join("data").into()),
            ("XDG_CONFIG_HOME".into(), root.join("config").into()),
            ("XDG_CACHE_HOME".into(), root.join("cache").into()),
            ("XDG_STATE_HOME".into(), root.join("state").into()),
            ("XDG_RUNTIME_DIR".into(), root.join("runtime").into()),
            // X11 only: the session has no Wayland compositor.
            ("GDK_BACKEND".into(), "x11".into()),
            // No accessibility bus: nothing in the session reads it, and it outlives tests.
            ("NO_AT_BRIDGE".into(), "1".into()),
        ]
    }

    fn start_keyring(&mut self) -> anyhow::Result<()> {
        // A fresh XDG_DATA_HOME holds no keyring, so `--unlock` creates the login keyring
        // with the password from stdin and no prompt can appear.
        let mut cmd = self.command("gnome-keyring-daemon");
        cmd.args(["--foreground", "--unlock", "--components=secrets"]);
        let log = self.log_file("keyring")?;
        cmd.stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        let daemon = self.spawn_daemon("keyring", cmd)?;
        let mut stdin = daemon.child.stdin.take().context("no stdin")?;
        stdin.write_all(KEYRING_PASSWORD.as_bytes())?;
        drop(stdin);
        self.wait_for_bus_name("org.freedesktop.secrets", READY)
            .with_context(|| {
                format!(
                    "gnome-keyring-daemon did not start:\n{}",
                    self.log("keyring")
                )
            })
    }

    fn start_notifications(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("dunst");
        // An empty config file: dunst's built-in defaults, not the user's.
        let config = self.dir.path().join("config/dunstrc");
        fs::write(&config, "")?;
        cmd.arg("-config").arg(&config);
        self.spawn("dunst", cmd)?;
        self.wait_for_bus_name("org.freedesktop.Notifications", READY)
            .with_context(|| format!("dunst did not start:\n{}", self.log("dunst")))
    }

    fn start_tray(&mut self, colour: u32) -> anyhow::Result<()> {
        let mut cmd = Command::new("trayer");
        // Pseudo-transparency with alpha 0 paints the panel in exactly the tint colour.
        cmd.args([
            "--edge",
            "bottom",
            "--align",
            "right",
            "--widthtype",
            "request",
            "--height",
            "32",
            "--SetDockType",
            "true",
            "--SetPartialStrut",
            "true",
            "--expand",
            "true",
            "--transparent",
            "true",
            "--alpha",
            "0",
            "--tint",
        ])
        .arg(format!("0x{colour:06x}"));
        self.spawn("trayer", cmd)?;
        wait_for(READY, "trayer's panel window", || {
            self.tray_panel().ok().flatten()
        })
        .with_context(|| format!("trayer did not start:\n{}", self.log("trayer")))?;
        Ok(())
    }
}

impl Drop for DesktopSession {
    fn drop(&mut self) {
        // Clients first, the X server and the bus last.
        while let Some(mut daemon) = self.daemons.pop() {
            daemon.stop();
        }
    }
}

/// Parses `xwininfo -root -tree` output into windows with their nesting.
pub fn parse_tree(listing: &str) -> Vec<XWindow> {
    let mut windows = Vec::new();
    // (indent, id) of the windows enclosing the current line.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in listing.lines() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("0x") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if let Some(mut window) = parse_line(trimmed) {
            window.depth = stack.len() + 1;
            window.ancestors = stack.iter().map(|(_, id)| id.clone()).collect();
            stack.push((indent, window.id.clone()));
            windows.push(window);
        }
    }
    windows
}

/// One line: `0x600007 "name": ("instance" "Class")  32x30+0+0  +1247+769`.
fn parse_line(line: &str) -> Option<XWindow> {
    let (id, rest) = line.split_once(' ')?;
    let mut tail = rest.split_whitespace().rev();
    let absolute = tail.next()?;
    let geometry = tail.next()?;
    let (size, _) = geometry.split_once(['+', '-'])?;
    let (width, height) = size.split_once('x')?;
    let mut abs = absolute.strip_prefix('+')?.splitn(2, '+');
    let x = abs.next()?.parse().ok()?;
    let y = abs.next()?.parse().ok()?;

    let described = rest.trim_start();
    let (name, after_name) = if let Some(quoted) = described.strip_prefix('"') {
        let end = quoted.find("\": ")?;
        (Some(quoted[..end].to_owned()), &quoted[end + 3..])
    } else {
        (None, described.split_once(": ").map_or("", |(_, r)| r))
    };
    let class = after_name
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(inner, _)| {
            inner
                .split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some(XWindow {
        id: id.to_owned(),
        name,
        class,
        width: width.parse().ok()?,
        height: height.parse().ok()?,
        x,
        y,
        depth: 0,
        ancestors: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"
xwininfo: Window id: 0x50d (the root window) (has no name)

  Root window id: 0x50d (the root window) (has no name)
  Parent window id: 0x0 (none)
     3 children:
     0x400003 "panel": ("panel" "trayer")  34x32+1246+768  +1246+768
        2 children:
        0x400029 (has no name): ()  32x30+1+1  +1247+769
           1 child:
           0x600007 "tandem-desktop": ("tray-icon tray app tandem" "tray-icon tray app tandem")  32x30+0+0  +1247+769
              1 child:
              0x600008 (has no name): ()  1x1+-1+-1  +1246+768
        0x400004 (has no name): ()  1x1+-1+-1  +1245+767
     0x40001f "trayer": ()  10x10+-100+-100  +-100+-100
     0x600013 "Tandem": ("tandem-desktop" "Tandem-desktop")  560x640+0+0  +0+0
"#;

    #[test]
    fn parses_names_classes_geometry_and_nesting() {
        let windows = parse_tree(LISTING);
        assert_eq!(windows.len(), 7);
        let icon = windows.iter().find(|w| w.id == "0x600007").unwrap();
        assert_eq!(icon.name.as_deref(), Some("tandem-desktop"));
        assert_eq!(
            icon.class,
            vec!["tray-icon tray app tandem", "tray-icon tray app tandem"]
        );
        assert_eq!(
            (icon.width, icon.height, icon.x, icon.y),
            (32, 30, 1247, 769)
        );
        assert_eq!(icon.ancestors, vec!["0x400003", "0x400029"]);
        assert_eq!(icon.depth, 3);

        let hidden = windows.iter().find(|w| w.id == "0x40001f").unwrap();
        assert_eq!((hidden.x, hidden.y, hidden.depth), (-100, -100, 1));
        assert!(hidden.class.is_empty());

        let unnamed = windows.iter().find(|w| w.id == "0x400004").unwrap();
        assert_eq!(unnamed.name, None);
        assert_eq!(unnamed.ancestors, vec!["0x400003"]);

        let main = windows.iter().find(|w| w.id == "0x600013").unwrap();
        assert_eq!((main.name.as_deref(), main.depth), (Some("Tandem"), 1));
    }
}
