//! `auto_updates` against recorded `apt-config dump`, dnf-automatic, `defaults read` and
//! reg.exe outputs, and for real: `apt-config dump` with and without
//! `APT::Periodic::Unattended-Upgrade`, through a throwaway `APT_CONFIG`.

use tandem_checks::checks::auto_updates::{linux, macos, windows, AutoUpdates};
use tandem_checks::engine::{Check, Outcome};
use tandem_checks::CheckContext;
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_supported::{block_on, for_each_mutation, rerun_self, Machine, CHILD_ENV};

const DEBIAN: &str = "ID=debian\nVERSION_ID=\"12\"\nNAME=\"Debian GNU/Linux\"\n";
const FEDORA: &str = "ID=fedora\nVERSION_ID=41\nNAME=\"Fedora Linux\"\n";

fn apt(dump: (&str, i32, &str), installed: bool, timers: Option<(&str, &str)>) -> Outcome {
    let mut m = Machine::new("linux").os_release(DEBIAN).cmd(
        &linux::apt_config_cmd(),
        dump.1,
        dump.0,
        dump.2,
    );
    if installed {
        m = m.exists(linux::UNATTENDED_UPGRADE);
    }
    let (daily, upgrade) = timers.unwrap_or(("", ""));
    for (unit, state) in [
        ("apt-daily.timer", daily),
        ("apt-daily-upgrade.timer", upgrade),
    ] {
        if timers.is_some() {
            let code = if state == "enabled" { 0 } else { 1 };
            m = m.cmd(
                &linux::is_enabled_cmd(unit),
                code,
                &format!("{state}\n"),
                "",
            );
        } else {
            m = m.cmd(&linux::is_enabled_cmd(unit), 1, "", "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n");
        }
    }
    m.run(&AutoUpdates)
}

#[test]
fn apt_unattended_upgrades() {
    let on = read("auto_updates/linux/apt-config-dump-unattended.txt");
    let out = apt((&on, 0, ""), true, Some(("enabled", "enabled")));
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("auto_updates/linux/apt-unattended.expected.json", &out);
    let out = apt((&on, 0, ""), false, Some(("enabled", "enabled")));
    assert_eq!(
        out.status,
        Status::Fail,
        "configured but the package is missing"
    );
    assert_snapshot(
        "auto_updates/linux/apt-unattended-not-installed.expected.json",
        &out,
    );
    let out = apt((&on, 0, ""), true, Some(("enabled", "masked")));
    assert_eq!(out.status, Status::Fail, "the upgrade timer is masked");
    // Without systemd (containers) the timers cannot be read and do not count.
    let out = apt((&on, 0, ""), true, None);
    assert_eq!(out.status, Status::Pass);
}

