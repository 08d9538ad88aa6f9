//! The kernel tier's sysctl side (DESIGN.md "Kernel tier", spec §13.1
//! item 2): the `kernel.core_pattern` coroner installs, the arguments the
//! kernel then passes to `coroner handler`, installing and uninstalling the
//! pattern with the previous values saved and restored byte for byte, and
//! the argv for chaining to the previously installed pipe handler.
//!
//! Owns: [`handler_pattern`] / [`socket_pattern`] (building and checking a
//! pattern), [`parse_handler_args`], [`install_kernel`] /
//! [`uninstall_kernel`] with the saved record `<state>/kernel.saved`,
//! [`saved_state`] (the trusted read of that record the root handler uses)
//! and [`chain_command`].
//!
//! Must not: run anything (the handler executes what [`chain_command`]
//! returns), write a core file, or touch any sysctl other than the two files
//! in the [`SysctlPaths`] directory it is given. Every function takes the
//! sysctl directory and the state directory as parameters, so tests never
//! touch the real `/proc/sys/kernel` or `/var/lib`.
//!
//! # The saved record
//!
//! `kernel.saved` is TOML: `format = 1` and three hex-encoded byte strings,
//! `previous_pattern` and `previous_pipe_limit` exactly as read from the
//! kernel before the first install (trailing newline included) and
//! `installed_pattern`, what we wrote. Hex so that any bytes round-trip;
//! a readable copy of each value follows as a comment. It is replaced
//! atomically and kept 0600 in a 0700 directory. It is written before the
//! kernel values, so there is never a coroner pattern without its record.
//!
//! Rules, as for the AeDebug installers (`install.rs`):
//! - Installing while our pattern is in place changes nothing (but raises a
//!   pipe limit below the one asked for). Replacing an
//!   older coroner pattern (the binary moved) keeps the original previous
//!   values: our own pattern is never saved as "previous". A coroner
//!   pattern in place with no record is an error, since what it replaced is
//!   unknown.
//! - A record whose pattern is no longer in the kernel (someone set another
//!   one since) is stale: a new install saves what is there now.
//! - Uninstall restores the previous values only if the kernel still holds
//!   the pattern we installed; otherwise it leaves the current value alone
//!   and says so. Either way the record is removed.
//!
//! # Kernel behaviour this relies on
//!
//! Reading `core_pattern` gives the value plus `"\n"`; writing needs none
//! (a write stops at the first newline). Patterns are compared ignoring
//! exactly one trailing newline. The kernel keeps at most 127 bytes
//! (`CORENAME_MAX_SIZE` 128 with the NUL). Since 6.17 (and 6.16.8) an
//! invalid pattern is accepted on write and refused on read, so every
//! install reads the value back and rolls back on a mismatch. For a pipe
//! pattern (`|prog args`) the kernel splits the command on white space
//! *before* expanding the `%` specifiers (since Linux 5.3), so `%e` (the
//! command name, which may hold spaces) stays one argument.
//!
//! Chaining ([`chain_command`]) honours only a previous *pipe* pattern:
//! writing a core file ourselves, as root, to a path the crashing process
//! influences is the apport CVE-2015-1324 class of bug, so a file pattern
//! is not chained.

use crate::edit::write_atomic;
use crate::error::ConfigError;
use serde::Deserialize;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest `core_pattern` the kernel keeps (`CORENAME_MAX_SIZE` is 128
/// including the terminating NUL).
pub const CORE_PATTERN_MAX: usize = 127;

/// The longest path of an `AF_UNIX` socket (`sun_path` is 108 bytes
/// including the NUL).
pub const SOCKET_PATH_MAX: usize = 107;

/// The specifiers after `handler [--config=PATH]`, in the order
/// [`parse_handler_args`] reads them. `%e` is last: on kernels before 5.3,
/// which split after expanding, a command name with spaces arrives as
/// several arguments, and being last they can be joined back.
pub const HANDLER_SPECIFIERS: &str = "%P %I %s %t %d %F %u %g %c %h %p %i %e";

/// The number of arguments [`HANDLER_SPECIFIERS`] expands to.
pub const HANDLER_FIELD_COUNT: usize = 13;

/// The state directory the system install uses.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/coroner";

/// The name of the saved record inside the state directory.
pub const SAVED_FILE: &str = "kernel.saved";

const ESCAPE_MAX: usize = 200;
const SAVED_FORMAT: u32 = 1;
const SAVED_MAX_BYTES: u64 = 64 * 1024;

/// Errors of the kernel tier's configuration. Every variant names the file,
/// field or value it concerns; bytes from outside are shown escaped.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A path given for a pattern cannot be used in one.
    #[error("{what} {}: {reason}", path.display())]
    BadPath {
        what: &'static str,
        path: PathBuf,
        reason: &'static str,
    },
    /// The pattern is longer than the kernel keeps.
    #[error("core_pattern {pattern:?} is {len} bytes; the kernel keeps at most {max}")]
    PatternTooLong {
        pattern: String,
        len: usize,
        max: usize,
    },
    /// A pattern given to [`install_kernel`] that cannot be written.
    #[error("core_pattern \"{pattern}\": {reason}")]
    BadPattern {
        pattern: String,
        reason: &'static str,
    },
    /// Fewer handler arguments than the pattern produces.
    #[error("handler: expected {expected} arguments after the options ({HANDLER_SPECIFIERS}), got {got}")]
    MissingHandlerArgs { expected: usize, got: usize },
    /// A handler argument that is not what its specifier expands to.
    #[error("handler argument {field}: \"{value}\": {reason}")]
    BadHandlerArg {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A handler option other than `--config=PATH`.
    #[error("handler: unknown option \"{value}\"")]
    UnknownHandlerOption { value: String },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file could not be written, created or removed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A sysctl file holds something other than what the kernel writes.
    #[error("{}: \"{value}\": {reason}", path.display())]
    BadSysctlValue {
        path: PathBuf,
        value: String,
        reason: &'static str,
    },
    /// The state directory or the saved record cannot be trusted.
    #[error("refusing {}: {reason}", path.display())]
    Untrusted { path: PathBuf, reason: String },
    /// The saved record is malformed.
    #[error("saved record {}: {reason}", path.display())]
    Saved { path: PathBuf, reason: String },
    /// A coroner pattern is in place but no record says what it replaced.
    #[error(
        "{} already holds a coroner handler (\"{current}\") but {} is missing, so the pattern it replaced is unknown; set kernel.core_pattern to the value to restore on uninstall, then install again",
        path.display(), record.display()
    )]
    UnknownPrevious {
        path: PathBuf,
        record: PathBuf,
        current: String,
    },
    /// The kernel did not take the pattern; the earlier values were put back
    /// (or `rollback` says why not).
    #[error("{} did not take \"{wrote}\": {why}; {rollback}", path.display())]
    NotTaken {
        path: PathBuf,
        wrote: String,
        why: String,
        rollback: String,
    },
    /// The previous pattern uses a specifier we cannot expand.
    #[error(
        "cannot chain: unsupported {specifier} in previous core_pattern \"{pattern}\": {reason}"
    )]
    ChainUnsupported {
        specifier: String,
        pattern: String,
        reason: &'static str,
    },
    /// The previous pattern is a coroner handler: chaining would loop.
    #[error("cannot chain: previous core_pattern \"{pattern}\" is a coroner handler (would loop)")]
    ChainLoop { pattern: String },
    /// The previous pattern's program cannot be executed safely.
    #[error(
        "cannot chain: program \"{program}\" of previous core_pattern \"{pattern}\": {reason}"
    )]
    ChainProgram {
        program: String,
        pattern: String,
        reason: &'static str,
    },
}

/// Bytes from outside, printable: ASCII escapes, cut at a sane length.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if s.len() >= ESCAPE_MAX {
            s.push_str(&format!("...({} more bytes)", bytes.len() - i));
            break;
        }
        s.extend(std::ascii::escape_default(*b).map(char::from));
    }
    s
}

/// `bytes` without exactly one trailing newline, if there is one.
fn trim_nl(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// The kernel's `isspace` (what it splits a pipe command on).
fn is_kernel_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Words of a pipe command (after the `|`), split as the kernel does.
fn kernel_words(command: &[u8]) -> impl Iterator<Item = &[u8]> {
    command
        .split(|b| is_kernel_space(*b))
        .filter(|w| !w.is_empty())
}

// ---------------------------------------------------------------------------
// Building the pattern
// ---------------------------------------------------------------------------

/// A path that may appear in a pattern: absolute, UTF-8, no white space,
/// control character or `%`.
fn pattern_path<'a>(what: &'static str, p: &'a Path) -> Result<&'a str, KernelError> {
    let bad = |reason| KernelError::BadPath {
        what,
        path: p.to_owned(),
        reason,
    };
    let s = p.to_str().ok_or_else(|| bad("not UTF-8"))?;
    if !p.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "contains white space or a control character (the kernel splits the command on spaces)",
        ));
    }
    if s.contains('%') {
        return Err(bad("contains '%' (the kernel would expand it)"));
    }
    Ok(s)
}

fn check_length(pattern: String) -> Result<String, KernelError> {
    if pattern.len() > CORE_PATTERN_MAX {
        return Err(KernelError::PatternTooLong {
            len: pattern.len(),
            pattern,
            max: CORE_PATTERN_MAX,
        });
    }
    Ok(pattern)
}

