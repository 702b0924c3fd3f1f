//! `tandem-desktop`: the Tandem tray app. Everything lives in the library; see `lib.rs`.

// No console window behind the tray app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    tandem_desktop::run()
}
