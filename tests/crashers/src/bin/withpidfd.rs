//! `withpidfd PID PROG ARGS...`: opens a pidfd for PID (`pidfd_open`),
//! puts it on descriptor 3 without close-on-exec, and execs PROG with ARGS.
//! So a test can start `coroner handler` the way the kernel does (Linux
//! 6.16+ passes the crashing process's pidfd as fd 3, `%F` = 3), or with
//! the pidfd of another process than `%P` names (the PID-reuse attack).
//!
//! Exit 2: bad arguments; 1: the pidfd could not be opened or placed, or
//! PROG could not be executed (the reason on stderr).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The descriptor number the kernel gives the pidfd in a pipe handler.
const TARGET_FD: i32 = 3;

fn fail(what: &str) -> ! {
    eprintln!("withpidfd: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1);
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let pid = args
        .first()
        .and_then(|p| p.to_str())
        .and_then(|p| p.parse::<libc::pid_t>().ok())
        .filter(|p| *p > 0);
    let (Some(pid), Some(prog)) = (pid, args.get(1)) else {
        eprintln!("usage: withpidfd PID PROG [ARGS...]");
        std::process::exit(2);
    };
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new
    // descriptor or -1; no pointers are passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        fail(&format!("pidfd_open({pid})"));
    }
    let fd = fd as i32;
    if fd == TARGET_FD {
        // pidfd_open always sets close-on-exec; clear it on the descriptor
        // we already own.
        // SAFETY: `fd` is the pidfd just opened by this process; F_SETFD
        // with 0 only clears its descriptor flags.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            fail("fcntl(F_SETFD)");
        }
    } else {
        // dup2 gives the copy no close-on-exec flag. Descriptor 3 is not in
        // use by this program (std opens nothing before main beyond 0-2), so
        // replacing it closes nothing we rely on.
        // SAFETY: `fd` is the pidfd just opened by this process and
        // TARGET_FD is a plain descriptor number.
        if unsafe { libc::dup2(fd, TARGET_FD) } != TARGET_FD {
            fail("dup2");
        }
        // SAFETY: `fd` is ours and no longer needed (its copy is on 3).
        unsafe { libc::close(fd) };
    }
    let err = Command::new(prog).args(&args[2..]).exec();
    eprintln!(
        "withpidfd: cannot execute {}: {err}",
        prog.to_string_lossy()
    );
    std::process::exit(1);
}
