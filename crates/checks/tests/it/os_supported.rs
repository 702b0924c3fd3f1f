//! `os_supported` against recorded `/etc/os-release`, `sw_vers` and `reg.exe` outputs, and
//! against this machine's own `/etc/os-release`.
//!
//! This module also holds the small replay harness the firewall, disk-encryption,
//! screen-lock, antivirus and automatic-update tests share: a [`Machine`] is a support
//! bundle built in code from recorded outputs, replayed through `ReplayHost`, so each test
//! runs the real probe and evaluation of a check for any platform on Linux.

use base64::Engine as _;
use tandem_checks::bundle::{Bundle, RecordedCommand, RecordedDir, RecordedFile, BUNDLE_FORMAT};
use tandem_checks::checks::os_supported::{compare_versions, OsSupported};
use tandem_checks::engine::{Check, Outcome};
use tandem_checks::{CheckContext, Cmd, CmdOutput, HostError, OsFacts, ReplayHost};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, now, read};

/// A machine described by recorded answers. Anything not recorded answers `not_recorded`.
pub struct Machine {
    bundle: Bundle,
}

impl Machine {
    pub fn new(family: &str) -> Machine {
        Machine {
            bundle: Bundle {
                format: BUNDLE_FORMAT.into(),
                recorded_at: now(),
                agent_version: "test".into(),
                os: OsFacts {
                    family: family.into(),
                    hostname: "laptop-042".into(),
                    user: "alice".into(),
                    uid: Some(1000),
                    home: Some(if family == "windows" {
                        r"C:\Users\alice".into()
                    } else {
                        "/home/alice".into()
                    }),
                    ..OsFacts::default()
                },
                context: None,
                commands: Vec::new(),
                files: Vec::new(),
                dirs: Vec::new(),
                dbus: Vec::new(),
            },
        }
    }

    /// The moment of the recording (default: the fixtures' fixed "now").
    pub fn at(mut self, t: chrono::DateTime<chrono::Utc>) -> Machine {
        self.bundle.recorded_at = t;
        self
    }

    pub fn os_release(mut self, text: &str) -> Machine {
        self.bundle.os.os_release = tandem_checks::host::parse_os_release(text);
        self
    }

    pub fn cmd(mut self, cmd: &Cmd, exit_code: i32, stdout: &str, stderr: &str) -> Machine {
        self.bundle.commands.push(RecordedCommand {
            program: cmd.program.into(),
            args: cmd.args.clone(),
            result: Ok(CmdOutput {
                exit_code: Some(exit_code),
                stdout: stdout.into(),
                stderr: stderr.into(),
            }),
        });
        self
    }

    /// The program is not installed.
    pub fn missing(mut self, cmd: &Cmd) -> Machine {
        self.bundle.commands.push(RecordedCommand {
            program: cmd.program.into(),
            args: cmd.args.clone(),
            result: Err(HostError::NotFound {
                path: cmd.program.into(),
            }),
        });
        self
    }

    pub fn file(mut self, path: &str, content: &[u8]) -> Machine {
        self.bundle.files.push(RecordedFile {
            path: path.into(),
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode(content)),
            modified: Some(now() - chrono::Duration::days(2)),
            error: None,
        });
        self
    }

    pub fn file_modified(
        mut self,
        path: &str,
        content: &[u8],
        modified: chrono::DateTime<chrono::Utc>,
    ) -> Machine {
        self = self.file(path, content);
        if let Some(f) = self.bundle.files.last_mut() {
            f.modified = Some(modified);
        }
        self
    }

    /// A file that exists (only its modification time is asked).
    pub fn exists(mut self, path: &str) -> Machine {
        self.bundle.files.push(RecordedFile {
            path: path.into(),
            content_base64: None,
            modified: Some(now()),
            error: None,
        });
        self
    }

    pub fn no_file(mut self, path: &str) -> Machine {
        self.bundle.files.push(RecordedFile {
            path: path.into(),
            content_base64: None,
            modified: None,
            error: Some(HostError::NotFound { path: path.into() }),
        });
        self
    }

    pub fn dir(mut self, path: &str, names: &[&str]) -> Machine {
        self.bundle.dirs.push(RecordedDir {
            path: path.into(),
            result: Ok(names.iter().map(|n| (*n).to_owned()).collect()),
        });
        self
    }

    pub fn no_dir(mut self, path: &str) -> Machine {
        self.bundle.dirs.push(RecordedDir {
            path: path.into(),
            result: Err(HostError::NotFound { path: path.into() }),
        });
        self
    }

    /// Runs a check on this machine with the built-in policy.
    pub fn run(self, check: &dyn Check) -> Outcome {
        self.run_with(check, &CheckContext::default())
    }

    pub fn run_with(self, check: &dyn Check, ctx: &CheckContext) -> Outcome {
        let host = ReplayHost::new(self.bundle);
        block_on(check.run(&host, ctx))
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// True when the tests run as root (CI does); tests that need root print a note and return
/// otherwise.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Name of the environment variable that tells a re-executed test binary which scenario to
/// run (see [`rerun_self`]).
pub const CHILD_ENV: &str = "TANDEM_IT_CHILD";

/// Re-executes this test binary, wrapped by `wrapper` (for example `ip netns exec NS`),
/// running only `test` with `CHILD_ENV=scenario` and extra environment. Returns the child's
/// combined output; panics when the child test failed. This is how a test puts a real probe
/// inside a network namespace or a private D-Bus session without touching the process's own
/// environment.
pub fn rerun_self(wrapper: &[&str], test: &str, scenario: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut argv: Vec<String> = wrapper.iter().map(|s| (*s).to_owned()).collect();
    argv.push(exe.display().to_string());
    argv.extend(["--exact", test, "--nocapture", "--test-threads=1"].map(String::from));
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env(CHILD_ENV, scenario);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child scenario {scenario} failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "child scenario {scenario} ran no test:\n{text}"
    );
    for line in text.lines().filter(|l| {
        l.contains(&format!("{scenario}:")) || l.contains("note:") || l.contains("done")
    }) {
        println!("child {line}");
    }
    text
}

