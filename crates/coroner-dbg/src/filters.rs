//! The CDB event-filter model: `sx`, `sxe`, `sxd`, `sxn`, `sxi`, `sx-`, `sxr`,
//! the `-x*` options and Tools.ini `sxe:`/`sxd:` (spec §1.3, §1.4, §2, §3),
//! plus per-address assertion handling (`ah`, §5.6).
//!
//! Owns: the table of event and exception filters with their defaults (the
//! "observed" column of §2.1/§2.2), parsing the arguments of an `sx*`
//! command, applying it, rendering the `sx` listing, and deciding, for a
//! signal or debug event the engine saw, which filter applies: its code,
//! text, break status, handling status and automatic commands.
//!
//! Must not: touch the target, print anything, or run the automatic commands
//! (the session does that with what [`Filters::exception`] and
//! [`Filters::event`] return).
//!
//! # Signals as exceptions (spec §13.2)
//!
//! Linux has signals, not NTSTATUS exceptions. Like Breakpad, we use the
//! signal number as the exception code and `si_code` as its flags; the named
//! filters keep their Windows codes and are reached through this mapping:
//!
//! | Signal, `si_code` or hint | Filter |
//! |---|---|
//! | SIGSEGV (any code) | `av` |
//! | SIGSEGV `SEGV_CPERR` (10, CET shadow stack) | `sbo` |
//! | hint `StackOverflow` | `sov` |
//! | SIGBUS `BUS_ADRALN` | `dm` |
//! | SIGBUS `BUS_ADRERR`, `BUS_MCEERR_AR` | `ip` |
//! | SIGFPE `FPE_INTDIV` / `FPE_FLTDIV` / `FPE_INTOVF` | `dz` / `c000008e` / `iov` |
//! | SIGILL (any code) | `ii` |
//! | SIGSYS `SYS_SECCOMP`, `SYS_USER_DISPATCH` | `isc` |
//! | SIGABRT raised by the process itself (or `si_code > 0`); hint `AssertFailure` | `asrt` |
//! | hint `StackCheckFailure` (`__stack_chk_fail`/`__fortify_fail`) | `sbo` |
//! | SIGTRAP `SI_KERNEL` (x86 `int3`) or `TRAP_BRKPT`; hint `Breakpoint` | `bpe`/`bpec` |
//! | SIGTRAP `TRAP_TRACE`, `TRAP_HWBKPT` | `sse`/`ssec` |
//! | SIGINT / SIGQUIT | `cce`/`cc` (Control-C / Control-Break rows) |
//! | SIGPIPE | `3c` |
//! | hint `CxxThrow` (breakpoint on `__cxa_throw`) | `eh` |
//! | hint `RustPanic` | `rp` (Linux addition, below) |
//! | anything else | the numeric filter for that signal number, else `*` |
//!
//! Hints win over the signal: the engine sets one only when it knows better
//! (it unwound the stack or hit its own breakpoint).
//!
//! # Named codes with no Linux source
//!
//! Every code of §2.2 is accepted, settable and listed so that scripts and
//! Tools.ini files written for CDB keep working, but these never fire:
//!
//! | Code | Why it never fires on Linux |
//! |---|---|
//! | `aph` | no kernel hang event (would need a watchdog) |
//! | `clr`, `clrn` | CoreCLR reports managed exceptions through its debugging API, not signals |
//! | `gp` | no one-shot guard pages |
//! | `ch`/`hc` | bad handles are `EBADF` returns, not exceptions |
//! | `lsq` | IA-64-era Windows lock protocol |
//! | `wkd` | no wake-debugger exception |
//! | `svh`, `vs`, `rto`, `rtt` | service hang, Application Verifier, WinRT: Windows only |
//! | `dbce` | no debugger-command exception channel |
//! | `vcpp` | thread names live in `/proc/<pid>/task/<tid>/comm` |
//! | `wos`, `wob` | 32-bit compat tasks are not distinguished (x86-64 targets only) |
//! | `ser` (event) | no Windows RIP/system-error event |
//! | `iml` (event) | kernel debugging only |
//!
//! # Linux additions and choices
//!
//! * `rp` — "Rust panic", default second-chance break, not handled. A Rust
//!   panic is reported when the engine's breakpoint on the panic machinery
//!   fires (hint `RustPanic`), the way `eh` reports a C++ throw. It has no
//!   NTSTATUS; its `windows_code` is the signal number of the report.
//! * `eh` and `rp` first chances come from engine breakpoints on
//!   `__cxa_throw` and std's `rust_panic` (`__rustc::rust_panic` in v0
//!   mangling), in every module that defines them: set when the filter is
//!   `sxe`/`sxn` or has a first-chance command (at the next resume, and on
//!   each module load), taken out when it no longer is. They print
//!   `C++ EH exception - code e06d7363 (first chance)` and `Rust panic -
//!   code 00000005 (first chance)`. Under the default (second-chance break)
//!   and `sxi` no breakpoint is set, so a program that throws a lot pays
//!   nothing; CDB prints the first-chance line of every throw under the
//!   default too, we do not. The second chance is the SIGABRT of
//!   `std::terminate` (or of a panic that cannot unwind), reported as the
//!   abort it is.
//! * `c000008e` (float divide by zero) is a named row, listed after `dz`: on
//!   Windows it is a plain number, but our numbers are signal numbers
//!   (1..=64), so it would otherwise be unreachable.
//! * Numeric codes are **signal numbers** in the current radix (default 16;
//!   `0x`, `0n`, `0t`, `0y` prefixes), 1..=64. Signal names (`SIGUSR1`,
//!   `sigusr1`, `SIGRTMIN+3`, `SIGRTMAX-1`) are accepted too; they must start
//!   with `SIG`. Named codes win over numbers, so `3c` is the SIGPIPE filter,
//!   `cc` the Ctrl+C handling code. A numeric filter catches the instances of
//!   its signal that no named filter claims (e.g. SIGBUS `BUS_OBJERR`,
//!   SIGTRAP sent by `kill`).
//! * Async signals — `si_code <= 0`, sent by `kill`/`tgkill`/`sigqueue`
//!   (SIGABRT from the process itself counts as `asrt`, not async) — that
//!   fall to `*` while `*` still has its default break status are reported
//!   as **Output**, not a second-chance break: a `kill -USR1` is a message to
//!   the program, not a crash. Any `sx*` that sets the break status of `*`
//!   (even to its default) turns this off. The event text of a numeric or
//!   `*` match is the signal's name (`SIGUSR1`), not "Unknown exception".
//! * Events have no second chance: `sxd` on an event (and `-G` = `sxd epr`)
//!   is listed as `second-chance break` but [`Filters::event`] reports it as
//!   Output (print, do not stop).
//! * An event whose argument does not match (`sxe ld:libm*` and `libc.so.6`
//!   loads) does not break and runs no command, but is still printed if the
//!   filter's status would print (so `ModLoad:` lines keep coming).
//! * Module and process names (`ld`, `ud`, `cpr`, `epr`) match
//!   case-insensitively (as on Windows) against the file name without its
//!   directory, and also against that name without its extension
//!   (`libm.so.6` → `libm`, `kernel32.dll` → `kernel32`), so `sxe ld:libm`
//!   works like `sxe ld:kernel32`. A pattern containing `/` is matched
//!   against the full path instead.
//! * An `ld`/`ud` argument is an address when it starts with `0x` or contains
//!   a backtick (``00007ff7`91d80000``); otherwise a name. A `ud` exact name
//!   is resolved at once through the hook set with
//!   [`Filters::ud_name_to_address`]; if the module is not known (or there
//!   is no hook), the exact name is kept as a pattern instead of failing.
//! * `sxe`/`sxd`/… without `-c`/`-c2` leave existing commands alone; `-c ""`
//!   clears one. A new `sx*` on an event replaces its argument (none ⇒ any);
//!   `sx-` changes the argument only when given one.
//! * Listing (§3.2, and §14 leaves these open): a second-chance command is
//!   printed as `       Command2: "<cmd>"` under `Command:`; numeric filters
//!   come after the named exceptions and before the blank line and the `*`
//!   line, sorted by signal number, code in hex without `0x`
//!   (`   a - SIGUSR1 - break - not handled`); `rp` is the last named row; an
//!   address argument prints as ``(only break for 00007ff7`91d80000)``.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use coroner_types::signal::{signal_label, signal_number};
use coroner_types::SigInfo;

use crate::disasm::fmt_addr;
use crate::wildcard::{has_wildcards, Pattern, WildcardError};

const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;
const SIGPIPE: i32 = 13;
const SIGSYS: i32 = 31;
/// glibc's SIGRTMIN (the kernel's is 32; glibc keeps two for itself).
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// What the debugger does when a filter's event arrives (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakStatus {
    /// `sxe`: stop at first chance.
    Break,
    /// `sxd`: print at first chance, stop at second chance.
    SecondChance,
    /// `sxn`: never stop, print a message.
    Output,
    /// `sxi`: never stop, print nothing.
    Ignore,
}

impl BreakStatus {
    /// The word the `sx` listing uses.
    pub fn word(self) -> &'static str {
        match self {
            BreakStatus::Break => "break",
            BreakStatus::SecondChance => "second-chance break",
            BreakStatus::Output => "output",
            BreakStatus::Ignore => "ignore",
        }
    }
}

/// The continue status a plain `g` uses after an exception (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handling {
    /// Suppress the signal (restart with signal 0).
    Handled,
    /// Deliver the signal to the program.
    NotHandled,
}

impl Handling {
    /// The word the `sx` listing uses.
    pub fn word(self) -> &'static str {
        match self {
            Handling::Handled => "handled",
            Handling::NotHandled => "not handled",
        }
    }
}

/// Which `sx*` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SxVerb {
    E,
    D,
    N,
    I,
    /// `sx-`: change commands only.
    Minus,
}

