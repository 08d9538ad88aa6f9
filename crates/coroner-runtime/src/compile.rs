//! Start-up, the rare path of the preloaded library: the compiled plan is
//! missing or stale (the first start after a configuration file was edited
//! by hand), or a file needs `coroner_config::load`'s closer look.
//!
//! `libcoroner.so` has no TOML parser: its code and relocations cost every
//! process start 7 to 13 µs (docs/benchmarks.md). Instead it runs the plan
//! compiler, `coroner config compile-plan --runtime`, and reads the plan
//! from its standard output; the compiler also stores the plan for the next
//! process when it may. The process therefore gets the configuration as
//! edited at its first start, as before, and the compiler's message on a
//! configuration that does not load.
//!
//! Which `coroner`: the one of this library's installation first
//! ([`Program::Installed`]: it writes the plan format this build reads),
//! then `coroner` on `PATH`, then beside the executable (a Rust program
//! that links the runtime); neither of these two in an `AT_SECURE`
//! process, whose `PATH` and directory may be the user's. The child
//! searches with `execve` on each candidate, as the crash path does.
//!
//! The compiler gets the process environment and [`MARKER`]; its own copy
//! of the runtime, if any (`/etc/ld.so.preload`), sees the marker and does
//! not start a compiler in turn: a stale plan is no configuration there. An
//! `AT_SECURE` process gives it only the marker and `--system-only`, and
//! it stores nothing.
//!
//! No heap: the arguments are literals, the environment and the plan are in
//! anonymous mappings, and the child is a raw `clone` without `SIGCHLD`
//! (the program's `wait` never sees it), as in the crash path.

use crate::crash::{environ, exec_program, Program};
use core::ffi::CStr;
use core::ptr;
use coroner_config::plan::MAX_PLAN;
use libc::{c_char, c_int};

/// The environment variable that marks the compiler (its value is not
/// read).
pub(crate) const MARKER_NAME: &[u8] = b"CORONER_COMPILING_PLAN";
/// [`MARKER_NAME`] as the compiler's environment carries it.
pub(crate) const MARKER: &CStr = c"CORONER_COMPILING_PLAN=1";

/// The compiler's exit status when the configuration does not load; its
/// standard output is then the message.
const EXIT_CONFIG: c_int = coroner_config::plan::COMPILE_CONFIG_ERROR as c_int;

/// Why no plan came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The configuration does not load: the compiler's message.
    Config(&'static [u8]),
    /// No `coroner` could be executed.
    NotFound,
    /// No pipe, mapping or child.
    Spawn,
    /// It ended with this wait status, or wrote more than a plan can be.
    Failed(c_int),
    /// It wrote something that is not a plan this build reads (another
    /// version of `coroner`).
    Unreadable,
}

/// The end of the line `InstallError::Compile` prints. Allocates: only
/// when something is wrong.
pub(crate) fn describe(f: Failure) -> String {
    const RUN: &str = "`coroner config compile-plan`";
    match f {
        Failure::Config(message) => String::from_utf8_lossy(message).into_owned(),
        Failure::NotFound => format!(
            "the compiled plan of the configuration is missing or stale, and no coroner was found to run {RUN} (none in this library's installation, on PATH, or beside the executable)"
        ),
        Failure::Spawn => format!(
            "the compiled plan of the configuration is missing or stale, and {RUN} could not be started (no pipe, memory or process)"
        ),
        Failure::Failed(status) if libc::WIFSIGNALED(status) => {
            format!("{RUN} was killed by signal {}", libc::WTERMSIG(status))
        }
        Failure::Failed(status) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => {
            format!("{RUN} wrote more than a plan can hold")
        }
        Failure::Failed(status) if libc::WIFEXITED(status) => {
            format!("{RUN} failed (exit status {})", libc::WEXITSTATUS(status))
        }
        Failure::Failed(_) => format!("{RUN} could not be waited for"),
        Failure::Unreadable => format!(
            "{RUN} wrote a plan this library cannot read (is that coroner of another version?)"
        ),
    }
}

