//! `waitpid` with `__WALL`, decoded into what a ptrace tracer needs to know
//! (ptrace(2) "Stopped states"): a signal-delivery-stop, a group-stop, a
//! `PTRACE_EVENT_*` stop, a syscall-stop, or the end of the thread.

use coroner_types::Tid;
use std::io;

/// `PTRACE_EVENT_STOP`: the event number of group-stops and
/// `PTRACE_INTERRUPT`/`PTRACE_LISTEN` stops of seized tracees.
pub const PTRACE_EVENT_STOP: u32 = 128;

/// A decoded wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// The thread exited with this code.
    Exited { code: i32 },
    /// The thread was killed by a signal.
    Signaled { sig: i32, core_dumped: bool },
    /// Signal-delivery-stop: `sig` is about to be delivered; the tracer
    /// passes it (or not) with the next restart. For tracees attached with
    /// `PTRACE_ATTACH` a group-stop also looks like this.
    Stopped { sig: i32 },
    /// Group-stop of a seized tracee (`PTRACE_EVENT_STOP` with a stopping
    /// signal): the process is stopped by job control.
    GroupStop { sig: i32 },
    /// `PTRACE_EVENT_STOP` that is not a group-stop: the stop requested by
    /// `PTRACE_INTERRUPT` (or a `PTRACE_LISTEN` wake-up); `sig` is `SIGTRAP`.
    PtraceEventStop { sig: i32 },
    /// Any other `PTRACE_EVENT_*` stop (clone, exec, exit, ...); read the
    /// event's data with `PTRACE_GETEVENTMSG`.
    PtraceEvent { event: u32, sig: i32 },
    /// Syscall-stop with `PTRACE_O_TRACESYSGOOD` (`SIGTRAP | 0x80`).
    SyscallStop,
    /// Resumed by `SIGCONT` (only with `WCONTINUED`).
    Continued,
}

impl WaitStatus {
    /// Decode a raw `wait` status word.
    pub fn from_raw(status: i32) -> WaitStatus {
        let low = status & 0x7f;
        if low == 0 {
            return WaitStatus::Exited {
                code: (status >> 8) & 0xff,
            };
        }
        if status == 0xffff {
            return WaitStatus::Continued;
        }
        if status & 0xff == 0x7f {
            let sig = (status >> 8) & 0xff;
            let event = ((status >> 16) & 0xff) as u32;
            return match event {
                0 if sig == libc::SIGTRAP | 0x80 => WaitStatus::SyscallStop,
                0 => WaitStatus::Stopped { sig },
                PTRACE_EVENT_STOP => match sig {
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
                        WaitStatus::GroupStop { sig }
                    }
                    _ => WaitStatus::PtraceEventStop { sig },
                },
                _ => WaitStatus::PtraceEvent { event, sig },
            };
        }
        WaitStatus::Signaled {
            sig: low,
            core_dumped: status & 0x80 != 0,
        }
    }

    /// The thread is in a ptrace stop (registers can be read).
    pub fn is_stopped(&self) -> bool {
        matches!(
            self,
            WaitStatus::Stopped { .. }
                | WaitStatus::GroupStop { .. }
                | WaitStatus::PtraceEventStop { .. }
                | WaitStatus::PtraceEvent { .. }
                | WaitStatus::SyscallStop
        )
    }

    /// The thread is gone.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            WaitStatus::Exited { .. } | WaitStatus::Signaled { .. }
        )
    }
}

fn waitpid_raw(pid: libc::pid_t, flags: i32) -> io::Result<Option<(Tid, WaitStatus)>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a live, writable c_int the kernel stores the
        // status word into; no other memory is passed.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r > 0 {
            return Ok(Some((Tid(r), WaitStatus::from_raw(status))));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Block until thread `tid` (a child or tracee) changes state
/// (`waitpid(tid, __WALL)`, retried on `EINTR`).
pub fn wait_tid(tid: Tid) -> io::Result<WaitStatus> {
    match waitpid_raw(tid.0, libc::__WALL)? {
        Some((_, st)) => Ok(st),
        // waitpid without WNOHANG never returns 0.
        None => Err(io::Error::from_raw_os_error(libc::ECHILD)),
    }
}

/// Like [`wait_tid`] but returns `Ok(None)` at once when `tid` has nothing
/// to report (`WNOHANG`).
pub fn try_wait_tid(tid: Tid) -> io::Result<Option<WaitStatus>> {
    Ok(waitpid_raw(tid.0, libc::__WALL | libc::WNOHANG)?.map(|(_, st)| st))
}

/// `waitpid(tid, __WALL | extra_flags)`: `extra_flags` may hold `WNOHANG`
/// (then `Ok(None)` means nothing to report), `WUNTRACED` and `WCONTINUED`
/// (to hear of job-control stops and continues of a child that is not
/// traced).
pub fn waitpid(tid: Tid, extra_flags: i32) -> io::Result<Option<WaitStatus>> {
    Ok(waitpid_raw(tid.0, libc::__WALL | extra_flags)?.map(|(_, st)| st))
}

/// `waitpid(-1, __WALL | extra_flags)`: the next report from any child or
/// tracee of the calling thread group. `extra_flags` may hold `WNOHANG`,
/// `WCONTINUED`, `WUNTRACED`, `__WNOTHREAD`.
pub fn wait_any(extra_flags: i32) -> io::Result<Option<(Tid, WaitStatus)>> {
    waitpid_raw(-1, libc::__WALL | extra_flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_status_words() {
        assert_eq!(WaitStatus::from_raw(3 << 8), WaitStatus::Exited { code: 3 });
        assert_eq!(
            WaitStatus::from_raw(libc::SIGSEGV | 0x80),
            WaitStatus::Signaled {
                sig: libc::SIGSEGV,
                core_dumped: true
            }
        );
        assert_eq!(
            WaitStatus::from_raw((libc::SIGSEGV << 8) | 0x7f),
            WaitStatus::Stopped { sig: libc::SIGSEGV }
        );
        let ev = |sig: i32, ev: i32| (ev << 16) | (sig << 8) | 0x7f;
        assert_eq!(
            WaitStatus::from_raw(ev(libc::SIGSTOP, 128)),
            WaitStatus::GroupStop { sig: libc::SIGSTOP }
        );
        assert_eq!(
            WaitStatus::from_raw(ev(libc::SIGTRAP, 128)),
            WaitStatus::PtraceEventStop { sig: libc::SIGTRAP }
        );
        assert_eq!(
            WaitStatus::from_raw(ev(libc::SIGTRAP, 3)),
            WaitStatus::PtraceEvent {
                event: 3,
                sig: libc::SIGTRAP
            }
        );
        assert_eq!(
            WaitStatus::from_raw(ev(libc::SIGTRAP | 0x80, 0)),
            WaitStatus::SyscallStop
        );
        assert_eq!(WaitStatus::from_raw(0xffff), WaitStatus::Continued);
        assert!(WaitStatus::from_raw(ev(libc::SIGTRAP, 128)).is_stopped());
        assert!(WaitStatus::from_raw(0).is_gone());
    }

    #[test]
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait_tid, the function under test"
    )]
    fn wait_child_exit_and_nohang() {
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let tid = Tid(child.id() as i32);
        assert_eq!(try_wait_tid(tid).unwrap(), None);
        drop(child.stdin.take());
        assert_eq!(wait_tid(tid).unwrap(), WaitStatus::Exited { code: 0 });
        let e = wait_tid(tid).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECHILD));
    }
}