impl SxVerb {
    /// The command name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SxVerb::E => "sxe",
            SxVerb::D => "sxd",
            SxVerb::N => "sxn",
            SxVerb::I => "sxi",
            SxVerb::Minus => "sx-",
        }
    }

    /// The break status this verb sets (`None` for `sx-`).
    pub fn break_status(self) -> Option<BreakStatus> {
        match self {
            SxVerb::E => Some(BreakStatus::Break),
            SxVerb::D => Some(BreakStatus::SecondChance),
            SxVerb::N => Some(BreakStatus::Output),
            SxVerb::I => Some(BreakStatus::Ignore),
            SxVerb::Minus => None,
        }
    }

    /// The handling status this verb sets with `-h` or a continue code:
    /// `sxe` ⇒ handled, `sxd`/`sxn`/`sxi` ⇒ not handled, `sx-` ⇒ none.
    pub fn handling(self) -> Option<Handling> {
        match self {
            SxVerb::E => Some(Handling::Handled),
            SxVerb::D | SxVerb::N | SxVerb::I => Some(Handling::NotHandled),
            SxVerb::Minus => None,
        }
    }

    /// The verb that sets `status`.
    pub fn from_status(status: BreakStatus) -> SxVerb {
        match status {
            BreakStatus::Break => SxVerb::E,
            BreakStatus::SecondChance => SxVerb::D,
            BreakStatus::Output => SxVerb::N,
            BreakStatus::Ignore => SxVerb::I,
        }
    }
}

/// Errors of parsing or applying an `sx*` command. Each names its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("`{code}` is not an event code, exception code, signal name or signal number")]
    UnknownCode { code: String },
    #[error("{verb} needs an event code, exception code or `*`")]
    MissingTarget { verb: &'static str },
    #[error("{verb}: unknown option `{option}` (expected -c, -c2 or -h)")]
    UnknownOption { verb: &'static str, option: String },
    #[error("{verb}: the command after `{option}` must be in double quotes, found `{found}`")]
    UnquotedCommand {
        verb: &'static str,
        option: String,
        found: String,
    },
    #[error("{verb}: the quoted command after `{option}` has no closing quote")]
    UnterminatedQuote { verb: &'static str, option: String },
    #[error("`{code}`: signal number {value} is out of range (1..=64)")]
    SignalOutOfRange { code: String, value: u64 },
    #[error("radix {radix} is not supported (2..=36)")]
    BadRadix { radix: u32 },
    #[error("`{code}` takes no argument, got `{arg}`")]
    ArgumentNotAllowed { code: String, arg: String },
    #[error("`{code}` argument `{arg}`: {reason}")]
    BadArgument {
        code: String,
        arg: String,
        reason: &'static str,
    },
    #[error("`{code}` argument: {source}")]
    BadPattern {
        code: String,
        #[source]
        source: WildcardError,
    },
    #[error("`{code}` is an event; events have no second-chance command (-c2)")]
    SecondCommandOnEvent { code: String },
}

/// A parsed `sx{e,d,n,i,-}` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SxCommand {
    pub verb: SxVerb,
    /// `-c "cmd"`: first-chance command.
    pub cmd1: Option<String>,
    /// `-c2 "cmd"`: second-chance command.
    pub cmd2: Option<String>,
    /// `-h`: set handling status instead of break status.
    pub handling_flag: bool,
    /// Code, `event:arg` (a space-separated argument is normalized to
    /// `:`), number, signal name or `*`.
    pub target: String,
}

impl SxCommand {
    /// Parse everything after `sxe` (etc.): options, then the target.
    /// Examples: `-c "r rax" -c2"k" -h av`, `ld:libm*`, `ld libm*`.
    pub fn parse(verb: SxVerb, rest: &str) -> Result<SxCommand, FilterError> {
        let v = verb.name();
        let mut cmd = SxCommand {
            verb,
            cmd1: None,
            cmd2: None,
            handling_flag: false,
            target: String::new(),
        };
        let mut s = rest.trim_start();
        while let Some(after_dash) = s.strip_prefix('-') {
            let name_len = after_dash
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(after_dash.len());
            let (name, tail) = after_dash.split_at(name_len);
            let option = format!("-{name}");
            match name.to_ascii_lowercase().as_str() {
                "h" => {
                    cmd.handling_flag = true;
                    s = tail.trim_start();
                }
                "c" | "c2" => {
                    let (text, tail) = quoted(v, &option, tail.trim_start())?;
                    if name.len() == 1 {
                        cmd.cmd1 = Some(text);
                    } else {
                        cmd.cmd2 = Some(text);
                    }
                    s = tail.trim_start();
                }
                _ => return Err(FilterError::UnknownOption { verb: v, option }),
            }
        }
        let s = s.trim();
        if s.is_empty() {
            return Err(FilterError::MissingTarget { verb: v });
        }
        let (code, arg) = split_target(s);
        if arg.chars().any(char::is_whitespace) {
            return Err(FilterError::BadArgument {
                code: code.to_string(),
                arg: arg.to_string(),
                reason: "an argument cannot contain spaces",
            });
        }
        cmd.target = if arg.is_empty() {
            code.to_string()
        } else {
            format!("{code}:{arg}")
        };
        Ok(cmd)
    }
}

/// Read a double-quoted string at the start of `s`; `\"` is a quote.
fn quoted<'a>(
    verb: &'static str,
    option: &str,
    s: &'a str,
) -> Result<(String, &'a str), FilterError> {
    let Some(body) = s.strip_prefix('"') else {
        return Err(FilterError::UnquotedCommand {
            verb,
            option: option.to_string(),
            found: s.chars().take(20).collect(),
        });
    };
    let mut out = String::new();
    let mut it = body.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, body.get(i + 1..).unwrap_or(""))),
            '\\' if body.get(i + 1..).is_some_and(|r| r.starts_with('"')) => {
                out.push('"');
                it.next();
            }
            _ => out.push(c),
        }
    }
    Err(FilterError::UnterminatedQuote {
        verb,
        option: option.to_string(),
    })
}

/// Split `ld:libm*` / `ld libm*` / `ld : libm*` into code and argument.
fn split_target(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(|c: char| c == ':' || c.is_whitespace()) {
        None => (s, ""),
        Some(pos) => {
            let (code, tail) = s.split_at(pos);
            let tail = tail.trim_start();
            let tail = tail.strip_prefix(':').unwrap_or(tail).trim();
            (code, tail)
        }
    }
}

/// The non-exception events (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    CreateThread,
    ExitThread,
    CreateProcess,
    ExitProcess,
    LoadModule,
    UnloadModule,
    SystemError,
    InitialBreakpoint,
    InitialModuleLoad,
    Output,
}

/// What an event filter's argument is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    /// `ld`: module name pattern or base address.
    Load,
    /// `ud`: like `ld`, but an exact name becomes an address at once.
    Unload,
    /// `cpr`/`epr`: child image name pattern.
    Process,
    /// `out`: output text pattern, no `:` or spaces, case-insensitive.
    Output,
}

struct EventDef {
    code: &'static str,
    text: &'static str,
    kind: EventKind,
    default: BreakStatus,
    arg: ArgKind,
}

/// Events in listing order, with the observed defaults.
const EVENTS: [EventDef; 10] = [
    EventDef {
        code: "ct",
        text: "Create thread",
        kind: EventKind::CreateThread,
        default: BreakStatus::Ignore,
        arg: ArgKind::None,
    },
    EventDef {
        code: "et",
        text: "Exit thread",
        kind: EventKind::ExitThread,
        default: BreakStatus::Ignore,
        arg: ArgKind::None,
    },
    EventDef {
        code: "cpr",
        text: "Create process",
        kind: EventKind::CreateProcess,
        default: BreakStatus::Ignore,
        arg: ArgKind::Process,
    },
    EventDef {
        code: "epr",
        text: "Exit process",
        kind: EventKind::ExitProcess,
        default: BreakStatus::Break,
        arg: ArgKind::Process,
    },
    EventDef {
        code: "ld",
        text: "Load module",
        kind: EventKind::LoadModule,
        default: BreakStatus::Output,
        arg: ArgKind::Load,
    },
    EventDef {
        code: "ud",
        text: "Unload module",
        kind: EventKind::UnloadModule,
        default: BreakStatus::Ignore,
        arg: ArgKind::Unload,
    },
    EventDef {
        code: "ser",
        text: "System error",
        kind: EventKind::SystemError,
        default: BreakStatus::Ignore,
        arg: ArgKind::None,
    },
    EventDef {
        code: "ibp",
        text: "Initial breakpoint",
        kind: EventKind::InitialBreakpoint,
        default: BreakStatus::Break,
        arg: ArgKind::None,
    },
    EventDef {
        code: "iml",
        text: "Initial module load",
        kind: EventKind::InitialModuleLoad,
        default: BreakStatus::Ignore,
        arg: ArgKind::None,
    },
    EventDef {
        code: "out",
        text: "Debuggee output",
        kind: EventKind::Output,
        default: BreakStatus::Output,
        arg: ArgKind::Output,
    },
];

/// A named exception filter: its codes, listing text, NTSTATUS and defaults.
struct ExDef {
    code: &'static str,
    /// The handling ("continue") code of a split pair.
    cont: Option<&'static str>,
    text: &'static str,
    /// NTSTATUS; `None` where no source gives one (`svh`, `rtt`) or there is
    /// none (`rp`).
    nt: Option<u32>,
    break_default: BreakStatus,
    handling_default: Handling,
}

const fn ex(
    code: &'static str,
    cont: Option<&'static str>,
    text: &'static str,
    nt: Option<u32>,
    break_default: BreakStatus,
    handling_default: Handling,
) -> ExDef {
    ExDef {
        code,
        cont,
        text,
        nt,
        break_default,
        handling_default,
    }
}

use BreakStatus::{Break as B, Ignore as I, SecondChance as S2};
use Handling::{Handled as H, NotHandled as NH};

