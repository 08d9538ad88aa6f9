//! Reading another process's memory: `process_vm_readv` and `pread` (the
//! latter for `/proc/PID/mem`). One syscall per call: splitting at the
//! kernel's per-call limit and falling back between the two is policy and
//! lives in `coroner-proc`.

use coroner_types::Pid;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// One `process_vm_readv` call: copy up to `local.len()` bytes from `remote`
/// in `pid` into `local`. Returns the count copied; a short count means the
/// byte after it is unreadable (or the kernel's per-call limit, about 2 GiB,
/// was reached).
///
/// Errors: `EFAULT` when nothing at `remote` is readable, `ESRCH` when the
/// process is gone, `EPERM` when ptrace access is denied.
pub fn process_vm_readv(pid: Pid, local: &mut [u8], remote: u64) -> io::Result<usize> {
    if local.is_empty() {
        return Ok(0);
    }
    let local_iov = libc::iovec {
        iov_base: local.as_mut_ptr().cast(),
        iov_len: local.len(),
    };
    let remote_iov = libc::iovec {
        iov_base: remote as usize as *mut libc::c_void,
        iov_len: local.len(),
    };
    // SAFETY: `local_iov` describes exactly the live, exclusively borrowed
    // `local` slice, which the kernel writes at most `local.len()` bytes
    // into; `remote_iov` names memory in the other process and is only
    // dereferenced by the kernel, which checks it. Both iovec arrays have
    // the single element the counts say.
    let n = unsafe { libc::process_vm_readv(pid.0, &local_iov, 1, &remote_iov, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `pread` call at `offset`, retried on `EINTR`. Offsets above
/// `i64::MAX` (kernel-half addresses in `/proc/PID/mem`) fail with `EINVAL`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let Ok(off) = libc::off64_t::try_from(offset) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    loop {
        // SAFETY: `buf` is a live, exclusively borrowed slice and the kernel
        // writes at most `buf.len()` bytes into it; `fd` is a borrowed open
        // descriptor that outlives the call.
        let n = unsafe { libc::pread64(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::getpid;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn vm_readv_reads_own_memory() {
        let src: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut dst = vec![0u8; src.len()];
        let n = process_vm_readv(getpid(), &mut dst, src.as_ptr() as u64).unwrap();
        assert_eq!(n, src.len());
        assert_eq!(dst, src);
    }

    #[test]
    fn vm_readv_unmapped_is_efault() {
        let mut dst = [0u8; 16];
        // Page zero is never mapped (vm.mmap_min_addr).
        let e = process_vm_readv(getpid(), &mut dst, 16).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
    }

    #[test]
    fn pread_at_offset() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello, coroner").unwrap();
        let mut buf = [0u8; 7];
        assert_eq!(pread(f.as_fd(), &mut buf, 7).unwrap(), 7);
        assert_eq!(&buf, b"coroner");
        assert_eq!(pread(f.as_fd(), &mut buf, 100).unwrap(), 0);
        let e = pread(f.as_fd(), &mut buf, u64::MAX).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
