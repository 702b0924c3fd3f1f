//! Parser for `pacman -Qu`: one line per upgradable package, `NAME OLD -> NEW`, with
//! ` [ignored]` appended for packages in `IgnorePkg` (pacman will not upgrade those).
//!
//! pacman compares the local database with the sync databases as of the last `pacman -Sy`;
//! it has no notion of security updates.

use super::Update;

/// Reads the upgradable packages. Lines that do not have the `NAME OLD -> NEW` shape are
/// skipped; ignored packages are left out because pacman will not install them.
pub fn parse_query_upgrades(stdout: &str) -> Vec<Update> {
    let mut updates = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[2] != "->" {
            continue;
        }
        if fields.get(4).is_some_and(|f| *f == "[ignored]") {
            continue;
        }
        updates.push(Update {
            name: fields[0].to_owned(),
            version: Some(fields[3].to_owned()),
            current: Some(fields[1].to_owned()),
            security: false,
            severity: None,
            title: None,
        });
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_packages_and_noise_are_skipped() {
        let u = parse_query_upgrades("linux 6.6.1.arch1-1 -> 6.6.2.arch1-1\nfirefox 120.0-1 -> 120.0.1-1 [ignored]\nwarning: x\n");
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].name, "linux");
        assert_eq!(u[0].current.as_deref(), Some("6.6.1.arch1-1"));
        assert_eq!(u[0].version.as_deref(), Some("6.6.2.arch1-1"));
    }
}