/// Named exceptions in the order of the observed `sx` listing, with our two
/// additions (`c000008e` after `dz`, `rp` last).
#[rustfmt::skip]
const EXCEPTIONS: [ExDef; 33] = [
    ex("av", None, "Access violation", Some(0xC000_0005), B, NH),
    ex("asrt", None, "Assertion failure", Some(0xC000_0420), B, NH),
    ex("aph", None, "Application hang", Some(0xCFFF_FFFF), B, NH),
    ex("bpe", Some("bpec"), "Break instruction exception", Some(0x8000_0003), B, H),
    ex("eh", None, "C++ EH exception", Some(0xE06D_7363), S2, NH),
    // Docs give E0434F4D; .NET 4+ is reported to use E0434352 (§14). Never fires here.
    ex("clr", None, "CLR exception", Some(0xE043_4F4D), S2, NH),
    ex("clrn", None, "CLR notification exception", Some(0xE044_4143), S2, H),
    ex("cce", Some("cc"), "Control-Break exception", Some(0x4001_0008), B, H),
    ex("cce", Some("cc"), "Control-C exception", Some(0x4001_0005), B, H),
    ex("dm", None, "Data misaligned", Some(0x8000_0002), B, NH),
    ex("dbce", None, "Debugger command exception", Some(0x4001_0009), I, H),
    ex("gp", None, "Guard page violation", Some(0x8000_0001), B, NH),
    ex("ii", None, "Illegal instruction", Some(0xC000_001D), S2, NH),
    ex("ip", None, "In-page I/O error", Some(0xC000_0006), B, NH),
    ex("dz", None, "Integer divide-by-zero", Some(0xC000_0094), B, NH),
    ex("c000008e", None, "Floating point division by zero", Some(0xC000_008E), B, NH),
    ex("iov", None, "Integer overflow", Some(0xC000_0095), B, NH),
    ex("ch", Some("hc"), "Invalid handle", Some(0xC000_0008), B, NH),
    ex("lsq", None, "Invalid lock sequence", Some(0xC000_001E), B, NH),
    ex("isc", None, "Invalid system call", Some(0xC000_001C), B, NH),
    ex("3c", None, "Port disconnected", Some(0xC000_0037), S2, NH),
    ex("svh", None, "Service hang", None, B, NH),
    ex("sse", Some("ssec"), "Single step exception", Some(0x8000_0004), B, H),
    ex("sbo", None, "Security check failure or stack buffer overrun", Some(0xC000_0409), B, NH),
    ex("sov", None, "Stack overflow", Some(0xC000_00FD), B, NH),
    ex("vs", None, "Verifier stop", Some(0xC000_0421), B, NH),
    ex("vcpp", None, "Visual C++ exception", Some(0x406D_1388), I, H),
    ex("wkd", None, "Wake debugger", Some(0x8000_0007), B, NH),
    ex("rto", None, "Windows Runtime Originate Error", Some(0x4008_0201), S2, NH),
    ex("rtt", None, "Windows Runtime Transform Error", None, S2, NH),
    ex("wob", None, "WOW64 breakpoint", Some(0x4000_001F), B, H),
    ex("wos", None, "WOW64 single step exception", Some(0x4000_001E), B, H),
    ex("rp", None, "Rust panic", None, S2, NH),
];

/// Index of the named exception with break code `code` (and, for the two
/// `cce` rows, NTSTATUS `nt`).
fn ex_index(code: &str, nt: Option<u32>) -> Option<usize> {
    EXCEPTIONS
        .iter()
        .position(|d| d.code == code && (nt.is_none() || d.nt == nt))
}

/// What the engine knows beyond the signal (from unwinding or its own
/// breakpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExceptionHint {
    #[default]
    None,
    /// SIGSEGV in the guard gap below a thread stack.
    StackOverflow,
    /// `__stack_chk_fail`/`__fortify_fail` on the stack.
    StackCheckFailure,
    /// `__assert_fail` on the stack.
    AssertFailure,
    /// The engine's breakpoint on `__cxa_throw`.
    CxxThrow,
    /// The engine's breakpoint on the Rust panic machinery.
    RustPanic,
    /// Our own `int3` (a user breakpoint).
    Breakpoint,
}

/// A signal as the engine reports it to the filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExceptionEvent {
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// Sent by the process to itself (`abort()`, `raise()`).
    pub sent_by_self: bool,
    pub hint: ExceptionHint,
}

impl ExceptionEvent {
    /// From a `siginfo_t`: `sent_by_self` when a process sent it
    /// (`si_code <= 0`) and that process is `target_pid`.
    pub fn from_siginfo(si: &SigInfo, target_pid: i32, hint: ExceptionHint) -> ExceptionEvent {
        ExceptionEvent {
            signo: si.signo(),
            code: si.code(),
            sent_by_self: si.code() <= 0 && si.sender_pid() == target_pid,
            hint,
        }
    }
}

/// The filter that applies to an exception, and what it says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionMatch {
    /// Filter code as listed: `av`, `sov`, `bpe`, `a` (numeric, hex) or `*`.
    pub code: String,
    /// Event text: `Access violation`, or the signal name for numeric/`*`.
    pub text: String,
    /// NTSTATUS for named filters, the signal number otherwise.
    pub windows_code: u32,
    pub break_status: BreakStatus,
    pub handling: Handling,
    pub cmd1: Option<String>,
    pub cmd2: Option<String>,
}

/// What an event filter says about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    /// Never `SecondChance` (events have none; `sxd` reads as Output).
    pub break_status: BreakStatus,
    /// The command to run; `None` when the argument did not match.
    pub cmd1: Option<String>,
    /// Listing text, e.g. `Load module`.
    pub text: &'static str,
    /// Whether the filter's argument (if any) matched this event.
    pub arg_matched: bool,
}

/// A stored event argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventArg {
    Pattern(Pattern),
    Address(u64),
}

impl fmt::Display for EventArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventArg::Pattern(p) => f.write_str(p.as_str()),
            EventArg::Address(a) => f.write_str(&fmt_addr(*a)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EventState {
    status: BreakStatus,
    cmd1: Option<String>,
    arg: Option<EventArg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ExState {
    status: BreakStatus,
    handling: Handling,
    cmd1: Option<String>,
    cmd2: Option<String>,
}

impl ExState {
    fn new(status: BreakStatus, handling: Handling) -> ExState {
        ExState {
            status,
            handling,
            cmd1: None,
            cmd2: None,
        }
    }
}

/// Module name → base address, for `ud` with an exact name.
pub type ModuleLookup = Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

/// Every event and exception filter of one session.
#[derive(Clone)]
pub struct Filters {
    events: Vec<EventState>,
    exceptions: Vec<ExState>,
    numeric: BTreeMap<i32, ExState>,
    default: ExState,
    /// Set once an `sx*` sets the break status of `*` (turns off the
    /// async-signals-are-output rule).
    default_touched: bool,
    ud_lookup: Option<ModuleLookup>,
}

impl fmt::Debug for Filters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filters")
            .field("events", &self.events)
            .field("exceptions", &self.exceptions)
            .field("numeric", &self.numeric)
            .field("default", &self.default)
            .field("default_touched", &self.default_touched)
            .field("ud_lookup", &self.ud_lookup.is_some())
            .finish()
    }
}

impl Default for Filters {
    fn default() -> Self {
        Filters::new()
    }
}

/// What an `sx*` target names.
enum Target {
    Event(usize),
    /// Named exception rows (two for `cce`); `cont` when a handling code
    /// (`hc`, `bpec`, `ssec`, `cc`) was used.
    Named {
        rows: Vec<usize>,
        cont: bool,
    },
    Numeric(i32),
    Default,
}

impl Filters {
    /// All filters at their defaults.
    pub fn new() -> Filters {
        Filters {
            events: EVENTS
                .iter()
                .map(|d| EventState {
                    status: d.default,
                    cmd1: None,
                    arg: None,
                })
                .collect(),
            exceptions: EXCEPTIONS
                .iter()
                .map(|d| ExState::new(d.break_default, d.handling_default))
                .collect(),
            numeric: BTreeMap::new(),
            default: ExState::new(BreakStatus::SecondChance, Handling::NotHandled),
            default_touched: false,
            ud_lookup: None,
        }
    }

    /// `sxr`: every filter back to its default, commands and arguments
    /// cleared, numeric filters removed. The `ud` lookup hook is kept.
    pub fn reset(&mut self) {
        let hook = self.ud_lookup.take();
        *self = Filters::new();
        self.ud_lookup = hook;
    }

    /// Install the hook that turns an exact module name into its base
    /// address (§2.1 `ud` rule), used by [`Filters::apply`].
    pub fn ud_name_to_address<F>(&mut self, lookup: F)
    where
        F: Fn(&str) -> Option<u64> + Send + Sync + 'static,
    {
        self.ud_lookup = Some(Arc::new(lookup));
    }

    /// Apply `sxe`/`sxd`/`sxn`/`sxi`/`sx-` with numbers in `radix`.
    pub fn apply(&mut self, cmd: &SxCommand, radix: u32) -> Result<(), FilterError> {
        let hook = self.ud_lookup.clone();
        let none = |_: &str| None;
        let lookup: &dyn Fn(&str) -> Option<u64> = match &hook {
            Some(h) => h.as_ref(),
            None => &none,
        };
        self.apply_with(cmd, radix, lookup)
    }

