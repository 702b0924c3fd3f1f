//! Platforms without D-Bus (macOS, Windows): their probes use commands and files instead.

use crate::host::{DbusQuery, HostError};

pub fn current_uid() -> Option<u32> {
    None
}

pub async fn dbus(query: &DbusQuery) -> Result<serde_json::Value, HostError> {
    Err(HostError::Unsupported {
        what: query.describe(),
    })
}
