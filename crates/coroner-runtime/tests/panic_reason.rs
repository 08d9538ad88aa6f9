//! The crash reason of a Rust program that links the runtime: a panic that
//! `catch_unwind` caught must not make a later crash a `rust-panic` (the
//! panic hook used to leave the mark for good); a panic that reaches
//! `abort` still is one. Runs `examples/panics.rs`, rebuilt with the cargo
//! running the tests so a stale build is never tested.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.file_name().unwrap() == "deps" {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn panics_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = profile_dir();
            let profile = match dir.file_name().unwrap().to_str().unwrap() {
                "debug" => "dev".to_string(),
                other => other.to_string(),
            };
            let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "--quiet", "-p", "coroner-runtime"])
                .args(["--example", "panics", "--profile", &profile])
                .arg("--manifest-path")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .arg("--target-dir")
                .arg(dir.parent().unwrap())
                .status()
                .unwrap();
            assert!(status.success(), "building examples/panics: {status}");
            dir.join("examples").join("panics")
        })
        .clone()
}

/// Runs `panics MODE` with an empty configuration (no debugger, no dumps)
/// and the report line on fd 9; returns the signal that ended it, stdout
/// and the report's fields.
fn run(mode: &str) -> (Option<i32>, String, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("coroner.toml");
    std::fs::write(&config, "").unwrap();
    let report = dir.path().join("report");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -c 0; r=$1; shift; exec \"$@\" 9>\"$r\"")
        .arg("sh")
        .arg(&report)
        .arg(panics_example())
        .arg(mode)
        .env("CORONER_CONFIG", &config)
        .env("CORONER_RUN_FD", "9")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = std::fs::read_to_string(&report).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(coroner_runtime::REPORT_PREFIX))
        .unwrap_or_else(|| panic!("{mode}: no report line: {out:?}"));
    let fields = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (out.status.signal(), stdout, fields)
}

#[test]
fn caught_panic_then_null_write_is_a_fault() {
    let (sig, stdout, rep) = run("caught-then-null");
    assert!(stdout.contains("caught\n"), "{stdout}");
    assert_eq!(sig, Some(libc::SIGSEGV));
    assert_eq!(rep["signal"], "11");
    assert_eq!(rep["reason"], "fault");
}

/// The regression: the hook marked every later SIGABRT `rust-panic`.
#[test]
fn caught_panic_then_abort_is_an_abort() {
    let (sig, stdout, rep) = run("caught-then-abort");
    assert!(stdout.contains("caught\n"), "{stdout}");
    assert_eq!(sig, Some(libc::SIGABRT));
    assert_eq!(rep["signal"], "6");
    assert_eq!(rep["reason"], "abort");
}

#[test]
fn uncaught_panic_that_aborts_is_a_rust_panic() {
    let (sig, stdout, rep) = run("uncaught");
    assert!(stdout.contains("crashing uncaught"), "{stdout}");
    assert_eq!(sig, Some(libc::SIGABRT));
    assert_eq!(rep["signal"], "6");
    assert_eq!(rep["reason"], "rust-panic");
}
