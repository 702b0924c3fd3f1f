//! `firewall` against recorded ufw, nft, socketfilterfw, system_profiler and PowerShell
//! outputs, and for real: the nftables probe inside fresh network namespaces with and
//! without a ruleset (root only).

use tandem_checks::checks::firewall::{linux, macos, nft, windows, Firewall};
use tandem_checks::engine::Check;
use tandem_checks::{CheckContext, CmdOutput, HostError};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_supported::{block_on, for_each_mutation, is_root, rerun_self, Machine, CHILD_ENV};

/// A Linux machine with neither ufw nor firewalld installed.
fn bare_linux() -> Machine {
    Machine::new("linux")
        .no_file(linux::UFW_CONF)
        .missing(&linux::firewalld_cmd())
}

#[test]
fn linux_ufw_enabled_and_active() {
    let out = Machine::new("linux")
        .file(
            linux::UFW_CONF,
            read("firewall/linux/ufw-enabled.conf").as_bytes(),
        )
        .cmd(&linux::ufw_unit_cmd(), 0, "active\n", "")
        .run(&Firewall);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/linux/ufw-enabled.expected.json", &out);
}

#[test]
fn linux_ufw_enabled_but_service_inactive_falls_through_to_nft() {
    let out = Machine::new("linux")
        .file(
            linux::UFW_CONF,
            read("firewall/linux/ufw-enabled.conf").as_bytes(),
        )
        .cmd(&linux::ufw_unit_cmd(), 3, "inactive\n", "")
        .missing(&linux::firewalld_cmd())
        .cmd(
            &linux::nft_cmd(),
            0,
            &read("firewall/linux/nft-empty.json"),
            "",
        )
        .run(&Firewall);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("firewall/linux/ufw-inactive-nft-empty.expected.json", &out);
}

#[test]
fn linux_firewalld_running_and_not_running() {
    let out = Machine::new("linux")
        .no_file(linux::UFW_CONF)
        .cmd(&linux::firewalld_cmd(), 0, "running\n", "")
        .run(&Firewall);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/linux/firewalld-running.expected.json", &out);
    // Exit 252 is firewall-cmd's "not running": an answer, so the ruleset decides.
    let out = Machine::new("linux")
        .no_file(linux::UFW_CONF)
        .cmd(&linux::firewalld_cmd(), 252, "", "not running\n")
        .cmd(
            &linux::nft_cmd(),
            0,
            &read("firewall/linux/nft-jump-reject.json"),
            "",
        )
        .run(&Firewall);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot(
        "firewall/linux/firewalld-stopped-nft-rules.expected.json",
        &out,
    );
}

#[test]
fn linux_nft_rulesets() {
    for (case, status) in [
        ("nft-empty", Status::Fail),
        ("nft-drop-policy", Status::Pass),
        ("nft-jump-reject", Status::Pass),
        ("nft-debian-default-accept", Status::Fail),
        ("nft-docker-no-input", Status::Fail),
    ] {
        let out = bare_linux()
            .cmd(
                &linux::nft_cmd(),
                0,
                &read(&format!("firewall/linux/{case}.json")),
                "",
            )
            .run(&Firewall);
        assert_eq!(out.status, status, "{case}: {out:#?}");
        assert_snapshot(&format!("firewall/linux/{case}.expected.json"), &out);
    }
}

