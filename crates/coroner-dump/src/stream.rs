//! One pass over an ELF core stream: what the kernel writes on a
//! `core_pattern` pipe helper's stdin.
//!
//! Owns: [`ingest`], which reads the stream once, from its first byte to
//! EOF, and at the same time
//! - stores the core as received ([`CoreOut::Plain`], written with `pwrite`
//!   at the stream offset) or compressed on the fly ([`CoreOut::Zstd`]),
//!   up to [`StreamPlan::max_bytes`];
//! - builds the [`ProcessSnapshot`] and [`CrashContext`] from the notes,
//!   with the parser [`crate::corefile::CoreFile`] uses;
//! - keeps the memory a minidump of the wanted level will read
//!   ([`StreamMemory`], a [`MemorySource`]), decided from the notes before
//!   the memory arrives.
//!
//! Must not: trust the stream (it comes from a crashing process; every
//! offset and size is checked, every buffer grows only with bytes actually
//! received and is capped), seek or buffer the whole stream, panic, or stop
//! reading before EOF unless the deadline passed (the kernel waits for the
//! helper to drain the pipe).
//!
//! The kernel's layout (`fs/binfmt_elf.c`): ELF header, program headers,
//! the `PT_NOTE` data, then page-aligned `PT_LOAD` data in ascending file
//! offset; unreadable pages are zeros, segments not dumped have `p_filesz`
//! 0, and with `PN_XNUM` the section header holding the real count comes
//! last (so the count is taken from the first `PT_NOTE`'s offset). `gcore`
//! writes its notes after the memory: then nothing can be decided before
//! the memory passes, and all of it is kept (scratch file, else memory up
//! to a cap).
//!
//! Memory kept when there is no plain core (the minidump reads it later):
//! - **mini**: what [`plan_regions`] keeps at the mini level (each thread's
//!   stack window and the code around each IP, the crash context's too);
//!   the first [`MODULE_HEAD_BYTES`] of every readable file mapping at
//!   file offset 0 (ELF header, program headers and build-id note, which
//!   [`crate::minidump::find_modules`] reads); the vdso (`AT_SYSINFO_EHDR`:
//!   cores do not name it); the non-code
//!   mappings of the executable and of the dynamic linker, up to
//!   [`LOADER_DATA_BYTES`] each (`_DYNAMIC`, `r_debug`); and private
//!   anonymous writable mappings of at most [`SMALL_ANON_BYTES`] (the
//!   dynamic linker's early allocations hold the `link_map` entries), up to
//!   [`SMALL_ANON_TOTAL`] in all. The `r_debug` walk itself needs memory
//!   read, so these cover where glibc keeps it instead.
//! - **mini-plus**: mini, plus [`plan_regions`]' mini-plus memory (private
//!   writable mappings) in the scratch file, else in memory.
//! - **full**: mini, plus [`plan_regions`]' full memory, in the scratch
//!   file ([`StreamError::NoScratch`] without one).
//!
//! Mini memory lives in memory while [`MEMORY_BUDGET`] allows (crashing
//! thread's stack first), then in the scratch file, else it is dropped with
//! a soft error. With a plain core the minidump reads the core file, so
//! only mini memory past the size cap is kept (in memory) — and, should the
//! core's write fail (a full disk), the mini memory from the failure on
//! (standby pieces, budgeted separately).
//!
//! The size cap stops what goes to the core and to the scratch file; the
//! stream is still read (and mini memory still kept) to EOF. The deadline
//! is checked between reads: a writer that stalls inside one `read` holds
//! it up (the kernel does not stall; a caller that must bound it closes
//! the pipe or uses an alarm).

use crate::corefile::{
    self, parse_header, CoreMeta, HeaderProblem, LoadSegment, MAX_NOTE_BYTES, MAX_PHDRS, PN_XNUM,
    PT_LOAD, PT_NOTE,
};
use crate::elfcore::merge_ranges;
use crate::plan::{plan_regions, DumpLevel, Region};
use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_types::CrashContext;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Bytes asked of the stream per `read` once the headers are in.
const READ_BUF: usize = 2 << 20;
/// Bytes asked per `read` while the headers and notes come in.
const HEAD_READ: usize = 64 << 10;
/// Largest program header table accepted (bytes).
const MAX_TABLE_BYTES: u64 = 64 << 20;
/// Most memory bytes kept in memory (not in the scratch file).
pub const MEMORY_BUDGET: u64 = 256 << 20;
/// Bytes kept from the start of each file mapping at offset 0.
pub const MODULE_HEAD_BYTES: u64 = 64 << 10;
/// Bytes kept from each non-code mapping of the executable and ld.so.
pub const LOADER_DATA_BYTES: u64 = 1 << 20;
/// Largest private anonymous writable mapping kept whole at the mini level.
pub const SMALL_ANON_BYTES: u64 = 64 << 10;
/// Most bytes of small anonymous mappings kept at the mini level.
pub const SMALL_ANON_TOTAL: u64 = 4 << 20;
/// Most kept pieces (ranges of one segment).
const MAX_PIECES: usize = 1 << 20;
const AT_BASE: u64 = 7;
const AT_SYSINFO_EHDR: u64 = 33;

/// Where the core, as received, is written.
#[derive(Debug)]
pub enum CoreOut {
    /// The stream bytes at their stream offsets (`pwrite`), so the file is
    /// the core. Open it read-write: the minidump reads memory back from it.
    Plain(File),
    /// zstd-compressed, written as the bytes arrive, from the file's
    /// current position.
    Zstd { file: File, level: i32 },
}

/// What to do with the stream.
#[derive(Debug)]
pub struct StreamPlan {
    /// Write the core, as received, here. Plain: the minidump afterwards
    /// reads memory from this file (pread), so nothing else is kept.
    pub core: Option<CoreOut>,
    /// The minidump level wanted, if any; decides what memory is kept when
    /// there is no Plain core.
    pub minidump: Option<DumpLevel>,
    /// ProcessSizeMax: stop storing (core, scratch) after this many stream
    /// bytes; keep reading and discarding to EOF so the kernel finishes. A
    /// truncated core gets its program headers patched so every `PT_LOAD`'s
    /// `p_filesz` covers only bytes present.
    pub max_bytes: u64,
    /// Time cap: past it, stop reading altogether (mark truncated) and
    /// return what we have.
    pub deadline: Option<Instant>,
    /// Scratch file (an unlinked `O_TMPFILE`, read-write) for memory a
    /// Full or MiniPlus minidump needs when there is no Plain core.
    pub scratch: Option<File>,
}

impl Default for StreamPlan {
    /// No core, no minidump, no size cap, no deadline, no scratch file.
    fn default() -> Self {
        StreamPlan {
            core: None,
            minidump: None,
            max_bytes: u64::MAX,
            deadline: None,
            scratch: None,
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Bytes read from the stream.
    pub stream_bytes: u64,
    /// Where the headers say the core ends.
    pub expected_bytes: u64,
    /// Stream bytes stored in the core (uncompressed).
    pub core_bytes: u64,
    /// Size of the core file written (compressed for Zstd).
    pub core_file_bytes: u64,
    /// Memory bytes kept for the minidump (in memory and scratch).
    pub kept_bytes: u64,
    /// The core or the kept memory lacks part of the stream.
    pub truncated: bool,
    /// Why ("size cap N bytes", "time cap", "stream ended at offset N of M").
    pub truncated_reason: Option<String>,
    pub elapsed: Duration,
}

/// The result of [`ingest`].
#[derive(Debug)]
pub struct Ingested {
    /// Threads (crashing first), mappings, auxv, names: what
    /// `CoreFile::snapshot` gives for the same core, plus the stream's soft
    /// errors (so a dump records them).
    pub snapshot: ProcessSnapshot,
    /// From `NT_SIGINFO` and the first thread, as `CoreFile::crash_context`.
    pub crash: Option<CrashContext>,
    /// The memory kept, and the plain core's.
    pub memory: StreamMemory,
    pub stats: IngestStats,
    /// The stream's own problems (truncation, caps, write failures).
    pub soft_errors: Vec<String>,
    /// The core file written: Plain with its headers patched if truncated,
    /// Zstd finished.
    pub core_file: Option<File>,
}

/// Why a stream could not be ingested at all.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The ELF header or program headers are not those of an x86-64 core.
    #[error("core stream at offset {offset:#x}: {what}")]
    Header { offset: u64, what: String },
    /// EOF before the headers and notes were complete.
    #[error(
        "core stream ended at offset {offset:#x}, inside the {what} (which end at {needed:#x})"
    )]
    Short {
        offset: u64,
        what: &'static str,
        needed: u64,
    },
    /// The deadline passed before the headers and notes were complete.
    #[error("time cap passed at core stream offset {offset:#x}, inside the {what}")]
    TimeCap { offset: u64, what: &'static str },
    /// Reading the stream failed before the headers and notes were complete.
    #[error("cannot read the core stream at offset {offset:#x}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// Setting up an output failed.
    #[error("cannot {what}")]
    Write {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A Full minidump without a Plain core needs a scratch file.
    #[error("a full minidump from a core stream needs a plain core or a scratch file")]
    NoScratch,
}

/// Where a kept piece's bytes are.
enum Store {
    Mem(Vec<u8>),
    /// At this offset of the scratch file.
    Scratch(u64),
    /// Not kept (no room); counted in a soft error.
    Dropped,
}

impl std::fmt::Debug for Store {
    /// Sizes, not the (possibly megabytes of) bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Mem(v) => write!(f, "Mem({} bytes)", v.len()),
            Store::Scratch(at) => write!(f, "Scratch({at:#x})"),
            Store::Dropped => f.write_str("Dropped"),
        }
    }
}

