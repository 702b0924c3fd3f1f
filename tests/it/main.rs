//! The one integration-test binary of `tandem-e2e`.

// All of this binary is test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod console;
mod context;
mod desktop;
mod desktop_pages;
mod desktop_reminders;
mod faults;
mod install;
mod keyring;
mod phishing_replies;
mod skeleton;
mod update;
