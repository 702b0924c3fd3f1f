//! Pure readers for the local MFA signals: PAM configuration files (Linux) and
//! `dsregcmd /status` (Windows).

use std::collections::BTreeMap;

use serde::Serialize;

/// PAM modules that add a second factor to a password.
pub const SECOND_FACTOR_MODULES: &[&str] = &[
    "pam_google_authenticator",
    "pam_u2f",
    "pam_oath",
    "pam_duo",
    "pam_yubico",
];

/// One `auth` line that calls a second-factor module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PamSecondFactor {
    pub line: usize,
    pub module: String,
    pub control: String,
    /// `nullok`: users without an enrolled token pass without one.
    pub nullok: bool,
    /// The control makes the module's failure fail the sign-in (`required`, `requisite`,
    /// or a bracket form whose default is `bad` or `die`). `sufficient` and `optional`
    /// modules do not add a factor: they replace the password or are ignored.
    pub enforced: bool,
    /// The module's arguments (for example `authfile=` or `secret=` paths).
    pub args: Vec<String>,
}

/// Splits a PAM line into type, control, module and arguments; the control may be a
/// bracketed list with spaces (`[success=1 default=ignore]`).
fn split_pam_line(line: &str) -> Option<(&str, String, &str, Vec<String>)> {
    let line = line.trim();
    let (kind, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (control, rest) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        (rest[..=end].to_owned(), rest[end + 1..].trim_start())
    } else {
        let (c, r) = rest.split_once(char::is_whitespace)?;
        (c.to_owned(), r.trim_start())
    };
    let mut words = rest.split_whitespace();
    let module = words.next()?;
    Some((kind, control, module, words.map(str::to_owned).collect()))
}

fn module_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.strip_suffix(".so").unwrap_or(base)
}

fn is_enforcing(control: &str) -> bool {
    match control {
        "required" | "requisite" => true,
        c if c.starts_with('[') => c.contains("default=bad") || c.contains("default=die"),
        _ => false,
    }
}

/// Finds the second-factor modules in the `auth` stack of one PAM file.
pub fn parse_pam(text: &str) -> Vec<PamSecondFactor> {
    let mut found = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('@') {
            continue;
        }
        let Some((kind, control, module, args)) = split_pam_line(line) else {
            continue;
        };
        // A leading '-' only tells PAM not to log a missing module.
        if kind.trim_start_matches('-') != "auth" {
            continue;
        }
        let name = module_name(module);
        if !SECOND_FACTOR_MODULES.contains(&name) {
            continue;
        }
        found.push(PamSecondFactor {
            line: n + 1,
            module: name.to_owned(),
            enforced: is_enforcing(&control),
            control,
            nullok: args.iter().any(|a| a == "nullok"),
            args,
        });
    }
    found
}

/// Reads the `Key : Value` lines of `dsregcmd /status`. Section banners and blank lines are
/// skipped; a key that appears in several sections keeps its first value.
pub fn parse_dsregcmd(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('+') || line.starts_with('|') {
            continue;
        }
        if let Some((k, v)) = line.split_once(" : ").or_else(|| line.split_once(": ")) {
            let k = k.trim();
            if !k.is_empty() && !k.contains(' ') {
                map.entry(k.to_owned())
                    .or_insert_with(|| v.trim().to_owned());
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pam_controls() {
        let f = parse_pam("# c\nauth required pam_google_authenticator.so nullok\nauth [success=1 default=ignore] pam_u2f.so cue\n-auth sufficient /lib/security/pam_u2f.so\nauth [success=done default=die] pam_duo.so\npassword required pam_oath.so\n@include common-auth\n");
        assert_eq!(f.len(), 4);
        assert!(f[0].enforced && f[0].nullok);
        assert!(!f[1].enforced);
        assert!(!f[2].enforced);
        assert!(f[3].enforced);
        assert_eq!(f[3].line, 5);
    }

    #[test]
    fn dsregcmd_keys() {
        let m = parse_dsregcmd("+----+\n| User State |\n+----+\n\n                    NgcSet : YES\n                  NgcKeyId : {FA0DB076}\n");
        assert_eq!(m.get("NgcSet").map(String::as_str), Some("YES"));
    }
}