/// Target memory `[vaddr, vaddr + len)`, stream bytes `[off, off + len)`.
#[derive(Debug)]
struct Piece {
    vaddr: u64,
    off: u64,
    len: u64,
    /// Bytes received and stored, from the start.
    filled: u64,
    store: Store,
    /// Mini memory the plain core holds: kept only if the core write has
    /// failed before these bytes arrive (then from the failure on).
    standby: bool,
}

/// The plain core backing memory reads.
#[derive(Debug)]
struct CoreBacking {
    file: File,
    /// Bytes of the stream stored in it.
    len: u64,
    loads: Vec<LoadSegment>,
}

/// Memory kept from a core stream: pieces (in memory or in the scratch
/// file), then the plain core file. Reads past what arrived return 0.
#[derive(Debug)]
pub struct StreamMemory {
    /// Sorted by `vaddr`, none empty.
    pieces: Vec<Piece>,
    scratch: Option<File>,
    core: Option<CoreBacking>,
}

impl StreamMemory {
    /// Memory bytes kept (in memory and in the scratch file).
    pub fn kept_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.filled).sum()
    }

    /// The kept ranges, sorted by address.
    pub fn kept_regions(&self) -> Vec<Region> {
        self.pieces
            .iter()
            .map(|p| Region {
                start: p.vaddr,
                len: p.filled,
            })
            .collect()
    }
}

impl MemorySource for StreamMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let i = self.pieces.partition_point(|p| p.vaddr <= addr);
        if let Some(p) = i.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            let rel = addr - p.vaddr;
            if rel < p.filled {
                let n = usize::try_from(p.filled - rel)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                match &p.store {
                    Store::Mem(v) => {
                        let Some(src) = usize::try_from(rel)
                            .ok()
                            .and_then(|r| v.get(r..r.checked_add(n)?))
                        else {
                            return Ok(0);
                        };
                        buf[..n].copy_from_slice(src);
                        return Ok(n);
                    }
                    Store::Scratch(at) => {
                        if let Some(f) = &self.scratch {
                            let Some(pos) = at.checked_add(rel) else {
                                return Ok(0);
                            };
                            return corefile::read_full_at(f, &mut buf[..n], pos);
                        }
                    }
                    Store::Dropped => {}
                }
            }
        }
        match &self.core {
            Some(c) => corefile::read_loads(&c.file, c.len, &c.loads, addr, buf),
            None => Ok(0),
        }
    }
}

/// No memory at all (for the snapshot built before the memory arrives).
struct NoMemory;

