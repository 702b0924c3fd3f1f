//! `os_updates`: pending operating-system updates, security updates among them, whether a
//! restart is needed, and — per pending update — when it was first seen and by when it must
//! be installed.
//!
//! # Platform behaviour
//! - Linux: PackageKit `GetUpdates` over the system D-Bus when the service exists (it covers
//!   apt, dnf, zypper and pacman on desktops); otherwise the native tools over cached
//!   metadata, never refreshing it and never needing root: `apt-get --simulate`,
//!   `dnf check-update` + `dnf updateinfo --list`, `zypper -x list-updates` +
//!   `list-patches`, `pacman -Qu`. Reboot required from `/run/reboot-required` (Debian),
//!   `/run/reboot-needed` (SUSE), `needs-restarting -r` (RHEL family) and PackageKit's
//!   prepared offline update.
//! - macOS: `softwareupdate --list --no-scan` (the last background scan; no network).
//! - Windows: the Windows Update Agent search `IsInstalled=0 and IsHidden=0` through
//!   PowerShell, offline against the last scan, and the reboot-pending registry keys.
//!
//! The platform is chosen by `host.os().family` at run time, so a recorded macOS or Windows
//! bundle replays on Linux. Every parser is pure and lives in its own module.

pub mod apt;
pub mod dnf;
pub mod macos;
pub mod packagekit;
pub mod pacman;
pub mod windows;
pub mod zypper;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tandem_proto::check::Evidence;
use tandem_proto::policy::OsUpdatesPolicy;
use tandem_proto::thresholds;
use tandem_proto::{CheckId, Owner, Remediation, RemediationAction, Status};

use crate::engine::{Check, CheckContext, Outcome};
use crate::host::{Cmd, CmdOutput, DbusQuery, Host, HostError};

pub struct OsUpdates;

pub const APT_GET: &str = "/usr/bin/apt-get";
pub const DNF: &str = "/usr/bin/dnf";
pub const NEEDS_RESTARTING: &str = "/usr/bin/needs-restarting";
pub const ZYPPER: &str = "/usr/bin/zypper";
pub const PACMAN: &str = "/usr/bin/pacman";
pub const SOFTWAREUPDATE: &str = "/usr/sbin/softwareupdate";
pub const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";
pub const REG: &str = r"C:\Windows\System32\reg.exe";

/// Programs this check's probes run.
pub const PROGRAMS: &[&str] = &[
    APT_GET,
    DNF,
    NEEDS_RESTARTING,
    ZYPPER,
    PACMAN,
    SOFTWAREUPDATE,
    POWERSHELL,
    REG,
];

/// One pending update, whatever tool reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    /// The package name (Linux), the update label (macOS) or the KB number, else the title
    /// (Windows). It keys the first-seen time: `os_updates/<name>`.
    pub name: String,
    /// The version on offer, when the tool says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The installed version, when the tool says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    pub security: bool,
    /// The vendor's severity word (`Important`, `critical`, …), when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// A human title where it differs from the name (macOS, Windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Update {
    pub fn named(name: impl Into<String>) -> Update {
        Update {
            name: name.into(),
            version: None,
            current: None,
            security: false,
            severity: None,
            title: None,
        }
    }
}

/// What a probe found, in a shape shared by every tool, before judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// `packagekit`, `apt`, `dnf`, `zypper`, `pacman`, `softwareupdate`, `windows_update`.
    pub source: &'static str,
    pub updates: Vec<Update>,
    pub reboot_required: bool,
    pub metadata_updated_at: Option<DateTime<Utc>>,
    pub evidence: Vec<Evidence>,
    /// Caveats worth showing (no security metadata, a fallback was used, …).
    pub notes: Vec<String>,
}

