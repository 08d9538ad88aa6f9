//! The coredump socket's syscalls (Linux 6.16+): the connecting process's
//! pidfd (`SO_PEERPIDFD`), what pidfs knows about it (`PIDFD_GET_INFO`,
//! including whether it is dumping core), and taking over a listening
//! socket handed down by systemd (socket activation).
//!
//! Must not: decide whether a connection is trusted (the server checks the
//! coredump mask) or speak the coredump protocol (the server does).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SO_PEERPIDFD` (Linux 6.5+; not in every libc crate version).
const SO_PEERPIDFD: libc::c_int = 77;

/// `PIDFD_INFO_*` request bits of `struct pidfd_info.mask`.
pub const PIDFD_INFO_PID: u64 = 1 << 0;
pub const PIDFD_INFO_CREDS: u64 = 1 << 1;
pub const PIDFD_INFO_CGROUPID: u64 = 1 << 2;
pub const PIDFD_INFO_EXIT: u64 = 1 << 3;
pub const PIDFD_INFO_COREDUMP: u64 = 1 << 4;

/// `coredump_mask` bits.
pub const PIDFD_COREDUMPED: u32 = 1 << 0;
pub const PIDFD_COREDUMP_SKIP: u32 = 1 << 1;
pub const PIDFD_COREDUMP_USER: u32 = 1 << 2;
pub const PIDFD_COREDUMP_ROOT: u32 = 1 << 3;

/// `struct pidfd_info` up to `coredump_mask` (72 bytes, the size with the
/// coredump fields; the ioctl is extensible by size, so an older kernel
/// fills what it knows and leaves the mask bits of the rest clear).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidfdInfo {
    /// Which fields the kernel filled (`PIDFD_INFO_*`).
    pub mask: u64,
    pub cgroupid: u64,
    /// The process id, in the caller's pid namespace.
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub ruid: u32,
    pub rgid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub exit_code: i32,
    /// `PIDFD_COREDUMPED | PIDFD_COREDUMP_{SKIP,USER,ROOT}`, valid when
    /// `mask` has `PIDFD_INFO_COREDUMP`.
    pub coredump_mask: u32,
    pub spare1: u32,
}

impl PidfdInfo {
    /// The kernel has marked this process as dumping core (only the kernel
    /// can: a process that merely connects to the socket is not marked).
    pub fn is_dumping_core(&self) -> bool {
        self.mask & PIDFD_INFO_COREDUMP != 0 && self.coredump_mask & PIDFD_COREDUMPED != 0
    }

    /// The dump mode as `%d` gives it: 1 dumped as the user, 2 as root
    /// (`suid_dumpable` = 2 for a setuid or otherwise non-dumpable process),
    /// 0 skipped. For a live process, the mode it would dump with.
    pub fn dump_mode(&self) -> u8 {
        if self.coredump_mask & PIDFD_COREDUMP_ROOT != 0 {
            2
        } else if self.coredump_mask & PIDFD_COREDUMP_USER != 0 {
            1
        } else {
            0
        }
    }
}

/// `_IOWR(0xFF, 11, struct pidfd_info)` with our struct's size.
const fn pidfd_get_info() -> libc::c_ulong {
    let size = std::mem::size_of::<PidfdInfo>() as libc::c_ulong;
    (3 << 30) | (size << 16) | (0xFF << 8) | 11
}

/// The pidfd of the process at the other end of a connected `AF_UNIX`
/// socket, as the kernel recorded it at `connect` (for the coredump socket:
/// the crashing process's thread-group leader). Close-on-exec.
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are live locals the kernel writes at most
    // `len` (= sizeof int) bytes into; `sock` is open for the call.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    crate::check(r)?;
    if fd < 0 || len as usize != std::mem::size_of::<libc::c_int>() {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the call succeeded and installed `fd` as a new descriptor of
    // this process (created O_CLOEXEC by the kernel); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(pidfd, PIDFD_GET_INFO)` asking for `request` (`PIDFD_INFO_*`).
/// `ENOTTY`/`EINVAL` on kernels before 6.13; `ESRCH` once the process is
/// reaped (unless `PIDFD_INFO_EXIT` data is kept).
pub fn pidfd_info(pidfd: BorrowedFd<'_>, request: u64) -> io::Result<PidfdInfo> {
    let mut info = PidfdInfo {
        mask: request,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a live, writable `repr(C)` struct whose size is the
    // one encoded in the request number, so the kernel writes within it.
    let r = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            pidfd_get_info() as _,
            &mut info as *mut PidfdInfo,
        )
    };
    crate::check(r)?;
    Ok(info)
}

/// `recv(sock, buf, MSG_PEEK)`: look at what is queued without taking it
/// (blocks like a read, honouring the socket's receive timeout).
pub fn peek(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice; the kernel writes at most
    // `buf.len()` bytes into it. `sock` is open for the call.
    let r = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    };
    crate::check(r as libc::c_long).map(|n| n as usize)
}

/// Take ownership of descriptor `n` inherited from the parent (systemd's
/// socket activation: `LISTEN_FDS` descriptors from 3) after checking that
/// it is an open socket. It is made close-on-exec.
pub fn take_inherited_socket(n: i32) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the live local `st`; it takes an integer fd.
    let r = unsafe { libc::fstat(n, &mut st) };
    crate::check(r)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    // SAFETY: `n` is open (fstat succeeded) and, as an inherited descriptor
    // nothing in this process has wrapped, gets exactly one owner here.
    let fd = unsafe { OwnedFd::from_raw_fd(n) };
    crate::set_cloexec(std::os::fd::AsFd::as_fd(&fd), true)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn pidfd_info_has_the_size_the_coredump_fields_need() {
        assert_eq!(std::mem::size_of::<PidfdInfo>(), 72);
        assert_eq!(pidfd_get_info(), 0xC048_FF0B);
    }

    #[test]
    fn peer_pidfd_names_the_connecting_process_and_it_is_not_dumping() {
        let (a, _b) = UnixStream::pair().unwrap();
        let pidfd = match peer_pidfd(a.as_fd()) {
            Ok(p) => p,
            // Kernels before 6.5 lack SO_PEERPIDFD.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => return,
            Err(e) => panic!("{e}"),
        };
        let info = match pidfd_info(pidfd.as_fd(), PIDFD_INFO_PID | PIDFD_INFO_COREDUMP) {
            Ok(i) => i,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => return,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(info.tgid, std::process::id());
        assert_eq!(info.pid, std::process::id());
        assert!(!info.is_dumping_core(), "{info:?}");
        // For a live process pidfs reports its current dump mode: this
        // test process is plainly dumpable.
        assert_eq!(info.dump_mode(), 1);
        assert_eq!(info.ruid, crate::uids().0);
    }

    #[test]
    fn peek_leaves_the_bytes_for_the_next_read() {
        use std::io::{Read, Write};
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"\x7fELF").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(peek(b.as_fd(), &mut one).unwrap(), 1);
        assert_eq!(one[0], 0x7f);
        let mut all = [0u8; 4];
        b.read_exact(&mut all).unwrap();
        assert_eq!(&all, b"\x7fELF");
    }

    #[test]
    fn only_a_socket_is_taken_as_inherited_listener() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let n = f.as_raw_fd();
        assert_eq!(
            take_inherited_socket(n).unwrap_err().raw_os_error(),
            Some(libc::ENOTSOCK)
        );
        assert!(take_inherited_socket(100_000).is_err());
    }
}
