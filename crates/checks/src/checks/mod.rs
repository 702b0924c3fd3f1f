//! The checks, one module each.

pub mod os_updates;