fn errno() -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn close(fd: c_int) {
    // SAFETY: close(2) of a descriptor this module opened.
    unsafe { libc::close(fd) };
}

/// An anonymous private mapping of `len` bytes, never unmapped (what it
/// holds lives as long as the process), or null.
fn map(len: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Where the compiler is looked for (see the module docs), and how many:
/// the installation first (it writes the plan format this build reads).
fn candidates(secure: bool, path: Option<&'static [u8]>) -> ([Program; 3], usize) {
    crate::plan::coroner_programs(path, secure, false)
}

/// Runs the compiler for this process's configuration and returns the plan
/// it wrote (not yet checked), kept for the life of the process. `store`:
/// let it store the plan (the plan was missing or stale, rather than a
/// file that needs `load`'s judgement). `path`: `PATH`, copied to live as
/// long as the process.
pub(crate) fn run(
    secure: bool,
    store: bool,
    path: Option<&'static [u8]>,
) -> Result<&'static [u8], Failure> {
    let (programs, n) = candidates(secure, path);
    let mut args: [*const c_char; 7] = [ptr::null(); 7];
    let words = [c"coroner", c"config", c"compile-plan", c"--runtime"]
        .into_iter()
        .chain(secure.then_some(c"--system-only"))
        .chain((!store || secure).then_some(c"--no-store"));
    for (slot, word) in args.iter_mut().zip(words) {
        *slot = word.as_ptr();
    }
    // SAFETY: `args` is a NULL-terminated array of literals.
    unsafe { run_with(&args, &programs[..n], secure) }
}

/// [`run`] with the argument vector and candidates given (tests run a
/// stand-in compiler).
///
/// # Safety
/// `argv` is a NULL-terminated array of NUL-terminated strings that live
/// until this returns.
pub(crate) unsafe fn run_with(
    argv: &[*const c_char],
    programs: &[Program],
    secure: bool,
) -> Result<&'static [u8], Failure> {
    // Room for the plan and one byte more (a longer answer is refused).
    let cap = MAX_PLAN + 1;
    let buf = map(cap);
    if buf.is_null() {
        return Err(Failure::Spawn);
    }
    let mut pipe = [-1 as c_int; 2];
    // SAFETY: `pipe` has room for the two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Failure::Spawn);
    }
    // SAFETY: clone without CLONE_VM or a new stack is fork(2) without the
    // atfork handlers (which could take locks), with exit signal 0 (no
    // SIGCHLD for the program). The child makes only raw syscalls on its
    // copy of this stack until execve.
    let pid = unsafe { libc::syscall(libc::SYS_clone, 0usize, 0usize, 0usize, 0usize, 0usize) };
    if pid == 0 {
        // SAFETY: we are the fresh child; the caller's argv is valid.
        unsafe { child(pipe, argv.as_ptr(), programs, secure) };
    }
    close(pipe[1]);
    if pid < 0 {
        close(pipe[0]);
        return Err(Failure::Spawn);
    }
    let mut got = 0usize;
    loop {
        // SAFETY: read(2) into the mapping's unused part, `cap - got` bytes.
        let r = unsafe { libc::read(pipe[0], buf.add(got).cast(), cap - got) };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r <= 0 {
            break;
        }
        got += r as usize;
        if got == cap {
            break;
        }
    }
    close(pipe[0]);
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a live int; __WALL reaps our exit-signal-0
        // child.
        let r = unsafe { libc::waitpid(pid as c_int, &mut status, libc::__WALL) };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r < 0 {
            return Err(Failure::Failed(-1));
        }
        break;
    }
    // SAFETY: the first `got` bytes of the mapping were written by read(2);
    // the mapping is never unmapped or written again.
    let out: &'static [u8] = unsafe { core::slice::from_raw_parts(buf, got) };
    let exited = libc::WIFEXITED(status);
    let code = libc::WEXITSTATUS(status);
    match (exited, code) {
        (true, 0) if got < cap => Ok(out),
        (true, EXIT_CONFIG) => Err(Failure::Config(out.trim_ascii_end())),
        (true, 127) => Err(Failure::NotFound),
        _ => Err(Failure::Failed(status)),
    }
}