impl Findings {
    fn new(source: &'static str, updates: Vec<Update>) -> Findings {
        Findings {
            source,
            updates,
            reboot_required: false,
            metadata_updated_at: None,
            evidence: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// "Could not tell", with what was read so support can see why.
#[derive(Debug, Clone, PartialEq)]
pub struct CouldNotTell {
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

impl CouldNotTell {
    fn new(reason: impl Into<String>) -> CouldNotTell {
        CouldNotTell {
            reason: reason.into(),
            evidence: Vec::new(),
        }
    }

    fn with(mut self, evidence: Evidence) -> CouldNotTell {
        self.evidence.push(evidence);
        self
    }

    fn into_outcome(self) -> Outcome {
        let mut o = Outcome::unknown(self.reason);
        o.evidence = self.evidence;
        o
    }
}

/// The first lines of a tool's output, capped, for evidence.
pub(crate) fn excerpt(text: &str) -> String {
    let mut s: String = text.lines().take(20).collect::<Vec<_>>().join("\n");
    if s.len() > 2000 {
        let mut cut = 2000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

pub(crate) fn evidence(source: impl Into<String>, text: &str) -> Evidence {
    Evidence {
        source: source.into(),
        excerpt: excerpt(text),
    }
}

/// The line of a tool's error output that says what went wrong, for a one-line reason:
/// the first line that announces an error (`E:`, `Error:`, `error:`, `ERROR:`), else the
/// first non-empty line. (dnf, for one, prints a warning before its error.)
pub(crate) fn first_line(text: &str) -> &str {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let is_error = |l: &&str| {
        ["E:", "Error", "error:", "ERROR"]
            .iter()
            .any(|p| l.starts_with(p))
    };
    text.lines()
        .map(str::trim)
        .find(is_error)
        .or_else(|| lines.next())
        .unwrap_or("no message")
}

pub(crate) fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "a signal".to_owned(), |c| c.to_string())
}

/// Unwraps a command result, or says why the command could not tell anything.
fn command_output<'a>(
    cmd: &Cmd,
    result: &'a Result<CmdOutput, HostError>,
) -> Result<&'a CmdOutput, CouldNotTell> {
    result
        .as_ref()
        .map_err(|e| CouldNotTell::new(format!("{}: {e}", cmd.display())))
}

// ---------------------------------------------------------------------------------------
// Judgement: deadlines and status, shared by every platform.

/// Judges what a probe found against the policy, the first-seen times the agent keeps, and
/// "now". Pure.
///
/// Each pending update's deadline is its first-seen time plus `grace_days`
/// (`security_grace_days` for security updates), or IT's fixed `deadline` when earlier. An
/// update never seen before counts as first seen now. The check warns while every deadline
/// is ahead and fails once the earliest has passed.
pub fn judge(findings: Findings, ctx: &CheckContext, family: &str, now: DateTime<Utc>) -> Outcome {
    let policy = &ctx.policy.checks.os_updates;
    let mut items = Vec::with_capacity(findings.updates.len());
    let mut earliest: Option<DateTime<Utc>> = None;
    for u in &findings.updates {
        let first_seen = first_seen(&ctx.first_seen, &u.name, now);
        let deadline = deadline_for(policy, u.security, first_seen);
        earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
        let mut v = serde_json::to_value(u).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("first_seen".into(), json!(first_seen));
            obj.insert("deadline".into(), json!(deadline));
        }
        items.push(v);
    }
    let pending = findings.updates.len();
    let security = findings.updates.iter().filter(|u| u.security).count();
    let overdue = thresholds::os_updates(pending, false, earliest, now) == Status::Fail;
    let metadata_age_hours = findings
        .metadata_updated_at
        .map(|t| (now - t).num_hours().max(0));

    let (status, summary) = match (pending, findings.reboot_required) {
        (0, false) => (Status::Pass, "The system is up to date".to_owned()),
        (0, true) => (
            Status::Warn,
            "Updates are installed; restart to finish".to_owned(),
        ),
        (n, _) => {
            let what = if security == 0 {
                format!("{n} update{} waiting", plural(n))
            } else {
                let fixes = if security == 1 {
                    "a security fix"
                } else {
                    "security fixes"
                };
                format!(
                    "{n} update{} waiting, {security} of them {fixes}",
                    plural(n)
                )
            };
            let when = earliest
                .map(|d| d.format("%-d %b %Y").to_string())
                .unwrap_or_default();
            if overdue {
                (Status::Fail, format!("{what}; overdue since {when}"))
            } else {
                (Status::Warn, format!("{what}; install by {when}"))
            }
        }
    };
    Outcome {
        status,
        summary,
        reason: None,
        details: json!({
            "source": findings.source,
            "pending": pending,
            "security": security,
            "reboot_required": findings.reboot_required,
            "metadata_age_hours": metadata_age_hours,
            "deadline": earliest,
            "overdue": overdue,
            "notes": findings.notes,
            "updates": items,
        }),
        evidence: findings.evidence,
        remediation: if status == Status::Pass {
            Remediation::default()
        } else {
            remediation(family, pending == 0)
        },
        default_owner: Owner::User,
    }
}

fn first_seen(
    known: &BTreeMap<String, DateTime<Utc>>,
    name: &str,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    known
        .get(&format!("os_updates/{name}"))
        .copied()
        .unwrap_or(now)
}

/// Shared with the server's push preview (`tandem_proto::thresholds`).
fn deadline_for(
    policy: &OsUpdatesPolicy,
    security: bool,
    first_seen: DateTime<Utc>,
) -> DateTime<Utc> {
    thresholds::update_deadline(policy, security, first_seen)
}

fn remediation(family: &str, restart_only: bool) -> Remediation {
    let (open, action) = match family {
        "macos" => (
            "Open System Settings → General → Software Update.",
            RemediationAction::OpenSettings { target: "x-apple.systempreferences:com.apple.preferences.softwareupdate".into() },
        ),
        "windows" => (
            "Open Settings → Windows Update.",
            RemediationAction::OpenSettings { target: "ms-settings:windowsupdate".into() },
        ),
        _ => (
            "Open Software Updates (or run your distribution's update command, such as `sudo apt upgrade`, in a terminal).",
            RemediationAction::OpenSettings { target: "gnome-software --mode=updates".into() },
        ),
    };
    let steps = if restart_only {
        vec![
            "Save your work.".into(),
            "Restart the computer to finish installing updates.".into(),
        ]
    } else {
        vec![
            "Save your work.".into(),
            open.into(),
            "Install all available updates, then restart if asked.".into(),
        ]
    };
    Remediation {
        steps,
        action: Some(action),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

// ---------------------------------------------------------------------------------------
// Linux.

/// Files whose presence means a restart is needed to finish installed updates.
const REBOOT_FILES: &[&str] = &[
    "/run/reboot-required",
    "/run/reboot-needed",
    // PackageKit's offline update: downloaded, installed at the next restart.
    "/var/lib/PackageKit/prepared-update",
];

/// Package-metadata stamps, per tool; the first one that exists gives the cache age.
const APT_STAMPS: &[&str] = &[
    "/var/lib/apt/periodic/update-success-stamp",
    "/var/lib/apt/lists",
];
const DNF_STAMPS: &[&str] = &[
    "/var/cache/dnf/last_makecache",
    "/var/cache/dnf",
    "/var/cache/libdnf5",
];
const ZYPPER_STAMPS: &[&str] = &["/var/cache/zypp/raw"];
const PACMAN_STAMPS: &[&str] = &["/var/lib/pacman/sync"];

async fn stamp(host: &dyn Host, candidates: &[&str]) -> Option<DateTime<Utc>> {
    for path in candidates {
        if let Ok(t) = host.modified(path).await {
            return Some(t);
        }
    }
    None
}

/// Which reboot files exist.
async fn reboot_files(host: &dyn Host) -> Vec<String> {
    let mut found = Vec::new();
    for path in REBOOT_FILES {
        if host.modified(path).await.is_ok() {
            found.push((*path).to_owned());
        }
    }
    found
}

fn reboot_evidence(files: &[String]) -> Vec<Evidence> {
    files
        .iter()
        .map(|f| Evidence {
            source: f.clone(),
            excerpt: "present".into(),
        })
        .collect()
}

/// What the apt probe read.
#[derive(Debug, Clone)]
pub struct AptProbe {
    pub simulate: Result<CmdOutput, HostError>,
    pub reboot_required: bool,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn apt_simulate_cmd() -> Cmd {
    Cmd::new(
        APT_GET,
        &[
            "--simulate",
            "-o",
            "Debug::NoLocking=true",
            "-o",
            "APT::Get::Show-User-Simulation-Note=false",
            "-qq",
            "dist-upgrade",
        ],
    )
}

/// Runs the apt probe on a live or recorded host.
pub async fn probe_apt(host: &dyn Host) -> AptProbe {
    let simulate = host.run(&apt_simulate_cmd()).await;
    let reboot_required = !reboot_files(host).await.is_empty();
    let metadata_updated_at = stamp(host, APT_STAMPS).await;
    AptProbe {
        simulate,
        reboot_required,
        metadata_updated_at,
    }
}

/// Reads an apt simulation into findings. New packages pulled in by an upgrade are not
/// pending updates themselves; they are counted in a note.
pub fn apt_findings(probe: &AptProbe) -> Result<Findings, CouldNotTell> {
    let cmd = apt_simulate_cmd();
    let out = command_output(&cmd, &probe.simulate)?;
    let ev = evidence(cmd.display(), &out.stdout);
    if out.exit_code != Some(0) {
        return Err(CouldNotTell::new(format!(
            "apt-get exited with {}: {}",
            exit_text(out.exit_code),
            first_line(&out.stderr)
        ))
        .with(ev)
        .with(evidence("stderr", &out.stderr)));
    }
    let parsed = apt::parse_simulate(&out.stdout)
        .map_err(|e| CouldNotTell::new(e.to_string()).with(ev.clone()))?;
    let new_packages = parsed.iter().filter(|u| u.current.is_none()).count();
    let updates = parsed
        .into_iter()
        .filter(|u| u.current.is_some())
        .map(|u| Update {
            severity: None,
            title: None,
            security: u.security,
            version: Some(u.candidate),
            current: u.current,
            name: u.name,
        })
        .collect();
    let mut f = Findings::new("apt", updates);
    f.reboot_required = probe.reboot_required;
    f.metadata_updated_at = probe.metadata_updated_at;
    f.evidence.push(ev);
    if probe.reboot_required {
        f.evidence.push(Evidence {
            source: "reboot-required".into(),
            excerpt: "present".into(),
        });
    }
    if new_packages > 0 {
        f.notes.push(format!(
            "the upgrade also installs {new_packages} new package{}",
            plural(new_packages)
        ));
    }
    Ok(f)
}

/// Judges an apt probe. Pure: everything it needs is in its arguments.
pub fn evaluate_apt(probe: &AptProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match apt_findings(probe) {
        Ok(f) => judge(f, ctx, "linux", now),
        Err(e) => e.into_outcome(),
    }
}

/// What the PackageKit probe read.
#[derive(Debug, Clone)]
pub struct PackageKitProbe {
    pub answer: Result<serde_json::Value, HostError>,
    pub reboot_files: Vec<String>,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn packagekit_findings(probe: &PackageKitProbe) -> Result<Findings, CouldNotTell> {
    let what = DbusQuery::PackageKitGetUpdates.describe();
    let answer = probe
        .answer
        .as_ref()
        .map_err(|e| CouldNotTell::new(e.to_string()))?;
    let text = serde_json::to_string(answer).unwrap_or_default();
    let ev = Evidence {
        source: what,
        excerpt: excerpt(&text.chars().take(2000).collect::<String>()),
    };
    let updates = packagekit::parse_updates(answer)
        .map_err(|e| CouldNotTell::new(e.to_string()).with(ev.clone()))?;
    let mut f = Findings::new("packagekit", updates);
    f.reboot_required = !probe.reboot_files.is_empty();
    f.metadata_updated_at = probe.metadata_updated_at;
    f.evidence.push(ev);
    f.evidence.extend(reboot_evidence(&probe.reboot_files));
    Ok(f)
}

pub fn evaluate_packagekit(
    probe: &PackageKitProbe,
    ctx: &CheckContext,
    now: DateTime<Utc>,
) -> Outcome {
    match packagekit_findings(probe) {
        Ok(f) => judge(f, ctx, "linux", now),
        Err(e) => e.into_outcome(),
    }
}

/// What the dnf probe read.
#[derive(Debug, Clone)]
pub struct DnfProbe {
    pub check_update: Result<CmdOutput, HostError>,
    pub updateinfo: Result<CmdOutput, HostError>,
    /// `needs-restarting -r`; absent on systems without dnf-utils.
    pub needs_restarting: Result<CmdOutput, HostError>,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn dnf_check_update_cmd() -> Cmd {
    Cmd::new(DNF, &["--cacheonly", "--quiet", "check-update"])
}

pub fn dnf_updateinfo_cmd() -> Cmd {
    Cmd::new(DNF, &["--cacheonly", "--quiet", "updateinfo", "--list"])
}

pub fn needs_restarting_cmd() -> Cmd {
    Cmd::new(NEEDS_RESTARTING, &["-r"])
}

pub fn dnf_findings(probe: &DnfProbe) -> Result<Findings, CouldNotTell> {
    let cmd = dnf_check_update_cmd();
    let out = command_output(&cmd, &probe.check_update)?;
    let ev = evidence(cmd.display(), &out.stdout);
    // `dnf check-update` answers through its exit code: 0 nothing pending, 100 updates
    // pending; anything else is an error (for example no cache with --cacheonly).
    let mut updates = match out.exit_code {
        Some(0) | Some(100) => dnf::parse_check_update(&out.stdout),
        other => {
            return Err(CouldNotTell::new(format!(
                "dnf check-update exited with {}: {}",
                exit_text(other),
                first_line(&out.stderr)
            ))
            .with(ev)
            .with(evidence("stderr", &out.stderr)))
        }
    };
    if out.exit_code == Some(100) && updates.is_empty() {
        return Err(CouldNotTell::new(
            "dnf check-update reported updates but listed none that could be read",
        )
        .with(ev));
    }
    let mut f_notes = Vec::new();
    let mut extra_evidence = Vec::new();
    match &probe.updateinfo {
        Ok(info) if info.exit_code == Some(0) => {
            let advisories = dnf::parse_updateinfo_list(&info.stdout);
            dnf::mark_security(&mut updates, &advisories);
            extra_evidence.push(evidence(dnf_updateinfo_cmd().display(), &info.stdout));
        }
        Ok(info) => f_notes.push(format!(
            "security advisories unavailable (dnf updateinfo exited with {}: {})",
            exit_text(info.exit_code),
            first_line(&info.stderr)
        )),
        Err(e) => f_notes.push(format!("security advisories unavailable: {e}")),
    }
    let mut f = Findings::new("dnf", updates);
    f.metadata_updated_at = probe.metadata_updated_at;
    f.evidence.push(ev);
    f.evidence.extend(extra_evidence);
    // `needs-restarting -r` exits 1 when a restart is needed and 0 when not.
    if let Ok(nr) = &probe.needs_restarting {
        if nr.exit_code == Some(1) {
            f.reboot_required = true;
            f.evidence
                .push(evidence(needs_restarting_cmd().display(), &nr.stdout));
        }
    }
    f.notes = f_notes;
    Ok(f)
}

pub fn evaluate_dnf(probe: &DnfProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match dnf_findings(probe) {
        Ok(f) => judge(f, ctx, "linux", now),
        Err(e) => e.into_outcome(),
    }
}

/// What the zypper probe read.
#[derive(Debug, Clone)]
pub struct ZypperProbe {
    pub list_updates: Result<CmdOutput, HostError>,
    pub list_patches: Result<CmdOutput, HostError>,
    pub reboot_files: Vec<String>,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn zypper_list_updates_cmd() -> Cmd {
    Cmd::new(
        ZYPPER,
        &[
            "--non-interactive",
            "--no-refresh",
            "--xmlout",
            "list-updates",
        ],
    )
}

pub fn zypper_list_patches_cmd() -> Cmd {
    Cmd::new(
        ZYPPER,
        &[
            "--non-interactive",
            "--no-refresh",
            "--xmlout",
            "list-patches",
            "--category",
            "security",
        ],
    )
}

/// zypper's informational exit codes (`ZYPPER_EXIT_INF_*`): 100 updates needed, 101
/// security updates needed, 102 reboot needed, 103 restart of the package manager needed,
/// 106 some repositories were skipped. Everything else non-zero is an error.
fn zypper_exit_ok(code: Option<i32>) -> bool {
    matches!(code, Some(0) | Some(100..=103) | Some(106))
}

pub fn zypper_findings(probe: &ZypperProbe) -> Result<Findings, CouldNotTell> {
    let cmd = zypper_list_updates_cmd();
    let out = command_output(&cmd, &probe.list_updates)?;
    let ev = evidence(cmd.display(), &out.stdout);
    let parsed = zypper::parse_xml(&out.stdout);
    if !zypper_exit_ok(out.exit_code) || !parsed.errors.is_empty() && parsed.updates.is_empty() {
        let message = parsed
            .errors
            .first()
            .map(String::as_str)
            .unwrap_or_else(|| first_line(&out.stderr));
        return Err(CouldNotTell::new(format!(
            "zypper exited with {}: {message}",
            exit_text(out.exit_code)
        ))
        .with(ev)
        .with(evidence("stderr", &out.stderr)));
    }
    if let Some(w) = parsed
        .warnings
        .iter()
        .find(|w| w.starts_with("No repositories defined"))
    {
        return Err(CouldNotTell::new(format!("zypper cannot tell what is pending: {w}")).with(ev));
    }
    let mut updates: Vec<Update> = parsed
        .updates
        .iter()
        .filter(|u| u.kind == "package")
        .map(zypper::ZypperUpdate::to_update)
        .collect();
    let mut notes = Vec::new();
    let mut reboot = out.exit_code == Some(102) || !probe.reboot_files.is_empty();
    let mut extra = Vec::new();
    match &probe.list_patches {
        Ok(p) if zypper_exit_ok(p.exit_code) => {
            reboot |= p.exit_code == Some(102);
            let patches = zypper::parse_xml(&p.stdout);
            // Security patches are pending items of their own: zypper's XML does not say
            // which packages a patch updates.
            updates.extend(
                patches
                    .updates
                    .iter()
                    .filter(|u| u.kind == "patch" && u.category.as_deref() == Some("security"))
                    .map(zypper::ZypperUpdate::to_update),
            );
            extra.push(evidence(zypper_list_patches_cmd().display(), &p.stdout));
        }
        Ok(p) => notes.push(format!(
            "security patches unavailable (zypper exited with {})",
            exit_text(p.exit_code)
        )),
        Err(e) => notes.push(format!("security patches unavailable: {e}")),
    }
    let mut f = Findings::new("zypper", updates);
    f.reboot_required = reboot;
    f.metadata_updated_at = probe.metadata_updated_at;
    f.evidence.push(ev);
    f.evidence.extend(extra);
    f.evidence.extend(reboot_evidence(&probe.reboot_files));
    f.notes = notes;
    Ok(f)
}

pub fn evaluate_zypper(probe: &ZypperProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match zypper_findings(probe) {
        Ok(f) => judge(f, ctx, "linux", now),
        Err(e) => e.into_outcome(),
    }
}

/// What the pacman probe read.
#[derive(Debug, Clone)]
pub struct PacmanProbe {
    pub query: Result<CmdOutput, HostError>,
    pub reboot_files: Vec<String>,
    pub metadata_updated_at: Option<DateTime<Utc>>,
}

pub fn pacman_query_cmd() -> Cmd {
    Cmd::new(PACMAN, &["-Qu"])
}

pub fn pacman_findings(probe: &PacmanProbe) -> Result<Findings, CouldNotTell> {
    let cmd = pacman_query_cmd();
    let out = command_output(&cmd, &probe.query)?;
    let ev = evidence(cmd.display(), &out.stdout);
    let parsed = pacman::parse_query_upgrades(&out.stdout);
    // `pacman -Q` exits 1 when the query matched nothing, which for -Qu means "no
    // upgrades"; an error is exit 1 with an `error:` line on stderr.
    let failed = match out.exit_code {
        Some(0) => false,
        Some(1) => {
            out.stderr
                .lines()
                .any(|l| l.trim_start().starts_with("error:"))
                || !parsed.is_empty()
        }
        _ => true,
    };
    if failed {
        return Err(CouldNotTell::new(format!(
            "pacman exited with {}: {}",
            exit_text(out.exit_code),
            first_line(&out.stderr)
        ))
        .with(ev)
        .with(evidence("stderr", &out.stderr)));
    }
    let mut f = Findings::new("pacman", parsed);
    f.reboot_required = !probe.reboot_files.is_empty();
    f.metadata_updated_at = probe.metadata_updated_at;
    f.evidence.push(ev);
    f.notes.push(
        "pacman has no security metadata: every update gets the standard grace period".into(),
    );
    f.notes
        .push("pacman compares against the sync database as of the last `pacman -Sy`".into());
    Ok(f)
}

pub fn evaluate_pacman(probe: &PacmanProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match pacman_findings(probe) {
        Ok(f) => judge(f, ctx, "linux", now),
        Err(e) => e.into_outcome(),
    }
}

/// Linux: PackageKit first, then the native chain, stopping at the first tool that exists.
async fn run_linux(host: &dyn Host, ctx: &CheckContext) -> Outcome {
    let now = host.now();
    let reboot = reboot_files(host).await;
    let pk = host.dbus(&DbusQuery::PackageKitGetUpdates).await;
    let pk_note = match pk {
        Ok(answer) => {
            let metadata_updated_at = stamp(
                host,
                &[APT_STAMPS, DNF_STAMPS, ZYPPER_STAMPS, PACMAN_STAMPS].concat(),
            )
            .await;
            let probe = PackageKitProbe {
                answer: Ok(answer),
                reboot_files: reboot.clone(),
                metadata_updated_at,
            };
            match packagekit_findings(&probe) {
                Ok(f) => return judge(f, ctx, "linux", now),
                Err(e) => Some(format!(
                    "PackageKit answered but could not be read ({}); used the native tools",
                    e.reason
                )),
            }
        }
        // No bus or no PackageKit: the native tools are the normal path, not worth a note.
        Err(HostError::NotFound { .. })
        | Err(HostError::NotRecorded { .. })
        | Err(HostError::Unsupported { .. }) => None,
        Err(e) => Some(format!("PackageKit failed ({e}); used the native tools")),
    };
    let with_note = |mut outcome: Outcome| {
        if let (Some(note), Some(notes)) = (
            &pk_note,
            outcome
                .details
                .get_mut("notes")
                .and_then(|n| n.as_array_mut()),
        ) {
            notes.push(json!(note));
        }
        outcome
    };

    let apt = probe_apt(host).await;
    if !matches!(apt.simulate, Err(HostError::NotFound { .. })) {
        return with_note(evaluate_apt(&apt, ctx, now));
    }
    let check_update = host.run(&dnf_check_update_cmd()).await;
    if !matches!(check_update, Err(HostError::NotFound { .. })) {
        let updateinfo = host.run(&dnf_updateinfo_cmd()).await;
        let needs_restarting = host.run(&needs_restarting_cmd()).await;
        let metadata_updated_at = stamp(host, DNF_STAMPS).await;
        let probe = DnfProbe {
            check_update,
            updateinfo,
            needs_restarting,
            metadata_updated_at,
        };
        return with_note(evaluate_dnf(&probe, ctx, now));
    }
    let list_updates = host.run(&zypper_list_updates_cmd()).await;
    if !matches!(list_updates, Err(HostError::NotFound { .. })) {
        let list_patches = host.run(&zypper_list_patches_cmd()).await;
        let metadata_updated_at = stamp(host, ZYPPER_STAMPS).await;
        let probe = ZypperProbe {
            list_updates,
            list_patches,
            reboot_files: reboot,
            metadata_updated_at,
        };
        return with_note(evaluate_zypper(&probe, ctx, now));
    }
    let query = host.run(&pacman_query_cmd()).await;
    if !matches!(query, Err(HostError::NotFound { .. })) {
        let metadata_updated_at = stamp(host, PACMAN_STAMPS).await;
        let probe = PacmanProbe {
            query,
            reboot_files: reboot,
            metadata_updated_at,
        };
        return with_note(evaluate_pacman(&probe, ctx, now));
    }
    Outcome::unknown(match pk_note {
        Some(note) => format!("no supported package manager was found (apt, dnf, zypper, pacman); {note}"),
        None => "neither PackageKit nor a supported package manager (apt, dnf, zypper, pacman) was found".to_owned(),
    })
}

// ---------------------------------------------------------------------------------------
// macOS.

/// What the macOS probe read.
#[derive(Debug, Clone)]
pub struct MacProbe {
    pub list: Result<CmdOutput, HostError>,
}

/// `--no-scan` reuses the last background scan: no network, seconds instead of minutes.
pub fn softwareupdate_cmd() -> Cmd {
    Cmd::new(SOFTWAREUPDATE, &["--list", "--no-scan"]).timeout(std::time::Duration::from_secs(45))
}

pub fn macos_findings(probe: &MacProbe) -> Result<Findings, CouldNotTell> {
    let cmd = softwareupdate_cmd();
    let out = command_output(&cmd, &probe.list)?;
    // softwareupdate writes its banner and "No new software available." on stderr and the
    // list on stdout; read both.
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let ev = evidence(cmd.display(), &text);
    let parsed = macos::parse_list(&text).map_err(|e| CouldNotTell::new(e).with(ev.clone()))?;
    if out.exit_code != Some(0) && parsed.updates.is_empty() {
        return Err(CouldNotTell::new(format!(
            "softwareupdate exited with {}: {}",
            exit_text(out.exit_code),
            first_line(&out.stderr)
        ))
        .with(ev));
    }
    let reboot = parsed.restart_required;
    let mut f = Findings::new("softwareupdate", parsed.updates);
    f.evidence.push(ev);
    if reboot {
        f.notes
            .push("at least one update restarts the Mac when installed".into());
    }
    f.notes.push("macOS does not flag security updates in this list; titles naming security count as security".into());
    Ok(f)
}

pub fn evaluate_macos(probe: &MacProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match macos_findings(probe) {
        Ok(f) => judge(f, ctx, "macos", now),
        Err(e) => e.into_outcome(),
    }
}

// ---------------------------------------------------------------------------------------
// Windows.

/// What the Windows probe read.
#[derive(Debug, Clone)]
pub struct WindowsProbe {
    pub search: Result<CmdOutput, HostError>,
    /// Each reboot-pending registry query with its answer.
    pub reboot_keys: Vec<Result<CmdOutput, HostError>>,
}

/// The PowerShell search. `Online = $false` searches the metadata of the last scan (the one
/// Windows runs by itself) instead of contacting Windows Update, which can take minutes.
/// `ConvertTo-Json -InputObject` keeps a one-element or empty list a JSON array.
pub const WUA_SCRIPT: &str = "$ErrorActionPreference='Stop';\
$s=(New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher();\
$s.Online=$false;\
$r=$s.Search('IsInstalled=0 and IsHidden=0');\
$u=@($r.Updates|ForEach-Object{[pscustomobject]@{Title=$_.Title;KBArticleIDs=@($_.KBArticleIDs);MsrcSeverity=$_.MsrcSeverity;Categories=@($_.Categories|ForEach-Object{$_.CategoryID});RebootRequired=$_.RebootRequired}});\
ConvertTo-Json -Compress -Depth 4 -InputObject ([pscustomobject]@{ResultCode=[int]$r.ResultCode;Updates=$u})";

pub fn wua_cmd() -> Cmd {
    Cmd::new(
        POWERSHELL,
        &["-NoProfile", "-NonInteractive", "-Command", WUA_SCRIPT],
    )
    .timeout(std::time::Duration::from_secs(50))
}

/// Keys whose presence means Windows waits for a restart to finish servicing.
pub const REBOOT_KEYS: &[&str] = &[
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired",
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending",
];

pub fn reboot_key_cmd(key: &str) -> Cmd {
    Cmd::new(REG, &["query", key])
}

pub fn windows_findings(probe: &WindowsProbe) -> Result<Findings, CouldNotTell> {
    let cmd = wua_cmd();
    let out = command_output(&cmd, &probe.search)?;
    let ev = Evidence {
        source: "powershell: Windows Update Agent search".into(),
        excerpt: excerpt(&out.stdout),
    };
    if out.exit_code != Some(0) {
        return Err(CouldNotTell::new(format!(
            "the Windows Update search failed: {}",
            first_line(&out.stderr)
        ))
        .with(ev)
        .with(evidence("stderr", &out.stderr)));
    }
    let parsed = windows::parse_search(&out.stdout)
        .map_err(|e| CouldNotTell::new(e.to_string()).with(ev.clone()))?;
    let mut f = Findings::new("windows_update", parsed.updates);
    f.evidence.push(ev);
    if parsed.result_code == Some(3) {
        f.notes.push(
            "the Windows Update search finished with errors; the list may be incomplete".into(),
        );
    }
    for (key, answer) in REBOOT_KEYS.iter().zip(&probe.reboot_keys) {
        match answer.as_ref().map(windows::reg_key_exists) {
            Ok(Some(true)) => {
                f.reboot_required = true;
                f.evidence.push(Evidence {
                    source: format!("reg query {key}"),
                    excerpt: "present".into(),
                });
            }
            Ok(Some(false)) => {}
            Ok(None) => f.notes.push(format!("could not read {key}")),
            Err(e) => f.notes.push(format!("could not read {key}: {e}")),
        }
    }
    Ok(f)
}

pub fn evaluate_windows(probe: &WindowsProbe, ctx: &CheckContext, now: DateTime<Utc>) -> Outcome {
    match windows_findings(probe) {
        Ok(f) => judge(f, ctx, "windows", now),
        Err(e) => e.into_outcome(),
    }
}

#[async_trait]
impl Check for OsUpdates {
    fn id(&self) -> CheckId {
        CheckId::OsUpdates
    }

    async fn run(&self, host: &dyn Host, ctx: &CheckContext) -> Outcome {
        let now = host.now();
        match host.os().family.as_str() {
            "linux" => run_linux(host, ctx).await,
            "macos" => evaluate_macos(
                &MacProbe {
                    list: host.run(&softwareupdate_cmd()).await,
                },
                ctx,
                now,
            ),
            "windows" => {
                let search = host.run(&wua_cmd()).await;
                let mut reboot_keys = Vec::new();
                for key in REBOOT_KEYS {
                    reboot_keys.push(host.run(&reboot_key_cmd(key)).await);
                }
                evaluate_windows(
                    &WindowsProbe {
                        search,
                        reboot_keys,
                    },
                    ctx,
                    now,
                )
            }
            other => Outcome::unknown(format!("pending updates are not read on {other}")),
        }
    }
}
