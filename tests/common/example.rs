//! The terminal client (`examples/client.rs`), built once, for the tests that drive it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of the built `client` example. `cargo test` builds every example before it runs
/// the tests, so it is normally there and current (next to the app's binary). `cargo test
/// --test NAME` does not build examples, so when the binary is missing or older than
/// `examples/client.rs` (the example uses nothing else of this crate), it is built here with
/// the same cargo.
pub fn client_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_tickerlab"))
                .parent()
                .expect("the binary's directory")
                .to_owned();
            let path = bin_dir.join("examples").join("client");
            let modified =
                |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/client.rs");
            let stale = match (modified(&path), modified(&source)) {
                (Some(built), Some(written)) => built < written,
                _ => true,
            };
            if stale {
                // Built in the profile of this test binary, next to its `tickerlab`.
                let mut args = vec!["build", "--example", "client"];
                if !cfg!(debug_assertions) {
                    args.push("--release");
                }
                let status = Command::new(env!("CARGO"))
                    .args(&args)
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