impl MemorySource for NoMemory {
    fn read(&self, _addr: u64, _buf: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

/// The stream, with its offset and the deadline.
struct Input<'a> {
    r: &'a mut dyn Read,
    pos: u64,
    deadline: Option<Instant>,
}

impl Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.r.read(buf) {
                Ok(n) => {
                    let n = n.min(buf.len());
                    self.pos = self.pos.saturating_add(n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Grow `head` (the stream from offset 0) to `len` bytes.
    fn fill(
        &mut self,
        head: &mut Vec<u8>,
        len: u64,
        what: &'static str,
    ) -> Result<(), StreamError> {
        while (head.len() as u64) < len {
            if self.past_deadline() {
                return Err(StreamError::TimeCap {
                    offset: self.pos,
                    what,
                });
            }
            let want = usize::try_from(len - head.len() as u64)
                .unwrap_or(usize::MAX)
                .min(HEAD_READ);
            let old = head.len();
            head.resize(old + want, 0);
            let got = self.read(&mut head[old..]);
            match got {
                Ok(0) => {
                    head.truncate(old);
                    return Err(StreamError::Short {
                        offset: self.pos,
                        what,
                        needed: len,
                    });
                }
                Ok(n) => head.truncate(old + n),
                Err(source) => {
                    head.truncate(old);
                    return Err(StreamError::Read {
                        offset: self.pos,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// One program header, as needed to patch it.
#[derive(Clone, Copy, Debug)]
struct RawPhdr {
    /// Stream offset of its `p_filesz` field.
    filesz_at: u64,
    offset: u64,
    filesz: u64,
}

/// `(stream offset of p_filesz, new value)` for every `PT_LOAD`/`PT_NOTE`
/// whose data would run past `stored`, where the field itself is stored.
fn phdr_patches(phdrs: &[RawPhdr], stored: u64) -> Vec<(u64, u64)> {
    phdrs
        .iter()
        .filter(|p| p.offset.saturating_add(p.filesz) > stored)
        .filter(|p| p.filesz_at.saturating_add(8) <= stored)
        .map(|p| (p.filesz_at, stored.saturating_sub(p.offset).min(p.filesz)))
        .collect()
}

/// The core being written.
enum CoreSink {
    None,
    Plain {
        file: File,
        /// Stream bytes stored (a prefix).
        stored: u64,
        failed: bool,
    },
    Zstd {
        enc: zstd::Encoder<'static, File>,
        stored: u64,
        failed: bool,
        /// The headers were patched for the size cap before compression.
        prepatched: bool,
    },
}

impl CoreSink {
    /// Store `data` (stream bytes from `off`), up to `cap`. Write failures
    /// stop the core there (a soft error).
    fn store(&mut self, off: u64, data: &[u8], cap: u64, soft: &mut Vec<String>) {
        let (stored, failed) = match self {
            CoreSink::None => return,
            CoreSink::Plain { stored, failed, .. } | CoreSink::Zstd { stored, failed, .. } => {
                (*stored, *failed)
            }
        };
        if failed || off != stored || off >= cap {
            return;
        }
        let n = usize::try_from(cap - off)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let part = &data[..n];
        let res = match self {
            CoreSink::None => Ok(()),
            CoreSink::Plain { file, .. } => file.write_all_at(part, off),
            CoreSink::Zstd { enc, .. } => enc.write_all(part),
        };
        match self {
            CoreSink::None => {}
            CoreSink::Plain { stored, failed, .. } | CoreSink::Zstd { stored, failed, .. } => {
                match res {
                    Ok(()) => *stored += n as u64,
                    Err(e) => {
                        *failed = true;
                        soft.push(format!("core write failed at offset {off:#x}: {e}"));
                    }
                }
            }
        }
    }

    fn failed(&self) -> bool {
        match self {
            CoreSink::None => false,
            CoreSink::Plain { failed, .. } | CoreSink::Zstd { failed, .. } => *failed,
        }
    }

    fn stored(&self) -> u64 {
        match self {
            CoreSink::None => 0,
            CoreSink::Plain { stored, .. } | CoreSink::Zstd { stored, .. } => *stored,
        }
    }
}

/// The kept pieces, filled as the stream passes.
struct Keeper {
    pieces: Vec<Piece>,
    /// Indices of `pieces` by stream offset.
    order: Vec<usize>,
    /// `order[next..]` have not started.
    next: usize,
    active: Vec<usize>,
    scratch: Option<File>,
    /// Stream offset past which nothing goes to the scratch file.
    scratch_cap: u64,
    scratch_failed: bool,
}

impl Keeper {
    fn new(pieces: Vec<Piece>, scratch: Option<File>, scratch_cap: u64) -> Keeper {
        let mut order: Vec<usize> = (0..pieces.len()).collect();
        order.sort_by_key(|&i| pieces[i].off);
        Keeper {
            pieces,
            order,
            next: 0,
            active: Vec::new(),
            scratch,
            scratch_cap,
            scratch_failed: false,
        }
    }

    /// Copy the kept parts of `data` (stream bytes from `off`).
    /// `core_failed_at`: where the plain core's write failed, if it did
    /// (standby pieces are kept from there on).
    fn take(&mut self, off: u64, data: &[u8], core_failed_at: Option<u64>, soft: &mut Vec<String>) {
        let end = off.saturating_add(data.len() as u64);
        while let Some(&i) = self.order.get(self.next) {
            if self.pieces[i].off >= end {
                break;
            }
            self.active.push(i);
            self.next += 1;
        }
        let pieces = &mut self.pieces;
        let scratch = &self.scratch;
        let scratch_cap = self.scratch_cap;
        let scratch_failed = &mut self.scratch_failed;
        self.active.retain(|&i| {
            let p = &mut pieces[i];
            if p.standby && p.filled == 0 {
                let p_end = p.off.saturating_add(p.len);
                match core_failed_at {
                    // The core holds these bytes (so far): wait.
                    None => return p_end > end,
                    Some(f) if f >= p_end => return false,
                    // The core holds the part before the failure.
                    Some(f) if f > p.off => {
                        let skip = f - p.off;
                        p.vaddr += skip;
                        p.off = f;
                        p.len -= skip;
                    }
                    Some(_) => {}
                }
            }
            let want = p.off.saturating_add(p.filled);
            let p_end = p.off.saturating_add(p.len);
            if want >= end {
                return true;
            }
            if want < off {
                // Bytes were skipped (cannot happen when fed from 0).
                return false;
            }
            let s = (want - off) as usize;
            let e = (p_end.min(end) - off) as usize;
            let part = &data[s..e];
            match &mut p.store {
                Store::Mem(v) => {
                    if v.capacity() == 0 {
                        v.reserve_exact(usize::try_from(p.len).unwrap_or(0));
                    }
                    v.extend_from_slice(part);
                }
                Store::Scratch(at) => {
                    let Some(f) = scratch else {
                        return false;
                    };
                    if *scratch_failed || want >= scratch_cap {
                        return false;
                    }
                    let n = usize::try_from(scratch_cap - want)
                        .unwrap_or(usize::MAX)
                        .min(part.len());
                    if let Err(e) = f.write_all_at(&part[..n], at.saturating_add(p.filled)) {
                        *scratch_failed = true;
                        soft.push(format!(
                            "scratch file write failed (stream offset {want:#x}): {e}"
                        ));
                        return false;
                    }
                    p.filled += n as u64;
                    return n == part.len() && p.filled < p.len;
                }
                Store::Dropped => return false,
            }
            p.filled += part.len() as u64;
            p.filled < p.len
        });
    }

    fn into_memory(self, core: Option<CoreBacking>) -> StreamMemory {
        let mut pieces: Vec<Piece> = self
            .pieces
            .into_iter()
            .filter(|p| p.filled > 0 && !matches!(p.store, Store::Dropped))
            .collect();
        pieces.sort_by_key(|p| p.vaddr);
        StreamMemory {
            pieces,
            scratch: self.scratch,
            core,
        }
    }
}

/// Half-open address ranges `[start, end)`.
type Ranges = Vec<(u64, u64)>;

/// `a` minus `b` (both sorted and merged).
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(s, e) in a {
        let mut cur = s;
        while j < b.len() && b[j].1 <= cur {
            j += 1;
        }
        let mut k = j;
        while cur < e {
            match b.get(k) {
                Some(&(bs, be)) if bs < e => {
                    if bs > cur {
                        out.push((cur, bs));
                    }
                    cur = cur.max(be);
                    k += 1;
                }
                _ => {
                    out.push((cur, e));
                    break;
                }
            }
        }
    }
    out
}

fn regions_to_ranges(r: &[Region]) -> impl Iterator<Item = (u64, u64)> + '_ {
    r.iter().map(|r| (r.start, r.end()))
}

/// The address ranges the mini level keeps (see the module docs).
fn mini_ranges(snap: &ProcessSnapshot, crash: Option<&CrashContext>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> =
        regions_to_ranges(&plan_regions(snap, DumpLevel::Mini, crash)).collect();
    let exe = snap.exe.as_os_str().as_encoded_bytes();
    let ldso: Option<&[u8]> = snap
        .auxv_value(AT_BASE)
        .and_then(|b| snap.mapping_at(b))
        .map(|m| m.name.as_slice())
        .filter(|n| !n.is_empty());
    // A core's vdso has no name: AT_SYSINFO_EHDR says where it is.
    let vdso = snap.auxv_value(AT_SYSINFO_EHDR);
    let mut anon_total = 0u64;
    for m in &snap.mappings {
        let head = |cap: u64| (m.start, m.start.saturating_add(m.len().min(cap)));
        if m.name.as_slice() == b"[vdso]" || vdso.is_some_and(|v| m.contains(v)) {
            v.push(head(MODULE_HEAD_BYTES));
        } else if m.is_file() {
            if m.offset == 0 && m.perms.read {
                v.push(head(MODULE_HEAD_BYTES));
            }
            let loader =
                (!exe.is_empty() && m.name.as_slice() == exe) || Some(m.name.as_slice()) == ldso;
            if loader && m.perms.read && !m.perms.exec {
                v.push(head(LOADER_DATA_BYTES));
            }
        } else if m.name.is_empty()
            && m.perms.read
            && m.perms.write
            && !m.perms.shared
            && m.len() <= SMALL_ANON_BYTES
            && anon_total.saturating_add(m.len()) <= SMALL_ANON_TOTAL
        {
            anon_total += m.len();
            v.push((m.start, m.end));
        }
    }
    merge_ranges(v)
}

/// Split address ranges into per-segment pieces (file data only).
fn pieces_of(
    ranges: &[(u64, u64)],
    loads: &[LoadSegment],
    out: &mut Vec<(u64, u64, u64)>,
    soft: &mut Vec<String>,
) {
    for &(s, e) in ranges {
        let mut i = loads.partition_point(|l| l.vaddr.saturating_add(l.memsz) <= s);
        while let Some(l) = loads.get(i) {
            if l.vaddr >= e {
                break;
            }
            i += 1;
            let data_end = l.vaddr.saturating_add(l.filesz);
            let (ps, pe) = (s.max(l.vaddr), e.min(data_end));
            if ps >= pe {
                continue;
            }
            if out.len() >= MAX_PIECES {
                soft.push(format!(
                    "more than {MAX_PIECES} memory pieces to keep; the rest is not kept"
                ));
                return;
            }
            let Some(off) = l.offset.checked_add(ps - l.vaddr) else {
                continue;
            };
            out.push((ps, off, pe - ps));
        }
    }
}

/// Where kept memory goes, and what did not fit.
struct Placer {
    budget: u64,
    scratch: bool,
    scratch_next: u64,
    dropped: u64,
}

impl Placer {
    fn place(&mut self, len: u64, prefer_scratch: bool) -> Store {
        if !(prefer_scratch && self.scratch) && len <= self.budget {
            self.budget -= len;
            return Store::Mem(Vec::new());
        }
        if self.scratch {
            let at = self.scratch_next;
            self.scratch_next = self.scratch_next.saturating_add(len);
            return Store::Scratch(at);
        }
        self.dropped = self.dropped.saturating_add(len);
        Store::Dropped
    }
}

/// Decide the pieces to keep. `notes` = the notes came before the memory
/// (snapshot known); `min_off` = keep only stream bytes from here on.
fn plan_pieces(
    snap: Option<(&ProcessSnapshot, Option<&CrashContext>)>,
    loads: &[LoadSegment],
    level: Option<DumpLevel>,
    plain_core: bool,
    min_off: u64,
    scratch: bool,
    soft: &mut Vec<String>,
) -> Vec<Piece> {
    let (mini, bulk): (Ranges, Ranges) = match (level, snap) {
        (None, _) => (Vec::new(), Vec::new()),
        (Some(level), Some((snap, crash))) => {
            let mini = mini_ranges(snap, crash);
            let bulk = match (level, plain_core) {
                (DumpLevel::Mini, _) | (_, true) => Vec::new(),
                (level, false) => {
                    let all = merge_ranges(
                        regions_to_ranges(&plan_regions(snap, level, crash)).collect(),
                    );
                    subtract(&all, &mini)
                }
            };
            (mini, bulk)
        }
        (Some(_), None) => {
            if plain_core {
                (Vec::new(), Vec::new())
            } else {
                soft.push("the notes follow the memory in this stream: all memory is kept".into());
                let all = loads
                    .iter()
                    .map(|l| (l.vaddr, l.vaddr.saturating_add(l.filesz)))
                    .collect();
                (Vec::new(), merge_ranges(all))
            }
        }
    };
    let mut mini_p = Vec::new();
    pieces_of(&mini, loads, &mut mini_p, soft);
    let mut bulk_p = Vec::new();
    pieces_of(&bulk, loads, &mut bulk_p, soft);
    // Stacks first, in thread order (the crashing thread leads).
    if let Some((snap, crash)) = snap {
        mini_p.sort_unstable_by_key(|&(va, _, _)| va);
        let mut rank = vec![usize::MAX; mini_p.len()];
        let sps = crash.map(|c| c.regs.sp()).into_iter().chain(
            snap.threads
                .iter()
                .filter_map(|t| t.regs.as_ref().map(|r| r.sp())),
        );
        for (n, sp) in sps.enumerate() {
            let i = mini_p.partition_point(|&(va, _, _)| va <= sp);
            if let Some(j) = i.checked_sub(1) {
                let (va, _, len) = mini_p[j];
                if sp - va < len {
                    rank[j] = rank[j].min(n);
                }
            }
        }
        let mut ranked: Vec<(usize, (u64, u64, u64))> = rank.into_iter().zip(mini_p).collect();
        ranked.sort_by_key(|&(r, (va, _, _))| (r, va));
        mini_p = ranked.into_iter().map(|(_, p)| p).collect();
    }
    let mut placer = Placer {
        budget: MEMORY_BUDGET,
        scratch,
        scratch_next: 0,
        dropped: 0,
    };
    // Mini memory the plain core holds, on standby should its write fail
    // (a full disk): budgeted on its own, as it replaces the core's part.
    let mut standby_placer = Placer {
        budget: if plain_core { MEMORY_BUDGET } else { 0 },
        scratch: false,
        scratch_next: 0,
        dropped: 0,
    };
    let mut out = Vec::with_capacity(mini_p.len() + bulk_p.len());
    for (list, prefer_scratch) in [(mini_p, false), (bulk_p, true)] {
        for (vaddr, off, len) in list {
            if plain_core && !prefer_scratch && off < min_off {
                let held = len.min(min_off - off);
                if let Store::Mem(v) = standby_placer.place(held, false) {
                    out.push(Piece {
                        vaddr,
                        off,
                        len: held,
                        filled: 0,
                        store: Store::Mem(v),
                        standby: true,
                    });
                }
            }
            // Clip to the part past `min_off` (a plain core holds the rest).
            let (vaddr, off, len) = if off >= min_off {
                (vaddr, off, len)
            } else {
                let skip = min_off - off;
                if skip >= len {
                    continue;
                }
                (vaddr + skip, min_off, len - skip)
            };
            let store = placer.place(len, prefer_scratch);
            out.push(Piece {
                vaddr,
                off,
                len,
                filled: 0,
                store,
                standby: false,
            });
        }
    }
    if placer.dropped > 0 {
        soft.push(format!(
            "{} bytes of memory not kept: over the {MEMORY_BUDGET}-byte memory budget and no scratch file",
            placer.dropped
        ));
    }
    out
}

/// A `PT_NOTE` segment collected as it passes (notes after the memory).
struct Capture {
    offset: u64,
    want: u64,
    data: Vec<u8>,
}

/// Everything the stream bytes go to.
struct Sinks {
    core: CoreSink,
    keeper: Keeper,
    captures: Vec<Capture>,
    max_bytes: u64,
}

impl Sinks {
    fn store_core(&mut self, off: u64, data: &[u8], soft: &mut Vec<String>) {
        self.core.store(off, data, self.max_bytes, soft);
    }

    fn keep(&mut self, off: u64, data: &[u8], soft: &mut Vec<String>) {
        let failed_at = self.core.failed().then(|| self.core.stored());
        self.keeper.take(off, data, failed_at, soft);
        let end = off.saturating_add(data.len() as u64);
        for c in &mut self.captures {
            let next = c.offset.saturating_add(c.data.len() as u64);
            if c.data.len() as u64 >= c.want || next < off || next >= end {
                continue;
            }
            let s = (next - off) as usize;
            let e = (c.offset.saturating_add(c.want).min(end) - off) as usize;
            c.data.extend_from_slice(&data[s..e]);
        }
    }
}

/// The program header count of a `PN_XNUM` core: section header 0's
/// `sh_info` when it comes before the notes, else counted from the first
/// program header (the kernel's `PT_NOTE`) to the note data.
fn xnum_count(
    input: &mut Input<'_>,
    head: &mut Vec<u8>,
    phoff: u64,
    phentsize: u64,
    shoff: u64,
    soft: &mut Vec<String>,
) -> Result<u64, StreamError> {
    let first_end = phoff
        .checked_add(phentsize)
        .filter(|&e| e <= MAX_TABLE_BYTES)
        .ok_or_else(|| StreamError::Header {
            offset: 32,
            what: format!("program headers at {phoff:#x} are out of reach"),
        })?;
    input.fill(head, first_end, "program headers")?;
    let at = phoff as usize;
    let p_type = corefile::u32_at(head, at).unwrap_or(0);
    let note_off = corefile::u64_at(head, at + 8)
        .filter(|_| p_type == PT_NOTE)
        .unwrap_or(0);
    let shdr_end = shoff.saturating_add(64);
    if shoff >= 64 && shdr_end <= phoff.max(note_off) && shdr_end <= MAX_TABLE_BYTES {
        input.fill(head, shdr_end, "section header 0")?;
        return Ok(u64::from(
            corefile::u32_at(head, shoff as usize + 44).unwrap_or(0),
        ));
    }
    if note_off <= phoff {
        return Err(StreamError::Header {
            offset: phoff,
            what: "PN_XNUM, no section header before the notes, and the first program header is not a PT_NOTE after the table".into(),
        });
    }
    let n = (note_off - phoff) / phentsize;
    soft.push(format!(
        "PN_XNUM: {n} program headers, counted up to the first note at {note_off:#x}"
    ));
    Ok(n)
}

/// What the stream's headers say, and the bytes read so far.
struct Headers {
    /// The stream from offset 0: ELF header, program headers and, when
    /// they come first, the notes.
    head: Vec<u8>,
    meta: CoreMeta,
    raw: Vec<RawPhdr>,
    table_end: u64,
    /// Where the headers say the core ends.
    expected: u64,
    /// `PT_NOTE` data as (offset, bytes to read), sorted.
    notes: Vec<(u64, u64)>,
    /// The notes are in `head` and parsed.
    notes_first: bool,
}

/// Read and parse the ELF header, program headers and (when they come
/// before the memory) the notes.
fn read_headers(input: &mut Input<'_>, soft: &mut Vec<String>) -> Result<Headers, StreamError> {
    let mut meta = CoreMeta::default();

    // ELF header.
    let mut head: Vec<u8> = Vec::new();
    input.fill(&mut head, 64, "ELF header")?;
    let hdr = parse_header(&head).map_err(|p| StreamError::Header {
        offset: 0,
        what: match p {
            HeaderProblem::NotElf => "no ELF magic".into(),
            HeaderProblem::Unsupported(what) => format!("not an x86-64 ELF core: {what}"),
        },
    })?;
    let shoff = hdr.shoff;
    let shentsize = u64::from(corefile::u16_at(&head, 58).unwrap_or(0));
    let shnum = u64::from(corefile::u16_at(&head, 60).unwrap_or(0));

    // Program header count (PN_XNUM: see the module docs).
    let mut phnum = u64::from(hdr.phnum);
    if hdr.phnum == PN_XNUM {
        phnum = xnum_count(input, &mut head, hdr.phoff, hdr.phentsize, shoff, soft)?;
    }
    let cap = (MAX_TABLE_BYTES / hdr.phentsize).min(MAX_PHDRS);
    if phnum > cap {
        soft.push(format!("{phnum} program headers; reading the first {cap}"));
        phnum = cap;
    }
    let table_len = phnum * hdr.phentsize;
    let table_end = hdr
        .phoff
        .checked_add(table_len)
        .filter(|&e| e <= MAX_TABLE_BYTES.saturating_mul(2))
        .ok_or_else(|| StreamError::Header {
            offset: 32,
            what: format!(
                "program header table at {:#x} ({table_len} bytes) is out of reach",
                hdr.phoff
            ),
        })?;
    input.fill(&mut head, table_end, "program headers")?;
    let table = &head[hdr.phoff as usize..table_end as usize];
    let note_segments = meta.parse_phdrs(table, hdr.phentsize);
    let mut raw = Vec::new();
    let mut expected = table_end;
    for (i, ph) in table.chunks_exact(hdr.phentsize as usize).enumerate() {
        let p_type = corefile::u32_at(ph, 0).unwrap_or(0);
        let offset = corefile::u64_at(ph, 8).unwrap_or(0);
        let filesz = corefile::u64_at(ph, 32).unwrap_or(0);
        if p_type == PT_LOAD || p_type == PT_NOTE {
            expected = expected.max(offset.saturating_add(filesz));
            raw.push(RawPhdr {
                filesz_at: hdr.phoff + (i as u64) * hdr.phentsize + 32,
                offset,
                filesz,
            });
        }
    }
    if shoff != 0 && shnum != 0 {
        expected = expected.max(shoff.saturating_add(shnum.saturating_mul(shentsize)));
    }

    // Notes: in the head when they come before the memory.
    let mut notes: Vec<(u64, u64)> = Vec::new();
    let mut note_budget = MAX_NOTE_BYTES;
    for (offset, filesz) in note_segments {
        let want = filesz.min(note_budget);
        if want < filesz {
            soft.push(format!(
                "PT_NOTE at {offset:#x} is {filesz} bytes; reading {want}"
            ));
        }
        note_budget -= want;
        if offset.checked_add(want).is_none() {
            soft.push(format!("PT_NOTE at {offset:#x} overflows; skipped"));
            continue;
        }
        notes.push((offset, want));
    }
    notes.sort_unstable();
    let first_data = meta
        .loads
        .iter()
        .filter(|l| l.filesz > 0)
        .map(|l| l.offset)
        .min()
        .unwrap_or(u64::MAX);
    let notes_end = notes.iter().map(|&(o, w)| o + w).max().unwrap_or(0);
    let notes_first =
        notes_end <= first_data && notes_end <= table_end.saturating_add(MAX_NOTE_BYTES);
    if notes_first {
        input.fill(&mut head, notes_end, "notes")?;
        for &(o, w) in &notes {
            meta.parse_notes(&head[o as usize..(o + w) as usize], o);
        }
    }
    Ok(Headers {
        head,
        meta,
        raw,
        table_end,
        expected,
        notes,
        notes_first,
    })
}

/// The finished core: the file, the backing for memory reads (plain) and
/// the file's size.
struct FinishedCore {
    file: Option<File>,
    backing: Option<CoreBacking>,
    file_bytes: u64,
}

/// Patch a truncated plain core's program headers, or finish the zstd
/// stream.
fn finish_core(
    core_sink: CoreSink,
    h: &HeaderFacts<'_>,
    max_bytes: u64,
    soft: &mut Vec<String>,
) -> FinishedCore {
    let (raw, expected, table_end) = (h.raw, h.expected, h.table_end);
    let mut core_file = None;
    let mut backing = None;
    let mut core_file_bytes = 0;
    match core_sink {
        CoreSink::None => {}
        CoreSink::Plain { file, stored, .. } => {
            if stored < expected {
                if stored < table_end {
                    soft.push(format!(
                        "the core holds {stored} bytes, less than its headers: not patched"
                    ));
                }
                for (at, v) in phdr_patches(raw, stored) {
                    if let Err(e) = file.write_all_at(&v.to_le_bytes(), at) {
                        soft.push(format!(
                            "cannot patch the core's program header at {at:#x}: {e}"
                        ));
                    }
                }
            }
            core_file_bytes = stored;
            match file.try_clone() {
                Ok(f) => {
                    backing = Some(CoreBacking {
                        file: f,
                        len: stored,
                        loads: h.loads.to_vec(),
                    })
                }
                Err(e) => soft.push(format!("cannot reopen the core to read memory: {e}")),
            }
            core_file = Some(file);
        }
        CoreSink::Zstd {
            enc,
            stored,
            prepatched,
            ..
        } => {
            if stored < expected && !(prepatched && stored == max_bytes) {
                soft.push(format!(
                    "the zstd core holds {stored} of {expected} bytes; its program headers still describe all of them"
                ));
            }
            match enc.finish() {
                Ok(mut f) => {
                    if let Err(e) = f.flush() {
                        soft.push(format!("cannot flush the zstd core: {e}"));
                    }
                    core_file_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
                    core_file = Some(f);
                }
                Err(e) => soft.push(format!("cannot finish the zstd core: {e}")),
            }
        }
    }

    FinishedCore {
        file: core_file,
        backing,
        file_bytes: core_file_bytes,
    }
}

/// The header facts [`finish_core`] needs.
struct HeaderFacts<'a> {
    raw: &'a [RawPhdr],
    expected: u64,
    table_end: u64,
    loads: &'a [LoadSegment],
}

/// Read an ELF core stream once, to EOF (or the deadline): store the core,
/// parse its notes and keep the memory a minidump of `plan.minidump` needs.
pub fn ingest(input: &mut dyn Read, plan: StreamPlan) -> Result<Ingested, StreamError> {
    let started = Instant::now();
    let StreamPlan {
        core,
        minidump,
        max_bytes,
        deadline,
        scratch,
    } = plan;
    let plain_core = matches!(core, Some(CoreOut::Plain(_)));
    if minidump == Some(DumpLevel::Full) && !plain_core && scratch.is_none() {
        return Err(StreamError::NoScratch);
    }
    let mut input = Input {
        r: input,
        pos: 0,
        deadline,
    };
    let mut soft: Vec<String> = Vec::new();
    let Headers {
        head,
        mut meta,
        raw,
        table_end,
        expected,
        notes,
        notes_first,
    } = read_headers(&mut input, &mut soft)?;
    let pre = notes_first.then(|| (meta.snapshot(&NoMemory), meta.crash_context()));

    // Outputs.
    let core_sink = match core {
        None => CoreSink::None,
        Some(CoreOut::Plain(file)) => CoreSink::Plain {
            file,
            stored: 0,
            failed: false,
        },
        Some(CoreOut::Zstd { file, level }) => CoreSink::Zstd {
            enc: zstd::Encoder::new(file, level).map_err(|source| StreamError::Write {
                what: "start the zstd encoder",
                source,
            })?,
            stored: 0,
            failed: false,
            prepatched: false,
        },
    };
    let pieces = plan_pieces(
        pre.as_ref().map(|(s, c)| (s, c.as_ref())),
        &meta.loads,
        minidump,
        plain_core,
        if plain_core { max_bytes } else { 0 },
        scratch.is_some(),
        &mut soft,
    );
    let mut sinks = Sinks {
        core: core_sink,
        keeper: Keeper::new(pieces, scratch, max_bytes),
        captures: notes
            .iter()
            .filter(|_| !notes_first)
            .map(|&(offset, want)| Capture {
                offset,
                want,
                data: Vec::new(),
            })
            .collect(),
        max_bytes,
    };

    // The head, then the rest of the stream.
    let patched_head = match &mut sinks.core {
        CoreSink::Zstd { prepatched, .. } if expected > max_bytes && max_bytes >= table_end => {
            // Compressed bytes cannot be patched later: patch now.
            let mut h = head.clone();
            for (at, v) in phdr_patches(&raw, max_bytes) {
                if let Some(f) = h.get_mut(at as usize..at as usize + 8) {
                    f.copy_from_slice(&v.to_le_bytes());
                }
            }
            *prepatched = true;
            Some(h)
        }
        _ => None,
    };
    sinks.store_core(0, patched_head.as_deref().unwrap_or(&head), &mut soft);
    drop(patched_head);
    sinks.keep(0, &head, &mut soft);
    drop(head);

    let mut reasons: Vec<String> = Vec::new();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if input.past_deadline() {
            reasons.push("time cap".into());
            break;
        }
        let off = input.pos;
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sinks.store_core(off, &buf[..n], &mut soft);
                sinks.keep(off, &buf[..n], &mut soft);
            }
            Err(e) => {
                reasons.push(format!("read error at offset {off:#x}: {e}"));
                break;
            }
        }
    }
    drop(buf);
    let stream_bytes = input.pos;
    let timed_out = reasons.iter().any(|r| r == "time cap");
    let Sinks {
        core: core_sink,
        keeper,
        captures,
        ..
    } = sinks;
    let storing = !matches!(core_sink, CoreSink::None) || keeper.scratch.is_some();
    if stream_bytes > max_bytes && storing {
        reasons.push(format!("size cap {max_bytes} bytes"));
    }
    if core_sink.failed() {
        reasons.push(format!(
            "core write failed at offset {}",
            core_sink.stored()
        ));
    }
    if stream_bytes < expected && !timed_out {
        reasons.push(format!(
            "stream ended at offset {stream_bytes} of {expected}"
        ));
    }

    // Notes that came after the memory.
    if !notes_first {
        for c in &captures {
            let (o, want, data) = (c.offset, c.want, &c.data);
            if (data.len() as u64) < want {
                let offset = o + data.len() as u64;
                return Err(if timed_out {
                    StreamError::TimeCap {
                        offset,
                        what: "notes",
                    }
                } else {
                    StreamError::Short {
                        offset,
                        what: "notes",
                        needed: o + want,
                    }
                });
            }
            meta.parse_notes(data, o);
        }
    }

    // Finish the core.
    let core_bytes = core_sink.stored();
    let facts = HeaderFacts {
        raw: &raw,
        expected,
        table_end,
        loads: &meta.loads,
    };
    let FinishedCore {
        file: core_file,
        backing,
        file_bytes: core_file_bytes,
    } = finish_core(core_sink, &facts, max_bytes, &mut soft);

    let memory = keeper.into_memory(backing);
    let mut snapshot = meta.snapshot(&memory);
    let crash = meta.crash_context();
    let truncated = !reasons.is_empty();
    if truncated {
        soft.push(format!("core stream truncated: {}", reasons.join("; ")));
    }
    snapshot.soft_errors.extend(soft.iter().cloned());
    let stats = IngestStats {
        stream_bytes,
        expected_bytes: expected,
        core_bytes,
        core_file_bytes,
        kept_bytes: memory.kept_bytes(),
        truncated,
        truncated_reason: truncated.then(|| reasons.join("; ")),
        elapsed: started.elapsed(),
    };
    Ok(Ingested {
        snapshot,
        crash,
        memory,
        stats,
        soft_errors: soft,
        core_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::CoreFile;
    use crate::{write_dump, write_minidump, DumpFormat, DumpOptions, NoProgress};
    use coroner_crashers::{parse_ready_line, ReadyLine, LIVE_MARKER};
    use coroner_proc::{Attached, ThreadSnapshot};
    use coroner_types::{Mapping, Perms, Pid, SigInfo, ThreadRegs, Tid};
    use minidump::{Minidump, MinidumpModuleList, MinidumpThreadList, Module};
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// Returns 1 to 7 bytes per call.
    struct Dribble<'a> {
        data: &'a [u8],
        pos: usize,
        calls: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = (1 + self.calls % 7)
                .min(buf.len())
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Chunks of odd sizes, small and large.
    struct Choppy<'a> {
        data: &'a [u8],
        pos: usize,
        calls: usize,
    }

    impl Read for Choppy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            const SIZES: [usize; 6] = [1, 7, 3, 12_291, 2, 65_537];
            self.calls += 1;
            let n = SIZES[self.calls % SIZES.len()]
                .min(buf.len())
                .min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn chop(data: &[u8]) -> Choppy<'_> {
        Choppy {
            data,
            pos: 0,
            calls: 0,
        }
    }

    fn rw_temp() -> File {
        tempfile::tempfile().expect("temp file")
    }

    fn file_bytes(f: &File) -> Vec<u8> {
        let len = f.metadata().unwrap().len() as usize;
        let mut v = vec![0u8; len];
        f.read_exact_at(&mut v, 0).unwrap();
        v
    }

    fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// A `crasher live` child that has printed its ready line.
    fn live_crasher() -> (std::process::Child, ReadyLine) {
        let exe = coroner_crashers::crasher_path().expect("crasher binary");
        let mut child = Command::new(exe)
            .args(["live", "1", "2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start crasher");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = parse_ready_line(&line).unwrap_or_else(|| panic!("not ready: {line:?}"));
        (child, ready)
    }

    /// A full ELF core of a live crasher written by our writer, with a
    /// crash context on a worker thread (so it comes first, with
    /// `NT_SIGINFO`); and a `gcore` core of the same process when asked
    /// and gdb is installed.
    fn crasher_cores(dir: &Path, with_gcore: bool) -> (PathBuf, Option<PathBuf>, ReadyLine) {
        let (mut child, ready) = live_crasher();
        let ours = dir.join("ours.core");
        {
            let att = Attached::seize(Pid(ready.pid as i32), Duration::from_secs(20))
                .expect("seize the crasher");
            let snap = att.snapshot().expect("snapshot");
            let worker = &snap.threads[1];
            let crash = CrashContext {
                tid: worker.tid,
                siginfo: SigInfo::new_fault(11, 1, 0x10),
                regs: worker.regs.clone().expect("worker registers"),
            };
            let opts = DumpOptions {
                level: DumpLevel::Full,
                format: DumpFormat::ElfCore,
                crash: Some(crash),
                ..DumpOptions::default()
            };
            let mut f = File::create(&ours).unwrap();
            write_dump(&mut f, &snap, att.memory(), &opts, &NoProgress).expect("core");
        }
        let gcore = with_gcore
            .then(|| {
                let prefix = dir.join("gcore");
                let ok = Command::new("gcore")
                    .arg("-o")
                    .arg(&prefix)
                    .arg(ready.pid.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then(|| dir.join(format!("gcore.{}", ready.pid)))
            })
            .flatten();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        (ours, gcore, ready)
    }

    fn assert_same_snapshot(got: &ProcessSnapshot, want: &ProcessSnapshot) {
        assert_eq!(got.pid, want.pid);
        assert_eq!(got.ppid, want.ppid);
        assert_eq!(got.comm, want.comm);
        assert_eq!(got.exe, want.exe);
        assert_eq!(got.auxv, want.auxv);
        assert_eq!(got.mappings, want.mappings);
        assert_eq!(got.files.cmdline, want.files.cmdline);
        assert_eq!(got.threads.len(), want.threads.len());
        for (a, b) in got.threads.iter().zip(&want.threads) {
            assert_eq!(a.tid, b.tid);
            assert_eq!(a.regs, b.regs);
        }
        assert!(!got.threads.is_empty());
    }

    fn read_vec(mem: &dyn MemorySource, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut v = vec![0u8; len];
        mem.read_exact(addr, &mut v).ok()?;
        Some(v)
    }

    #[test]
    fn plain_and_zstd_cores_are_the_stream_and_the_snapshot_is_corefiles() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        let out = ing.core_file.as_ref().expect("core file");
        assert!(
            file_bytes(out) == data,
            "plain core differs from the stream"
        );
        assert!(!ing.stats.truncated, "{:?}", ing.stats);
        assert_eq!(ing.stats.stream_bytes, data.len() as u64);
        assert_eq!(ing.stats.expected_bytes, data.len() as u64);
        assert_eq!(ing.stats.core_bytes, data.len() as u64);
        assert_eq!(ing.stats.kept_bytes, 0, "a plain core needs nothing kept");
        assert!(ing.soft_errors.is_empty(), "{:?}", ing.soft_errors);
        let want = cf.snapshot();
        assert_same_snapshot(&ing.snapshot, &want);
        assert_eq!(ing.crash, cf.crash_context());
        let crash = ing.crash.as_ref().expect("crash context");
        assert_eq!(crash.tid, want.threads[0].tid);
        assert_eq!(crash.siginfo.signo(), 11);
        // Memory is read back from the plain core.
        for t in &want.threads {
            let sp = t.regs.as_ref().unwrap().sp();
            assert_eq!(read_vec(&ing.memory, sp, 256), read_vec(&cf, sp, 256));
            assert!(read_vec(&ing.memory, sp, 256).is_some());
        }

        let plan = StreamPlan {
            core: Some(CoreOut::Zstd {
                file: rw_temp(),
                level: 3,
            }),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        let z = ing.core_file.as_ref().expect("zstd file");
        let compressed = file_bytes(z);
        assert_eq!(ing.stats.core_file_bytes, compressed.len() as u64);
        assert!(compressed.len() < data.len());
        let plain = zstd::decode_all(&compressed[..]).unwrap();
        assert!(plain == data, "zstd core does not decompress to the stream");
        assert_same_snapshot(&ing.snapshot, &want);
    }

    fn thread_stacks(path: &Path) -> Vec<(u32, Vec<u8>)> {
        let dump = Minidump::read_path(path).unwrap();
        let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
        let memory = dump.get_memory().unwrap();
        threads
            .threads
            .iter()
            .map(|t| {
                let stack = t
                    .stack_memory(&memory)
                    .map(|m| m.bytes().to_vec())
                    .unwrap_or_default();
                (t.raw.thread_id, stack)
            })
            .collect()
    }

    fn modules(path: &Path) -> Vec<(String, Option<String>)> {
        let dump = Minidump::read_path(path).unwrap();
        let list = dump.get_stream::<MinidumpModuleList>().unwrap();
        list.iter()
            .map(|m| {
                (
                    m.code_file().into_owned(),
                    m.code_identifier().map(|c| c.to_string()),
                )
            })
            .collect()
    }

    fn minidump_of(
        dir: &Path,
        name: &str,
        snap: &ProcessSnapshot,
        mem: &dyn MemorySource,
        level: DumpLevel,
        crash: Option<CrashContext>,
    ) -> PathBuf {
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap();
        let opts = DumpOptions {
            level,
            crash,
            ..DumpOptions::default()
        };
        write_minidump(&mut f, snap, mem, &opts, &NoProgress).unwrap();
        path
    }

    #[test]
    fn mini_minidump_from_the_stream_matches_one_from_the_core_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let plan = StreamPlan {
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let mut dribble = Dribble {
            data: &data,
            pos: 0,
            calls: 0,
        };
        let ing = ingest(&mut dribble, plan).unwrap();
        assert!(dribble.calls > data.len() / 7);
        assert!(!ing.stats.truncated, "{:?}", ing.stats);
        assert!(ing.core_file.is_none());
        assert!(
            ing.stats.kept_bytes > 0 && ing.stats.kept_bytes < data.len() as u64 / 2,
            "kept {} of {}",
            ing.stats.kept_bytes,
            data.len()
        );
        assert_same_snapshot(&ing.snapshot, &cf.snapshot());

        let from_stream = minidump_of(
            dir.path(),
            "stream.dmp",
            &ing.snapshot,
            &ing.memory,
            DumpLevel::Mini,
            ing.crash.clone(),
        );
        let from_file = minidump_of(
            dir.path(),
            "file.dmp",
            &cf.snapshot(),
            &cf,
            DumpLevel::Mini,
            cf.crash_context(),
        );
        let (a, b) = (thread_stacks(&from_stream), thread_stacks(&from_file));
        assert_eq!(a.len(), 3, "main thread and two workers");
        assert_eq!(a.len(), b.len());
        for ((tid_a, stack_a), (tid_b, stack_b)) in a.iter().zip(&b) {
            assert_eq!(tid_a, tid_b);
            assert!(!stack_a.is_empty(), "thread {tid_a}: no stack");
            assert!(stack_a == stack_b, "thread {tid_a}: stack bytes differ");
        }
        let (ma, mb) = (modules(&from_stream), modules(&from_file));
        assert_eq!(ma, mb);
        assert!(ma.iter().any(|(n, _)| n.ends_with("/crasher")));
        assert!(
            ma.iter().filter(|(_, id)| id.is_some()).count() >= 3,
            "{ma:?}"
        );
        // The r_debug walk finds what it finds in the core file.
        let auxv = |k| ing.snapshot.auxv_value(k);
        let got = crate::elfmem::read_dso_debug(&ing.memory, auxv).expect("r_debug walk");
        let want = crate::elfmem::read_dso_debug(&cf, auxv).expect("r_debug walk");
        assert_eq!(got, want);
        assert!(got.maps.len() >= 4, "{:?}", got.maps);
    }

    #[test]
    fn full_and_mini_plus_keep_memory_in_the_scratch_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, ready) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let marker = ready.marker.expect("marker address");

        let full = StreamPlan {
            minidump: Some(DumpLevel::Full),
            ..StreamPlan::default()
        };
        assert!(matches!(
            ingest(&mut chop(&data), full),
            Err(StreamError::NoScratch)
        ));
        let full = StreamPlan {
            minidump: Some(DumpLevel::Full),
            scratch: Some(rw_temp()),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), full).unwrap();
        let snap = cf.snapshot();
        for r in plan_regions(&snap, DumpLevel::Full, cf.crash_context().as_ref()) {
            let len = r.len as usize;
            assert_eq!(
                read_vec(&ing.memory, r.start, len),
                read_vec(&cf, r.start, len),
                "region {:#x}+{:#x}",
                r.start,
                r.len
            );
        }
        let mut word = [0u8; 8];
        ing.memory.read_exact(marker, &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), LIVE_MARKER);

        // Mini-plus: the heap block is private writable memory; with and
        // without a scratch file.
        for scratch in [Some(rw_temp()), None] {
            let plan = StreamPlan {
                minidump: Some(DumpLevel::MiniPlus),
                scratch,
                ..StreamPlan::default()
            };
            let ing = ingest(&mut chop(&data), plan).unwrap();
            ing.memory.read_exact(marker, &mut word).unwrap();
            assert_eq!(u64::from_le_bytes(word), LIVE_MARKER);
        }
        // Mini: not kept.
        let plan = StreamPlan {
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert_eq!(ing.memory.read(marker, &mut word).unwrap(), 0);
    }

    /// A full disk under the plain core: the minidump must not lose the
    /// memory the core would have held (it reads the core otherwise).
    #[test]
    fn a_failed_core_write_keeps_the_mini_memory_from_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(full)),
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert_eq!(ing.stats.core_bytes, 0);
        assert!(
            ing.soft_errors
                .iter()
                .any(|e| e.starts_with("core write failed")),
            "{:?}",
            ing.soft_errors
        );
        for t in &cf.snapshot().threads {
            let sp = t.regs.as_ref().unwrap().sp();
            assert_eq!(
                read_vec(&ing.memory, sp, 512),
                read_vec(&cf, sp, 512),
                "stack of thread {:?}",
                t.tid
            );
        }
        // Without the failure nothing is held twice: the core backs it.
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert!(
            ing.memory.pieces.is_empty(),
            "{:?}",
            ing.memory.pieces.len()
        );
    }

