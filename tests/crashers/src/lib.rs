//! The crasher's contract, for tests: which kinds exist, how each one dies
//! (signal, `si_code`, fault address, the function that crashes), and parsers
//! for the lines the `crasher` binary prints before it dies.
//!
//! Owns: the table of crash kinds ([`KINDS`]), the fixed addresses and
//! patterns the crasher uses, and [`crasher_path`] to find (or build) the
//! binary from another crate's tests. Must not: crash, use `unsafe`, or link
//! native code; all of that lives in the `crasher` binary (`src/main.rs`).
//!
//! The binary, `crasher KIND [ARGS]`:
//! - every kind in [`KINDS`] first prints one line
//!   `crashing <kind> pid=<pid> tid=<tid> addr=<0xHEX or ->` (see
//!   [`parse_crashing_line`]), flushes, then dies as the table says;
//! - `live [MIB] [THREADS]` and `sleep` print a `ready` line (see
//!   [`parse_ready_line`]) and wait for stdin to reach EOF, then exit 0;
//! - `recover` faults 3 times and survives (prints `recovered 3`, exits 0);
//!   `sigusr1-loop N` prints `hits N ns_per_signal X`; `exit CODE` exits.

use std::env;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Signal numbers (x86-64 Linux), so users need no `libc`.
pub mod signal {
    /// Illegal instruction.
    pub const SIGILL: i32 = 4;
    /// Abort (`abort(3)`).
    pub const SIGABRT: i32 = 6;
    /// Bus error (access beyond the end of a file mapping).
    pub const SIGBUS: i32 = 7;
    /// Arithmetic exception.
    pub const SIGFPE: i32 = 8;
    /// Invalid memory reference.
    pub const SIGSEGV: i32 = 11;
}

/// `si_code` values (Linux uapi `asm-generic/siginfo.h`; `libc` lacks the
/// per-signal ones).
pub mod si_code {
    /// Sent by `tkill`/`tgkill` (what `abort` and `raise` use).
    pub const SI_TKILL: i32 = -6;
    /// Sent by the kernel with no fault address (e.g. general protection).
    pub const SI_KERNEL: i32 = 0x80;
    /// SIGSEGV: address not mapped.
    pub const SEGV_MAPERR: i32 = 1;
    /// SIGSEGV: mapped, but the access is not permitted.
    pub const SEGV_ACCERR: i32 = 2;
    /// SIGBUS: nonexistent physical address (past the end of the file).
    pub const BUS_ADRERR: i32 = 2;
    /// SIGFPE: integer divide by zero.
    pub const FPE_INTDIV: i32 = 1;
    /// SIGILL: illegal opcode.
    pub const ILL_ILLOPN: i32 = 2;
}

use si_code::*;
use signal::*;

/// Where `segv-wild` writes: canonical (below 2^47), user-space, and far
/// from where the kernel places the executable (`0x55..`/`0x56..`), the heap
/// and mappings (`0x7f..`), so nothing is mapped there.
pub const SEGV_WILD_ADDR: u64 = 0x0000_0dea_d000_beef;

/// Where `segv-noncanonical` writes: bit 47 set with bits 48..63 clear, so
/// the CPU raises #GP instead of a page fault and the kernel reports
/// SIGSEGV / `SI_KERNEL` with `si_addr` 0 (the real address is lost).
pub const SEGV_NONCANONICAL_ADDR: u64 = 0x0000_dead_0000_beef;

/// How many threads `threads-crash` starts.
pub const THREADS_CRASH_COUNT: usize = 8;

/// Base of the unmapped addresses `threads-crash` writes to.
pub const THREADS_CRASH_BASE: u64 = 0x0000_0bad_0000_0000;

/// The address thread `index` of `threads-crash` writes to (the index is the
/// position of its tid in the `threads` line). All are canonical and
/// unmapped, and distinct pages.
pub const fn threads_crash_addr(index: usize) -> u64 {
    THREADS_CRASH_BASE + (index as u64) * 0x1_0000 + 0x10
}

/// The 8-byte marker `live` writes at the start of its heap block: the
/// ASCII of "CORONERM" read as a big-endian number, stored in native
/// (little-endian) order, so the bytes in memory are `MRENOROC`.
pub const LIVE_MARKER: u64 = 0x434f_524f_4e45_524d;

/// Default size of the `live` heap block, in MiB.
pub const LIVE_DEFAULT_MIB: usize = 16;

/// Default number of `live` worker threads.
pub const LIVE_DEFAULT_THREADS: usize = 4;

/// How many `live_worker_recurse` frames each `live` worker is parked under.
pub const LIVE_WORKER_DEPTH: usize = 64;

