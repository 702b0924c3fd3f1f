//! Support bundles: everything the probes read on one machine, and a host that replays it.
//!
//! `tandem diagnose` records a run through [`RecordingHost`]; `tandem check --replay`
//! evaluates the bundle through [`ReplayHost`] with no access to the live machine and gets
//! the same results. The format is documented in `docs/support-bundle.md`.

use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::host::{Cmd, CmdOutput, DbusQuery, Host, HostError, OsFacts};

pub const BUNDLE_FORMAT: &str = "tandem-bundle/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCommand {
    pub program: String,
    pub args: Vec<String>,
    pub result: Result<CmdOutput, HostError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    pub path: String,
    /// File contents, base64; absent when only the modification time was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<HostError>,
}

/// A recording of one machine as the probes saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub recorded_at: DateTime<Utc>,
    pub agent_version: String,
    pub os: OsFacts,
    /// What the recorded run was judged against (policy, identity facts, first-seen
    /// times), so a replay judges the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::engine::CheckContext>,
    pub commands: Vec<RecordedCommand>,
    pub files: Vec<RecordedFile>,
    #[serde(default)]
    pub dirs: Vec<RecordedDir>,
    #[serde(default)]
    pub dbus: Vec<RecordedDbus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDir {
    pub path: String,
    pub result: Result<Vec<String>, HostError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDbus {
    pub query: DbusQuery,
    pub result: Result<serde_json::Value, HostError>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a Tandem support bundle: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported bundle format `{0}` (this build reads {BUNDLE_FORMAT})")]
    Format(String),
}

impl Bundle {
    pub fn from_json(text: &str) -> Result<Bundle, BundleError> {
        let bundle: Bundle = serde_json::from_str(text)?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(BundleError::Format(bundle.format));
        }
        Ok(bundle)
    }
}

fn snapshot<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Wraps a host and writes down every answer it gives.
pub struct RecordingHost<H> {
    inner: H,
    started_at: DateTime<Utc>,
    commands: Mutex<Vec<RecordedCommand>>,
    files: Mutex<Vec<RecordedFile>>,
    dirs: Mutex<Vec<RecordedDir>>,
    dbus: Mutex<Vec<RecordedDbus>>,
}

impl<H: Host> RecordingHost<H> {
    pub fn new(inner: H) -> Self {
        let started_at = inner.now();
        RecordingHost {
            inner,
            started_at,
            commands: Mutex::default(),
            files: Mutex::default(),
            dirs: Mutex::default(),
            dbus: Mutex::default(),
        }
    }

    /// The bundle of everything read so far.
    pub fn bundle(&self) -> Bundle {
        Bundle {
            format: BUNDLE_FORMAT.into(),
            recorded_at: self.started_at,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            os: self.inner.os().clone(),
            context: None,
            commands: snapshot(&self.commands),
            files: snapshot(&self.files),
            dirs: snapshot(&self.dirs),
            dbus: snapshot(&self.dbus),
        }
    }

    fn push_file(&self, file: RecordedFile) {
        if let Ok(mut files) = self.files.lock() {
            // A file read twice (content, then mtime) becomes one entry.
            if let Some(existing) = files.iter_mut().find(|f| f.path == file.path) {
                existing.content_base64 = existing.content_base64.take().or(file.content_base64);
                existing.modified = existing.modified.or(file.modified);
                existing.error = existing.error.take().or(file.error);
            } else {
                files.push(file);
            }
        }
    }
}

#[async_trait]
impl<H: Host> Host for RecordingHost<H> {
    async fn run(&self, cmd: &Cmd) -> Result<CmdOutput, HostError> {
        let result = self.inner.run(cmd).await;
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(RecordedCommand {
                program: cmd.program.into(),
                args: cmd.args.clone(),
                result: result.clone(),
            });
        }
        result
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let result = self.inner.read_file(path).await;
        let (content_base64, error) = match &result {
            Ok(bytes) => (
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                None,
            ),
            Err(e) => (None, Some(e.clone())),
        };
        self.push_file(RecordedFile {
            path: path.into(),
            content_base64,
            modified: None,
            error,
        });
        result
    }

    async fn modified(&self, path: &str) -> Result<DateTime<Utc>, HostError> {
        let result = self.inner.modified(path).await;
        let (modified, error) = match &result {
            Ok(t) => (Some(*t), None),
            Err(e) => (None, Some(e.clone())),
        };
        self.push_file(RecordedFile {
            path: path.into(),
            content_base64: None,
            modified,
            error,
        });
        result
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<String>, HostError> {
        let result = self.inner.list_dir(path).await;
        if let Ok(mut dirs) = self.dirs.lock() {
            dirs.push(RecordedDir {
                path: path.into(),
                result: result.clone(),
            });
        }
        result
    }

    async fn dbus(&self, query: &DbusQuery) -> Result<serde_json::Value, HostError> {
        let result = self.inner.dbus(query).await;
        if let Ok(mut calls) = self.dbus.lock() {
            calls.push(RecordedDbus {
                query: query.clone(),
                result: result.clone(),
            });
        }
        result
    }

    fn os(&self) -> &OsFacts {
        self.inner.os()
    }

    fn now(&self) -> DateTime<Utc> {
        self.started_at
    }
}

/// Answers from a bundle, never from the live machine.
pub struct ReplayHost {
    bundle: Bundle,
}

impl ReplayHost {
    pub fn new(bundle: Bundle) -> ReplayHost {
        ReplayHost { bundle }
    }

    fn file(&self, path: &str) -> Option<&RecordedFile> {
        self.bundle.files.iter().find(|f| f.path == path)
    }
}

#[async_trait]
impl Host for ReplayHost {
    async fn run(&self, cmd: &Cmd) -> Result<CmdOutput, HostError> {
        self.bundle
            .commands
            .iter()
            .find(|c| c.program == cmd.program && c.args == cmd.args)
            .map(|c| c.result.clone())
            .unwrap_or_else(|| {
                Err(HostError::NotRecorded {
                    what: cmd.display(),
                })
            })
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let not_recorded = || HostError::NotRecorded {
            what: path.to_owned(),
        };
        let file = self.file(path).ok_or_else(not_recorded)?;
        if let Some(content) = &file.content_base64 {
            return base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|e| HostError::Io {
                    what: path.to_owned(),
                    message: e.to_string(),
                });
        }
        Err(file.error.clone().unwrap_or_else(not_recorded))
    }

    async fn modified(&self, path: &str) -> Result<DateTime<Utc>, HostError> {
        let not_recorded = || HostError::NotRecorded {
            what: path.to_owned(),
        };
        let file = self.file(path).ok_or_else(not_recorded)?;
        match (file.modified, &file.error) {
            (Some(t), _) => Ok(t),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(not_recorded()),
        }
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<String>, HostError> {
        self.bundle
            .dirs
            .iter()
            .find(|d| d.path == path)
            .map(|d| d.result.clone())
            .unwrap_or_else(|| {
                Err(HostError::NotRecorded {
                    what: path.to_owned(),
                })
            })
    }

    async fn dbus(&self, query: &DbusQuery) -> Result<serde_json::Value, HostError> {
        self.bundle
            .dbus
            .iter()
            .find(|d| &d.query == query)
            .map(|d| d.result.clone())
            .unwrap_or_else(|| {
                Err(HostError::NotRecorded {
                    what: query.describe(),
                })
            })
    }

    fn os(&self) -> &OsFacts {
        &self.bundle.os
    }

    fn now(&self) -> DateTime<Utc> {
        self.bundle.recorded_at
    }
}
