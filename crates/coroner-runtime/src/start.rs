//! Start-up (not the crash path): find the configuration and its compiled
//! plan with a handful of raw syscalls, before `main`, without allocating.
//!
//! The rules are `coroner_config`'s (which files, in which order, trusted
//! how); this module applies them to the process environment read straight
//! from `environ`:
//!
//! 1. the candidate files are `CORONER_CONFIG` alone, else the system file
//!    and the per-user file (only the system file when `AT_SECURE`);
//! 2. each is opened (`ENOENT`: absent), checked on the open descriptor as
//!    `coroner_config::load` checks it, and hashed while read; a file
//!    `load` ignores with a warning (not a regular file, writable by group
//!    or others, a system file or link owned by someone else) counts as
//!    absent, as it does for `load`; a root-owned symbolic link as the
//!    system file is followed, as `load` follows it;
//! 3. none there: the empty plan, no more reading;
//! 4. the plan beside the most specific file (`<file>.plan`) is read into
//!    the arena and used if it is trusted (a regular file, not group- or
//!    world-writable, owned by that file's owner) and was compiled from
//!    exactly these bytes ([`coroner_config::plan::PlanView::compiled_from`]);
//! 5. anything else (no plan, a stale one, a file too large or unreadable)
//!    takes the full path: the preloaded library runs the plan compiler
//!    (`coroner config compile-plan`, the module `compile`), a program
//!    that links the runtime parses the TOML itself ([`full`], which
//!    allocates); either way the plan is stored for the next process when
//!    this one may ([`coroner_config::plan::store`]).
//!
//! A process therefore reads one or two small files and one plan; the
//! first process after an edit pays the compile once.

use crate::crash::{environ, Plan};
use crate::plan::{empty_plan, plan_from_view, Arena, Facts, ENV_RUN_FD};
use core::ffi::CStr;
use core::mem::MaybeUninit;
use coroner_config::plan::{ContentHash, PlanView, Role, Stamp, MAX_PLAN, SUFFIX};
use coroner_config::ConfigError;

/// The strings the quick path reads when there is no configuration, in
/// `.data` rather than `.rodata`: the library's `.data` page is written by
/// its relocations anyway, where the first read of a `.rodata` page is one
/// more page fault. The system file (`coroner_config::SYSTEM_CONFIG`),
/// NUL-terminated, then the per-user file below `$HOME`.
#[link_section = ".data.coroner_start"]
static PATHS: [u8; 55] = *b"/etc/coroner/coroner.toml\0/.config/coroner/coroner.toml";

/// The system file.
fn system() -> &'static CStr {
    // SAFETY: the first 26 bytes of PATHS are the path and its one NUL.
    unsafe { CStr::from_bytes_with_nul_unchecked(&PATHS[..26]) }
}

/// The per-user file below `$HOME` (`/.config/coroner/coroner.toml`) or
/// below `$XDG_CONFIG_HOME` (`/coroner/coroner.toml`).
fn user_suffix(xdg: bool) -> &'static [u8] {
    if xdg {
        &PATHS[34..]
    } else {
        &PATHS[26..]
    }
}

/// Files larger than this are `load`'s to refuse.
const MAX_FILE: u64 = 1 << 20;

/// The variables start-up reads (`coroner_config::Sources::from_vars`
/// treats an empty value as unset).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Env<'e> {
    pub config: Option<&'e [u8]>,
    pub xdg_config_home: Option<&'e [u8]>,
    pub home: Option<&'e [u8]>,
    pub path: Option<&'e [u8]>,
    pub run_fd: Option<&'e [u8]>,
    /// [`crate::compile::MARKER`] is set: this process is the plan
    /// compiler the library started (or runs as if it were one).
    pub compiling: bool,
}

