//! Sending signals: `kill`, `tgkill`, and pidfds (`pidfd_open`,
//! `pidfd_send_signal`), which name a process without the pid-reuse race.

use coroner_types::{Pid, Tid};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `kill(pid, sig)`; `sig == 0` only checks that the process exists and may
/// be signalled.
pub fn kill(pid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let r = unsafe { libc::kill(pid.0, sig) };
    crate::check(r).map(drop)
}

/// `tgkill(tgid, tid, sig)`: signal one thread, checking it belongs to `pid`.
pub fn tgkill(pid: Pid, tid: Tid, sig: i32) -> io::Result<()> {
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid.0, tid.0, sig) };
    crate::check(r).map(drop)
}

/// `pidfd_open(pid, flags)` (Linux 5.3). `flags` may be 0,
/// `libc::O_NONBLOCK` (`PIDFD_NONBLOCK`) or `PIDFD_THREAD` (6.9) to name a
/// thread rather than a thread group. The fd polls readable when the
/// process exits.
pub fn pidfd_open(pid: Pid, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes an integer pid and flags and touches no
    // memory of ours.
    let r = crate::check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.0, flags) })?;
    let fd = libc::c_int::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: on success pidfd_open returned a new descriptor that nothing
    // else owns; wrapping it here gives it exactly one owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `PIDFD_THREAD` for [`pidfd_open`]: the fd names one thread.
pub const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signal the process the pidfd
/// names, as `kill` would, without the pid-reuse race.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a null siginfo pointer means "as kill(2) would"; the fd is a
    // borrowed, open descriptor; no memory of ours is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    crate::check(r).map(drop)
}

/// Signal an eventfd (or write one counter tick to any fd) that this
/// process inherited by number: the AeDebug `-e` event of a JIT launch.
/// Writes the 8-byte value 1.
pub fn signal_event_fd(fd: i32) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is a live 8-byte buffer for the duration of the call;
    // write(2) on a bad or foreign fd fails with EBADF and touches nothing
    // of ours.
    let r = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if r as usize != one.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to the event fd",
        ));
    }
    Ok(())
}

/// Set `sig`'s disposition to `SIG_IGN` for this process (the debugger
/// ignores the terminal's Ctrl+C so that the debuggee, in the same
/// foreground group, gets it as a break-in).
pub fn ignore(sig: i32) -> io::Result<()> {
    // SAFETY: signal(2) with SIG_IGN installs no handler code; `sig` is a
    // plain integer the kernel validates (EINVAL for SIGKILL/SIGSTOP).
    let r = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if r == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set `sig`'s disposition back to `SIG_DFL` (a report printer whose
/// reader went away, as in `coroner reports list | head`, then ends
/// quietly on SIGPIPE, as every Unix filter does, instead of failing on
/// EPIPE).
pub fn default_action(sig: i32) -> io::Result<()> {
    // SAFETY: signal(2) with SIG_DFL installs no handler code; `sig` is a
    // plain integer the kernel validates.
    let r = unsafe { libc::signal(sig, libc::SIG_DFL) };
    if r == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};

    #[test]
    fn pidfd_kills_child() {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = Pid(child.id() as i32);
        kill(pid, 0).unwrap();
        let fd = pidfd_open(pid, 0).unwrap();
        pidfd_send_signal(fd.as_fd(), libc::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        // The child is reaped: the pidfd now refers to a dead process.
        let e = pidfd_send_signal(fd.as_fd(), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn tgkill_checks_the_group() {
        // tid 1 (init) is not a thread of this process.
        let e = tgkill(crate::getpid(), Tid(1), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        tgkill(crate::getpid(), crate::gettid(), 0).unwrap();
    }
}
