//! `screen_lock` against recorded gsettings, kscreenlockerrc, sysadminctl/defaults/pmset and
//! reg.exe outputs, and for real: GNOME settings written with `gsettings set` in a private
//! D-Bus session, read back by the probe.

use tandem_checks::checks::screen_lock::{linux, macos, windows, ScreenLock};
use tandem_checks::engine::Outcome;
use tandem_checks::CheckContext;
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_supported::{block_on, for_each_mutation, is_root, rerun_self, Machine, CHILD_ENV};

/// A GNOME machine whose four `gsettings get` answers are the lines of a recording.
fn gnome(rel: &str) -> Outcome {
    let text = read(rel);
    let mut m = Machine::new("linux").exists(linux::GNOME_SHELL);
    for ((schema, key), line) in linux::GNOME_KEYS.iter().zip(text.lines()) {
        m = m.cmd(
            &linux::gsettings_cmd(schema, key),
            0,
            &format!("{line}\n"),
            "",
        );
    }
    m.run(&ScreenLock)
}

#[test]
fn gnome_settings() {
    for (case, status) in [
        ("gnome-defaults", Status::Pass),
        ("gnome-idle-15min", Status::Warn),
        ("gnome-lock-off", Status::Fail),
        ("gnome-never-blank", Status::Fail),
    ] {
        let out = gnome(&format!("screen_lock/linux/{case}.txt"));
        assert_eq!(out.status, status, "{case}: {out:#?}");
        assert_snapshot(&format!("screen_lock/linux/{case}.expected.json"), &out);
    }
}

#[test]
fn gnome_schema_missing_is_unknown() {
    let mut m = Machine::new("linux").exists(linux::GNOME_SHELL);
    for (schema, key) in linux::GNOME_KEYS {
        m = m.cmd(
            &linux::gsettings_cmd(schema, key),
            1,
            "",
            &read("screen_lock/linux/gnome-no-schema.stderr.txt"),
        );
    }
    let out = m.run(&ScreenLock);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("screen_lock/linux/gnome-no-schema.expected.json", &out);
}

fn kde(user_rc: Option<&str>) -> Outcome {
    let m = Machine::new("linux")
        .exists(linux::PLASMASHELL)
        .no_file(linux::KDE_SYSTEM_RC);
    let m = match user_rc {
        Some(rel) => m.file("/home/alice/.config/kscreenlockerrc", read(rel).as_bytes()),
        None => m.no_file("/home/alice/.config/kscreenlockerrc"),
    };
    m.run(&ScreenLock)
}

#[test]
fn kde_settings() {
    let out = kde(None);
    assert_eq!(
        out.status,
        Status::Pass,
        "KDE's defaults lock after 5 minutes"
    );
    assert_snapshot("screen_lock/linux/kde-defaults.expected.json", &out);
    let out = kde(Some("screen_lock/linux/kscreenlockerrc-greeter-only.txt"));
    assert_eq!(out.status, Status::Pass);
    let out = kde(Some("screen_lock/linux/kscreenlockerrc-timeout-15.txt"));
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("screen_lock/linux/kde-timeout-15.expected.json", &out);
    let out = kde(Some("screen_lock/linux/kscreenlockerrc-autolock-off.txt"));
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("screen_lock/linux/kde-autolock-off.expected.json", &out);
}

#[test]
fn no_desktop_is_unknown() {
    let out = Machine::new("linux").run(&ScreenLock);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("screen_lock/linux/no-desktop.expected.json", &out);
}

fn mac(sysadminctl: &str, idle: Result<&str, &str>, pmset: &str) -> Outcome {
    let m = Machine::new("macos").cmd(&macos::sysadminctl_cmd(), 0, "", sysadminctl);
    let m = match idle {
        Ok(v) => m.cmd(&macos::idle_time_cmd(), 0, v, ""),
        Err(e) => m.cmd(&macos::idle_time_cmd(), 1, "", e),
    };
    m.cmd(&macos::pmset_cmd(), 0, pmset, "").run(&ScreenLock)
}

