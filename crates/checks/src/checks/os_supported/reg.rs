//! Parser for `reg.exe query` output (Windows registry reads through a command, so that a
//! recording can replay them on any platform).
//!
//! `reg query KEY` prints the key's path, then one line per value indented by four spaces:
//! `    NAME    TYPE    DATA`, fields separated by four spaces, then the paths of subkeys.
//! `REG_DWORD` and `REG_QWORD` data are hexadecimal (`0x258`); an empty string value ends
//! after its type. The screen-lock, automatic-update and OS-version checks share this
//! parser.

use std::collections::BTreeMap;

use serde::Serialize;

/// One registry value as `reg.exe` printed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegValue {
    pub kind: String,
    pub data: String,
}

impl RegValue {
    /// The value as a number: `REG_DWORD`/`REG_QWORD` in hex, or a decimal `REG_SZ` (the
    /// screen-saver settings are strings that hold numbers).
    pub fn as_u64(&self) -> Option<u64> {
        let data = self.data.trim();
        match data.strip_prefix("0x").or_else(|| data.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => data.parse().ok(),
        }
    }
}

/// The values of the first key in a `reg query` answer, by name. Value names are
/// case-insensitive in the registry, so they are keyed in lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegKey {
    pub path: String,
    pub values: BTreeMap<String, RegValue>,
}

impl RegKey {
    pub fn get(&self, name: &str) -> Option<&RegValue> {
        self.values.get(&name.to_ascii_lowercase())
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(RegValue::as_u64)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).map(|v| v.data.as_str())
    }
}

/// Parses the values of the first key printed. Returns `None` when the text holds no key
/// header at all (an error message, or nothing).
pub fn parse_reg_query(stdout: &str) -> Option<RegKey> {
    let mut key: Option<RegKey> = None;
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("HKEY_") || line.starts_with("HKLM") || line.starts_with("HKCU") {
            // The first header names the key; later headers are subkeys, whose values
            // (with `/s`) are not this key's.
            if key.is_some() {
                break;
            }
            key = Some(RegKey {
                path: line.trim().to_owned(),
                values: BTreeMap::new(),
            });
            continue;
        }
        let Some(k) = key.as_mut() else { continue };
        let Some(body) = line.strip_prefix("    ") else {
            continue;
        };
        // The type is the first `    REG_` field; names may hold single spaces.
        let Some(at) = body.find("    REG_") else {
            continue;
        };
        let name = body[..at].trim();
        let rest = &body[at + 4..];
        let (kind, data) = match rest.find("    ") {
            Some(i) => (&rest[..i], &rest[i + 4..]),
            None => (rest.trim_end(), ""),
        };
        k.values.insert(
            name.to_ascii_lowercase(),
            RegValue {
                kind: kind.trim().to_owned(),
                data: data.to_owned(),
            },
        );
    }
    key
}

/// What one `reg query` answered, read with its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RegRead {
    /// The key exists; its values.
    Present(RegKey),
    /// `reg.exe` said the key or value does not exist.
    Absent,
    /// Anything else: access denied, unexpected text.
    Unreadable { reason: String },
}

/// Interprets a `reg query` run. `reg.exe` exits 1 both for a missing key and for an
/// access error; only its "unable to find" message means "absent". That message is
/// localized on non-English Windows, where a missing key therefore reads as unreadable,
/// which the checks report as unknown rather than guessing.
pub fn read_reg(out: &crate::host::CmdOutput) -> RegRead {
    match out.exit_code {
        Some(0) => match parse_reg_query(&out.stdout) {
            Some(key) => RegRead::Present(key),
            None => RegRead::Unreadable {
                reason: "reg.exe printed no key".into(),
            },
        },
        Some(1) if out.stderr.to_ascii_lowercase().contains("unable to find") => RegRead::Absent,
        code => RegRead::Unreadable {
            reason: format!(
                "reg.exe exited with {}: {}",
                code.map_or_else(|| "a signal".to_owned(), |c| c.to_string()),
                out.stderr.trim().lines().next().unwrap_or("no message")
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_types_and_empty_data() {
        let out = "\r\nHKEY_CURRENT_USER\\Control Panel\\Desktop\r\n    ActiveWndTrackTimeout    REG_DWORD    0x0\r\n    ScreenSaveTimeOut    REG_SZ    600\r\n    Pattern Upgrade    REG_SZ    TRUE\r\n    WallPaper    REG_SZ    \r\n    Empty    REG_SZ\r\n\r\nHKEY_CURRENT_USER\\Control Panel\\Desktop\\Colors\r\n    Other    REG_SZ    1\r\n";
        let key = parse_reg_query(out).unwrap();
        assert_eq!(key.path, "HKEY_CURRENT_USER\\Control Panel\\Desktop");
        assert_eq!(key.u64("ScreenSaveTimeOut"), Some(600));
        assert_eq!(key.u64("activewndtracktimeout"), Some(0));
        assert_eq!(key.str("Pattern Upgrade"), Some("TRUE"));
        assert_eq!(key.str("WallPaper"), Some(""));
        assert_eq!(key.str("Empty"), Some(""));
        assert!(key.get("Other").is_none());
    }

    #[test]
    fn errors_are_not_keys() {
        assert!(parse_reg_query(
            "ERROR: The system was unable to find the specified registry key or value."
        )
        .is_none());
        assert!(parse_reg_query("").is_none());
    }
}
