//! Every crasher kind, dumped by `coroner dump -e -x` at the moment of the
//! crash (the second chance), read back with the independent `minidump`
//! reader and with our analyzer: signal, si_code, fault address, faulting
//! thread and top frame must be right, and the program must still die by
//! its own signal.

#[macro_use]
mod common;

use common::*;
use coroner_crashers::{
    kind, parse_crashing_line, parse_threads_line, threads_crash_addr, FaultAddr,
};
use minidump::{Minidump, MinidumpException, MinidumpThreadList};

struct Outcome {
    dump: std::path::PathBuf,
    /// The dump's exception: signal, si_code, address, thread.
    signo: u32,
    si_code: u32,
    address: u64,
    tid: u32,
    report: coroner_analyze::Report,
    stdout: String,
    _dir: tempfile::TempDir,
}

fn crash(kind_name: &str, format: &str) -> Outcome {
    let k = kind(kind_name).expect("kind");
    let dir = tempfile::tempdir().unwrap();
    let out = dump_on_crash(dir.path(), &["--format", format], &[kind_name]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // coroner exits as the shell reports the program: 128 + signal.
    assert_eq!(
        out.status.code(),
        Some(128 + k.signal),
        "{kind_name}: exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let dump = only_file(dir.path());
    let (signo, si_code, address, tid) = if format == "minidump" {
        let md = Minidump::read_path(&dump).expect("minidump parses");
        let exc: MinidumpException = md.get_stream().expect("exception stream");
        let threads: MinidumpThreadList = md.get_stream().expect("thread list");
        assert!(
            threads
                .threads
                .iter()
                .any(|t| t.raw.thread_id == exc.raw.thread_id),
            "{kind_name}: exception thread is in the thread list"
        );
        let r = &exc.raw.exception_record;
        (
            r.exception_code,
            r.exception_flags,
            r.exception_address,
            exc.raw.thread_id,
        )
    } else {
        let core = coroner_dump::corefile::CoreFile::open(&dump).expect("core parses");
        let c = core.crash_context().expect("core has NT_SIGINFO");
        (
            c.siginfo.signo() as u32,
            c.siginfo.code() as u32,
            c.siginfo.addr(),
            c.tid.0 as u32,
        )
    };
    let report = coroner_analyze::analyze_path(&dump, &Default::default()).expect("analyze");
    Outcome {
        dump,
        signo,
        si_code,
        address,
        tid,
        report,
        stdout,
        _dir: dir,
    }
}

fn check(kind_name: &str, format: &str) {
    let k = kind(kind_name).unwrap();
    let o = crash(kind_name, format);
    let line = o
        .stdout
        .lines()
        .find_map(parse_crashing_line)
        .unwrap_or_else(|| panic!("{kind_name}: no crashing line in {:?}", o.stdout));
    assert_eq!(o.signo as i32, k.signal, "{kind_name}: signal");
    if let Some(code) = k.si_code {
        assert_eq!(o.si_code as i32, code, "{kind_name}: si_code");
    }
    // The faulting thread.
    let threads = o.stdout.lines().find_map(parse_threads_line);
    if k.printed_tid_crashes {
        assert_eq!(o.tid, line.tid, "{kind_name}: faulting thread");
    } else {
        let tids = threads.clone().expect("threads line");
        assert!(
            tids.contains(&o.tid),
            "{kind_name}: faulting tid {} in {tids:?}",
            o.tid
        );
    }
    // The fault address.
    let exc = o
        .report
        .exception
        .as_ref()
        .expect("report has an exception");
    assert_eq!(exc.signal as i32, k.signal);
    assert_eq!(exc.thread_id, o.tid);
    let crashing = o
        .report
        .threads
        .iter()
        .find(|t| t.crashing)
        .expect("crashing thread in report");
    assert_eq!(crashing.tid, o.tid);
    assert_eq!(
        o.report.threads[0].tid, o.tid,
        "faulting thread is listed first"
    );
    let frame0_pc = crashing.frames.first().map(|f| f.address).unwrap_or(0);
    match k.fault_addr {
        FaultAddr::Exact(a) => assert_eq!(o.address, a, "{kind_name}: fault address"),
        FaultAddr::Printed => assert_eq!(Some(o.address), line.addr, "{kind_name}: fault address"),
        FaultAddr::Pc => assert_eq!(o.address, frame0_pc, "{kind_name}: fault address is the pc"),
        FaultAddr::PerThread => {
            let tids = threads.expect("threads line");
            let i = tids.iter().position(|&t| t == o.tid).unwrap();
            assert_eq!(
                o.address,
                threads_crash_addr(i),
                "{kind_name}: per-thread address"
            );
        }
        FaultAddr::None => {}
    }
    if let FaultAddr::Exact(_) | FaultAddr::Printed | FaultAddr::PerThread = k.fault_addr {
        assert_eq!(
            exc.fault_address,
            Some(o.address),
            "{kind_name}: analyzer fault address"
        );
    }
    // The top frame (inlined callees of the function may sit above it).
    let names: Vec<&str> = crashing
        .frames
        .iter()
        .map(|f| f.function.as_deref().unwrap_or("?"))
        .collect();
    if k.frame0 {
        let first_real = crashing.frames.iter().position(|f| !f.inline).unwrap_or(0);
        assert!(
            names[..=first_real].contains(&k.function),
            "{kind_name}: {} is not the top frame: {names:?}",
            k.function
        );
    } else {
        assert!(
            names.contains(&k.function),
            "{kind_name}: {} not in the stack: {names:?}",
            k.function
        );
    }
    assert!(!o.report.signature.bucket.is_empty());
    assert!(o.dump.exists());
}

crash_kind_tests!(check, "minidump");

#[test]
fn segv_null_as_elf_core() {
    check("segv-null", "core");
}

#[test]
fn abort_as_elf_core() {
    check("abort", "core");
}

#[test]
fn threads_crash_as_elf_core() {
    check("threads-crash", "core");
}

/// A program whose own SIGSEGV handler recovers is not a crash: no dump,
/// and it exits normally (the handler's first chance is respected).
#[test]
fn recovering_handler_is_not_dumped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dump_on_crash(dir.path(), &[], &["recover"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("recovered 3"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no dump");
}

/// A normal exit passes its status through and writes nothing.
#[test]
fn clean_exit_passes_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = dump_on_crash(dir.path(), &[], &["exit", "7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