/// In the cloned child: standard output to the pipe, the signal mask
/// cleared, the environment with [`MARKER`], then each candidate in turn.
/// Never returns; 127 when none could be executed.
unsafe fn child(
    pipe: [c_int; 2],
    argv: *const *const c_char,
    programs: &[Program],
    secure: bool,
) -> ! {
    // dup2 onto 1 clears close-on-exec there; if the pipe already is fd 1
    // (the program started with its standard output closed), clear it.
    if pipe[1] == 1 {
        // SAFETY: F_SETFD on our own descriptor.
        unsafe { libc::fcntl(1, libc::F_SETFD, 0) };
    // SAFETY: dup2 between descriptors of this child.
    } else if unsafe { libc::dup2(pipe[1], 1) } < 0 {
        // SAFETY: _exit(2) ends this child at once.
        unsafe { libc::_exit(126) };
    }
    crate::crash::sigprocmask(libc::SIG_SETMASK, 0);
    let marker_only: [*const c_char; 2] = [MARKER.as_ptr(), ptr::null()];
    let mut envp: *const *const c_char = marker_only.as_ptr();
    if !secure {
        // SAFETY: environ is libc's NULL-terminated environment (or null),
        // which nothing changes in this single-threaded child.
        let env = unsafe { environ };
        let mut n = 0usize;
        // SAFETY: as above; stops at the NULL.
        while !env.is_null() && unsafe { !(*env.add(n)).is_null() } {
            n += 1;
        }
        let list = map((n + 2) * core::mem::size_of::<*const c_char>()).cast::<*const c_char>();
        if !list.is_null() {
            for i in 0..n {
                // SAFETY: `i < n` entries of environ; `list` has n + 2 slots.
                unsafe { *list.add(i) = *env.add(i) };
            }
            // SAFETY: slots n and n + 1 of the n + 2.
            unsafe {
                *list.add(n) = MARKER.as_ptr();
                *list.add(n + 1) = ptr::null();
            }
            envp = list;
        }
    }
    for p in programs {
        // SAFETY: argv and envp are NULL-terminated arrays of
        // NUL-terminated strings.
        unsafe { exec_program(p, argv, envp) };
    }
    // SAFETY: _exit(2) ends this child at once.
    unsafe { libc::_exit(127) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn a_secure_process_looks_only_in_the_installation() {
        let (p, n) = candidates(false, Some(b"/bin"));
        assert_eq!(n, 3, "{p:?}");
        assert!(matches!(p[0], Program::Installed { .. }), "{p:?}");
        assert_eq!(p[1], Program::Search { path: b"/bin" });
        assert!(matches!(p[2], Program::Beside { .. }), "{p:?}");
        let (p, n) = candidates(true, Some(b"/bin"));
        assert_eq!(n, 1, "{p:?}");
        assert!(matches!(p[0], Program::Installed { .. }), "{p:?}");
    }

    /// Runs `sh -c SCRIPT` as the compiler.
    fn sh(script: &str) -> Result<&'static [u8], Failure> {
        let words = [
            CString::new("sh").unwrap(),
            CString::new("-c").unwrap(),
            CString::new(script).unwrap(),
        ];
        let argv = [
            words[0].as_ptr(),
            words[1].as_ptr(),
            words[2].as_ptr(),
            ptr::null(),
        ];
        let programs = [Program::Search {
            path: b"/nonexistent:relative:/bin:/usr/bin",
        }];
        // SAFETY: argv is NULL-terminated, its strings live until the end.
        unsafe { run_with(&argv, &programs, false) }
    }

    #[test]
    fn the_plan_is_what_the_compiler_wrote() {
        assert_eq!(sh("printf 'CRNR\\0PLAN'"), Ok(&b"CRNR\0PLAN"[..]));
        assert_eq!(sh("true"), Ok(&b""[..]));
        // The marker is in its environment.
        assert_eq!(sh("printf %s \"$CORONER_COMPILING_PLAN\""), Ok(&b"1"[..]));
    }

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(
            sh("echo 'x.toml:2:3: bad'; exit 2"),
            Err(Failure::Config(b"x.toml:2:3: bad"))
        );
        assert!(matches!(sh("exit 3"), Err(Failure::Failed(s)) if libc::WEXITSTATUS(s) == 3));
        assert!(matches!(sh("kill -9 $$"), Err(Failure::Failed(s)) if libc::WIFSIGNALED(s)));
        let argv = [c"no-such-coroner".as_ptr(), ptr::null()];
        // SAFETY: a NULL-terminated array of literals.
        let r = unsafe { run_with(&argv, &[Program::Search { path: b"/bin" }], false) };
        assert_eq!(r, Err(Failure::NotFound));
    }

    #[test]
    fn a_secure_process_passes_only_the_marker() {
        let argv = [c"sh".as_ptr(), c"-c".as_ptr(), c"env".as_ptr(), ptr::null()];
        // SAFETY: a NULL-terminated array of literals.
        let r = unsafe { run_with(&argv, &[Program::AsIs], true) };
        // `sh` as it stands is not a path: nothing runs without PATH.
        assert_eq!(r, Err(Failure::NotFound));
        let argv = [
            c"/bin/sh".as_ptr(),
            c"-c".as_ptr(),
            c"env".as_ptr(),
            ptr::null(),
        ];
        // SAFETY: as above.
        let r = unsafe { run_with(&argv, &[Program::AsIs], true) }.unwrap();
        let text = String::from_utf8_lossy(r);
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .filter(|k| !matches!(*k, "PWD" | "SHLVL" | "_" | "OLDPWD"))
            .collect();
        assert_eq!(names, ["CORONER_COMPILING_PLAN"], "{text}");
    }

    #[test]
    fn the_installation_of_the_library_is_searched() {
        // Lay out PREFIX/lib32/coroner/libx.so, PREFIX/bin/coroner, and a
        // link to the library elsewhere (as `coroner run`'s tree has).
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("lib32/coroner")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tree/lib")).unwrap();
        std::fs::write(root.join("lib32/coroner/libx.so"), "").unwrap();
        let script = root.join("bin/coroner");
        std::fs::write(&script, "#!/bin/sh\nprintf found\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("../../lib32/coroner/libx.so", root.join("tree/lib/libx.so"))
            .unwrap();
        for object in ["lib32/coroner/libx.so", "tree/lib/libx.so"] {
            let object = root.join(object);
            let object: &'static [u8] = Box::leak(
                object
                    .into_os_string()
                    .into_encoded_bytes()
                    .into_boxed_slice(),
            );
            let argv = [c"coroner".as_ptr(), ptr::null()];
            // SAFETY: a NULL-terminated array of literals.
            let r = unsafe { run_with(&argv, &[Program::Installed { object }], false) };
            assert_eq!(r, Ok(&b"found"[..]), "{}", String::from_utf8_lossy(object));
        }
        // The i686 build of a cargo target directory: the program is in
        // target/<profile>/.
        std::fs::create_dir_all(root.join("target/i686-unknown-linux-gnu/release")).unwrap();
        std::fs::create_dir_all(root.join("target/release")).unwrap();
        std::fs::copy(&script, root.join("target/release/coroner")).unwrap();
        let object = root.join("target/i686-unknown-linux-gnu/release/libcoroner.so");
        let object: &'static [u8] = Box::leak(
            object
                .into_os_string()
                .into_encoded_bytes()
                .into_boxed_slice(),
        );
        let argv = [c"coroner".as_ptr(), ptr::null()];
        // SAFETY: a NULL-terminated array of literals.
        let r = unsafe { run_with(&argv, &[Program::Installed { object }], false) };
        assert_eq!(r, Ok(&b"found"[..]));
    }
}
