//! File-system calls relative to an opened directory, for code that runs as
//! root on behalf of other users (the kernel-tier handler): `openat` with
//! `O_NOFOLLOW`, `mkdirat`, `O_TMPFILE` + `linkat`, `unlinkat`, `fsetxattr`.
//!
//! Every name is one path component: a name containing `/` or NUL, or `.`
//! / `..`, is refused with `EINVAL` before any call, so a caller can never
//! be walked out of the directory it opened. No call follows a symlink in
//! the last component.
//!
//! Must not: decide which directory is trustworthy (the caller checks the
//! owner and mode of what it opened) or build paths from strings.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// `name` as a C string if it is one path component.
fn component(name: &OsStr) -> io::Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An absolute path as a C string (for the first directory of a walk).
fn c_path(path: &OsStr) -> io::Result<CString> {
    CString::new(path.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Take ownership of a descriptor a successful call returned.
fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = crate::check(ret)? as libc::c_int;
    // SAFETY: the call succeeded, so `fd` is a new descriptor nothing else
    // owns; wrapping it gives it exactly one owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the directory at an absolute `path` without following a symlink in
/// its last component (`O_DIRECTORY | O_NOFOLLOW`).
pub fn open_dir_path(path: &OsStr) -> io::Result<OwnedFd> {
    let p = c_path(path)?;
    // SAFETY: `p` is a NUL-terminated string that outlives the call; the
    // flags make open(2) return a new descriptor or fail.
    owned(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Open the directory `name` inside `dir`, not following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let n = component(name)?;
    // SAFETY: `dir` is an open descriptor for the call's duration and `n` a
    // NUL-terminated string that outlives it.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Open the directory a `/proc/PID` magic link points at (`root`, `cwd`)
/// inside the `/proc/PID` directory `dir`: the one place a link is
/// followed, because these are not paths but the process's own directories
/// (a container's root in another mount namespace). The kernel checks
/// ptrace access to the process.
pub fn open_proc_link_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let n = component(name)?;
    if n.as_bytes() != b"root" && n.as_bytes() != b"cwd" {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: as in `open_dir_at`.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// Open the regular file (or /proc file) `name` inside `dir` for reading,
/// not following a symlink, not blocking on a FIFO.
pub fn open_read_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let n = component(name)?;
    // SAFETY: as in `open_dir_at`.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    Ok(File::from(fd))
}

/// `readlinkat(dir, name)`: the target of the symlink `name` (e.g. `exe`,
/// `cwd` under a `/proc/PID` directory), as raw bytes.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    let n = component(name)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable for `buf.len()` bytes; `dir` is open and `n`
    // NUL-terminated for the call's duration.
    let r = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = crate::check(r as libc::c_long)? as usize;
    buf.truncate(len.min(buf.len()));
    Ok(buf)
}

/// `mkdirat(dir, name, mode)` (the umask still applies; `fchmod` after).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let n = component(name)?;
    // SAFETY: `dir` is open and `n` NUL-terminated for the call's duration.
    let r = unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), mode as libc::mode_t) };
    crate::check(r).map(drop)
}

/// An unnamed regular file in `dir` (`O_TMPFILE`), readable and writable,
/// with `mode`: it has no name until [`link_at`] gives it one, so nobody can
/// open, replace or see it half-written.
pub fn tmpfile_in(dir: BorrowedFd<'_>, mode: u32) -> io::Result<File> {
    // SAFETY: "." is a static NUL-terminated string; `dir` is open.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(File::from(fd))
}

/// Give the `O_TMPFILE` file `file` the name `name` in `dir`. Fails with
/// `EEXIST` rather than replace anything.
pub fn link_at(file: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let n = component(name)?;
    // SAFETY: both descriptors are open, "" and `n` are NUL-terminated and
    // outlive the call. AT_EMPTY_PATH links the file `file` itself (needs
    // CAP_DAC_READ_SEARCH, which root has).
    let r = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    match crate::check(r) {
        Ok(_) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EPERM) =>
        {
            // Without the capability: through the /proc magic link.
            let proc = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: as above; AT_SYMLINK_FOLLOW resolves the magic link to
            // the open file, not to a path anyone could swap.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    proc.as_ptr(),
                    dir.as_raw_fd(),
                    n.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            crate::check(r).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Create `name` in `dir` for writing, failing if anything (a file, a
/// symlink, a FIFO) already has that name (`O_CREAT | O_EXCL | O_NOFOLLOW`).
pub fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    let n = component(name)?;
    // SAFETY: `dir` is open and `n` NUL-terminated for the call's duration.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(File::from(fd))
}

/// `unlinkat(dir, name, 0)`: remove a file or a symlink (never what a
/// symlink points to).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let n = component(name)?;
    // SAFETY: `dir` is open and `n` NUL-terminated for the call's duration.
    let r = unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), 0) };
    crate::check(r).map(drop)
}

/// `fsetxattr(fd, name, value, 0)`.
pub fn set_xattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
    let n = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `value` is readable for its length; `n` is NUL-terminated;
    // `fd` is open for the call's duration.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    crate::check(r).map(drop)
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: fchown takes a descriptor that is open and two integers.
    let r = unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) };
    crate::check(r).map(drop)
}

/// `fchmod(fd, mode)` (works on directory descriptors too, unlike
/// `File::set_permissions` which needs a file opened for it).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod takes a descriptor that is open and an integer.
    let r = unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) };
    crate::check(r).map(drop)
}