/// The pipe pattern that runs coroner's handler:
/// `|<coroner> handler [--config=<config>] %P %I %s %t %d %F %u %g %c %h %p %i %e`.
pub fn handler_pattern(coroner: &Path, config: Option<&Path>) -> Result<String, KernelError> {
    let mut p = format!("|{} handler", pattern_path("coroner", coroner)?);
    if let Some(c) = config {
        p.push_str(" --config=");
        p.push_str(pattern_path("config", c)?);
    }
    p.push(' ');
    p.push_str(HANDLER_SPECIFIERS);
    check_length(p)
}

/// The coredump-socket pattern (Linux 6.16+): `@<socket>`, or `@@<socket>`
/// for request mode (6.17+), where the server answers each dump request.
pub fn socket_pattern(socket: &Path, request_mode: bool) -> Result<String, KernelError> {
    let s = pattern_path("socket", socket)?;
    if s.len() > SOCKET_PATH_MAX {
        return Err(KernelError::BadPath {
            what: "socket",
            path: socket.to_owned(),
            reason: "longer than an AF_UNIX socket path (107 bytes)",
        });
    }
    check_length(format!("{}{s}", if request_mode { "@@" } else { "@" }))
}

/// What the running kernel offers for `core_pattern` = `@socket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SocketSupport {
    /// Before Linux 6.16: pipes and files only.
    None,
    /// Linux 6.16: `@socket`, the kernel writes every core to the server.
    Plain,
    /// Linux 6.17+: also `@@socket`, the server answers a request per
    /// crash (collect, reject, or collect itself).
    Request,
}

/// The coredump socket support of a kernel release (`uname -r`, e.g.
/// `6.18.4-arch1`). Unparseable releases get [`SocketSupport::None`]: the
/// pipe always works.
pub fn socket_support(release: &str) -> SocketSupport {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= (6, 17) => SocketSupport::Request,
        (Some(6), Some(16)) => SocketSupport::Plain,
        _ => SocketSupport::None,
    }
}

/// True if `/proc/net/unix` (its text) lists a listening socket bound to
/// `path`: something answers the kernel when it connects there.
pub fn unix_listening(proc_net_unix: &[u8], path: &Path) -> bool {
    /// `__SO_ACCEPTCON` in the Flags column: `listen` was called.
    const ACCEPTCON: u32 = 1 << 16;
    let want = path.as_os_str().as_bytes();
    proc_net_unix.split(|&b| b == b'\n').skip(1).any(|line| {
        // Num RefCount Protocol Flags Type St Inode Path
        let mut fields = line.splitn(8, |&b| b == b' ').filter(|f| !f.is_empty());
        let flags = fields
            .nth(3)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| u32::from_str_radix(f, 16).ok());
        let name = line.rsplit(|&b| b == b' ').next();
        flags.is_some_and(|f| f & ACCEPTCON != 0) && name == Some(want)
    })
}

/// True if `pattern` runs a coroner handler: a pipe whose second word is
/// `handler` and whose program is named `coroner` or whose remaining words
/// are [`HANDLER_SPECIFIERS`] (after an optional `--config=`).
pub fn is_handler_pattern(pattern: &[u8]) -> bool {
    let Some(command) = trim_nl(pattern).strip_prefix(b"|") else {
        return false;
    };
    let words: Vec<&[u8]> = kernel_words(command).collect();
    if words.len() < 2 || words[1] != b"handler" {
        return false;
    }
    let name = words[0].rsplit(|b| *b == b'/').next().unwrap_or_default();
    if name == b"coroner" {
        return true;
    }
    let mut rest = &words[2..];
    if rest.first().is_some_and(|w| w.starts_with(b"--config=")) {
        rest = &rest[1..];
    }
    rest.iter()
        .copied()
        .eq(kernel_words(HANDLER_SPECIFIERS.as_bytes()))
}

// ---------------------------------------------------------------------------
// The handler's arguments
// ---------------------------------------------------------------------------

/// What the kernel passes to `coroner handler` (the arguments after
/// `handler`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerArgs {
    /// `--config=PATH`, if the pattern has one.
    pub config: Option<PathBuf>,
    /// `%P`: the process id in the initial pid namespace.
    pub pid: u32,
    /// `%I`: the crashing thread's id in the initial pid namespace.
    pub tid: u32,
    /// `%s`: the signal that caused the dump.
    pub signal: i32,
    /// `%t`: the time of the dump, seconds since the epoch.
    pub time: i64,
    /// `%d`: the dump mode (`PR_GET_DUMPABLE`: 0 off, 1 user, 2 root-only).
    pub dumpable: u8,
    /// `%F`: the pidfd the kernel installed (as fd 3; Linux 6.16+). Older
    /// kernels leave the argument empty (they drop unknown specifiers) or,
    /// if something passed the pattern through, `%F`: both are `None`.
    pub pidfd: Option<i32>,
    /// `%u`: the real uid, in the initial user namespace.
    pub uid: u32,
    /// `%g`: the real gid, in the initial user namespace.
    pub gid: u32,
    /// `%c`: `RLIMIT_CORE` soft limit, decimal (`18446744073709551615` for
    /// unlimited on 64-bit kernels).
    pub core_limit: String,
    /// `%h`: the host name (`/` shown as `!` by the kernel).
    pub host: OsString,
    /// `%p`: the process id in its own pid namespace.
    pub ns_pid: u32,
    /// `%i`: the thread id in its own pid namespace.
    pub ns_tid: u32,
    /// `%e`: the command name, raw bytes chosen by the crashing program (the
    /// kernel shows `/` as `!`). Hostile: never a path, never a program.
    pub comm: OsString,
}

fn field_err(field: &'static str, raw: &[u8], reason: &'static str) -> KernelError {
    KernelError::BadHandlerArg {
        field,
        value: escape(raw),
        reason,
    }
}

/// A strict unsigned decimal: ASCII digits only (no sign, no blanks).
fn decimal<T: std::str::FromStr>(field: &'static str, raw: &[u8]) -> Result<T, KernelError> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return Err(field_err(field, raw, "not a decimal number"));
    }
    // All ASCII digits, so UTF-8.
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| field_err(field, raw, "out of range"))
}

fn nonzero(field: &'static str, raw: &[u8]) -> Result<u32, KernelError> {
    match decimal::<u32>(field, raw)? {
        0 => Err(field_err(field, raw, "a process or thread id is never 0")),
        n => Ok(n),
    }
}

/// Parses the arguments after `handler` (see [`HANDLER_SPECIFIERS`]).
/// Strict: every number is plain decimal within its type and range. More
/// than [`HANDLER_FIELD_COUNT`] arguments happen only on kernels before 5.3
/// for a command name with spaces; being last, they are joined back with
/// single spaces.
pub fn parse_handler_args(args: &[OsString]) -> Result<HandlerArgs, KernelError> {
    let mut rest = args;
    let mut config = None;
    if let Some(first) = rest.first().map(|a| a.as_bytes()) {
        if first.starts_with(b"--") {
            let Some(path) = first.strip_prefix(b"--config=") else {
                return Err(KernelError::UnknownHandlerOption {
                    value: escape(first),
                });
            };
            let path = PathBuf::from(OsStr::from_bytes(path));
            if !path.is_absolute() {
                return Err(field_err("--config", first, "not an absolute path"));
            }
            config = Some(path);
            rest = &rest[1..];
        }
    }
    if rest.len() < HANDLER_FIELD_COUNT {
        return Err(KernelError::MissingHandlerArgs {
            expected: HANDLER_FIELD_COUNT,
            got: rest.len(),
        });
    }
    let a = |i: usize| rest[i].as_bytes();
    let pid = nonzero("%P (pid)", a(0))?;
    let tid = nonzero("%I (tid)", a(1))?;
    let signal: i32 = decimal("%s (signal)", a(2))?;
    if !(1..=128).contains(&signal) {
        return Err(field_err("%s (signal)", a(2), "not a signal number"));
    }
    let time = decimal("%t (time)", a(3))?;
    let dumpable: u8 = decimal("%d (dump mode)", a(4))?;
    if dumpable > 3 {
        return Err(field_err("%d (dump mode)", a(4), "not a dump mode (0..=3)"));
    }
    let pidfd = match a(5) {
        b"" | b"%F" => None,
        raw => Some(decimal::<i32>("%F (pidfd)", raw)?),
    };
    let uid = decimal("%u (uid)", a(6))?;
    let gid = decimal("%g (gid)", a(7))?;
    decimal::<u64>("%c (core limit)", a(8))?;
    // Validated as a u64: ASCII digits.
    let core_limit = String::from_utf8_lossy(a(8)).into_owned();
    let host = rest[9].clone();
    let ns_pid = nonzero("%p (namespace pid)", a(10))?;
    let ns_tid = nonzero("%i (namespace tid)", a(11))?;
    let mut comm = rest[12].clone();
    for more in &rest[HANDLER_FIELD_COUNT..] {
        comm.push(" ");
        comm.push(more);
    }
    Ok(HandlerArgs {
        config,
        pid,
        tid,
        signal,
        time,
        dumpable,
        pidfd,
        uid,
        gid,
        core_limit,
        host,
        ns_pid,
        ns_tid,
        comm,
    })
}

// ---------------------------------------------------------------------------
// Install and uninstall
// ---------------------------------------------------------------------------

/// Where the two sysctl files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlPaths {
    /// Normally `/proc/sys/kernel`; tests pass a directory of plain files
    /// named `core_pattern` and `core_pipe_limit`.
    pub dir: PathBuf,
}

impl SysctlPaths {
    /// The running kernel's: `/proc/sys/kernel`.
    pub fn system() -> Self {
        SysctlPaths {
            dir: PathBuf::from("/proc/sys/kernel"),
        }
    }

    /// `<dir>/core_pattern`.
    pub fn core_pattern(&self) -> PathBuf {
        self.dir.join("core_pattern")
    }

