//! Attach to, read and detach from real child processes.
//!
//! The child is this test binary run again with `CORONER_PROC_TEST_CHILD`
//! set (the ignored `child_entry` test): it maps a known pattern with a hole
//! and a `PROT_NONE` page, starts named threads, prints
//! `ready <pid> base=0x... threads=N` and waits for stdin EOF. Tests
//! synchronise on that line and on wait statuses, never on sleeps.

use coroner_proc::{procfs, Attached, MemorySource, ProcError, ProcessMemory};
use coroner_sys::{ptrace, WaitStatus};
use coroner_types::{Pid, Tid};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "CORONER_PROC_TEST_CHILD";
const PAGE: usize = 4096;
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);

fn pattern(off: usize) -> u8 {
    (off.wrapping_mul(7) + 3) as u8
}

/// The child's life: `threads=N[,spin]`.
fn child_main(mode: &str) -> ! {
    let mut workers = 0usize;
    let mut spin = false;
    for part in mode.split(',') {
        if let Some(n) = part.strip_prefix("threads=") {
            workers = n.parse().expect("threads=N");
        } else if part == "spin" {
            spin = true;
        }
    }
    // SAFETY: a fresh anonymous private mapping at an address of the
    // kernel's choosing; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    // SAFETY: `base` is the start of the 4-page read-write mapping just
    // created, owned by nobody else.
    let region = unsafe { std::slice::from_raw_parts_mut(base.cast::<u8>(), 4 * PAGE) };
    for (i, b) in region.iter_mut().enumerate() {
        *b = pattern(i);
    }
    // SAFETY: page 2 and page 3 lie inside our own mapping; the slice
    // above is not used after this point.
    unsafe {
        assert_eq!(
            libc::munmap(base.cast::<u8>().add(2 * PAGE).cast(), PAGE),
            0
        );
        assert_eq!(
            libc::mprotect(
                base.cast::<u8>().add(3 * PAGE).cast(),
                PAGE,
                libc::PROT_NONE
            ),
            0
        );
    }
    static STOP: AtomicBool = AtomicBool::new(false);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(workers + 1 + usize::from(spin)));
    let (_keep_open, rx) = mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    for i in 0..workers {
        let b = barrier.clone();
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                b.wait();
                // Blocks until the process exits (the sender is never dropped
                // before then); the Mutex lets only one wait in recv, the
                // rest wait on the lock: both are sleeping states.
                let _ = rx.lock().map(|r| r.recv());
            })
            .expect("spawn worker");
    }
    if spin {
        let b = barrier.clone();
        std::thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                b.wait();
                while !STOP.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .expect("spawn spinner");
    }
    barrier.wait();
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "ready {} base={:#x} threads={threads}",
        std::process::id(),
        base as usize
    );
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    STOP.store(true, Ordering::Relaxed);
    std::process::exit(0);
}

/// Entry point of the child process, run by the other tests; not a test.
#[test]
#[ignore = "child process entry point; run by the other tests"]
fn child_entry() {
    match std::env::var(CHILD_ENV) {
        Ok(mode) => child_main(&mode),
        // Run directly (e.g. `--include-ignored`): nothing to do.
        Err(_) => eprintln!("child_entry only does something as a child of the other tests"),
    }
}

struct Child {
    proc: std::process::Child,
    pid: Pid,
    base: u64,
    threads: usize,
}

fn spawn_child(mode: &str) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut proc = Command::new(exe)
        .args([
            "child_entry",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    match read_ready(&mut proc) {
        Some((pid, base, threads)) if pid == proc.id() as i32 => Child {
            proc,
            pid: Pid(pid),
            base,
            threads,
        },
        other => {
            let _ = proc.kill();
            let _ = proc.wait();
            panic!("child did not say ready: {other:?}");
        }
    }
}

/// The child's `ready <pid> base=0x... threads=N` line, parsed; `None` if
/// the child ended first.
fn read_ready(proc: &mut std::process::Child) -> Option<(i32, u64, usize)> {
    let mut out = BufReader::new(proc.stdout.take()?);
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).ok()? == 0 {
            return None;
        }
        // libtest prints "test child_entry ... " on the same line first.
        if let Some((_, rest)) = line.trim().split_once("ready ") {
            let mut f = rest.split(' ');
            let pid = f.next()?.parse().ok()?;
            let base = u64::from_str_radix(f.next()?.strip_prefix("base=0x")?, 16).ok()?;
            let threads = f.next()?.strip_prefix("threads=")?.parse().ok()?;
            return Some((pid, base, threads));
        }
    }
}

