//! One [`Target`] trait, three kinds of target: a live process (see
//! [`crate::live`]), a minidump and an ELF core (both a [`DumpTarget`]).
//!
//! Owns: the read-only view every inspection command (`k`, `r`, `~`, `lm`,
//! `d*`, `u`, `.exr -1`, `.ecxr`) works through, and opening dump files
//! into it.
//!
//! Must not: trust a dump. Every count, offset and size read from a file is
//! checked; a dump with missing streams opens with what it has.

use coroner_dump::corefile::CoreFile;
use coroner_dump::minidump::find_modules;
use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_symbols::vdso::{self, Cpu};
use coroner_types::{CrashContext, SigInfo, Tid, UserRegs};
use minidump::format as md;
use minidump::{
    Minidump, MinidumpContext, MinidumpException, MinidumpMiscInfo, MinidumpModuleList,
    MinidumpRawContext, MinidumpThreadList, MinidumpThreadNames, Module as _,
};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Live,
    Minidump,
    Core,
}

impl TargetKind {
    /// `live process`, `minidump`, `ELF core`.
    pub fn describe(self) -> &'static str {
        match self {
            TargetKind::Live => "live process",
            TargetKind::Minidump => "minidump",
            TargetKind::Core => "ELF core",
        }
    }
}

/// A thread as `~` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    pub tid: Tid,
    /// The thread name (`comm`), escaped for printing; empty if unknown.
    pub name: String,
}

/// A loaded ELF image as `lm` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub base: u64,
    pub end: u64,
    /// Path as the target recorded it (lossy UTF-8).
    pub path: String,
    /// Lower-case hex build id.
    pub build_id: Option<String>,
}

impl Module {
    /// The file name without directories.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    pub fn contains(&self, addr: u64) -> bool {
        (self.base..self.end).contains(&addr)
    }
}

/// The exception a target stopped on or was saved with (`.exr -1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionInfo {
    pub tid: Tid,
    pub siginfo: SigInfo,
    /// The context of the exception (`.ecxr`).
    pub regs: UserRegs,
    /// `Some(false)` at a first-chance event, `Some(true)` at a second
    /// chance, `None` when not known (dumps).
    pub second_chance: Option<bool>,
}

/// Why a target could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is neither a minidump nor an ELF core", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("{} is not a readable minidump: {reason}", path.display())]
    Minidump { path: PathBuf, reason: String },
    #[error("{} is not a readable ELF core: {source}", path.display())]
    Core {
        path: PathBuf,
        #[source]
        source: coroner_dump::corefile::CoreError,
    },
    #[error("thread {tid} is not in the target")]
    NoThread { tid: i32 },
    #[error("the registers of thread {tid} are not available")]
    NoRegisters { tid: i32 },
    #[error("cannot {what} thread {tid}: {source}")]
    Ptrace {
        what: &'static str,
        tid: i32,
        #[source]
        source: io::Error,
    },
    #[error("memory at {addr:#x} is not writable: {source}")]
    Write {
        addr: u64,
        #[source]
        source: io::Error,
    },
    #[error("a {kind} cannot {what}")]
    NotLive {
        kind: &'static str,
        what: &'static str,
    },
}

/// The view inspection commands use, the same for all three target kinds.
pub trait Target {
    fn kind(&self) -> TargetKind;
    /// Process id (as recorded, for dumps).
    fn pid(&self) -> u32;
    /// The executable's path.
    fn exe(&self) -> String;
    /// Threads, thread-group leader (or the dump's order) first.
    fn threads(&self) -> Vec<ThreadInfo>;
    fn regs(&self, tid: Tid) -> Result<UserRegs, TargetError>;
    /// The target's memory as the dump readers take it. On a live target
    /// it still holds our breakpoint bytes: [`Target::read`] shows what the
    /// program sees.
    fn memory(&self) -> &dyn MemorySource;
    /// Read as much of `buf` as is readable from `addr`; returns the count.
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        read_available(self.memory(), addr, buf)
    }
    fn modules(&self) -> Vec<Module>;
    /// The current (live) or recorded (dump) exception.
    fn exception(&self) -> Option<ExceptionInfo>;

    /// Read a little-endian u64, if all 8 bytes are readable.
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        (self.read(addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
    }
}

