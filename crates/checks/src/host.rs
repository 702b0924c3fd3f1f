//! The door to the operating system. Probes run allow-listed commands by absolute path with a
//! timeout and `LC_ALL=C`, and read files, only through [`Host`], so that a recorded bundle
//! can stand in for the machine (support replay, tests of other platforms' parsers).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

/// True when some check declared `program` in its `PROGRAMS` list. Anything else is refused
/// before it reaches the OS.
pub fn is_allowed(program: &str) -> bool {
    crate::checks::PROGRAMS
        .iter()
        .chain(std::iter::once(&CONTEXT_PROGRAMS))
        .any(|list| list.contains(&program))
}

/// The programs the agent's user-context probe runs (is the user away, in do-not-disturb or
/// full screen): read-only questions to the desktop session, through this door like every
/// probe so that support bundles and tests replay them.
pub const CONTEXT_PROGRAMS: &[&str] = &[
    "/usr/bin/dbus-send",
    "/usr/bin/gsettings",
    "/usr/bin/xprop",
    "/usr/bin/xprintidle",
    "/usr/sbin/ioreg",
];

/// Output beyond this is cut: probes read summaries, not megabytes.
const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

/// A command to run: absolute program path, arguments and a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl Cmd {
    pub fn new(program: &'static str, args: &[&str]) -> Cmd {
        Cmd {
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            timeout: Duration::from_secs(20),
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = timeout;
        self
    }

    /// The command line as one string, for evidence and for matching recordings.
    pub fn display(&self) -> String {
        std::iter::once(self.program)
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished command returned. A non-zero exit is not an error here: some tools
/// report results through their exit code, and each parser decides what a code means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdOutput {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Why the host could not answer. Each maps to an `unknown` result, never to `fail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostError {
    #[error("{path} is not installed")]
    NotFound { path: String },
    #[error("permission denied reading {path}")]
    PermissionDenied { path: String },
    #[error("{program} did not finish within {seconds} s")]
    Timeout { program: String, seconds: u64 },
    #[error("{program} is not on the allow-list")]
    NotAllowed { program: String },
    #[error("{what}: {message}")]
    Io { what: String, message: String },
    #[error("the recording has no answer for {what}")]
    NotRecorded { what: String },
    #[error("{what} is not available on this platform")]
    Unsupported { what: String },
    #[error("D-Bus {what}: {message}")]
    Dbus { what: String, message: String },
}

/// A named D-Bus question. Each variant is one read a probe needs, so the enum itself is the
/// allow-list and a recording says what was asked in words. Answers are JSON values whose
/// shape each variant documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum DbusQuery {
    /// PackageKit `GetUpdates(none)` on the system bus: `[{"info": u32, "package_id": s,
    /// "summary": s}, …]`.
    PackageKitGetUpdates,
    /// AccountsService `User.GetPasswordExpirationPolicy` for a uid on the system bus:
    /// `{"expiration_time": x, "last_change_time": x, "min_days_between_changes": x,
    /// "max_days_between_changes": x, "days_to_warn": x, "days_after_expiration_until_lock": x}`.
    AccountsPasswordPolicy { uid: u32 },
}

impl DbusQuery {
    pub fn describe(&self) -> String {
        match self {
            DbusQuery::PackageKitGetUpdates => "org.freedesktop.PackageKit GetUpdates".into(),
            DbusQuery::AccountsPasswordPolicy { uid } => {
                format!("org.freedesktop.Accounts User{uid} GetPasswordExpirationPolicy")
            }
        }
    }
}

/// Facts about the operating system itself, read once per run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OsFacts {
    /// `linux`, `macos` or `windows`.
    pub family: String,
    /// `/etc/os-release` as key/value pairs on Linux; empty elsewhere.
    #[serde(default)]
    pub os_release: BTreeMap<String, String>,
    pub os_version: String,
    #[serde(default)]
    pub kernel: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub arch: Option<String>,
    /// The user the agent runs as, and their home directory (per-user settings live there).
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub home: Option<String>,
}

impl OsFacts {
    /// The Linux distribution id (`debian`, `ubuntu`, …), when known.
    pub fn distro_id(&self) -> Option<&str> {
        self.os_release.get("ID").map(String::as_str)
    }

    /// True on Debian and its derivatives (Ubuntu, Mint, …).
    pub fn is_debian_like(&self) -> bool {
        self.distro_id() == Some("debian")
            || self
                .os_release
                .get("ID_LIKE")
                .is_some_and(|like| like.split_whitespace().any(|w| w == "debian"))
    }
}

