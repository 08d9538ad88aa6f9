//! Builds the preload tests need, with the cargo running them, into the
//! target directory they run from.

use std::path::PathBuf;
use std::process::Command;

/// This crate's manifest.
pub const PRELOAD_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
/// The workspace's manifest.
pub const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");

/// target/<profile> of the running test, and the profile name cargo takes.
pub fn profile_dir() -> (PathBuf, String) {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.file_name().unwrap() == "deps" {
        dir = dir.parent().unwrap().to_path_buf();
    }
    let profile = match dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    (dir, profile)
}

/// `cargo build --quiet ARGS` of `manifest` in this test's profile and
/// target directory; panics naming `what` when it fails.
pub fn cargo_build(manifest: &str, args: &[&str], what: &str) {
    let (dir, profile) = profile_dir();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--quiet"])
        .args(args)
        .args(["--profile", &profile])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(dir.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "building {what}: {status}");
}

/// `coroner` in target/<profile>, where the library finds it as its plan
/// compiler (it has no TOML parser).
pub fn build_coroner() {
    cargo_build(
        WORKSPACE_MANIFEST,
        &["-p", "coroner-cli", "--bin", "coroner"],
        "coroner",
    );
}
