//! [`Attached`]: a live process with every thread in a ptrace stop, and the
//! way back to exactly the state it was found in.
//!
//! Attaching is `PTRACE_SEIZE` + `PTRACE_INTERRUPT` on every task of
//! `/proc/PID/task`, waiting for each stop, and re-listing the tasks until
//! no new thread appears (a running thread may create one meanwhile; once
//! all known threads are stopped none can). Detaching is `PTRACE_DETACH` of
//! every thread, re-delivering any signal consumed at a
//! signal-delivery-stop. A process found in a group-stop (state `T`) stays
//! stopped after the detach: the kernel reinstates the group-stop of a
//! tracee detached while it is in effect.
//!
//! Windows mapping: this is what `DebugActiveProcess` + `DebugBreakProcess`
//! give a dump writer (all threads suspended); unlike Windows no thread is
//! injected, so no "break-in thread" appears in dumps.
//!
//! ptrace requests must come from the thread that seized the tracee, so an
//! [`Attached`] checks the calling thread on every request.
//!
//! Must not: resume or signal the target except to restore it on detach,
//! write dumps, or read memory other than through [`ProcessMemory`].

use crate::error::ProcError;
use crate::memory::ProcessMemory;
use crate::procfs::{self, ProcStatus};
use crate::snapshot::{LinuxFiles, ProcessSnapshot, ThreadSnapshot};
use coroner_sys::{ptrace, WaitStatus};
use coroner_types::{Pid, SigInfo, ThreadRegs, Tid};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// After a timeout, how long threads that were interrupted but had not yet
/// reported get to stop, so they can be detached instead of being left in
/// a ptrace stop.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// A stopped process whose threads the calling thread traces.
#[derive(Debug)]
pub struct Attached {
    pid: Pid,
    /// Stopped threads: leader first, then by tid.
    tids: Vec<Tid>,
    /// Signals seen at signal-delivery-stops, re-delivered on detach.
    pending: Vec<(Tid, SigInfo)>,
    /// Seized by us (detach on drop) rather than adopted.
    seized: bool,
    was_stopped: bool,
    /// The thread that owns the ptrace relationship.
    tracer: Tid,
    memory: ProcessMemory,
    soft_errors: Vec<String>,
    detached: bool,
}

/// `error: cause: cause` on one line, for soft errors.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Back off while waiting for stops: yield first (a stop takes
/// microseconds), then sleep a little longer each round, never past
/// `deadline`. This bounds a wait; it is not test synchronisation.
fn backoff(round: u32, deadline: Instant) {
    if round < 32 {
        std::thread::yield_now();
        return;
    }
    let step = Duration::from_micros(20u64 << (round - 32).min(6));
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(step.min(left));
}

impl Attached {
    /// Stop every thread of `pid` under ptrace. `timeout` bounds the whole
    /// attach; on expiry what was seized is detached and `Timeout` returned.
    ///
    /// Threads that vanish while attaching are dropped and noted in
    /// [`Attached::soft_errors`]; if none is left the result is
    /// `NoThreads`, never an `Attached` without threads.
    pub fn seize(pid: Pid, timeout: Duration) -> Result<Attached, ProcError> {
        let deadline = Instant::now() + timeout;
        if pid == coroner_sys::getpid() {
            return Err(ProcError::SelfAttach { pid });
        }
        let status = procfs::read_status(pid)?;
        check_status(pid, &status)?;
        let mut att = Attached {
            pid,
            tids: Vec::new(),
            pending: Vec::new(),
            seized: true,
            was_stopped: status.state == 'T',
            tracer: coroner_sys::gettid(),
            memory: ProcessMemory::new(pid)?,
            soft_errors: Vec::new(),
            detached: false,
        };
        let mut known = BTreeSet::new();
        // Seized and interrupted, stop not yet reported.
        let mut running: Vec<Tid> = Vec::new();
        loop {
            let tasks = match procfs::list_tasks(pid) {
                Ok(t) => t,
                Err(e) => {
                    att.abort(&mut running);
                    return Err(e);
                }
            };
            let fresh: Vec<Tid> = tasks.into_iter().filter(|t| !known.contains(t)).collect();
            if fresh.is_empty() && running.is_empty() {
                break;
            }
            for tid in fresh {
                known.insert(tid);
                if let Err(e) = att.seize_one(tid, &mut running) {
                    att.abort(&mut running);
                    return Err(e);
                }
            }
            if !att.wait_stops(&mut running, deadline) {
                let stuck = att.abort(&mut running);
                return Err(ProcError::Timeout {
                    pid,
                    timeout,
                    stuck,
                });
            }
        }
        if att.tids.is_empty() {
            att.detached = true;
            return Err(ProcError::NoThreads { pid });
        }
        let leader = Tid::from(pid);
        att.tids.sort_by_key(|&t| (t != leader, t));
        Ok(att)
    }

