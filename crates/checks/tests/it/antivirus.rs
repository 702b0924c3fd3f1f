//! `antivirus` against recorded Security Center, Get-MpComputerStatus, XProtect, sigtool and
//! mdatp outputs.

use tandem_checks::checks::antivirus::{linux, macos, windows, wsc, Antivirus};
use tandem_checks::engine::Outcome;
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, now, read};
use crate::os_supported::{for_each_mutation, Machine};

fn win(products: (&str, i32, &str), defender: Option<&str>) -> Outcome {
    let mut m =
        Machine::new("windows").cmd(&windows::products_cmd(), products.1, products.0, products.2);
    if let Some(d) = defender {
        m = m.cmd(&windows::defender_cmd(), 0, d, "");
    }
    m.run(&Antivirus)
}

#[test]
fn windows_security_center() {
    for (case, status) in [
        ("wsc-defender-on", Status::Pass),
        ("wsc-defender-outdated", Status::Warn),
        ("wsc-third-party-on-defender-passive", Status::Pass),
        ("wsc-expired", Status::Fail),
        ("wsc-defender-off", Status::Fail),
    ] {
        let out = win(
            (&read(&format!("antivirus/windows/{case}.json")), 0, ""),
            None,
        );
        assert_eq!(out.status, status, "{case}: {out:#?}");
        assert_snapshot(&format!("antivirus/windows/{case}.expected.json"), &out);
    }
    // An empty pipeline: Security Center lists no product at all.
    assert_eq!(win(("", 0, ""), None).status, Status::Fail);
}

#[test]
fn windows_server_falls_back_to_defender() {
    let err = read("antivirus/windows/wsc-invalid-namespace.stderr.txt");
    let out = win(
        ("", 1, &err),
        Some(&read("antivirus/windows/mpstatus-server-on.json")),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("antivirus/windows/server-defender-on.expected.json", &out);
    let out = win(
        ("", 1, &err),
        Some(&read("antivirus/windows/mpstatus-server-stale.json")),
    );
    assert_eq!(out.status, Status::Warn);
    let out = win(("", 1, &err), Some("not json"));
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("antivirus/windows/server-unreadable.expected.json", &out);
}

#[test]
fn product_state_bits() {
    // The value every healthy Windows 10/11 reports for Defender.
    let s = wsc::decode_product_state(397568);
    assert_eq!(s.status, wsc::ProductStatus::On);
    assert!(s.microsoft);
    assert!(
        s.signatures_up_to_date,
        "0x00 in the signature nibble means up to date"
    );
    assert!(!wsc::decode_product_state(397584).signatures_up_to_date);
}

const XP_OLD: &str =
    "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist";
const XP_NEW: &str = "/var/protected/xprotect/XProtect.bundle/Contents/Info.plist";

#[test]
fn macos_xprotect() {
    // macOS 14: only the classic location.
    let out = Machine::new("macos")
        .file_modified(
            XP_OLD,
            read("antivirus/macos/xprotect-info-5287.plist").as_bytes(),
            now() - chrono::Duration::days(9),
        )
        .no_file(XP_NEW)
        .run(&Antivirus);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("antivirus/macos/xprotect-current.expected.json", &out);
    // macOS 15: both; the newer version is the one in use.
    let out = Machine::new("macos")
        .file_modified(
            XP_OLD,
            read("antivirus/macos/xprotect-info-5287.plist").as_bytes(),
            now() - chrono::Duration::days(200),
        )
        .file_modified(
            XP_NEW,
            read("antivirus/macos/xprotect-info-5325.plist").as_bytes(),
            now() - chrono::Duration::days(3),
        )
        .run(&Antivirus);
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["version"], "5325");
    // Not updated for 120 days.
    let out = Machine::new("macos")
        .file_modified(
            XP_OLD,
            read("antivirus/macos/xprotect-info-5287.plist").as_bytes(),
            now() - chrono::Duration::days(120),
        )
        .no_file(XP_NEW)
        .run(&Antivirus);
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("antivirus/macos/xprotect-stale.expected.json", &out);
    // A damaged plist and nothing else: could not tell.
    let out = Machine::new("macos")
        .file(
            XP_OLD,
            read("antivirus/macos/xprotect-info-truncated.plist").as_bytes(),
        )
        .no_file(XP_NEW)
        .run(&Antivirus);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("antivirus/macos/xprotect-damaged.expected.json", &out);
}

