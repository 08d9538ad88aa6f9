//! Watching a process until a signal is about to kill it (ProcDump `-e`,
//! and the harness that dumps crashers "at the moment of the crash").
//!
//! Owns: launching a program under ptrace or seizing a running one (every
//! thread, without stopping it), passing every signal through unchanged, and
//! recognising the **second chance**: the signal-delivery-stop of a
//! core-dumping signal whose delivery would kill the process. At that point
//! the crashing thread is stopped exactly at the fault, with the kernel's
//! `siginfo`; [`Watch::stop_others`] stops the other threads so the caller
//! can dump them (via [`crate::Attached::adopt`]), then
//! [`Watch::deliver_and_wait`] delivers the signal so the process dies as it
//! would have without us (same exit status, same kernel core handling).
//!
//! Windows/Linux: Windows reports a second chance when no handler took the
//! exception. Linux has no such event, so it is derived: a synchronous fault
//! (`si_code > 0`) is fatal when the signal is not caught (blocked or ignored
//! faults are forced to the default action by the kernel); an asynchronous
//! signal (`kill`, `abort()`) is fatal when it is neither caught nor ignored.
//! A program's own handler that recovers is never reported; one that resets
//! to `SIG_DFL` and re-raises is reported at the re-raise.
//!
//! Must not: write dumps, or leave a process stopped or traced when it
//! returns an error (Drop detaches or kills what it launched).

use crate::error::ProcError;
use crate::procfs;
use coroner_sys::ptrace;
use coroner_sys::wait::{self, WaitStatus};
use coroner_types::{Pid, SigInfo, Tid};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Signals whose default action is to dump core: the crashes.
pub const CORE_SIGNALS: [i32; 10] = [
    libc::SIGQUIT,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGSYS,
];

/// The dispositions that decide whether a signal is fatal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dispositions {
    /// `SigCgt`: signals with a handler.
    pub caught: u64,
    /// `SigIgn`: ignored signals.
    pub ignored: u64,
}

