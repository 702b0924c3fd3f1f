//! Device facts that go into every report: OS, kernel, hostname, machine id, user.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tandem_proto::v1::{DeviceInfo, Inventory, UserInfo};

use crate::host::{parse_os_release, OsFacts};

/// The application id that keys the machine-id hash (as systemd's app-specific ids do), so
/// the id Tandem reports cannot be joined with other software's view of the machine.
const APP_ID: &[u8] = b"dev.tandem.agent/machine-id/v1";

pub fn os_family() -> &'static str {
    if cfg!(target_os = "linux") {
        "linux"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else if cfg!(windows) {
        "windows"
    } else {
        std::env::consts::OS
    }
}

/// Reads the OS facts of the live machine.
pub fn os_facts() -> OsFacts {
    let os_release = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let os_version = os_release
        .get("VERSION_ID")
        .cloned()
        .or_else(|| sysinfo::System::os_version().ok())
        .unwrap_or_default();
    OsFacts {
        family: os_family().to_owned(),
        os_release,
        os_version,
        kernel: sysinfo::System::kernel_version().ok(),
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        arch: Some(std::env::consts::ARCH.to_owned()),
        user: whoami::username(),
        uid: crate::platform::current_uid(),
        home: dirs::home_dir().map(|h| h.display().to_string()),
    }
}

/// Hashes the OS machine id with Tandem's application id (HMAC-SHA256, hex).
pub fn app_specific_machine_id(os_machine_id: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(os_machine_id.trim().as_bytes()) {
        Ok(mut mac) => {
            mac.update(APP_ID);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm only satisfies the type.
        Err(_) => String::new(),
    }
}

fn os_machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            sysinfo::System::host_name()
                .ok()
                .map(|h| format!("hostname:{h}"))
        })
}

/// The logged-in user running the agent.
pub fn current_user() -> UserInfo {
    // From the OS account database, not $USER: services and `su` often leave it unset or
    // stale.
    let login = whoami::username();
    UserInfo { login, email: None }
}

pub fn device_info(os: &OsFacts) -> DeviceInfo {
    DeviceInfo {
        machine_id: os_machine_id()
            .map(|id| app_specific_machine_id(&id))
            .unwrap_or_default(),
        hostname: os.hostname.clone(),
        os: os.family.clone(),
        os_version: os
            .os_release
            .get("PRETTY_NAME")
            .cloned()
            .unwrap_or_else(|| os.os_version.clone()),
        model: None,
        serial: None,
    }
}

/// The inventory sent with a report.
pub fn inventory(os: &OsFacts) -> Inventory {
    let mut extra = serde_json::Map::new();
    if let Ok(uptime) = sysinfo::System::uptime() {
        extra.insert("uptime_s".into(), uptime.into());
    }
    if let Ok(boot) = sysinfo::System::boot_time() {
        extra.insert("boot_time".into(), boot.into());
    }
    if let Some(id) = os.distro_id() {
        extra.insert("distro".into(), id.into());
    }
    Inventory {
        device: device_info(os),
        kernel: os.kernel.clone(),
        arch: os.arch.clone(),
        user: Some(current_user()),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_id_hash_is_stable_and_not_the_raw_id() {
        let a = app_specific_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4\n");
        assert_eq!(
            a,
            app_specific_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4")
        );
        assert_eq!(a.len(), 64);
        assert!(!a.contains("3d1219c7"));
        assert_ne!(
            a,
            app_specific_machine_id("00000000000000000000000000000000")
        );
    }
}