    /// Seize and interrupt one task; push it to `running` when its stop (or
    /// exit) is to be reaped.
    fn seize_one(&mut self, tid: Tid, running: &mut Vec<Tid>) -> Result<(), ProcError> {
        let pid = self.pid;
        if let Err(e) = ptrace::seize(tid, 0) {
            match errno(&e) {
                libc::ESRCH => {
                    self.soft_errors
                        .push(format!("thread {tid} exited before it could be attached"));
                    return Ok(());
                }
                libc::EPERM => {
                    // An exited thread (a leader that called pthread_exit
                    // while others run) cannot be seized and has nothing to
                    // show; skip it.
                    if matches!(procfs::task_state(pid, tid), Ok('Z' | 'X') | Err(_)) {
                        self.soft_errors
                            .push(format!("thread {tid} has exited (zombie); not attached"));
                        return Ok(());
                    }
                    // Someone else started tracing this thread meanwhile
                    // (the leader's TracerPid may already be us, so ask the
                    // thread's own status).
                    let task_status =
                        procfs::read_proc_file(pid, &format!("task/{}/status", tid.0))
                            .ok()
                            .and_then(|t| procfs::parse_status(&t).ok());
                    if let Some(st) = task_status {
                        if st.tracer_pid.0 != 0 && st.tracer_pid.0 != self.tracer.0 {
                            check_status(pid, &st)?;
                        }
                    }
                    return Err(ProcError::PermissionDenied {
                        pid,
                        tid,
                        source: e,
                    });
                }
                _ => {
                    return Err(ProcError::Ptrace {
                        op: "PTRACE_SEIZE",
                        pid,
                        tid,
                        source: e,
                    })
                }
            }
        }
        match ptrace::interrupt(tid) {
            // ESRCH: it died after the seize; its exit is still reported to
            // us and reaped in wait_stops.
            Ok(()) => running.push(tid),
            Err(e) if errno(&e) == libc::ESRCH => running.push(tid),
            Err(e) => {
                running.push(tid);
                return Err(ProcError::Ptrace {
                    op: "PTRACE_INTERRUPT",
                    pid,
                    tid,
                    source: e,
                });
            }
        }
        Ok(())
    }

    /// Reap the stop of every thread in `running`. Returns false if the
    /// deadline passed first (the rest stay in `running`).
    fn wait_stops(&mut self, running: &mut Vec<Tid>, deadline: Instant) -> bool {
        let mut idle_rounds = 0u32;
        loop {
            let mut progressed = false;
            let mut i = 0;
            while let Some(&tid) = running.get(i) {
                match coroner_sys::try_wait_tid(tid) {
                    Ok(None) => i += 1,
                    Ok(Some(st)) if st.is_stopped() => {
                        progressed = true;
                        running.swap_remove(i);
                        self.note_stop(tid, st);
                    }
                    Ok(Some(st)) if st.is_gone() => {
                        progressed = true;
                        running.swap_remove(i);
                        self.soft_errors
                            .push(format!("thread {tid} exited while attaching ({st:?})"));
                    }
                    // WaitStatus::Continued is not asked for; keep waiting.
                    Ok(Some(_)) => i += 1,
                    Err(e) => {
                        progressed = true;
                        running.swap_remove(i);
                        self.soft_errors
                            .push(format!("waiting for thread {tid} to stop: {e}; dropped"));
                    }
                }
            }
            if running.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if progressed {
                idle_rounds = 0;
            } else {
                backoff(idle_rounds, deadline);
                idle_rounds = idle_rounds.saturating_add(1);
            }
        }
    }

    fn note_stop(&mut self, tid: Tid, st: WaitStatus) {
        if let WaitStatus::Stopped { sig } = st {
            // Signal-delivery-stop: the signal was dequeued; keep it to
            // deliver on detach, with its siginfo for the dump.
            let si = ptrace::get_siginfo(tid).unwrap_or_else(|e| {
                self.soft_errors
                    .push(format!("siginfo of thread {tid} (signal {sig}): {e}"));
                SigInfo::new_sent(sig, 0, 0, 0)
            });
            self.pending.push((tid, si));
        }
        self.tids.push(tid);
    }

