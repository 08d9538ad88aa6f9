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
use coroner_dump::DumpLevel;
use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_symbols::vdso::{self, Cpu};
use coroner_types::{CrashContext, SigInfo, ThreadRegs, Tid, UserRegs};
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
    /// The memory level the dump holds (see [`DumpTarget::level`]).
    level: DumpLevel,
    /// A core's process as recorded, for writing dumps of it.
    core: Option<(ProcessSnapshot, Option<CrashContext>)>,
    /// Streams or notes that could not be read; the dump opened anyway.
    pub warnings: Vec<String>,
}

/// The process a dump target recorded, as the dump writers take a stopped
/// one (`.dump` on a dump target).
pub struct Recorded<'a> {
    pub snapshot: ProcessSnapshot,
    /// The dump's memory.
    pub memory: &'a dyn MemorySource,
    /// The dump's exception, when it has one.
    pub crash: Option<CrashContext>,
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
        let crash = core.crash_context();
        let exception = crash.as_ref().map(|c: &CrashContext| ExceptionInfo {
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
            level: DumpLevel::Full,
            core: Some((snap, crash)),
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
                let siginfo = siginfo_of(rec);
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

        let level = dump_level_of(dump.header.flags);
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
            level,
            core: None,
            warnings,
        })
    }

    /// The memory level the dump holds: for a minidump, what its header's
    /// `MINIDUMP_TYPE` says (`WithFullMemory` full, else
    /// `WithPrivateReadWriteMemory` mini-plus, else mini); an ELF core is
    /// full (it holds whatever the kernel's `coredump_filter` kept, which
    /// a dump of any level reads from).
    pub fn level(&self) -> DumpLevel {
        self.level
    }

    /// The process as the dump recorded it, for writing a dump of it: a
    /// core's snapshot (as `coroner analyze` converts cores); a minidump's
    /// rebuilt from its streams (the Linux streams, thread contexts and
    /// names, our XSAVE stream, the exception). A minidump without the
    /// `LinuxMaps` stream has no mappings to plan a dump from: refused.
    pub fn recorded(&self) -> Result<Recorded<'_>, TargetError> {
        let (snapshot, crash) = match &self.core {
            Some((snap, crash)) => (snap.clone(), crash.clone()),
            None => minidump_process(&self.path)?,
        };
        Ok(Recorded {
            snapshot,
            memory: self.memory.as_ref(),
            crash,
        })
    }
}

// MINIDUMP_TYPE bits of a minidump header.
const MD_WITH_FULL_MEMORY: u64 = 0x2;
const MD_WITH_PRIVATE_RW_MEMORY: u64 = 0x200;

fn dump_level_of(flags: u64) -> DumpLevel {
    if flags & MD_WITH_FULL_MEMORY != 0 {
        DumpLevel::Full
    } else if flags & MD_WITH_PRIVATE_RW_MEMORY != 0 {
        DumpLevel::MiniPlus
    } else {
        DumpLevel::Mini
    }
}

/// The signal of a minidump exception record (Breakpad convention: code =
/// signal number, flags = `si_code`, parameters `[si_errno, si_addr]` for
/// a fault or `[si_pid, si_uid]` for a sent signal); signal 0 for a dump
/// requested without a crash (`DUMP_REQUESTED`) or a foreign code.
fn siginfo_of(rec: &md::MINIDUMP_EXCEPTION) -> SigInfo {
    let signo = rec.exception_code as i32;
    let code = rec.exception_flags as i32;
    if !(1..=64).contains(&signo) {
        return SigInfo::new_fault(0, 0, rec.exception_address);
    }
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
}

/// General and FXSAVE registers of a minidump context (x86-64 only).
fn thread_regs_of(ctx: &MinidumpContext) -> Option<ThreadRegs> {
    const CONTEXT_AMD64_FLOATING_POINT: u32 = 0x0010_0008;
    let gp = user_regs_of(ctx)?;
    let MinidumpRawContext::Amd64(c) = &ctx.raw else {
        return None;
    };
    let fp = (c.context_flags & CONTEXT_AMD64_FLOATING_POINT == CONTEXT_AMD64_FLOATING_POINT)
        .then(|| Box::new(c.float_save));
    Some(ThreadRegs {
        gp,
        fp,
        xstate: None,
    })
}

