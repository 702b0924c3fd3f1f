//! The locally managed policy that IT deploys through an MDM or configuration management.
//! It has the last word over the server's policy, so a device's policy can be pinned even
//! when the server cannot be reached.
//!
//! # Platform behaviour
//! - Linux: the JSON file `/etc/tandem/policy.json`.
//! - macOS: managed preferences for `dev.tandem.agent`
//!   (`/Library/Managed Preferences/dev.tandem.agent.plist`), key `Policy` (a dictionary).
//! - Windows: `HKLM\SOFTWARE\Policies\Tandem`, string value `Policy` holding the JSON
//!   document (what the ADMX template writes).
//!
//! The agent's configuration may name another file (`TANDEM_MANAGED_POLICY`), which is read
//! as JSON on every platform.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("cannot read the managed policy {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error("the managed policy {source_name} is not valid: {message}")]
    Malformed {
        source_name: String,
        message: String,
    },
}

/// A managed policy document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    pub source_name: String,
    pub value: serde_json::Value,
}

/// Parses a managed policy file's JSON; it must be an object.
pub fn parse_json(source_name: &str, text: &str) -> Result<Managed, ManagedError> {
    let malformed = |message: String| ManagedError::Malformed {
        source_name: source_name.to_owned(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("the document must be a JSON object".into()));
    }
    Ok(Managed {
        source_name: source_name.to_owned(),
        value,
    })
}

/// Parses managed preferences (a property list, XML or binary): the `Policy` dictionary.
pub fn parse_plist(source_name: &str, bytes: &[u8]) -> Result<Option<Managed>, ManagedError> {
    let malformed = |message: String| ManagedError::Malformed {
        source_name: source_name.to_owned(),
        message,
    };
    let root: plist::Value = plist::from_bytes(bytes).map_err(|e| malformed(e.to_string()))?;
    let Some(policy) = root.as_dictionary().and_then(|d| d.get("Policy")) else {
        return Ok(None);
    };
    let value = serde_json::to_value(policy).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("`Policy` must be a dictionary".into()));
    }
    Ok(Some(Managed {
        source_name: source_name.to_owned(),
        value,
    }))
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, ManagedError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ManagedError::Read {
            source_name: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Loads the managed policy: the configured file when one is named, else the platform's
/// managed location. `Ok(None)` when none is deployed.
pub fn load(configured: Option<&PathBuf>) -> Result<Option<Managed>, ManagedError> {
    if let Some(path) = configured {
        let name = path.display().to_string();
        return read_file(path)?
            .map(|bytes| parse_json(&name, &String::from_utf8_lossy(&bytes)))
            .transpose();
    }
    platform::load()
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub const PATH: &str = "/etc/tandem/policy.json";

    pub fn load() -> Result<Option<Managed>, ManagedError> {
        read_file(Path::new(PATH))?
            .map(|bytes| parse_json(PATH, &String::from_utf8_lossy(&bytes)))
            .transpose()
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;

    pub const PATH: &str = "/Library/Managed Preferences/dev.tandem.agent.plist";

    pub fn load() -> Result<Option<Managed>, ManagedError> {
        match read_file(Path::new(PATH))? {
            Some(bytes) => parse_plist(PATH, &bytes),
            None => Ok(None),
        }
    }
}

#[cfg(windows)]
mod platform {
    use super::*;

    const KEY: &str = r"SOFTWARE\Policies\Tandem";

    pub fn load() -> Result<Option<Managed>, ManagedError> {
        let name = format!(r"HKLM\{KEY}\Policy");
        let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
        let key = match hklm.open_subkey(KEY) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ManagedError::Read {
                    source_name: name,
                    message: e.to_string(),
                })
            }
        };
        match key.get_value::<String, _>("Policy") {
            Ok(text) => parse_json(&name, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ManagedError::Read {
                source_name: name,
                message: e.to_string(),
            }),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod platform {
    use super::*;

    pub fn load() -> Result<Option<Managed>, ManagedError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_must_be_an_object() {
        assert!(parse_json("f", r#"{"intervals": {"check_minutes": 5}}"#).is_ok());
        assert!(matches!(
            parse_json("f", "[1]"),
            Err(ManagedError::Malformed { .. })
        ));
        assert!(matches!(
            parse_json("f", "{not json"),
            Err(ManagedError::Malformed { .. })
        ));
    }

    #[test]
    fn managed_preferences_plist_policy_dictionary() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadIdentifier</key>
	<string>dev.tandem.agent</string>
	<key>Policy</key>
	<dict>
		<key>checks</key>
		<dict>
			<key>screen_lock</key>
			<dict>
				<key>max_idle_minutes</key>
				<integer>5</integer>
			</dict>
		</dict>
	</dict>
</dict>
</plist>"#;
        let m = parse_plist("p", xml).unwrap().unwrap();
        assert_eq!(m.value["checks"]["screen_lock"]["max_idle_minutes"], 5);
        let without = br#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>X</key><true/></dict></plist>"#;
        assert!(parse_plist("p", without).unwrap().is_none());
        assert!(parse_plist("p", b"garbage").is_err());
    }

    #[test]
    fn a_missing_configured_file_is_no_policy_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(Some(&dir.path().join("absent.json")))
            .unwrap()
            .is_none());
    }
}