#[test]
fn macos_lock() {
    let pmset = read("screen_lock/macos/pmset-g.txt");
    let missing = read("screen_lock/macos/defaults-idletime-missing.stderr.txt");
    // Immediate lock, no screen saver set, display sleeps after 10 minutes.
    let out = mac(
        &read("screen_lock/macos/sysadminctl-immediate.stderr.txt"),
        Err(&missing),
        &pmset,
    );
    assert_eq!(out.status, Status::Pass, "{out:#?}");
    assert_snapshot(
        "screen_lock/macos/immediate-displaysleep-10.expected.json",
        &out,
    );
    // Screen saver after 5 minutes, lock 5 minutes later.
    let out = mac(
        &read("screen_lock/macos/sysadminctl-300s.stderr.txt"),
        Ok("300\n"),
        &pmset,
    );
    assert_eq!(out.status, Status::Pass);
    // Lock 5 minutes after a display that sleeps after 10: 15 minutes.
    let out = mac(
        &read("screen_lock/macos/sysadminctl-300s.stderr.txt"),
        Err(&missing),
        &pmset,
    );
    assert_eq!(out.status, Status::Warn);
    assert_snapshot(
        "screen_lock/macos/300s-after-displaysleep.expected.json",
        &out,
    );
    let out = mac(
        &read("screen_lock/macos/sysadminctl-off.stderr.txt"),
        Ok("300\n"),
        &pmset,
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("screen_lock/macos/off.expected.json", &out);
    let out = mac(
        &read("screen_lock/macos/sysadminctl-immediate.stderr.txt"),
        Ok("0\n"),
        &read("screen_lock/macos/pmset-g-never.txt"),
    );
    assert_eq!(out.status, Status::Fail);
    let out = mac("sysadminctl: unrecognized option\n", Ok("300\n"), &pmset);
    assert_eq!(out.status, Status::Unknown);
}

fn win(
    user: (&str, i32, &str),
    policy: (&str, i32, &str),
    inactivity: (&str, i32, &str),
) -> Outcome {
    Machine::new("windows")
        .cmd(&windows::user_cmd(), user.1, user.0, user.2)
        .cmd(&windows::policy_cmd(), policy.1, policy.0, policy.2)
        .cmd(
            &windows::inactivity_cmd(),
            inactivity.1,
            inactivity.0,
            inactivity.2,
        )
        .run(&ScreenLock)
}

#[test]
fn windows_lock() {
    let nf = read("screen_lock/windows/reg-not-found.stderr.txt");
    let absent = ("", 1, nf.as_str());
    let saver = read("screen_lock/windows/desktop-secure-saver-10min.txt");
    let out = win((&saver, 0, ""), absent, absent);
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("screen_lock/windows/secure-saver-10min.expected.json", &out);
    // Group Policy's 30 minutes overrides the user's 10.
    let out = win(
        (&saver, 0, ""),
        (&read("screen_lock/windows/policy-desktop-30min.txt"), 0, ""),
        absent,
    );
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("screen_lock/windows/policy-30min.expected.json", &out);
    // No screen saver chosen: only the inactivity limit (15 minutes) locks.
    let none = read("screen_lock/windows/desktop-no-saver.txt");
    let out = win(
        (&none, 0, ""),
        absent,
        (&read("screen_lock/windows/inactivity-900.txt"), 0, ""),
    );
    assert_eq!(out.status, Status::Warn);
    let out = win((&none, 0, ""), absent, absent);
    assert_eq!(out.status, Status::Warn);
    assert_snapshot("screen_lock/windows/no-lock-configured.expected.json", &out);
    let out = win(
        (
            "",
            1,
            &read("screen_lock/windows/reg-access-denied.stderr.txt"),
        ),
        absent,
        absent,
    );
    assert_eq!(out.status, Status::Unknown);
}

#[test]
fn parsers_survive_any_input() {
    use tandem_checks::checks::os_supported::reg::parse_reg_query;
    for_each_mutation(
        &[
            "screen_lock/linux/gnome-idle-15min.txt",
            "screen_lock/linux/kscreenlockerrc-timeout-15.txt",
            "screen_lock/macos/sysadminctl-300s.stderr.txt",
            "screen_lock/macos/pmset-g.txt",
            "screen_lock/windows/policy-desktop-30min.txt",
        ],
        |s| {
            let _ = linux::parse_gvariant(s);
            let _ = linux::parse_kscreenlockerrc(s);
            let _ = macos::parse_sysadminctl(s);
            let _ = macos::parse_pmset_displaysleep(s);
            let k = parse_reg_query(s);
            let _ = windows::screensaver_lock_seconds(k.as_ref(), k.as_ref());
        },
    );
}

const DBUS_TEST: &str = "screen_lock::real_gnome_settings_in_a_private_dbus_session";

/// GNOME for real: `gsettings set` through dconf in a private D-Bus session with a throwaway
/// home, then the probe's own `gsettings get` calls through the live host. Needs
/// `dbus-run-session`, `gsettings`, the GNOME schemas (gsettings-desktop-schemas) and dconf
/// (dconf-gsettings-backend, dconf-service).
#[test]
fn real_gnome_settings_in_a_private_dbus_session() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        return child(&scenario);
    }
    let have = |p: &str| std::path::Path::new(p).exists();
    let tools = have("/usr/bin/dbus-run-session")
        && have(linux::GSETTINGS)
        && have("/usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml");
    if !tools {
        // CI (root) installs them; elsewhere say what is missing and skip.
        assert!(
            !is_root(),
            "dbus-run-session, gsettings and gsettings-desktop-schemas must be installed in CI"
        );
        eprintln!("note: dbus-run-session, gsettings or the GNOME schemas are missing; skipping");
        return;
    }
    let home = std::env::temp_dir().join(format!("tandem-gsettings-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let home_s = home.display().to_string();
    let config = format!("{home_s}/.config");
    let result = std::panic::catch_unwind(|| {
        rerun_self(
            &["dbus-run-session", "--"],
            DBUS_TEST,
            "gnome",
            &[
                ("HOME", &home_s),
                ("XDG_CONFIG_HOME", &config),
                ("GSETTINGS_BACKEND", "dconf"),
            ],
        )
    });
    let _ = std::fs::remove_dir_all(&home);
    match result {
        Ok(out) => assert!(out.contains("gnome scenarios done"), "{out}"),
        Err(e) => std::panic::resume_unwind(e),
    }
}

fn child(scenario: &str) {
    assert_eq!(scenario, "gnome");
    let set = |schema: &str, key: &str, value: &str| {
        let st = std::process::Command::new(linux::GSETTINGS)
            .args(["set", schema, key, value])
            .status()
            .unwrap();
        assert!(st.success(), "gsettings set {schema} {key} {value}");
    };
    let host = tandem_checks::RealHost::new();
    let max = CheckContext::default()
        .policy
        .checks
        .screen_lock
        .max_idle_minutes;
    let check = |expected: Status, what: &str| {
        let out = linux::evaluate_gnome(&block_on(linux::probe_gnome(&host)), max);
        println!("gnome: {what}: {} — {}", out.status, out.summary);
        assert_eq!(out.status, expected, "{what}: {out:#?}");
        out
    };
    set("org.gnome.desktop.screensaver", "lock-enabled", "true");
    set("org.gnome.desktop.session", "idle-delay", "300");
    set("org.gnome.desktop.screensaver", "lock-delay", "0");
    let out = check(Status::Pass, "lock after 5 minutes");
    assert_eq!(out.details["lock_after_seconds"], 300);
    set("org.gnome.desktop.session", "idle-delay", "900");
    set("org.gnome.desktop.screensaver", "lock-delay", "60");
    let out = check(Status::Warn, "lock after 16 minutes");
    assert_eq!(out.details["lock_after_seconds"], 960);
    set("org.gnome.desktop.session", "idle-delay", "0");
    check(Status::Fail, "screen never blanks");
    set("org.gnome.desktop.session", "idle-delay", "300");
    set("org.gnome.desktop.screensaver", "lock-enabled", "false");
    check(Status::Fail, "automatic lock off");
    set("org.gnome.desktop.screensaver", "lock-enabled", "true");
    set("org.gnome.desktop.lockdown", "disable-lock-screen", "true");
    check(Status::Fail, "locking disabled by lockdown");
    println!("gnome scenarios done");
}
