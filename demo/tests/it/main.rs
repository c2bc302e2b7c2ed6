//! The demo binary's tests: `CARGO_BIN_EXE_rocket_social_auth` is set only for the tests of the
//! package that builds the binary. They share the library's test harness.

#[path = "../../../tests/it/common.rs"]
#[allow(dead_code)]
mod common;

mod config;
mod demo;
mod faults;
mod instances;
mod metrics;
mod ratelimit;
mod security;

/// The repository root, where `cargo run` runs the demo: its `Rocket.toml` and `templates/`.
pub fn root() -> std::path::PathBuf {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    demo.parent()
        .expect("demo/ is in the repository")
        .to_path_buf()
}