    /// [`Filters::apply`] with an explicit module lookup for `ud`.
    pub fn apply_with(
        &mut self,
        cmd: &SxCommand,
        radix: u32,
        lookup: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<(), FilterError> {
        let (code, arg) = split_target(&cmd.target);
        if code.is_empty() {
            return Err(FilterError::MissingTarget {
                verb: cmd.verb.name(),
            });
        }
        let target = resolve(code, radix)?;
        if !arg.is_empty() && !matches!(target, Target::Event(_)) {
            return Err(FilterError::ArgumentNotAllowed {
                code: code.to_string(),
                arg: arg.to_string(),
            });
        }
        match target {
            Target::Event(i) => self.apply_event(i, cmd, code, arg, lookup),
            Target::Named { rows, cont } => {
                for r in rows {
                    if let Some(state) = self.exceptions.get_mut(r) {
                        apply_exception(state, cmd, cont);
                    }
                }
                Ok(())
            }
            Target::Numeric(signo) => {
                let state = self.numeric.entry(signo).or_insert_with(|| {
                    ExState::new(BreakStatus::SecondChance, Handling::NotHandled)
                });
                apply_exception(state, cmd, false);
                Ok(())
            }
            Target::Default => {
                if cmd.verb != SxVerb::Minus && !cmd.handling_flag {
                    self.default_touched = true;
                }
                apply_exception(&mut self.default, cmd, false);
                Ok(())
            }
        }
    }

    fn apply_event(
        &mut self,
        i: usize,
        cmd: &SxCommand,
        code: &str,
        arg: &str,
        lookup: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<(), FilterError> {
        let Some(def) = EVENTS.get(i) else {
            return Err(FilterError::UnknownCode {
                code: code.to_string(),
            });
        };
        if cmd.cmd2.is_some() {
            return Err(FilterError::SecondCommandOnEvent {
                code: code.to_string(),
            });
        }
        let new_arg = if arg.is_empty() {
            None
        } else {
            Some(parse_event_arg(def.arg, code, arg, lookup)?)
        };
        let Some(state) = self.events.get_mut(i) else {
            return Ok(());
        };
        // `-h` on an event is a no-op (events have no handling status).
        if let Some(st) = cmd.verb.break_status() {
            state.status = st;
            state.arg = new_arg;
        } else if new_arg.is_some() {
            state.arg = new_arg;
        }
        if let Some(c) = &cmd.cmd1 {
            state.cmd1 = non_empty(c);
        }
        Ok(())
    }

    /// Set a break status the way `-xe/-xd/-xn/-xi code`, `-x` (= `-xd av`),
    /// `-G` (= `sxd epr`) and Tools.ini `sxe:`/`sxd:` do: like the `sx*`
    /// command of that status with no options. `code` may carry an event
    /// argument (`ld:libm*`).
    pub fn set_break(
        &mut self,
        code: &str,
        status: BreakStatus,
        radix: u32,
    ) -> Result<(), FilterError> {
        let (c, arg) = split_target(code);
        let target = if arg.is_empty() {
            c.to_string()
        } else {
            format!("{c}:{arg}")
        };
        let cmd = SxCommand {
            verb: SxVerb::from_status(status),
            cmd1: None,
            cmd2: None,
            handling_flag: false,
            target,
        };
        self.apply(&cmd, radix)
    }

    /// The current break status of an event (as listed; `sxd` shows as
    /// `SecondChance` here).
    pub fn event_status(&self, kind: EventKind) -> BreakStatus {
        EVENTS
            .iter()
            .position(|d| d.kind == kind)
            .and_then(|i| self.events.get(i))
            .map_or(BreakStatus::Ignore, |s| s.status)
    }

    /// The `sx` listing, exactly as §3.2 shows it (see the module docs for
    /// the rows §14 leaves open). Every line ends with `\n`.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (def, st) in EVENTS.iter().zip(&self.events) {
            row(&mut out, def.code, def.text, st.status.word());
            if let Some(arg) = &st.arg {
                out.push_str(&format!("       (only break for {arg})\n"));
            }
            commands(&mut out, &st.cmd1, &None);
        }
        out.push('\n');
        for (def, st) in EXCEPTIONS.iter().zip(&self.exceptions) {
            match def.cont {
                None => {
                    let words = format!("{} - {}", st.status.word(), st.handling.word());
                    row(&mut out, def.code, def.text, &words);
                    commands(&mut out, &st.cmd1, &st.cmd2);
                }
                Some(cont) => {
                    row(&mut out, def.code, def.text, st.status.word());
                    commands(&mut out, &st.cmd1, &st.cmd2);
                    let text = format!("{} continue", def.text);
                    row(&mut out, cont, &text, st.handling.word());
                }
            }
        }
        for (signo, st) in &self.numeric {
            let words = format!("{} - {}", st.status.word(), st.handling.word());
            row(
                &mut out,
                &format!("{signo:x}"),
                &signal_label(*signo),
                &words,
            );
            commands(&mut out, &st.cmd1, &st.cmd2);
        }
        out.push('\n');
        let words = format!(
            "{} - {}",
            self.default.status.word(),
            self.default.handling.word()
        );
        row(&mut out, "*", "Other exception", &words);
        commands(&mut out, &self.default.cmd1, &self.default.cmd2);
        out
    }

    /// Which filter applies to a signal, and what it says (see the mapping
    /// table in the module docs).
    pub fn exception(&self, ex: &ExceptionEvent) -> ExceptionMatch {
        if let Some(i) = classify(ex) {
            if let (Some(def), Some(st)) = (EXCEPTIONS.get(i), self.exceptions.get(i)) {
                return ExceptionMatch {
                    code: def.code.to_string(),
                    text: def.text.to_string(),
                    windows_code: def.nt.unwrap_or(ex.signo as u32),
                    break_status: st.status,
                    handling: st.handling,
                    cmd1: st.cmd1.clone(),
                    cmd2: st.cmd2.clone(),
                };
            }
        }
        if let Some(st) = self.numeric.get(&ex.signo) {
            return ExceptionMatch {
                code: format!("{:x}", ex.signo),
                text: signal_label(ex.signo),
                windows_code: ex.signo as u32,
                break_status: st.status,
                handling: st.handling,
                cmd1: st.cmd1.clone(),
                cmd2: st.cmd2.clone(),
            };
        }
        let is_async = ex.code <= 0 && !(ex.signo == SIGABRT && ex.sent_by_self);
        let break_status = if is_async && !self.default_touched {
            BreakStatus::Output
        } else {
            self.default.status
        };
        ExceptionMatch {
            code: "*".to_string(),
            text: signal_label(ex.signo),
            windows_code: ex.signo as u32,
            break_status,
            handling: self.default.handling,
            cmd1: self.default.cmd1.clone(),
            cmd2: self.default.cmd2.clone(),
        }
    }

    /// The filter of signal `signo` when every instance of it gets the same
    /// one whatever its `siginfo_t` says (no hint: the engine gives hints
    /// only to SIGSEGV, SIGABRT and its own breakpoints), so that the
    /// engine need not read the `siginfo_t` to decide; `None` when the
    /// `si_code` or sender may change the answer.
    pub fn exception_by_signal(&self, signo: i32) -> Option<ExceptionMatch> {
        let depends_on_code = matches!(
            signo,
            SIGSEGV | SIGBUS | SIGFPE | SIGSYS | SIGABRT | SIGTRAP
        );
        if depends_on_code {
            return None;
        }
        let fixed = matches!(signo, SIGILL | SIGINT | SIGQUIT | SIGPIPE)
            || self.numeric.contains_key(&signo)
            // `*` reads the code only to tell an async signal while its
            // break status is untouched.
            || self.default_touched;
        // Any siginfo of this signal: the code and sender no longer matter.
        fixed.then(|| {
            self.exception(&ExceptionEvent {
                signo,
                code: 0,
                sent_by_self: false,
                hint: ExceptionHint::None,
            })
        })
    }

    /// What the filter of a non-exception event says. `name` is the module
    /// path (`ld`/`ud`), child image path (`cpr`/`epr`) or output text
    /// (`out`); `address` the module base. Unknown name or address ⇒ the
    /// argument matches (§2.1 engine rule).
    pub fn event(&self, kind: EventKind, name: Option<&str>, address: Option<u64>) -> EventMatch {
        let Some(i) = EVENTS.iter().position(|d| d.kind == kind) else {
            return EventMatch {
                break_status: BreakStatus::Ignore,
                cmd1: None,
                text: "",
                arg_matched: false,
            };
        };
        let def = &EVENTS[i];
        let Some(st) = self.events.get(i) else {
            return EventMatch {
                break_status: def.default,
                cmd1: None,
                text: def.text,
                arg_matched: true,
            };
        };
        let matched = match &st.arg {
            None => true,
            Some(EventArg::Address(a)) => address.is_none_or(|x| x == *a),
            Some(EventArg::Pattern(p)) if def.arg == ArgKind::Output => {
                name.is_none_or(|t| p.matches_ci(t.trim_end_matches(['\r', '\n'])))
            }
            Some(EventArg::Pattern(p)) => name.is_none_or(|n| name_matches(p, n)),
        };
        let status = match st.status {
            BreakStatus::SecondChance => BreakStatus::Output,
            s => s,
        };
        let break_status = match (matched, status) {
            (false, BreakStatus::Break) => BreakStatus::Output,
            (_, s) => s,
        };
        EventMatch {
            break_status,
            cmd1: if matched { st.cmd1.clone() } else { None },
            text: def.text,
            arg_matched: matched,
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn apply_exception(state: &mut ExState, cmd: &SxCommand, cont: bool) {
    if cont || cmd.handling_flag {
        if let Some(h) = cmd.verb.handling() {
            state.handling = h;
        }
    } else if let Some(st) = cmd.verb.break_status() {
        state.status = st;
    }
    if let Some(c) = &cmd.cmd1 {
        state.cmd1 = non_empty(c);
    }
    if let Some(c) = &cmd.cmd2 {
        state.cmd2 = non_empty(c);
    }
}

fn row(out: &mut String, code: &str, text: &str, words: &str) {
    out.push_str(&format!("{code:>4} - {text} - {words}\n"));
}

fn commands(out: &mut String, cmd1: &Option<String>, cmd2: &Option<String>) {
    if let Some(c) = cmd1 {
        out.push_str(&format!("       Command: \"{c}\"\n"));
    }
    if let Some(c) = cmd2 {
        out.push_str(&format!("       Command2: \"{c}\"\n"));
    }
}

/// Resolve an `sx*` code: `*`, event, named exception (break or continue
/// code), `SIG` name, then a number in `radix`.
fn resolve(code: &str, radix: u32) -> Result<Target, FilterError> {
    if code == "*" {
        return Ok(Target::Default);
    }
    let lower = code.to_ascii_lowercase();
    if let Some(i) = EVENTS.iter().position(|d| d.code == lower) {
        return Ok(Target::Event(i));
    }
    let rows: Vec<usize> = (0..EXCEPTIONS.len())
        .filter(|&i| EXCEPTIONS[i].code == lower)
        .collect();
    if !rows.is_empty() {
        return Ok(Target::Named { rows, cont: false });
    }
    let rows: Vec<usize> = (0..EXCEPTIONS.len())
        .filter(|&i| EXCEPTIONS[i].cont == Some(lower.as_str()))
        .collect();
    if !rows.is_empty() {
        return Ok(Target::Named { rows, cont: true });
    }
    if lower.starts_with("sig") {
        return signal_from_name(code).map(Target::Numeric).ok_or_else(|| {
            FilterError::UnknownCode {
                code: code.to_string(),
            }
        });
    }
    let value = parse_number(code, radix)?;
    match i32::try_from(value) {
        Ok(n) if (1..=SIGRTMAX).contains(&n) => Ok(Target::Numeric(n)),
        _ => Err(FilterError::SignalOutOfRange {
            code: code.to_string(),
            value,
        }),
    }
}

/// `SIGUSR1`, `sigsegv`, `SIGRTMIN`, `SIGRTMIN+3`, `SIGRTMAX-2`.
fn signal_from_name(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() {
            0
        } else {
            let digits = match sign {
                1 => rest.strip_prefix('+')?,
                _ => rest.strip_prefix('-')?,
            };
            digits.parse::<i32>().ok()?
        };
        let v = base.checked_add(sign.checked_mul(n)?)?;
        (SIGRTMIN..=SIGRTMAX).contains(&v).then_some(v)
    };
    if let Some(rest) = upper.strip_prefix("SIGRTMIN") {
        return rt(rest, SIGRTMIN, 1);
    }
    if let Some(rest) = upper.strip_prefix("SIGRTMAX") {
        return rt(rest, SIGRTMAX, -1);
    }
    upper.strip_prefix("SIG")?;
    signal_number(&upper)
}

/// A number with CDB prefixes (`0x`, `0n`, `0t`, `0y`) or in `radix`;
/// backticks are ignored. Not a number ⇒ unknown code.
fn parse_number(code: &str, radix: u32) -> Result<u64, FilterError> {
    if !(2..=36).contains(&radix) {
        return Err(FilterError::BadRadix { radix });
    }
    let cleaned: String = code.chars().filter(|&c| c != '`').collect();
    let lower = cleaned.to_ascii_lowercase();
    let (digits, base) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0n") {
        (d, 10)
    } else if let Some(d) = lower.strip_prefix("0t") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0y") {
        (d, 2)
    } else {
        (lower.as_str(), radix)
    };
    let unknown = || FilterError::UnknownCode {
        code: code.to_string(),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(unknown());
    }
    // All digits are valid, so the only failure left is overflow.
    u64::from_str_radix(digits, base).map_err(|_| FilterError::SignalOutOfRange {
        code: code.to_string(),
        value: u64::MAX,
    })
}

