//! A Tauri 2 tray app with no logic: one icon, a menu with Quit, and on request one window
//! with a static page (`dist/`). It is the floor `cargo xtask bench desktop-idle` measures
//! `tandem-desktop` against (BENCHMARKS.md): idle, and the window's time to first paint and
//! the memory left after it is closed.
//!
//! A second launch with `--open` (or `--close`) hands the request to the running instance
//! over a Unix socket in `$HOME` and exits before Tauri starts, as `tandem-desktop`'s second
//! launch hands over on D-Bus; the window is made like Tandem's (software rendering unless
//! `TANDEM_WINDOW_ACCELERATED` is set) and destroyed at once on `--close`, with the freed
//! heap handed back to the system as Tandem does. The running instance writes the window's
//! timings (asked, created, page load) on stderr for the bench.
//!
//! # Platform behaviour
//! The window part is Unix only (the socket); elsewhere this is the tray alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tauri::menu::{Menu, MenuItem};
    use tauri::tray::TrayIconBuilder;

    #[cfg(unix)]
    if window::hand_over()? {
        return Ok(());
    }
    #[cfg(unix)]
    if std::env::args().any(|a| a == window::HOST_FLAG) {
        return window::host();
    }
    let app = tauri::Builder::default()
        .setup(|app| {
            let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
            let menu = Menu::with_items(app, &[&quit])?;
            let icon = tauri::image::Image::from_bytes(include_bytes!(
                "../../../icons/tray/ok-on-light-64.png"
            ))?;
            TrayIconBuilder::with_id("bare")
                .icon(icon)
                .menu(&menu)
                .on_menu_event(|app, _| app.exit(0))
                .build(app)?;
            #[cfg(unix)]
            window::listen(app.handle().clone())?;
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_, event| {
        // A tray app outlives its windows, as tandem-desktop does.
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    Ok(())
}

#[cfg(unix)]
mod window {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use tauri::webview::PageLoadEvent;
    use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

    const LABEL: &str = "main";

    /// With this environment variable set, the running app hosts the window in a child
    /// process of its own (the same binary with `HOST_FLAG`) that exits when the window is
    /// closed: the variant BENCHMARKS.md weighs against a window in the app's process.
    const WINDOW_PROCESS_ENV: &str = "TANDEM_BENCH_WINDOW_PROCESS";
    pub const HOST_FLAG: &str = "--window-host";

    /// The window's host process, in the `WINDOW_PROCESS_ENV` variant.
    static HOST: Mutex<Option<std::process::Child>> = Mutex::new(None);

    /// When the window being opened was asked for, for the timing lines.
    static ASKED: Mutex<Option<Instant>> = Mutex::new(None);

    /// Seconds since midnight UTC, for the bench to place events on the wall clock.
    fn now_of_day() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() % 86_400.0)
            .unwrap_or_default()
    }

    fn socket() -> PathBuf {
        std::env::var_os("HOME")
            .map_or_else(std::env::temp_dir, PathBuf::from)
            .join(".tandem-bench-bare-tray.sock")
    }

    fn since_asked() -> f64 {
        ASKED
            .lock()
            .ok()
            .and_then(|a| *a)
            .map_or(f64::NAN, |a| a.elapsed().as_secs_f64() * 1000.0)
    }

    /// A second launch with `--open` or `--close`: hands it to the running instance; true
    /// when one took it and this process should exit.
    pub fn hand_over() -> std::io::Result<bool> {
        let Some(request) = std::env::args()
            .skip(1)
            .find(|a| a == "--open" || a == "--close")
        else {
            return Ok(false);
        };
        match UnixStream::connect(socket()) {
            Ok(mut stream) => {
                stream.write_all(request.as_bytes())?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Serves second launches for the app's lifetime.
    pub fn listen(app: AppHandle) -> std::io::Result<()> {
        let path = socket();
        // The first instance: a socket left by one that died is stale.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut request = String::new();
                if stream
                    .and_then(|mut s| s.read_to_string(&mut request))
                    .is_err()
                {
                    continue;
                }
                let result = match request.as_str() {
                    "--open" => open(&app),
                    "--close" => close(&app),
                    _ => Ok(()),
                };
                if let Err(err) = result {
                    eprintln!("bare window: {err}");
                }
            }
        });
        Ok(())
    }

    /// The window's host process: no tray, the window made at once; it exits when the app
    /// closes its stdin (the app's `--close`).
    pub fn host() -> Result<(), Box<dyn std::error::Error>> {
        tauri::Builder::default()
            .setup(|app| {
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    handle.exit(0);
                });
                Ok(open(app.handle())?)
            })
            .run(tauri::generate_context!())?;
        Ok(())
    }

    fn open(app: &AppHandle) -> tauri::Result<()> {
        eprintln!("bare window asked at {:.6}", now_of_day());
        // The host itself runs without the variable (see below), so it makes the window.
        if std::env::var_os(WINDOW_PROCESS_ENV).is_some() {
            let mut host = HOST
                .lock()
                .map_err(|_| tauri::Error::FailedToReceiveMessage)?;
            if host.is_none() {
                *host = Some(
                    std::process::Command::new(std::env::current_exe()?)
                        .arg(HOST_FLAG)
                        .env_remove(WINDOW_PROCESS_ENV)
                        .stdin(std::process::Stdio::piped())
                        .spawn()?,
                );
            }
            return Ok(());
        }
        if let Some(window) = app.get_webview_window(LABEL) {
            window.show()?;
            return window.set_focus();
        }
        let asked = Instant::now();
        if let Ok(mut slot) = ASKED.lock() {
            *slot = Some(asked);
        }
        let window = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App("index.html".into()))
            .title("Bare tray")
            .inner_size(720.0, 680.0)
            .focused(true)
            .on_page_load(|_, payload| {
                let what = match payload.event() {
                    PageLoadEvent::Started => "started",
                    PageLoadEvent::Finished => "finished",
                };
                eprintln!("bare window page load {what} at_ms={:.0}", since_asked());
            })
            .build()?;
        #[cfg(target_os = "linux")]
        if std::env::var_os("TANDEM_WINDOW_ACCELERATED").is_none() {
            window.with_webview(|webview| {
                use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt as _, WebViewExt as _};
                // As tandem-desktop's window: software rendering, set before the web process.
                if let Some(settings) = webview.inner().settings() {
                    settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
                }
            })?;
        }
        eprintln!("bare window created at_ms={:.0}", since_asked());
        Ok(())
    }

    fn close(app: &AppHandle) -> tauri::Result<()> {
        if let Some(mut host) = HOST.lock().ok().and_then(|mut h| h.take()) {
            drop(host.stdin.take());
            host.wait()?;
            eprintln!("bare window destroyed");
            return Ok(());
        }
        if let Some(window) = app.get_webview_window(LABEL) {
            window.destroy()?;
            eprintln!("bare window destroyed");
            // As tandem-desktop: the freed heap goes back once GTK and WebKit have let go.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(2));
                release_freed_memory();
            });
        }
        Ok(())
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    fn release_freed_memory() {
        // SAFETY: malloc_trim takes no pointers and only walks glibc's own arenas under
        // their locks; it may be called from any thread at any time.
        unsafe { libc::malloc_trim(0) };
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn release_freed_memory() {}
}
