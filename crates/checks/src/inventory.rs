//! Device facts that go into every report: OS, kernel, hostname, machine id, user, model,
//! CPU, memory and disks.
//!
//! # Platform behaviour
//! CPU, memory and disks come from sysinfo on every platform. The model is read on Linux
//! from the firmware's DMI strings (`/sys/class/dmi/id`, readable without root; the serial
//! number there is root-only and is left out). macOS and Windows report no model yet.

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
        model: hardware().model.clone(),
        serial: None,
    }
}

/// Facts that do not change while the agent runs, read once.
#[derive(Debug, Clone, Default)]
struct Hardware {
    model: Option<String>,
    cpu: Option<String>,
    cpu_cores: Option<usize>,
    memory_bytes: Option<u64>,
}

fn hardware() -> &'static Hardware {
    static HARDWARE: std::sync::OnceLock<Hardware> = std::sync::OnceLock::new();
    HARDWARE.get_or_init(|| {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        Hardware {
            model: read_model(),
            cpu: sys
                .as_ref()
                .and_then(|s| s.cpus().first())
                .map(|c| c.brand().trim().to_owned())
                .filter(|b| !b.is_empty()),
            cpu_cores: System::physical_core_count().ok(),
            memory_bytes: sys.map(|s| s.total_memory()).filter(|m| *m > 0),
        }
    })
}

#[cfg(target_os = "linux")]
fn read_model() -> Option<String> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{name}")).ok();
    model_from_dmi(
        read("sys_vendor").as_deref(),
        read("product_name").as_deref(),
    )
}

#[cfg(not(target_os = "linux"))]
fn read_model() -> Option<String> {
    None
}

/// "LENOVO" + "20XW0055GE" → "LENOVO 20XW0055GE". Firmware placeholders ("To Be Filled By
/// O.E.M.", "System Product Name", "Default string") mean nothing and are dropped.
pub fn model_from_dmi(vendor: Option<&str>, product: Option<&str>) -> Option<String> {
    let meaningful = |s: Option<&str>| {
        let s = s?.trim();
        let placeholder = s.is_empty()
            || s.eq_ignore_ascii_case("To Be Filled By O.E.M.")
            || s.eq_ignore_ascii_case("System Product Name")
            || s.eq_ignore_ascii_case("System manufacturer")
            || s.eq_ignore_ascii_case("Default string")
            || s.eq_ignore_ascii_case("Not Applicable");
        (!placeholder).then(|| s.to_owned())
    };
    match (meaningful(vendor), meaningful(product)) {
        (Some(v), Some(p)) if p.to_lowercase().starts_with(&v.to_lowercase()) => Some(p),
        (Some(v), Some(p)) => Some(format!("{v} {p}")),
        (None, Some(p)) => Some(p),
        (Some(_), None) | (None, None) => None,
    }
}

/// Filesystems that hold the user's data: not pseudo, network or container layers.
fn is_local_disk(fs: &str) -> bool {
    !matches!(
        fs,
        "tmpfs"
            | "devtmpfs"
            | "overlay"
            | "squashfs"
            | "proc"
            | "sysfs"
            | "nfs"
            | "nfs4"
            | "cifs"
            | "smbfs"
            | "fuse.sshfs"
            | "ramfs"
            | "efivarfs"
            | "autofs"
    )
}

/// The mounted local disks: mount point, filesystem, size and free space.
fn disks() -> Vec<serde_json::Value> {
    let Ok(disks) = sysinfo::Disks::new_with_refreshed_list() else {
        return Vec::new();
    };
    disks
        .iter()
        .filter(|d| is_local_disk(&d.file_system().to_string_lossy()) && d.total_space() > 0)
        .take(16)
        .map(|d| {
            serde_json::json!({
                "mount_point": d.mount_point().display().to_string(),
                "file_system": d.file_system().to_string_lossy(),
                "total_bytes": d.total_space(),
                "available_bytes": d.available_space(),
                "removable": d.is_removable(),
            })
        })
        .collect()
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
    let hw = hardware();
    if let Some(cpu) = &hw.cpu {
        extra.insert("cpu".into(), cpu.clone().into());
    }
    if let Some(cores) = hw.cpu_cores {
        extra.insert("cpu_cores".into(), cores.into());
    }
    if let Some(memory) = hw.memory_bytes {
        extra.insert("memory_bytes".into(), memory.into());
    }
    let disks = disks();
    if !disks.is_empty() {
        extra.insert("disks".into(), disks.into());
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
    fn models_from_dmi_strings() {
        assert_eq!(
            model_from_dmi(Some("LENOVO\n"), Some("20XW0055GE\n")).as_deref(),
            Some("LENOVO 20XW0055GE")
        );
        assert_eq!(
            model_from_dmi(Some("Dell Inc."), Some("Dell Inc. Latitude 7440")).as_deref(),
            Some("Dell Inc. Latitude 7440"),
            "a vendor already in the product name is not repeated"
        );
        assert_eq!(
            model_from_dmi(Some("QEMU"), Some("Standard PC (Q35 + ICH9, 2009)")).as_deref(),
            Some("QEMU Standard PC (Q35 + ICH9, 2009)")
        );
        assert_eq!(
            model_from_dmi(
                Some("To Be Filled By O.E.M."),
                Some("To Be Filled By O.E.M.")
            ),
            None
        );
        assert_eq!(model_from_dmi(None, None), None);
    }

    #[test]
    fn the_live_inventory_has_hardware_facts() {
        let inv = inventory(&crate::inventory::os_facts());
        assert!(inv.extra.get("memory_bytes").and_then(|m| m.as_u64()) > Some(0));
        let disks = inv.extra.get("disks").and_then(|d| d.as_array());
        assert!(disks.is_some_and(|d| !d.is_empty()), "{:?}", inv.extra);
    }

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