    /// Give interrupted threads a short grace to stop, detach everything
    /// stopped, and return the threads that never stopped.
    fn abort(&mut self, running: &mut Vec<Tid>) -> Vec<Tid> {
        let grace = Instant::now() + ABORT_GRACE;
        self.wait_stops(running, grace);
        let _ = self.detach_all();
        std::mem::take(running)
    }

    /// Wrap threads the caller already traces and has stopped (a debugger,
    /// a test harness). Dropping the result does not detach them.
    pub fn adopt(pid: Pid, tids: Vec<Tid>) -> Attached {
        let leader = Tid::from(pid);
        let mut tids = tids;
        tids.sort_by_key(|&t| (t != leader, t));
        tids.dedup();
        let memory = ProcessMemory::new(pid).unwrap_or_else(|_| {
            // The process is gone; reads will fail with ESRCH. Keep the
            // constructor infallible as callers already hold the tracee.
            ProcessMemory::unchecked(pid)
        });
        Attached {
            pid,
            tids,
            pending: Vec::new(),
            seized: false,
            was_stopped: false,
            tracer: coroner_sys::gettid(),
            memory,
            soft_errors: Vec::new(),
            detached: false,
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The stopped threads: leader first, then by tid.
    pub fn tids(&self) -> &[Tid] {
        &self.tids
    }

    /// The process was in a group-stop (`T`) before we attached; it will be
    /// again after the detach. Always false for adopted processes.
    pub fn was_stopped(&self) -> bool {
        self.was_stopped
    }

    /// Problems met while attaching (threads that vanished, ...).
    pub fn soft_errors(&self) -> &[String] {
        &self.soft_errors
    }

    /// The target's memory; `Sync`, so reader threads may share it.
    pub fn memory(&self) -> &ProcessMemory {
        &self.memory
    }

    fn check_thread(&self, tid: Tid) -> Result<(), ProcError> {
        let caller = coroner_sys::gettid();
        if caller != self.tracer {
            return Err(ProcError::WrongThread {
                pid: self.pid,
                tracer: self.tracer,
                caller,
            });
        }
        if !self.tids.contains(&tid) {
            return Err(ProcError::NotAttached { pid: self.pid, tid });
        }
        Ok(())
    }

    /// General, FP (FXSAVE) and XSAVE registers of a stopped thread. Only
    /// the general registers are required; the others are `None` when the
    /// kernel refuses them.
    pub fn regs(&self, tid: Tid) -> Result<ThreadRegs, ProcError> {
        self.check_thread(tid)?;
        let gp = ptrace::get_regs(tid).map_err(|source| ProcError::Ptrace {
            op: "PTRACE_GETREGSET NT_PRSTATUS",
            pid: self.pid,
            tid,
            source,
        })?;
        Ok(ThreadRegs {
            gp,
            fp: ptrace::get_fpregs(tid).ok(),
            xstate: ptrace::get_xstate(tid).ok(),
        })
    }

    /// The signal a thread is about to receive when it is in a
    /// signal-delivery-stop; `None` for other stops (interrupt, group-stop,
    /// ptrace events).
    pub fn siginfo(&self, tid: Tid) -> Option<SigInfo> {
        if self.seized {
            return self
                .pending
                .iter()
                .find(|(t, _)| *t == tid)
                .map(|(_, si)| *si);
        }
        self.check_thread(tid).ok()?;
        let si = ptrace::get_siginfo(tid).ok()?;
        // Event and group stops carry a made-up siginfo whose si_code is
        // `event << 8 | signal`; real signals have codes below 0x100.
        (si.code() < 0x100).then_some(si)
    }

    /// Everything about the stopped process except its bulk memory.
    /// Unreadable parts become soft errors; only a vanished process fails.
    pub fn snapshot(&self) -> Result<ProcessSnapshot, ProcError> {
        let pid = self.pid;
        let mut soft = self.soft_errors.clone();
        let mut keep = |what: &str, r: Result<Vec<u8>, ProcError>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                soft.push(format!("{what}: {}", chain(&e)));
                None
            }
        };
        let status = procfs::read_proc_file(pid, "status")?;
        let files = LinuxFiles {
            status: Some(status.clone()),
            cmdline: keep("cmdline", procfs::read_proc_file(pid, "cmdline")),
            environ: keep("environ", procfs::read_proc_file(pid, "environ")),
            maps: keep("maps", procfs::read_proc_file(pid, "maps")),
            smaps: keep("smaps", procfs::read_proc_file(pid, "smaps")),
            limits: keep("limits", procfs::read_proc_file(pid, "limits")),
            cpuinfo: keep("cpuinfo", read_path("/proc/cpuinfo")),
            os_release: keep(
                "os-release",
                read_path("/etc/os-release").or_else(|_| read_path("/usr/lib/os-release")),
            ),
        };
        let auxv = keep("auxv", procfs::read_auxv(pid)).unwrap_or_default();
        let comm = keep("comm", procfs::comm(pid)).unwrap_or_default();
        let mut snap = ProcessSnapshot {
            pid,
            auxv,
            comm,
            ..ProcessSnapshot::default()
        };
        match procfs::parse_status(&status) {
            Ok(st) => {
                snap.ppid = st.ppid;
                snap.uid = st.uid[0];
                snap.gid = st.gid[0];
            }
            Err(e) => soft.push(format!("parsing /proc/{pid}/status: {e}")),
        }
        if let Some(maps) = &files.maps {
            match procfs::parse_maps(maps) {
                Ok(mut m) => {
                    m.sort_by_key(|m| m.start);
                    snap.mappings = m;
                }
                Err(e) => soft.push(format!("parsing /proc/{pid}/maps: {e}")),
            }
        }
        match procfs::exe_path(pid) {
            Ok(p) => snap.exe = p,
            Err(e) => soft.push(format!("exe: {}", chain(&e))),
        }
        match procfs::start_time(pid) {
            Ok(t) => snap.start_time = t,
            Err(e) => soft.push(format!("start time: {}", chain(&e))),
        }
        for &tid in &self.tids {
            let name = procfs::thread_name(pid, tid).unwrap_or_else(|e| {
                soft.push(format!("name of thread {tid}: {}", chain(&e)));
                Vec::new()
            });
            let regs = self
                .regs(tid)
                .map_err(|e| soft.push(format!("registers of thread {tid}: {}", chain(&e))))
                .ok();
            snap.threads.push(ThreadSnapshot { tid, name, regs });
        }
        snap.files = files;
        snap.soft_errors = soft;
        Ok(snap)
    }

