//! Fixtures for Tandem's cross-process tests: built binaries, a server on a free port, a
//! private desktop session (Xvfb, D-Bus, keyring, notification daemon, tray host).

pub mod desktop_session;
pub mod procs;
pub mod proxy;
pub mod webdriver;
