//! Identity facts: whether a user has MFA and when their password last changed, as IT's
//! identity provider knows them. They come from bulk imports (CSV or JSON, here) and from
//! sources polled on a schedule (`sources`), and reach agents through
//! `GET /api/v1/agent/identity`, matched to the device's user by email, else login.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::store::IdentityFact;

pub mod sources;

/// The source name bulk imports are recorded under.
pub const IMPORT_SOURCE: &str = "import";
pub const MAX_IMPORT_ROWS: usize = 100_000;
const MAX_FIELD: usize = 256;

/// Why an import was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("row {row}: {message}")]
pub struct ImportError {
    /// 1-based, counting the CSV header as row 1 (as a spreadsheet shows it).
    pub row: usize,
    pub message: String,
}

/// One row of an import, in JSON or CSV.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRow {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    mfa_enrolled: Option<bool>,
    #[serde(default)]
    password_changed_at: Option<DateTime<Utc>>,
    /// When the exporting system took the snapshot; the import time when missing.
    #[serde(default)]
    as_of: Option<DateTime<Utc>>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn check_row(row: usize, r: ImportRow, now: DateTime<Utc>) -> Result<IdentityFact, ImportError> {
    let err = |message: String| ImportError { row, message };
    let email = non_empty(r.email);
    let login = non_empty(r.login);
    if email.is_none() && login.is_none() {
        return Err(err("needs an email or a login".into()));
    }
    for (name, value) in [("email", &email), ("login", &login)] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD) {
            return Err(err(format!("{name} is longer than {MAX_FIELD} bytes")));
        }
    }
    let tomorrow = now + chrono::Duration::days(1);
    for (name, value) in [
        ("password_changed_at", r.password_changed_at),
        ("as_of", r.as_of),
    ] {
        if value.is_some_and(|t| t > tomorrow || t.timestamp() < 0) {
            return Err(err(format!(
                "{name} is out of range (it must lie between 1970 and tomorrow)"
            )));
        }
    }
    Ok(IdentityFact {
        email,
        login,
        mfa_enrolled: r.mfa_enrolled,
        password_changed_at: r.password_changed_at,
        source: IMPORT_SOURCE.to_owned(),
        as_of: r.as_of.unwrap_or(now),
    })
}

/// Parses a JSON array of rows.
pub fn parse_json(body: &[u8], now: DateTime<Utc>) -> Result<Vec<IdentityFact>, ImportError> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| ImportError {
        row: 0,
        message: format!("expected a JSON array of users: {e}"),
    })?;
    if rows.len() > MAX_IMPORT_ROWS {
        return Err(ImportError {
            row: MAX_IMPORT_ROWS + 1,
            message: format!("an import holds at most {MAX_IMPORT_ROWS} users"),
        });
    }
    rows.into_iter()
        .enumerate()
        .map(|(n, value)| {
            let row: ImportRow = serde_json::from_value(value).map_err(|e| ImportError {
                row: n + 1,
                message: e.to_string(),
            })?;
            check_row(n + 1, row, now)
        })
        .collect()
}

/// Parses CSV with a header row naming the columns (`email`, `login`, `mfa_enrolled`,
/// `password_changed_at`, `as_of`, in any order). Booleans are `true`/`false`, `yes`/`no` or
/// `1`/`0`; an empty cell is "unknown".
pub fn parse_csv(body: &[u8], now: DateTime<Utc>) -> Result<Vec<IdentityFact>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let header = reader.headers().map_err(|e| ImportError {
        row: 1,
        message: format!("unreadable header: {e}"),
    })?;
    let header: Vec<String> = header.iter().map(str::to_lowercase).collect();
    for name in &header {
        if !matches!(
            name.as_str(),
            "email" | "login" | "mfa_enrolled" | "password_changed_at" | "as_of"
        ) {
            return Err(ImportError {
                row: 1,
                message: format!("unknown column `{}`", name.escape_debug()),
            });
        }
    }
    let mut facts = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n + 2;
        if facts.len() == MAX_IMPORT_ROWS {
            return Err(ImportError {
                row,
                message: format!("an import holds at most {MAX_IMPORT_ROWS} users"),
            });
        }
        let record = record.map_err(|e| ImportError {
            row,
            message: e.to_string(),
        })?;
        let cell = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        let err = |message: String| ImportError { row, message };
        let mfa_enrolled = match cell("mfa_enrolled").map(str::to_lowercase).as_deref() {
            None => None,
            Some("true" | "yes" | "1") => Some(true),
            Some("false" | "no" | "0") => Some(false),
            Some(other) => {
                return Err(err(format!(
                    "mfa_enrolled `{}` is not true or false",
                    other.escape_debug()
                )))
            }
        };
        let time = |name: &str| {
            cell(name)
                .map(|v| {
                    DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| err(format!("{name} is not an RFC 3339 time: {e}")))
                })
                .transpose()
        };
        let parsed = ImportRow {
            email: cell("email").map(str::to_owned),
            login: cell("login").map(str::to_owned),
            mfa_enrolled,
            password_changed_at: time("password_changed_at")?,
            as_of: time("as_of")?,
        };
        facts.push(check_row(row, parsed, now)?);
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_with_columns_in_any_order() {
        let now = Utc::now();
        let body = b"login,mfa_enrolled,email,password_changed_at\n\
            ada,yes,Ada@Example.test,2024-01-02T03:04:05Z\n\
            grace,0,,\n\
            ,,linus@example.test,\n";
        let facts = parse_csv(body, now).unwrap();
        assert_eq!(facts.len(), 3);
        assert_eq!(facts[0].user_key().as_deref(), Some("ada@example.test"));
        assert_eq!(facts[0].mfa_enrolled, Some(true));
        assert_eq!(facts[1].user_key().as_deref(), Some("grace"));
        assert_eq!(facts[1].mfa_enrolled, Some(false));
        assert_eq!(facts[2].mfa_enrolled, None);
        assert!(facts
            .iter()
            .all(|f| f.source == IMPORT_SOURCE && f.as_of == now));
    }

    #[test]
    fn bad_rows_are_named() {
        let now = Utc::now();
        let e = parse_csv(b"email,mfa\nx@y,1\n", now).unwrap_err();
        assert_eq!(e.row, 1);
        let e = parse_csv(b"email,mfa_enrolled\nx@y,maybe\n", now).unwrap_err();
        assert_eq!(e.row, 2);
        let e = parse_csv(b"email,mfa_enrolled\n,true\n", now).unwrap_err();
        assert!(e.message.contains("email or a login"), "{e}");
        let e = parse_json(br#"[{"email": "a@b"}, {"login": 5}]"#, now).unwrap_err();
        assert_eq!(e.row, 2);
        let e = parse_json(
            br#"[{"email": "a@b", "password_changed_at": "9999-01-01T00:00:00Z"}]"#,
            now,
        )
        .unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        assert!(parse_json(br#"{"email": "a@b"}"#, now).is_err());
        assert!(parse_json(br#"[{"email": "a@b", "admin": true}]"#, now).is_err());
    }
}