#[test]
fn linux_ruleset_unreadable_without_root() {
    let stderr = read("firewall/linux/nft-nonroot.stderr.txt");
    // No manager installed: nothing to go on.
    let out = bare_linux()
        .cmd(&linux::nft_cmd(), 1, "", &stderr)
        .cmd(&linux::rule_services_cmd(), 3, "inactive\ninactive\n", "")
        .run(&Firewall);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("firewall/linux/nft-nonroot-no-manager.expected.json", &out);
    // ufw installed and disabled, no rule-loading service: the firewall is off.
    let out = Machine::new("linux")
        .file(
            linux::UFW_CONF,
            read("firewall/linux/ufw-disabled.conf").as_bytes(),
        )
        .missing(&linux::firewalld_cmd())
        .cmd(&linux::nft_cmd(), 1, "", &stderr)
        .cmd(&linux::rule_services_cmd(), 3, "inactive\ninactive\n", "")
        .run(&Firewall);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot(
        "firewall/linux/ufw-disabled-nft-nonroot.expected.json",
        &out,
    );
    // ... but with nftables.service active its rules might filter: unknown.
    let out = Machine::new("linux")
        .file(
            linux::UFW_CONF,
            read("firewall/linux/ufw-disabled.conf").as_bytes(),
        )
        .missing(&linux::firewalld_cmd())
        .cmd(&linux::nft_cmd(), 1, "", &stderr)
        .cmd(&linux::rule_services_cmd(), 3, "active\ninactive\n", "")
        .run(&Firewall);
    assert_eq!(out.status, Status::Unknown);
    // firewall-cmd failing otherwise (for example, D-Bus refused) is not "not running".
    let out = bare_linux().missing(&linux::nft_cmd()).run(&Firewall);
    assert_eq!(out.status, Status::Unknown);
    let out = Machine::new("linux")
        .no_file(linux::UFW_CONF)
        .cmd(&linux::firewalld_cmd(), 1, "", "Authorization failed.\n")
        .missing(&linux::nft_cmd())
        .run(&Firewall);
    assert_eq!(out.status, Status::Unknown);
}

fn mac(stdout: &str, code: i32, profiler: Option<&str>) -> tandem_checks::engine::Outcome {
    let mut m = Machine::new("macos").cmd(&macos::globalstate_cmd(), code, stdout, "");
    if let Some(p) = profiler {
        m = m.cmd(&macos::profiler_cmd(), 0, p, "");
    }
    m.run(&Firewall)
}

#[test]
fn macos_global_state() {
    let out = mac(&read("firewall/macos/socketfilterfw-enabled.txt"), 0, None);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/macos/socketfilterfw-enabled.expected.json", &out);
    let out = mac(
        &read("firewall/macos/socketfilterfw-block-all.txt"),
        0,
        None,
    );
    assert_eq!(out.status, Status::Pass);
    let out = mac(&read("firewall/macos/socketfilterfw-disabled.txt"), 0, None);
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("firewall/macos/socketfilterfw-disabled.expected.json", &out);
}