impl<'e> Env<'e> {
    /// The variables among `entries` (`NAME=value`), the first of each name
    /// winning as with `getenv`.
    pub(crate) fn parse(entries: impl Iterator<Item = &'e [u8]>) -> Env<'e> {
        let mut env = Env::default();
        for e in entries {
            let Some(eq) = e.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&e[..eq], &e[eq + 1..]);
            if name == crate::compile::MARKER_NAME {
                env.compiling = true;
                continue;
            }
            let slot = match name {
                b"CORONER_CONFIG" => &mut env.config,
                b"XDG_CONFIG_HOME" => &mut env.xdg_config_home,
                b"HOME" => &mut env.home,
                b"PATH" => &mut env.path,
                _ if name == ENV_RUN_FD.as_bytes() => &mut env.run_fd,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        let set = |v: Option<&'e [u8]>| v.filter(|v| !v.is_empty());
        Env {
            config: set(env.config),
            xdg_config_home: set(env.xdg_config_home),
            home: set(env.home),
            path: set(env.path),
            run_fd: env.run_fd,
            compiling: env.compiling,
        }
    }

    /// The process environment.
    ///
    /// # Safety
    /// Nothing may change the environment while the result is in use (the
    /// install lock is held, and the strings are used before it returns).
    pub(crate) unsafe fn from_environ() -> Env<'e> {
        // SAFETY: `environ` is libc's, a NULL-terminated array of
        // NUL-terminated strings (or null) that the caller keeps unchanged.
        let mut p = unsafe { environ };
        let iter = core::iter::from_fn(move || {
            if p.is_null() {
                return None;
            }
            // SAFETY: `p` points into the array, before or at its NULL.
            let s = unsafe { *p };
            if s.is_null() {
                return None;
            }
            // SAFETY: as above; the next slot exists (at worst the NULL).
            p = unsafe { p.add(1) };
            // SAFETY: each entry is NUL-terminated and, by the caller's
            // promise, lives while the result is used.
            Some(unsafe { entry(s.cast()) })
        });
        Env::parse(iter)
    }
}

/// The entry at `s`: all of it when its name is one [`Env::parse`] keeps,
/// else just the name (the value is never looked at). Measured with byte
/// loops instead of `strlen` (see [`crate::bytes`]); most entries are not
/// ours.
///
/// # Safety
/// `s` points to a NUL-terminated string that lives for `'e`.
unsafe fn entry<'e>(s: *const u8) -> &'e [u8] {
    // SAFETY: the caller's promise.
    let name = unsafe { crate::bytes::c_prefix(s, b'=') };
    let ours = matches!(
        name,
        b"CORONER_CONFIG" | b"XDG_CONFIG_HOME" | b"HOME" | b"PATH"
    ) || name == ENV_RUN_FD.as_bytes()
        || name == crate::compile::MARKER_NAME;
    if !ours {
        return name;
    }
    // SAFETY: the caller's promise; the whole entry up to its NUL.
    unsafe { crate::bytes::c_prefix(s, 0) }
}

/// `CORONER_RUN_FD` (unless `AT_SECURE`), duplicated to a private
/// close-on-exec descriptor so the program closing or reusing the number
/// cannot redirect the report; -1 when unset, invalid or not open.
pub(crate) fn report_fd(env: &Env<'_>, secure: bool) -> libc::c_int {
    if secure {
        return -1;
    }
    let Some(fd) = env
        .run_fd
        .and_then(|v| core::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<libc::c_int>().ok())
        .filter(|fd| *fd >= 0)
    else {
        return -1;
    };
    // SAFETY: F_DUPFD_CLOEXEC on a caller-named descriptor number; fails
    // with EBADF if it is not open, touching no memory.
    unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) }
}

/// `parts` joined and NUL-terminated in `buf`; `None` when a part holds a
/// NUL or it does not fit. A byte loop, which the compiler does not turn
/// into a `memcpy` call, over a buffer nobody zeroed (no `memset` call):
/// each libc function is one more page fault in a process that has not
/// used it yet.
pub(crate) fn join<'b>(buf: &'b mut [MaybeUninit<u8>], parts: &[&[u8]]) -> Option<&'b CStr> {
    let mut at = 0;
    for part in parts {
        for &b in *part {
            if b == 0 {
                return None;
            }
            buf.get_mut(at)?.write(b);
            at += 1;
        }
    }
    buf.get_mut(at)?.write(0);
    // SAFETY: `buf[..=at]` was written above: the parts, which have no
    // NUL, then the one NUL.
    Some(unsafe { CStr::from_bytes_with_nul_unchecked(crate::bytes::assume_init(&buf[..=at])) })
}

/// `parts` joined into `buf` (on the caller's stack) or, when longer, into
/// the arena.
fn join_or_keep<'b>(
    buf: &'b mut [MaybeUninit<u8>],
    arena: &mut Arena,
    parts: &[&[u8]],
) -> Option<&'b CStr> {
    let fits = parts.iter().map(|p| p.len()).sum::<usize>() < buf.len();
    if fits {
        join(buf, parts)
    } else {
        arena.path(parts)
    }
}