/// `fstatvfs(fd)`: (bytes available to unprivileged users, total bytes).
/// The 64-bit interface: a 32-bit build's `statvfs` has 32-bit block
/// counts and fails with `EOVERFLOW` on a large file system.
pub fn free_space(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: statvfs64 is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable and `fd` open for the call's duration.
    let r = unsafe { libc::fstatvfs64(fd.as_raw_fd(), &mut st) };
    crate::check(r)?;
    let frsize = crate::widen(st.f_frsize);
    Ok((
        st.f_bavail.saturating_mul(frsize),
        st.f_blocks.saturating_mul(frsize),
    ))
}

/// Take ownership of descriptor `n` inherited from the parent (the
/// kernel's `%F` pidfd at fd 3), after checking that it is open and is a
/// pidfd (its fdinfo has a `Pid:` line). It is made close-on-exec.
pub fn take_inherited_pidfd(n: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor table; it takes integers.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let info = std::fs::read(format!("/proc/self/fdinfo/{n}"))?;
    let link = std::fs::read_link(format!("/proc/self/fd/{n}"))?;
    let is_pidfd = link
        .as_os_str()
        .as_bytes()
        .starts_with(b"anon_inode:[pidfd]")
        || link.as_os_str().as_bytes() == b"pidfd:[pidfd]"
        || link.as_os_str().as_bytes().starts_with(b"pidfd:");
    if !is_pidfd || !info.split(|&c| c == b'\n').any(|l| l.starts_with(b"Pid:")) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `n` is open (checked above) and, as an inherited descriptor
    // nothing in this process has wrapped, gets exactly one owner here.
    let fd = unsafe { OwnedFd::from_raw_fd(n) };
    crate::set_cloexec(fd.as_fd(), true)?;
    Ok(fd)
}

/// `dup2(fd, target)` without close-on-exec on `target`, so a child started
/// next inherits `fd` as `target` (the chained handler's fd 3). A no-op
/// beyond clearing close-on-exec when `fd` already is `target`.
pub fn dup_to(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    if fd.as_raw_fd() == target {
        return crate::set_cloexec(fd, false);
    }
    // SAFETY: dup2 takes two integers; `fd` is open for the call. Whatever
    // `target` named before is closed by the kernel: the caller owns that
    // slot (fd 3 is reserved for the pidfd in the handler).
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    crate::check(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn proc_root_link_opens_the_process_root_and_nothing_else_is_followed() {
        let me = format!("/proc/{}", std::process::id());
        let proc_self = open_dir_path(OsStr::new(&me)).unwrap();
        let root = open_proc_link_dir(proc_self.as_fd(), OsStr::new("root")).unwrap();
        let a = std::fs::metadata(format!("/proc/self/fd/{}", root.as_raw_fd())).unwrap();
        let b = std::fs::metadata("/").unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
        for other in ["exe", "fd", "../self", "ns/mnt"] {
            assert!(
                open_proc_link_dir(proc_self.as_fd(), OsStr::new(other)).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn tmpfile_link_never_replaces_and_names_are_components() {
        let d = tempfile::tempdir().unwrap();
        let dir = open_dir_path(d.path().as_os_str()).unwrap();
        let mut f = tmpfile_in(dir.as_fd(), 0o600).unwrap();
        f.write_all(b"dump").unwrap();
        link_at(f.as_fd(), dir.as_fd(), OsStr::new("a.dmp")).unwrap();
        assert_eq!(std::fs::read(d.path().join("a.dmp")).unwrap(), b"dump");
        let g = tmpfile_in(dir.as_fd(), 0o600).unwrap();
        let e = link_at(g.as_fd(), dir.as_fd(), OsStr::new("a.dmp")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        for bad in ["../x", "a/b", "..", ".", ""] {
            let e = link_at(g.as_fd(), dir.as_fd(), OsStr::new(bad)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(target.join("secret"), d.path().join("file")).unwrap();
        let dir = open_dir_path(d.path().as_os_str()).unwrap();
        // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP).
        let refused = |e: io::Error| matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP));
        assert!(refused(
            open_dir_at(dir.as_fd(), OsStr::new("link")).unwrap_err()
        ));
        assert!(refused(
            open_dir_path(d.path().join("link").as_os_str()).unwrap_err()
        ));
        let e = create_new_at(dir.as_fd(), OsStr::new("file"), 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        let e = open_read_at(dir.as_fd(), OsStr::new("file")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        unlink_at(dir.as_fd(), OsStr::new("file")).unwrap();
        assert!(target.join("secret").exists());
        mkdir_at(dir.as_fd(), OsStr::new("sub"), 0o700).unwrap();
        let sub = open_dir_at(dir.as_fd(), OsStr::new("sub")).unwrap();
        let mut f = create_new_at(sub.as_fd(), OsStr::new("n"), 0o600).unwrap();
        f.write_all(b"x").unwrap();
        let mut s = String::new();
        open_read_at(sub.as_fd(), OsStr::new("n"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "x");
        let (avail, total) = free_space(sub.as_fd()).unwrap();
        assert!(total >= avail && total > 0);
        let proc = format!("/proc/{}", std::process::id());
        let proc = open_dir_path(OsStr::new(&proc)).unwrap();
        let exe = read_link_at(proc.as_fd(), OsStr::new("exe")).unwrap();
        assert!(exe.starts_with(b"/"));
    }
}