fn bit(sig: i32) -> u64 {
    if (1..=64).contains(&sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

impl Dispositions {
    /// The dispositions of `pid` now (`SigCgt`, `SigIgn` of its status).
    /// When they cannot be read, every signal counts as caught, so that a
    /// program that might handle its own fault is never treated as dying.
    pub fn read(pid: Pid) -> Dispositions {
        match procfs::read_status(pid) {
            Ok(s) => Dispositions {
                caught: s.sig_cgt,
                ignored: s.sig_ign,
            },
            Err(_) => Dispositions {
                caught: u64::MAX,
                ignored: 0,
            },
        }
    }
}

/// Signals whose default action is not to end the process.
const NON_FATAL_DEFAULTS: [i32; 8] = [
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGSTOP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Would delivering `si` end the process (with or without a core)? This
/// is the second chance: no handler, and either not ignored or a
/// synchronous fault (the kernel forces those to the default action even
/// when ignored), and a default action that terminates.
pub fn would_kill(si: &SigInfo, disp: Dispositions) -> bool {
    let sig = si.signo();
    if !(1..=64).contains(&sig) || NON_FATAL_DEFAULTS.contains(&sig) {
        return false;
    }
    if disp.caught & bit(sig) != 0 {
        return false;
    }
    // A synchronous fault that is ignored is still forced to the default
    // action by the kernel; an ignored asynchronous signal is discarded.
    let synchronous = si.code() > 0 && CORE_SIGNALS.contains(&sig) && sig != libc::SIGQUIT;
    synchronous || disp.ignored & bit(sig) == 0
}

/// Would delivering `si` kill the process with a core dump (a crash)?
pub fn is_fatal_crash(si: &SigInfo, disp: Dispositions) -> bool {
    CORE_SIGNALS.contains(&si.signo()) && would_kill(si, disp)
}

/// Trace every thread of `pid` with `PTRACE_SEIZE` (`options`), without
/// stopping them, until the task list holds no thread we do not trace (new
/// threads of seized threads are traced automatically with
/// `PTRACE_O_TRACECLONE`). Refuses a process another tracer holds. On any
/// error the threads seized so far are detached again: a process is never
/// left half-traced.
pub fn seize_threads(pid: Pid, options: u32) -> Result<Vec<Tid>, ProcError> {
    let status = procfs::read_status(pid)?;
    if status.tracer_pid.0 != 0 {
        let tracer_name = procfs::comm(status.tracer_pid)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_else(|_| "?".into());
        return Err(ProcError::AlreadyTraced {
            pid,
            tracer: status.tracer_pid,
            tracer_name,
        });
    }
    let mut traced: Vec<Tid> = Vec::new();
    let undo = |traced: &[Tid], e: ProcError| {
        for &t in traced {
            let _ = ptrace::detach(t, 0);
        }
        Err(e)
    };
    loop {
        let mut new = false;
        let tasks = match procfs::list_tasks(pid) {
            Ok(t) => t,
            Err(e) => return undo(&traced, e),
        };
        for tid in tasks {
            if traced.contains(&tid) {
                continue;
            }
            match ptrace::seize(tid, options) {
                Ok(()) => {
                    traced.push(tid);
                    new = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    return undo(
                        &traced,
                        ProcError::PermissionDenied {
                            pid,
                            tid,
                            source: e,
                        },
                    )
                }
                Err(e) => return undo(&traced, ptrace_err("SEIZE", pid, tid, e)),
            }
        }
        if !new {
            break;
        }
    }
    if traced.is_empty() {
        return Err(ProcError::NoThreads { pid });
    }
    Ok(traced)
}

/// What ended a [`Watch::wait_for_crash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// `tid` is stopped at the second chance of `siginfo`.
    Crash { tid: Tid, siginfo: SigInfo },
    /// The process exited normally with this code.
    Exited(i32),
    /// The process was killed by a signal we were not asked to stop for
    /// (SIGKILL, or a non-core fatal signal like SIGTERM).
    Killed(i32),
}

/// A process traced for its crash.
pub struct Watch {
    pid: Pid,
    /// Tids we trace (seized or auto-attached clones).
    traced: BTreeSet<Tid>,
    /// Signals seen while stopping threads, to deliver when they resume.
    pending: BTreeMap<Tid, i32>,
    /// Threads currently in a ptrace stop.
    stopped: BTreeSet<Tid>,
    launched: bool,
    done: bool,
}

const OPTIONS: u32 = ptrace::PTRACE_O_TRACECLONE;

fn ptrace_err(op: &'static str, pid: Pid, tid: Tid, source: io::Error) -> ProcError {
    ProcError::Ptrace {
        op,
        pid,
        tid,
        source,
    }
}

impl Watch {
    /// Start `command` (program and arguments, looked up in `PATH`) traced
    /// from its first instruction. Its stdin/stdout/stderr are inherited.
    pub fn launch(command: &[OsString]) -> Result<Watch, ProcError> {
        let (program, args) = command.split_first().ok_or_else(|| ProcError::Launch {
            command: String::new(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        let (pid, child) = launch_seized(&mut cmd, OPTIONS | ptrace::PTRACE_O_EXITKILL)?;
        let tid = Tid(pid.0);
        coroner_sys::signal::kill(pid, libc::SIGCONT)
            .map_err(|e| ptrace_err("SIGCONT", pid, tid, e))?;
        // `child` only reaps through waitpid, which our loop does.
        drop(child);
        Ok(Watch {
            pid,
            traced: BTreeSet::from([tid]),
            pending: BTreeMap::new(),
            stopped: BTreeSet::new(),
            launched: true,
            done: false,
        })
    }

    /// Trace every thread of a running process without stopping it.
    pub fn attach(pid: Pid) -> Result<Watch, ProcError> {
        let traced = seize_threads(pid, OPTIONS)?.into_iter().collect();
        Ok(Watch {
            pid,
            traced,
            pending: BTreeMap::new(),
            stopped: BTreeSet::new(),
            launched: false,
            done: false,
        })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    fn disposition(&self) -> Dispositions {
        Dispositions::read(self.pid)
    }

    /// Run the process, passing every signal on, until a signal is about to
    /// kill it with a core dump or it ends.
    pub fn wait_for_crash(&mut self) -> Result<WatchEvent, ProcError> {
        loop {
            let (tid, st) = match wait::wait_any(0) {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(source) => {
                    return Err(ProcError::Wait {
                        pid: self.pid,
                        tid: Tid(self.pid.0),
                        source,
                    })
                }
            };
            if let Some(ev) = self.handle(tid, st, true)? {
                return Ok(ev);
            }
        }
    }

    /// Handle one wait report. With `stop_on_crash`, a fatal signal-delivery
    /// stop is returned as a crash (the thread stays stopped).
    fn handle(
        &mut self,
        tid: Tid,
        st: WaitStatus,
        stop_on_crash: bool,
    ) -> Result<Option<WatchEvent>, ProcError> {
        let pid = self.pid;
        match st {
            WaitStatus::Exited { code } => {
                self.traced.remove(&tid);
                self.stopped.remove(&tid);
                if tid.0 == pid.0 {
                    self.done = true;
                    return Ok(Some(WatchEvent::Exited(code)));
                }
            }
            WaitStatus::Signaled { sig, .. } => {
                self.traced.remove(&tid);
                self.stopped.remove(&tid);
                if tid.0 == pid.0 {
                    self.done = true;
                    return Ok(Some(WatchEvent::Killed(sig)));
                }
            }
            WaitStatus::Stopped { sig } => {
                self.traced.insert(tid);
                let si =
                    ptrace::get_siginfo(tid).unwrap_or_else(|_| SigInfo::new_sent(sig, 0, 0, 0));
                if stop_on_crash && is_fatal_crash(&si, self.disposition()) {
                    self.stopped.insert(tid);
                    return Ok(Some(WatchEvent::Crash { tid, siginfo: si }));
                }
                self.resume(tid, sig)?;
            }
            WaitStatus::GroupStop { .. } => {
                // Job control stop: keep the process stopped as the user
                // asked, but keep receiving events (PTRACE_LISTEN).
                self.traced.insert(tid);
                if let Err(e) = ptrace::listen(tid) {
                    if e.raw_os_error() != Some(libc::ESRCH) {
                        return Err(ptrace_err("LISTEN", pid, tid, e));
                    }
                }
            }
            WaitStatus::PtraceEventStop { .. }
            | WaitStatus::PtraceEvent { .. }
            | WaitStatus::SyscallStop
            | WaitStatus::Continued => {
                self.traced.insert(tid);
                self.resume(tid, 0)?;
            }
        }
        Ok(None)
    }

    fn resume(&mut self, tid: Tid, sig: i32) -> Result<(), ProcError> {
        self.stopped.remove(&tid);
        match ptrace::cont(tid, sig) {
            Ok(()) => Ok(()),
            // The thread died meanwhile (another thread's fatal signal).
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(ptrace_err("CONT", self.pid, tid, e)),
        }
    }

    /// Stop every other thread (after a [`WatchEvent::Crash`] on `crashed`)
    /// and return all stopped tids, the crashed one first. Signals other
    /// threads were about to receive are kept and delivered on resume.
    pub fn stop_others(&mut self, crashed: Tid) -> Result<Vec<Tid>, ProcError> {
        let pid = self.pid;
        let mut waiting = BTreeSet::new();
        for &tid in &self.traced {
            if self.stopped.contains(&tid) {
                continue;
            }
            match ptrace::interrupt(tid) {
                Ok(()) => {
                    waiting.insert(tid);
                }
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(ptrace_err("INTERRUPT", pid, tid, e)),
            }
        }
        while !waiting.is_empty() {
            let (tid, st) = match wait::wait_any(0) {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(source) => {
                    return Err(ProcError::Wait {
                        pid,
                        tid: crashed,
                        source,
                    })
                }
            };
            waiting.remove(&tid);
            match st {
                WaitStatus::Stopped { sig } => {
                    // Deliver later; keep it stopped now.
                    self.pending.insert(tid, sig);
                    self.stopped.insert(tid);
                    self.traced.insert(tid);
                }
                WaitStatus::PtraceEventStop { .. } | WaitStatus::GroupStop { .. } => {
                    self.stopped.insert(tid);
                    self.traced.insert(tid);
                }
                WaitStatus::PtraceEvent { event, .. } => {
                    self.stopped.insert(tid);
                    self.traced.insert(tid);
                    if event == ptrace::PTRACE_EVENT_CLONE {
                        // The new thread starts with a stop of its own.
                        if let Ok(new) = ptrace::get_event_msg(tid) {
                            waiting.insert(Tid(new as i32));
                        }
                    }
                }
                WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => {
                    self.traced.remove(&tid);
                    self.stopped.remove(&tid);
                }
                WaitStatus::SyscallStop | WaitStatus::Continued => {
                    self.stopped.insert(tid);
                }
            }
        }
        let mut tids = vec![crashed];
        tids.extend(self.stopped.iter().copied().filter(|&t| t != crashed));
        Ok(tids)
    }

    /// Resume every stopped thread, delivering `sig` to `crashed` (so the
    /// process dies as it would have) and any kept signal to the others;
    /// then wait for the process to end and return how it ended.
    pub fn deliver_and_wait(&mut self, crashed: Tid, sig: i32) -> Result<WatchEvent, ProcError> {
        let others: Vec<Tid> = self
            .stopped
            .iter()
            .copied()
            .filter(|&t| t != crashed)
            .collect();
        for tid in others {
            let s = self.pending.remove(&tid).unwrap_or(0);
            self.resume(tid, s)?;
        }
        self.resume(crashed, sig)?;
        loop {
            let (tid, st) = match wait::wait_any(0) {
                Ok(Some(x)) => x,
                Ok(None) => continue,
                Err(source) => {
                    return Err(ProcError::Wait {
                        pid: self.pid,
                        tid: crashed,
                        source,
                    })
                }
            };
            if let Some(ev) = self.handle(tid, st, false)? {
                return Ok(ev);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.launched {
            // A program we started must not outlive a failed watch in a
            // stopped state; EXITKILL also covers our own death.
            let _ = coroner_sys::signal::kill(self.pid, libc::SIGKILL);
            let _ = wait::wait_tid(Tid(self.pid.0));
            return;
        }
        for &tid in &self.traced {
            let sig = self.pending.get(&tid).copied().unwrap_or(0);
            if !self.stopped.contains(&tid) && ptrace::interrupt(tid).is_ok() {
                let _ = wait::wait_tid(tid);
            }
            let _ = ptrace::detach(tid, sig);
        }
    }
}

/// Spawn `cmd` and leave it seized (with `options`) and stopped by
/// `SIGSTOP` right after its `execve`, before its first instruction. The
/// caller resumes it with `SIGCONT` (a seized tracee then reports the
/// `SIGCONT` delivery), and reaps it through `waitpid` (the returned
/// `Child` must not be waited on).
///
/// How: `PTRACE_TRACEME` in the child (the exec stops it with `SIGTRAP`),
/// then a hand-over to `PTRACE_SEIZE` (only seized tracees can be
/// interrupted): detach into a `SIGSTOP`, seize the stopped child.
pub fn launch_seized(
    cmd: &mut Command,
    options: u32,
) -> Result<(Pid, std::process::Child), ProcError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls ptrace(2), which is async-signal-safe; it touches no memory
    // shared with the parent's other threads.
    unsafe {
        cmd.pre_exec(|| {
            // Traced from exec on: the child stops with SIGTRAP right
            // after execve succeeds (std's spawn waits for the exec).
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| ProcError::Launch {
        command: program.clone(),
        source,
    })?;
    let pid = Pid(child.id() as i32);
    let tid = Tid(pid.0);
    let launch_err = |what: String| ProcError::Launch {
        command: program.clone(),
        source: io::Error::other(what),
    };
    match wait::wait_tid(tid) {
        Ok(WaitStatus::Stopped { sig }) if sig == libc::SIGTRAP => {}
        Ok(other) => return Err(launch_err(format!("unexpected first stop {other:?}"))),
        Err(source) => return Err(ProcError::Wait { pid, tid, source }),
    }
    ptrace::detach(tid, libc::SIGSTOP).map_err(|e| ptrace_err("DETACH", pid, tid, e))?;
    loop {
        match wait::waitpid(tid, libc::WUNTRACED) {
            Ok(Some(WaitStatus::Stopped { .. } | WaitStatus::GroupStop { .. })) => break,
            Ok(Some(WaitStatus::Exited { code })) => {
                return Err(launch_err(format!("exited with {code} before it ran")))
            }
            Ok(Some(WaitStatus::Signaled { sig, .. })) => {
                return Err(launch_err(format!("killed by signal {sig} before it ran")))
            }
            Ok(_) => continue,
            Err(source) => return Err(ProcError::Wait { pid, tid, source }),
        }
    }
    ptrace::seize(tid, options).map_err(|e| ptrace_err("SEIZE", pid, tid, e))?;
    Ok((pid, child))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_chance_rules() {
        let fault = SigInfo::new_fault(libc::SIGSEGV, 1, 0);
        let none = Dispositions::default();
        assert!(is_fatal_crash(&fault, none));
        // A program handler gets its first chance.
        let caught = Dispositions {
            caught: bit(libc::SIGSEGV),
            ignored: 0,
        };
        assert!(!is_fatal_crash(&fault, caught));
        // An ignored synchronous fault is forced to the default action.
        let ign = Dispositions {
            caught: 0,
            ignored: bit(libc::SIGSEGV),
        };
        assert!(is_fatal_crash(&fault, ign));
        // An ignored abort()-style signal is discarded.
        let abrt = SigInfo::new_sent(libc::SIGABRT, -6, 1, 0);
        assert!(is_fatal_crash(&abrt, none));
        assert!(!is_fatal_crash(
            &abrt,
            Dispositions {
                caught: 0,
                ignored: bit(libc::SIGABRT)
            }
        ));
        // Not a crash signal.
        assert!(!is_fatal_crash(
            &SigInfo::new_sent(libc::SIGTERM, 0, 1, 0),
            none
        ));
        assert!(!is_fatal_crash(
            &SigInfo::new_sent(libc::SIGUSR1, 0, 1, 0),
            none
        ));
    }

    #[test]
    fn second_chance_of_any_terminating_signal() {
        let none = Dispositions::default();
        let term = SigInfo::new_sent(libc::SIGTERM, 0, 1, 0);
        // Fatal by default, not once caught or ignored.
        assert!(would_kill(&term, none));
        let caught = Dispositions {
            caught: bit(libc::SIGTERM),
            ignored: 0,
        };
        assert!(!would_kill(&term, caught));
        let ignored = Dispositions {
            caught: 0,
            ignored: bit(libc::SIGTERM),
        };
        assert!(!would_kill(&term, ignored));
        // Default actions that do not end the process.
        assert!(!would_kill(
            &SigInfo::new_sent(libc::SIGCHLD, 1, 1, 0),
            none
        ));
        assert!(!would_kill(
            &SigInfo::new_sent(libc::SIGWINCH, 0, 1, 0),
            none
        ));
        // A synchronous fault kills even when ignored.
        let fault = SigInfo::new_fault(libc::SIGSEGV, 1, 0);
        let seg_ignored = Dispositions {
            caught: 0,
            ignored: bit(libc::SIGSEGV),
        };
        assert!(would_kill(&fault, seg_ignored));
        // Not a signal number.
        assert!(!would_kill(&SigInfo::new_sent(0, 0, 1, 0), none));
    }
}