fn clamav(dir: &[&str], file: &str, sigtool: (&str, i32, &str)) -> Outcome {
    Machine::new("linux")
        .missing(&linux::mdatp_cmd())
        .dir(linux::CLAMAV_DB, dir)
        .cmd(
            &linux::sigtool_cmd(&format!("/var/lib/clamav/{file}")),
            sigtool.1,
            sigtool.0,
            sigtool.2,
        )
        .run(&Antivirus)
}

#[test]
fn linux_clamav() {
    let out = clamav(
        &["bytecode.cvd", "daily.cvd", "main.cvd"],
        "daily.cvd",
        (
            &read("antivirus/linux/sigtool-daily-cvd-verified.txt"),
            0,
            "",
        ),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("antivirus/linux/clamav-current.expected.json", &out);
    // freshclam's incremental .cld wins over .cvd; sigtool exits 1 when it cannot verify
    // the signature, and the header still tells the age.
    let out = clamav(
        &[
            "bytecode.cvd",
            "daily.cld",
            "daily.cvd",
            "freshclam.dat",
            "main.cvd",
        ],
        "daily.cld",
        (
            &read("antivirus/linux/sigtool-daily-cld-unverified.txt"),
            1,
            &read("antivirus/linux/sigtool-daily-cld-unverified.stderr.txt"),
        ),
    );
    assert_eq!(out.status, Status::Pass);
    assert_eq!(out.details["verified"], false);
    let out = clamav(
        &["daily.cvd"],
        "daily.cvd",
        ("", 1, &read("antivirus/linux/sigtool-not-cvd.stderr.txt")),
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("antivirus/linux/clamav-damaged.expected.json", &out);
    // Ten days later the same database is older than the 3-day limit.
    let out = Machine::new("linux")
        .at(now() + chrono::Duration::days(10))
        .missing(&linux::mdatp_cmd())
        .dir(linux::CLAMAV_DB, &["daily.cvd"])
        .cmd(
            &linux::sigtool_cmd("/var/lib/clamav/daily.cvd"),
            0,
            &read("antivirus/linux/sigtool-daily-cvd-verified.txt"),
            "",
        )
        .run(&Antivirus);
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("antivirus/linux/clamav-stale.expected.json", &out);
}

#[test]
fn linux_nothing_installed_warns() {
    let out = Machine::new("linux")
        .missing(&linux::mdatp_cmd())
        .no_dir(linux::CLAMAV_DB)
        .run(&Antivirus);
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("antivirus/linux/none.expected.json", &out);
    let out = Machine::new("linux")
        .missing(&linux::mdatp_cmd())
        .dir(linux::CLAMAV_DB, &[])
        .run(&Antivirus);
    assert_eq!(out.status, Status::Unknown);
}

#[test]
fn linux_defender() {
    for (case, status) in [
        ("mdatp-health-healthy", Status::Pass),
        ("mdatp-health-rtp-off", Status::Fail),
        ("mdatp-health-outdated", Status::Warn),
    ] {
        let out = Machine::new("linux")
            .cmd(
                &linux::mdatp_cmd(),
                0,
                &read(&format!("antivirus/linux/{case}.json")),
                "",
            )
            .run(&Antivirus);
        assert_eq!(out.status, status, "{case}: {out:#?}");
        assert_snapshot(&format!("antivirus/linux/{case}.expected.json"), &out);
    }
    let out = Machine::new("linux")
        .cmd(
            &linux::mdatp_cmd(),
            1,
            "",
            &read("antivirus/linux/mdatp-daemon-down.stderr.txt"),
        )
        .run(&Antivirus);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("antivirus/linux/mdatp-daemon-down.expected.json", &out);
}

#[test]
fn parsers_survive_any_input() {
    for_each_mutation(
        &[
            "antivirus/windows/wsc-third-party-on-defender-passive.json",
            "antivirus/windows/mpstatus-server-on.json",
            "antivirus/linux/sigtool-daily-cvd-verified.txt",
            "antivirus/linux/mdatp-health-healthy.json",
            "antivirus/macos/xprotect-info-5325.plist",
        ],
        |s| {
            let _ = wsc::parse_av_products(s);
            let _ = wsc::parse_mp_status(s);
            let _ = linux::parse_sigtool_info(s);
            let _ = linux::parse_mdatp_health(s);
            let _ = macos::parse_info_plist(s.as_bytes());
        },
    );
    for raw in [0u32, u32::MAX, 0x0F_FFFF, 0x1000, 0x2010] {
        let _ = wsc::decode_product_state(raw);
    }
}