/// The entries of our XSAVE stream ([`coroner_dump::minidump::XSTATE_STREAM`]):
/// (tid with its crash-context flag bit, XSAVE bytes). A malformed stream
/// gives what was read before the fault.
fn xstate_entries(data: &[u8]) -> Vec<(u32, Vec<u8>)> {
    use coroner_dump::minidump::XSTATE_STREAM_VERSION;
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            data.get(o..o.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let mut out = Vec::new();
    if u32_at(0) != Some(XSTATE_STREAM_VERSION) {
        return out;
    }
    let count = u32_at(4).unwrap_or(0);
    let mut at = 8usize;
    for _ in 0..count {
        let (Some(tid), Some(size)) = (u32_at(at), u32_at(at + 4)) else {
            break;
        };
        let start = at + 8;
        let Some(bytes) = start
            .checked_add(size as usize)
            .and_then(|end| data.get(start..end))
        else {
            break;
        };
        out.push((tid, bytes.to_vec()));
        at = (start + bytes.len()).next_multiple_of(8);
    }
    out
}

/// A minidump's process, rebuilt from its streams (see
/// [`DumpTarget::recorded`]).
fn minidump_process(path: &Path) -> Result<(ProcessSnapshot, Option<CrashContext>), TargetError> {
    use coroner_dump::minidump::{XSTATE_CRASH_FLAG, XSTATE_STREAM};
    use md::MINIDUMP_STREAM_TYPE as S;
    let bad = |reason: String| TargetError::Minidump {
        path: path.to_path_buf(),
        reason,
    };
    let dump = Minidump::read_path(path).map_err(|e| bad(e.to_string()))?;
    let raw = |ty: S| dump.get_raw_stream(ty as u32).ok().map(<[u8]>::to_vec);
    let maps = raw(S::LinuxMaps).ok_or_else(|| {
        bad("it has no LinuxMaps stream, so no mappings to plan a dump from".into())
    })?;
    let mappings = coroner_proc::procfs::parse_maps(&maps)
        .map_err(|e| bad(format!("its LinuxMaps stream is not maps text: {e}")))?;
    let system_info = dump.get_stream::<minidump::MinidumpSystemInfo>().ok();
    let misc = dump.get_stream::<MinidumpMiscInfo>().ok();
    let names = dump.get_stream::<MinidumpThreadNames>().ok();
    let xstate = dump
        .get_raw_stream(XSTATE_STREAM)
        .map(xstate_entries)
        .unwrap_or_default();
    let xstate_of = |tid: u32| {
        xstate
            .iter()
            .find(|(t, _)| *t == tid)
            .map(|(_, x)| x.clone())
    };

    let mut snap = ProcessSnapshot {
        mappings,
        auxv: raw(S::LinuxAuxv).unwrap_or_default(),
        ..ProcessSnapshot::default()
    };
    snap.files = coroner_proc::LinuxFiles {
        cmdline: raw(S::LinuxCmdLine),
        environ: raw(S::LinuxEnviron),
        status: raw(S::LinuxProcStatus),
        maps: Some(maps),
        limits: raw(S::MozLinuxLimits),
        cpuinfo: raw(S::LinuxCpuInfo),
        os_release: raw(S::LinuxLsbRelease),
        smaps: None,
    };
    if let Some(m) = &misc {
        snap.pid = coroner_types::Pid(m.raw.process_id().copied().unwrap_or(0) as i32);
        snap.start_time = m.raw.process_create_time().copied().map_or(0, u64::from);
    }
    if let Some(st) = snap
        .files
        .status
        .as_deref()
        .and_then(|t| coroner_proc::procfs::parse_status(t).ok())
    {
        snap.ppid = st.ppid;
        snap.uid = st.uid[0];
        snap.gid = st.gid[0];
        snap.comm = st.name;
        if snap.pid.0 == 0 {
            snap.pid = st.tgid;
        }
    }
    if let Ok(list) = dump.get_stream::<MinidumpModuleList>() {
        if let Some(m) = list.main_module() {
            snap.exe = PathBuf::from(m.code_file().into_owned());
        }
    }
    if let Ok(list) = dump.get_stream::<MinidumpThreadList>() {
        for t in &list.threads {
            let tid = t.raw.thread_id;
            let regs = system_info
                .as_ref()
                .and_then(|si| t.context(si, misc.as_ref()))
                .and_then(|c| thread_regs_of(&c))
                .map(|mut r| {
                    r.xstate = xstate_of(tid);
                    r
                });
            let name = names
                .as_ref()
                .and_then(|n| n.get_name(tid))
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            snap.threads.push(coroner_proc::ThreadSnapshot {
                tid: Tid(tid as i32),
                name,
                regs,
            });
        }
    }
    let crash = dump.get_stream::<MinidumpException>().ok().and_then(|exc| {
        let siginfo = siginfo_of(&exc.raw.exception_record);
        if siginfo.signo() == 0 {
            return None;
        }
        let tid = exc.thread_id;
        let mut regs = system_info
            .as_ref()
            .and_then(|si| exc.context(si, misc.as_ref()))
            .and_then(|c| thread_regs_of(&c))?;
        regs.xstate = xstate_of(tid | XSTATE_CRASH_FLAG);
        Some(CrashContext {
            tid: Tid(tid as i32),
            siginfo,
            regs,
        })
    });
    snap.soft_errors
        .push(format!("written from the minidump {}", path.display()));
    Ok((snap, crash))
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

    #[test]
    fn header_flags_give_the_level() {
        assert_eq!(dump_level_of(0x800), DumpLevel::Mini);
        assert_eq!(dump_level_of(0), DumpLevel::Mini);
        assert_eq!(dump_level_of(0x800 | 0x200), DumpLevel::MiniPlus);
        assert_eq!(dump_level_of(0x800 | 0x2), DumpLevel::Full);
        assert_eq!(dump_level_of(0x2 | 0x200), DumpLevel::Full);
    }

    #[test]
    fn xstate_stream_entries_and_malformed_streams() {
        let mut s = Vec::new();
        s.extend_from_slice(&1u32.to_le_bytes());
        s.extend_from_slice(&2u32.to_le_bytes());
        s.extend_from_slice(&7u32.to_le_bytes());
        s.extend_from_slice(&3u32.to_le_bytes());
        s.extend_from_slice(&[1, 2, 3, 0, 0, 0, 0, 0]);
        s.extend_from_slice(&(7u32 | 0x8000_0000).to_le_bytes());
        s.extend_from_slice(&1u32.to_le_bytes());
        s.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            xstate_entries(&s),
            vec![(7, vec![1, 2, 3]), (7 | 0x8000_0000, vec![9])]
        );
        // Cut anywhere, or claiming more than there is: what came before.
        for len in 0..s.len() {
            assert!(xstate_entries(&s[..len]).len() <= 2);
        }
        let mut huge = s.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(xstate_entries(&huge), vec![]);
        let mut other_version = s;
        other_version[0] = 9;
        assert_eq!(xstate_entries(&other_version), vec![]);
    }

    #[test]
    fn exception_records_as_signals() {
        let mut rec = md::MINIDUMP_EXCEPTION {
            exception_code: 11,
            exception_flags: 2,
            exception_address: 0x1234,
            number_parameters: 2,
            ..Default::default()
        };
        rec.exception_information[1] = 0xdead;
        let si = siginfo_of(&rec);
        assert_eq!((si.signo(), si.code(), si.addr()), (11, 2, 0xdead));
        rec.exception_code = 0xFFFF_FFFF;
        assert_eq!(siginfo_of(&rec).signo(), 0, "DUMP_REQUESTED is no signal");
    }

    #[test]
    fn a_minidump_without_maps_cannot_be_dumped_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.dmp");
        std::fs::write(&p, b"MDMP\x93\xa7\0\0\0\0\0\0 \0\0\0").unwrap();
        match minidump_process(&p) {
            Err(e) => assert!(e.to_string().contains("x.dmp"), "{e}"),
            Ok(_) => panic!("an empty minidump has no process"),
        }
    }
}