impl Child {
    /// Close stdin and wait for the exit.
    fn finish(mut self) -> ExitStatus {
        drop(self.proc.stdin.take());
        self.proc.wait().expect("wait child")
    }
}

impl Drop for Child {
    /// A failed test must not leave its child behind.
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}

fn states(pid: Pid) -> Vec<(Tid, char)> {
    procfs::list_tasks(pid)
        .unwrap()
        .into_iter()
        .map(|t| (t, procfs::task_state(pid, t).unwrap()))
        .collect()
}

/// Wait until every thread's state satisfies `ok`. Only for transitions the
/// kernel sends no notification for (a tracee detached during a group-stop
/// passes through `R` on its way back into `T`); bounded, and it polls the
/// condition itself rather than sleeping a guessed time.
fn wait_for_states(pid: Pid, ok: impl Fn(char) -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if states(pid).iter().all(|&(_, s)| ok(s)) {
            return;
        }
        std::thread::yield_now();
    }
    assert_states(pid, ok, what);
}

fn assert_states(pid: Pid, ok: impl Fn(char) -> bool, what: &str) {
    let st = states(pid);
    assert!(st.iter().all(|&(_, s)| ok(s)), "expected {what}: {st:?}");
}

#[test]
fn seize_multithreaded_child_stops_every_thread_and_detach_resumes() {
    let c = spawn_child("threads=3,spin");
    let att = Attached::seize(c.pid, ATTACH_TIMEOUT).unwrap();
    let listed = procfs::list_tasks(c.pid).unwrap();
    assert_eq!(listed.len(), c.threads);
    let mut tids = att.tids().to_vec();
    assert_eq!(tids[0], Tid(c.pid.0), "leader first");
    assert!(tids[1..].windows(2).all(|w| w[0] < w[1]), "then by tid");
    tids.sort();
    assert_eq!(tids, listed);
    assert!(!att.was_stopped());
    assert_states(c.pid, |s| s == 't', "tracing stop while attached");

    let snap = att.snapshot().unwrap();
    assert_eq!(snap.pid, c.pid);
    assert_eq!(snap.threads.len(), c.threads);
    assert_eq!(snap.threads[0].tid, Tid(c.pid.0));
    assert!(snap.mappings.windows(2).all(|w| w[0].start < w[1].start));
    for t in &snap.threads {
        let regs = t.regs.as_ref().expect("registers");
        let code = snap.mapping_at(regs.pc()).expect("rip inside a mapping");
        assert!(code.perms.exec, "rip {:#x} in {code:?}", regs.pc());
        let stack = snap.mapping_at(regs.sp()).expect("rsp inside a mapping");
        assert!(stack.perms.write, "rsp {:#x} in {stack:?}", regs.sp());
        assert!(regs.fp.is_some() && regs.xstate.is_some(), "{t:?}");
        assert_eq!(att.siginfo(t.tid), None, "interrupt stops carry no signal");
    }
    let names: Vec<String> = snap
        .threads
        .iter()
        .map(|t| String::from_utf8_lossy(&t.name).into_owned())
        .collect();
    for want in ["worker-0", "worker-1", "worker-2", "spinner"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert_eq!(snap.exe, std::env::current_exe().unwrap());
    assert!(!snap.comm.is_empty());
    assert_eq!(snap.ppid, coroner_sys::getpid());
    assert_eq!(
        snap.uid,
        procfs::read_status(coroner_sys::getpid()).unwrap().uid[0]
    );
    assert_eq!(snap.auxv_value(6), Some(PAGE as u64), "AT_PAGESZ");
    assert!(snap.start_time > 1_600_000_000);
    let files = &snap.files;
    assert!(files.cmdline.as_ref().unwrap().starts_with(
        std::env::current_exe()
            .unwrap()
            .as_os_str()
            .as_encoded_bytes()
    ));
    assert!(files
        .environ
        .as_ref()
        .unwrap()
        .windows(CHILD_ENV.len())
        .any(|w| w == CHILD_ENV.as_bytes()));
    for f in [
        &files.status,
        &files.maps,
        &files.limits,
        &files.cpuinfo,
        &files.os_release,
        &files.smaps,
    ] {
        assert!(f.as_ref().is_some_and(|v| !v.is_empty()));
    }
    assert!(snap.soft_errors.is_empty(), "{:?}", snap.soft_errors);

    let mut buf = vec![0u8; 2 * PAGE];
    att.memory().read_exact(c.base, &mut buf).unwrap();
    assert!(buf.iter().enumerate().all(|(i, &b)| b == pattern(i)));

    att.detach().unwrap();
    assert_states(c.pid, |s| s != 't' && s != 'T', "running after detach");
    assert_eq!(procfs::read_status(c.pid).unwrap().tracer_pid, Pid(0));
    assert!(c.finish().success());
}

#[test]
fn stopped_process_stays_stopped_after_detach_and_resumes_on_sigcont() {
    let c = spawn_child("threads=2");
    let leader = Tid(c.pid.0);
    coroner_sys::kill(c.pid, libc::SIGSTOP).unwrap();
    assert_eq!(
        coroner_sys::waitpid(leader, libc::WUNTRACED).unwrap(),
        Some(WaitStatus::Stopped { sig: libc::SIGSTOP })
    );
    assert_states(c.pid, |s| s == 'T', "group-stop before attach");

    let att = Attached::seize(c.pid, ATTACH_TIMEOUT).unwrap();
    assert!(att.was_stopped());
    assert_eq!(att.tids().len(), c.threads);
    assert_states(c.pid, |s| s == 't', "tracing stop while attached");
    att.detach().unwrap();
    // Never running user code: straight back into the group-stop.
    assert_states(
        c.pid,
        |s| s == 'T' || s == 'R',
        "stopped or re-entering the stop",
    );
    wait_for_states(c.pid, |s| s == 'T', "still stopped after detach");
    assert_eq!(procfs::read_status(c.pid).unwrap().tracer_pid, Pid(0));

    coroner_sys::kill(c.pid, libc::SIGCONT).unwrap();
    assert_eq!(
        coroner_sys::waitpid(leader, libc::WCONTINUED).unwrap(),
        Some(WaitStatus::Continued)
    );
    assert_states(c.pid, |s| s != 't' && s != 'T', "running after SIGCONT");
    assert!(c.finish().success());
}

#[test]
fn already_traced_process_is_refused_naming_the_tracer() {
    let c = spawn_child("threads=1");
    let first = Attached::seize(c.pid, ATTACH_TIMEOUT).unwrap();
    for second in [
        Attached::seize(c.pid, ATTACH_TIMEOUT),
        std::thread::scope(|s| {
            s.spawn(|| Attached::seize(c.pid, ATTACH_TIMEOUT))
                .join()
                .unwrap()
        }),
    ] {
        match second {
            Err(e @ ProcError::AlreadyTraced { .. }) => {
                let msg = e.to_string();
                let ProcError::AlreadyTraced {
                    pid,
                    tracer,
                    tracer_name,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(pid, c.pid);
                assert_eq!(Tid(tracer.0), coroner_sys::gettid());
                assert!(!tracer_name.is_empty() && tracer_name != "?");
                assert!(msg.contains("already traced"), "{msg}");
            }
            other => panic!("expected AlreadyTraced, got {other:?}"),
        }
    }
    // The refused attempts did not disturb the first one.
    assert_eq!(first.tids().len(), c.threads);
    first.detach().unwrap();
    assert!(c.finish().success());
}

#[test]
fn missing_process_and_self_are_refused() {
    assert!(matches!(
        Attached::seize(Pid(i32::MAX), ATTACH_TIMEOUT),
        Err(ProcError::NoSuchProcess { .. })
    ));
    assert!(matches!(
        Attached::seize(coroner_sys::getpid(), ATTACH_TIMEOUT),
        Err(ProcError::SelfAttach { .. })
    ));
}

/// A zero timeout either attaches (the stops were quick) or times out; in
/// both cases the process must end up running and untraced.
#[test]
fn attach_with_zero_timeout_leaves_process_as_found() {
    let c = spawn_child("threads=2,spin");
    match Attached::seize(c.pid, Duration::ZERO) {
        Ok(att) => att.detach().unwrap(),
        Err(ProcError::Timeout { stuck, .. }) => assert!(stuck.is_empty(), "{stuck:?}"),
        Err(e) => panic!("{e}"),
    }
    assert_states(c.pid, |s| s != 't' && s != 'T', "running");
    assert_eq!(procfs::read_status(c.pid).unwrap().tracer_pid, Pid(0));
    assert!(c.finish().success());
}

#[test]
fn requests_from_another_thread_are_refused() {
    let c = spawn_child("threads=0");
    let att = Attached::seize(c.pid, ATTACH_TIMEOUT).unwrap();
    let tid = att.tids()[0];
    let r = std::thread::scope(|s| s.spawn(|| att.regs(tid).map(drop)).join().unwrap());
    assert!(matches!(r, Err(ProcError::WrongThread { .. })), "{r:?}");
    assert!(matches!(
        att.regs(Tid(1)),
        Err(ProcError::NotAttached { .. })
    ));
    att.regs(tid).unwrap();
    drop(att); // Drop detaches.
    assert_eq!(procfs::read_status(c.pid).unwrap().tracer_pid, Pid(0));
    assert!(c.finish().success());
}

#[test]
fn adopted_threads_stay_traced_after_drop() {
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = Pid(cat.id() as i32);
    let tid = Tid(pid.0);
    ptrace::seize(tid, 0).unwrap();
    ptrace::interrupt(tid).unwrap();
    assert_eq!(
        coroner_sys::wait_tid(tid).unwrap(),
        WaitStatus::PtraceEventStop { sig: libc::SIGTRAP }
    );
    {
        let att = Attached::adopt(pid, vec![tid]);
        assert_eq!(att.tids(), &[tid]);
        assert!(att.regs(tid).unwrap().gp.rip != 0);
        assert_eq!(att.siginfo(tid), None);
        let snap = att.snapshot().unwrap();
        assert_eq!(snap.threads.len(), 1);
        assert!(snap.exe.ends_with("cat"));
    }
    let st = procfs::read_status(pid).unwrap();
    assert_eq!(
        Tid(st.tracer_pid.0),
        coroner_sys::gettid(),
        "adopt must not detach"
    );
    assert_eq!(st.state, 't');
    ptrace::detach(tid, 0).unwrap();
    drop(cat.stdin.take());
    assert!(cat.wait().unwrap().success());
}

#[test]
fn memory_reads_buffer_stops_at_hole_and_reads_prot_none() {
    let c = spawn_child("threads=0");
    // No attach: reading needs ptrace access, not a tracer.
    let small = ProcessMemory::with_max_per_call(c.pid, 1000).unwrap();
    let full = ProcessMemory::new(c.pid).unwrap();
    for m in [&small, &full] {
        let mut buf = vec![0u8; 2 * PAGE];
        m.read_exact(c.base, &mut buf).unwrap();
        assert!(buf.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        // Crossing into the unmapped page 2: the readable prefix comes back.
        let start = PAGE + 100;
        let n = m.read(c.base + start as u64, &mut buf).unwrap();
        assert_eq!(n, PAGE - 100);
        assert!(buf[..n]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(start + i)));
        // Nothing readable at the hole itself.
        assert!(!matches!(m.read(c.base + 2 * PAGE as u64, &mut buf), Ok(n) if n > 0));
        assert!(m
            .read_exact(c.base + 2 * PAGE as u64, &mut buf[..1])
            .is_err());
        // PROT_NONE page 3: process_vm_readv refuses, /proc/PID/mem reads.
        let mut page = vec![0u8; PAGE];
        m.read_exact(c.base + 3 * PAGE as u64, &mut page).unwrap();
        assert!(page
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(3 * PAGE + i)));
    }
    assert!(c.finish().success());
}
