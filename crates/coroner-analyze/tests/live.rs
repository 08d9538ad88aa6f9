//! End-to-end analysis of real processes: a live minidump (coroner's
//! writer) and ELF cores written by gdb's `gcore` (of a parked process, and
//! at a real SIGSEGV), symbolized against this very test binary.
//!
//! `harness = false`: with `CORONER_ANALYZE_CHILD` set this binary is the
//! child and runs its mode on the main thread; otherwise it runs the tests.

use coroner_analyze::{analyze_path, render_text, AnalyzeOptions, Report};
use coroner_dump::{DumpLevel, DumpOptions, NoProgress};
use coroner_types::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CHILD_ENV: &str = "CORONER_ANALYZE_CHILD";

#[inline(never)]
fn park_in_known_function() {
    let mut out = std::io::stdout();
    writeln!(out, "ready {}", std::process::id()).unwrap();
    out.flush().unwrap();
    let mut buf = [0u8; 1];
    // Blocks until the parent closes our stdin or kills us.
    let _ = std::io::stdin().read(&mut buf);
    std::hint::black_box(&buf);
}

/// Dies by `abort()` (SIGABRT / SI_TKILL) below a known function; this
/// crate denies `unsafe`, so a null write is not available here (the
/// crasher binary covers SIGSEGV).
#[inline(never)]
fn crash_with_abort(depth: u32) {
    if std::hint::black_box(depth) == 0 {
        std::process::abort();
    }
    crash_with_abort(depth - 1);
}

fn child_main(mode: &str) {
    match mode {
        "park" => park_in_known_function(),
        "abort" => crash_with_abort(2),
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_parked() -> (Child, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "park")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line
        .trim()
        .strip_prefix("ready ")
        .expect("handshake")
        .parse()
        .unwrap();
    assert_eq!(pid, child.id());
    (child, pid)
}

fn finish(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

fn frames_of(r: &Report, tid: u32) -> Vec<String> {
    r.threads
        .iter()
        .find(|t| t.tid == tid)
        .map(|t| t.frames.iter().filter_map(|f| f.function.clone()).collect())
        .unwrap_or_default()
}

fn exe_module_ok(r: &Report) {
    let exe = std::env::current_exe().unwrap();
    let m = r
        .modules
        .iter()
        .find(|m| Path::new(&m.path) == exe)
        .expect("test binary in the module list");
    assert_eq!(m.symbols, "dwarf", "{m:?}");
    assert!(m.build_id.is_some());
}

fn live_minidump() {
    let dir = tempfile::tempdir().unwrap();
    let (child, pid) = spawn_parked();
    let dest = dir.path().join("live.dmp");
    let opts = DumpOptions {
        level: DumpLevel::Mini,
        ..DumpOptions::default()
    };
    coroner_dump::dump_live(Pid(pid as i32), &dest, false, &opts, &NoProgress).expect("dump");
    finish(child);
    let r = analyze_path(&dest, &AnalyzeOptions::default()).expect("analyze");
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.dump.format, "minidump");
    assert_eq!(r.process.pid, Some(pid));
    let e = r.exception.as_ref().expect("exception stream");
    assert!(e.dump_requested, "{e:?}");
    assert_eq!(r.signature.exception, "DUMP_REQUESTED");
    let names = frames_of(&r, pid);
    assert!(
        names.iter().any(|n| n.ends_with("park_in_known_function")),
        "{names:#?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("child_main")),
        "{names:#?}"
    );
    exe_module_ok(&r);
    let text = render_text(&r);
    assert!(text.contains("park_in_known_function+0x"), "{text}");
    assert!(text.contains("live.rs:"), "{text}");
    // The JSON round-trips.
    let json = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

fn gcore(pid: u32, dir: &Path) -> PathBuf {
    let out = Command::new("gcore")
        .arg("-o")
        .arg(dir.join("core"))
        .arg(pid.to_string())
        .output()
        .expect("run gcore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(format!("core.{pid}"))
}

fn gcore_of_parked_process() {
    let dir = tempfile::tempdir().unwrap();
    let (child, pid) = spawn_parked();
    let core = gcore(pid, dir.path());
    finish(child);
    let r = analyze_path(&core, &AnalyzeOptions::default()).expect("analyze core");
    assert_eq!(r.dump.format, "elf-core");
    assert_eq!(r.process.pid, Some(pid));
    // One thread: the parked main thread, first, and the crashing one if
    // the core names one.
    assert_eq!(r.threads[0].tid, pid);
    if let Some(c) = &r.crashing_thread {
        assert_eq!(c.tid, pid);
    }
    let names = frames_of(&r, pid);
    assert!(
        names.iter().any(|n| n.ends_with("park_in_known_function")),
        "{names:#?}\n{}",
        render_text(&r)
    );
    exe_module_ok(&r);
}

/// gdb runs the child to its SIGABRT and writes a core there.
fn core_at_crash(dir: &Path, name: &str) -> PathBuf {
    let core = dir.join(name);
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "run"])
        .arg("-ex")
        .arg(format!("gcore {}", core.display()))
        .arg("-ex")
        .arg("kill")
        .arg("--args")
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "abort")
        .stdin(Stdio::null())
        .output()
        .expect("run gdb");
    assert!(
        core.is_file(),
        "gdb wrote no core: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    core
}

fn core_of_real_abort_and_stable_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let a = analyze_path(
        &core_at_crash(dir.path(), "a.core"),
        &AnalyzeOptions::default(),
    )
    .expect("analyze a");
    let e = a.exception.as_ref().expect("exception");
    assert_eq!(e.signal, 6);
    assert_eq!(e.signal_name.as_deref(), Some("SIGABRT"));
    assert_eq!(e.si_code_name.as_deref(), Some("SI_TKILL"));
    assert!(!e.dump_requested);
    let crashing = &a.threads[0];
    assert!(crashing.crashing);
    assert_eq!(
        a.crashing_thread.as_ref().map(|t| t.tid),
        Some(crashing.tid)
    );
    // The signature skips libc's abort machinery and starts in our code.
    assert!(
        a.signature.frames[0].ends_with("!live::crash_with_abort"),
        "{:?}\n{}",
        a.signature,
        render_text(&a)
    );
    if std::env::var_os("CORONER_SHOW_REPORT").is_some() {
        println!("{}", render_text(&a));
    }
    // A second run (other ASLR layout) lands in the same bucket.
    let b = analyze_path(
        &core_at_crash(dir.path(), "b.core"),
        &AnalyzeOptions::default(),
    )
    .expect("analyze b");
    assert_eq!(a.signature, b.signature);
    assert_ne!(
        a.threads[0].frames[0].address, 0,
        "frames carry addresses, the signature does not"
    );
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child_main(&mode);
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("live_minidump", live_minidump),
        ("gcore_of_parked_process", gcore_of_parked_process),
        (
            "core_of_real_abort_and_stable_bucket",
            core_of_real_abort_and_stable_bucket,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|p| name.contains(p.as_str())) {
            continue;
        }
        println!("test {name} ...");
        f();
        println!("test {name} ... ok");
    }
}