    /// `<dir>/core_pipe_limit`.
    pub fn core_pipe_limit(&self) -> PathBuf {
        self.dir.join("core_pipe_limit")
    }
}

/// The saved record (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedKernel {
    /// `core_pattern` before the first install, exact bytes as read.
    pub previous_pattern: Vec<u8>,
    /// `core_pipe_limit` before the first install, exact bytes as read.
    pub previous_pipe_limit: Vec<u8>,
    /// The pattern our last install wrote.
    pub installed_pattern: String,
}

/// What [`install_kernel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The pattern is set; what it replaced is saved. `stale_record` is true
    /// if an old record was dropped because someone had set another pattern
    /// since our last install.
    Installed {
        previous_pattern: Vec<u8>,
        pipe_limit: u32,
        stale_record: bool,
    },
    /// An earlier coroner pattern was replaced; the values saved before it
    /// are kept.
    Replaced { replaced: Vec<u8>, pipe_limit: u32 },
    /// The pattern was already in place: nothing written except the pipe
    /// limit if it was below the one asked for.
    AlreadyInstalled { pipe_limit: u32 },
}

impl fmt::Display for InstallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallOutcome::Installed {
                previous_pattern,
                pipe_limit,
                stale_record,
            } => {
                if *stale_record {
                    writeln!(
                        f,
                        "core_pattern was changed since the last install; the old record is replaced."
                    )?;
                }
                write!(
                    f,
                    "core_pattern set (was \"{}\"; saved for uninstall), core_pipe_limit {pipe_limit}.",
                    escape(trim_nl(previous_pattern))
                )
            }
            InstallOutcome::Replaced {
                replaced,
                pipe_limit,
            } => write!(
                f,
                "core_pattern updated (replaced the earlier coroner pattern \"{}\"; the values before it stay saved), core_pipe_limit {pipe_limit}.",
                escape(trim_nl(replaced))
            ),
            InstallOutcome::AlreadyInstalled { pipe_limit } => write!(
                f,
                "already installed; core_pattern unchanged, core_pipe_limit {pipe_limit}."
            ),
        }
    }
}

/// What [`uninstall_kernel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallOutcome {
    /// The previous values are back (shown without the trailing newline).
    Restored {
        pattern: Vec<u8>,
        pipe_limit: Vec<u8>,
    },
    /// Someone set another pattern since the install: it is left in place,
    /// and our record is dropped.
    ChangedSince { current: Vec<u8> },
    /// No record: nothing was installed (or it was already uninstalled).
    NothingToDo,
}

impl fmt::Display for UninstallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UninstallOutcome::Restored {
                pattern,
                pipe_limit,
            } => write!(
                f,
                "core_pattern restored to \"{}\", core_pipe_limit to {}.",
                escape(pattern),
                escape(pipe_limit)
            ),
            UninstallOutcome::ChangedSince { current } => write!(
                f,
                "core_pattern was changed since the install (now \"{}\"); left as is. Saved record dropped.",
                escape(trim_nl(current))
            ),
            UninstallOutcome::NothingToDo => {
                write!(f, "nothing to uninstall: no saved core_pattern record.")
            }
        }
    }
}

/// `<state>/kernel.saved`.
pub fn saved_path(state: &Path) -> PathBuf {
    state.join(SAVED_FILE)
}

/// Reads and writes the sysctl files; a trait so that tests can play a
/// kernel that refuses a pattern on read back.
trait SysctlIo {
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>>;
    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// The real files. Written in place with one `write` (a sysctl file cannot
/// be replaced by a rename), never created.
struct Files;

impl SysctlIo for Files {
    fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
        f.write_all(bytes)
    }
}

fn read_sysctl(io: &mut dyn SysctlIo, path: &Path) -> Result<Vec<u8>, KernelError> {
    io.read(path).map_err(|source| KernelError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_sysctl(io: &mut dyn SysctlIo, path: &Path, bytes: &[u8]) -> Result<(), KernelError> {
    io.write(path, bytes).map_err(|source| KernelError::Write {
        path: path.to_owned(),
        source,
    })
}

fn parse_limit(path: &Path, raw: &[u8]) -> Result<u32, KernelError> {
    let t = trim_nl(raw);
    let bad = |reason| KernelError::BadSysctlValue {
        path: path.to_owned(),
        value: escape(raw),
        reason,
    };
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return Err(bad("not a decimal number"));
    }
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("out of range"))
}

/// The state directory must be a real directory, not a symlink, not
/// group- or world-writable and, if `owner` is given, owned by it.
fn check_dir(dir: &Path, owner: Option<u32>) -> Result<(), KernelError> {
    let m = fs::symlink_metadata(dir).map_err(|source| KernelError::Read {
        path: dir.to_owned(),
        source,
    })?;
    check_meta(dir, &m, owner, "a directory", m.is_dir())
}

