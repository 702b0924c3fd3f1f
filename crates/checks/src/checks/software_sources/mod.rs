//! `software_sources`: "don't install software from untrusted sources" — package sources
//! that skip signature checks, and the OS's own gate for downloaded apps.
//!
//! # Platform behaviour
//! - Linux: apt (`sources.list`, `sources.list.d/*.list` and deb822 `*.sources` options
//!   `trusted`, `allow-insecure`, `allow-weak`, `allow-downgrade-to-insecure`; `apt.conf`
//!   switches such as `Acquire::AllowInsecureRepositories`), dnf/yum and zypper `.repo`
//!   files with `gpgcheck` off (inheriting `dnf.conf`'s `[main]` default), `pacman.conf`
//!   `SigLevel` `Never`/`Optional`, Flatpak remotes with `gpg-verify=false`. Files only;
//!   nothing needs root.
//! - macOS: Gatekeeper, `spctl --status`.
//! - Windows: SmartScreen for apps and files: the Group Policy value `EnableSmartScreen`
//!   when set, else Explorer's `SmartScreenEnabled` (absent means the default, on).

pub mod parse;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::checks::os_updates::{evidence, exit_text, first_line};
use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, CmdOutput, Host, HostError};
use parse::Insecure;

pub struct SoftwareSources;

pub const SPCTL: &str = "/usr/sbin/spctl";
pub const REG: &str = crate::checks::os_updates::REG;

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[SPCTL, REG];

/// What kind of configuration a file is, which decides its parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    AptList,
    AptSources,
    AptConf,
    DnfRepo,
    ZypperRepo,
    PacmanConf,
    FlatpakConfig,
}

/// One configuration file as read.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    pub path: String,
    pub kind: SourceKind,
    pub text: Result<String, HostError>,
}

/// Everything the Linux probe read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinuxProbe {
    pub files: Vec<SourceFile>,
    /// `gpgcheck` from `dnf.conf`/`yum.conf` `[main]`, when set.
    pub dnf_main_gpgcheck: Option<bool>,
}

/// One insecure setting, with its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: String,
    #[serde(flatten)]
    pub insecure: Insecure,
}

/// Judges the Linux package sources. Pure.
pub fn evaluate_linux(probe: &LinuxProbe) -> Outcome {
    let mut findings: Vec<Finding> = Vec::new();
    let mut read = Vec::new();
    let mut unreadable = Vec::new();
    // dnf's built-in default for gpgcheck is off; Fedora and RHEL switch it on in dnf.conf.
    let dnf_default = probe.dnf_main_gpgcheck.unwrap_or(false);
    for file in &probe.files {
        let text = match &file.text {
            Ok(t) => t,
            Err(HostError::NotFound { .. }) => continue,
            Err(e) => {
                unreadable.push(format!("{}: {e}", file.path));
                continue;
            }
        };
        read.push(file.path.clone());
        let insecure = match file.kind {
            SourceKind::AptList => parse::parse_apt_one_line(text),
            SourceKind::AptSources => parse::parse_apt_deb822(text),
            SourceKind::AptConf => parse::parse_apt_conf(text),
            SourceKind::DnfRepo => parse::parse_repo_ini(text, dnf_default),
            // zypper checks signatures unless a repository says otherwise.
            SourceKind::ZypperRepo => parse::parse_repo_ini(text, true),
            SourceKind::PacmanConf => parse::parse_pacman_conf(text),
            SourceKind::FlatpakConfig => parse::parse_flatpak_config(text),
        };
        findings.extend(insecure.into_iter().map(|insecure| Finding {
            file: file.path.clone(),
            insecure,
        }));
    }
    let details = json!({"files_read": read, "unreadable": unreadable, "insecure": findings});
    if read.is_empty() {
        let mut o = Outcome::unknown(if unreadable.is_empty() {
            "no package-source configuration was found (apt, dnf, yum, zypper, pacman, Flatpak)"
                .to_owned()
        } else {
            format!(
                "package-source configuration could not be read: {}",
                unreadable.join("; ")
            )
        });
        o.details = details;
        return o;
    }
    if findings.is_empty() {
        return Outcome {
            status: Status::Pass,
            summary: format!(
                "All {} package-source file{} require signed software",
                read.len(),
                if read.len() == 1 { "" } else { "s" }
            ),
            reason: None,
            details,
            evidence: Vec::new(),
            remediation: Remediation::default(),
            default_owner: Owner::User,
        };
    }
    let first = &findings[0];
    let more = if findings.len() > 1 {
        format!(" (and {} more)", findings.len() - 1)
    } else {
        String::new()
    };
    Outcome {
        status: Status::Fail,
        summary: format!("A software source skips signature checks: {} line {}{more}", first.file, first.insecure.line),
        reason: None,
        evidence: findings.iter().map(|f| Evidence { source: format!("{} line {}", f.file, f.insecure.line), excerpt: f.insecure.text.clone() }).collect(),
        details,
        remediation: Remediation {
            steps: vec![
                "Remove the setting named above (for example `[trusted=yes]` or `gpgcheck=0`), or remove the source if you do not need it; this needs administrator rights.".into(),
                "If the source is needed, install its signing key instead of switching checks off. Ask IT if unsure.".into(),
            ],
            action: None,
        },
        default_owner: Owner::User,
    }
}