    #[test]
    fn size_cap_truncates_and_patches_the_core_and_keeps_the_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let snap = cf.snapshot();
        // Cut in the middle of the memory, before the main stack.
        let cut = cf
            .loads()
            .iter()
            .filter(|l| l.filesz >= 0x4000)
            .map(|l| l.offset + 0x2000)
            .filter(|&o| o > data.len() as u64 / 4)
            .min()
            .expect("a large segment");
        let cut_load = *cf
            .loads()
            .iter()
            .find(|l| l.filesz >= 0x4000 && l.offset + 0x2000 == cut)
            .unwrap();
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            minidump: Some(DumpLevel::Mini),
            max_bytes: cut,
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert!(ing.stats.truncated);
        assert_eq!(
            ing.stats.truncated_reason.as_deref(),
            Some(format!("size cap {cut} bytes").as_str())
        );
        assert_eq!(ing.stats.stream_bytes, data.len() as u64, "read to EOF");
        assert_eq!(ing.stats.core_bytes, cut);
        let out = file_bytes(ing.core_file.as_ref().unwrap());
        assert_eq!(out.len() as u64, cut);
        let trunc = write_file(dir.path(), "trunc.core", &out);
        let tc = CoreFile::open(&trunc).expect("a truncated core still opens");
        assert_same_snapshot(&tc.snapshot(), &snap);
        for l in tc.loads() {
            assert!(l.offset.saturating_add(l.filesz) <= cut || l.filesz == 0);
        }
        let patched = tc
            .loads()
            .iter()
            .find(|l| l.vaddr == cut_load.vaddr)
            .unwrap();
        assert_eq!(patched.filesz, 0x2000);
        let mut b = [0u8; 16];
        assert_eq!(tc.read(cut_load.vaddr + 0x2000, &mut b).unwrap(), 0);
        assert_eq!(
            read_vec(&tc, cut_load.vaddr, 0x2000),
            read_vec(&cf, cut_load.vaddr, 0x2000)
        );
        // The stacks past the cut were kept in memory.
        for t in &snap.threads {
            let sp = t.regs.as_ref().unwrap().sp();
            assert!(read_vec(&ing.memory, sp, 512).is_some());
            assert_eq!(read_vec(&ing.memory, sp, 512), read_vec(&cf, sp, 512));
        }