/// Size of the stack buffer each `live_worker_recurse` frame fills.
pub const LIVE_FRAME_BUFFER: usize = 256;

/// The unit `live` fills its block in: the block is cut into chunks of this
/// many bytes from its start (not aligned to the machine's pages).
pub const LIVE_PAGE: usize = 4096;

/// The word `live` stores in every 8-byte slot of chunk `page` of its block
/// (except slot 0 of chunk 0, which holds [`LIVE_MARKER`]): `PAGE` in the
/// high half, the chunk index in the low half.
pub const fn live_page_word(page: usize) -> u64 {
    0x5041_4745_0000_0000 | (page as u64 & 0xffff_ffff)
}

/// Thread name of `live` worker `index` (set with `pthread_setname_np`).
pub fn live_worker_name(index: usize) -> String {
    format!("worker-{index}")
}

/// What `si_addr` the kernel reports for a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAddr {
    /// Always this address.
    Exact(u64),
    /// Not known at build time; the crashing line's `addr=` carries it.
    Printed,
    /// The address of the faulting instruction (frame 0's pc), as for every
    /// SIGILL and SIGFPE; the crashing line prints `-`.
    Pc,
    /// `threads-crash`: [`threads_crash_addr`] of whichever thread faulted
    /// first (its index is its tid's position in the `threads` line).
    PerThread,
    /// No fault address (signals sent by `tgkill`), or one nobody can
    /// predict (`stack-overflow`: somewhere below the stack's lowest page).
    None,
}

/// One way to crash, and how the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashKind {
    /// The argument to `crasher`.
    pub name: &'static str,
    /// The signal that kills the process.
    pub signal: i32,
    /// The `si_code` of that signal, when it is fixed.
    pub si_code: Option<i32>,
    /// The `si_addr` the kernel reports.
    pub fault_addr: FaultAddr,
    /// The symbol of the function that crashes: frame 0 for faults, somewhere
    /// on the stack (under libc/libstdc++/std frames) for abort-like kinds.
    pub function: &'static str,
    /// `function` is frame 0 at the fatal signal (true), or only somewhere
    /// in the crashing thread's stack (false).
    pub frame0: bool,
    /// The thread whose tid the crashing line prints is the one that dies
    /// (false only for `threads-crash`, whose line comes from the main thread;
    /// the faulting thread is one of the `threads` line).
    pub printed_tid_crashes: bool,
}

const fn fault(
    name: &'static str,
    signal: i32,
    si_code: i32,
    fault_addr: FaultAddr,
    function: &'static str,
) -> CrashKind {
    CrashKind {
        name,
        signal,
        si_code: Some(si_code),
        fault_addr,
        function,
        frame0: true,
        printed_tid_crashes: true,
    }
}

const fn aborts(name: &'static str, function: &'static str) -> CrashKind {
    CrashKind {
        name,
        signal: SIGABRT,
        si_code: Some(SI_TKILL),
        fault_addr: FaultAddr::None,
        function,
        frame0: false,
        printed_tid_crashes: true,
    }
}

/// Every kind that kills the crasher, as observed on x86-64 Linux (see the
/// README for what each one prints and why).
pub const KINDS: &[CrashKind] = &[
    fault(
        "segv-null",
        SIGSEGV,
        SEGV_MAPERR,
        FaultAddr::Exact(0),
        "crash_segv_null",
    ),
    fault(
        "segv-wild",
        SIGSEGV,
        SEGV_MAPERR,
        FaultAddr::Exact(SEGV_WILD_ADDR),
        "crash_segv_wild",
    ),
    fault(
        "segv-noncanonical",
        SIGSEGV,
        SI_KERNEL,
        FaultAddr::Exact(0),
        "crash_segv_noncanonical",
    ),
    fault(
        "write-ro",
        SIGSEGV,
        SEGV_ACCERR,
        FaultAddr::Printed,
        "crash_write_ro",
    ),
    fault(
        "stack-overflow",
        SIGSEGV,
        SEGV_MAPERR,
        FaultAddr::None,
        "crash_stack_overflow",
    ),
    fault(
        "sigbus",
        SIGBUS,
        BUS_ADRERR,
        FaultAddr::Printed,
        "crash_sigbus",
    ),
    fault(
        "fpe-int-div",
        SIGFPE,
        FPE_INTDIV,
        FaultAddr::Pc,
        "crash_fpe_int_div",
    ),
    fault("sigill", SIGILL, ILL_ILLOPN, FaultAddr::Pc, "crash_sigill"),
    aborts("abort", "crash_abort"),
    aborts("assert", "crash_assert"),
    aborts("stack-chk", "crash_stack_chk"),
    aborts("rust-panic-abort", "crash_rust_panic_abort"),
    aborts("cxx-terminate", "crash_cxx_terminate"),
    CrashKind {
        printed_tid_crashes: false,
        ..fault(
            "threads-crash",
            SIGSEGV,
            SEGV_MAPERR,
            FaultAddr::PerThread,
            "crash_threads",
        )
    },
    // Its own SIGSEGV handler resets SIG_DFL and raise()s: the fatal signal
    // is the re-raised one (SI_TKILL, no address), delivered when the
    // handler returns, with the registers back at the faulting write.
    fault(
        "reraise",
        SIGSEGV,
        SI_TKILL,
        FaultAddr::None,
        "crash_reraise",
    ),
];

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static CrashKind> {
    KINDS.iter().find(|k| k.name == name)
}

