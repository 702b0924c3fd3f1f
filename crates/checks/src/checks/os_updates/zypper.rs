//! Parser for `zypper --xmlout list-updates` and `list-patches` (openSUSE, SLES).
//!
//! Both print a `<stream>` with `<update kind="package|patch" name=… edition=…
//! edition-old=… category=… severity=…>` elements inside `<update-list>`; updates that the
//! solver cannot apply are listed in `<blocked-update-list>` instead. Problems arrive as
//! `<message type="error">` elements.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::Update;

/// One `<update>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZypperUpdate {
    pub kind: String,
    pub name: String,
    pub edition: Option<String>,
    pub edition_old: Option<String>,
    pub category: Option<String>,
    pub severity: Option<String>,
}

impl ZypperUpdate {
    pub fn to_update(&self) -> Update {
        Update {
            name: self.name.clone(),
            version: self.edition.clone(),
            current: self.edition_old.clone(),
            security: self.kind == "patch" && self.category.as_deref() == Some("security"),
            severity: self
                .severity
                .clone()
                .filter(|s| !s.is_empty() && s != "unspecified"),
            title: None,
        }
    }
}

/// What one zypper XML document said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZypperXml {
    /// Updates that can be installed (blocked ones are left out).
    pub updates: Vec<ZypperUpdate>,
    pub blocked: usize,
    /// The text of every `<message type="error">`.
    pub errors: Vec<String>,
    /// The text of every `<message type="warning">` (for example "No repositories
    /// defined", after which an empty list means nothing).
    pub warnings: Vec<String>,
}

fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Explicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Reads a zypper XML document. Malformed XML ends the reading where it breaks: what was
/// read so far is kept, and the breakage is reported as an error message.
pub fn parse_xml(xml: &str) -> ZypperXml {
    let mut reader = Reader::from_str(xml);
    let mut out = ZypperXml::default();
    let mut in_blocked = false;
    // The message being read, and whether it is an error (else a warning).
    let mut in_message: Option<(bool, String)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.name().as_ref() {
                "blocked-update-list" => in_blocked = true,
                "update" => {
                    let Some(name) = attribute(&e, "name") else {
                        continue;
                    };
                    if in_blocked {
                        out.blocked += 1;
                        continue;
                    }
                    out.updates.push(ZypperUpdate {
                        kind: attribute(&e, "kind").unwrap_or_else(|| "package".into()),
                        name,
                        edition: attribute(&e, "edition"),
                        edition_old: attribute(&e, "edition-old"),
                        category: attribute(&e, "category"),
                        severity: attribute(&e, "severity"),
                    });
                }
                "message" => match attribute(&e, "type").as_deref() {
                    Some("error") => in_message = Some((true, String::new())),
                    Some("warning") => in_message = Some((false, String::new())),
                    _ => {}
                },
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if let Some((_, text)) = in_message.as_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Ok(Event::End(e)) => match e.name().as_ref() {
                "blocked-update-list" => in_blocked = false,
                "message" => match in_message.take() {
                    Some((true, text)) => out.errors.push(text.trim().to_owned()),
                    Some((false, text)) => out.warnings.push(text.trim().to_owned()),
                    None => {}
                },
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                out.errors.push(format!("malformed zypper XML: {e}"));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_patches_blocked_and_errors() {
        let xml = r#"<?xml version='1.0'?>
<stream>
<message type="error">Repository 'x' is invalid.</message>
<update-status version="0.6">
<update-list>
<update kind="package" name="libzypp" edition="17.31.22-1.1" arch="x86_64" edition-old="17.31.15-1.1"><summary>s</summary></update>
<update kind="patch" name="openSUSE-SLE-15.5-2023-1" edition="1" arch="noarch" status="needed" category="security" severity="important"/>
</update-list>
<blocked-update-list>
<update kind="package" name="held" edition="2" arch="x86_64"/>
</blocked-update-list>
</update-status>
</stream>"#;
        let p = parse_xml(xml);
        assert_eq!(p.updates.len(), 2);
        assert_eq!(p.blocked, 1);
        assert_eq!(p.errors, vec!["Repository 'x' is invalid.".to_owned()]);
        assert!(p.updates[1].to_update().security);
        assert_eq!(
            p.updates[0].to_update().current.as_deref(),
            Some("17.31.15-1.1")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let p = parse_xml("<stream><update name=\"a\"></oops>");
        assert!(!p.errors.is_empty());
    }
}