fn check_meta(
    path: &Path,
    m: &fs::Metadata,
    owner: Option<u32>,
    kind: &str,
    is_kind: bool,
) -> Result<(), KernelError> {
    let refuse = |reason: String| KernelError::Untrusted {
        path: path.to_owned(),
        reason,
    };
    if m.file_type().is_symlink() {
        return Err(refuse("is a symbolic link".into()));
    }
    if !is_kind {
        return Err(refuse(format!("not {kind}")));
    }
    if let Some(uid) = owner {
        if m.uid() != uid {
            return Err(refuse(format!(
                "owned by uid {}, must be owned by uid {uid}",
                m.uid()
            )));
        }
    }
    if m.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "group- or world-writable (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedToml {
    format: u32,
    previous_pattern: String,
    previous_pipe_limit: String,
    installed_pattern: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(path: &Path, key: &str, s: &str) -> Result<Vec<u8>, KernelError> {
    let bad = || KernelError::Saved {
        path: path.to_owned(),
        reason: format!("{key}: not an even-length lower-case hex string"),
    };
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

fn render_saved(s: &SavedKernel) -> String {
    format!(
        "# coroner: kernel.core_pattern and kernel.core_pipe_limit as they were before\n\
         # `coroner install --system`; uninstall writes them back. Values are the\n\
         # exact bytes, hex-encoded. Do not edit: the crash handler runs as root and\n\
         # chains to the previous pipe handler recorded here.\n\
         format = {SAVED_FORMAT}\n\
         previous_pattern = \"{}\"\n\
         # previous_pattern: {}\n\
         previous_pipe_limit = \"{}\"\n\
         # previous_pipe_limit: {}\n\
         installed_pattern = \"{}\"\n\
         # installed_pattern: {}\n",
        hex(&s.previous_pattern),
        escape(&s.previous_pattern),
        hex(&s.previous_pipe_limit),
        escape(&s.previous_pipe_limit),
        hex(s.installed_pattern.as_bytes()),
        escape(s.installed_pattern.as_bytes()),
    )
}

fn parse_saved(path: &Path, text: &[u8]) -> Result<SavedKernel, KernelError> {
    let bad = |reason: String| KernelError::Saved {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    let t: SavedToml = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if t.format != SAVED_FORMAT {
        return Err(bad(format!("unknown format {}", t.format)));
    }
    let installed = unhex(path, "installed_pattern", &t.installed_pattern)?;
    Ok(SavedKernel {
        previous_pattern: unhex(path, "previous_pattern", &t.previous_pattern)?,
        previous_pipe_limit: unhex(path, "previous_pipe_limit", &t.previous_pipe_limit)?,
        installed_pattern: String::from_utf8(installed)
            .map_err(|_| bad("installed_pattern: not UTF-8".into()))?,
    })
}

/// Reads the record without following a symlink, checking the opened file
/// itself (so it cannot be swapped between check and read).
fn read_saved(state: &Path, owner: Option<u32>) -> Result<Option<SavedKernel>, KernelError> {
    let path = saved_path(state);
    let rerr = |source| KernelError::Read {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(KernelError::Untrusted {
                path,
                reason: "is a symbolic link".into(),
            })
        }
        Err(e) => return Err(rerr(e)),
    };
    let m = file.metadata().map_err(rerr)?;
    check_meta(&path, &m, owner, "a regular file", m.is_file())?;
    let mut text = Vec::new();
    file.take(SAVED_MAX_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(rerr)?;
    if text.len() as u64 > SAVED_MAX_BYTES {
        return Err(KernelError::Saved {
            path,
            reason: format!("larger than {SAVED_MAX_BYTES} bytes"),
        });
    }
    parse_saved(&path, &text).map(Some)
}

/// The saved record, read the way the root handler must before it chains
/// to the previous handler recorded there: `None` if there is none (or no
/// state directory); an error, naming the path and why, if the state
/// directory or the record is a symbolic link, is not a directory / regular
/// file, is not owned by `expect_uid` (0 in the handler), or is group- or
/// world-writable. Directories above `state` are not checked: they are the
/// system's (`/var/lib`).
pub fn saved_state(state: &Path, expect_uid: u32) -> Result<Option<SavedKernel>, KernelError> {
    match fs::symlink_metadata(state) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        _ => check_dir(state, Some(expect_uid))?,
    }
    read_saved(state, Some(expect_uid))
}

fn config_write(e: ConfigError, path: &Path) -> KernelError {
    match e {
        ConfigError::Write { path, source } => KernelError::Write { path, source },
        other => KernelError::Write {
            path: path.to_owned(),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// Writes the record atomically (temp file + rename, via the installers'
/// `write_atomic`), then narrows it to 0600. Between the two it may be
/// 0644 for a moment: it is never writable by others, and what it holds is
/// readable by anyone in `/proc/sys/kernel` anyway.
fn write_saved(state: &Path, s: &SavedKernel) -> Result<(), KernelError> {
    let path = saved_path(state);
    write_atomic(&path, render_saved(s).as_bytes()).map_err(|e| config_write(e, &path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|source| {
        KernelError::Write {
            path: path.clone(),
            source,
        }
    })
}

fn remove_saved(state: &Path) -> Result<(), KernelError> {
    let path = saved_path(state);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KernelError::Write { path, source }),
    }
}

/// Creates the state directory 0700 if missing; an existing one must pass
/// [`check_dir`] (any owner: the installer may not run as root in tests).
fn prepare_state(state: &Path) -> Result<(), KernelError> {
    match fs::symlink_metadata(state) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .map_err(|source| KernelError::Write {
                path: state.to_owned(),
                source,
            }),
        _ => check_dir(state, None),
    }
}

/// Sets `core_pattern` to `pattern` and `core_pipe_limit` to at least
/// `pipe_limit` (so `/proc/PID` of the crashing process stays valid while
/// the handler runs), saving the previous values in `<state>/kernel.saved`
/// (the state directory is created 0700 if missing). See the module docs
/// for repeated installs. The pattern is read back; if the kernel did not
/// take it, the values from before this call are put back and
/// [`KernelError::NotTaken`] says what happened.
pub fn install_kernel(
    sys: &SysctlPaths,
    state: &Path,
    pattern: &str,
    pipe_limit: u32,
) -> Result<InstallOutcome, KernelError> {
    install_with(&mut Files, sys, state, pattern, pipe_limit)
}

fn check_install_pattern(pattern: &str) -> Result<(), KernelError> {
    let bad = |reason| KernelError::BadPattern {
        pattern: escape(pattern.as_bytes()),
        reason,
    };
    if pattern.is_empty() {
        return Err(bad("empty"));
    }
    if pattern.bytes().any(|b| b == b'\n' || b == 0) {
        return Err(bad("contains a newline or NUL (the kernel stops there)"));
    }
    check_length(pattern.to_owned()).map(|_| ())
}

fn install_with(
    io: &mut dyn SysctlIo,
    sys: &SysctlPaths,
    state: &Path,
    pattern: &str,
    pipe_limit: u32,
) -> Result<InstallOutcome, KernelError> {
    check_install_pattern(pattern)?;
    let pattern_path = sys.core_pattern();
    let limit_path = sys.core_pipe_limit();
    let current = read_sysctl(io, &pattern_path)?;
    let current_limit_raw = read_sysctl(io, &limit_path)?;
    let current_limit = parse_limit(&limit_path, &current_limit_raw)?;
    let new_limit = current_limit.max(pipe_limit);
    prepare_state(state)?;
    let old_record = read_saved(state, None)?;
    let cur = trim_nl(&current);

    enum Plan {
        Fresh { stale: bool },
        Replace,
        Same,
    }
    let plan = match &old_record {
        Some(r) if cur == r.installed_pattern.as_bytes() || is_handler_pattern(cur) => {
            if cur == pattern.as_bytes() {
                Plan::Same
            } else {
                Plan::Replace
            }
        }
        Some(_) => Plan::Fresh { stale: true },
        None if is_handler_pattern(cur) || cur == pattern.as_bytes() => {
            return Err(KernelError::UnknownPrevious {
                path: pattern_path,
                record: saved_path(state),
                current: escape(cur),
            })
        }
        None => Plan::Fresh { stale: false },
    };
    let record = match (&plan, &old_record) {
        (Plan::Fresh { .. }, _) | (_, None) => SavedKernel {
            previous_pattern: current.clone(),
            previous_pipe_limit: current_limit_raw.clone(),
            installed_pattern: pattern.to_owned(),
        },
        (_, Some(r)) => SavedKernel {
            installed_pattern: pattern.to_owned(),
            ..r.clone()
        },
    };
    if old_record.as_ref() != Some(&record) {
        write_saved(state, &record)?;
    }
    if new_limit != current_limit {
        if let Err(e) = write_sysctl(io, &limit_path, new_limit.to_string().as_bytes()) {
            // Best effort: a record without its pattern is harmless (the
            // next uninstall sees another pattern and drops it).
            let _ = restore_record(state, old_record.as_ref());
            return Err(e);
        }
    }
    if let Plan::Same = plan {
        return Ok(InstallOutcome::AlreadyInstalled {
            pipe_limit: new_limit,
        });
    }
    let why = match io.write(&pattern_path, pattern.as_bytes()) {
        Err(e) => Some(format!("write failed: {e}")),
        Ok(()) => match io.read(&pattern_path) {
            Err(e) => Some(format!("reading it back failed: {e}")),
            Ok(back) if trim_nl(&back) != pattern.as_bytes() => {
                Some(format!("read back \"{}\"", escape(trim_nl(&back))))
            }
            Ok(_) => None,
        },
    };
    if let Some(why) = why {
        // Put back what was there before this call, in reverse order.
        let mut failed = Vec::new();
        if let Err(e) = write_sysctl(io, &pattern_path, cur) {
            failed.push(e.to_string());
        }
        if new_limit != current_limit {
            if let Err(e) = write_sysctl(io, &limit_path, trim_nl(&current_limit_raw)) {
                failed.push(e.to_string());
            }
        }
        if let Err(e) = restore_record(state, old_record.as_ref()) {
            failed.push(e.to_string());
        }
        let rollback = if failed.is_empty() {
            "the earlier values are restored".to_owned()
        } else {
            format!("ROLLBACK FAILED: {}", failed.join("; "))
        };
        return Err(KernelError::NotTaken {
            path: pattern_path,
            wrote: escape(pattern.as_bytes()),
            why,
            rollback,
        });
    }
    Ok(match plan {
        Plan::Fresh { stale } => InstallOutcome::Installed {
            previous_pattern: current,
            pipe_limit: new_limit,
            stale_record: stale,
        },
        _ => InstallOutcome::Replaced {
            replaced: current,
            pipe_limit: new_limit,
        },
    })
}

/// Puts the record back as it was before an install that failed.
fn restore_record(state: &Path, old: Option<&SavedKernel>) -> Result<(), KernelError> {
    match old {
        Some(r) => write_saved(state, r),
        None => remove_saved(state),
    }
}

/// Undoes [`install_kernel`]: if `core_pattern` still holds the pattern the
/// record says we installed, the previous pattern and pipe limit are
/// written back (without their trailing newline; the kernel stores the
/// same value either way) and the record is removed. If someone set another
/// pattern since, that value stays, the record is removed, and the outcome
/// says so. No record: [`UninstallOutcome::NothingToDo`].
pub fn uninstall_kernel(sys: &SysctlPaths, state: &Path) -> Result<UninstallOutcome, KernelError> {
    uninstall_with(&mut Files, sys, state)
}

fn uninstall_with(
    io: &mut dyn SysctlIo,
    sys: &SysctlPaths,
    state: &Path,
) -> Result<UninstallOutcome, KernelError> {
    match fs::symlink_metadata(state) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(UninstallOutcome::NothingToDo),
        _ => check_dir(state, None)?,
    }
    let Some(record) = read_saved(state, None)? else {
        return Ok(UninstallOutcome::NothingToDo);
    };
    let pattern_path = sys.core_pattern();
    let current = read_sysctl(io, &pattern_path)?;
    if trim_nl(&current) != record.installed_pattern.as_bytes() {
        remove_saved(state)?;
        return Ok(UninstallOutcome::ChangedSince { current });
    }
    let pattern = trim_nl(&record.previous_pattern);
    let limit = trim_nl(&record.previous_pipe_limit);
    write_sysctl(io, &pattern_path, pattern)?;
    write_sysctl(io, &sys.core_pipe_limit(), limit)?;
    remove_saved(state)?;
    Ok(UninstallOutcome::Restored {
        pattern: pattern.to_vec(),
        pipe_limit: limit.to_vec(),
    })
}

// ---------------------------------------------------------------------------
// Chaining to the previous handler
// ---------------------------------------------------------------------------

/// The values the kernel would have given the previous handler, for
/// expanding its pattern ([`chain_command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFields<'a> {
    /// `%P`
    pub pid: u32,
    /// `%p`
    pub ns_pid: u32,
    /// `%I`
    pub tid: u32,
    /// `%i`
    pub ns_tid: u32,
    /// `%u`
    pub uid: u32,
    /// `%g`
    pub gid: u32,
    /// `%s`
    pub signal: i32,
    /// `%t`
    pub time: i64,
    /// `%h` (escaped as the kernel does: `/` becomes `!`).
    pub host: &'a OsStr,
    /// `%e` (escaped likewise).
    pub comm: &'a OsStr,
    /// `%E` (the path with `/` as `!`) and `%f` (its last component).
    /// `None` when unknown: both then give `<comm> (path unknown)`, as the
    /// kernel does for a process without an executable.
    pub exe_path: Option<&'a Path>,
    /// `%d`
    pub dumpable: u8,
    /// `%c`
    pub core_limit: &'a str,
    /// `%F`: the number of the pidfd the chained child gets. `None`: a
    /// pattern using `%F` cannot be chained.
    pub pidfd: Option<i32>,
    /// `%C`: the CPU the process crashed on. `None`: a pattern using `%C`
    /// cannot be chained.
    pub cpu: Option<u32>,
}

impl HandlerArgs {
    /// The [`ChainFields`] for these arguments, with the executable's path
    /// (read by the handler through the pidfd) and the pidfd number the
    /// chained child will have.
    pub fn chain_fields<'a>(
        &'a self,
        exe_path: Option<&'a Path>,
        pidfd: Option<i32>,
    ) -> ChainFields<'a> {
        ChainFields {
            pid: self.pid,
            ns_pid: self.ns_pid,
            tid: self.tid,
            ns_tid: self.ns_tid,
            uid: self.uid,
            gid: self.gid,
            signal: self.signal,
            time: self.time,
            host: &self.host,
            comm: &self.comm,
            exe_path,
            dumpable: self.dumpable,
            core_limit: &self.core_limit,
            pidfd,
            cpu: None,
        }
    }
}