    /// Detach every thread, leaving the process as it was found: running if
    /// it was running, in its group-stop if it was stopped; signals seen at
    /// signal-delivery-stops are delivered now. Threads that died meanwhile
    /// are skipped. For adopted processes this does nothing.
    pub fn detach(mut self) -> Result<(), ProcError> {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Result<(), ProcError> {
        if !self.seized || self.detached {
            return Ok(());
        }
        self.detached = true;
        let caller = coroner_sys::gettid();
        if caller != self.tracer {
            return Err(ProcError::WrongThread {
                pid: self.pid,
                tracer: self.tracer,
                caller,
            });
        }
        let mut first_err = None;
        for &tid in &self.tids {
            let sig = self
                .pending
                .iter()
                .find(|(t, _)| *t == tid)
                .map_or(0, |(_, si)| si.signo());
            match ptrace::detach(tid, sig) {
                Ok(()) => {}
                Err(e) if errno(&e) == libc::ESRCH => {}
                Err(source) => {
                    first_err.get_or_insert(ProcError::Ptrace {
                        op: "PTRACE_DETACH",
                        pid: self.pid,
                        tid,
                        source,
                    });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.detach_all();
    }
}

/// Refuse processes we must not or cannot attach to.
fn check_status(pid: Pid, st: &ProcStatus) -> Result<(), ProcError> {
    if matches!(st.state, 'Z' | 'X') && st.threads <= 1 {
        return Err(ProcError::Zombie { pid });
    }
    if st.tracer_pid.0 != 0 {
        let tracer = st.tracer_pid;
        let tracer_name = procfs::comm(tracer)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_else(|_| "?".to_owned());
        return Err(ProcError::AlreadyTraced {
            pid,
            tracer,
            tracer_name,
        });
    }
    Ok(())
}

fn read_path(path: &str) -> Result<Vec<u8>, ProcError> {
    std::fs::read(path).map_err(|source| ProcError::Read {
        path: PathBuf::from(path),
        source,
    })
}