#[test]
fn macos_managed_mac_falls_back_to_system_profiler() {
    let managed = read("firewall/macos/socketfilterfw-managed.txt");
    let out = mac(
        &managed,
        0,
        Some(&read("firewall/macos/system-profiler-limit.json")),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/macos/managed-profiler-limit.expected.json", &out);
    let out = mac(
        &managed,
        0,
        Some(&read("firewall/macos/system-profiler-allow-all.json")),
    );
    assert_eq!(out.status, Status::Fail);
    let out = mac(&managed, 0, Some("{}"));
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot(
        "firewall/macos/managed-profiler-unreadable.expected.json",
        &out,
    );
}

fn win(
    profiles: &str,
    code: i32,
    stderr: &str,
    products: Option<&str>,
) -> tandem_checks::engine::Outcome {
    let mut m = Machine::new("windows").cmd(&windows::profiles_cmd(), code, profiles, stderr);
    if let Some(p) = products {
        m = m.cmd(&windows::products_cmd(), 0, p, "");
    }
    m.run(&Firewall)
}

#[test]
fn windows_profiles() {
    let out = win(&read("firewall/windows/profiles-all-on.json"), 0, "", None);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/windows/profiles-all-on.expected.json", &out);
    let out = win(
        &read("firewall/windows/profiles-public-off.json"),
        0,
        "",
        Some(""),
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("firewall/windows/profiles-public-off.expected.json", &out);
    let out = win(
        &read("firewall/windows/profiles-all-off.json"),
        0,
        "",
        Some(&read(
            "firewall/windows/firewallproduct-third-party-on.json",
        )),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("firewall/windows/third-party-firewall.expected.json", &out);
    let out = win(
        "",
        1,
        &read("firewall/windows/profiles-cmdlet-missing.stderr.txt"),
        None,
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("firewall/windows/cmdlet-missing.expected.json", &out);
}

#[test]
fn parsers_survive_any_input() {
    for_each_mutation(
        &[
            "firewall/linux/nft-jump-reject.json",
            "firewall/linux/nft-docker-no-input.json",
            "firewall/linux/ufw-enabled.conf",
            "firewall/macos/socketfilterfw-enabled.txt",
            "firewall/macos/system-profiler-limit.json",
            "firewall/windows/profiles-public-off.json",
            "firewall/windows/firewallproduct-third-party-on.json",
        ],
        |s| {
            let _ = nft::parse_ruleset(s);
            let _ = linux::parse_ufw_conf(s);
            let _ = linux::parse_is_active(
                &CmdOutput {
                    exit_code: Some(0),
                    stdout: s.into(),
                    stderr: String::new(),
                },
                2,
            );
            let _ = macos::parse_globalstate(s);
            let _ = macos::parse_profiler(s);
            let _ = windows::parse_profiles(s);
            let _ = windows::parse_products_on(s);
        },
    );
    // Deeply nested JSON must not overflow the stack.
    let deep = format!("{{\"nftables\":[{{\"rule\":{{\"family\":\"inet\",\"table\":\"t\",\"chain\":\"c\",\"expr\":{}1{}}}}}]}}", "[".repeat(100), "]".repeat(100));
    let _ = nft::parse_ruleset(&deep);
}

const NETNS_TEST: &str = "firewall::real_nftables_in_network_namespaces";

/// The nftables probe for real, in throwaway network namespaces: an empty ruleset is no
/// firewall, a ruleset dropping input is one. The probe runs in a re-executed copy of this
/// test binary under `ip netns exec`, so it reads the namespace's ruleset through the live
/// host exactly as the agent would. ufw and firewalld are taken as absent so the result
/// speaks only of the ruleset, whatever is installed on the machine.
#[test]
fn real_nftables_in_network_namespaces() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        return child(&scenario);
    }
    if !is_root() {
        eprintln!(
            "note: not root; skipping the network-namespace firewall test (CI runs it as root)"
        );
        return;
    }
    let ns = format!("tandem-test-{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip (iproute2) is installed");
        assert!(st.success(), "ip {args:?} failed");
    };
    ip(&["netns", "add", &ns]);
    let result = std::panic::catch_unwind(|| {
        rerun_self(&["ip", "netns", "exec", &ns], NETNS_TEST, "nft-empty", &[]);
        let rules = "table inet filter {\n chain input {\n  type filter hook input priority filter; policy drop;\n  ct state established,related accept\n  iif \"lo\" accept\n }\n}\n";
        let mut load = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft is installed");
        std::io::Write::write_all(load.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
        drop(load.stdin.take());
        assert!(
            load.wait().unwrap().success(),
            "loading the test ruleset failed"
        );
        rerun_self(&["ip", "netns", "exec", &ns], NETNS_TEST, "nft-drop", &[]);
    });
    ip(&["netns", "delete", &ns]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn child(scenario: &str) {
    let host = tandem_checks::RealHost::new();
    let probe = linux::LinuxProbe {
        ufw_conf: Err(HostError::NotFound {
            path: linux::UFW_CONF.into(),
        }),
        ufw_unit: None,
        firewalld: Some(Err(HostError::NotFound {
            path: linux::FIREWALL_CMD.into(),
        })),
        nft: Some(block_on(tandem_checks::Host::run(&host, &linux::nft_cmd()))),
        rule_services: None,
    };
    let out = linux::evaluate(&probe);
    println!("{scenario}: {} — {}", out.status, out.summary);
    match scenario {
        "nft-empty" => {
            assert_eq!(out.status, Status::Fail, "{out:#?}");
            assert_eq!(out.details["nftables"]["tables"], 0);
        }
        "nft-drop" => {
            assert_eq!(out.status, Status::Pass, "{out:#?}");
            assert_eq!(out.details["nftables"]["filters_input"], true);
        }
        other => panic!("unknown scenario {other}"),
    }
    // On a machine without ufw and firewalld the whole check must agree.
    if !std::path::Path::new(linux::UFW_CONF).exists()
        && !std::path::Path::new(linux::FIREWALL_CMD).exists()
    {
        let full = block_on(Firewall.run(&host, &CheckContext::default()));
        assert_eq!(full.status, out.status, "{full:#?}");
    }
}
