//! Waiting for several things in one thread: `SIGCHLD` as a descriptor
//! (`signalfd`) and `ppoll` over descriptors, so that a tracer can sleep
//! until one of its tracees stops *or* a pipe it reads has data, without a
//! second thread to hand the news over.
//!
//! A `signalfd` only sees a signal that is blocked: [`ChildSignals::new`]
//! blocks `SIGCHLD` in the calling thread (threads it creates afterwards
//! inherit that; `std::process::Command` empties the mask of the programs
//! it starts). A thread of the process that does not block `SIGCHLD` may
//! take the signal first (it is then discarded, its default action being
//! to ignore it), so a waiter should also wake on a timeout now and then.

use coroner_types::Tid;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `SIGCHLD` of the calling thread's process as a readable descriptor.
/// Dropping it (on the thread that made it) puts back the signal mask and
/// the disposition it found.
#[derive(Debug)]
pub struct ChildSignals {
    fd: OwnedFd,
    /// The thread whose mask was changed.
    owner: Tid,
    /// `SIGCHLD` was blocked already: leave it blocked.
    was_blocked: bool,
    /// `SIGCHLD` was ignored (`SIG_IGN`), which stops the kernel from
    /// sending it for a child's stop at all: it is `SIG_DFL` (also
    /// discarded, but sent) while this lives.
    was_ignored: bool,
}

/// The set holding only `SIGCHLD`.
fn sigchld_set() -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given, a live,
    // writable sigset_t.
    crate::check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    // SAFETY: initialised by sigemptyset just above.
    let mut set = unsafe { set.assume_init() };
    // SAFETY: `set` is an initialised sigset_t; SIGCHLD is a valid signal.
    crate::check(unsafe { libc::sigaddset(&mut set, libc::SIGCHLD) })?;
    Ok(set)
}

/// `pthread_sigmask(how, {SIGCHLD})`; returns whether SIGCHLD was blocked.
fn mask_sigchld(how: libc::c_int) -> io::Result<bool> {
    let set = sigchld_set()?;
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is an initialised sigset_t and `old` a writable one the
    // call fills in; both outlive the call. It returns an errno, not -1.
    let r = unsafe { libc::pthread_sigmask(how, &set, old.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: pthread_sigmask succeeded, so it stored the old mask.
    let old = unsafe { old.assume_init() };
    // SAFETY: `old` is an initialised sigset_t.
    Ok(unsafe { libc::sigismember(&old, libc::SIGCHLD) } == 1)
}

/// Whether `SIGCHLD` is `SIG_IGN` for this process.
fn sigchld_ignored() -> io::Result<bool> {
    let mut act = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `act`, a
    // live, writable sigaction.
    crate::check(unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), act.as_mut_ptr()) })?;
    // SAFETY: sigaction succeeded and filled `act` (it was zeroed anyway).
    let act = unsafe { act.assume_init() };
    Ok(act.sa_sigaction == libc::SIG_IGN)
}

/// Set `SIGCHLD`'s disposition to `SIG_DFL` or `SIG_IGN`.
fn set_sigchld(disposition: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: SIG_DFL and SIG_IGN install no handler code; SIGCHLD is valid.
    if unsafe { libc::signal(libc::SIGCHLD, disposition) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl ChildSignals {
    /// Block `SIGCHLD` in the calling thread (see the module doc) and open
    /// a non-blocking, close-on-exec `signalfd` for it.
    pub fn new() -> io::Result<ChildSignals> {
        let was_ignored = sigchld_ignored()?;
        if was_ignored {
            set_sigchld(libc::SIG_DFL)?;
        }
        let was_blocked = match mask_sigchld(libc::SIG_BLOCK) {
            Ok(b) => b,
            Err(e) => {
                if was_ignored {
                    let _ = set_sigchld(libc::SIG_IGN);
                }
                return Err(e);
            }
        };
        let undo = |e: io::Error| {
            if !was_blocked {
                let _ = mask_sigchld(libc::SIG_UNBLOCK);
            }
            if was_ignored {
                let _ = set_sigchld(libc::SIG_IGN);
            }
            e
        };
        let set = sigchld_set().map_err(undo)?;
        // SAFETY: `set` is an initialised sigset_t that outlives the call;
        // -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(undo(io::Error::last_os_error()));
        }
        Ok(ChildSignals {
            // SAFETY: signalfd returned a new descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            owner: crate::gettid(),
            was_blocked,
            was_ignored,
        })
    }

    /// Take every pending `SIGCHLD`, so that the descriptor polls readable
    /// again only for a child state change that happens after this call.
    pub fn clear(&self) -> io::Result<()> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is a live, writable buffer of exactly `size`
            // bytes; the descriptor is ours and open.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            if r == 0 {
                return Ok(());
            }
        }
    }
}

