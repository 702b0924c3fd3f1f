//! Record types of agent releases (issue 8): what an upload stores and what the updater and
//! IT's listing read back. The SQL lives with each backend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ChangeBy;
use crate::releases::Version;

/// The channel a group follows until IT picks another.
pub const DEFAULT_CHANNEL: &str = "stable";

/// How many releases of one channel and target are kept; older ones (and artifacts no
/// release uses any more) are deleted when a new one is uploaded, so the database does not
/// grow by a hundred megabytes a month for ever.
pub const KEEP_PER_CHANNEL: u32 = 5;

/// A release whose signature the API has already verified.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub channel: String,
    /// The Tauri updater's `{target}`: `linux-x86_64`, `windows-x86_64`, `darwin-aarch64`…
    pub target: String,
    pub version: Version,
    /// The `.sig` file as the Tauri updater wants it (base64 of the minisign signature).
    pub signature: String,
    pub notes: String,
    /// Lower-case hex SHA-256 of `artifact`: its name in URLs.
    pub sha256: String,
    pub artifact: Vec<u8>,
    pub by: ChangeBy,
}

/// A stored release, without its artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseInfo {
    pub channel: String,
    pub target: String,
    pub version: String,
    pub signature: String,
    pub notes: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}