/// Fill as much of `buf` as `mem` can from `addr` on; returns the count
/// (the first unreadable byte ends it).
pub fn read_available(mem: &dyn MemorySource, addr: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match mem.read(addr.wrapping_add(done as u64), &mut buf[done..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// Memory with nothing in it (a live target whose process is gone).
pub struct NoMemory;

impl MemorySource for NoMemory {
    fn read(&self, _addr: u64, _buf: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

/// Escape a name from the target for printing: control characters and
/// non-printable bytes become `\xNN`, so a thread or file name cannot
/// forge output lines.
pub fn escape_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The loaded images of a snapshot, as [`Module`]s.
pub fn modules_of(snap: &ProcessSnapshot, mem: &dyn MemorySource) -> Vec<Module> {
    find_modules(snap, mem)
        .into_iter()
        .map(|m| {
            let path = escape_name(&m.name);
            Module {
                path: vdso_name(path, m.base, m.end, mem, Cpu::X86_64),
                base: m.base,
                end: m.end,
                build_id: m.build_id.map(|b| coroner_symbols::elf::hex(&b)),
            }
        })
        .collect()
}

/// The most of a vDSO image [`vdso_name`] reads (it is two pages).
const VDSO_READ_MAX: u64 = 1 << 20;

/// `path`, unless it is a recorded name of the vDSO (`[vdso]`, or
/// `linux-gate.so` as the minidump writers call it on every architecture):
/// then the vDSO's own name, from its image in `mem` (`linux-vdso.so.1` on
/// x86-64), as `ldd` and gdb show it. See [`coroner_symbols::vdso`].
fn vdso_name(path: String, base: u64, end: u64, mem: &dyn MemorySource, cpu: Cpu) -> String {
    if !vdso::is_vdso(&path) {
        return path;
    }
    let len = end.saturating_sub(base).min(VDSO_READ_MAX);
    let mut image = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = read_available(mem, base, &mut image);
    image.truncate(n);
    vdso::display_name(&path, Some(&image), cpu).unwrap_or(path)
}

/// A minidump or ELF core opened for inspection.
pub struct DumpTarget {
    kind: TargetKind,
    path: PathBuf,
    pid: u32,
    exe: String,
    threads: Vec<(ThreadInfo, Option<UserRegs>)>,
    modules: Vec<Module>,
    exception: Option<ExceptionInfo>,
    memory: Box<dyn MemorySource + Send>,
    /// Streams or notes that could not be read; the dump opened anyway.
    pub warnings: Vec<String>,
}

impl DumpTarget {
    /// Open a minidump (`MDMP`) or an ELF core (`\x7fELF`), by content.
    pub fn open(path: &Path) -> Result<DumpTarget, TargetError> {
        let file = File::open(path).map_err(|source| TargetError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).unwrap_or(0);
        match &magic[..n] {
            b"MDMP" => Self::open_minidump(path, file),
            b"\x7fELF" => Self::open_core(path),
            _ => Err(TargetError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The file this target was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_core(path: &Path) -> Result<DumpTarget, TargetError> {
        let core = CoreFile::open(path).map_err(|source| TargetError::Core {
            path: path.to_path_buf(),
            source,
        })?;
        let snap = core.snapshot();
        let modules = modules_of(&snap, &core);
        let exception = core.crash_context().map(|c: CrashContext| ExceptionInfo {
            tid: c.tid,
            siginfo: c.siginfo,
            regs: c.regs.gp,
            second_chance: None,
        });
        let threads = snap
            .threads
            .iter()
            .map(|t| {
                (
                    ThreadInfo {
                        tid: t.tid,
                        name: escape_name(&t.name),
                    },
                    t.regs.as_ref().map(|r| r.gp),
                )
            })
            .collect();
        let exe = if snap.exe.as_os_str().is_empty() {
            escape_name(&snap.comm)
        } else {
            escape_name(snap.exe.as_os_str().as_encoded_bytes())
        };
        let warnings = core.soft_errors().to_vec();
        Ok(DumpTarget {
            kind: TargetKind::Core,
            path: path.to_path_buf(),
            pid: snap.pid.0 as u32,
            exe,
            threads,
            modules,
            exception,
            memory: Box::new(core),
            warnings,
        })
    }

    fn open_minidump(path: &Path, file: File) -> Result<DumpTarget, TargetError> {
        let bad = |reason: String| TargetError::Minidump {
            path: path.to_path_buf(),
            reason,
        };
        let dump = Minidump::read_path(path).map_err(|e| bad(e.to_string()))?;
        let mut warnings = Vec::new();
        let system_info = dump.get_stream::<minidump::MinidumpSystemInfo>().ok();
        let misc = dump.get_stream::<MinidumpMiscInfo>().ok();
        let names = dump.get_stream::<MinidumpThreadNames>().ok();
        let pid = misc
            .as_ref()
            .and_then(|m| m.raw.process_id().copied())
            .unwrap_or(0);

        let mut threads = Vec::new();
        match dump.get_stream::<MinidumpThreadList>() {
            Ok(list) => {
                for t in &list.threads {
                    let regs = system_info
                        .as_ref()
                        .and_then(|si| t.context(si, misc.as_ref()))
                        .and_then(|c| user_regs_of(&c));
                    let name = names
                        .as_ref()
                        .and_then(|n| n.get_name(t.raw.thread_id))
                        .map(|n| escape_name(n.as_bytes()))
                        .unwrap_or_default();
                    threads.push((
                        ThreadInfo {
                            tid: Tid(t.raw.thread_id as i32),
                            name,
                        },
                        regs,
                    ));
                }
            }
            Err(e) => warnings.push(format!("thread list: {e}")),
        }

        let mut modules = Vec::new();
        let mut exe = String::new();
        match dump.get_stream::<MinidumpModuleList>() {
            Ok(list) => {
                if let Some(m) = list.main_module() {
                    exe = escape_name(m.code_file().as_bytes());
                }
                for m in list.iter() {
                    let build_id = m
                        .code_identifier()
                        .map(|c| c.as_str().to_ascii_lowercase())
                        .filter(|s| !s.is_empty());
                    modules.push(Module {
                        base: m.base_address(),
                        end: m.base_address().saturating_add(m.size()),
                        path: escape_name(m.code_file().as_bytes()),
                        build_id,
                    });
                }
                modules.sort_by_key(|m| m.base);
            }
            Err(e) => warnings.push(format!("module list: {e}")),
        }

        let exception = match dump.get_stream::<MinidumpException>() {
            Ok(exc) => {
                let rec = &exc.raw.exception_record;
                let tid = Tid(exc.thread_id as i32);
                let regs = system_info
                    .as_ref()
                    .and_then(|si| exc.context(si, misc.as_ref()))
                    .and_then(|c| user_regs_of(&c))
                    .or_else(|| {
                        threads
                            .iter()
                            .find(|(t, _)| t.tid == tid)
                            .and_then(|(_, r)| *r)
                    });
                let signo = rec.exception_code as i32;
                let code = rec.exception_flags as i32;
                let siginfo = if (1..=64).contains(&signo) {
                    if rec.number_parameters >= 2 && code > 0 {
                        SigInfo::new_fault(signo, code, rec.exception_information[1])
                    } else if rec.number_parameters >= 2 {
                        SigInfo::new_sent(
                            signo,
                            code,
                            rec.exception_information[0] as i32,
                            rec.exception_information[1] as u32,
                        )
                    } else {
                        SigInfo::new_fault(signo, code, rec.exception_address)
                    }
                } else {
                    // A dump requested without a crash (Breakpad's
                    // DUMP_REQUESTED, or a foreign code): no signal.
                    SigInfo::new_fault(0, 0, rec.exception_address)
                };
                regs.map(|regs| ExceptionInfo {
                    tid,
                    siginfo,
                    regs,
                    second_chance: None,
                })
                .filter(|e| e.siginfo.signo() != 0)
            }
            Err(_) => None,
        };

        let memory = MinidumpMemory::index(path, file).map_err(bad)?;
        let cpu = system_info.as_ref().map_or(Cpu::X86_64, |si| si.cpu);
        for m in &mut modules {
            let path = std::mem::take(&mut m.path);
            m.path = vdso_name(path, m.base, m.end, &memory, cpu);
        }
        Ok(DumpTarget {
            kind: TargetKind::Minidump,
            path: path.to_path_buf(),
            pid,
            exe,
            threads,
            modules,
            exception,
            memory: Box::new(memory),
            warnings,
        })
    }
}

/// The x86-64 general registers of a minidump context.
fn user_regs_of(ctx: &MinidumpContext) -> Option<UserRegs> {
    let MinidumpRawContext::Amd64(c) = &ctx.raw else {
        return None;
    };
    Some(UserRegs {
        r15: c.r15,
        r14: c.r14,
        r13: c.r13,
        r12: c.r12,
        rbp: c.rbp,
        rbx: c.rbx,
        r11: c.r11,
        r10: c.r10,
        r9: c.r9,
        r8: c.r8,
        rax: c.rax,
        rcx: c.rcx,
        rdx: c.rdx,
        rsi: c.rsi,
        rdi: c.rdi,
        orig_rax: 0,
        rip: c.rip,
        cs: u64::from(c.cs),
        eflags: u64::from(c.eflags),
        rsp: c.rsp,
        ss: u64::from(c.ss),
        fs_base: 0,
        gs_base: 0,
        ds: u64::from(c.ds),
        es: u64::from(c.es),
        fs: u64::from(c.fs),
        gs: u64::from(c.gs),
    })
}

impl Target for DumpTarget {
    fn kind(&self) -> TargetKind {
        self.kind
    }
    fn pid(&self) -> u32 {
        self.pid
    }
    fn exe(&self) -> String {
        self.exe.clone()
    }
    fn threads(&self) -> Vec<ThreadInfo> {
        self.threads.iter().map(|(t, _)| t.clone()).collect()
    }
    fn regs(&self, tid: Tid) -> Result<UserRegs, TargetError> {
        let (_, regs) = self
            .threads
            .iter()
            .find(|(t, _)| t.tid == tid)
            .ok_or(TargetError::NoThread { tid: tid.0 })?;
        regs.ok_or(TargetError::NoRegisters { tid: tid.0 })
    }
    fn memory(&self) -> &dyn MemorySource {
        self.memory.as_ref()
    }
    fn modules(&self) -> Vec<Module> {
        self.modules.clone()
    }
    fn exception(&self) -> Option<ExceptionInfo> {
        self.exception.clone()
    }
}

/// Memory of a minidump, read on demand from the file: an index of the
/// `MemoryListStream` and `Memory64ListStream` ranges.
struct MinidumpMemory {
    file: File,
    /// (start, end, file offset), sorted by start, non-overlapping.
    ranges: Vec<(u64, u64, u64)>,
}

const MD_MEMORY_LIST: u32 = md::MINIDUMP_STREAM_TYPE::MemoryListStream as u32;
const MD_MEMORY64_LIST: u32 = md::MINIDUMP_STREAM_TYPE::Memory64ListStream as u32;
/// Most memory descriptors accepted from one stream.
const MAX_DESCRIPTORS: u64 = 1 << 22;

impl MinidumpMemory {
    fn index(path: &Path, file: File) -> Result<MinidumpMemory, String> {
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        let rd = |off: u64, n: usize| -> Option<Vec<u8>> {
            if off.checked_add(n as u64)? > len {
                return None;
            }
            let mut b = vec![0u8; n];
            file.read_exact_at(&mut b, off).ok()?;
            Some(b)
        };
        let u32_at = |b: &[u8], o: usize| -> u32 {
            b.get(o..o + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .unwrap_or(0)
        };
        let u64_at = |b: &[u8], o: usize| -> u64 {
            let mut w = [0u8; 8];
            if let Some(s) = b.get(o..o + 8) {
                w.copy_from_slice(s);
            }
            u64::from_le_bytes(w)
        };
        let header = rd(0, 32).ok_or("file shorter than a minidump header")?;
        let count = u64::from(u32_at(&header, 8)).min(4096);
        let dir_rva = u64::from(u32_at(&header, 12));
        let dir = rd(dir_rva, (count * 12) as usize).ok_or("stream directory out of the file")?;
        let mut ranges = Vec::new();
        for e in dir.chunks_exact(12) {
            let kind = u32_at(e, 0);
            let rva = u64::from(u32_at(e, 8));
            if kind == MD_MEMORY_LIST {
                let Some(h) = rd(rva, 4) else { continue };
                let n = u64::from(u32_at(&h, 0)).min(MAX_DESCRIPTORS);
                let Some(d) = rd(rva + 4, (n * 16) as usize) else {
                    continue;
                };
                for m in d.chunks_exact(16) {
                    let start = u64_at(m, 0);
                    let size = u64::from(u32_at(m, 8));
                    let off = u64::from(u32_at(m, 12));
                    if off.saturating_add(size) <= len {
                        ranges.push((start, start.saturating_add(size), off));
                    }
                }
            } else if kind == MD_MEMORY64_LIST {
                let Some(h) = rd(rva, 16) else { continue };
                let n = u64_at(&h, 0).min(MAX_DESCRIPTORS);
                let mut off = u64_at(&h, 8);
                let Some(d) = rd(rva + 16, (n * 16) as usize) else {
                    continue;
                };
                for m in d.chunks_exact(16) {
                    let start = u64_at(m, 0);
                    let size = u64_at(m, 8);
                    if off.saturating_add(size) <= len {
                        ranges.push((start, start.saturating_add(size), off));
                    }
                    off = off.saturating_add(size);
                }
            }
        }
        ranges.sort_by_key(|r| r.0);
        // Drop ranges that overlap an earlier one (a hostile dump may list
        // the same memory twice with different bytes; the first wins).
        let mut kept: Vec<(u64, u64, u64)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if r.1 > r.0 && kept.last().is_none_or(|k| r.0 >= k.1) {
                kept.push(r);
            }
        }
        Ok(MinidumpMemory { file, ranges: kept })
    }
}

impl MemorySource for MinidumpMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let i = self.ranges.partition_point(|r| r.1 <= addr);
        let Some(&(start, end, off)) = self.ranges.get(i) else {
            return Ok(0);
        };
        if addr < start {
            return Ok(0);
        }
        let n = ((end - addr) as usize).min(buf.len());
        self.file
            .read_exact_at(&mut buf[..n], off + (addr - start))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_forge_lines() {
        assert_eq!(escape_name(b"ok name"), "ok name");
        assert_eq!(escape_name(b"evil\nline\x1b[2J"), "evil\\x0aline\\x1b[2J");
    }

    #[test]
    fn garbage_is_not_a_dump() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.dmp");
        std::fs::write(&p, b"hello world").unwrap();
        let e = DumpTarget::open(&p).err().expect("refused");
        assert!(e.to_string().contains("neither a minidump"), "{e}");
        std::fs::write(&p, b"MDMP\0\0\0\0garbage").unwrap();
        let e = DumpTarget::open(&p).err().expect("refused");
        assert!(e.to_string().contains("not a readable minidump"), "{e}");
        std::fs::write(&p, b"\x7fELFgarbage").unwrap();
        let e = DumpTarget::open(&p).err().expect("refused");
        assert!(e.to_string().contains("not a readable ELF core"), "{e}");
    }
}