/// The door through which every probe reads the machine.
#[async_trait]
pub trait Host: Send + Sync {
    async fn run(&self, cmd: &Cmd) -> Result<CmdOutput, HostError>;
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError>;
    /// Last modification time of a file, for cache ages and stamps.
    async fn modified(&self, path: &str) -> Result<DateTime<Utc>, HostError>;
    /// Names of the entries of a directory, sorted.
    async fn list_dir(&self, path: &str) -> Result<Vec<String>, HostError>;
    /// Asks one of the known D-Bus questions.
    async fn dbus(&self, query: &DbusQuery) -> Result<serde_json::Value, HostError>;
    fn os(&self) -> &OsFacts;
    /// The moment the probes run (the recording's moment on replay).
    fn now(&self) -> DateTime<Utc>;
}

/// The live machine.
#[derive(Debug, Clone)]
pub struct RealHost {
    os: OsFacts,
}

impl RealHost {
    pub fn new() -> RealHost {
        RealHost {
            os: crate::inventory::os_facts(),
        }
    }
}

impl Default for RealHost {
    fn default() -> Self {
        RealHost::new()
    }
}

fn io_error(what: &str, e: &std::io::Error) -> HostError {
    match e.kind() {
        std::io::ErrorKind::NotFound => HostError::NotFound {
            path: what.to_owned(),
        },
        std::io::ErrorKind::PermissionDenied => HostError::PermissionDenied {
            path: what.to_owned(),
        },
        _ => HostError::Io {
            what: what.to_owned(),
            message: e.to_string(),
        },
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = reader {
        // A read error leaves what was read so far; the exit code tells the rest.
        let _ = r.take(MAX_OUTPUT_BYTES as u64).read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[async_trait]
impl Host for RealHost {
    async fn run(&self, cmd: &Cmd) -> Result<CmdOutput, HostError> {
        if !is_allowed(cmd.program) {
            return Err(HostError::NotAllowed {
                program: cmd.program.to_owned(),
            });
        }
        if !Path::new(cmd.program).exists() {
            return Err(HostError::NotFound {
                path: cmd.program.to_owned(),
            });
        }
        let mut child = tokio::process::Command::new(cmd.program)
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .env("LANGUAGE", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io_error(cmd.program, &e))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let work = async {
            let (out, err, status) =
                tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
            (out, err, status)
        };
        match tokio::time::timeout(cmd.timeout, work).await {
            Ok((stdout, stderr, status)) => {
                let status = status.map_err(|e| io_error(cmd.program, &e))?;
                Ok(CmdOutput {
                    exit_code: status.code(),
                    stdout,
                    stderr,
                })
            }
            // Dropping the future drops the child, which kills it (kill_on_drop).
            Err(_) => Err(HostError::Timeout {
                program: cmd.program.to_owned(),
                seconds: cmd.timeout.as_secs(),
            }),
        }
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        tokio::fs::read(path).await.map_err(|e| io_error(path, &e))
    }

    async fn modified(&self, path: &str) -> Result<DateTime<Utc>, HostError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, &e))?;
        let modified = meta.modified().map_err(|e| io_error(path, &e))?;
        Ok(DateTime::<Utc>::from(modified))
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<String>, HostError> {
        let mut entries = tokio::fs::read_dir(path)
            .await
            .map_err(|e| io_error(path, &e))?;
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(path, &e))? {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    async fn dbus(&self, query: &DbusQuery) -> Result<serde_json::Value, HostError> {
        crate::platform::dbus(query).await
    }

    fn os(&self) -> &OsFacts {
        &self.os
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Parses `/etc/os-release` (shell-style `KEY=value` lines, values optionally quoted).
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.replace("\\\"", "\"")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_lose_their_quotes() {
        let m = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n# c\nVERSION_ID='12'\n",
        );
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
    }

    #[tokio::test]
    async fn programs_off_the_allow_list_are_refused() {
        let host = RealHost::new();
        let err = host
            .run(&Cmd::new("/bin/rm", &["-rf", "/nonexistent"]))
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::NotAllowed { .. }));
    }

    #[tokio::test]
    async fn a_missing_file_is_not_found_not_an_io_error() {
        let err = RealHost::new()
            .read_file("/nonexistent/tandem")
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::NotFound { .. }));
    }
}
