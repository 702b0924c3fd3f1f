//! Per-OS pieces of the live host, chosen once here. Each module has the same functions;
//! the fallback answers "unsupported".

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub use other::*;
