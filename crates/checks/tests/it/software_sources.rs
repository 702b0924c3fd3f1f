//! `software_sources` against recorded package-source files (apt, dnf, pacman, Flatpak),
//! `spctl --status` and `reg.exe query` answers, and a no-panic sweep over its parsers.

use tandem_checks::checks::software_sources::{
    evaluate_linux, evaluate_macos, evaluate_windows, parse, LinuxProbe, SourceFile, SourceKind,
};
use tandem_checks::{CmdOutput, HostError};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_updates::mutations;

fn file(path: &str, kind: SourceKind, fixture: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        kind,
        text: Ok(read(fixture)),
    }
}

fn missing(path: &str, kind: SourceKind) -> SourceFile {
    SourceFile {
        path: path.into(),
        kind,
        text: Err(HostError::NotFound { path: path.into() }),
    }
}

#[test]
fn debian_machine_as_recorded_passes() {
    let probe = LinuxProbe {
        files: vec![
            missing("/etc/apt/sources.list", SourceKind::AptList),
            file(
                "/etc/apt/sources.list.d/debian.sources",
                SourceKind::AptSources,
                "software_sources/linux/apt-debian12.sources",
            ),
            file(
                "/etc/apt/apt.conf.d/99artifact-registry",
                SourceKind::AptConf,
                "software_sources/linux/apt-conf-artifact-registry.conf",
            ),
        ],
        dnf_main_gpgcheck: None,
    };
    let out = evaluate_linux(&probe);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("software_sources/linux/debian12.expected.json", &out);
}

#[test]
fn trusted_yes_and_apt_conf_switches_fail_naming_file_and_line() {
    let probe = LinuxProbe {
        files: vec![
            file(
                "/etc/apt/sources.list.d/caddy-fury.list",
                SourceKind::AptList,
                "software_sources/linux/apt-caddy-trusted.list",
            ),
            file(
                "/etc/apt/apt.conf.d/99lab",
                SourceKind::AptConf,
                "software_sources/linux/apt-conf-allow-insecure.conf",
            ),
        ],
        dnf_main_gpgcheck: None,
    };
    let out = evaluate_linux(&probe);
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.summary, "A software source skips signature checks: /etc/apt/sources.list.d/caddy-fury.list line 1 (and 2 more)");
    assert_snapshot("software_sources/linux/apt-insecure.expected.json", &out);
}

#[test]
fn deb822_disabled_stanzas_do_not_count() {
    let f = parse::parse_apt_deb822(&read(
        "software_sources/linux/apt-nodesource-trusted-disabled.sources",
    ));
    // The Trusted stanza is Enabled: no; the Allow-Insecure one is live.
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].text, "Allow-Insecure: yes");
}

#[test]
fn dnf_repos_and_their_default() {
    let fedora = || {
        file(
            "/etc/yum.repos.d/fedora.repo",
            SourceKind::DnfRepo,
            "software_sources/linux/fedora.repo",
        )
    };
    // Fedora's own repo: gpgcheck=1 (repo_gpgcheck=0 is about metadata, not packages).
    let dnf_conf =
        parse::main_gpgcheck(&read("software_sources/linux/dnf-conf-debian-package.conf"));
    assert_eq!(dnf_conf, Some(true));
    assert_eq!(
        evaluate_linux(&LinuxProbe {
            files: vec![fedora()],
            dnf_main_gpgcheck: dnf_conf
        })
        .status,
        Status::Pass
    );
    let probe = LinuxProbe {
        files: vec![
            fedora(),
            file(
                "/etc/yum.repos.d/dvd.repo",
                SourceKind::DnfRepo,
                "software_sources/linux/local-dvd-gpgcheck-off.repo",
            ),
        ],
        dnf_main_gpgcheck: dnf_conf,
    };
    let out = evaluate_linux(&probe);
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["insecure"].as_array().unwrap().len(), 2);
    assert_snapshot(
        "software_sources/linux/dnf-dvd-gpgcheck-off.expected.json",
        &out,
    );
    // The same file as a zypper repository reads the same way.
    assert_eq!(
        parse::parse_repo_ini(
            &read("software_sources/linux/local-dvd-gpgcheck-off.repo"),
            true
        )
        .len(),
        2
    );
}

#[test]
fn pacman_levels() {
    assert!(
        parse::parse_pacman_conf(&read("software_sources/linux/pacman-conf-arch.conf")).is_empty()
    );
    assert!(parse::parse_pacman_conf(&read(
        "software_sources/linux/pacman-conf-debian-package.conf"
    ))
    .is_empty());
    let never = parse::parse_pacman_conf(&read(
        "software_sources/linux/pacman-conf-siglevel-never.conf",
    ));
    assert_eq!(never.len(), 1);
    assert_eq!(never[0].line, 5);
    let probe = LinuxProbe {
        files: vec![file(
            "/etc/pacman.conf",
            SourceKind::PacmanConf,
            "software_sources/linux/pacman-conf-custom-repo-optional.conf",
        )],
        dnf_main_gpgcheck: None,
    };
    let out = evaluate_linux(&probe);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot(
        "software_sources/linux/pacman-custom-repo-optional.expected.json",
        &out,
    );
}

