//! Readers for the Windows probes of `os_updates`: the JSON that the Windows Update Agent
//! search script prints, and `reg.exe query` answers for the reboot-pending keys.
//!
//! The script prints `{"ResultCode": n, "Updates": [{"Title", "KBArticleIDs",
//! "MsrcSeverity", "Categories", "RebootRequired"}, …]}`. `ResultCode` is the
//! `OperationResultCode` of the search: 2 succeeded, 3 succeeded with errors, 4 failed,
//! 5 aborted. An update is a security update when it is in the Security Updates category
//! (`0FA1201D-4330-4FA8-8AE9-B877473B6441`) or carries an MSRC severity, which Microsoft
//! sets on security bulletins only.

use serde::Deserialize;

use super::Update;
use crate::host::CmdOutput;

pub const SECURITY_CATEGORY: &str = "0FA1201D-4330-4FA8-8AE9-B877473B6441";

/// PowerShell serialises a one-element collection as a scalar in some versions; accept both.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Option<String>>),
    One(String),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::Many(v) => v.into_iter().flatten().collect(),
            OneOrMany::One(s) => vec![s],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RawUpdate {
    #[serde(rename = "Title")]
    title: Option<String>,
    #[serde(rename = "KBArticleIDs")]
    kb_article_ids: Option<OneOrMany>,
    #[serde(rename = "MsrcSeverity")]
    msrc_severity: Option<String>,
    #[serde(rename = "Categories")]
    categories: Option<OneOrMany>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum UpdatesField {
    Many(Vec<RawUpdate>),
    One(Box<RawUpdate>),
}

#[derive(Debug, Clone, Deserialize)]
struct RawSearch {
    #[serde(rename = "ResultCode")]
    result_code: Option<i64>,
    #[serde(rename = "Updates")]
    updates: Option<UpdatesField>,
}

/// The search result as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsSearch {
    pub result_code: Option<i64>,
    pub updates: Vec<Update>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowsParseError {
    #[error("the Windows Update search printed no result")]
    Empty,
    #[error("the Windows Update search printed something other than its JSON result: {0}")]
    NotJson(String),
    #[error("the Windows Update search did not succeed (result code {0})")]
    Failed(i64),
}

fn to_update(raw: RawUpdate) -> Update {
    let title = raw.title.unwrap_or_default();
    let kbs = raw
        .kb_article_ids
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let categories = raw.categories.map(OneOrMany::into_vec).unwrap_or_default();
    let severity = raw.msrc_severity.filter(|s| !s.trim().is_empty());
    let security = severity.is_some()
        || categories
            .iter()
            .any(|c| c.eq_ignore_ascii_case(SECURITY_CATEGORY));
    let name = match kbs.first() {
        Some(kb) if !kb.is_empty() => format!("KB{}", kb.trim_start_matches("KB")),
        _ => title.clone(),
    };
    Update {
        name,
        version: None,
        current: None,
        security,
        severity,
        title: Some(title).filter(|t| !t.is_empty()),
    }
}

/// Reads the search script's output.
pub fn parse_search(stdout: &str) -> Result<WindowsSearch, WindowsParseError> {
    let text = stdout.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(WindowsParseError::Empty);
    }
    let raw: RawSearch =
        serde_json::from_str(text).map_err(|e| WindowsParseError::NotJson(e.to_string()))?;
    if let Some(code) = raw.result_code {
        if code >= 4 {
            return Err(WindowsParseError::Failed(code));
        }
    }
    let updates = match raw.updates {
        None => Vec::new(),
        Some(UpdatesField::Many(v)) => v.into_iter().map(to_update).collect(),
        Some(UpdatesField::One(u)) => vec![to_update(*u)],
    };
    Ok(WindowsSearch {
        result_code: raw.result_code,
        updates,
    })
}

/// Whether `reg.exe query KEY` found the key: exit 0 prints it; exit 1 with "unable to find
/// the specified registry key" means it is absent. Anything else is `None` (could not tell).
pub fn reg_key_exists(out: &CmdOutput) -> Option<bool> {
    match out.exit_code {
        Some(0) => Some(true),
        Some(1) => {
            let text = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
            text.contains("unable to find the specified registry key")
                .then_some(false)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_update_as_object_and_kb_naming() {
        let s = parse_search(r#"{"ResultCode":2,"Updates":{"Title":"2024-01 Cumulative Update (KB5034123)","KBArticleIDs":"5034123","MsrcSeverity":"Critical","Categories":["0FA1201D-4330-4FA8-8AE9-B877473B6441"]}}"#).unwrap();
        assert_eq!(s.updates.len(), 1);
        assert_eq!(s.updates[0].name, "KB5034123");
        assert!(s.updates[0].security);
    }

    #[test]
    fn failures() {
        assert_eq!(parse_search(""), Err(WindowsParseError::Empty));
        assert!(matches!(
            parse_search("Exception"),
            Err(WindowsParseError::NotJson(_))
        ));
        assert_eq!(
            parse_search(r#"{"ResultCode":4,"Updates":[]}"#),
            Err(WindowsParseError::Failed(4))
        );
    }
}
