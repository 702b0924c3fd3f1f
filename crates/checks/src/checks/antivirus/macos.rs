//! macOS: XProtect, the built-in malware scanner, kept current by Apple.
//!
//! The version is `CFBundleShortVersionString` in `XProtect.bundle/Contents/Info.plist`,
//! under `/Library/Apple/System/Library/CoreServices/` and, from macOS 15, also under
//! `/var/protected/xprotect/` (the newer of the two is in use); its age is that file's
//! modification time. Apple ships XProtect updates every one to four weeks, so the policy's
//! definitions age (days, sized for daily signature feeds) would flag healthy Macs; XProtect
//! is judged against [`XPROTECT_MAX_AGE_DAYS`] instead, or the policy's value when larger.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::compare_versions;
use crate::engine::Outcome;
use crate::host::{Host, HostError};

pub const XPROTECT_PLISTS: &[&str] = &[
    "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist",
    "/var/protected/xprotect/XProtect.bundle/Contents/Info.plist",
];

/// XProtect older than this warns: a Mac that stopped receiving Apple's background
/// security updates (`CriticalUpdateInstall` off, or no network for weeks).
pub const XPROTECT_MAX_AGE_DAYS: i64 = 60;

/// One XProtect location as read.
#[derive(Debug, Clone)]
pub struct PlistRead {
    pub path: String,
    pub content: Result<Vec<u8>, HostError>,
    pub modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct MacProbe {
    pub plists: Vec<PlistRead>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XProtect {
    pub path: String,
    pub version: String,
    pub updated: Option<DateTime<Utc>>,
}

/// `CFBundleShortVersionString` (or `CFBundleVersion`) of an XML or binary plist.
pub fn parse_info_plist(bytes: &[u8]) -> Option<String> {
    let value = plist::Value::from_reader(std::io::Cursor::new(bytes)).ok()?;
    let dict = value.as_dictionary()?;
    dict.get("CFBundleShortVersionString")
        .or_else(|| dict.get("CFBundleVersion"))
        .and_then(plist::Value::as_string)
        .map(str::to_owned)
}

pub async fn probe(host: &dyn Host) -> MacProbe {
    let mut plists = Vec::new();
    for path in XPROTECT_PLISTS {
        let content = host.read_file(path).await;
        let modified = if content.is_ok() {
            host.modified(path).await.ok()
        } else {
            None
        };
        plists.push(PlistRead {
            path: (*path).to_owned(),
            content,
            modified,
        });
    }
    MacProbe { plists }
}

pub fn evaluate(p: &MacProbe, max_age_days: u32, now: DateTime<Utc>) -> Outcome {
    let mut found: Vec<XProtect> = Vec::new();
    let mut errors = Vec::new();
    let mut evidence = Vec::new();
    for PlistRead {
        path,
        content,
        modified,
    } in &p.plists
    {
        match content {
            Ok(bytes) => match parse_info_plist(bytes) {
                Some(version) => {
                    evidence.push(Evidence {
                        source: path.clone(),
                        excerpt: format!("CFBundleShortVersionString {version}"),
                    });
                    found.push(XProtect {
                        path: path.clone(),
                        version,
                        updated: *modified,
                    });
                }
                None => errors.push(format!("{path} has no version")),
            },
            // The macOS 15 location does not exist on older systems.
            Err(HostError::NotFound { .. }) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(newest) = found
        .iter()
        .max_by(|a, b| compare_versions(&a.version, &b.version))
    else {
        let reason = if errors.is_empty() {
            "XProtect was not found".to_owned()
        } else {
            errors.join("; ")
        };
        return Outcome {
            evidence,
            default_owner: Owner::It,
            ..Outcome::unknown(reason)
        };
    };
    let limit = XPROTECT_MAX_AGE_DAYS.max(i64::from(max_age_days));
    let age = newest.updated.map(|t| (now - t).num_days().max(0));
    let details = json!({"product": "XProtect", "version": newest.version, "path": newest.path, "updated": newest.updated, "age_days": age, "max_age_days": limit});
    let (status, summary) = match age {
        Some(a) if a > limit => (
            Status::Warn,
            format!(
                "XProtect (version {}) has not been updated for {a} days",
                newest.version
            ),
        ),
        Some(_) => (
            Status::Pass,
            format!("XProtect is on and current (version {})", newest.version),
        ),
        None => (
            Status::Pass,
            format!(
                "XProtect is on (version {}); its update date could not be read",
                newest.version
            ),
        ),
    };
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("macos")
        },
        default_owner: Owner::It,
    }
}