fn linux(os_release: &str) -> Outcome {
    Machine::new("linux")
        .os_release(os_release)
        .run(&OsSupported)
}

#[test]
fn linux_debian12_is_in_lts() {
    let out = linux(&read("os_supported/linux/debian12.os-release"));
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("os_supported/linux/debian12.expected.json", &out);
}

#[test]
fn linux_ubuntu_2004_needs_esm_and_fails_the_minimum() {
    let out = linux(&read("os_supported/linux/ubuntu-20.04.os-release"));
    // 20.04 < the built-in minimum 22.04.
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("os_supported/linux/ubuntu-20.04.expected.json", &out);
}

#[test]
fn linux_fedora_support_end_from_os_release() {
    let out = linux(&read("os_supported/linux/fedora-40.os-release"));
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["lifecycle"]["standard_until"], "2025-05-13");
    assert_snapshot("os_supported/linux/fedora-40.expected.json", &out);
}

#[test]
fn linux_rolling_and_unversioned() {
    let out = linux(&read("os_supported/linux/arch.os-release"));
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("os_supported/linux/arch.expected.json", &out);
    let out = linux(&read("os_supported/linux/debian-sid.os-release"));
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("os_supported/linux/debian-sid.expected.json", &out);
}

#[test]
fn linux_policy_minimum_for_an_unknown_distro() {
    let mut ctx = CheckContext::default();
    ctx.policy
        .checks
        .os_supported
        .minimum
        .insert("linuxmint".into(), "21.2".into());
    let m = |v: &str| {
        Machine::new("linux").os_release(&format!(
            "ID=linuxmint\nNAME=\"Linux Mint\"\nVERSION_ID=\"{v}\"\n"
        ))
    };
    assert_eq!(m("21.3").run_with(&OsSupported, &ctx).status, Status::Pass);
    assert_eq!(m("21.10").run_with(&OsSupported, &ctx).status, Status::Pass);
    assert_eq!(m("21.1").run_with(&OsSupported, &ctx).status, Status::Fail);
    assert_eq!(m("21.1").run(&OsSupported).status, Status::Unknown);
}

fn mac(stdout: &str, code: i32) -> Outcome {
    Machine::new("macos")
        .cmd(&Cmd::new("/usr/bin/sw_vers", &[]), code, stdout, "")
        .run(&OsSupported)
}

#[test]
fn macos_versions() {
    let out = mac(&read("os_supported/macos/sw_vers-sequoia.txt"), 0);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("os_supported/macos/sw_vers-sequoia.expected.json", &out);
    // 14.5 is supported by Apple but below the built-in minimum 14.6.
    let out = mac(&read("os_supported/macos/sw_vers-sonoma.txt"), 0);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("os_supported/macos/sw_vers-sonoma.expected.json", &out);
    // 13.4.1 (c) is below the 14.6 minimum and Ventura is out of support.
    let out = mac(&read("os_supported/macos/sw_vers-ventura-rsr.txt"), 0);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("os_supported/macos/sw_vers-ventura-rsr.expected.json", &out);
    let out = mac(&read("os_supported/macos/sw_vers-catalina.txt"), 0);
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["version"], "10.15.7");
    let out = mac(&read("os_supported/macos/sw_vers-garbage.txt"), 1);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("os_supported/macos/sw_vers-error.expected.json", &out);
}

fn windows(stdout: &str, code: i32, stderr: &str) -> Outcome {
    let cmd = Cmd::new(
        r"C:\Windows\System32\reg.exe",
        &[
            "query",
            r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion",
        ],
    );
    Machine::new("windows")
        .cmd(&cmd, code, stdout, stderr)
        .run(&OsSupported)
}

