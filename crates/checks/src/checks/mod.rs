//! The checks, one module each. Every module declares the programs its probes may run in
//! `PROGRAMS`; the host's allow-list is the union of those lists.

pub mod antivirus;
pub mod auto_updates;
pub mod disk_encryption;
pub mod firewall;
pub mod mfa;
pub mod os_supported;
pub mod os_updates;
pub mod password_age;
pub mod password_manager;
pub mod screen_lock;
pub mod software_sources;

/// Every check's allow-listed programs.
pub const PROGRAMS: &[&[&str]] = &[
    os_updates::PROGRAMS,
    mfa::PROGRAMS,
    password_age::PROGRAMS,
    password_manager::PROGRAMS,
    firewall::PROGRAMS,
    disk_encryption::PROGRAMS,
    screen_lock::PROGRAMS,
    antivirus::PROGRAMS,
    auto_updates::PROGRAMS,
    os_supported::PROGRAMS,
    software_sources::PROGRAMS,
];
