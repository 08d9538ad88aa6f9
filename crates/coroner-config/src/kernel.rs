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
//! - Installing while our pattern is in place changes nothing. Replacing an
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

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
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
    #[error("cannot chain: unsupported {specifier} in previous core_pattern \"{pattern}\"")]
    ChainUnsupported { specifier: String, pattern: String },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

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
}