#[test]
fn windows_versions() {
    // 24H2 Home/Pro support ended 2026-10-13.
    let out = windows(
        &read("os_supported/windows/currentversion-win11-24h2-pro.txt"),
        0,
        "",
    );
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["version"], "10.0.26100.2481");
    assert_snapshot("os_supported/windows/win11-24h2-pro.expected.json", &out);
    let out = windows(
        &read("os_supported/windows/currentversion-win10-22h2-ent.txt"),
        0,
        "",
    );
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("os_supported/windows/win10-22h2-ent.expected.json", &out);
    // 10.0.19044 < 10.0.19045: numeric comparison, not text.
    let out = windows(
        &read("os_supported/windows/currentversion-win10-21h2-home.txt"),
        0,
        "",
    );
    assert_eq!(out.status, Status::Fail);
    let out = windows(
        &read("os_supported/windows/currentversion-server-2022.txt"),
        0,
        "",
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("os_supported/windows/server-2022.expected.json", &out);
    let out = windows(
        "",
        1,
        &read("screen_lock/windows/reg-access-denied.stderr.txt"),
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("os_supported/windows/access-denied.expected.json", &out);
}

#[test]
fn version_comparison_is_numeric() {
    use std::cmp::Ordering::*;
    assert_eq!(compare_versions("10.0.19045", "10.0.9999"), Greater);
    assert_eq!(compare_versions("22.04", "22.10"), Less);
    assert_eq!(compare_versions("14.6", "14.6.0"), Equal);
}

/// The real `/etc/os-release` of the machine running the tests, through the live host.
#[test]
fn real_os_release() {
    let Ok(text) = std::fs::read_to_string("/etc/os-release") else {
        eprintln!("note: no /etc/os-release here; skipping");
        return;
    };
    let release = tandem_checks::host::parse_os_release(&text);
    let host = tandem_checks::RealHost::new();
    let out = block_on(OsSupported.run(&host, &CheckContext::default()));
    if let Some(v) = release.get("VERSION_ID") {
        assert_eq!(
            out.details["version"].as_str(),
            Some(v.as_str()),
            "{out:#?}"
        );
        assert_eq!(
            out.details["platform"].as_str(),
            release.get("ID").map(String::as_str)
        );
    }
    if release.get("ID").map(String::as_str) == Some("debian")
        && release.get("VERSION_ID").map(String::as_str) == Some("12")
    {
        // Debian 12 is in Debian LTS from 2026-06-10 to 2028-06-30.
        let today = chrono::Utc::now().date_naive();
        let expected = if today <= chrono::NaiveDate::from_ymd_opt(2026, 6, 10).unwrap() {
            Status::Pass
        } else {
            Status::Warn
        };
        assert_eq!(out.status, expected, "{out:#?}");
    }
}

/// Parsers never panic, on mutated recordings and on noise.
#[test]
fn parsers_survive_any_input() {
    use tandem_checks::checks::os_supported::{
        parse_sw_vers, reg::parse_reg_query, windows_version,
    };
    for_each_mutation(
        &[
            "os_supported/macos/sw_vers-sonoma.txt",
            "os_supported/windows/currentversion-win11-24h2-pro.txt",
            "screen_lock/windows/desktop-secure-saver-10min.txt",
        ],
        |s| {
            let _ = parse_sw_vers(s);
            if let Some(k) = parse_reg_query(s) {
                let _ = windows_version(&k);
            }
            let _ = compare_versions(s, "10.0.19045");
            let _ = tandem_checks::host::parse_os_release(s);
        },
    );
}

/// Calls `f` with each recording, truncations of it, byte flips, shuffled lines and
/// pseudo-random text (a fixed-seed xorshift, so failures reproduce).
pub fn for_each_mutation(fixtures: &[&str], mut f: impl FnMut(&str)) {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: Vec<char> =
        "{}[]\":,.=;-_ \n\r\t0123456789abcdefxyzREG_SZ0xState=()[/@]\u{feff}é“”"
            .chars()
            .collect();
    for rel in fixtures {
        let text = read(rel);
        f(&text);
        let bytes = text.as_bytes();
        for cut in (0..bytes.len()).step_by((bytes.len() / 64).max(1)) {
            f(&String::from_utf8_lossy(&bytes[..cut]));
            f(&String::from_utf8_lossy(&bytes[cut..]));
        }
        for _ in 0..200 {
            let mut b = bytes.to_vec();
            if b.is_empty() {
                break;
            }
            for _ in 0..(1 + next() % 8) {
                let i = (next() as usize) % b.len();
                b[i] = (next() % 256) as u8;
            }
            f(&String::from_utf8_lossy(&b));
        }
        let mut lines: Vec<&str> = text.lines().collect();
        for _ in 0..20 {
            let n = lines.len();
            if n > 1 {
                lines.swap((next() as usize) % n, (next() as usize) % n);
            }
            f(&lines.join("\n"));
        }
    }
    for _ in 0..500 {
        let len = (next() % 300) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()])
            .collect();
        f(&s);
    }
}