/// Appends `value` the way the kernel's `cn_esc_printf` does for `%e`,
/// `%E`, `%f` and `%h`: `.` and `..` start with `!`, an empty value is `!`,
/// every `/` is `!`.
fn push_escaped(out: &mut Vec<u8>, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(value);
    if value == b"." || value == b".." {
        out[start] = b'!';
    }
    if out.len() == start {
        out.push(b'!');
    }
    for b in &mut out[start..] {
        if *b == b'/' {
            *b = b'!';
        }
    }
}

/// Expands the specifiers in one word of a pipe command.
fn expand_word(word: &[u8], f: &ChainFields<'_>, pattern: &[u8]) -> Result<Vec<u8>, KernelError> {
    let unsupported = |specifier: String, reason: &'static str| KernelError::ChainUnsupported {
        specifier,
        pattern: escape(pattern),
        reason,
    };
    let mut out = Vec::with_capacity(word.len());
    let mut bytes = word.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let Some(c) = bytes.next() else {
            return Err(unsupported("%".into(), "'%' at the end of a word"));
        };
        let exe_unknown = || {
            let mut v = f.comm.as_bytes().to_vec();
            v.extend_from_slice(b" (path unknown)");
            v
        };
        match c {
            b'%' => out.push(b'%'),
            b'p' => out.extend(f.ns_pid.to_string().bytes()),
            b'P' => out.extend(f.pid.to_string().bytes()),
            b'i' => out.extend(f.ns_tid.to_string().bytes()),
            b'I' => out.extend(f.tid.to_string().bytes()),
            b'u' => out.extend(f.uid.to_string().bytes()),
            b'g' => out.extend(f.gid.to_string().bytes()),
            b'd' => out.extend(f.dumpable.to_string().bytes()),
            b's' => out.extend(f.signal.to_string().bytes()),
            b't' => out.extend(f.time.to_string().bytes()),
            b'c' => out.extend(f.core_limit.bytes()),
            b'h' => push_escaped(&mut out, f.host.as_bytes()),
            b'e' => push_escaped(&mut out, f.comm.as_bytes()),
            b'E' => match f.exe_path {
                Some(p) => push_escaped(&mut out, p.as_os_str().as_bytes()),
                None => push_escaped(&mut out, &exe_unknown()),
            },
            b'f' => match f.exe_path {
                Some(p) => {
                    let name = p.as_os_str().as_bytes();
                    let name = name.rsplit(|b| *b == b'/').next().unwrap_or_default();
                    push_escaped(&mut out, name)
                }
                None => push_escaped(&mut out, &exe_unknown()),
            },
            b'F' => match f.pidfd {
                Some(fd) => out.extend(fd.to_string().bytes()),
                None => return Err(unsupported("%F".into(), "no pidfd to pass")),
            },
            b'C' => match f.cpu {
                Some(cpu) => out.extend(cpu.to_string().bytes()),
                None => return Err(unsupported("%C".into(), "the CPU is not known")),
            },
            other => {
                return Err(unsupported(
                    format!("%{}", escape(&[other])),
                    "unknown specifier",
                ))
            }
        }
    }
    Ok(out)
}