/// The per-user file's path parts, as `Sources::from_vars` finds it.
pub(crate) fn user_file<'e>(env: &Env<'e>) -> Option<[&'e [u8]; 2]> {
    let (base, rest) = match env.xdg_config_home.filter(|x| x.starts_with(b"/")) {
        Some(x) => (x, user_suffix(true)),
        None => (env.home?, user_suffix(false)),
    };
    // `Path::join` adds no second separator.
    let rest = if base.ends_with(b"/") {
        &rest[1..]
    } else {
        rest
    };
    Some([base, rest])
}

/// How a configuration file is checked: as `coroner_config::load` checks
/// the system file, the per-user file, or the override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file owned by the given uid (root's, 0), not
    /// group/world-writable; a symbolic link only if the link is owned by
    /// that uid too.
    System(u32),
    /// A regular file, not group/world-writable.
    User,
    /// Whatever it is (`load` reports a missing one).
    Override,
}

/// A configuration file that is there and passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub stamp: Stamp,
    /// Its owner, who must own its plan too.
    pub uid: u32,
}

/// What the quick look at one file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    Absent,
    Found(Found),
    /// There, but a file `load` ignores (with a warning): not a regular
    /// file, writable by group or others, or a system file (or its link)
    /// owned by someone else. The plan is compiled without it, as if it
    /// were absent.
    Ignored,
    /// Something `load` must judge (and maybe refuse).
    Full,
}

fn errno() -> libc::c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Opens `path` read-only without blocking on a FIFO or taking a terminal.
/// These calls go through `syscall(2)`, whose page of libc the runtime
/// touches anyway, rather than libc's wrappers, each on a page of its own
/// that a fresh process has to fault in.
fn open(path: &CStr, nofollow: bool) -> libc::c_int {
    let flags = libc::O_RDONLY
        | libc::O_CLOEXEC
        | libc::O_NONBLOCK
        | libc::O_NOCTTY
        | if nofollow { libc::O_NOFOLLOW } else { 0 };
    // SAFETY: openat(2) with a NUL-terminated path; no memory is written.
    unsafe {
        libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0) as libc::c_int
    }
}