        // zstd: patched before compression.
        let plan = StreamPlan {
            core: Some(CoreOut::Zstd {
                file: rw_temp(),
                level: 1,
            }),
            max_bytes: cut,
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert!(ing.stats.truncated);
        assert!(ing
            .soft_errors
            .iter()
            .all(|e| !e.contains("zstd core holds")));
        let plain = zstd::decode_all(&file_bytes(ing.core_file.as_ref().unwrap())[..]).unwrap();
        assert_eq!(plain.len() as u64, cut);
        let p = write_file(dir.path(), "trunc-z.core", &plain);
        assert!(
            plain == out,
            "zstd and plain truncated cores are the same bytes"
        );
        assert!(CoreFile::open(&p).is_ok());
    }

    #[test]
    fn stream_ending_in_the_memory_is_truncated_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, _) = crasher_cores(dir.path(), false);
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let cut = data.len() / 2;
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data[..cut]), plan).unwrap();
        assert!(ing.stats.truncated);
        assert_eq!(
            ing.stats.truncated_reason,
            Some(format!("stream ended at offset {cut} of {}", data.len()))
        );
        assert!(ing.soft_errors.iter().any(|e| e.contains("stream ended")));
        assert!(ing
            .snapshot
            .soft_errors
            .iter()
            .any(|e| e.contains("stream ended")));
        let out = file_bytes(ing.core_file.as_ref().unwrap());
        assert!(out[..] == data[..cut] || out.len() == cut);
        let p = write_file(dir.path(), "cut.core", &out);
        let tc = CoreFile::open(&p).unwrap();
        assert_same_snapshot(&tc.snapshot(), &cf.snapshot());
        assert!(tc
            .loads()
            .iter()
            .all(|l| l.filesz == 0 || l.offset + l.filesz <= cut as u64));
    }

    #[test]
    fn gcore_cores_have_their_notes_last_and_still_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let (_, gcore, _) = crasher_cores(dir.path(), true);
        let Some(path) = gcore else {
            eprintln!("gcore not installed: skipped");
            return;
        };
        let data = std::fs::read(&path).unwrap();
        let cf = CoreFile::open(&path).unwrap();
        let want = cf.snapshot();
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert!(file_bytes(ing.core_file.as_ref().unwrap()) == data);
        assert!(!ing.stats.truncated, "{:?}", ing.stats);
        assert_same_snapshot(&ing.snapshot, &want);

        let plan = StreamPlan {
            minidump: Some(DumpLevel::Mini),
            scratch: Some(rw_temp()),
            ..StreamPlan::default()
        };
        let ing = ingest(&mut chop(&data), plan).unwrap();
        assert!(ing.soft_errors.iter().any(|e| e.contains("notes follow")));
        assert_same_snapshot(&ing.snapshot, &want);
        for t in &want.threads {
            let sp = t.regs.as_ref().unwrap().sp();
            assert!(read_vec(&ing.memory, sp, 512).is_some());
            assert_eq!(read_vec(&ing.memory, sp, 512), read_vec(&cf, sp, 512));
        }
    }

    // -----------------------------------------------------------------
    // Synthetic cores: hostile and cut streams.

    struct VecMem(Vec<(u64, Vec<u8>)>);

    impl MemorySource for VecMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            for (start, bytes) in &self.0 {
                if addr >= *start && addr - start < bytes.len() as u64 {
                    let rel = (addr - start) as usize;
                    let n = buf.len().min(bytes.len() - rel);
                    buf[..n].copy_from_slice(&bytes[rel..rel + n]);
                    return Ok(n);
                }
            }
            Ok(0)
        }
    }

    const EXE: u64 = 0x40_0000;
    const STACK: u64 = 0x7ff0_0000;

    fn synthetic_core() -> Vec<u8> {
        let map = |start: u64, len: u64, perms: &str, name: &str, inode: u64| Mapping {
            start,
            end: start + len,
            perms: Perms::from_text(perms.as_bytes()).unwrap(),
            inode,
            name: name.as_bytes().to_vec(),
            ..Mapping::default()
        };
        let thread = |tid: i32, sp: u64| {
            let mut regs = ThreadRegs::default();
            regs.gp.rsp = sp;
            regs.gp.rip = EXE + 0x100;
            ThreadSnapshot {
                tid: Tid(tid),
                name: Vec::new(),
                regs: Some(regs),
            }
        };
        let snap = ProcessSnapshot {
            pid: Pid(100),
            threads: vec![thread(100, STACK + 0x8000), thread(101, STACK + 0x2000)],
            mappings: vec![
                map(EXE, 0x4000, "r-xp", "/bin/x", 5),
                map(STACK, 0x2_0000, "rw-p", "[stack]", 0),
            ],
            auxv: [9u64, EXE + 0x100, 0, 0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect(),
            ..ProcessSnapshot::default()
        };
        let mem = VecMem(vec![
            (EXE, (0..0x4000u32).map(|i| i as u8).collect()),
            (STACK, (0..0x2_0000u32).map(|i| (i / 7) as u8).collect()),
        ]);
        let crash = CrashContext {
            tid: Tid(100),
            siginfo: SigInfo::new_fault(11, 1, 0x10),
            regs: snap.threads[0].regs.clone().unwrap(),
        };
        let opts = DumpOptions {
            level: DumpLevel::Full,
            format: DumpFormat::ElfCore,
            crash: Some(crash),
            ..DumpOptions::default()
        };
        let mut f = rw_temp();
        write_dump(&mut f, &snap, &mem, &opts, &NoProgress).unwrap();
        file_bytes(&f)
    }

    fn mini() -> StreamPlan {
        StreamPlan {
            minidump: Some(DumpLevel::Mini),
            ..StreamPlan::default()
        }
    }

    #[test]
    fn synthetic_core_round_trips() {
        let data = synthetic_core();
        let ing = ingest(&mut chop(&data), mini()).unwrap();
        assert_eq!(ing.snapshot.threads.len(), 2);
        assert_eq!(ing.crash.as_ref().unwrap().tid, Tid(100));
        let mut b = [0u8; 4];
        ing.memory.read_exact(STACK + 0x8000, &mut b).unwrap();
        assert_eq!(
            b,
            [
                0x8000 / 7 % 256,
                0x8001 / 7 % 256,
                0x8002 / 7 % 256,
                0x8003 / 7 % 256
            ]
            .map(|v: u32| v as u8)
        );
        // Below the red zone's page: not kept at the mini level.
        assert_eq!(ing.memory.read(STACK + 0x800, &mut b).unwrap(), 0);
        assert!(!ing.memory.kept_regions().is_empty());
    }

    #[test]
    fn short_and_garbage_headers_are_errors_naming_the_offset() {
        let data = synthetic_core();
        let err = |bytes: &[u8]| ingest(&mut chop(bytes), mini()).unwrap_err();
        assert!(matches!(
            err(b""),
            StreamError::Short {
                offset: 0,
                what: "ELF header",
                ..
            }
        ));
        assert!(matches!(
            err(b"\x7fELF"),
            StreamError::Short { offset: 4, .. }
        ));
        let e = err(&[0x5a; 100]);
        assert!(matches!(e, StreamError::Header { offset: 0, .. }), "{e}");
        let mut exe = data.clone();
        exe[16] = 2; // ET_EXEC
        assert!(err(&exe).to_string().contains("e_type 2"));
        assert!(matches!(
            err(&data[..64 + 10]),
            StreamError::Short {
                offset: 74,
                what: "program headers",
                ..
            }
        ));
        let phnum = u64::from(corefile::u16_at(&data, 56).unwrap());
        let notes_at = 64 + phnum * 56 + 20;
        match err(&data[..notes_at as usize]) {
            StreamError::Short { offset, what, .. } => {
                assert_eq!((offset, what), (notes_at, "notes"));
            }
            e => panic!("{e}"),
        }
        // A reader that fails inside the headers.
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("broken pipe"))
            }
        }
        assert!(matches!(
            ingest(&mut Failing, mini()),
            Err(StreamError::Read { offset: 0, .. })
        ));
    }

    fn put_u64(d: &mut [u8], at: usize, v: u64) {
        d[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn absurd_headers_are_errors_or_soft_errors_never_panics() {
        let data = synthetic_core();
        // Program headers far away.
        let mut d = data.clone();
        put_u64(&mut d, 32, 1 << 60);
        assert!(matches!(
            ingest(&mut chop(&d), mini()),
            Err(StreamError::Header { offset: 32, .. })
        ));
        // PN_XNUM with the section header out of reach: counted from the note.
        let mut d = data.clone();
        d[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
        put_u64(&mut d, 40, u64::MAX - 10);
        let ing = ingest(&mut chop(&d), mini()).unwrap();
        assert!(ing
            .snapshot
            .soft_errors
            .iter()
            .any(|e| e.contains("PN_XNUM")));
        assert_eq!(ing.snapshot.threads.len(), 2);
        // A huge note segment: its data never arrives.
        let mut d = data.clone();
        put_u64(&mut d, 64 + 32, u64::MAX / 2);
        assert!(ingest(&mut chop(&d), mini()).is_err());
        // A note with an absurd name size: a soft error.
        let mut d = data.clone();
        let note_off = corefile::u64_at(&data, 64 + 8).unwrap() as usize;
        d[note_off..note_off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let ing = ingest(&mut chop(&d), mini()).unwrap();
        assert!(ing
            .snapshot
            .soft_errors
            .iter()
            .any(|e| e.contains("impossible sizes") || e.contains("runs past")));
        // Loads claiming more than there is: truncated.
        let mut d = data.clone();
        let phnum = usize::from(corefile::u16_at(&data, 56).unwrap());
        for i in 1..phnum {
            put_u64(&mut d, 64 + i * 56 + 32, u64::MAX - 1);
            put_u64(&mut d, 64 + i * 56 + 40, u64::MAX - 1);
        }
        if let Ok(ing) = ingest(&mut chop(&d), mini()) {
            let _ = ing.memory.read(STACK, &mut [0u8; 64]);
        }
        // Bit flips in the headers and notes.
        let mut seed = 0x9e37_79b9u32;
        let head = data.len().min(8192);
        for _ in 0..400 {
            let mut d = data.clone();
            for _ in 0..6 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % head;
                d[i] ^= 1 << (seed % 8);
            }
            let scratch = (seed & 1 == 0).then(rw_temp);
            let plan = StreamPlan {
                core: Some(CoreOut::Plain(rw_temp())),
                minidump: Some(DumpLevel::MiniPlus),
                max_bytes: u64::from(seed % 20_000),
                scratch,
                ..StreamPlan::default()
            };
            if let Ok(ing) = ingest(&mut chop(&d), plan) {
                for t in &ing.snapshot.threads {
                    if let Some(r) = &t.regs {
                        let _ = ing.memory.read(r.sp(), &mut [0u8; 64]);
                    }
                }
            }
        }
    }

    #[test]
    fn deadline_stops_reading() {
        let data = synthetic_core();
        let plan = StreamPlan {
            deadline: Some(Instant::now()),
            ..mini()
        };
        assert!(matches!(
            ingest(&mut chop(&data), plan),
            Err(StreamError::TimeCap { offset: 0, .. })
        ));

        /// Hands out the headers, then waits for the deadline to pass
        /// before giving the rest.
        struct Slow<'a> {
            data: &'a [u8],
            pos: usize,
            until: Instant,
            head: usize,
        }
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.pos >= self.head {
                    let now = Instant::now();
                    if now < self.until {
                        std::thread::sleep(self.until - now);
                    }
                }
                let end = if self.pos < self.head {
                    self.head
                } else {
                    self.data.len()
                };
                let n = buf.len().min(end - self.pos).min(4096);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let head = 8192; // the synthetic core's headers and notes fit
        let until = Instant::now() + Duration::from_millis(50);
        let plan = StreamPlan {
            core: Some(CoreOut::Plain(rw_temp())),
            deadline: Some(until),
            ..mini()
        };
        let mut slow = Slow {
            data: &data,
            pos: 0,
            until,
            head,
        };
        let ing = ingest(&mut slow, plan).unwrap();
        assert!(ing.stats.truncated);
        assert_eq!(ing.stats.truncated_reason.as_deref(), Some("time cap"));
        assert!(ing.stats.stream_bytes < data.len() as u64);
        assert_eq!(ing.snapshot.threads.len(), 2);
    }

    #[test]
    fn interval_helpers() {
        assert_eq!(
            merge_ranges(vec![(5, 9), (1, 3), (2, 4), (9, 9), (9, 10)]),
            [(1, 4), (5, 10)]
        );
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(2, 3), (5, 22), (29, 40)]),
            [(0, 2), (3, 5), (22, 29)]
        );
        assert_eq!(subtract(&[(0, 10)], &[]), [(0, 10)]);
        let patches = phdr_patches(
            &[
                RawPhdr {
                    filesz_at: 96,
                    offset: 4096,
                    filesz: 8192,
                },
                RawPhdr {
                    filesz_at: 152,
                    offset: 12288,
                    filesz: 4096,
                },
                RawPhdr {
                    filesz_at: 208,
                    offset: 0,
                    filesz: 100,
                },
            ],
            6000,
        );
        assert_eq!(patches, [(96, 6000 - 4096), (152, 0)]);
    }
}
