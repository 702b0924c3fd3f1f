//! Parsers for dnf's cached-metadata views (Fedora, RHEL and their rebuilds).
//!
//! `dnf check-update` prints one `NAME.ARCH  VERSION  REPOSITORY` row per pending update,
//! wrapping a long name onto a line of its own, and ends with an `Obsoleting Packages`
//! section that repeats packages. `dnf updateinfo --list` prints one `ADVISORY TYPE NEVRA`
//! row per affected package, where TYPE is `bugfix`, `enhancement`, `newpackage` or, for
//! security advisories, `<Severity>/Sec.` (`Important/Sec.`); dnf5's `advisory list` prints
//! a header and `NAME TYPE SEVERITY NEVRA ISSUED` rows instead.

use super::Update;

/// Reads `dnf check-update` rows.
pub fn parse_check_update(stdout: &str) -> Vec<Update> {
    let mut updates: Vec<Update> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for line in stdout.lines() {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("obsoleting packages") {
            break;
        }
        if trimmed.is_empty()
            || lower.starts_with("last metadata expiration check")
            || lower.starts_with("security:")
            || lower.starts_with("available upgrades")
            || lower.starts_with("updating and loading repositories")
            || lower.starts_with("repositories loaded")
        {
            pending.clear();
            continue;
        }
        pending.extend(trimmed.split_whitespace().map(str::to_owned));
        if pending.len() < 3 {
            // A long name wraps: its version and repository follow on the next line.
            continue;
        }
        let fields = std::mem::take(&mut pending);
        let Some((name, _arch)) = fields[0].rsplit_once('.') else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        updates.push(Update {
            name: name.to_owned(),
            version: Some(fields[1].clone()),
            current: None,
            security: false,
            severity: None,
            title: None,
        });
    }
    updates
}

/// One advisory row of `dnf updateinfo --list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    pub id: String,
    pub security: bool,
    pub severity: Option<String>,
    /// The package name, parsed from the row's NEVRA.
    pub package: String,
}

/// `openssl-libs-1:3.1.1-4.fc39.x86_64` → `openssl-libs`: drop the architecture, then the
/// release and the (epoch:)version.
pub fn nevra_name(nevra: &str) -> Option<&str> {
    let (nevr, _arch) = nevra.rsplit_once('.')?;
    let (nev, _release) = nevr.rsplit_once('-')?;
    let (name, _version) = nev.rsplit_once('-')?;
    (!name.is_empty()).then_some(name)
}

/// Reads `dnf updateinfo --list` (dnf4) or `dnf advisory list` (dnf5) rows.
pub fn parse_updateinfo_list(stdout: &str) -> Vec<Advisory> {
    let mut advisories = Vec::new();
    let mut dnf5_columns = false;
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"Name") && fields.get(1) == Some(&"Type") {
            dnf5_columns = true;
            continue;
        }
        if fields.len() < 3 {
            continue;
        }
        let (kind, severity, nevra) = if dnf5_columns && fields.len() >= 4 {
            (
                fields[1],
                Some(fields[2]).filter(|s| *s != "None"),
                fields[3],
            )
        } else {
            let kind = fields[1];
            let severity = kind.strip_suffix("/Sec.");
            (
                if severity.is_some() { "security" } else { kind },
                severity,
                fields[fields.len() - 1],
            )
        };
        let Some(package) = nevra_name(nevra) else {
            continue;
        };
        advisories.push(Advisory {
            id: fields[0].to_owned(),
            security: kind.eq_ignore_ascii_case("security"),
            severity: severity.map(str::to_owned),
            package: package.to_owned(),
        });
    }
    advisories
}

fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "critical" => 4,
        "important" => 3,
        "moderate" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// Marks the updates that a security advisory covers, with the highest severity seen.
pub fn mark_security(updates: &mut [Update], advisories: &[Advisory]) {
    for u in updates.iter_mut() {
        for a in advisories
            .iter()
            .filter(|a| a.security && a.package == u.name)
        {
            u.security = true;
            let better = match (&u.severity, &a.severity) {
                (None, Some(_)) => true,
                (Some(old), Some(new)) => severity_rank(new) > severity_rank(old),
                _ => false,
            };
            if better {
                u.severity = a.severity.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_rows_and_obsoletes() {
        let out = "\nkernel.x86_64   6.5.6-300.fc39   updates\npython3-a-very-long-package-name-indeed.noarch\n                 1.2-3.fc39       updates\nObsoleting Packages\ngrub2-tools.x86_64 1:2.06-100.fc39 updates\n";
        let u = parse_check_update(out);
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].name, "python3-a-very-long-package-name-indeed");
        assert_eq!(u[1].version.as_deref(), Some("1.2-3.fc39"));
    }

    #[test]
    fn nevra_names() {
        assert_eq!(
            nevra_name("dhcp-client-12:4.4.2-11.b1.fc34.x86_64"),
            Some("dhcp-client")
        );
        assert_eq!(
            nevra_name("kernel-core-5.13.4-200.fc34.x86_64"),
            Some("kernel-core")
        );
        assert_eq!(nevra_name("nonsense"), None);
    }

    #[test]
    fn security_advisories_mark_updates_with_their_highest_severity() {
        let adv = parse_updateinfo_list(
            "FEDORA-1 Moderate/Sec.  curl-7.76.1-7.fc34.x86_64\nFEDORA-2 Critical/Sec.  curl-7.76.1-7.fc34.x86_64\nFEDORA-3 bugfix vim-9.1-1.fc34.x86_64\n",
        );
        let mut u = vec![Update::named("curl"), Update::named("vim")];
        mark_security(&mut u, &adv);
        assert!(u[0].security);
        assert_eq!(u[0].severity.as_deref(), Some("Critical"));
        assert!(!u[1].security);
    }
}
