//! The CLI's outputs pinned from outside (STYLE 16): `--help` texts as
//! snapshots, and `analyze --json` deserialized by test-local types that
//! refuse unknown fields, so a schema change is a visible test change.

mod common;

use common::*;
use serde::Deserialize;
use std::process::Command;

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(coroner()).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("coroner_help", stdout_of(&["--help"]));
    insta::assert_snapshot!("dump_help", stdout_of(&["dump", "--help"]));
    insta::assert_snapshot!("analyze_help", stdout_of(&["analyze", "--help"]));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Report {
    schema_version: u32,
    dump: DumpInfo,
    process: ProcessInfo,
    exception: Option<Exception>,
    crashing_thread: Option<ThreadRef>,
    threads: Vec<Thread>,
    modules: Vec<Module>,
    signature: Signature,
    soft_errors: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DumpInfo {
    path: String,
    format: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProcessInfo {
    pid: Option<u32>,
    exe: Option<String>,
    cpu: String,
    os: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Exception {
    signal: u32,
    signal_name: Option<String>,
    si_code: i32,
    si_code_name: Option<String>,
    fault_address: Option<u64>,
    access: Option<String>,
    summary: String,
    description: Option<String>,
    dump_requested: bool,
    thread_id: u32,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ThreadRef {
    tid: u32,
    name: Option<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Thread {
    tid: u32,
    name: Option<String>,
    crashing: bool,
    frames: Vec<Frame>,
    unwind: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Frame {
    index: usize,
    address: u64,
    inline: bool,
    module: Option<String>,
    module_offset: Option<u64>,
    function: Option<String>,
    function_offset: Option<u64>,
    file: Option<String>,
    line: Option<u32>,
    trust: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Module {
    base: u64,
    end: u64,
    name: String,
    path: String,
    build_id: Option<String>,
    symbols: String,
    binary: Option<String>,
    debug_file: Option<String>,
    refusals: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Signature {
    exception: String,
    frames: Vec<String>,
    text: String,
    bucket: String,
}

#[test]
fn analyze_json_schema_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = dump_on_crash(dir.path(), &["-q"], &["write-ro"]);
    assert_eq!(out.status.code(), Some(139));
    let dump = only_file(dir.path());
    let json = stdout_of(&["analyze", "--json", dump.to_str().unwrap()]);
    let r: Report = serde_json::from_str(&json).expect("schema matches");
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.dump.format, "minidump");
    let e = r.exception.expect("exception");
    assert_eq!(e.signal_name.as_deref(), Some("SIGSEGV"));
    assert_eq!(e.si_code_name.as_deref(), Some("SEGV_ACCERR"));
    assert_eq!(e.access.as_deref(), Some("write"));
    assert!(!e.dump_requested);
    assert_eq!(r.crashing_thread.unwrap().tid, e.thread_id);
    assert!(r.threads[0].crashing);
    assert_eq!(r.signature.bucket.len(), 16);
    // The human report says the same things the Linux way.
    let text = stdout_of(&["analyze", dump.to_str().unwrap()]);
    assert!(text.contains("SIGSEGV / SEGV_ACCERR"), "{text}");
    assert!(text.contains("Attempt to write to address"), "{text}");
    assert!(text.contains("crash_write_ro"), "{text}");
    assert!(text.ends_with('\n'));
}

#[test]
fn analyze_rejects_garbage_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.dmp");
    std::fs::write(&junk, b"this is not a dump at all").unwrap();
    let out = Command::new(coroner())
        .arg("analyze")
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.dmp"), "{err}");
    let out = Command::new(coroner())
        .args(["analyze", "/nonexistent/x.dmp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.dmp"));
}
