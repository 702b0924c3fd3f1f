//! Reader for PackageKit's `GetUpdates` answer as the host records it: a JSON array of
//! `{"info": u32, "package_id": "name;version;arch;data", "summary": s}`, one per `Package`
//! signal.
//!
//! Since PackageKit 1.2.4 `info` packs the update's severity into its high 16 bits
//! (`severity << 16 | kind`); both halves are `PkInfoEnum` values. The kind says whether the
//! update is a security fix (`PK_INFO_ENUM_SECURITY` = 8); the severity is one of low (3),
//! normal (5), important (7) or critical (26). Older daemons send the kind alone.

use serde_json::Value;

use super::Update;

const INFO_SECURITY: u32 = 8;
/// `PK_INFO_ENUM_BLOCKED`: an update the backend will not install (held back, phased).
const INFO_BLOCKED: u32 = 9;

/// The answer did not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected PackageKit answer: {0}")]
pub struct PackageKitParseError(pub String);

/// Names a `PkInfoEnum` value used as a severity.
fn severity_name(value: u32) -> Option<&'static str> {
    match value {
        3 => Some("low"),
        4 => Some("enhancement"),
        5 => Some("normal"),
        6 => Some("bugfix"),
        7 => Some("important"),
        8 => Some("security"),
        26 => Some("critical"),
        _ => None,
    }
}

/// Turns the recorded `Package` signals into pending updates. Blocked updates are left out:
/// the package manager will not install them, so they are not the user's to act on.
pub fn parse_updates(answer: &Value) -> Result<Vec<Update>, PackageKitParseError> {
    let items = answer
        .as_array()
        .ok_or_else(|| PackageKitParseError("not a list".into()))?;
    let mut updates = Vec::with_capacity(items.len());
    for item in items {
        let info = item
            .get("info")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| PackageKitParseError(format!("no info in {item}")))?;
        let package_id = item
            .get("package_id")
            .and_then(Value::as_str)
            .ok_or_else(|| PackageKitParseError(format!("no package_id in {item}")))?;
        let kind = info & 0xFFFF;
        if kind == INFO_BLOCKED {
            continue;
        }
        let mut parts = package_id.split(';');
        let name = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| PackageKitParseError(format!("bad package id {package_id}")))?;
        let version = parts.next().filter(|v| !v.is_empty()).map(str::to_owned);
        let severity = severity_name(info >> 16).map(str::to_owned);
        let summary = item
            .get("summary")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        updates.push(Update {
            name: name.to_owned(),
            version,
            current: None,
            security: kind == INFO_SECURITY,
            severity,
            title: summary,
        });
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_bits_are_split_from_the_kind() {
        let answer = json!([
            {"info": (26u32 << 16) | 8, "package_id": "openssl;3.0.15-1~deb12u1;amd64;Debian-Security", "summary": "TLS"},
            {"info": 5, "package_id": "tzdata;2026a-0+deb12u1;all;Debian", "summary": ""},
            {"info": 9, "package_id": "held;1;amd64;x", "summary": ""},
        ]);
        let u = parse_updates(&answer).unwrap();
        assert_eq!(u.len(), 2);
        assert!(u[0].security);
        assert_eq!(u[0].severity.as_deref(), Some("critical"));
        assert_eq!(u[0].version.as_deref(), Some("3.0.15-1~deb12u1"));
        assert!(!u[1].security);
        assert_eq!(u[1].severity, None);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        assert!(parse_updates(&json!({})).is_err());
        assert!(parse_updates(&json!([{"info": 1}])).is_err());
        assert!(parse_updates(&json!([{"info": 1, "package_id": ";;;"}])).is_err());
        assert!(parse_updates(&json!([])).unwrap().is_empty());
    }
}
