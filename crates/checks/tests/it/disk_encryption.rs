//! `disk_encryption` against recorded findmnt/lsblk, fdesetup and Win32_EncryptableVolume
//! outputs.

use tandem_checks::checks::disk_encryption::{linux, macos, windows, DiskEncryption};
use tandem_proto::Status;

use crate::fixtures::{assert_snapshot, read};
use crate::os_supported::{for_each_mutation, Machine};

fn linux_machine(findmnt: &str, dev: Option<(&str, &str)>) -> tandem_checks::engine::Outcome {
    let mut m = Machine::new("linux").cmd(&linux::findmnt_cmd(), 0, findmnt, "");
    if let Some((dev, lsblk)) = dev {
        m = m.cmd(&linux::lsblk_cmd(dev), 0, lsblk, "");
    }
    m.run(&DiskEncryption)
}

#[test]
fn linux_plain_disk_this_vm() {
    // Recorded on the CI machine: the root filesystem sits directly on /dev/vda.
    let out = linux_machine(
        &read("disk_encryption/linux/findmnt-vda.txt"),
        Some((
            "/dev/vda",
            &read("disk_encryption/linux/lsblk-vda-plain.json"),
        )),
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot("disk_encryption/linux/plain-vda.expected.json", &out);
}

#[test]
fn linux_lvm_on_luks() {
    let out = linux_machine(
        &read("disk_encryption/linux/findmnt-lvm.txt"),
        Some((
            "/dev/mapper/vgubuntu-root",
            &read("disk_encryption/linux/lsblk-lvm-on-luks.json"),
        )),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("disk_encryption/linux/lvm-on-luks.expected.json", &out);
}

#[test]
fn linux_btrfs_subvolume_on_luks() {
    // findmnt appends the btrfs subvolume in brackets; lsblk is asked about the device.
    let out = linux_machine(
        &read("disk_encryption/linux/findmnt-btrfs-luks.txt"),
        Some((
            "/dev/mapper/luks-3f1c2a9e-5b7d-4c1e-9a8f-2d6e0b4c7a11",
            &read("disk_encryption/linux/lsblk-btrfs-on-luks.json"),
        )),
    );
    assert_eq!(out.status, Status::Pass);
    assert_snapshot("disk_encryption/linux/btrfs-on-luks.expected.json", &out);
    assert_eq!(
        linux::parse_findmnt_source(&read("disk_encryption/linux/findmnt-btrfs-subvol.txt"))
            .unwrap(),
        "/dev/loop1"
    );
}

#[test]
fn linux_volume_group_spanning_an_unencrypted_disk() {
    let out = linux_machine(
        &read("disk_encryption/linux/findmnt-lvm.txt"),
        Some((
            "/dev/mapper/vgubuntu-root",
            &read("disk_encryption/linux/lsblk-lvm-spans-plain-disk.json"),
        )),
    );
    assert_eq!(out.status, Status::Fail);
    assert_snapshot(
        "disk_encryption/linux/lvm-partly-encrypted.expected.json",
        &out,
    );
}

#[test]
fn linux_cannot_tell() {
    // ZFS dataset, empty findmnt output, lsblk refusing the device, findmnt failing.
    let out = linux_machine(&read("disk_encryption/linux/findmnt-zfs.txt"), None);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("disk_encryption/linux/zfs.expected.json", &out);
    let out = linux_machine(&read("disk_encryption/linux/findmnt-no-source.txt"), None);
    assert_eq!(out.status, Status::Unknown);
    let out = Machine::new("linux")
        .cmd(&linux::findmnt_cmd(), 0, "/dev/nonexist\n", "")
        .cmd(
            &linux::lsblk_cmd("/dev/nonexist"),
            32,
            "{\n   \"blockdevices\": [\n\n   ]\n}\n",
            &read("disk_encryption/linux/lsblk-not-block.stderr.txt"),
        )
        .run(&DiskEncryption);
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("disk_encryption/linux/lsblk-not-block.expected.json", &out);
    let out = Machine::new("linux")
        .cmd(&linux::findmnt_cmd(), 1, "", "")
        .run(&DiskEncryption);
    assert_eq!(out.status, Status::Unknown);
}

fn mac(stdout: &str, code: i32, stderr: &str) -> tandem_checks::engine::Outcome {
    Machine::new("macos")
        .cmd(&macos::fdesetup_cmd(), code, stdout, stderr)
        .run(&DiskEncryption)
}

#[test]
fn macos_filevault() {
    for (case, status) in [
        ("fdesetup-on", Status::Pass),
        ("fdesetup-off", Status::Fail),
        ("fdesetup-encrypting", Status::Warn),
        ("fdesetup-deferred", Status::Warn),
    ] {
        let out = mac(&read(&format!("disk_encryption/macos/{case}.txt")), 0, "");
        assert_eq!(out.status, status, "{case}");
        assert_snapshot(&format!("disk_encryption/macos/{case}.expected.json"), &out);
    }
    let out = mac(
        "",
        1,
        &read("disk_encryption/macos/fdesetup-error.stderr.txt"),
    );
    assert_eq!(out.status, Status::Unknown);
    assert_snapshot("disk_encryption/macos/fdesetup-error.expected.json", &out);
}

fn win(stdout: &str, code: i32, stderr: &str) -> tandem_checks::engine::Outcome {
    Machine::new("windows")
        .cmd(&windows::volumes_cmd(), code, stdout, stderr)
        .run(&DiskEncryption)
}

#[test]
fn windows_bitlocker() {
    for (case, status) in [
        ("volumes-os-protected", Status::Pass),
        ("volumes-suspended", Status::Warn),
        ("volumes-off", Status::Fail),
    ] {
        let out = win(
            &read(&format!("disk_encryption/windows/{case}.json")),
            0,
            "",
        );
        assert_eq!(out.status, status, "{case}");
        assert_snapshot(
            &format!("disk_encryption/windows/{case}.expected.json"),
            &out,
        );
    }
    let out = win(
        "",
        1,
        &read("disk_encryption/windows/access-denied.stderr.txt"),
    );
    assert_eq!(out.status, Status::Unknown);
    assert!(out
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("administrator"));
    assert_snapshot("disk_encryption/windows/access-denied.expected.json", &out);
}

#[test]
fn parsers_survive_any_input() {
    for_each_mutation(
        &[
            "disk_encryption/linux/lsblk-lvm-spans-plain-disk.json",
            "disk_encryption/linux/findmnt-btrfs-luks.txt",
            "disk_encryption/macos/fdesetup-encrypting.txt",
            "disk_encryption/windows/volumes-os-protected.json",
        ],
        |s| {
            let _ = linux::parse_findmnt_source(s);
            let _ = linux::parse_lsblk(s);
            let _ = macos::parse_fdesetup(s);
            let _ = windows::parse_volumes(s);
        },
    );
    let deep = format!(
        "{{\"blockdevices\":[{}{}]}}",
        "{\"name\":\"a\",\"children\":[".repeat(200),
        "]}".repeat(200)
    );
    let _ = linux::parse_lsblk(&deep);
}