/// Parse an event argument for a filter of kind `kind`.
fn parse_event_arg(
    kind: ArgKind,
    code: &str,
    arg: &str,
    lookup: &dyn Fn(&str) -> Option<u64>,
) -> Result<EventArg, FilterError> {
    let bad = |reason: &'static str| FilterError::BadArgument {
        code: code.to_string(),
        arg: arg.to_string(),
        reason,
    };
    let pattern = |text: &str| {
        Pattern::parse(text).map_err(|source| FilterError::BadPattern {
            code: code.to_string(),
            source,
        })
    };
    match kind {
        ArgKind::None => Err(FilterError::ArgumentNotAllowed {
            code: code.to_string(),
            arg: arg.to_string(),
        }),
        ArgKind::Output => {
            if arg.contains(':') || arg.chars().any(char::is_whitespace) {
                return Err(bad("an `out` pattern cannot contain `:` or spaces"));
            }
            Ok(EventArg::Pattern(pattern(arg)?))
        }
        ArgKind::Process => Ok(EventArg::Pattern(pattern(arg)?)),
        ArgKind::Load | ArgKind::Unload => {
            if looks_like_address(arg) {
                return parse_address(arg)
                    .map(EventArg::Address)
                    .ok_or_else(|| bad("not a valid address"));
            }
            if kind == ArgKind::Unload && !has_wildcards(arg) {
                if let Some(base) = lookup(arg) {
                    return Ok(EventArg::Address(base));
                }
            }
            Ok(EventArg::Pattern(pattern(arg)?))
        }
    }
}

fn looks_like_address(arg: &str) -> bool {
    arg.starts_with("0x") || arg.starts_with("0X") || arg.contains('`')
}

fn parse_address(arg: &str) -> Option<u64> {
    let cleaned: String = arg.chars().filter(|&c| c != '`').collect();
    let digits = cleaned
        .strip_prefix("0x")
        .or_else(|| cleaned.strip_prefix("0X"))
        .unwrap_or(&cleaned);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The file name without its extension: `libm.so.6` → `libm`,
/// `kernel32.dll` → `kernel32`, `crasher` → `crasher`.
fn stem(base: &str) -> &str {
    let mut search = 0;
    while let Some(pos) = base.get(search..).and_then(|r| r.find(".so")) {
        let at = search + pos;
        let after = base.get(at + 3..).unwrap_or("");
        if at > 0 && (after.is_empty() || after.starts_with('.')) {
            return &base[..at];
        }
        search = at + 3;
    }
    match base.rfind('.') {
        Some(pos) if pos > 0 => &base[..pos],
        _ => base,
    }
}

/// Module/process name rule (see module docs).
fn name_matches(p: &Pattern, name: &str) -> bool {
    if p.as_str().contains('/') {
        return p.matches_ci(name);
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    p.matches_ci(base) || p.matches_ci(stem(base))
}

/// The named filter for a signal, by the table in the module docs.
fn classify(ex: &ExceptionEvent) -> Option<usize> {
    let named = |code: &str| ex_index(code, None);
    match ex.hint {
        ExceptionHint::CxxThrow => return named("eh"),
        ExceptionHint::RustPanic => return named("rp"),
        ExceptionHint::Breakpoint => return named("bpe"),
        ExceptionHint::StackOverflow => return named("sov"),
        ExceptionHint::StackCheckFailure => return named("sbo"),
        ExceptionHint::AssertFailure => return named("asrt"),
        ExceptionHint::None => {}
    }
    match (ex.signo, ex.code) {
        (SIGSEGV, 10) => named("sbo"),
        (SIGSEGV, _) => named("av"),
        (SIGBUS, 1) => named("dm"),
        (SIGBUS, 2 | 4) => named("ip"),
        (SIGFPE, 1) => named("dz"),
        (SIGFPE, 2) => named("iov"),
        (SIGFPE, 3) => named("c000008e"),
        (SIGILL, _) => named("ii"),
        (SIGSYS, 1 | 2) => named("isc"),
        (SIGABRT, c) if ex.sent_by_self || c > 0 => named("asrt"),
        (SIGTRAP, 0x80 | 1) => named("bpe"),
        (SIGTRAP, 2 | 4) => named("sse"),
        (SIGINT, _) => ex_index("cce", Some(0x4001_0005)),
        (SIGQUIT, _) => ex_index("cce", Some(0x4001_0008)),
        (SIGPIPE, _) => named("3c"),
        _ => None,
    }
}

/// The per-address assertion setting of `ahb`/`ahi` (§5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertAction {
    Break,
    Ignore,
}

/// `ah`: per-address overrides of the `asrt` filter for the current process
/// (lost when it exits; the session drops the value then). The address is
/// the caller PC found by unwinding out of `abort`/`__assert_fail` (§13.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssertOverrides {
    map: BTreeMap<u64, AssertAction>,
}

impl AssertOverrides {
    pub fn new() -> AssertOverrides {
        AssertOverrides::default()
    }

    /// `ahb`/`ahi`.
    pub fn set(&mut self, addr: u64, action: AssertAction) {
        self.map.insert(addr, action);
    }

    /// `ahd`; true if there was a setting.
    pub fn delete(&mut self, addr: u64) -> bool {
        self.map.remove(&addr).is_some()
    }

