//! Parser for `softwareupdate --list` (macOS).
//!
//! macOS 10.15 and later print pairs of lines (the second indented with a tab):
//! ```text
//! * Label: macOS Ventura 13.3.1-22E261
//!     Title: macOS Ventura 13.3.1, Version: 13.3.1, Size: 868648KiB, Recommended: YES, Action: restart,
//! ```
//! Older systems print `   * LABEL` followed by a tab-indented `TITLE (VERSION), SIZE [recommended] [restart]`.
//! "No new software available." means nothing is pending. The list itself does not mark
//! security content; titles such as "Security Update 2023-004", "Rapid Security Response"
//! or "Background Security Improvement" do.

use super::Update;

/// What the list said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacList {
    pub updates: Vec<Update>,
    /// Some update restarts (or shuts down) the Mac when installed.
    pub restart_required: bool,
}

fn is_security_title(text: &str) -> bool {
    text.to_ascii_lowercase().contains("security")
}

/// Parses `Title: T, Version: V, Size: S, Recommended: YES, Action: restart,` pairs.
fn parse_title_line(line: &str, update: &mut Update) -> bool {
    let mut restart = false;
    for part in line.split(", ") {
        let part = part.trim().trim_end_matches(',');
        if let Some((key, value)) = part.split_once(": ") {
            match key {
                "Title" => update.title = Some(value.trim().to_owned()),
                "Version" => update.version = Some(value.trim().to_owned()),
                "Action" => restart = matches!(value.trim(), "restart" | "shut down"),
                _ => {}
            }
        }
    }
    restart
}

/// Reads the list; an error when the tool reported a failure and listed nothing, or when the
/// output does not look like a list at all.
pub fn parse_list(text: &str) -> Result<MacList, String> {
    let mut list = MacList::default();
    let mut saw_found = false;
    let mut saw_none = false;
    let mut error_line: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("No new software available") {
            saw_none = true;
        } else if trimmed.starts_with("Software Update found the following") {
            saw_found = true;
        } else if let Some(label) = trimmed.strip_prefix("* Label: ") {
            list.updates.push(Update::named(label.trim()));
        } else if let Some(rest) = trimmed.strip_prefix("Title: ") {
            if let Some(u) = list.updates.last_mut() {
                let line = format!("Title: {rest}");
                list.restart_required |= parse_title_line(&line, u);
            }
        } else if let Some(label) = trimmed
            .strip_prefix("* ")
            .or_else(|| trimmed.strip_prefix("- "))
        {
            // The pre-10.15 format: the label alone; details on the next line.
            list.updates.push(Update::named(label.trim()));
        } else if line.starts_with('\t') && !trimmed.is_empty() {
            if let Some(u) = list.updates.last_mut() {
                if u.title.is_none() {
                    let title = trimmed
                        .split(" (")
                        .next()
                        .unwrap_or(trimmed)
                        .split(',')
                        .next()
                        .unwrap_or(trimmed);
                    u.title = Some(title.trim().to_owned());
                }
                list.restart_required |= trimmed.contains("[restart]");
            }
        } else if trimmed.to_ascii_lowercase().contains("error") && error_line.is_none() {
            error_line = Some(trimmed.to_owned());
        }
    }
    for u in &mut list.updates {
        u.security =
            is_security_title(&u.name) || u.title.as_deref().is_some_and(is_security_title);
    }
    if list.updates.is_empty() {
        if let Some(e) = error_line {
            return Err(format!("softwareupdate reported an error: {e}"));
        }
        if !saw_none {
            return Err(if saw_found {
                "softwareupdate announced updates but listed none that could be read".to_owned()
            } else {
                "softwareupdate gave neither a list nor \"No new software available\"".to_owned()
            });
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_pairs() {
        let l = parse_list("Software Update Tool\n\nFinding available software\nSoftware Update found the following new or updated software:\n* Label: Command Line Tools for Xcode 26.5-26.5\n\tTitle: Command Line Tools for Xcode 26.5, Version: 26.5, Size: 920416KiB, Recommended: YES,\n* Label: macOS Tahoe 26.5-25F71\n\tTitle: macOS Tahoe 26.5, Version: 26.5, Size: 3690218KiB, Recommended: YES, Action: restart,\n").unwrap();
        assert_eq!(l.updates.len(), 2);
        assert!(l.restart_required);
        assert_eq!(l.updates[1].version.as_deref(), Some("26.5"));
        assert_eq!(l.updates[1].title.as_deref(), Some("macOS Tahoe 26.5"));
    }

    #[test]
    fn none_error_and_silence() {
        assert!(parse_list(
            "Software Update Tool\n\nFinding available software\nNo new software available.\n"
        )
        .unwrap()
        .updates
        .is_empty());
        assert!(parse_list("Software Update Tool\n\nScan finished with error: network").is_err());
        assert!(parse_list("").is_err());
    }
}
