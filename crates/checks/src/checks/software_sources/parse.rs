//! Pure readers for package-source configuration (apt, dnf/yum/zypper, pacman, Flatpak),
//! `spctl --status` (macOS Gatekeeper) and `reg.exe query` output (Windows SmartScreen).

use std::collections::BTreeMap;

use serde::Serialize;

/// One configuration line that lets software in without a valid signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Insecure {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line as written (trimmed).
    pub text: String,
    /// What the setting does, in words.
    pub why: String,
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on"
    )
}

fn is_false(value: &str) -> bool {
    matches!(
        value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
        "no" | "false" | "0" | "off"
    )
}

/// apt source options that skip or weaken signature checks, with what each does.
const APT_OPTIONS: &[(&str, &str)] = &[
    (
        "trusted",
        "packages from this source are trusted without a valid signature",
    ),
    (
        "allow-insecure",
        "apt accepts this source without a signed Release file",
    ),
    (
        "allow-downgrade-to-insecure",
        "apt accepts this source if its signature disappears",
    ),
    (
        "allow-weak",
        "apt accepts this source when signed with weak algorithms",
    ),
];

fn apt_option_why(key: &str, value: &str) -> Option<&'static str> {
    let key = key.trim().to_ascii_lowercase();
    APT_OPTIONS
        .iter()
        .find(|(k, _)| *k == key)
        .filter(|_| is_true(value))
        .map(|(_, why)| *why)
}

/// Reads one-line apt sources (`sources.list`, `*.list`):
/// `deb [trusted=yes arch=amd64] http://… suite component`.
pub fn parse_apt_one_line(text: &str) -> Vec<Insecure> {
    let mut found = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb-src")
            .or_else(|| line.strip_prefix("deb"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(options) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(o, _)| o)
        else {
            continue;
        };
        for option in options.split_whitespace() {
            let Some((key, value)) = option.split_once('=') else {
                continue;
            };
            if let Some(why) = apt_option_why(key.trim_end_matches(['+', '-']), value) {
                found.push(Insecure {
                    line: n + 1,
                    text: raw.trim().to_owned(),
                    why: why.to_owned(),
                });
            }
        }
    }
    found
}

/// Reads deb822 apt sources (`*.sources`): stanzas of `Field: value` lines separated by
/// blank lines; `Enabled: no` switches a stanza off.
pub fn parse_apt_deb822(text: &str) -> Vec<Insecure> {
    let mut found = Vec::new();
    let mut stanza: Vec<Insecure> = Vec::new();
    let mut enabled = true;
    let mut flush = |stanza: &mut Vec<Insecure>, enabled: &mut bool| {
        if *enabled {
            found.append(stanza);
        }
        stanza.clear();
        *enabled = true;
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            flush(&mut stanza, &mut enabled);
            continue;
        }
        if line.starts_with('#') || raw.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("enabled") && is_false(value) {
            enabled = false;
        }
        if let Some(why) = apt_option_why(key, value) {
            stanza.push(Insecure {
                line: n + 1,
                text: line.to_owned(),
                why: why.to_owned(),
            });
        }
    }
    flush(&mut stanza, &mut enabled);
    found
}

/// apt configuration (`apt.conf`, `apt.conf.d/*`) that turns signature checks off for every
/// source.
const APT_CONF_KEYS: &[(&str, &str)] = &[
    (
        "acquire::allowinsecurerepositories",
        "apt accepts sources without a signed Release file",
    ),
    (
        "acquire::allowdowngradetoinsecurerepositories",
        "apt accepts sources whose signature disappears",
    ),
    (
        "acquire::allowweakrepositories",
        "apt accepts sources signed with weak algorithms",
    ),
    (
        "apt::get::allowunauthenticated",
        "apt installs packages that cannot be authenticated",
    ),
];

/// Reads flat `Key::Path "value";` lines of apt configuration. (The nested `Acquire { … }`
/// form is rare for these switches and is not read.)
pub fn parse_apt_conf(text: &str) -> Vec<Insecure> {
    let mut found = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if let Some((_, why)) = APT_CONF_KEYS.iter().find(|(k, _)| *k == key) {
            if is_true(value.trim().trim_end_matches(';')) {
                found.push(Insecure {
                    line: n + 1,
                    text: raw.trim().to_owned(),
                    why: (*why).to_owned(),
                });
            }
        }
    }
    found
}

/// Reads an INI-style repository file (`*.repo` of dnf, yum and zypper). Every enabled
/// section whose `gpgcheck` is off — or unset while `default_gpgcheck` is off — is insecure.
pub fn parse_repo_ini(text: &str, default_gpgcheck: bool) -> Vec<Insecure> {
    struct Section {
        header_line: usize,
        header: String,
        enabled: bool,
        gpgcheck: Option<(bool, usize, String)>,
    }
    let mut sections: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            sections.push(Section {
                header_line: n + 1,
                header: line.to_owned(),
                enabled: true,
                gpgcheck: None,
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "enabled" => section.enabled = !is_false(value),
            "gpgcheck" => section.gpgcheck = Some((!is_false(value), n + 1, line.to_owned())),
            _ => {}
        }
    }
    sections
        .into_iter()
        .filter(|s| s.enabled && s.header != "[main]")
        .filter_map(|s| match s.gpgcheck {
            Some((false, line, text)) => Some(Insecure {
                line,
                text,
                why: format!(
                    "repository {} installs packages without checking their signatures",
                    s.header
                ),
            }),
            None if !default_gpgcheck => Some(Insecure {
                line: s.header_line,
                text: s.header.clone(),
                why: format!(
                    "repository {} sets no gpgcheck and the package manager's default is off",
                    s.header
                ),
            }),
            _ => None,
        })
        .collect()
}

