//! Our dumps read by other people's tools: lldb (minidumps), gdb (ELF
//! cores) and minidump-stackwalk. They run in CI (the test command installs
//! the tools and sets CORONER_REQUIRE_INTEROP=1).

mod common;

use common::*;
use coroner_crashers::LIVE_MARKER;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crash `crasher segv-null` under `coroner dump -e -x` in `format`.
fn crash_dump(dir: &Path, format: &str) -> PathBuf {
    let out = dump_on_crash(dir, &["-q", "--format", format], &["segv-null"]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    only_file(dir)
}

fn text(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn lldb_shows_the_stack_of_our_minidump() {
    if !tool("lldb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = crash_dump(dir.path(), "minidump");
    let out = text(
        Command::new("lldb")
            .arg("--batch")
            .arg("-c")
            .arg(&dump)
            .args(["-o", "bt"]),
    );
    assert!(out.contains("stop reason = signal SIGSEGV"), "{out}");
    assert!(
        out.contains("crash_segv_null"),
        "lldb bt lacks the faulting function:\n{out}"
    );
    assert!(out.contains("main"), "{out}");
}

#[test]
fn lldb_reads_the_heap_marker_from_a_full_dump() {
    if !tool("lldb") {
        return;
    }
    let live = Live::start(64, 2);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("full.dmp");
    let out = Command::new(coroner())
        .args(["dump", "-q", "-ma", &live.pid.to_string()])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = format!(
        "memory read --size 8 --format x --count 1 {:#x}",
        live.marker
    );
    let out = text(
        Command::new("lldb")
            .arg("--batch")
            .arg("-c")
            .arg(&dump)
            .args(["-o", &read]),
    );
    assert!(
        out.contains(&format!("{LIVE_MARKER:#018x}")),
        "lldb did not read the marker {LIVE_MARKER:#x}:\n{out}"
    );
    live.finish();
}

#[test]
fn minidump_stackwalk_reads_our_dump() {
    if !tool("minidump-stackwalk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dump = crash_dump(dir.path(), "minidump");
    let out = Command::new("minidump-stackwalk")
        .arg("--use-local-debuginfo")
        .arg(&dump)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Crash reason:  SIGSEGV / SEGV_MAPERR"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Crash address: 0x0000000000000000"),
        "{stdout}"
    );
    assert!(stdout.contains("crash_segv_null"), "{stdout}");
}

#[test]
fn gdb_prints_a_named_backtrace_from_our_core() {
    if !tool("gdb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let core = crash_dump(dir.path(), "core");
    let out = text(
        Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "bt"])
            .arg(crasher())
            .arg(&core),
    );
    assert!(
        out.contains("Program terminated with signal SIGSEGV"),
        "{out}"
    );
    assert!(
        out.contains("crash_segv_null"),
        "gdb bt lacks the faulting function:\n{out}"
    );
    assert!(out.contains("main"), "{out}");
}