fn close(fd: libc::c_int) {
    // SAFETY: close(2) of a descriptor this module opened and no longer
    // uses.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// The `stat` structure: on x86-64 the kernel's, which is libc's; on
/// 32-bit targets the large-file one (`stat64`), whose inode numbers and
/// sizes do not overflow (libc's plain `fstat` fails with `EOVERFLOW` on an
/// overlay file system's 64-bit inode numbers).
#[cfg(target_arch = "x86_64")]
type Stat = libc::stat;
#[cfg(not(target_arch = "x86_64"))]
type Stat = libc::stat64;

fn fstat(fd: libc::c_int) -> Option<Stat> {
    let mut st = MaybeUninit::<Stat>::uninit();
    // On x86-64 fstat(2) goes through `syscall(2)` as the others do;
    // elsewhere through libc's fstat64.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: fstat(2) fills the live out-pointer `st` on success.
    let r = unsafe { libc::syscall(libc::SYS_fstat, fd, st.as_mut_ptr()) };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: `st` is a live out-pointer; fstat64 fills it on success.
    let r = unsafe { libc::fstat64(fd, st.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it is initialised.
    Some(unsafe { st.assume_init() })
}

/// `lstat(2)`, only when the system file turned out to be a symbolic link.
fn lstat(path: &CStr) -> Option<Stat> {
    let mut st = MaybeUninit::<Stat>::uninit();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: fstatat(2) with a NUL-terminated path fills the live
    // out-pointer `st` on success.
    let r = unsafe {
        libc::fstatat(
            libc::AT_FDCWD,
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: fstatat64 with a NUL-terminated path fills the live
    // out-pointer `st` on success.
    let r = unsafe {
        libc::fstatat64(
            libc::AT_FDCWD,
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: fstatat succeeded, so it is initialised.
    Some(unsafe { st.assume_init() })
}

/// `read(2)` into a buffer nobody zeroed, retried on EINTR.
fn read_uninit(fd: libc::c_int, buf: &mut [MaybeUninit<u8>]) -> isize {
    loop {
        // SAFETY: read(2) of at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) } as isize;
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return n;
    }
}

/// `read(2)` retried on EINTR.
fn read(fd: libc::c_int, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: read(2) of at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) } as isize;
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return n;
    }
}

fn is_regular(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn writable_by_others(st: &Stat) -> bool {
    st.st_mode & 0o022 != 0
}

/// The quick look at one configuration file: open, check on the
/// descriptor, hash while reading (through a 1 KiB stack buffer: a larger
/// one is probed page by page, and the arena is kept for what stays).
pub(crate) fn look(path: &CStr, role: Role, kind: Kind) -> Look {
    let mut fd = open(path, matches!(kind, Kind::System(_)));
    if fd < 0 {
        match (errno(), kind) {
            (_, Kind::Override) => return Look::Full,
            (libc::ENOENT | libc::ENOTDIR, _) => return Look::Absent,
            (libc::ELOOP, Kind::System(owner)) => match system_link(path, owner) {
                Ok(target) => fd = target,
                Err(look) => return look,
            },
            _ => return Look::Full,
        }
    }
    let found = fstat(fd).map(|st| {
        if st.st_size as u64 > MAX_FILE {
            return Look::Full;
        }
        let trusted = match kind {
            Kind::System(owner) => {
                is_regular(&st) && !writable_by_others(&st) && st.st_uid == owner
            }
            Kind::User => is_regular(&st) && !writable_by_others(&st),
            Kind::Override => is_regular(&st),
        };
        match (trusted, kind) {
            (true, _) => {}
            (false, Kind::Override) => return Look::Full,
            (false, _) => return Look::Ignored,
        }
        let mut chunk = [MaybeUninit::<u8>::uninit(); 1024];
        let mut h = ContentHash::new();
        let mut size = 0u64;
        // Up to the size fstat gave (a regular file reads short only at
        // its end, so one read does for a small file), or an early end.
        while size < st.st_size as u64 {
            let n = read_uninit(fd, &mut chunk);
            if n < 0 {
                return Look::Full;
            }
            if n == 0 {
                break;
            }
            let n = (n as usize).min(chunk.len());
            // SAFETY: read(2) wrote the first `n` bytes.
            h.update(unsafe { crate::bytes::assume_init(&chunk[..n]) });
            size += n as u64;
            if size > MAX_FILE {
                return Look::Full;
            }
        }
        Look::Found(Found {
            stamp: Stamp {
                role,
                size,
                hash: h.finish(),
            },
            uid: st.st_uid,
        })
    });
    close(fd);
    found.unwrap_or(Look::Full)
}

/// The system file is a symbolic link (`O_NOFOLLOW` said `ELOOP`): as
/// `load` has it, the link must be owned by `owner` (else the file is
/// ignored), and then its target is opened, to be checked as the file
/// itself. A target that is not there is ignored too.
fn system_link(path: &CStr, owner: u32) -> Result<libc::c_int, Look> {
    let st = lstat(path).ok_or(Look::Full)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return Err(Look::Full);
    }
    if st.st_uid != owner {
        return Err(Look::Ignored);
    }
    let fd = open(path, false);
    if fd >= 0 {
        return Ok(fd);
    }
    Err(match errno() {
        libc::ENOENT | libc::ENOTDIR | libc::ELOOP => Look::Ignored,
        _ => Look::Full,
    })
}

/// What the quick path came to.
#[derive(Debug)]
pub(crate) enum Quick {
    /// No configuration file at all.
    Nothing,
    /// A fresh, trusted plan, kept in the arena (checked: it parses).
    Plan(&'static [u8]),
    /// The full load is needed; `store` says whether its plan is worth
    /// writing (the plan was missing or stale, not a file `load` must judge).
    Full { store: bool },
}

/// Steps 1 to 4 of the module docs.
pub(crate) fn quick(env: &Env<'_>, secure: bool, arena: &mut Arena) -> Quick {
    quick_with(env, secure, system(), 0, arena)
}

/// [`quick`] with the system file and its trusted owner given (tests).
pub(crate) fn quick_with(
    env: &Env<'_>,
    secure: bool,
    system: &CStr,
    trusted_owner: u32,
    arena: &mut Arena,
) -> Quick {
    let mut stamps = [Stamp {
        role: Role::System,
        size: 0,
        hash: 0,
    }; 2];
    let mut n = 0;
    // Paths on the stack: a small buffer costs no page fault (a large one
    // is probed page by page); longer paths go to the arena.
    let mut buf = [MaybeUninit::<u8>::uninit(); 256];
    // The most specific file there, and its owner.
    let mut home: Option<(&CStr, u32)> = None;
    match env.config.filter(|_| !secure) {
        Some(over) => {
            let Some(path) = join_or_keep(&mut buf, arena, &[over]) else {
                return Quick::Full { store: false };
            };
            match look(path, Role::Override, Kind::Override) {
                Look::Found(f) => {
                    stamps[n] = f.stamp;
                    n += 1;
                    home = Some((path, f.uid));
                }
                _ => return Quick::Full { store: false },
            }
        }
        None => {
            match look(system, Role::System, Kind::System(trusted_owner)) {
                Look::Absent | Look::Ignored => {}
                Look::Found(f) => {
                    stamps[n] = f.stamp;
                    n += 1;
                    home = Some((system, f.uid));
                }
                Look::Full => return Quick::Full { store: false },
            }
            if let Some(parts) = user_file(env).filter(|_| !secure) {
                let Some(user) = join_or_keep(&mut buf, arena, &parts) else {
                    return Quick::Full { store: false };
                };
                match look(user, Role::User, Kind::User) {
                    Look::Absent | Look::Ignored => {}
                    Look::Found(f) => {
                        stamps[n] = f.stamp;
                        n += 1;
                        home = Some((user, f.uid));
                    }
                    Look::Full => return Quick::Full { store: false },
                }
            }
        }
    }
    let Some((home, owner)) = home else {
        return Quick::Nothing;
    };
    let mut plan_buf = [MaybeUninit::<u8>::uninit(); 300];
    let Some(plan) = join_or_keep(&mut plan_buf, arena, &[home.to_bytes(), SUFFIX.as_bytes()])
    else {
        return Quick::Full { store: false };
    };
    let Some(len) = read_plan(plan, owner, arena) else {
        return Quick::Full { store: true };
    };
    let fresh =
        PlanView::parse(&arena.free()[..len]).is_some_and(|v| v.compiled_from(&stamps[..n]));
    if !fresh {
        return Quick::Full { store: true };
    }
    Quick::Plan(arena.keep(len))
}

/// Reads the plan `path` into the arena's free space if it is a regular
/// file, not group/world-writable, owned by `owner`, and fits; returns its
/// length.
fn read_plan(path: &CStr, owner: u32, arena: &mut Arena) -> Option<usize> {
    let fd = open(path, true);
    if fd < 0 {
        return None;
    }
    let len = fstat(fd).and_then(|st| {
        let size = usize::try_from(st.st_size).ok()?;
        if !is_regular(&st) || writable_by_others(&st) || st.st_uid != owner || size > MAX_PLAN {
            return None;
        }
        let free = arena.room(size + 1)?;
        // Up to the size fstat gave; a plan that changes meanwhile reads
        // torn and fails its checks.
        let mut got = 0usize;
        while got < size {
            let n = read(fd, free.get_mut(got..=size)?);
            if n < 0 {
                return None;
            }
            if n == 0 {
                break;
            }
            got += n as usize;
            if got > size {
                return None;
            }
        }
        (got == size).then_some(size)
    });
    close(fd);
    len
}

/// Step 5 in a program that links the runtime (`install`): the full load,
/// then the plan from it. Allocates, and links the TOML parser.
pub(crate) fn full(
    store: bool,
    secure: bool,
    facts: &Facts<'_>,
    arena: &mut Arena,
) -> (Plan, Option<ConfigError>) {
    let mut sources = coroner_config::Sources::from_environment();
    // The plan leaves the default dumper to the crash-time child (a stat
    // per PATH directory saved at every start).
    sources.search_path = None;
    match coroner_config::load_stamped(&sources) {
        Ok((loaded, stamps)) => {
            if stamps.is_empty() {
                return (empty_plan(facts.report_fd), None);
            }
            let bytes = coroner_config::plan::encode(&loaded.config, &stamps);
            if store && !secure && loaded.warnings.is_empty() {
                // A cache: a process that may not write it goes on without.
                let _ = coroner_config::plan::store(&sources, &stamps, &bytes);
            }
            let kept = arena.copy(&bytes);
            match PlanView::parse(kept) {
                Some(view) => (plan_from_view(&view, facts, arena), None),
                None => (empty_plan(facts.report_fd), None),
            }
        }
        Err(e) => (empty_plan(facts.report_fd), Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    #[test]
    fn environment_like_sources_from_vars() {
        let e = Env::parse(
            [
                &b"HOME=/home/u"[..],
                b"PATH=/bin",
                b"HOME=/other",
                b"XDG_CONFIG_HOME=",
                b"CORONER_RUN_FD= 9",
                b"JUNK",
            ]
            .into_iter(),
        );
        assert!(!e.compiling);
        let marked = Env::parse([&b"CORONER_COMPILING_PLAN=1"[..]].into_iter());
        assert!(marked.compiling, "the plan compiler's marker");
        assert_eq!(e.home, Some(&b"/home/u"[..]), "the first one wins");
        assert_eq!(e.xdg_config_home, None, "empty is unset");
        assert_eq!(e.path, Some(&b"/bin"[..]));
        assert_eq!(report_fd(&e, true), -1);
        let joined = |parts: [&[u8]; 2]| -> PathBuf {
            let mut buf = [MaybeUninit::<u8>::uninit(); 256];
            let c = join(&mut buf, &parts).unwrap();
            PathBuf::from(std::str::from_utf8(c.to_bytes()).unwrap())
        };
        let user = joined(user_file(&e).unwrap());
        assert_eq!(user, Path::new("/home/u/.config/coroner/coroner.toml"));
        for (vars, want) in [
            (
                &[&b"HOME=/h"[..], b"XDG_CONFIG_HOME=/x"][..],
                Some("/x/coroner/coroner.toml"),
            ),
            (
                &[&b"HOME=/h/"[..], b"XDG_CONFIG_HOME=rel"][..],
                Some("/h/.config/coroner/coroner.toml"),
            ),
            (&[&b"XDG_CONFIG_HOME=rel"[..]][..], None),
        ] {
            let env = Env::parse(vars.iter().copied());
            let ours = user_file(&env).map(joined);
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|v| {
                    let (k, v) = std::str::from_utf8(v).unwrap().split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let theirs = coroner_config::Sources::from_vars(
                |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.into()),
                false,
            )
            .user;
            assert_eq!(ours, theirs);
            assert_eq!(ours.as_deref(), want.map(Path::new));
        }
    }

    struct Scratch {
        dir: tempfile::TempDir,
        uid: u32,
    }

    impl Scratch {
        fn new() -> Scratch {
            let dir = tempfile::tempdir().unwrap();
            let uid = fs::metadata(dir.path()).unwrap().uid();
            Scratch { dir, uid }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.path(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
        fn cstr(p: &Path) -> std::ffi::CString {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
        }
        /// The quick path with the system file at `sys` and the user file
        /// under XDG_CONFIG_HOME = the scratch dir.
        fn quick(&self, sys: &Path, over: Option<&Path>) -> Quick {
            let xdg = format!("XDG_CONFIG_HOME={}", self.dir.path().display());
            let over = over.map(|o| format!("CORONER_CONFIG={}", o.display()));
            let mut vars = vec![xdg.as_bytes()];
            if let Some(o) = &over {
                vars.push(o.as_bytes());
            }
            let env = Env::parse(vars.into_iter());
            let _lock = crate::test_lock();
            // SAFETY: the test lock stands for the install lock.
            let mut arena = unsafe { Arena::new() };
            quick_with(&env, false, &Self::cstr(sys), self.uid, &mut arena)
        }
        fn sources(&self, sys: &Path, over: Option<&Path>) -> coroner_config::Sources {
            let mut s = coroner_config::Sources::system_only(Some(sys), self.uid);
            s.user = Some(self.path("coroner/coroner.toml"));
            s.env_override = over.map(Path::to_owned);
            s
        }
    }

    fn debugger_of(q: &Quick) -> Option<Vec<u8>> {
        match q {
            Quick::Plan(bytes) => PlanView::parse(bytes)
                .unwrap()
                .aedebug
                .debugger
                .and_then(|d| d.program())
                .map(<[u8]>::to_vec),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fresh_plan_is_used_a_stale_one_is_not() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", "[aedebug]\ndebugger = \"sysdbg %ld\"\n", 0o644);
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        coroner_config::plan::refresh(&s.sources(&sys, None))
            .unwrap()
            .unwrap();
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"sysdbg");
        // A user file appears: the system plan is not for it.
        fs::create_dir(s.path("coroner")).unwrap();
        let user = s.file(
            "coroner/coroner.toml",
            "[aedebug]\ndebugger = \"mine %ld\"\n",
            0o600,
        );
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        coroner_config::plan::refresh(&s.sources(&sys, None))
            .unwrap()
            .unwrap();
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"mine");
        // Edited in place, same size: stale.
        fs::write(&user, "[aedebug]\ndebugger = \"mone %ld\"\n").unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        coroner_config::plan::refresh(&s.sources(&sys, None))
            .unwrap()
            .unwrap();
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"mone");
        // The system file changes under the user's plan: stale too.
        fs::write(&sys, "[aedebug]\nauto = 0\n").unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        // The override replaces both and has its own plan.
        let over = s.file("over.toml", "[aedebug]\ndebugger = \"o %ld\"\n", 0o644);
        assert!(matches!(
            s.quick(&sys, Some(&over)),
            Quick::Full { store: true }
        ));
        coroner_config::plan::refresh(&s.sources(&sys, Some(&over)))
            .unwrap()
            .unwrap();
        assert_eq!(debugger_of(&s.quick(&sys, Some(&over))).unwrap(), b"o");
        // A missing override is load's error to report.
        assert!(matches!(
            s.quick(&sys, Some(&s.path("none.toml"))),
            Quick::Full { store: false }
        ));
    }

    #[test]
    fn the_paths_in_data_are_the_paths() {
        assert_eq!(system().to_str().unwrap(), coroner_config::SYSTEM_CONFIG);
        assert_eq!(user_suffix(false), b"/.config/coroner/coroner.toml");
        assert_eq!(user_suffix(true), b"/coroner/coroner.toml");
    }

    #[test]
    fn paths_are_joined_or_refused() {
        let mut buf = [MaybeUninit::<u8>::uninit(); 8];
        assert_eq!(join(&mut buf, &[b"/a", b"/b"]).unwrap(), c"/a/b");
        assert_eq!(join(&mut buf, &[b"1234567"]).unwrap(), c"1234567");
        assert!(
            join(&mut buf, &[b"12345678"]).is_none(),
            "no room for the NUL"
        );
        assert!(join(&mut buf, &[b"a\0b"]).is_none());
        // Too long for the stack buffer: kept in the arena instead.
        let _lock = crate::test_lock();
        // SAFETY: the test lock stands for the install lock.
        let mut arena = unsafe { Arena::new() };
        let long = [b'x'; 300];
        let c = join_or_keep(&mut buf, &mut arena, &[b"/", &long]).unwrap();
        assert_eq!(c.to_bytes().len(), 301);
    }

    #[test]
    fn nothing_there_reads_nothing_more() {
        let s = Scratch::new();
        assert!(matches!(
            s.quick(&s.path("absent.toml"), None),
            Quick::Nothing
        ));
        // Below a file (ENOTDIR) is absent too.
        let f = s.file("f", "", 0o644);
        assert!(matches!(s.quick(&f.join("x.toml"), None), Quick::Nothing));
    }

    #[test]
    fn untrusted_plans_are_not_used() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", "[aedebug]\ndebugger = \"sysdbg %ld\"\n", 0o644);
        coroner_config::plan::refresh(&s.sources(&sys, None))
            .unwrap()
            .unwrap();
        let plan = s.path("sys.toml.plan");
        assert!(matches!(s.quick(&sys, None), Quick::Plan(_)));
        // A plan others may write, or a link to a plan: not trusted.
        fs::set_permissions(&plan, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        fs::set_permissions(&plan, fs::Permissions::from_mode(0o644)).unwrap();
        fs::rename(&plan, s.path("real.plan")).unwrap();
        std::os::unix::fs::symlink(s.path("real.plan"), &plan).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        fs::remove_file(&plan).unwrap();
        fs::rename(s.path("real.plan"), &plan).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Plan(_)));
        // A damaged plan: refused, and worth rewriting.
        let mut bytes = fs::read(&plan).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&plan, &bytes).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
    }

    /// The files `load` ignores with a warning are ignored by the quick
    /// path too, and the plan the compiler stores for such a configuration
    /// (`coroner_config::plan::compile`, which lists only the files it
    /// used) is then fresh: the next start does not run the compiler again.
    #[test]
    fn ignored_files_are_ignored_alike_and_their_plans_are_used() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", "[aedebug]\ndebugger = \"sysdbg %ld\"\n", 0o644);
        fs::create_dir(s.path("coroner")).unwrap();
        let user = s.file(
            "coroner/coroner.toml",
            "[aedebug]\ndebugger = \"mine %ld\"\n",
            0o644,
        );
        let compile = |sys: &Path| {
            coroner_config::plan::compile(&s.sources(sys, None), true)
                .unwrap()
                .1
                .expect("stored")
        };
        assert_eq!(compile(&sys), s.path("coroner/coroner.toml.plan"));
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"mine");
        // The user file group-writable: ignored; the system plan is for
        // the system file alone.
        fs::set_permissions(&user, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        assert_eq!(compile(&sys), s.path("sys.toml.plan"));
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"sysdbg");
        fs::set_permissions(&user, fs::Permissions::from_mode(0o644)).unwrap();
        // The system file group-writable: ignored; the user's plan is
        // compiled without it.
        fs::set_permissions(&sys, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(s.quick(&sys, None), Quick::Full { store: true }));
        compile(&sys);
        assert_eq!(debugger_of(&s.quick(&sys, None)).unwrap(), b"mine");
        fs::set_permissions(&sys, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_file(&user).unwrap();
        // A system file that is not a regular file, alone: nothing.
        let fifo = s.path("fifo.toml");
        let c = Scratch::cstr(&fifo);
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(matches!(s.quick(&fifo, None), Quick::Nothing));
        // Not owned by the trusted uid: ignored.
        let env = Env::default();
        {
            let _lock = crate::test_lock();
            // SAFETY: the test lock stands for the install lock.
            let mut arena = unsafe { Arena::new() };
            let other = s.uid.wrapping_add(1);
            assert!(matches!(
                quick_with(&env, false, &Scratch::cstr(&sys), other, &mut arena),
                Quick::Nothing
            ));
        }
        // A symbolic link as the system file, owned by the trusted uid: its
        // target is read, and the plan is beside the link.
        let link = s.path("link.toml");
        std::os::unix::fs::symlink(&sys, &link).unwrap();
        assert!(matches!(s.quick(&link, None), Quick::Full { store: true }));
        assert_eq!(compile(&link), s.path("link.toml.plan"));
        assert_eq!(debugger_of(&s.quick(&link, None)).unwrap(), b"sysdbg");
        // A dangling one is ignored, as load ignores it.
        let dangling = s.path("dangling.toml");
        std::os::unix::fs::symlink(s.path("none"), &dangling).unwrap();
        assert!(matches!(s.quick(&dangling, None), Quick::Nothing));
        // A link owned by someone else: ignored.
        let _lock = crate::test_lock();
        // SAFETY: the test lock stands for the install lock.
        let mut arena = unsafe { Arena::new() };
        let other = s.uid.wrapping_add(1);
        assert!(matches!(
            quick_with(&env, false, &Scratch::cstr(&link), other, &mut arena),
            Quick::Nothing
        ));
    }

    #[test]
    fn a_secure_process_reads_the_system_file_only() {
        let s = Scratch::new();
        let sys = s.file("sys.toml", "[aedebug]\ndebugger = \"sysdbg %ld\"\n", 0o644);
        coroner_config::plan::refresh(&coroner_config::Sources::system_only(Some(&sys), s.uid))
            .unwrap()
            .unwrap();
        fs::create_dir(s.path("coroner")).unwrap();
        s.file(
            "coroner/coroner.toml",
            "[aedebug]\ndebugger = \"mine %ld\"\n",
            0o600,
        );
        let over = s.file("over.toml", "", 0o644);
        let xdg = format!("XDG_CONFIG_HOME={}", s.dir.path().display());
        let o = format!("CORONER_CONFIG={}", over.display());
        let env = Env::parse([xdg.as_bytes(), o.as_bytes()].into_iter());
        let _lock = crate::test_lock();
        // SAFETY: the test lock stands for the install lock.
        let mut arena = unsafe { Arena::new() };
        let q = quick_with(&env, true, &Scratch::cstr(&sys), s.uid, &mut arena);
        assert_eq!(debugger_of(&q).unwrap(), b"sysdbg");
    }
}