/// `crashing <kind> pid=<pid> tid=<tid> addr=<0xHEX or ->`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashingLine {
    /// The kind's name.
    pub kind: String,
    /// The crasher's pid.
    pub pid: u32,
    /// The tid of the thread that printed the line.
    pub tid: u32,
    /// The fault address, when the crasher knows it in advance.
    pub addr: Option<u64>,
}

/// Parses a crashing line (trailing newline allowed); `None` if it is not one.
pub fn parse_crashing_line(line: &str) -> Option<CrashingLine> {
    let mut words = line.trim_end().split(' ');
    if words.next()? != "crashing" {
        return None;
    }
    let kind = words.next()?.to_string();
    let pid = field(words.next()?, "pid=")?.parse().ok()?;
    let tid = field(words.next()?, "tid=")?.parse().ok()?;
    let addr = match field(words.next()?, "addr=")? {
        "-" => None,
        hex => Some(parse_hex(hex)?),
    };
    if words.next().is_some() || kind.is_empty() {
        return None;
    }
    Some(CrashingLine {
        kind,
        pid,
        tid,
        addr,
    })
}

/// `ready <pid>` (`sleep`) or `ready <pid> marker=<0xADDR> threads=<N>`
/// (`live`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyLine {
    /// The crasher's pid.
    pub pid: u32,
    /// Address of [`LIVE_MARKER`] in the crasher (`live` only).
    pub marker: Option<u64>,
    /// Number of worker threads (`live` only).
    pub threads: Option<usize>,
}

/// Parses a ready line (trailing newline allowed); `None` if it is not one.
pub fn parse_ready_line(line: &str) -> Option<ReadyLine> {
    let mut words = line.trim_end().split(' ');
    if words.next()? != "ready" {
        return None;
    }
    let pid = words.next()?.parse().ok()?;
    let (marker, threads) = match words.next() {
        None => (None, None),
        Some(m) => {
            let marker = parse_hex(field(m, "marker=")?)?;
            let threads = field(words.next()?, "threads=")?.parse().ok()?;
            (Some(marker), Some(threads))
        }
    };
    if words.next().is_some() {
        return None;
    }
    Some(ReadyLine {
        pid,
        marker,
        threads,
    })
}

/// Parses `threads <tid> <tid> ...` (`threads-crash`): the tids in index
/// order (see [`threads_crash_addr`]).
pub fn parse_threads_line(line: &str) -> Option<Vec<u32>> {
    let mut words = line.trim_end().split(' ');
    if words.next()? != "threads" {
        return None;
    }
    let tids = words
        .map(|w| w.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    (!tids.is_empty()).then_some(tids)
}

fn field<'a>(word: &'a str, key: &str) -> Option<&'a str> {
    word.strip_prefix(key)
}

fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Path of the `crasher` binary, for tests of other crates (where
/// `CARGO_BIN_EXE_crasher` does not exist).
///
/// In order: `$CORONER_CRASHER`; `crasher` in the cargo profile directory
/// of the running test (`target/<profile>/deps/<test>` →
/// `target/<profile>/crasher`); otherwise it is built there with the cargo
/// that runs the tests (`$CARGO`), as `cargo test -p <other crate>` builds
/// only this package's library.
pub fn crasher_path() -> io::Result<PathBuf> {
    if let Some(path) = env::var_os("CORONER_CRASHER") {
        return Ok(PathBuf::from(path));
    }
    let exe = env::current_exe()?;
    let profile_dir = profile_dir(&exe).ok_or_else(|| {
        io::Error::other(format!(
            "{} is not inside a cargo target directory; set CORONER_CRASHER",
            exe.display()
        ))
    })?;
    let crasher = profile_dir.join("crasher");
    if !crasher.is_file() {
        build_crasher(profile_dir)?;
    }
    Ok(crasher)
}

/// `target/<profile>` (or `target/<triple>/<profile>`) for an executable
/// cargo built in it or in its `deps`.
fn profile_dir(exe: &Path) -> Option<&Path> {
    let dir = exe.parent()?;
    Some(if dir.file_name()? == "deps" {
        dir.parent()?
    } else {
        dir
    })
}

fn build_crasher(profile_dir: &Path) -> io::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .ok_or_else(|| io::Error::other("cargo profile directory is not UTF-8"))?;
    // `debug` is the directory of the `dev` and `test` profiles.
    let profile = if profile == "debug" { "dev" } else { profile };
    let parent = profile_dir
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", profile_dir.display())))?;
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "coroner-crashers",
        "--bin",
        "crasher",
    ])
    .args(["--profile", profile])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    // Cargo tags the root of a target directory; below it, a directory
    // between the root and the profile is a `--target` triple.
    let target_dir = if parent.join("CACHEDIR.TAG").is_file() {
        parent
    } else {
        let triple = parent.file_name().ok_or_else(|| {
            io::Error::other(format!("{} is not a target directory", parent.display()))
        })?;
        cmd.arg("--target").arg(triple);
        parent.parent().unwrap_or(parent)
    };
    cmd.arg("--target-dir").arg(target_dir);
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "building crasher failed: {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashing_line_round_trips() {
        let line = "crashing segv-null pid=12 tid=13 addr=0x0\n";
        assert_eq!(
            parse_crashing_line(line),
            Some(CrashingLine {
                kind: "segv-null".into(),
                pid: 12,
                tid: 13,
                addr: Some(0)
            })
        );
        let line = "crashing abort pid=1 tid=1 addr=-";
        assert_eq!(parse_crashing_line(line).unwrap().addr, None);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for line in [
            "",
            "crashing",
            "crashing x pid=1 tid=2",
            "crashing x pid=1 tid=2 addr=12",
            "crashing x pid=1 tid=2 addr=0x",
            "crashing x pid=1 tid=2 addr=0x+1",
            "crashing x pid=-1 tid=2 addr=-",
            "crashing x pid=1 tid=2 addr=- extra",
            "crashing  pid=1 tid=2 addr=-",
            "ready 1",
        ] {
            assert_eq!(parse_crashing_line(line), None, "{line:?}");
        }
        for line in [
            "ready",
            "ready x",
            "ready 1 marker=0x10",
            "ready 1 threads=2",
        ] {
            assert_eq!(parse_ready_line(line), None, "{line:?}");
        }
        assert_eq!(parse_threads_line("threads"), None);
        assert_eq!(parse_threads_line("threads 1 x"), None);
    }

    #[test]
    fn ready_and_threads_lines_parse() {
        assert_eq!(
            parse_ready_line("ready 7 marker=0x7f00 threads=4\n"),
            Some(ReadyLine {
                pid: 7,
                marker: Some(0x7f00),
                threads: Some(4)
            })
        );
        assert_eq!(parse_ready_line("ready 7").unwrap().marker, None);
        assert_eq!(parse_threads_line("threads 3 4 5"), Some(vec![3, 4, 5]));
    }

    #[test]
    fn table_is_consistent() {
        for (i, k) in KINDS.iter().enumerate() {
            assert!(k.function.starts_with("crash_"), "{}", k.name);
            assert!(
                KINDS[..i].iter().all(|o| o.name != k.name),
                "duplicate {}",
                k.name
            );
            assert_eq!(kind(k.name), Some(k));
        }
        assert_eq!(kind("no-such-kind"), None);
        // Every wild address is canonical user space, and the non-canonical
        // one is not.
        let canonical = |a: u64| a < 1 << 47;
        assert!(canonical(SEGV_WILD_ADDR));
        assert!(!canonical(SEGV_NONCANONICAL_ADDR));
        assert!((0..THREADS_CRASH_COUNT).all(|i| canonical(threads_crash_addr(i))));
    }

    #[test]
    fn marker_spells_coronerm() {
        assert_eq!(&LIVE_MARKER.to_be_bytes(), b"CORONERM");
    }

    #[test]
    fn profile_dir_strips_deps() {
        assert_eq!(
            profile_dir(Path::new("t/debug/deps/x-123")),
            Some(Path::new("t/debug"))
        );
        assert_eq!(
            profile_dir(Path::new("t/release/crasher")),
            Some(Path::new("t/release"))
        );
    }
}
