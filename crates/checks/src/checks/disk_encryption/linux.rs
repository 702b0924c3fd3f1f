//! Linux: is the root filesystem on an encrypted block device? Without root:
//! `findmnt -no SOURCE /` names the device (btrfs appends the subvolume, `/dev/sda2[/@]`),
//! then `lsblk -J -s -o NAME,TYPE,FSTYPE DEV` prints it with its ancestors (`-s` inverts
//! the tree: children are the devices it sits on). The root is encrypted when every path
//! from it down to a disk passes through a `crypt` device or a `crypto_LUKS` member, so
//! LVM on LUKS counts and an LVM volume group that spans one unencrypted disk does not.
//!
//! Home-directory encryption (fscrypt, eCryptfs) is not full-disk encryption and is not
//! counted; ZFS native encryption is reported as unknown (the root source is a dataset,
//! not a device).

use serde::Serialize;
use serde_json::{json, Value};
use tandem_proto::{Owner, Status};

use crate::checks::os_supported::support::{cmd_evidence, exit_text};
use crate::engine::Outcome;
use crate::host::{Cmd, CmdOutput, Host, HostError};

pub const FINDMNT: &str = "/usr/bin/findmnt";
pub const LSBLK: &str = "/usr/bin/lsblk";

pub fn findmnt_cmd() -> Cmd {
    Cmd::new(FINDMNT, &["-no", "SOURCE", "/"])
}
pub fn lsblk_cmd(dev: &str) -> Cmd {
    Cmd::new(LSBLK, &["-J", "-s", "-o", "NAME,TYPE,FSTYPE", dev])
}

#[derive(Debug, Clone)]
pub struct LinuxProbe {
    pub findmnt: Result<CmdOutput, HostError>,
    /// The device asked about and lsblk's answer, when findmnt named a device.
    pub lsblk: Option<(String, Result<CmdOutput, HostError>)>,
}

/// The root source without a btrfs `[/subvolume]` suffix; `None` for empty output.
pub fn parse_findmnt_source(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let dev = match line.find('[') {
        Some(i) if line.ends_with(']') => &line[..i],
        _ => line,
    };
    Some(dev.to_owned())
}

/// One device on the way from the root filesystem to the disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub name: String,
    pub kind: String,
    pub fstype: Option<String>,
}

/// The verdict on an lsblk inverse tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootStack {
    /// Every path from the root device to a disk, top first.
    pub paths: Vec<Vec<Layer>>,
    pub encrypted: bool,
    pub partly_encrypted: bool,
}

fn is_crypt(l: &Layer) -> bool {
    l.kind == "crypt" || l.fstype.as_deref() == Some("crypto_LUKS")
}

/// Parses `lsblk -J -s -o NAME,TYPE,FSTYPE DEV`. `None` when it is not lsblk JSON or lists
/// no device.
pub fn parse_lsblk(stdout: &str) -> Option<RootStack> {
    let doc: Value = serde_json::from_str(stdout.trim()).ok()?;
    let roots = doc.get("blockdevices")?.as_array()?;
    let top = roots.first()?;
    let mut paths = Vec::new();
    fn walk(node: &Value, prefix: &mut Vec<Layer>, out: &mut Vec<Vec<Layer>>, depth: usize) {
        let layer = Layer {
            name: node
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            kind: node
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            fstype: node
                .get("fstype")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        prefix.push(layer);
        match node.get("children").and_then(Value::as_array) {
            // A device stack is a few layers deep; the bound keeps hostile input finite.
            Some(children) if !children.is_empty() && depth < 32 => {
                for c in children {
                    walk(c, prefix, out, depth + 1);
                }
            }
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
    walk(top, &mut Vec::new(), &mut paths, 0);
    let encrypted_paths = paths.iter().filter(|p| p.iter().any(is_crypt)).count();
    Some(RootStack {
        encrypted: encrypted_paths == paths.len() && !paths.is_empty(),
        partly_encrypted: encrypted_paths > 0 && encrypted_paths < paths.len(),
        paths,
    })
}

pub async fn probe(host: &dyn Host) -> LinuxProbe {
    let findmnt = host.run(&findmnt_cmd()).await;
    let dev = match &findmnt {
        Ok(o) if o.exit_code == Some(0) => {
            parse_findmnt_source(&o.stdout).filter(|d| d.starts_with("/dev/"))
        }
        _ => None,
    };
    let lsblk = match dev {
        Some(d) => {
            let out = host.run(&lsblk_cmd(&d)).await;
            Some((d, out))
        }
        None => None,
    };
    LinuxProbe { findmnt, lsblk }
}

/// Judges a Linux probe. Pure.
pub fn evaluate(p: &LinuxProbe) -> Outcome {
    let unknown = |reason: String, evidence| Outcome {
        evidence,
        default_owner: Owner::It,
        ..Outcome::unknown(reason)
    };
    let out = match &p.findmnt {
        Ok(o) => o,
        Err(e) => return unknown(e.to_string(), Vec::new()),
    };
    let mut evidence = vec![cmd_evidence(&findmnt_cmd(), out)];
    if out.exit_code != Some(0) {
        return unknown(exit_text("findmnt", out), evidence);
    }
    let Some(source) = parse_findmnt_source(&out.stdout) else {
        return unknown("findmnt printed no source for /".into(), evidence);
    };
    let Some((dev, lsblk)) = &p.lsblk else {
        return unknown(
            format!("the root filesystem comes from `{source}`, not a block device"),
            evidence,
        );
    };
    let out = match lsblk {
        Ok(o) => o,
        Err(e) => return unknown(e.to_string(), evidence),
    };
    evidence.push(cmd_evidence(&lsblk_cmd(dev), out));
    if out.exit_code != Some(0) {
        return unknown(exit_text("lsblk", out), evidence);
    }
    let Some(stack) = parse_lsblk(&out.stdout) else {
        return unknown(format!("lsblk listed no device for {dev}"), evidence);
    };
    let details = json!({"root_source": source, "device": dev, "stack": stack});
    let (status, summary) = if stack.encrypted {
        (
            Status::Pass,
            "The system disk is encrypted (LUKS)".to_owned(),
        )
    } else if stack.partly_encrypted {
        (Status::Fail, "Only part of the system disk is encrypted: the root filesystem also sits on an unencrypted device".to_owned())
    } else {
        (Status::Fail, "The system disk is not encrypted".to_owned())
    };
    Outcome {
        status,
        summary,
        reason: None,
        details,
        evidence,
        remediation: if status == Status::Pass {
            Default::default()
        } else {
            super::remediation("linux")
        },
        default_owner: Owner::It,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findmnt_sources() {
        assert_eq!(
            parse_findmnt_source("/dev/nvme0n1p3[/@]\n").unwrap(),
            "/dev/nvme0n1p3"
        );
        assert_eq!(
            parse_findmnt_source("/dev/mapper/vg-root\n").unwrap(),
            "/dev/mapper/vg-root"
        );
        assert_eq!(
            parse_findmnt_source("rpool/ROOT/ubuntu_abc\n").unwrap(),
            "rpool/ROOT/ubuntu_abc"
        );
        assert!(parse_findmnt_source("\n").is_none());
    }
}