/// [`chain_command`] without the loop check.
fn expand_pipe(previous: &[u8], f: &ChainFields<'_>) -> Result<Option<Vec<OsString>>, KernelError> {
    let prev = trim_nl(previous);
    let Some(command) = prev.strip_prefix(b"|") else {
        return Ok(None);
    };
    let words: Vec<&[u8]> = kernel_words(command).collect();
    let program_err = |program: &[u8], reason| KernelError::ChainProgram {
        program: escape(program),
        pattern: escape(prev),
        reason,
    };
    let Some(program) = words.first() else {
        return Err(program_err(b"", "empty command"));
    };
    if !program.starts_with(b"/") {
        return Err(program_err(program, "not an absolute path"));
    }
    if program.contains(&b'%') {
        return Err(program_err(
            program,
            "contains a '%' specifier (the crashing process would choose the program)",
        ));
    }
    words
        .iter()
        .map(|w| expand_word(w, f, prev).map(OsString::from_vec))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The argv to run the previous handler with, expanded as the kernel would
/// have: the pipe command (`|prog args`, one trailing newline ignored) is
/// split on white space first, then each word's specifiers are replaced
/// (`%P %p %I %i %u %g %s %t %h %e %E %f %d %c %F %C`, `%%` for `%`;
/// `%h %e %E %f` escaped as the kernel does). An unknown specifier, a `%`
/// ending a word, or `%F` / `%C` without a value is an error naming it, so
/// the handler can log why it does not chain.
///
/// `Ok(None)`: the previous pattern is not a pipe. A file pattern (`core`,
/// `/var/crash/core.%p`) is not honoured: writing a core file as root to a
/// path the crashing process influences (its working directory, its
/// `%e`) is exactly apport's CVE-2015-1324 class, so the handler refuses.
/// A socket pattern (`@`, `@@`) is not chained either.
///
/// Errors, beyond specifiers: the previous pattern is a coroner handler
/// (chaining would loop), or its program is not an absolute path or holds
/// a `%` (the crashing process would choose what root executes).
pub fn chain_command(
    previous: &[u8],
    f: &ChainFields<'_>,
) -> Result<Option<Vec<OsString>>, KernelError> {
    if is_handler_pattern(previous) {
        return Err(KernelError::ChainLoop {
            pattern: escape(trim_nl(previous)),
        });
    }
    expand_pipe(previous, f)
}

#[cfg(test)]
mod tests {

    #[test]
    fn socket_support_follows_the_kernel_release() {
        assert_eq!(socket_support("6.18.44-fc-v595"), SocketSupport::Request);
        assert_eq!(socket_support("6.17.0"), SocketSupport::Request);
        assert_eq!(socket_support("7.0.1"), SocketSupport::Request);
        assert_eq!(socket_support("6.16.8-arch1-1"), SocketSupport::Plain);
        assert_eq!(socket_support("6.15.2"), SocketSupport::None);
        assert_eq!(socket_support("5.10.0-30-amd64"), SocketSupport::None);
        assert_eq!(socket_support("garbage"), SocketSupport::None);
        assert_eq!(socket_support(""), SocketSupport::None);
    }

    #[test]
    fn a_listening_socket_is_found_in_proc_net_unix() {
        let text = b"Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01 1234 /run/coroner/coredump.socket\n\
0000000000000000: 00000003 00000000 00000000 0001 03 1235 /run/other.sock\n\
0000000000000000: 00000002 00000000 00000000 0001 01 1236 /run/bound-not-listening\n";
        assert!(unix_listening(
            text,
            Path::new("/run/coroner/coredump.socket")
        ));
        assert!(!unix_listening(text, Path::new("/run/other.sock")));
        assert!(!unix_listening(text, Path::new("/run/bound-not-listening")));
        assert!(!unix_listening(text, Path::new("/run/coroner")));
        assert!(!unix_listening(
            b"",
            Path::new("/run/coroner/coredump.socket")
        ));
    }
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const EXE: &str = "/usr/libexec/coroner/coroner";

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// Expands our handler pattern as the kernel does (split on spaces,
    /// then replace each specifier in each word), independently of the
    /// module's own expander.
    fn expand_by_hand(pattern: &str, values: &[(&str, &[u8])]) -> Vec<OsString> {
        let command = pattern.strip_prefix('|').unwrap();
        command
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| {
                let v = values
                    .iter()
                    .find(|(spec, _)| *spec == w)
                    .map_or(w.as_bytes(), |(_, v)| v);
                OsString::from_vec(v.to_vec())
            })
            .collect()
    }

    fn sample_values() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("%P", b"4242"),
            ("%I", b"4243"),
            ("%s", b"11"),
            ("%t", b"1700000000"),
            ("%d", b"1"),
            ("%F", b"3"),
            ("%u", b"1000"),
            ("%g", b"100"),
            ("%c", b"18446744073709551615"),
            ("%h", b"build host"),
            ("%p", b"7"),
            ("%i", b"8"),
            ("%e", b"my app \xff/"),
        ]
    }

    #[test]
    fn handler_pattern_has_the_fields_in_order() {
        assert_eq!(
            handler_pattern(Path::new(EXE), None).unwrap(),
            "|/usr/libexec/coroner/coroner handler %P %I %s %t %d %F %u %g %c %h %p %i %e"
        );
        assert_eq!(
            handler_pattern(
                Path::new("/usr/bin/coroner"),
                Some(Path::new("/etc/c.toml"))
            )
            .unwrap(),
            "|/usr/bin/coroner handler --config=/etc/c.toml %P %I %s %t %d %F %u %g %c %h %p %i %e"
        );
        assert_eq!(HANDLER_SPECIFIERS.split(' ').count(), HANDLER_FIELD_COUNT);
    }

    #[test]
    fn handler_pattern_refuses_bad_paths_and_lengths() {
        for (coroner, config) in [
            ("relative/coroner", None),
            ("/opt/my tools/coroner", None),
            ("/opt/100%/coroner", None),
            ("/opt/tab\tcoroner", None),
            ("/usr/bin/coroner", Some("etc/c.toml")),
            ("/usr/bin/coroner", Some("/etc/%e.toml")),
        ] {
            let e = handler_pattern(Path::new(coroner), config.map(Path::new)).unwrap_err();
            match &e {
                KernelError::BadPath { path, .. } => {
                    assert!(
                        path == Path::new(coroner) || Some(path.as_path()) == config.map(Path::new),
                        "{e}"
                    );
                }
                other => panic!("{coroner}: {other}"),
            }
        }
        // 127 bytes is the most the kernel keeps.
        let fixed = "|/ handler ".len() + HANDLER_SPECIFIERS.len();
        let fits = format!("/{}", "c".repeat(CORE_PATTERN_MAX - fixed));
        assert_eq!(
            handler_pattern(Path::new(&fits), None).unwrap().len(),
            CORE_PATTERN_MAX
        );
        let long = format!("{fits}c");
        let e = handler_pattern(Path::new(&long), None).unwrap_err();
        assert!(
            matches!(
                e,
                KernelError::PatternTooLong {
                    len: 128,
                    max: 127,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("128 bytes"), "{e}");
    }

    #[test]
    fn socket_patterns() {
        assert_eq!(
            socket_pattern(Path::new("/run/coroner/core.sock"), false).unwrap(),
            "@/run/coroner/core.sock"
        );
        assert_eq!(
            socket_pattern(Path::new("/run/coroner/core.sock"), true).unwrap(),
            "@@/run/coroner/core.sock"
        );
        assert!(matches!(
            socket_pattern(Path::new("run/core.sock"), true),
            Err(KernelError::BadPath { .. })
        ));
        assert!(matches!(
            socket_pattern(Path::new("/run/a b"), false),
            Err(KernelError::BadPath { .. })
        ));
        let long = format!("/{}", "s".repeat(SOCKET_PATH_MAX));
        assert!(matches!(
            socket_pattern(Path::new(&long), false),
            Err(KernelError::BadPath { .. })
        ));
    }

    #[test]
    fn handler_args_round_trip_through_the_pattern() {
        let pattern =
            handler_pattern(Path::new(EXE), Some(Path::new("/etc/coroner/c.toml"))).unwrap();
        let argv = expand_by_hand(&pattern, &sample_values());
        assert_eq!(argv[0], EXE);
        assert_eq!(argv[1], "handler");
        let a = parse_handler_args(&argv[2..]).unwrap();
        assert_eq!(
            a,
            HandlerArgs {
                config: Some(PathBuf::from("/etc/coroner/c.toml")),
                pid: 4242,
                tid: 4243,
                signal: 11,
                time: 1_700_000_000,
                dumpable: 1,
                pidfd: Some(3),
                uid: 1000,
                gid: 100,
                core_limit: "18446744073709551615".into(),
                host: "build host".into(),
                ns_pid: 7,
                ns_tid: 8,
                comm: OsString::from_vec(b"my app \xff/".to_vec()),
            }
        );
        let plain = handler_pattern(Path::new(EXE), None).unwrap();
        let argv = expand_by_hand(&plain, &sample_values());
        assert_eq!(parse_handler_args(&argv[2..]).unwrap().config, None);
    }

    #[test]
    fn handler_args_without_pidfd_support() {
        let mut v = sample_values();
        for missing in [&b""[..], b"%F"] {
            v[5].1 = missing;
            let plain = handler_pattern(Path::new(EXE), None).unwrap();
            let argv = expand_by_hand(&plain, &v);
            assert_eq!(parse_handler_args(&argv[2..]).unwrap().pidfd, None);
        }
    }

    #[test]
    fn handler_args_join_a_split_comm_from_old_kernels() {
        let args = os(&[
            "1", "2", "6", "3", "0", "3", "0", "0", "0", "h", "1", "2", "Web", "Content",
        ]);
        assert_eq!(parse_handler_args(&args).unwrap().comm, "Web Content");
    }

    #[test]
    fn handler_args_are_strict() {
        let good = [
            "1", "2", "6", "3", "0", "3", "0", "0", "0", "h", "1", "2", "c",
        ];
        assert!(parse_handler_args(&os(&good)).is_ok());
        let cases: &[(usize, &str, &str)] = &[
            (0, "0", "%P (pid)"),
            (0, "+5", "%P (pid)"),
            (1, " 2", "%I (tid)"),
            (2, "0", "%s (signal)"),
            (2, "-11", "%s (signal)"),
            (2, "999", "%s (signal)"),
            (3, "1e9", "%t (time)"),
            (4, "4", "%d (dump mode)"),
            (5, "three", "%F (pidfd)"),
            (5, "-1", "%F (pidfd)"),
            (6, "4294967296", "%u (uid)"),
            (7, "0x10", "%g (gid)"),
            (8, "18446744073709551616", "%c (core limit)"),
            (8, "", "%c (core limit)"),
            (10, "x", "%p (namespace pid)"),
            (11, "0", "%i (namespace tid)"),
        ];
        for (i, value, field) in cases {
            let mut args = os(&good);
            args[*i] = value.into();
            match parse_handler_args(&args) {
                Err(KernelError::BadHandlerArg {
                    field: f, value: v, ..
                }) => {
                    assert_eq!((f, v.as_str()), (*field, *value), "arg {i}");
                }
                other => panic!("arg {i} = {value:?}: {other:?}"),
            }
        }
        let mut hostile = os(&good);
        hostile[0] = OsString::from_vec(b"\xff\n1".to_vec());
        let e = parse_handler_args(&hostile).unwrap_err();
        assert!(e.to_string().contains("\\xff\\n1"), "{e}");
        assert!(matches!(
            parse_handler_args(&os(&good[..12])),
            Err(KernelError::MissingHandlerArgs {
                expected: 13,
                got: 12
            })
        ));
        let mut opt = os(&["--verbose"]);
        opt.extend(os(&good));
        assert!(matches!(
            parse_handler_args(&opt),
            Err(KernelError::UnknownHandlerOption { .. })
        ));
        let mut rel = os(&["--config=etc/c.toml"]);
        rel.extend(os(&good));
        assert!(matches!(
            parse_handler_args(&rel),
            Err(KernelError::BadHandlerArg {
                field: "--config",
                ..
            })
        ));
        assert!(parse_handler_args(&[]).is_err());
    }

    #[test]
    fn recognises_handler_patterns() {
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        assert!(is_handler_pattern(ours.as_bytes()));
        assert!(is_handler_pattern(format!("{ours}\n").as_bytes()));
        let moved = handler_pattern(Path::new("/opt/x/bin/crash-tool"), None).unwrap();
        assert!(is_handler_pattern(moved.as_bytes()));
        assert!(is_handler_pattern(b"|/old/coroner handler %P %i %s %t %e"));
        assert!(!is_handler_pattern(
            b"|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"
        ));
        assert!(!is_handler_pattern(b"core"));
        assert!(!is_handler_pattern(b"|/opt/other handler %P"));
    }

    // ----- install / uninstall -----

    struct K {
        _dir: tempfile::TempDir,
        sys: SysctlPaths,
        state: PathBuf,
    }

    /// A fake `/proc/sys/kernel` holding `pattern` and `limit` as the
    /// kernel shows them (with a trailing newline), and a state dir path
    /// that does not exist yet.
    fn kernel(pattern: &[u8], limit: &[u8]) -> K {
        let dir = tempfile::tempdir().unwrap();
        let sysdir = dir.path().join("sys");
        fs::create_dir(&sysdir).unwrap();
        let sys = SysctlPaths { dir: sysdir };
        fs::write(sys.core_pattern(), pattern).unwrap();
        fs::write(sys.core_pipe_limit(), limit).unwrap();
        let state = dir.path().join("var/lib/coroner");
        K {
            _dir: dir,
            sys,
            state,
        }
    }

    fn pattern_of(k: &K) -> Vec<u8> {
        fs::read(k.sys.core_pattern()).unwrap()
    }

    fn limit_of(k: &K) -> Vec<u8> {
        fs::read(k.sys.core_pipe_limit()).unwrap()
    }

    fn uid() -> u32 {
        fs::metadata(std::env::temp_dir()).unwrap().uid()
    }

    fn my_uid(k: &K) -> u32 {
        fs::metadata(&k.state).unwrap().uid()
    }

    const SYSTEMD: &[u8] = b"|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h %d %F\n";

    #[test]
    fn install_saves_and_uninstall_restores_byte_for_byte() {
        for (pattern, limit) in [
            (SYSTEMD, &b"16\n"[..]),
            (b"core\n", b"0\n"),
            (b"/var/crash/core.%e.%p", b"0"),
            (b"|/opt/x \xff\x01 %p\n\n", b"2\n"),
            (b"\n", b"0\n"),
        ] {
            let k = kernel(pattern, limit);
            let ours = handler_pattern(Path::new(EXE), None).unwrap();
            let out = install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
            assert!(
                matches!(&out, InstallOutcome::Installed { previous_pattern, stale_record: false, .. } if previous_pattern == pattern),
                "{out:?}"
            );
            assert_eq!(pattern_of(&k), ours.as_bytes());
            let want_limit = parse_limit(Path::new("l"), limit).unwrap().max(4);
            assert_eq!(trim_nl(&limit_of(&k)), want_limit.to_string().as_bytes());
            let meta = fs::metadata(&k.state).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.mode() & 0o777, 0o700);
            let saved_meta = fs::metadata(saved_path(&k.state)).unwrap();
            assert_eq!(saved_meta.mode() & 0o777, 0o600);
            let saved = saved_state(&k.state, my_uid(&k)).unwrap().unwrap();
            assert_eq!(
                saved,
                SavedKernel {
                    previous_pattern: pattern.to_vec(),
                    previous_pipe_limit: limit.to_vec(),
                    installed_pattern: ours.clone(),
                }
            );
            let out = uninstall_kernel(&k.sys, &k.state).unwrap();
            assert_eq!(
                out,
                UninstallOutcome::Restored {
                    pattern: trim_nl(pattern).to_vec(),
                    pipe_limit: trim_nl(limit).to_vec(),
                }
            );
            assert_eq!(pattern_of(&k), trim_nl(pattern));
            assert_eq!(limit_of(&k), trim_nl(limit));
            assert!(!saved_path(&k.state).exists());
            assert_eq!(
                uninstall_kernel(&k.sys, &k.state).unwrap(),
                UninstallOutcome::NothingToDo
            );
        }
    }

    #[test]
    fn install_never_lowers_the_pipe_limit() {
        let k = kernel(b"core\n", b"64\n");
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        let out = install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
        assert!(
            matches!(out, InstallOutcome::Installed { pipe_limit: 64, .. }),
            "{out:?}"
        );
        assert_eq!(limit_of(&k), b"64\n", "not rewritten");
    }

    #[test]
    fn second_install_is_a_no_op_and_keeps_the_original_record() {
        let k = kernel(SYSTEMD, b"16\n");
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
        // The kernel shows our pattern with a newline.
        fs::write(k.sys.core_pattern(), format!("{ours}\n")).unwrap();
        let before = fs::read(saved_path(&k.state)).unwrap();
        let out = install_kernel(&k.sys, &k.state, &ours, 32).unwrap();
        assert_eq!(out, InstallOutcome::AlreadyInstalled { pipe_limit: 32 });
        assert_eq!(pattern_of(&k), format!("{ours}\n").as_bytes());
        assert_eq!(limit_of(&k), b"32");
        assert_eq!(fs::read(saved_path(&k.state)).unwrap(), before);
        assert!(out.to_string().contains("already installed"));
        uninstall_kernel(&k.sys, &k.state).unwrap();
        assert_eq!(pattern_of(&k), trim_nl(SYSTEMD));
        assert_eq!(limit_of(&k), b"16");
    }

    #[test]
    fn a_moved_coroner_is_replaced_keeping_the_previous_values() {
        let k = kernel(b"core\n", b"0\n");
        let old = handler_pattern(Path::new("/usr/bin/coroner"), None).unwrap();
        install_kernel(&k.sys, &k.state, &old, 4).unwrap();
        let new = handler_pattern(Path::new("/usr/local/bin/coroner"), None).unwrap();
        let out = install_kernel(&k.sys, &k.state, &new, 4).unwrap();
        assert!(
            matches!(&out, InstallOutcome::Replaced { replaced, .. } if replaced == old.as_bytes()),
            "{out:?}"
        );
        assert_eq!(pattern_of(&k), new.as_bytes());
        let saved = saved_state(&k.state, my_uid(&k)).unwrap().unwrap();
        assert_eq!(saved.previous_pattern, b"core\n");
        assert_eq!(saved.previous_pipe_limit, b"0\n");
        assert_eq!(saved.installed_pattern, new);
        uninstall_kernel(&k.sys, &k.state).unwrap();
        assert_eq!(pattern_of(&k), b"core");
        assert_eq!(limit_of(&k), b"0");
    }

    #[test]
    fn a_coroner_pattern_without_a_record_is_not_saved_as_previous() {
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        let k = kernel(format!("{ours}\n").as_bytes(), b"4\n");
        let e = install_kernel(&k.sys, &k.state, &ours, 4).unwrap_err();
        assert!(matches!(e, KernelError::UnknownPrevious { .. }), "{e}");
        assert!(!saved_path(&k.state).exists());
        let sock = socket_pattern(Path::new("/run/coroner.sock"), true).unwrap();
        let k = kernel(format!("{sock}\n").as_bytes(), b"4\n");
        assert!(matches!(
            install_kernel(&k.sys, &k.state, &sock, 4),
            Err(KernelError::UnknownPrevious { .. })
        ));
    }

    #[test]
    fn install_over_a_foreign_change_takes_a_fresh_record() {
        let k = kernel(b"core\n", b"0\n");
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
        fs::write(k.sys.core_pattern(), SYSTEMD).unwrap();
        let out = install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
        assert!(
            matches!(
                out,
                InstallOutcome::Installed {
                    stale_record: true,
                    ..
                }
            ),
            "{out:?}"
        );
        assert!(out.to_string().contains("old record is replaced"), "{out}");
        uninstall_kernel(&k.sys, &k.state).unwrap();
        assert_eq!(pattern_of(&k), trim_nl(SYSTEMD));
    }

    #[test]
    fn uninstall_leaves_someone_elses_pattern_alone() {
        let k = kernel(b"core\n", b"0\n");
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        install_kernel(&k.sys, &k.state, &ours, 4).unwrap();
        fs::write(k.sys.core_pattern(), SYSTEMD).unwrap();
        let out = uninstall_kernel(&k.sys, &k.state).unwrap();
        assert_eq!(
            out,
            UninstallOutcome::ChangedSince {
                current: SYSTEMD.to_vec()
            }
        );
        assert!(out.to_string().contains("left as is"), "{out}");
        assert_eq!(pattern_of(&k), SYSTEMD);
        assert_eq!(limit_of(&k), b"4");
        assert!(!saved_path(&k.state).exists());
    }

    #[test]
    fn install_refuses_unwritable_patterns_without_writing() {
        let k = kernel(b"core\n", b"0\n");
        for bad in ["", "|/x\n%p", "|/x\0", &"c".repeat(128)] {
            assert!(install_kernel(&k.sys, &k.state, bad, 4).is_err(), "{bad:?}");
        }
        assert_eq!(pattern_of(&k), b"core\n");
        assert!(!k.state.exists());
        fs::write(k.sys.core_pipe_limit(), b"lots\n").unwrap();
        let e = install_kernel(&k.sys, &k.state, "core", 4).unwrap_err();
        assert!(
            matches!(&e, KernelError::BadSysctlValue { value, .. } if value == "lots\\n"),
            "{e}"
        );
        let missing = SysctlPaths {
            dir: k.sys.dir.join("nope"),
        };
        assert!(matches!(
            install_kernel(&missing, &k.state, "core", 4),
            Err(KernelError::Read { .. })
        ));
    }

    /// Plays a kernel (6.16.8+) that accepts `refuse` on write and fails
    /// the read afterwards, or one that fails the write itself.
    struct Refusing {
        refuse: Vec<u8>,
        on_write: bool,
        pending: bool,
    }

    impl SysctlIo for Refusing {
        fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
            if self.pending && path.ends_with("core_pattern") {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Files.read(path)
        }

        fn write(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            let refused = path.ends_with("core_pattern") && bytes == self.refuse;
            if refused && self.on_write {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.pending = refused;
            Files.write(path, bytes)
        }
    }

    #[test]
    fn a_pattern_refused_on_read_back_is_rolled_back() {
        for on_write in [false, true] {
            let k = kernel(SYSTEMD, b"2\n");
            let sock = socket_pattern(Path::new("/run/coroner.sock"), true).unwrap();
            let mut io = Refusing {
                refuse: sock.clone().into_bytes(),
                on_write,
                pending: false,
            };
            let e = install_with(&mut io, &k.sys, &k.state, &sock, 16).unwrap_err();
            match &e {
                KernelError::NotTaken { why, rollback, .. } => {
                    assert!(
                        why.contains(if on_write {
                            "write failed"
                        } else {
                            "reading it back"
                        }),
                        "{e}"
                    );
                    assert_eq!(rollback, "the earlier values are restored");
                }
                other => panic!("{other}"),
            }
            assert_eq!(pattern_of(&k), trim_nl(SYSTEMD));
            assert_eq!(limit_of(&k), b"2");
            assert!(!saved_path(&k.state).exists());
        }
    }

    #[test]
    fn a_failed_replace_keeps_the_earlier_record() {
        let k = kernel(b"core\n", b"0\n");
        let old = handler_pattern(Path::new("/usr/bin/coroner"), None).unwrap();
        install_kernel(&k.sys, &k.state, &old, 4).unwrap();
        let record = fs::read(saved_path(&k.state)).unwrap();
        let new = handler_pattern(Path::new("/opt/coroner"), None).unwrap();
        let mut io = Refusing {
            refuse: new.clone().into_bytes(),
            on_write: false,
            pending: false,
        };
        assert!(install_with(&mut io, &k.sys, &k.state, &new, 4).is_err());
        assert_eq!(pattern_of(&k), old.as_bytes());
        assert_eq!(fs::read(saved_path(&k.state)).unwrap(), record);
    }

    #[test]
    fn saved_state_refuses_untrusted_records() {
        let k = kernel(b"core\n", b"0\n");
        assert_eq!(saved_state(&k.state, uid()).unwrap(), None, "no state dir");
        install_kernel(&k.sys, &k.state, "|/usr/bin/coroner handler %P", 4).unwrap();
        let me = my_uid(&k);
        assert!(saved_state(&k.state, me).unwrap().is_some());
        let refused = |state: &Path, uid: u32, what: &str| match saved_state(state, uid) {
            Err(KernelError::Untrusted { path, reason }) => {
                assert!(reason.contains(what), "{} {reason}", path.display());
                path
            }
            other => panic!("{what}: {other:?}"),
        };
        assert_eq!(
            refused(&k.state, me.wrapping_add(1), "owned by uid"),
            k.state
        );
        let file = saved_path(&k.state);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o620)).unwrap();
        assert_eq!(refused(&k.state, me, "group- or world-writable"), file);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o602)).unwrap();
        assert_eq!(refused(&k.state, me, "group- or world-writable"), file);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&k.state, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(refused(&k.state, me, "group- or world-writable"), k.state);
        fs::set_permissions(&k.state, fs::Permissions::from_mode(0o700)).unwrap();
        // A symlinked record and a symlinked state directory.
        let elsewhere = k.state.with_file_name("elsewhere");
        fs::rename(&file, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert_eq!(refused(&k.state, me, "symbolic link"), file);
        fs::remove_file(&file).unwrap();
        fs::rename(&elsewhere, &file).unwrap();
        let link = k.state.with_file_name("link");
        std::os::unix::fs::symlink(&k.state, &link).unwrap();
        assert_eq!(refused(&link, me, "symbolic link"), link);
        // The installer refuses them too.
        assert!(matches!(
            uninstall_kernel(&k.sys, &link),
            Err(KernelError::Untrusted { .. })
        ));
        assert!(saved_state(&k.state, me).unwrap().is_some());
    }

    #[test]
    fn corrupt_records_are_errors_not_guesses() {
        let k = kernel(b"core\n", b"0\n");
        install_kernel(&k.sys, &k.state, "|/usr/bin/coroner handler %P", 4).unwrap();
        let file = saved_path(&k.state);
        let good = fs::read_to_string(&file).unwrap();
        for bad in [
            "not toml".to_owned(),
            good.replace("format = 1", "format = 2"),
            good.replace("format = 1", "format = 1\nextra = 1"),
            good.replace(
                "previous_pattern = \"636f72650a\"",
                "previous_pattern = \"636\"",
            ),
            good.replace(
                "previous_pattern = \"636f72650a\"",
                "previous_pattern = \"zz\"",
            ),
            good.replace("installed_pattern = \"", "installed_pattern = \"ff"),
            "x".repeat(70_000),
        ] {
            assert_ne!(bad, good);
            fs::write(&file, &bad).unwrap();
            let e = saved_state(&k.state, my_uid(&k)).unwrap_err();
            assert!(matches!(e, KernelError::Saved { .. }), "{e}");
            assert!(e.to_string().contains("kernel.saved"), "{e}");
            assert!(uninstall_kernel(&k.sys, &k.state).is_err());
        }
        assert_eq!(pattern_of(&k), b"|/usr/bin/coroner handler %P");
    }

    #[test]
    fn saved_record_round_trips_any_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        let s = SavedKernel {
            previous_pattern: all.clone(),
            previous_pipe_limit: b"\"\n#".to_vec(),
            installed_pattern: "|/c handler \"' #".into(),
        };
        let text = render_saved(&s);
        assert_eq!(parse_saved(Path::new("k"), text.as_bytes()).unwrap(), s);
    }

    // ----- chaining -----

    fn fields<'a>(comm: &'a str, exe: Option<&'a Path>) -> ChainFields<'a> {
        ChainFields {
            pid: 4242,
            ns_pid: 7,
            tid: 4243,
            ns_tid: 8,
            uid: 1000,
            gid: 100,
            signal: 11,
            time: 1_700_000_000,
            host: OsStr::new("buildhost"),
            comm: OsStr::new(comm),
            exe_path: exe,
            dumpable: 1,
            core_limit: "18446744073709551615",
            pidfd: Some(5),
            cpu: None,
        }
    }

    fn chain(previous: &[u8], f: &ChainFields<'_>) -> Vec<String> {
        chain_command(previous, f)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect()
    }

    fn unsupported(previous: &[u8], f: &ChainFields<'_>) -> (String, &'static str) {
        match chain_command(previous, f) {
            Err(KernelError::ChainUnsupported {
                specifier, reason, ..
            }) => (specifier, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chains_to_systemd_coredump() {
        let f = fields("sleep", Some(Path::new("/usr/bin/sleep")));
        assert_eq!(
            chain(SYSTEMD, &f),
            [
                "/usr/lib/systemd/systemd-coredump",
                "4242",
                "1000",
                "100",
                "11",
                "1700000000",
                "18446744073709551615",
                "buildhost",
                "1",
                "5"
            ]
        );
    }

    #[test]
    fn chains_to_apport_with_a_spaced_path() {
        let apport = b"|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -F%F -- %E\n";
        let f = fields("my app", Some(Path::new("/opt/my app/bin/my app")));
        assert_eq!(
            chain(apport, &f),
            [
                "/usr/share/apport/apport",
                "-p7",
                "-s11",
                "-c18446744073709551615",
                "-d1",
                "-P4242",
                "-u1000",
                "-g100",
                "-F5",
                "--",
                "!opt!my app!bin!my app"
            ]
        );
        let f = fields("my app", None);
        assert_eq!(
            chain(b"|/bin/x %E %f", &f),
            ["/bin/x", "my app (path unknown)", "my app (path unknown)"]
        );
    }

    #[test]
    fn a_comm_with_a_space_stays_one_argument() {
        let f = fields("Web Content", None);
        assert_eq!(
            chain(b"|/usr/bin/collect  %e\t%p ", &f),
            ["/usr/bin/collect", "Web Content", "7"]
        );
        let f = fields("..", Some(Path::new("/usr/bin/..")));
        assert_eq!(chain(b"|/c %e %f", &f), ["/c", "!.", "!."]);
        let f = fields("", None);
        assert_eq!(chain(b"|/c x%ey", &f), ["/c", "x!y"]);
        let f = ChainFields {
            host: OsStr::new("a/b"),
            ..fields(".", None)
        };
        assert_eq!(chain(b"|/c %h %e", &f), ["/c", "a!b", "!"]);
    }

    #[test]
    fn percent_percent_and_unknown_specifiers() {
        let f = fields("x", None);
        assert_eq!(
            chain(b"|/usr/bin/x 100%% %%p %%%p", &f),
            ["/usr/bin/x", "100%", "%p", "%7"]
        );
        let (spec, reason) = unsupported(b"|/usr/bin/x -q%q", &f);
        assert_eq!((spec.as_str(), reason), ("%q", "unknown specifier"));
        let e = chain_command(b"|/usr/bin/x %q", &f).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot chain: unsupported %q"),
            "{e}"
        );
        assert_eq!(unsupported(b"|/usr/bin/x 5%", &f).0, "%");
        assert_eq!(unsupported(b"|/usr/bin/x %\xff", &f).0, "%\\xff");
        let no_pidfd = ChainFields { pidfd: None, ..f };
        assert_eq!(unsupported(SYSTEMD, &no_pidfd).0, "%F");
        assert_eq!(unsupported(b"|/usr/bin/x %C", &f).0, "%C");
        let with_cpu = ChainFields { cpu: Some(3), ..f };
        assert_eq!(
            chain(b"|/usr/bin/x cpu%C", &with_cpu),
            ["/usr/bin/x", "cpu3"]
        );
    }

    #[test]
    fn file_and_socket_patterns_are_not_chained() {
        let f = fields("x", None);
        for p in [
            &b"core"[..],
            b"core\n",
            b"/var/crash/core.%e.%p",
            b"",
            b"@/run/systemd/coredump-kernel",
            b"@@/run/systemd/coredump-kernel\n",
        ] {
            assert_eq!(chain_command(p, &f).unwrap(), None, "{p:?}");
        }
    }

    #[test]
    fn refuses_to_chain_to_itself_or_to_a_chosen_program() {
        let f = fields("x", None);
        let ours = handler_pattern(Path::new(EXE), None).unwrap();
        for p in [
            format!("{ours}\n"),
            handler_pattern(Path::new("/opt/elsewhere/tool"), Some(Path::new("/etc/c"))).unwrap(),
        ] {
            assert!(
                matches!(
                    chain_command(p.as_bytes(), &f),
                    Err(KernelError::ChainLoop { .. })
                ),
                "{p}"
            );
        }
        for p in [
            &b"|"[..],
            b"|   ",
            b"|collect %p",
            b"|/usr/bin/%e",
            b"|/x%%/y",
        ] {
            assert!(
                matches!(chain_command(p, &f), Err(KernelError::ChainProgram { .. })),
                "{p:?}"
            );
        }
    }

    #[test]
    fn our_pattern_expanded_by_the_chain_expander_parses_back() {
        let exe = Path::new("/usr/bin/my app");
        let original = HandlerArgs {
            config: Some(PathBuf::from("/etc/coroner/c.toml")),
            pid: 99,
            tid: 100,
            signal: 6,
            time: 1_234_567_890,
            dumpable: 2,
            pidfd: Some(3),
            uid: 0,
            gid: 0,
            core_limit: "0".into(),
            host: "h".into(),
            ns_pid: 1,
            ns_tid: 2,
            comm: "my app".into(),
        };
        let pattern = handler_pattern(Path::new(EXE), original.config.as_deref()).unwrap();
        let argv = expand_pipe(
            pattern.as_bytes(),
            &original.chain_fields(Some(exe), Some(3)),
        )
        .unwrap()
        .unwrap();
        assert_eq!(argv.len(), 2 + 1 + HANDLER_FIELD_COUNT);
        let by_hand = expand_by_hand(
            &pattern,
            &[
                ("%P", b"99"),
                ("%I", b"100"),
                ("%s", b"6"),
                ("%t", b"1234567890"),
                ("%d", b"2"),
                ("%F", b"3"),
                ("%u", b"0"),
                ("%g", b"0"),
                ("%c", b"0"),
                ("%h", b"h"),
                ("%p", b"1"),
                ("%i", b"2"),
                ("%e", b"my app"),
            ],
        );
        assert_eq!(argv, by_hand);
        assert_eq!(parse_handler_args(&argv[2..]).unwrap(), original);
    }
}
