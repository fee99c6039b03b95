//! The terminal client (`examples/client.rs`), built once, for the tests that drive it.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of the built `client` example. `cargo test` builds every example before it runs
/// the tests, so it is normally there already (next to the app's binary); when a single test
/// binary was built on its own, it is built here with the same cargo.
pub fn client_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_tickerlab"))
                .parent()
                .expect("the binary's directory")
                .to_owned();
            let path = bin_dir.join("examples").join("client");
            if !path.is_file() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "--example", "client"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("run cargo build --example client");
                assert!(status.success(), "cargo build --example client failed");
            }
            assert!(path.is_file(), "no example binary at {}", path.display());
            path
        })
        .clone()
}
