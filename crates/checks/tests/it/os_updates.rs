//! `os_updates` against recorded outputs of every tool it reads (apt, PackageKit, dnf,
//! zypper, pacman, softwareupdate, the Windows Update search and reg.exe), the deadline
//! logic, a no-panic sweep over every parser, and a live agreement test with apt.

use chrono::{DateTime, Duration, Utc};
use tandem_checks::checks::os_updates::{
    self, dnf, evaluate_apt, evaluate_dnf, evaluate_macos, evaluate_packagekit, evaluate_pacman,
    evaluate_windows, evaluate_zypper, macos, packagekit, pacman, windows, zypper, AptProbe,
    DnfProbe, MacProbe, PackageKitProbe, PacmanProbe, WindowsProbe, ZypperProbe,
};
use tandem_checks::{CheckContext, CmdOutput, HostError};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, now, read};

fn ok(stdout: &str, stderr: &str, exit_code: i32) -> Result<CmdOutput, HostError> {
    Ok(CmdOutput {
        exit_code: Some(exit_code),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

fn ctx() -> CheckContext {
    CheckContext::default()
}

fn stamp() -> Option<DateTime<Utc>> {
    Some("2026-11-28T09:30:00Z".parse().unwrap())
}

fn apt(stdout: &str, stderr: &str, exit_code: i32, reboot_required: bool) -> AptProbe {
    AptProbe {
        simulate: ok(stdout, stderr, exit_code),
        reboot_required,
        metadata_updated_at: stamp(),
    }
}

// ---- apt ----------------------------------------------------------------------------

#[test]
fn apt_many_updates_with_security_fixes() {
    let out = evaluate_apt(
        &apt(
            &read("os_updates/linux/apt-debian12-many-security.txt"),
            "",
            0,
            false,
        ),
        &ctx(),
        now(),
    );
    // Never seen before: first seen now, so every deadline is ahead and the check warns.
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["pending"], 106);
    assert_eq!(out.details["security"], 72);
    assert_eq!(out.details["deadline"], "2026-12-01T12:00:00Z");
    assert_snapshot(
        "os_updates/linux/apt-debian12-many-security.expected.json",
        &out,
    );
}

#[test]
fn apt_fails_once_a_security_update_is_past_its_grace() {
    let mut c = ctx();
    let seen = now() - Duration::days(4);
    c.first_seen.insert("os_updates/libgcrypt20".into(), seen);
    c.first_seen
        .insert("os_updates/bash".into(), now() - Duration::days(10));
    let out = evaluate_apt(
        &apt(
            &read("os_updates/linux/apt-debian12-many-security.txt"),
            "",
            0,
            false,
        ),
        &c,
        now(),
    );
    assert_eq!(out.status, Status::Fail);
    // libgcrypt20 is a security fix: 3 days of grace from 4 days ago.
    assert_eq!(
        out.details["deadline"],
        serde_json::json!(seen + Duration::days(3))
    );
    let bash = out.details["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bash")
        .unwrap();
    assert_eq!(
        bash["deadline"],
        serde_json::json!(now() - Duration::days(10) + Duration::days(14))
    );
    assert!(out.summary.contains("overdue since"), "{}", out.summary);
}

#[test]
fn a_fixed_it_deadline_overrides_a_later_grace() {
    let mut c = ctx();
    let fixed: DateTime<Utc> = "2026-11-29T17:00:00Z".parse().unwrap();
    c.policy.checks.os_updates.common.deadline = Some(fixed);
    let out = evaluate_apt(
        &apt(
            &read("os_updates/linux/apt-debian12-many-security.txt"),
            "",
            0,
            false,
        ),
        &c,
        now(),
    );
    assert_eq!(out.details["deadline"], serde_json::json!(fixed));
}

#[test]
fn apt_up_to_date_but_reboot_pending() {
    let out = evaluate_apt(
        &apt(&read("os_updates/linux/apt-up-to-date.txt"), "", 0, false),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Pass);
    let out = evaluate_apt(&apt("", "", 0, true), &ctx(), now());
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("os_updates/linux/apt-up-to-date.expected.json", &out);
}

#[test]
fn apt_failure_is_unknown_not_fail() {
    let out = evaluate_apt(
        &apt(
            "",
            &read("os_updates/linux/apt-error-stderr.txt"),
            100,
            false,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out.reason.unwrap().contains("exited with 100"));
}

// ---- PackageKit -----------------------------------------------------------------------

fn pk(answer: Result<serde_json::Value, HostError>) -> PackageKitProbe {
    PackageKitProbe {
        answer,
        reboot_files: Vec::new(),
        metadata_updated_at: stamp(),
    }
}

fn json_fixture(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap()
}

/// Recorded on this Debian 12 machine: PackageKit 1.2.6 (apt backend) on a private system
/// bus, asked through the check's own zbus code. Its apt backend marks as security only
/// packages whose first origin is the security archive (53 here), where the apt reading
/// counts every candidate also published there.
#[test]
fn packagekit_typical() {
    let out = evaluate_packagekit(
        &pk(Ok(json_fixture(
            "os_updates/linux/packagekit-debian12-live.json",
        ))),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["source"], "packagekit");
    assert_eq!(out.details["pending"], 102);
    assert_eq!(out.details["security"], 53);
    assert_snapshot(
        "os_updates/linux/packagekit-debian12-live.expected.json",
        &out,
    );
}

#[test]
fn packagekit_severity_bits_and_blocked_updates() {
    let out = evaluate_packagekit(
        &pk(Ok(json_fixture(
            "os_updates/linux/packagekit-severity-bits.json",
        ))),
        &ctx(),
        now(),
    );
    // The blocked kernel is not pending; openssl is a critical security fix.
    assert_eq!(out.details["pending"], 3);
    assert_eq!(out.details["security"], 2);
    assert_eq!(out.details["updates"][0]["severity"], "critical");
    assert_snapshot(
        "os_updates/linux/packagekit-severity-bits.expected.json",
        &out,
    );
    let out = evaluate_packagekit(
        &pk(Ok(json_fixture("os_updates/linux/packagekit-empty.json"))),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Pass);
}

#[test]
fn packagekit_failure_is_unknown() {
    let err = HostError::Dbus {
        what: "org.freedesktop.PackageKit GetUpdates".into(),
        message: "org.freedesktop.DBus.Error.NoReply: Remote peer disconnected".into(),
    };
    let out = evaluate_packagekit(&pk(Err(err)), &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
    let out = evaluate_packagekit(&pk(Ok(serde_json::json!({"not": "a list"}))), &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
}

// ---- dnf --------------------------------------------------------------------------------

fn dnf_probe(check: Result<CmdOutput, HostError>, info: Result<CmdOutput, HostError>) -> DnfProbe {
    DnfProbe {
        check_update: check,
        updateinfo: info,
        needs_restarting: Err(HostError::NotFound {
            path: "/usr/bin/needs-restarting".into(),
        }),
        metadata_updated_at: stamp(),
    }
}

#[test]
fn dnf_updates_with_security_advisories() {
    let p = dnf_probe(
        ok(
            &read("os_updates/linux/dnf-check-update-fedora.txt"),
            "",
            100,
        ),
        ok(&read("os_updates/linux/dnf-updateinfo-fedora.txt"), "", 0),
    );
    let out = evaluate_dnf(&p, &ctx(), now());
    assert_eq!(out.status, Status::Warn);
    // The obsoletes section is not counted; the wrapped texlive row is.
    assert_eq!(out.details["pending"], 10);
    assert_eq!(out.details["security"], 8);
    assert_snapshot("os_updates/linux/dnf-fedora.expected.json", &out);
}

#[test]
fn dnf_edge_no_advisories_and_nothing_pending() {
    // The advisories could not be read: the updates still count, as non-security.
    let p = dnf_probe(
        ok(
            &read("os_updates/linux/dnf-check-update-fedora.txt"),
            "",
            100,
        ),
        ok("", "Error: x", 1),
    );
    let out = evaluate_dnf(&p, &ctx(), now());
    assert_eq!(out.details["security"], 0);
    assert_eq!(out.details["notes"].as_array().unwrap().len(), 1);
    let p = dnf_probe(ok("", "", 0), ok("", "", 0));
    assert_eq!(evaluate_dnf(&p, &ctx(), now()).status, Status::Pass);
    // Exit 100 with nothing readable is not "up to date".
    let p = dnf_probe(ok("garbage\n", "", 100), ok("", "", 0));
    assert_eq!(evaluate_dnf(&p, &ctx(), now()).status, Status::Unknown);
}

#[test]
fn dnf_without_repositories_is_unknown() {
    // Recorded on Debian 12 with dnf 4.14 and no repositories configured.
    let p = dnf_probe(
        ok(
            "",
            &read("os_updates/linux/dnf-cacheonly-no-repos.stderr.txt"),
            1,
        ),
        ok("", "", 0),
    );
    let out = evaluate_dnf(&p, &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("os_updates/linux/dnf-no-repos.expected.json", &out);
}

// ---- zypper -----------------------------------------------------------------------------

fn zypper_probe(lu: Result<CmdOutput, HostError>, lp: Result<CmdOutput, HostError>) -> ZypperProbe {
    ZypperProbe {
        list_updates: lu,
        list_patches: lp,
        reboot_files: Vec::new(),
        metadata_updated_at: stamp(),
    }
}

#[test]
fn zypper_packages_and_security_patches() {
    let p = zypper_probe(
        ok(&read("os_updates/linux/zypper-lu-leap155.xml"), "", 100),
        ok(
            &read("os_updates/linux/zypper-lp-security-leap155.xml"),
            "",
            101,
        ),
    );
    let out = evaluate_zypper(&p, &ctx(), now());
    assert_eq!(out.status, Status::Warn);
    // Three packages (the blocked kernel left out) and one security patch.
    assert_eq!(out.details["pending"], 4);
    assert_eq!(out.details["security"], 1);
    assert_snapshot("os_updates/linux/zypper-leap155.expected.json", &out);
}

#[test]
fn zypper_edge_empty_and_no_repositories() {
    let p = zypper_probe(
        ok(&read("os_updates/linux/zypper-lu-empty.xml"), "", 0),
        ok(&read("os_updates/linux/zypper-lu-empty.xml"), "", 0),
    );
    assert_eq!(evaluate_zypper(&p, &ctx(), now()).status, Status::Pass);
    // Recorded: with no repositories zypper lists nothing and exits 0; that is not "up to date".
    let p = zypper_probe(
        ok(&read("os_updates/linux/zypper-lu-no-repos.xml"), "", 0),
        ok(&read("os_updates/linux/zypper-lp-no-repos.xml"), "", 0),
    );
    let out = evaluate_zypper(&p, &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("os_updates/linux/zypper-no-repos.expected.json", &out);
}

#[test]
fn zypper_locked_is_unknown() {
    // Recorded: another process held the zypp lock; zypper exits 7.
    let p = zypper_probe(
        ok(&read("os_updates/linux/zypper-lu-locked.xml"), "", 7),
        ok("", "", 7),
    );
    let out = evaluate_zypper(&p, &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
    assert!(out
        .reason
        .as_deref()
        .unwrap()
        .contains("System management is locked"));
}

// ---- pacman -----------------------------------------------------------------------------

fn pacman_probe(q: Result<CmdOutput, HostError>) -> PacmanProbe {
    PacmanProbe {
        query: q,
        reboot_files: Vec::new(),
        metadata_updated_at: stamp(),
    }
}

#[test]
fn pacman_typical_edge_failure() {
    let out = evaluate_pacman(
        &pacman_probe(ok(&read("os_updates/linux/pacman-qu-arch.txt"), "", 0)),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["pending"], 6, "firefox is ignored by IgnorePkg");
    assert_snapshot("os_updates/linux/pacman-arch.expected.json", &out);
    // Nothing to upgrade: pacman -Qu exits 1 with no output.
    assert_eq!(
        evaluate_pacman(&pacman_probe(ok("", "", 1)), &ctx(), now()).status,
        Status::Pass
    );
    // Recorded on Debian's pacman 6.0.2 with no repositories.
    let out = evaluate_pacman(
        &pacman_probe(ok(
            "",
            &read("os_updates/linux/pacman-qu-no-repos.stderr.txt"),
            1,
        )),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out
        .reason
        .unwrap()
        .contains("no usable package repositories"));
}

// ---- macOS ------------------------------------------------------------------------------

fn mac(stdout: &str, stderr: &str, code: i32) -> MacProbe {
    MacProbe {
        list: ok(stdout, stderr, code),
    }
}

#[test]
fn macos_typical_with_restart() {
    let out = evaluate_macos(
        &mac(
            &read("os_updates/macos/softwareupdate-tahoe-two.txt"),
            "",
            0,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["pending"], 2);
    assert_eq!(
        out.remediation.action,
        Some(tandem_proto::RemediationAction::OpenSettings {
            target: "x-apple.systempreferences:com.apple.preferences.softwareupdate".into()
        })
    );
    assert_snapshot(
        "os_updates/macos/softwareupdate-tahoe-two.expected.json",
        &out,
    );
}

#[test]
fn macos_edge_many_security_and_legacy_format() {
    let out = evaluate_macos(
        &mac(
            &read("os_updates/macos/softwareupdate-monterey-many.txt"),
            "",
            0,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.details["pending"], 5);
    assert_eq!(out.details["security"], 1);
    assert_snapshot(
        "os_updates/macos/softwareupdate-monterey-many.expected.json",
        &out,
    );
    let out = evaluate_macos(
        &mac(
            &read("os_updates/macos/softwareupdate-legacy-mojave.txt"),
            "",
            0,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.details["pending"], 2);
    assert_eq!(
        out.details["updates"][0]["title"],
        "macOS Mojave 10.14.6 Supplemental Update"
    );
    // "No new software available." arrives on stderr.
    let out = evaluate_macos(
        &mac(
            "",
            &read("os_updates/macos/softwareupdate-none.stderr.txt"),
            0,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Pass);
}

#[test]
fn macos_scan_error_is_unknown() {
    let out = evaluate_macos(
        &mac(
            "",
            &read("os_updates/macos/softwareupdate-scan-error.stderr.txt"),
            1,
        ),
        &ctx(),
        now(),
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot(
        "os_updates/macos/softwareupdate-scan-error.expected.json",
        &out,
    );
}

// ---- Windows ----------------------------------------------------------------------------

fn win(
    search: Result<CmdOutput, HostError>,
    reboot: [Result<CmdOutput, HostError>; 2],
) -> WindowsProbe {
    WindowsProbe {
        search,
        reboot_keys: reboot.into(),
    }
}

fn reg_absent() -> Result<CmdOutput, HostError> {
    ok("", &read("os_updates/windows/reg-not-found.stderr.txt"), 1)
}

#[test]
fn windows_typical() {
    let p = win(
        ok(&read("os_updates/windows/wua-win11-four.json"), "", 0),
        [reg_absent(), reg_absent()],
    );
    let out = evaluate_windows(&p, &ctx(), now());
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["pending"], 4);
    assert_eq!(out.details["security"], 2);
    assert_eq!(out.details["updates"][0]["name"], "KB5034123");
    assert_eq!(out.details["reboot_required"], false);
    assert_snapshot("os_updates/windows/wua-win11-four.expected.json", &out);
}

#[test]
fn windows_edge_nothing_pending_but_reboot_and_partial_search() {
    let p = win(
        ok(&read("os_updates/windows/wua-none.json"), "", 0),
        [
            ok(
                &read("os_updates/windows/reg-rebootrequired-present.txt"),
                "",
                0,
            ),
            reg_absent(),
        ],
    );
    let out = evaluate_windows(&p, &ctx(), now());
    assert_eq!(out.status, Status::Warn);
    assert_eq!(out.details["reboot_required"], true);
    assert_snapshot("os_updates/windows/wua-none-reboot.expected.json", &out);
    let p = win(
        ok(
            &read("os_updates/windows/wua-driver-only-partial.json"),
            "",
            0,
        ),
        [reg_absent(), reg_absent()],
    );
    let out = evaluate_windows(&p, &ctx(), now());
    assert_eq!(out.details["pending"], 1);
    assert_eq!(out.details["notes"].as_array().unwrap().len(), 1);
}

#[test]
fn windows_search_failure_is_unknown() {
    let p = win(
        ok("", &read("os_updates/windows/wua-com-error.stderr.txt"), 1),
        [reg_absent(), reg_absent()],
    );
    let out = evaluate_windows(&p, &ctx(), now());
    assert_eq!(out.status, Status::Unknown);
    assert!(out.reason.as_deref().unwrap().contains("0x8024402C"));
    assert_snapshot("os_updates/windows/wua-com-error.expected.json", &out);
}

// ---- no panic on any input --------------------------------------------------------------

/// A small deterministic generator (xorshift64*), so the sweep is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutated variants of each seed (truncations, byte flips, spliced lines, duplicated and
/// dropped lines, inserted separators) plus pure noise: `count` strings in all.
pub fn mutations(seeds: &[String], count: usize, seed: u64) -> Vec<String> {
    const SPICE: &[&str] = &[
        "\n",
        " ",
        "\t",
        ":",
        "=",
        "[",
        "]",
        "(",
        ")",
        "<",
        ">",
        "\"",
        ";",
        ",",
        "->",
        "/Sec.",
        "* Label: ",
        "0x",
        "é",
        "\u{feff}",
        "{",
        "}",
        "\r\n",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = seeds[i % seeds.len().max(1)].clone();
        let mut bytes = base.into_bytes();
        for _ in 0..1 + rng.below(6) {
            match rng.below(7) {
                0 if !bytes.is_empty() => bytes.truncate(rng.below(bytes.len())),
                1 if !bytes.is_empty() => {
                    let at = rng.below(bytes.len());
                    bytes[at] = (rng.next() & 0xFF) as u8;
                }
                2 => {
                    let at = rng.below(bytes.len() + 1);
                    let s = SPICE[rng.below(SPICE.len())].as_bytes();
                    bytes.splice(at..at, s.iter().copied());
                }
                3 if !bytes.is_empty() => {
                    let a = rng.below(bytes.len());
                    let b = (a + rng.below(200)).min(bytes.len());
                    let chunk = bytes[a..b].to_vec();
                    let at = rng.below(bytes.len() + 1);
                    bytes.splice(at..at, chunk);
                }
                4 if !bytes.is_empty() => {
                    let a = rng.below(bytes.len());
                    let b = (a + rng.below(80)).min(bytes.len());
                    bytes.drain(a..b);
                }
                5 => {
                    bytes = (0..rng.below(300))
                        .map(|_| SPICE[rng.below(SPICE.len())].as_bytes()[0])
                        .collect()
                }
                _ => bytes.extend((0..rng.below(40)).map(|_| (rng.next() & 0x7F) as u8)),
            }
        }
        out.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    out
}

#[test]
fn no_os_updates_parser_panics_on_any_input() {
    let seeds: Vec<String> = [
        "os_updates/linux/apt-debian12-many-security.txt",
        "os_updates/linux/dnf-check-update-fedora.txt",
        "os_updates/linux/dnf-updateinfo-fedora.txt",
        "os_updates/linux/zypper-lu-leap155.xml",
        "os_updates/linux/zypper-lp-security-leap155.xml",
        "os_updates/linux/zypper-lu-locked.xml",
        "os_updates/linux/pacman-qu-arch.txt",
        "os_updates/linux/packagekit-severity-bits.json",
        "os_updates/macos/softwareupdate-monterey-many.txt",
        "os_updates/macos/softwareupdate-legacy-mojave.txt",
        "os_updates/windows/wua-win11-four.json",
        "os_updates/windows/wua-driver-only-partial.json",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    for input in mutations(&seeds, 4000, 0x7a4d_3e21) {
        let _ = os_updates::apt::parse_simulate(&input);
        let _ = dnf::parse_check_update(&input);
        let _ = dnf::parse_updateinfo_list(&input);
        let _ = zypper::parse_xml(&input);
        let _ = pacman::parse_query_upgrades(&input);
        let _ = macos::parse_list(&input);
        let _ = windows::parse_search(&input);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&input) {
            let _ = packagekit::parse_updates(&v);
        }
        // The evaluations must not panic either, whatever the exit code.
        let p = win(
            ok(&input, &input, 0),
            [ok(&input, "", 1), ok(&input, "", 0)],
        );
        let _ = evaluate_windows(&p, &ctx(), now());
        let _ = evaluate_zypper(
            &zypper_probe(ok(&input, "", 100), ok(&input, "", 101)),
            &ctx(),
            now(),
        );
        let _ = evaluate_macos(&mac(&input, "", 0), &ctx(), now());
    }
}

// ---- live: agreement with apt -----------------------------------------------------------

/// On a Debian-family machine, the check's count of pending upgrades must match apt's own
/// `apt list --upgradable`. Both read the same cached metadata. Differences can only come
/// from phased updates (Ubuntu: listed by `apt list` but held back by the upgrade the check
/// simulates) — so the check's names must be a subset of apt's, and equal where nothing is
/// phased. (Packages "kept back" by `apt upgrade` are included by both: the simulation is a
/// `dist-upgrade`.)
#[tokio::test]
async fn os_updates_agrees_with_apt_list_upgradable() {
    if !std::path::Path::new("/usr/bin/apt").exists() {
        println!(
            "note: not a Debian-family machine; the apt agreement test has nothing to compare"
        );
        return;
    }
    let apt_list = std::process::Command::new("/usr/bin/apt")
        .args(["list", "--upgradable"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&apt_list.stdout)
        .lines()
        .filter(|l| l.contains("[upgradable from:"))
        .filter_map(|l| l.split('/').next().map(str::to_owned))
        .collect();
    let host = tandem_checks::RealHost::new();
    let probe = os_updates::probe_apt(&host).await;
    let out = evaluate_apt(&probe, &ctx(), chrono::Utc::now());
    assert_ne!(out.status, Status::Unknown, "{:?}", out.reason);
    let ours: std::collections::BTreeSet<String> = out.details["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    let phased: Vec<_> = listed.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&listed).collect();
    println!(
        "apt list --upgradable: {}; check: {}; only in apt's list (phased): {phased:?}",
        listed.len(),
        ours.len()
    );
    assert!(
        extra.is_empty(),
        "the check reports upgrades apt does not list: {extra:?}"
    );
    let ubuntu = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .contains("ID=ubuntu");
    if !ubuntu {
        // Debian does not phase updates: the two must agree exactly.
        assert_eq!(ours, listed);
    }
}
