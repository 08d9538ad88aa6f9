//! The only place with raw syscalls: ptrace, waitpid, pidfd,
//! process_vm_readv, tgkill, and friends. Thin, typed wrappers; every
//! `unsafe` block carries a `// SAFETY:` line naming the invariant.
//!
//! Every wrapper returns `io::Result`, whose error is the kernel's `errno`
//! (`io::Error::raw_os_error`), so callers can tell `ESRCH` (thread gone)
//! from `EPERM` (not allowed) from `EFAULT` (unmapped address).
//!
//! Must not: hold policy (what to attach, when to detach) or parse `/proc`.

pub mod fs;
pub mod mem;
pub mod poll;
pub mod ptrace;
pub mod signal;
pub mod sock;
pub mod wait;

pub use mem::{pread, process_vm_readv};
pub use signal::{kill, pidfd_open, pidfd_send_signal, tgkill};
pub use wait::{try_wait_tid, wait_any, wait_tid, waitpid, WaitStatus};

use coroner_types::{Pid, Tid};
use std::io;

/// The calling thread's kernel task id.
pub fn gettid() -> Tid {
    // SAFETY: gettid(2) takes no arguments, touches no memory and cannot fail.
    Tid(unsafe { libc::gettid() })
}

/// The calling process's id (thread-group id).
pub fn getpid() -> Pid {
    // SAFETY: getpid(2) takes no arguments, touches no memory and cannot fail.
    Pid(unsafe { libc::getpid() })
}

/// `USER_HZ`, the unit of the tick counts in `/proc/PID/stat`.
///
/// Falls back to 100 (the value on every Linux architecture we support)
/// should `sysconf` report it as unknown.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a process-wide constant; it takes no pointers.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Turn a `-1`-on-error return value into `io::Result`, reading `errno`.
/// Takes an `int` or a `long` (the same type on i386, so no conversion is
/// written at the call sites).
pub(crate) fn check<T: Into<libc::c_long>>(ret: T) -> io::Result<libc::c_long> {
    let ret = ret.into();
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_self() {
        let pid = getpid();
        assert_eq!(pid.0 as u32, std::process::id());
        // A test runs on a thread other than the main one, so its tid
        // differs from the pid but names a task of this process.
        let tid = gettid();
        assert!(std::path::Path::new(&format!("/proc/self/task/{}", tid.0)).exists());
        assert!(clock_ticks_per_second() >= 1);
    }
}

/// `getauxval(AT_SECURE) != 0`: the process runs setuid/setgid or with
/// capabilities gained at exec, so its environment must not be trusted.
pub fn at_secure() -> bool {
    // SAFETY: getauxval reads the process's own auxiliary vector, which the
    // kernel set up before main and never changes; it takes an integer.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(test)]
mod auxv_tests {
    #[test]
    fn tests_do_not_run_setuid() {
        assert!(!super::at_secure());
    }
}

/// Set or clear `FD_CLOEXEC` on `fd` (clearing it lets a spawned program
/// inherit the descriptor, e.g. the report fd `coroner run` hands over).
pub fn set_cloexec(fd: std::os::fd::BorrowedFd<'_>, cloexec: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFD/F_SETFD on a descriptor `BorrowedFd` keeps open for the
    // call; they take and return integers only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if cloexec {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod cloexec_tests {
    use std::os::fd::AsFd;

    #[test]
    fn toggles_the_flag() {
        let f = tempfile::tempfile().unwrap();
        super::set_cloexec(f.as_fd(), false).unwrap();
        // SAFETY: F_GETFD on an open descriptor.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        super::set_cloexec(f.as_fd(), true).unwrap();
        // SAFETY: as above.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}

/// `prctl(PR_SET_DUMPABLE, on)`: whether this process may be dumped or
/// ptrace-attached by its owner. The root handler turns it off, so a crash
/// of its own never writes other users' core data anywhere.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no memory.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    check(r).map(drop)
}

/// An unsigned kernel word (`unsigned long`: 32 bits on i386, 64 on x86-64)
/// as u64. Generic, so one line serves both widths without a same-type
/// conversion on 64-bit targets.
pub(crate) fn widen<T: Into<u64>>(v: T) -> u64 {
    v.into()
}

/// `setrlimit(resource, {cur, max})`. The 64-bit interface, so a 32-bit
/// build takes the same values (`RLIM_INFINITY` is `u64::MAX` in both).
pub fn set_rlimit(resource: libc::__rlimit_resource_t, cur: u64, max: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: `lim` is a valid rlimit64 that outlives the call.
    let r = unsafe { libc::setrlimit64(resource, &lim) };
    check(r).map(drop)
}

/// `getrlimit(resource)` as `(cur, max)` (the 64-bit interface, as
/// [`set_rlimit`]).
pub fn get_rlimit(resource: libc::__rlimit_resource_t) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a writable rlimit64 that outlives the call.
    let r = unsafe { libc::getrlimit64(resource, &mut lim) };
    check(r)?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// The real and effective user ids.
pub fn uids() -> (u32, u32) {
    // SAFETY: getuid/geteuid take no arguments and cannot fail.
    unsafe { (libc::getuid(), libc::geteuid()) }
}

/// `umask(mask)`, returning the previous mask.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask takes an integer, touches no memory and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// `fcntl(fd, F_SETPIPE_SZ, bytes)`: grow a pipe's buffer (the kernel
/// rounds up to a power-of-two number of pages, at most
/// `/proc/sys/fs/pipe-max-size` for unprivileged callers). Returns the new
/// size. Fails with `EBADF` if `fd` is not a pipe.
pub fn set_pipe_size(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ takes an integer and touches no memory of ours.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    check(r).map(|n| n as usize)
}