    /// `ahc`.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn lookup(&self, addr: u64) -> Option<AssertAction> {
        self.map.get(&addr).copied()
    }

    /// `ah`: one line per address, sorted, ``00007ff7`91d81014 - break`` or
    /// `- ignore`; empty when there are none (the real format is not
    /// documented, §14).
    pub fn listing(&self) -> String {
        self.map
            .iter()
            .map(|(a, act)| {
                let w = match act {
                    AssertAction::Break => "break",
                    AssertAction::Ignore => "ignore",
                };
                format!("{} - {w}\n", fmt_addr(*a))
            })
            .collect()
    }

    /// If `m` is an `asrt` match and `caller` has a setting, it wins over the
    /// global `sx* asrt` status.
    pub fn adjust(&self, m: &mut ExceptionMatch, caller: u64) {
        if m.code != "asrt" {
            return;
        }
        match self.lookup(caller) {
            Some(AssertAction::Break) => m.break_status = BreakStatus::Break,
            Some(AssertAction::Ignore) => m.break_status = BreakStatus::Ignore,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sx(f: &mut Filters, verb: SxVerb, rest: &str) {
        let cmd = SxCommand::parse(verb, rest).unwrap_or_else(|e| panic!("{rest}: {e}"));
        f.apply(&cmd, 16).unwrap_or_else(|e| panic!("{rest}: {e}"));
    }

    fn sx_err(f: &mut Filters, verb: SxVerb, rest: &str) -> FilterError {
        match SxCommand::parse(verb, rest) {
            Err(e) => e,
            Ok(cmd) => f.apply(&cmd, 16).expect_err(rest),
        }
    }

    fn sig(signo: i32, code: i32) -> ExceptionEvent {
        ExceptionEvent {
            signo,
            code,
            sent_by_self: false,
            hint: ExceptionHint::None,
        }
    }

    const DEFAULT_EXCEPTIONS: &str = "  av - Access violation - break - not handled
asrt - Assertion failure - break - not handled
 aph - Application hang - break - not handled
 bpe - Break instruction exception - break
bpec - Break instruction exception continue - handled
  eh - C++ EH exception - second-chance break - not handled
 clr - CLR exception - second-chance break - not handled
clrn - CLR notification exception - second-chance break - handled
 cce - Control-Break exception - break
  cc - Control-Break exception continue - handled
 cce - Control-C exception - break
  cc - Control-C exception continue - handled
  dm - Data misaligned - break - not handled
dbce - Debugger command exception - ignore - handled
  gp - Guard page violation - break - not handled
  ii - Illegal instruction - second-chance break - not handled
  ip - In-page I/O error - break - not handled
  dz - Integer divide-by-zero - break - not handled
c000008e - Floating point division by zero - break - not handled
 iov - Integer overflow - break - not handled
  ch - Invalid handle - break
  hc - Invalid handle continue - not handled
 lsq - Invalid lock sequence - break - not handled
 isc - Invalid system call - break - not handled
  3c - Port disconnected - second-chance break - not handled
 svh - Service hang - break - not handled
 sse - Single step exception - break
ssec - Single step exception continue - handled
 sbo - Security check failure or stack buffer overrun - break - not handled
 sov - Stack overflow - break - not handled
  vs - Verifier stop - break - not handled
vcpp - Visual C++ exception - ignore - handled
 wkd - Wake debugger - break - not handled
 rto - Windows Runtime Originate Error - second-chance break - not handled
 rtt - Windows Runtime Transform Error - second-chance break - not handled
 wob - WOW64 breakpoint - break - handled
 wos - WOW64 single step exception - break - handled
  rp - Rust panic - second-chance break - not handled
";

    #[test]
    fn default_listing() {
        let expected = format!(
            "  ct - Create thread - ignore
  et - Exit thread - ignore
 cpr - Create process - ignore
 epr - Exit process - break
  ld - Load module - output
  ud - Unload module - ignore
 ser - System error - ignore
 ibp - Initial breakpoint - break
 iml - Initial module load - ignore
 out - Debuggee output - output

{DEFAULT_EXCEPTIONS}
   * - Other exception - second-chance break - not handled
"
        );
        assert_eq!(Filters::new().listing(), expected);
    }

    #[test]
    fn spec_example_listing() {
        let mut f = Filters::new();
        sx(&mut f, SxVerb::E, "-c \"r eax\" av");
        sx(&mut f, SxVerb::Minus, "-c \"r ebx\" av");
        sx(&mut f, SxVerb::E, "ld:kernel32");
        let listing = f.listing();
        let head = "  ct - Create thread - ignore
  et - Exit thread - ignore
 cpr - Create process - ignore
 epr - Exit process - break
  ld - Load module - break
       (only break for kernel32)
  ud - Unload module - ignore
 ser - System error - ignore
 ibp - Initial breakpoint - break
 iml - Initial module load - ignore
 out - Debuggee output - output

  av - Access violation - break - not handled
       Command: \"r ebx\"
asrt - Assertion failure - break - not handled
";
        assert!(listing.starts_with(head), "{listing}");
        assert!(listing.contains(
            " bpe - Break instruction exception - break\n\
             bpec - Break instruction exception continue - handled\n  \
             eh - C++ EH exception - second-chance break - not handled\n"
        ));
        assert!(listing.contains("vcpp - Visual C++ exception - ignore - handled\n"));
        assert!(
            listing.ends_with("\n\n   * - Other exception - second-chance break - not handled\n")
        );
        // Only `av` and `ld` changed.
        let mut expected = Filters::new().listing();
        expected = expected.replacen(
            "  ld - Load module - output\n",
            "  ld - Load module - break\n       (only break for kernel32)\n",
            1,
        );
        expected = expected.replacen(
            "  av - Access violation - break - not handled\n",
            "  av - Access violation - break - not handled\n       Command: \"r ebx\"\n",
            1,
        );
        assert_eq!(listing, expected);
    }

    #[test]
    fn parse_options() {
        let c = SxCommand::parse(SxVerb::E, r#"-c "r rax" -c2"k" -h av"#).unwrap();
        assert_eq!(c.cmd1.as_deref(), Some("r rax"));
        assert_eq!(c.cmd2.as_deref(), Some("k"));
        assert!(c.handling_flag);
        assert_eq!(c.target, "av");
        let c = SxCommand::parse(SxVerb::D, r#"-c"r eax; g" av"#).unwrap();
        assert_eq!(c.cmd1.as_deref(), Some("r eax; g"));
        assert_eq!(
            SxCommand::parse(SxVerb::E, "ld:libm*").unwrap().target,
            "ld:libm*"
        );
        assert_eq!(
            SxCommand::parse(SxVerb::E, "ld libm*").unwrap().target,
            "ld:libm*"
        );
        assert_eq!(
            SxCommand::parse(SxVerb::E, "  ld : libm* ").unwrap().target,
            "ld:libm*"
        );
        let c = SxCommand::parse(SxVerb::E, r#"-c ".echo \"hi\"" av"#).unwrap();
        assert_eq!(c.cmd1.as_deref(), Some(".echo \"hi\""));
        assert_eq!(SxCommand::parse(SxVerb::I, "*").unwrap().target, "*");
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            SxCommand::parse(SxVerb::E, ""),
            Err(FilterError::MissingTarget { verb: "sxe" })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "-c r av"),
            Err(FilterError::UnquotedCommand { .. })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "-c \"r av"),
            Err(FilterError::UnterminatedQuote { .. })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "-q av"),
            Err(FilterError::UnknownOption { .. })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "-c \"x\""),
            Err(FilterError::MissingTarget { .. })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "ld a b"),
            Err(FilterError::BadArgument { .. })
        ));
        assert!(matches!(
            SxCommand::parse(SxVerb::E, "-"),
            Err(FilterError::UnknownOption { .. })
        ));
    }

    #[test]
    fn apply_errors_name_the_input() {
        let mut f = Filters::new();
        let e = sx_err(&mut f, SxVerb::E, "bogus");
        assert_eq!(
            e,
            FilterError::UnknownCode {
                code: "bogus".into()
            }
        );
        assert!(e.to_string().contains("`bogus`"));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "SIGNOPE"),
            FilterError::UnknownCode { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "0n65"),
            FilterError::SignalOutOfRange { value: 65, .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "0"),
            FilterError::SignalOutOfRange { value: 0, .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "c0000374"),
            FilterError::SignalOutOfRange { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "ffffffffffffffffffff"),
            FilterError::SignalOutOfRange { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "av:foo"),
            FilterError::ArgumentNotAllowed { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "ct:foo"),
            FilterError::ArgumentNotAllowed { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "out:a:b"),
            FilterError::BadArgument { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "ld:lib[m"),
            FilterError::BadPattern { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "-c2 \"k\" ld"),
            FilterError::SecondCommandOnEvent { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "ld:0xzz"),
            FilterError::BadArgument { .. }
        ));
        let cmd = SxCommand::parse(SxVerb::E, "a").unwrap();
        assert_eq!(f.apply(&cmd, 99), Err(FilterError::BadRadix { radix: 99 }));
        // Nothing above changed anything.
        assert_eq!(f.listing(), Filters::new().listing());
    }

    #[test]
    fn split_codes_and_handling_flag() {
        let mut f = Filters::new();
        // Continue code sets handling, never break status.
        sx(&mut f, SxVerb::D, "bpec");
        assert!(f.listing().contains(
            " bpe - Break instruction exception - break\nbpec - Break instruction exception continue - not handled\n"
        ));
        // -h on the break code sets the continue code's status.
        sx(&mut f, SxVerb::E, "-h ch");
        assert!(f
            .listing()
            .contains("  ch - Invalid handle - break\n  hc - Invalid handle continue - handled\n"));
        // -c with a continue code attaches to the break code's row.
        sx(&mut f, SxVerb::Minus, "-c \"k\" ssec");
        assert!(f.listing().contains(
            " sse - Single step exception - break\n       Command: \"k\"\nssec - Single step exception continue - handled\n"
        ));
        // cce/cc touch both the Control-Break and Control-C rows.
        sx(&mut f, SxVerb::I, "cce");
        sx(&mut f, SxVerb::D, "cc");
        assert!(f.listing().contains(
            " cce - Control-Break exception - ignore\n  cc - Control-Break exception continue - not handled\n \
             cce - Control-C exception - ignore\n  cc - Control-C exception continue - not handled\n"
        ));
        // -h on an ordinary exception.
        sx(&mut f, SxVerb::E, "-h av");
        let m = f.exception(&sig(11, 1));
        assert_eq!(m.handling, Handling::Handled);
        assert_eq!(m.break_status, BreakStatus::Break);
        // Codes are case-insensitive.
        sx(&mut f, SxVerb::N, "AV");
        assert_eq!(f.exception(&sig(11, 1)).break_status, BreakStatus::Output);
    }

    #[test]
    fn commands_and_cmd2_listing() {
        let mut f = Filters::new();
        sx(&mut f, SxVerb::D, r#"-c "r" -c2 "k;q" av"#);
        assert!(f.listing().contains(
            "  av - Access violation - second-chance break - not handled\n       Command: \"r\"\n       Command2: \"k;q\"\nasrt"
        ));
        // A plain sxe keeps the commands; -c "" clears one.
        sx(&mut f, SxVerb::E, "av");
        let m = f.exception(&sig(11, 2));
        assert_eq!(m.cmd1.as_deref(), Some("r"));
        assert_eq!(m.cmd2.as_deref(), Some("k;q"));
        sx(&mut f, SxVerb::Minus, r#"-c "" av"#);
        let m = f.exception(&sig(11, 2));
        assert_eq!(m.cmd1, None);
        assert_eq!(m.break_status, BreakStatus::Break);
        sx(&mut f, SxVerb::Minus, r#"-c "r rax" *"#);
        assert!(f
            .listing()
            .ends_with("   * - Other exception - second-chance break - not handled\n       Command: \"r rax\"\n"));
    }

    #[test]
    fn numeric_filters_and_signal_names() {
        let mut f = Filters::new();
        sx(&mut f, SxVerb::E, "a"); // radix 16: SIGUSR1
        sx(&mut f, SxVerb::N, "SIGusr2");
        sx(&mut f, SxVerb::I, "0n15");
        sx(&mut f, SxVerb::E, "-h SIGRTMIN+2");
        let listing = f.listing();
        let tail = "  rp - Rust panic - second-chance break - not handled
   a - SIGUSR1 - break - not handled
   c - SIGUSR2 - output - not handled
   f - SIGTERM - ignore - not handled
  24 - SIGRTMIN+2 - second-chance break - handled

   * - Other exception - second-chance break - not handled
";
        assert!(listing.ends_with(tail), "{listing}");
        let m = f.exception(&sig(10, 0));
        assert_eq!(m.code, "a");
        assert_eq!(m.text, "SIGUSR1");
        assert_eq!(m.windows_code, 10);
        assert_eq!(m.break_status, BreakStatus::Break);
        // Decimal radix.
        let mut g = Filters::new();
        g.apply(&SxCommand::parse(SxVerb::E, "10").unwrap(), 10)
            .unwrap();
        assert_eq!(g.exception(&sig(10, 0)).code, "a");
        // A name without SIG is not a signal name.
        assert!(matches!(
            sx_err(&mut g, SxVerb::E, "usr1"),
            FilterError::UnknownCode { .. }
        ));
        assert!(matches!(
            sx_err(&mut g, SxVerb::E, "SIGRTMIN+40"),
            FilterError::UnknownCode { .. }
        ));
        assert_eq!(signal_from_name("SIGRTMAX"), Some(64));
        assert_eq!(signal_from_name("sigrtmax-1"), Some(63));
        assert_eq!(signal_from_name("SIGRTMIN"), Some(34));
        // `3c` and `cc` are named filters, not numbers.
        sx(&mut g, SxVerb::E, "3c");
        assert_eq!(g.exception(&sig(13, 0)).break_status, BreakStatus::Break);
        assert!(!g.listing().contains("  3c - SIG"));
        // A numeric filter for a mapped signal catches only the leftovers.
        sx(&mut g, SxVerb::I, "7");
        assert_eq!(g.exception(&sig(7, 1)).code, "dm");
        let m = g.exception(&sig(7, 3));
        assert_eq!(
            (m.code.as_str(), m.break_status),
            ("7", BreakStatus::Ignore)
        );
        // sxr removes numeric filters.
        g.reset();
        assert_eq!(g.listing(), Filters::new().listing());
    }

    #[test]
    fn mapping_table() {
        let f = Filters::new();
        let code = |signo, c| f.exception(&sig(signo, c)).code;
        assert_eq!(code(11, 1), "av");
        assert_eq!(code(11, 2), "av");
        assert_eq!(code(11, 0x80), "av");
        assert_eq!(code(11, 10), "sbo");
        assert_eq!(code(7, 1), "dm");
        assert_eq!(code(7, 2), "ip");
        assert_eq!(code(7, 4), "ip");
        assert_eq!(code(7, 3), "*");
        assert_eq!(code(8, 1), "dz");
        assert_eq!(code(8, 3), "c000008e");
        assert_eq!(code(8, 2), "iov");
        assert_eq!(code(8, 7), "*");
        assert_eq!(code(4, 2), "ii");
        assert_eq!(code(31, 1), "isc");
        assert_eq!(code(31, 2), "isc");
        assert_eq!(code(5, 0x80), "bpe");
        assert_eq!(code(5, 1), "bpe");
        assert_eq!(code(5, 2), "sse");
        assert_eq!(code(5, 4), "sse");
        assert_eq!(code(13, 0), "3c");
        assert_eq!(code(10, 0), "*");
        let m = f.exception(&sig(2, 0x80));
        assert_eq!(
            (m.code.as_str(), m.text.as_str()),
            ("cce", "Control-C exception")
        );
        assert_eq!(m.windows_code, 0x4001_0005);
        assert_eq!(m.handling, Handling::Handled);
        let m = f.exception(&sig(3, 0x80));
        assert_eq!(m.text, "Control-Break exception");
        assert_eq!(m.windows_code, 0x4001_0008);
        let m = f.exception(&sig(11, 1));
        assert_eq!(m.text, "Access violation");
        assert_eq!(m.windows_code, 0xC000_0005);
        assert_eq!(m.break_status, BreakStatus::Break);
        assert_eq!(m.handling, Handling::NotHandled);
        // SIGABRT from abort() in the process itself is asrt.
        let own = ExceptionEvent {
            sent_by_self: true,
            ..sig(6, -6)
        };
        let m = f.exception(&own);
        assert_eq!((m.code.as_str(), m.windows_code), ("asrt", 0xC000_0420));
        // ...from another process it is an async `*` (output).
        let m = f.exception(&sig(6, 0));
        assert_eq!(
            (m.code.as_str(), m.break_status),
            ("*", BreakStatus::Output)
        );
        // Hints.
        let hinted = |signo, code, hint| {
            f.exception(&ExceptionEvent {
                signo,
                code,
                sent_by_self: true,
                hint,
            })
        };
        assert_eq!(hinted(11, 1, ExceptionHint::StackOverflow).code, "sov");
        assert_eq!(hinted(6, -6, ExceptionHint::StackCheckFailure).code, "sbo");
        assert_eq!(hinted(6, -6, ExceptionHint::AssertFailure).code, "asrt");
        let m = hinted(5, 0x80, ExceptionHint::CxxThrow);
        assert_eq!((m.code.as_str(), m.windows_code), ("eh", 0xE06D_7363));
        assert_eq!(m.break_status, BreakStatus::SecondChance);
        let m = hinted(5, 0x80, ExceptionHint::RustPanic);
        assert_eq!((m.code.as_str(), m.text.as_str()), ("rp", "Rust panic"));
        assert_eq!(m.break_status, BreakStatus::SecondChance);
        assert_eq!(m.handling, Handling::NotHandled);
        assert_eq!(m.windows_code, 5);
        let m = hinted(5, 0x80, ExceptionHint::Breakpoint);
        assert_eq!((m.code.as_str(), m.handling), ("bpe", Handling::Handled));
    }

    /// The engine skips reading the `siginfo_t` of a signal whose filter
    /// it names alone; a wrong answer here would apply the wrong filter.
    #[test]
    fn exception_by_signal_only_when_the_code_cannot_matter() {
        let mut f = Filters::new();
        // `*` untouched: an async SIGUSR1 is Output, a kernel one not.
        assert_eq!(f.exception_by_signal(10), None);
        for signo in [11, 7, 8, 31, 6, 5] {
            assert_eq!(f.exception_by_signal(signo), None, "{signo}");
        }
        assert_eq!(f.exception_by_signal(4).map(|m| m.code), Some("ii".into()));
        assert_eq!(f.exception_by_signal(13).map(|m| m.code), Some("3c".into()));
        assert_eq!(f.exception_by_signal(2).map(|m| m.code), Some("cce".into()));
        sx(&mut f, SxVerb::I, "SIGUSR1");
        let m = f.exception_by_signal(10).unwrap();
        assert_eq!(
            (m.code.as_str(), m.break_status),
            ("a", BreakStatus::Ignore)
        );
        // Whatever the code, the full classification agrees.
        for (code, by_self) in [(0, false), (-6, true), (1, false)] {
            let ev = ExceptionEvent {
                signo: 10,
                code,
                sent_by_self: by_self,
                hint: ExceptionHint::None,
            };
            assert_eq!(f.exception(&ev), m);
        }
        assert_eq!(f.exception_by_signal(12), None);
        sx(&mut f, SxVerb::I, "*");
        assert_eq!(
            f.exception_by_signal(12).map(|m| m.break_status),
            Some(BreakStatus::Ignore)
        );
    }

    #[test]
    fn from_siginfo_detects_self() {
        let si = SigInfo::new_sent(6, -6, 42, 0);
        let ev = ExceptionEvent::from_siginfo(&si, 42, ExceptionHint::None);
        assert!(ev.sent_by_self);
        assert_eq!(Filters::new().exception(&ev).code, "asrt");
        let ev = ExceptionEvent::from_siginfo(&si, 43, ExceptionHint::None);
        assert!(!ev.sent_by_self);
        let fault = SigInfo::new_fault(11, 1, 42);
        assert!(!ExceptionEvent::from_siginfo(&fault, 42, ExceptionHint::None).sent_by_self);
    }

    #[test]
    fn async_signals_default_to_output() {
        let mut f = Filters::new();
        for code in [0, -1, -6] {
            let m = f.exception(&sig(10, code));
            assert_eq!(
                (m.code.as_str(), m.break_status),
                ("*", BreakStatus::Output)
            );
        }
        // A kernel-sent unmapped signal keeps the second-chance default.
        assert_eq!(
            f.exception(&sig(24, 0x80)).break_status,
            BreakStatus::SecondChance
        );
        assert_eq!(
            f.exception(&sig(8, 7)).break_status,
            BreakStatus::SecondChance
        );
        // sx- on `*` does not touch it; setting the status does.
        sx(&mut f, SxVerb::Minus, "-c \"k\" *");
        assert_eq!(f.exception(&sig(10, 0)).break_status, BreakStatus::Output);
        sx(&mut f, SxVerb::D, "*");
        assert_eq!(
            f.exception(&sig(10, 0)).break_status,
            BreakStatus::SecondChance
        );
        sx(&mut f, SxVerb::E, "*");
        assert_eq!(f.exception(&sig(10, 0)).break_status, BreakStatus::Break);
        f.reset();
        assert_eq!(f.exception(&sig(10, 0)).break_status, BreakStatus::Output);
        // An explicit numeric filter is used as set.
        sx(&mut f, SxVerb::D, "a");
        assert_eq!(
            f.exception(&sig(10, 0)).break_status,
            BreakStatus::SecondChance
        );
    }

    #[test]
    fn event_defaults_and_args() {
        let mut f = Filters::new();
        let ld = |f: &Filters, n: &str| f.event(EventKind::LoadModule, Some(n), Some(0x1000));
        assert_eq!(ld(&f, "/lib/libc.so.6").break_status, BreakStatus::Output);
        assert_eq!(
            f.event(EventKind::ExitProcess, None, None).break_status,
            BreakStatus::Break
        );
        assert_eq!(
            f.event(EventKind::InitialBreakpoint, None, None)
                .break_status,
            BreakStatus::Break
        );
        assert_eq!(
            f.event(EventKind::UnloadModule, None, None).break_status,
            BreakStatus::Ignore
        );
        assert_eq!(
            f.event(EventKind::Output, Some("x"), None).text,
            "Debuggee output"
        );

        sx(&mut f, SxVerb::E, r#"-c "k" ld:libm*"#);
        let m = ld(&f, "/usr/lib/x86_64-linux-gnu/libm.so.6");
        assert_eq!(m.break_status, BreakStatus::Break);
        assert_eq!(m.cmd1.as_deref(), Some("k"));
        assert!(m.arg_matched);
        let m = ld(&f, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(m.break_status, BreakStatus::Output);
        assert_eq!(m.cmd1, None);
        assert!(!m.arg_matched);
        // Unknown name ⇒ match.
        assert_eq!(
            f.event(EventKind::LoadModule, None, Some(1)).break_status,
            BreakStatus::Break
        );
        // One argument per filter: a new one replaces it; none ⇒ any.
        sx(&mut f, SxVerb::E, "ld LIBC");
        assert_eq!(ld(&f, "/lib/libc.so.6").break_status, BreakStatus::Break);
        assert_eq!(ld(&f, "/lib/libm.so.6").break_status, BreakStatus::Output);
        sx(&mut f, SxVerb::E, "ld");
        assert_eq!(ld(&f, "/lib/libm.so.6").break_status, BreakStatus::Break);
        assert!(!f.listing().contains("only break"));
        // Stem matching also works like `kernel32` for `kernel32.dll`.
        sx(&mut f, SxVerb::E, "ld:kernel32");
        assert_eq!(ld(&f, "kernel32.dll").break_status, BreakStatus::Break);
        // A path pattern is matched against the full path.
        sx(&mut f, SxVerb::E, "ld:/opt/*");
        assert_eq!(ld(&f, "/opt/x/liba.so").break_status, BreakStatus::Break);
        assert_eq!(ld(&f, "/usr/liba.so").break_status, BreakStatus::Output);
        // Address argument.
        sx(&mut f, SxVerb::E, "ld:0x1000");
        assert_eq!(ld(&f, "anything").break_status, BreakStatus::Break);
        assert!(f.listing().contains("(only break for 00000000`00001000)"));
        sx(&mut f, SxVerb::E, "ld:00000000`00002000");
        assert_eq!(ld(&f, "anything").break_status, BreakStatus::Output);
        // sxi on a non-matching event stays silent.
        sx(&mut f, SxVerb::I, "ld:foo");
        assert_eq!(ld(&f, "bar").break_status, BreakStatus::Ignore);
        // sx- keeps the argument unless given one.
        sx(&mut f, SxVerb::Minus, "-c \"r\" ld");
        assert!(f.listing().contains("(only break for foo)"));
        // cpr/epr match the child image base name.
        sx(&mut f, SxVerb::E, "cpr:crash?r");
        assert_eq!(
            f.event(EventKind::CreateProcess, Some("/tmp/crasher"), None)
                .break_status,
            BreakStatus::Break
        );
        assert_eq!(
            f.event(EventKind::CreateProcess, Some("/tmp/bash"), None)
                .break_status,
            BreakStatus::Output
        );
        // sxd on an event never reports SecondChance.
        f.set_break("epr", BreakStatus::SecondChance, 16).unwrap();
        assert!(f
            .listing()
            .contains(" epr - Exit process - second-chance break\n"));
        assert_eq!(
            f.event(EventKind::ExitProcess, None, None).break_status,
            BreakStatus::Output
        );
        assert_eq!(
            f.event_status(EventKind::ExitProcess),
            BreakStatus::SecondChance
        );
        // -h on an event is accepted and changes nothing else.
        sx(&mut f, SxVerb::E, "-h ct");
        assert_eq!(f.event_status(EventKind::CreateThread), BreakStatus::Break);
    }

    #[test]
    fn out_rules() {
        let mut f = Filters::new();
        sx(&mut f, SxVerb::E, "out:*ERROR*");
        let out = |f: &Filters, t: &str| f.event(EventKind::Output, Some(t), None).break_status;
        assert_eq!(out(&f, "an error occurred\n"), BreakStatus::Break);
        assert_eq!(out(&f, "all fine\n"), BreakStatus::Output);
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "out:a:b"),
            FilterError::BadArgument { .. }
        ));
        assert!(matches!(
            sx_err(&mut f, SxVerb::E, "out a b"),
            FilterError::BadArgument { .. }
        ));
        // Case-insensitive even for the literal parts.
        sx(&mut f, SxVerb::E, "out:hello");
        assert_eq!(out(&f, "HELLO\r\n"), BreakStatus::Break);
    }

    #[test]
    fn ud_rules() {
        let mut f = Filters::new();
        f.ud_name_to_address(|n| (n == "libfoo.so").then_some(0x7f00_0000_0000));
        sx(&mut f, SxVerb::E, "ud:libfoo.so");
        assert!(f.listing().contains("(only break for 00007f00`00000000)"));
        let ud = |f: &Filters, n: Option<&str>, a: Option<u64>| {
            f.event(EventKind::UnloadModule, n, a).break_status
        };
        assert_eq!(ud(&f, None, Some(0x7f00_0000_0000)), BreakStatus::Break);
        // Not matching: printed (the filter would print), no break.
        assert_eq!(ud(&f, Some("libfoo.so"), Some(0x1000)), BreakStatus::Output);
        assert_eq!(ud(&f, None, None), BreakStatus::Break);
        // Wildcards stay a pattern; a nameless unload then matches anything.
        sx(&mut f, SxVerb::E, "ud:libf*");
        assert!(f.listing().contains("(only break for libf*)"));
        assert_eq!(ud(&f, Some("/x/libfoo.so"), Some(1)), BreakStatus::Break);
        assert_eq!(ud(&f, Some("/x/libbar.so"), Some(1)), BreakStatus::Output);
        assert_eq!(ud(&f, None, Some(1)), BreakStatus::Break);
        // Unknown exact name: kept as an exact pattern.
        sx(&mut f, SxVerb::E, "ud:libbar.so");
        assert!(f.listing().contains("(only break for libbar.so)"));
        assert_eq!(ud(&f, Some("/x/libbar.so"), Some(1)), BreakStatus::Break);
        // apply_with takes an explicit lookup.
        let cmd = SxCommand::parse(SxVerb::E, "ud:libbaz.so").unwrap();
        f.apply_with(&cmd, 16, &|_| Some(0x5000)).unwrap();
        assert_eq!(ud(&f, None, Some(0x5000)), BreakStatus::Break);
        assert_eq!(ud(&f, None, Some(0x6000)), BreakStatus::Output);
        // sxr keeps the hook.
        f.reset();
        sx(&mut f, SxVerb::E, "ud:libfoo.so");
        assert!(f.listing().contains("(only break for 00007f00`00000000)"));
    }

    #[test]
    fn set_break_like_command_line() {
        let mut f = Filters::new();
        f.set_break("av", BreakStatus::SecondChance, 16).unwrap(); // -x
        assert_eq!(
            f.exception(&sig(11, 1)).break_status,
            BreakStatus::SecondChance
        );
        f.set_break("0n10", BreakStatus::Break, 16).unwrap(); // Tools.ini "10"
        assert_eq!(f.exception(&sig(10, 0)).code, "a");
        f.set_break("cc", BreakStatus::Break, 16).unwrap(); // Tools.ini sxe: cc
        assert_eq!(f.exception(&sig(2, 0x80)).handling, Handling::Handled);
        f.set_break("ld:libm*", BreakStatus::Break, 16).unwrap();
        assert!(f.listing().contains("(only break for libm*)"));
        assert!(f.set_break("nope", BreakStatus::Break, 16).is_err());
    }

    #[test]
    fn every_named_code_accepted() {
        let mut f = Filters::new();
        for code in [
            "av", "asrt", "aph", "eh", "clr", "clrn", "dm", "dz", "c000008e", "gp", "ii", "ip",
            "iov", "ch", "hc", "lsq", "isc", "3c", "sbo", "sov", "wkd", "svh", "vs", "rto", "rtt",
            "dbce", "vcpp", "wos", "wob", "sse", "ssec", "bpe", "bpec", "cce", "cc", "rp", "ct",
            "et", "cpr", "epr", "ld", "ud", "ser", "ibp", "iml", "out", "*",
        ] {
            sx(&mut f, SxVerb::N, code);
        }
    }

    #[test]
    fn assert_overrides() {
        let f = Filters::new();
        let own = ExceptionEvent {
            sent_by_self: true,
            ..sig(6, -6)
        };
        let mut ah = AssertOverrides::new();
        ah.set(0x40_1000, AssertAction::Ignore);
        ah.set(0x40_2000, AssertAction::Break);
        let mut m = f.exception(&own);
        ah.adjust(&mut m, 0x40_1000);
        assert_eq!(m.break_status, BreakStatus::Ignore);
        let mut m = f.exception(&own);
        ah.adjust(&mut m, 0x40_3000);
        assert_eq!(m.break_status, BreakStatus::Break);
        // Only asrt is affected.
        let mut m = f.exception(&sig(11, 1));
        ah.adjust(&mut m, 0x40_1000);
        assert_eq!(m.break_status, BreakStatus::Break);
        assert_eq!(
            ah.listing(),
            "00000000`00401000 - ignore\n00000000`00402000 - break\n"
        );
        assert!(ah.delete(0x40_1000));
        assert!(!ah.delete(0x40_1000));
        assert_eq!(ah.lookup(0x40_2000), Some(AssertAction::Break));
        ah.clear();
        assert_eq!(ah.listing(), "");
    }

    #[test]
    fn stems() {
        assert_eq!(stem("libm.so.6"), "libm");
        assert_eq!(stem("libfoo.so"), "libfoo");
        assert_eq!(stem("ld-linux-x86-64.so.2"), "ld-linux-x86-64");
        assert_eq!(stem("kernel32.dll"), "kernel32");
        assert_eq!(stem("crasher"), "crasher");
        assert_eq!(stem(".so"), ".so");
        assert_eq!(stem("libsomething.sock"), "libsomething");
    }
}