impl AsFd for ChildSignals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ChildSignals {
    fn drop(&mut self) {
        // The mask is per thread: only the thread that changed it can put
        // it back.
        if !self.was_blocked && crate::gettid() == self.owner {
            let _ = mask_sigchld(libc::SIG_UNBLOCK);
        }
        if self.was_ignored {
            let _ = set_sigchld(libc::SIG_IGN);
        }
    }
}

/// `ppoll` for reading: which of `fds` are readable, at end of file or in
/// error, waiting at most `timeout` (`None`: until one is). Interrupted by
/// a signal, it returns with none ready.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfds the kernel
    // updates in place; `ts_ptr` is null or points at `ts`, which outlives
    // the call; a null signal mask keeps the thread's own.
    let r = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// Set or clear `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a descriptor `BorrowedFd` keeps open for the call;
    // it takes and returns integers only.
    let flags = crate::check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = flags as libc::c_int;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above, F_SETFL with an integer.
        crate::check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A SIGCHLD makes the descriptor readable; `clear` empties it; the
    /// mask is put back at the end. The signal is sent to this thread
    /// alone: a process-wide one could be taken by another test's thread,
    /// which does not block it (see the module doc). Run on a thread of its
    /// own, since the mask change is per thread.
    #[test]
    fn sigchld_wakes_the_poll_and_clear_empties_it() {
        std::thread::spawn(|| {
            let sigs = ChildSignals::new().unwrap();
            sigs.clear().unwrap();
            let ready = wait_readable(&[sigs.as_fd()], Some(Duration::ZERO)).unwrap();
            assert_eq!(ready, vec![false], "nothing pending");
            crate::tgkill(crate::getpid(), crate::gettid(), libc::SIGCHLD).unwrap();
            let ready = wait_readable(&[sigs.as_fd()], Some(Duration::from_secs(10))).unwrap();
            assert_eq!(ready, vec![true], "SIGCHLD made the signalfd readable");
            sigs.clear().unwrap();
            let ready = wait_readable(&[sigs.as_fd()], Some(Duration::ZERO)).unwrap();
            assert_eq!(ready, vec![false], "cleared");
            drop(sigs);
            // The mask is back as it was: SIGCHLD not blocked.
            assert!(!mask_sigchld(libc::SIG_BLOCK).unwrap());
            mask_sigchld(libc::SIG_UNBLOCK).unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pipes_poll_readable_with_data_and_at_end_of_file() {
        let (mut r, mut w) = std::io::pipe().unwrap();
        set_nonblocking(r.as_fd(), true).unwrap();
        let mut buf = [0u8; 8];
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let t = Instant::now();
        let ready = wait_readable(&[r.as_fd()], Some(Duration::from_millis(20))).unwrap();
        assert_eq!(ready, vec![false]);
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "waited the timeout"
        );
        w.write_all(b"hi").unwrap();
        assert_eq!(wait_readable(&[r.as_fd()], None).unwrap(), vec![true]);
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        drop(w);
        assert_eq!(wait_readable(&[r.as_fd()], None).unwrap(), vec![true]);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }
}
