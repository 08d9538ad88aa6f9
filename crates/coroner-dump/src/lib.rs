//! Minidump and ELF core writers, and a never-panicking ELF core reader.
//!
//! Owns: what memory a dump holds ([`plan`]), the bulk memory copy into a
//! dump file ([`copy`]), the dump formats ([`minidump`], [`elfcore`]), the
//! `JIT_DEBUG_INFO` → [`CrashContext`] translation, and publishing a dump
//! file atomically ([`output`]).
//!
//! Must not: call the kernel directly (live access goes through
//! `coroner-proc`), hold policy about *when* to dump, or print anything.

pub mod copy;
pub mod corefile;
pub mod elfcore;
pub mod elfmem;
pub mod jit;
pub mod minidump;
pub mod output;
pub mod plan;
pub mod stream;

pub use copy::{copy_regions, NoProgress, Progress};
pub use jit::crash_context_from_jit_block;
pub use output::{dump_attached, dump_live};
pub use plan::{plan_regions, DumpLevel, Region};

use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_types::jit::JitBlockError;
use coroner_types::{CrashContext, Pid, Tid};
use std::fs::File;
use std::io;
use std::path::PathBuf;

/// The file format of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DumpFormat {
    /// Breakpad-flavoured minidump (rust-minidump, lldb, WinDbg read it).
    #[default]
    Minidump,
    /// ELF core file (gdb reads it).
    ElfCore,
}

/// What to write.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    pub level: DumpLevel,
    pub format: DumpFormat,
    /// Embedded as a comment (minidump `CommentStreamA`).
    pub comment: Option<String>,
    /// The fault to record as the dump's exception; `None` = "dump requested".
    pub crash: Option<CrashContext>,
    /// fsync the dump (and its directory) before publishing it, so it
    /// survives a power loss. Off for on-demand dumps (as gcore and
    /// procdump); on for the crash tiers.
    pub durable: bool,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Size of the dump file.
    pub bytes_written: u64,
    /// Target memory bytes the dump holds.
    pub memory_bytes: u64,
    /// Memory regions (descriptors / segments) the dump holds.
    pub regions: usize,
    pub threads: usize,
    pub modules: usize,
    /// Non-fatal problems, also recorded inside the dump.
    pub soft_errors: Vec<String>,
}

/// Why a dump could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Writing or laying out the dump file failed.
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file-system operation on a named path failed.
    #[error("cannot {what} {}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The destination exists and overwriting was not asked for.
    #[error("{} already exists (overwrite not requested)", path.display())]
    Exists { path: PathBuf },
    /// A minidump structure could not be encoded.
    #[error("cannot encode the minidump {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: scroll::Error,
    },
    /// The minidump's metadata would not fit below 4 GiB (32-bit RVAs).
    #[error("minidump metadata of pid {pid} is {bytes} bytes, past the 4 GiB RVA limit")]
    MetadataTooLarge { pid: Pid, bytes: u64 },
    /// Attaching to, stopping, inspecting or detaching the live process failed.
    #[error("cannot {what} process {pid}")]
    Proc {
        what: &'static str,
        pid: Pid,
        #[source]
        source: coroner_proc::ProcError,
    },
    /// The crash context names a thread the snapshot does not have.
    #[error("crash thread {tid} is not a thread of process {pid}")]
    CrashThread { pid: Pid, tid: Tid },
    /// The `JIT_DEBUG_INFO` block could not be read from the target.
    #[error("cannot read the JIT_DEBUG_INFO block at {addr:#x}")]
    JitRead {
        addr: u64,
        #[source]
        source: io::Error,
    },
    /// The `JIT_DEBUG_INFO` block is malformed (size, version).
    #[error("invalid JIT_DEBUG_INFO block at {addr:#x}")]
    JitBlock {
        addr: u64,
        #[source]
        source: JitBlockError,
    },
    /// The block is for another architecture.
    #[error("JIT_DEBUG_INFO block at {addr:#x} is for ELF machine {machine}, only x86-64 (62) is supported")]
    JitMachine { addr: u64, machine: u32 },
    /// A siginfo, ucontext or FP state (named by a JIT block, or given to
    /// `.cxr`) is unreadable.
    #[error("cannot read the {what} at {addr:#x}")]
    JitContext {
        what: &'static str,
        addr: u64,
        #[source]
        source: io::Error,
    },
}

impl DumpError {
    /// An I/O failure while writing a dump (`what` says which step).
    pub fn io(what: &'static str, source: io::Error) -> DumpError {
        DumpError::Io { what, source }
    }
}

/// Check that the crash context, if any, names a thread of the snapshot.
fn check_crash_thread(snap: &ProcessSnapshot, opts: &DumpOptions) -> Result<(), DumpError> {
    match &opts.crash {
        Some(c) if !snap.threads.iter().any(|t| t.tid == c.tid) => Err(DumpError::CrashThread {
            pid: snap.pid,
            tid: c.tid,
        }),
        _ => Ok(()),
    }
}

/// Write a minidump of `snap` (memory from `mem`) to `out`, from offset 0.
pub fn write_minidump(
    out: &mut File,
    snap: &ProcessSnapshot,
    mem: &dyn MemorySource,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    check_crash_thread(snap, opts)?;
    minidump::write(out, snap, mem, opts, progress)
}

/// Write a dump in `opts.format` to `out`, from offset 0.
pub fn write_dump(
    out: &mut File,
    snap: &ProcessSnapshot,
    mem: &dyn MemorySource,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    match opts.format {
        DumpFormat::Minidump => write_minidump(out, snap, mem, opts, progress),
        DumpFormat::ElfCore => {
            check_crash_thread(snap, opts)?;
            elfcore::write_elf_core(out, snap, mem, opts, progress)
        }
    }
}
