//! The one integration-test binary of `tandem-e2e`.

mod desktop;
mod skeleton;