/// apt skips files in `*.d` directories with these endings (`Dir::Ignore-Files-Silently`).
fn apt_ignores(name: &str) -> bool {
    name.ends_with('~')
        || [".disabled", ".bak", ".save", ".orig", ".distUpgrade"]
            .iter()
            .any(|s| name.ends_with(s))
        || name.contains(".dpkg-")
        || name.contains(".ucf-")
}

async fn read_text(host: &dyn Host, path: &str) -> Result<String, HostError> {
    host.read_file(path)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

async fn read_dir_files(
    host: &dyn Host,
    dir: &str,
    kind_for: impl Fn(&str) -> Option<SourceKind>,
    out: &mut Vec<SourceFile>,
) {
    let Ok(names) = host.list_dir(dir).await else {
        return;
    };
    for name in names {
        if let Some(kind) = kind_for(&name) {
            let path = format!("{dir}/{name}");
            let text = read_text(host, &path).await;
            out.push(SourceFile { path, kind, text });
        }
    }
}

/// Reads the Linux package-source configuration.
pub async fn probe_linux(host: &dyn Host) -> LinuxProbe {
    let mut files = Vec::new();
    for (path, kind) in [
        ("/etc/apt/sources.list", SourceKind::AptList),
        ("/etc/apt/apt.conf", SourceKind::AptConf),
        ("/etc/pacman.conf", SourceKind::PacmanConf),
        ("/var/lib/flatpak/repo/config", SourceKind::FlatpakConfig),
    ] {
        files.push(SourceFile {
            path: path.into(),
            kind,
            text: read_text(host, path).await,
        });
    }
    if let Some(home) = host.os().home.clone().filter(|h| !h.is_empty()) {
        let path = format!("{home}/.local/share/flatpak/repo/config");
        let text = read_text(host, &path).await;
        files.push(SourceFile {
            path,
            kind: SourceKind::FlatpakConfig,
            text,
        });
    }
    read_dir_files(
        host,
        "/etc/apt/sources.list.d",
        |n| {
            if n.ends_with(".list") {
                Some(SourceKind::AptList)
            } else if n.ends_with(".sources") {
                Some(SourceKind::AptSources)
            } else {
                None
            }
        },
        &mut files,
    )
    .await;
    read_dir_files(
        host,
        "/etc/apt/apt.conf.d",
        |n| (!apt_ignores(n)).then_some(SourceKind::AptConf),
        &mut files,
    )
    .await;
    read_dir_files(
        host,
        "/etc/yum.repos.d",
        |n| n.ends_with(".repo").then_some(SourceKind::DnfRepo),
        &mut files,
    )
    .await;
    read_dir_files(
        host,
        "/etc/zypp/repos.d",
        |n| n.ends_with(".repo").then_some(SourceKind::ZypperRepo),
        &mut files,
    )
    .await;
    let mut dnf_main_gpgcheck = None;
    for conf in ["/etc/dnf/dnf.conf", "/etc/yum.conf"] {
        if let Ok(text) = read_text(host, conf).await {
            dnf_main_gpgcheck = parse::main_gpgcheck(&text);
            if dnf_main_gpgcheck.is_some() {
                break;
            }
        }
    }
    LinuxProbe {
        files,
        dnf_main_gpgcheck,
    }
}

pub fn spctl_cmd() -> Cmd {
    Cmd::new(SPCTL, &["--status"])
}

/// Judges `spctl --status`. Pure.
pub fn evaluate_macos(answer: &Result<CmdOutput, HostError>) -> Outcome {
    let out = match answer {
        Ok(o) => o,
        Err(e) => return Outcome::unknown(format!("spctl: {e}")),
    };
    let text = format!("{}{}", out.stdout, out.stderr);
    let ev = vec![evidence(spctl_cmd().display(), &text)];
    let (status, summary, remediation) = match parse::parse_spctl_status(&text) {
        Some(parse::Gatekeeper::Enabled) => (Status::Pass, "Gatekeeper checks downloaded apps".to_owned(), Remediation::default()),
        Some(parse::Gatekeeper::Disabled) => (
            Status::Fail,
            "Gatekeeper is off: apps from anywhere can run unchecked".to_owned(),
            Remediation {
                steps: vec![
                    "Open System Settings → Privacy & Security and, under Security, allow apps from the App Store and identified developers.".into(),
                    "Or run `sudo spctl --global-enable` in Terminal (`--master-enable` before macOS 15).".into(),
                ],
                action: Some(RemediationAction::OpenSettings { target: "x-apple.systempreferences:com.apple.preference.security".into() }),
            },
        ),
        None => {
            let mut o = Outcome::unknown(format!("spctl gave no assessment state (exit {}): {}", exit_text(out.exit_code), first_line(&text)));
            o.evidence = ev;
            return o;
        }
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: json!({"gatekeeper": parse::parse_spctl_status(&text)}),
        evidence: ev,
        remediation,
        default_owner: Owner::User,
    }
}

pub const SMARTSCREEN_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\System";
pub const SMARTSCREEN_POLICY_VALUE: &str = "EnableSmartScreen";
pub const SMARTSCREEN_EXPLORER_KEY: &str =
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Explorer";
pub const SMARTSCREEN_EXPLORER_VALUE: &str = "SmartScreenEnabled";

pub fn reg_value_cmd(key: &str, value: &str) -> Cmd {
    Cmd::new(REG, &["query", key, "/v", value])
}

/// A value read with `reg.exe query KEY /v NAME`: `Ok(None)` when the value does not exist.
fn reg_value(
    answer: &Result<CmdOutput, HostError>,
    name: &str,
) -> Result<Option<parse::RegValue>, String> {
    let out = answer.as_ref().map_err(|e| e.to_string())?;
    match out.exit_code {
        Some(0) => Ok(parse::parse_reg_query(&out.stdout).remove(name)),
        Some(1)
            if format!("{}{}", out.stdout, out.stderr)
                .to_ascii_lowercase()
                .contains("unable to find") =>
        {
            Ok(None)
        }
        other => Err(format!(
            "reg.exe exited with {}: {}",
            exit_text(other),
            first_line(&out.stderr)
        )),
    }
}

/// Judges SmartScreen from the policy and Explorer values. Pure.
pub fn evaluate_windows(
    policy: &Result<CmdOutput, HostError>,
    explorer: &Result<CmdOutput, HostError>,
) -> Outcome {
    let mut ev = Vec::new();
    let policy_value = match reg_value(policy, SMARTSCREEN_POLICY_VALUE) {
        Ok(v) => v,
        Err(e) => return Outcome::unknown(format!("{SMARTSCREEN_POLICY_KEY}: {e}")),
    };
    let (on, source) = if let Some(v) = &policy_value {
        ev.push(Evidence {
            source: format!(r"{SMARTSCREEN_POLICY_KEY}\{SMARTSCREEN_POLICY_VALUE}"),
            excerpt: v.data.clone(),
        });
        match parse::reg_dword(v) {
            Some(d) => (d != 0, "group policy"),
            None => {
                return Outcome::unknown(format!(
                    "unexpected {SMARTSCREEN_POLICY_VALUE} value {}",
                    v.data
                ))
            }
        }
    } else {
        match reg_value(explorer, SMARTSCREEN_EXPLORER_VALUE) {
            Ok(Some(v)) => {
                ev.push(Evidence {
                    source: format!(r"{SMARTSCREEN_EXPLORER_KEY}\{SMARTSCREEN_EXPLORER_VALUE}"),
                    excerpt: v.data.clone(),
                });
                // "Off" switches it off; "Warn", "Prompt", "RequireAdmin" (block) keep it on.
                (!v.data.trim().eq_ignore_ascii_case("off"), "settings")
            }
            Ok(None) => (true, "default"),
            Err(e) => return Outcome::unknown(format!("{SMARTSCREEN_EXPLORER_KEY}: {e}")),
        }
    };
    let details = json!({"smartscreen": if on { "on" } else { "off" }, "set_by": source});
    if on {
        Outcome {
            status: Status::Pass,
            summary: format!("SmartScreen checks downloaded apps and files ({source})"),
            reason: None,
            details,
            evidence: ev,
            remediation: Remediation::default(),
            default_owner: Owner::User,
        }
    } else {
        Outcome {
            status: Status::Fail,
            summary: format!("SmartScreen is off ({source}): downloaded apps run unchecked"),
            reason: None,
            details,
            evidence: ev,
            remediation: Remediation {
                steps: vec![
                    "Open Windows Security → App & browser control → Reputation-based protection.".into(),
                    "Turn on \"Check apps and files\". If it is greyed out, IT set it by policy: ask them.".into(),
                ],
                action: Some(RemediationAction::OpenSettings { target: "windowsdefender://appbrowser".into() }),
            },
            default_owner: Owner::User,
        }
    }
}

#[async_trait]
impl Check for SoftwareSources {
    fn id(&self) -> CheckId {
        CheckId::SoftwareSources
    }

    async fn run(&self, host: &dyn Host, _ctx: &CheckContext) -> Outcome {
        match host.os().family.as_str() {
            "linux" => evaluate_linux(&probe_linux(host).await),
            "macos" => evaluate_macos(&host.run(&spctl_cmd()).await),
            "windows" => {
                let policy = host
                    .run(&reg_value_cmd(
                        SMARTSCREEN_POLICY_KEY,
                        SMARTSCREEN_POLICY_VALUE,
                    ))
                    .await;
                let explorer = host
                    .run(&reg_value_cmd(
                        SMARTSCREEN_EXPLORER_KEY,
                        SMARTSCREEN_EXPLORER_VALUE,
                    ))
                    .await;
                evaluate_windows(&policy, &explorer)
            }
            other => Outcome::unknown(format!("software sources are not read on {other}")),
        }
    }
}