#[test]
fn apt_default_debian_and_disabled() {
    let out = apt(
        (
            &read("auto_updates/linux/apt-config-dump-debian12-default.txt"),
            0,
            "",
        ),
        false,
        None,
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot(
        "auto_updates/linux/apt-debian12-default.expected.json",
        &out,
    );
    let out = apt(
        (
            &read("auto_updates/linux/apt-config-dump-periodic-disabled.txt"),
            0,
            "",
        ),
        true,
        None,
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot(
        "auto_updates/linux/apt-periodic-disabled.expected.json",
        &out,
    );
    let out = apt(
        (
            "",
            100,
            &read("auto_updates/linux/apt-config-syntax-error.stderr.txt"),
        ),
        true,
        None,
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("auto_updates/linux/apt-config-error.expected.json", &out);
}

fn dnf(conf: Option<&str>, states: [&str; 3]) -> Outcome {
    let mut m = Machine::new("linux").os_release(FEDORA);
    m = match conf {
        Some(c) => m.file(linux::DNF_AUTOMATIC_CONF, c.as_bytes()),
        None => m.no_file(linux::DNF_AUTOMATIC_CONF),
    };
    for (unit, state) in linux::DNF_TIMERS.iter().zip(states) {
        if state == "missing" {
            m = m.cmd(
                &linux::is_enabled_cmd(unit),
                1,
                "",
                &format!("Failed to get unit file state for {unit}: No such file or directory\n"),
            );
        } else {
            m = m.cmd(
                &linux::is_enabled_cmd(unit),
                i32::from(state != "enabled"),
                &format!("{state}\n"),
                "",
            );
        }
    }
    m.run(&AutoUpdates)
}

#[test]
fn dnf_automatic() {
    let apply = "[commands]\n#  What kind of upgrade to perform:\nupgrade_type = default\nrandom_sleep = 0\nnetwork_online_timeout = 60\ndownload_updates = yes\napply_updates = yes\n\n[emitters]\nemit_via = stdio\n";
    let download_only = apply.replace("apply_updates = yes", "apply_updates = no");
    let out = dnf(Some(apply), ["enabled", "disabled", "missing"]);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("auto_updates/linux/dnf-automatic-apply.expected.json", &out);
    let out = dnf(Some(&download_only), ["enabled", "disabled", "missing"]);
    assert_eq!(out.status, Status::Warn);
    let out = dnf(None, ["missing", "missing", "missing"]);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("auto_updates/linux/dnf-not-installed.expected.json", &out);
    let out = dnf(Some(&download_only), ["disabled", "enabled", "missing"]);
    assert_eq!(
        out.status,
        Status::Pass,
        "dnf-automatic-install.timer installs regardless of the file"
    );
}

#[test]
fn other_distributions_are_unknown() {
    let out = Machine::new("linux")
        .os_release("ID=arch\n")
        .run(&AutoUpdates);
    assert_eq!(out.status, Status::Unknown);
}

fn mac(defaults: (&str, i32, &str), managed: Option<&str>) -> Outcome {
    let m = Machine::new("macos").cmd(&macos::defaults_cmd(), defaults.1, defaults.0, defaults.2);
    let m = match managed {
        Some(rel) => m.file(macos::MANAGED_PLIST, read(rel).as_bytes()),
        None => m.no_file(macos::MANAGED_PLIST),
    };
    m.run(&AutoUpdates)
}

#[test]
fn macos_software_update() {
    let out = mac(
        (&read("auto_updates/macos/defaults-all-on.txt"), 0, ""),
        None,
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("auto_updates/macos/all-on.expected.json", &out);
    let out = mac(
        (&read("auto_updates/macos/defaults-critical-off.txt"), 0, ""),
        None,
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("auto_updates/macos/critical-off.expected.json", &out);
    let out = mac(
        (
            &read("auto_updates/macos/defaults-macos-install-off.txt"),
            0,
            "",
        ),
        None,
    );
    assert_eq!(out.status, Status::Warn);
    // A configuration profile wins over the local file.
    let out = mac(
        (&read("auto_updates/macos/defaults-critical-off.txt"), 0, ""),
        Some("auto_updates/macos/managed-softwareupdate.plist"),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("auto_updates/macos/managed-profile.expected.json", &out);
    // Never changed: every key at its default.
    let out = mac(
        (
            "",
            1,
            &read("auto_updates/macos/defaults-domain-missing.stderr.txt"),
        ),
        None,
    );
    assert_eq!(out.status, Status::Pass);
    let out = mac(("", 1, "defaults: permission denied\n"), None);
    assert_eq!(out.status, Status::Unknown);
}

fn win(au: (&str, i32, &str), service: (&str, i32, &str)) -> Outcome {
    Machine::new("windows")
        .cmd(&windows::au_cmd(), au.1, au.0, au.2)
        .cmd(&windows::service_cmd(), service.1, service.0, service.2)
        .run(&AutoUpdates)
}

#[test]
fn windows_update_policy() {
    let nf = read("screen_lock/windows/reg-not-found.stderr.txt");
    let manual = read("auto_updates/windows/wuauserv-manual.txt");
    let out = win(("", 1, &nf), (&manual, 0, ""));
    assert_eq!(
        out.status,
        Status::Pass,
        "no policy key: Windows' default is automatic"
    );
    assert_snapshot("auto_updates/windows/no-policy.expected.json", &out);
    let out = win(
        (
            &read("auto_updates/windows/au-scheduled-install.txt"),
            0,
            "",
        ),
        (&manual, 0, ""),
    );
    assert_eq!(out.status, Status::Pass);
    let out = win(
        (&read("auto_updates/windows/au-notify-download.txt"), 0, ""),
        (&manual, 0, ""),
    );
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("auto_updates/windows/notify-download.expected.json", &out);
    let out = win(
        (&read("auto_updates/windows/au-noautoupdate.txt"), 0, ""),
        (&manual, 0, ""),
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("auto_updates/windows/noautoupdate.expected.json", &out);
    let out = win(
        ("", 1, &nf),
        (&read("auto_updates/windows/wuauserv-disabled.txt"), 0, ""),
    );
    assert_eq!(out.status, Status::Fail);
    let out = win(
        (
            "",
            1,
            &read("screen_lock/windows/reg-access-denied.stderr.txt"),
        ),
        (&manual, 0, ""),
    );
    assert_eq!(out.status, Status::Unknown);
}

#[test]
fn parsers_survive_any_input() {
    for_each_mutation(
        &[
            "auto_updates/linux/apt-config-dump-unattended.txt",
            "auto_updates/macos/defaults-critical-off.txt",
            "auto_updates/macos/managed-softwareupdate.plist",
            "auto_updates/windows/au-scheduled-install.txt",
        ],
        |s| {
            let m = linux::parse_apt_dump(s);
            let _ = linux::periodic_on(
                m.get("APT::Periodic::Unattended-Upgrade")
                    .map(String::as_str),
            );
            let _ = linux::periodic_on(Some(s));
            let _ = linux::parse_dnf_automatic(s);
            let _ = linux::parse_is_enabled(&tandem_checks::CmdOutput {
                exit_code: Some(0),
                stdout: s.into(),
                stderr: s.into(),
            });
            let _ = macos::parse_defaults(s);
            let _ = macos::parse_managed(s.as_bytes());
        },
    );
}

const APT_TEST: &str = "auto_updates::real_apt_config_with_and_without_unattended_upgrade";

/// apt for real: the check's `apt-config dump` reads a throwaway configuration through
/// `APT_CONFIG` (set only in a re-executed child, so this process's environment is left
/// alone). The configuration points `Dir::Etc::Parts` at an empty directory so the
/// machine's own apt.conf.d cannot interfere. Debian-family machines only.
#[test]
fn real_apt_config_with_and_without_unattended_upgrade() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        return child(&scenario);
    }
    if !std::path::Path::new(linux::APT_CONFIG).exists() {
        eprintln!("note: apt-config is not installed; skipping");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tandem-apt-{}", std::process::id()));
    let parts = dir.join("apt.conf.d");
    std::fs::create_dir_all(&parts).unwrap();
    let base = format!(
        "Dir::Etc::Parts \"{}\";\nDir::Etc::Main \"/dev/null\";\n",
        parts.display()
    );
    let with = dir.join("with.conf");
    let without = dir.join("without.conf");
    std::fs::write(&with, format!("{base}APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n")).unwrap();
    std::fs::write(
        &without,
        format!("{base}APT::Periodic::Update-Package-Lists \"1\";\n"),
    )
    .unwrap();
    let result = std::panic::catch_unwind(|| {
        rerun_self(
            &[],
            APT_TEST,
            "with",
            &[("APT_CONFIG", &with.display().to_string())],
        );
        rerun_self(
            &[],
            APT_TEST,
            "without",
            &[("APT_CONFIG", &without.display().to_string())],
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn child(scenario: &str) {
    let host = tandem_checks::RealHost::new();
    if !tandem_checks::Host::os(&host).is_debian_like() {
        println!("note: not a Debian-family machine; nothing to check");
        return;
    }
    let out = block_on(AutoUpdates.run(&host, &CheckContext::default()));
    println!("{scenario}: {} — {}", out.status, out.summary);
    let settings = &out.details["settings"];
    match scenario {
        "with" => {
            assert_eq!(settings["unattended_upgrade"], "1", "{out:#?}");
            assert_eq!(settings["update_package_lists"], "1");
            // The verdict then rests on the package being installed.
            if std::path::Path::new(linux::UNATTENDED_UPGRADE).exists() {
                assert_ne!(out.status, Status::Unknown, "{out:#?}");
            } else {
                assert_eq!(out.status, Status::Fail, "{out:#?}");
                assert!(out.summary.contains("not installed"), "{out:#?}");
            }
        }
        "without" => {
            assert!(settings["unattended_upgrade"].is_null(), "{out:#?}");
            assert_eq!(out.status, Status::Fail, "{out:#?}");
            assert!(
                out.summary.contains("unattended upgrades are off"),
                "{out:#?}"
            );
        }
        other => panic!("unknown scenario {other}"),
    }
}