/// `gpgcheck` in the `[main]` section of `dnf.conf` / `yum.conf`, if set.
pub fn main_gpgcheck(text: &str) -> Option<bool> {
    let mut in_main = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_main = line == "[main]";
            continue;
        }
        if in_main {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim().eq_ignore_ascii_case("gpgcheck") {
                    return Some(!is_false(v));
                }
            }
        }
    }
    None
}

/// Reads `pacman.conf`: a `SigLevel` (or `RemoteFileSigLevel`) that includes `Never` or
/// `Optional` lets unsigned packages in. `LocalFileSigLevel` (for `pacman -U` of local
/// files) and the `Database…` levels are left alone, as Arch ships them.
pub fn parse_pacman_conf(text: &str) -> Vec<Insecure> {
    let mut found = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key != "SigLevel" && key != "RemoteFileSigLevel" {
            continue;
        }
        if let Some(level) = value.split_whitespace().find(|w| {
            matches!(
                *w,
                "Never" | "Optional" | "PackageNever" | "PackageOptional"
            )
        }) {
            found.push(Insecure {
                line: n + 1,
                text: line.to_owned(),
                why: format!("{key} {level} lets unsigned packages be installed"),
            });
        }
    }
    found
}

/// Reads an OSTree/Flatpak repository `config`: a `[remote "…"]` with `gpg-verify=false`.
pub fn parse_flatpak_config(text: &str) -> Vec<Insecure> {
    let mut found = Vec::new();
    let mut remote: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            remote = line
                .strip_prefix("[remote \"")
                .and_then(|r| r.strip_suffix("\"]"))
                .map(str::to_owned);
            continue;
        }
        let (Some(name), Some((k, v))) = (&remote, line.split_once('=')) else {
            continue;
        };
        if k.trim() == "gpg-verify" && is_false(v) {
            found.push(Insecure {
                line: n + 1,
                text: line.to_owned(),
                why: format!("Flatpak remote {name} installs apps without checking signatures"),
            });
        }
    }
    found
}

/// Gatekeeper's state from `spctl --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gatekeeper {
    Enabled,
    Disabled,
}

pub fn parse_spctl_status(text: &str) -> Option<Gatekeeper> {
    let t = text.to_ascii_lowercase();
    if t.contains("assessments enabled") {
        Some(Gatekeeper::Enabled)
    } else if t.contains("assessments disabled") {
        Some(Gatekeeper::Disabled)
    } else {
        None
    }
}

/// One registry value from `reg.exe query` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegValue {
    pub kind: String,
    pub data: String,
}

/// Reads `reg.exe query KEY [/v NAME]` output: a key line (`HKEY_LOCAL_MACHINE\…`) followed
/// by indented `NAME    REG_TYPE    DATA` lines, fields separated by four spaces.
pub fn parse_reg_query(text: &str) -> BTreeMap<String, RegValue> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with("    ") {
            continue;
        }
        let fields: Vec<&str> = line
            .trim()
            .split("    ")
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if fields.len() >= 2 && fields[1].starts_with("REG_") {
            values.insert(
                fields[0].to_owned(),
                RegValue {
                    kind: fields[1].to_owned(),
                    data: fields.get(2..).map(|d| d.join("    ")).unwrap_or_default(),
                },
            );
        }
    }
    values
}

/// A `REG_DWORD` as reg.exe prints it (`0x1`).
pub fn reg_dword(v: &RegValue) -> Option<u32> {
    u32::from_str_radix(
        v.data
            .trim()
            .trim_start_matches("0x")
            .trim_start_matches("0X"),
        16,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_formats() {
        let f = parse_apt_one_line("deb [trusted=yes] http://x/ ./\n# deb [trusted=yes] http://y/ ./\ndeb [arch=amd64 signed-by=/k.gpg] http://z/ s main\ndeb [ allow-insecure=yes ] http://w/ s main\n");
        assert_eq!(f.iter().map(|i| i.line).collect::<Vec<_>>(), vec![1, 4]);
        let f = parse_apt_deb822("Types: deb\nURIs: http://a/\nTrusted: yes\n\nTypes: deb\nURIs: http://b/\nTrusted: yes\nEnabled: no\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].line, 3);
        assert_eq!(parse_apt_conf("Acquire::AllowInsecureRepositories \"true\";\nAPT::Get::AllowUnauthenticated \"false\";\n").len(), 1);
    }

    #[test]
    fn repo_ini_and_defaults() {
        let text = "[a]\nbaseurl=x\ngpgcheck=0\n[b]\ngpgcheck=1\n[c]\nenabled=0\ngpgcheck=0\n[d]\nbaseurl=y\n";
        assert_eq!(parse_repo_ini(text, true).len(), 1);
        assert_eq!(parse_repo_ini(text, false).len(), 2);
        assert_eq!(main_gpgcheck("[main]\ngpgcheck=True\n"), Some(true));
    }

    #[test]
    fn pacman_and_flatpak() {
        assert!(parse_pacman_conf(
            "SigLevel = Required DatabaseOptional\nLocalFileSigLevel = Optional\n"
        )
        .is_empty());
        assert_eq!(
            parse_pacman_conf("[custom]\nSigLevel = Optional TrustAll\n").len(),
            1
        );
        assert_eq!(
            parse_flatpak_config("[remote \"x\"]\ngpg-verify=false\n").len(),
            1
        );
    }

    #[test]
    fn reg_values() {
        let v = parse_reg_query("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\Windows\\System\r\n    EnableSmartScreen    REG_DWORD    0x0\r\n\r\n");
        assert_eq!(reg_dword(&v["EnableSmartScreen"]), Some(0));
    }
}