#[test]
fn flatpak_remotes() {
    assert!(parse::parse_flatpak_config(&read(
        "software_sources/linux/flatpak-repo-config-flathub.txt"
    ))
    .is_empty());
    let f = parse::parse_flatpak_config(&read(
        "software_sources/linux/flatpak-repo-config-no-gpg.txt",
    ));
    assert_eq!(f.len(), 1);
    assert!(f[0].why.contains("local-builds"));
}

#[test]
fn nothing_readable_is_unknown() {
    let probe = LinuxProbe {
        files: vec![
            missing("/etc/apt/sources.list", SourceKind::AptList),
            SourceFile {
                path: "/etc/pacman.conf".into(),
                kind: SourceKind::PacmanConf,
                text: Err(HostError::PermissionDenied {
                    path: "/etc/pacman.conf".into(),
                }),
            },
        ],
        dnf_main_gpgcheck: None,
    };
    let out = evaluate_linux(&probe);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("software_sources/linux/unreadable.expected.json", &out);
}

fn ok(stdout: &str, stderr: &str, code: i32) -> Result<CmdOutput, HostError> {
    Ok(CmdOutput {
        exit_code: Some(code),
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

#[test]
fn gatekeeper() {
    let out = evaluate_macos(&ok(
        &read("software_sources/macos/spctl-enabled.txt"),
        "",
        0,
    ));
    assert_eq!(out.status, Status::Pass);
    let out = evaluate_macos(&ok(
        &read("software_sources/macos/spctl-disabled.txt"),
        "",
        1,
    ));
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("software_sources/macos/spctl-disabled.expected.json", &out);
    let out = evaluate_macos(&ok(
        "",
        &read("software_sources/macos/spctl-unexpected.stderr.txt"),
        1,
    ));
    assert_eq!(out.status, Status::Unknown);
}

#[test]
fn smartscreen() {
    let absent = || {
        ok(
            "",
            &read("software_sources/windows/reg-not-found.stderr.txt"),
            1,
        )
    };
    // No policy, Explorer set to block ("RequireAdmin"): on.
    let out = evaluate_windows(
        &absent(),
        &ok(
            &read("software_sources/windows/reg-explorer-smartscreen-requireadmin.txt"),
            "",
            0,
        ),
    );
    assert_eq!(out.status, Status::Pass);
    // Neither value: Windows' default, on.
    let out = evaluate_windows(&absent(), &absent());
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["set_by"], "default");
    // Explorer "Off".
    let out = evaluate_windows(
        &absent(),
        &ok(
            &read("software_sources/windows/reg-explorer-smartscreen-off.txt"),
            "",
            0,
        ),
    );
    assert_eq!(out.status, Status::Fail);
    // Policy 0 wins over Explorer's setting.
    let out = evaluate_windows(
        &ok(
            &read("software_sources/windows/reg-policy-enablesmartscreen-0.txt"),
            "",
            0,
        ),
        &ok(
            &read("software_sources/windows/reg-explorer-smartscreen-requireadmin.txt"),
            "",
            0,
        ),
    );
    assert_eq!(out.status, Status::Fail);
    assert_eq!(out.details["set_by"], "group policy");
    assert_snapshot("software_sources/windows/policy-off.expected.json", &out);
    let out = evaluate_windows(
        &ok(
            "",
            &read("software_sources/windows/reg-access-denied.stderr.txt"),
            1,
        ),
        &absent(),
    );
    assert_eq!(out.status, Status::Unknown);
}

#[test]
fn no_software_sources_parser_panics_on_any_input() {
    let seeds: Vec<String> = [
        "software_sources/linux/apt-debian12.sources",
        "software_sources/linux/apt-nodesource-trusted-disabled.sources",
        "software_sources/linux/apt-caddy-trusted.list",
        "software_sources/linux/apt-conf-allow-insecure.conf",
        "software_sources/linux/fedora.repo",
        "software_sources/linux/pacman-conf-arch.conf",
        "software_sources/linux/flatpak-repo-config-no-gpg.txt",
        "software_sources/windows/reg-policy-enablesmartscreen-0.txt",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    for input in mutations(&seeds, 4000, 0x00c0_ffee) {
        let _ = parse::parse_apt_one_line(&input);
        let _ = parse::parse_apt_deb822(&input);
        let _ = parse::parse_apt_conf(&input);
        let _ = parse::parse_repo_ini(&input, false);
        let _ = parse::main_gpgcheck(&input);
        let _ = parse::parse_pacman_conf(&input);
        let _ = parse::parse_flatpak_config(&input);
        let _ = parse::parse_spctl_status(&input);
        for v in parse::parse_reg_query(&input).values() {
            let _ = parse::reg_dword(v);
        }
        let _ = evaluate_windows(&ok(&input, &input, 0), &ok(&input, "", 0));
    }
}
