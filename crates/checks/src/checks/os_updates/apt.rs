//! Parser for `apt-get --simulate dist-upgrade` output (Debian, Ubuntu and derivatives).
//!
//! The simulation reads cached package metadata only: no root, no network, no lock.
//! Each upgrade is an `Inst` line:
//! `Inst NAME [CURRENT] (CANDIDATE ORIGIN[, ORIGIN…] [ARCH]) …`; a package that is new
//! (pulled in as a dependency) has no `[CURRENT]`.

use serde::Serialize;

/// One pending package change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingUpdate {
    pub name: String,
    /// Installed version; `None` when the upgrade installs a new package.
    pub current: Option<String>,
    pub candidate: String,
    /// Archives the candidate comes from, e.g. `Debian-Security:12/stable-security`.
    pub origins: Vec<String>,
    pub security: bool,
}

/// An `Inst` line that did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected apt-get line {line_no}: {line}")]
pub struct AptParseError {
    pub line_no: usize,
    pub line: String,
}

/// True for archives that carry security fixes (`Debian-Security:…`, `Ubuntu:22.04/jammy-security`).
fn is_security_origin(origin: &str) -> bool {
    let lower = origin.to_ascii_lowercase();
    lower.contains("-security")
}

/// Parses the `Inst` lines of a simulated upgrade. Lines other than `Inst` (`Conf`, `Remv`,
/// notices) are skipped.
pub fn parse_simulate(stdout: &str) -> Result<Vec<PendingUpdate>, AptParseError> {
    let mut updates = Vec::new();
    for (n, line) in stdout.lines().enumerate() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let bad = || AptParseError {
            line_no: n + 1,
            line: line.to_owned(),
        };
        let (name, rest) = rest.split_once(' ').ok_or_else(bad)?;
        let rest = rest.trim_start();
        let (current, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (cur, r) = r.split_once(']').ok_or_else(bad)?;
                (Some(cur.to_owned()), r.trim_start())
            }
            None => (None, rest),
        };
        let inner = rest.strip_prefix('(').ok_or_else(bad)?;
        let close = inner.find(')').ok_or_else(bad)?;
        let inner = &inner[..close];
        let (candidate, origins) = inner.split_once(' ').ok_or_else(bad)?;
        // The architecture closes the parenthesis as ` [amd64]`; origins come before it.
        let origins = match origins.rfind(" [") {
            Some(i) => &origins[..i],
            None if origins.starts_with('[') => "",
            None => origins,
        };
        let origins: Vec<String> = origins
            .split(", ")
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        let security = origins.iter().any(|o| is_security_origin(o));
        updates.push(PendingUpdate {
            name: name.to_owned(),
            current,
            candidate: candidate.to_owned(),
            origins,
            security,
        });
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_new_install_and_security_origins() {
        let out = "Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])\n\
Inst linux-image-6.1.0-40-amd64 (6.1.153-1 Debian-Security:12/stable-security [amd64])\n\
Inst libpam-modules-bin [1.5.2-6+deb12u1] (1.5.2-6+deb12u3 Debian-Security:12/oldstable-security [amd64]) [libpam-modules:amd64 on libpam-modules-bin:amd64] [libpam-modules:amd64 ]\n";
        let u = parse_simulate(out).unwrap();
        assert_eq!(u.len(), 4);
        assert_eq!(u[0].name, "base-files");
        assert_eq!(u[0].current.as_deref(), Some("12.4+deb12u11"));
        assert_eq!(u[0].candidate, "12.4+deb12u15");
        assert!(!u[0].security);
        assert!(u[1].security);
        assert_eq!(u[1].origins.len(), 2);
        assert_eq!(u[2].current, None);
        assert!(u[3].security);
    }

    #[test]
    fn empty_output_means_nothing_pending() {
        assert!(parse_simulate("").unwrap().is_empty());
    }

    #[test]
    fn a_truncated_line_is_an_error_not_a_guess() {
        assert!(parse_simulate("Inst foo [1.0] (2.0").is_err());
        assert!(parse_simulate("Inst foo").is_err());
    }
}
