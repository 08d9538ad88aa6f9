//! The minidump writer (Breakpad's Linux flavour of the Windows format).
//!
//! Owns: the byte layout of a minidump built from a [`ProcessSnapshot`] and
//! a [`MemorySource`]: which streams, in which order, at which RVAs.
//!
//! Must not: decide which memory goes in (that is [`crate::plan`]), move
//! bulk memory itself (that is [`crate::copy`]), or name/publish files.
//!
//! Layout: header, then every metadata stream, then the stream directory,
//! then — page-aligned and last — the memory bytes, so a dump of any size
//! keeps all metadata below 4 GiB where 32-bit RVAs reach it.
//! - mini dumps use `MemoryListStream` (one 32-bit-RVA descriptor per
//!   region) while everything fits below 4 GiB;
//! - mini-plus and full dumps (and an oversized mini) use
//!   `Memory64ListStream`: all regions back to back from `BaseRva`. Thread
//!   stack descriptors then point into that data when it lies below 4 GiB,
//!   else carry RVA 0, in which case readers (rust-minidump's
//!   `MinidumpThread::stack_memory`) look the stack's start address up in
//!   the memory list.
//!
//! Streams: SystemInfo, MiscInfo, ThreadList (CONTEXT_AMD64 with integer,
//! control, segment and FXSAVE state), ThreadNames, ModuleList (ELF images
//! found from file mappings with an ELF header at offset 0, plus the vdso as
//! `linux-gate.so`; CodeView `BpEL` + GNU build-id read from the image in
//! memory, else from the file), Exception, MemoryInfoList, the Breakpad
//! Linux streams (CpuInfo, ProcStatus, LsbRelease = os-release, CmdLine,
//! Environ, Auxv, Maps, DsoDebug), MozLinuxLimits, CommentStreamA (when a
//! comment is given), MozSoftErrors (a JSON array of strings), and:
//!
//! **XState stream, type `0x43520001` ("CR" 0001)**, ours: `u32 version
//! (= 1)`, `u32 count`, then per thread `u32 tid`, `u32 size`, `size`
//! bytes of the XSAVE area as `PTRACE_GETREGSET NT_X86_XSTATE` returns it,
//! padded to 8 bytes. The crash context's XSAVE area, when it has one, is
//! stored as an extra entry whose tid has bit 31 set. AVX and later
//! registers are kept here because CONTEXT_AMD64 has no room for them.
//!
//! Exception stream (Breakpad convention): code = signal number, flags =
//! `si_code`, address = `si_addr` for kernel-raised faults that carry one,
//! else the PC; parameters = `[si_errno, si_addr]` for faults,
//! `[si_pid, si_uid]` for sent signals. Without a crash context the code
//! is `0xFFFFFFFF` (`MD_EXCEPTION_CODE_LIN_DUMP_REQUESTED`) on the first
//! thread with registers, with its live context.

use crate::copy::{copy_regions, Progress};
use crate::elfmem::{self, DsoDebug};
use crate::plan::{self, plan_regions, DumpLevel, Region};
use crate::{DumpError, DumpOptions, DumpStats};
use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_types::{Mapping, ThreadRegs};
use minidump_common::format as md;
use scroll::ctx::{SizeWith, TryIntoCtx};
use scroll::{Endian, Pwrite, LE};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

/// Our stream holding each thread's XSAVE area (see the module docs).
pub const XSTATE_STREAM: u32 = 0x4352_0001;
/// Version of the [`XSTATE_STREAM`] layout.
pub const XSTATE_STREAM_VERSION: u32 = 1;
/// Tid bit marking the crash context's XSAVE area in [`XSTATE_STREAM`].
pub const XSTATE_CRASH_FLAG: u32 = 0x8000_0000;
/// `MD_EXCEPTION_CODE_LIN_DUMP_REQUESTED`.
pub const DUMP_REQUESTED: u32 = 0xFFFF_FFFF;
/// Room kept for soft errors found while copying memory.
const SOFT_ERRORS_SLACK: usize = 64 * 1024;
const PAGE: u64 = 4096;

/// CONTROL | INTEGER | SEGMENTS for AMD64 (FLOATING_POINT added with FXSAVE).
const CONTEXT_FLAGS_BASE: u32 = 0x0010_0007;
const CONTEXT_FLAGS_FP: u32 = 0x0010_0008;

// MINIDUMP_TYPE bits recorded in the header flags.
const MD_WITH_FULL_MEMORY: u64 = 0x2;
const MD_WITH_PRIVATE_RW_MEMORY: u64 = 0x200;
const MD_WITH_FULL_MEMORY_INFO: u64 = 0x800;

/// The metadata part of a minidump, built in memory.
struct Blob {
    buf: Vec<u8>,
    dir: Vec<md::MINIDUMP_DIRECTORY>,
}

type Loc = md::MINIDUMP_LOCATION_DESCRIPTOR;

impl Blob {
    fn pos(&self) -> usize {
        self.buf.len()
    }

    fn align(&mut self, a: usize) {
        let n = self.buf.len().next_multiple_of(a);
        self.buf.resize(n, 0);
    }

    fn rva(&self, what: &'static str) -> Result<u32, DumpError> {
        u32::try_from(self.buf.len()).map_err(|_| DumpError::Encode {
            what,
            source: scroll::Error::TooBig {
                size: self.buf.len(),
                len: u32::MAX as usize,
            },
        })
    }

    /// Append a structure; returns its offset.
    fn push<T>(&mut self, what: &'static str, v: T) -> Result<usize, DumpError>
    where
        T: SizeWith<Endian> + TryIntoCtx<Endian, Error = scroll::Error>,
    {
        let off = self.buf.len();
        self.buf.resize(off + T::size_with(&LE), 0);
        self.buf
            .pwrite_with(v, off, LE)
            .map_err(|source| DumpError::Encode { what, source })?;
        Ok(off)
    }

    /// Overwrite a structure at `off`.
    fn patch<T>(&mut self, what: &'static str, off: usize, v: T) -> Result<(), DumpError>
    where
        T: TryIntoCtx<Endian, Error = scroll::Error>,
    {
        self.buf
            .pwrite_with(v, off, LE)
            .map_err(|source| DumpError::Encode { what, source })?;
        Ok(())
    }

    fn bytes(&mut self, what: &'static str, b: &[u8]) -> Result<Loc, DumpError> {
        self.align(4);
        let rva = self.rva(what)?;
        self.buf.extend_from_slice(b);
        let data_size = u32::try_from(b.len()).map_err(|_| DumpError::Encode {
            what,
            source: scroll::Error::TooBig {
                size: b.len(),
                len: u32::MAX as usize,
            },
        })?;
        Ok(Loc { data_size, rva })
    }

    /// A `MINIDUMP_STRING` (u32 byte length, UTF-16LE, NUL); returns its RVA.
    fn string(&mut self, what: &'static str, s: &str) -> Result<u32, DumpError> {
        self.align(4);
        let rva = self.rva(what)?;
        let units: Vec<u16> = s.encode_utf16().collect();
        self.buf
            .extend_from_slice(&((units.len() * 2) as u32).to_le_bytes());
        for u in units.iter().chain(std::iter::once(&0)) {
            self.buf.extend_from_slice(&u.to_le_bytes());
        }
        Ok(rva)
    }

    fn stream(&mut self, stream_type: u32, location: Loc) {
        self.dir.push(md::MINIDUMP_DIRECTORY {
            stream_type,
            location,
        });
    }

    /// Raw bytes as a whole stream.
    fn raw_stream(
        &mut self,
        stream_type: u32,
        what: &'static str,
        b: &[u8],
    ) -> Result<(), DumpError> {
        let loc = self.bytes(what, b)?;
        self.stream(stream_type, loc);
        Ok(())
    }

    /// Location from `start` to the current end.
    fn since(&self, what: &'static str, start: usize) -> Result<Loc, DumpError> {
        let rva = u32::try_from(start).map_err(|_| DumpError::Encode {
            what,
            source: scroll::Error::TooBig {
                size: start,
                len: u32::MAX as usize,
            },
        })?;
        Ok(Loc {
            data_size: (self.buf.len() - start) as u32,
            rva,
        })
    }
}

/// Build a CONTEXT_AMD64 from the kernel's register sets.
pub fn context_amd64(regs: &ThreadRegs) -> md::CONTEXT_AMD64 {
    let g = &regs.gp;
    let mut c = md::CONTEXT_AMD64 {
        context_flags: CONTEXT_FLAGS_BASE,
        cs: g.cs as u16,
        ds: g.ds as u16,
        es: g.es as u16,
        fs: g.fs as u16,
        gs: g.gs as u16,
        ss: g.ss as u16,
        eflags: g.eflags as u32,
        rax: g.rax,
        rcx: g.rcx,
        rdx: g.rdx,
        rbx: g.rbx,
        rsp: g.rsp,
        rbp: g.rbp,
        rsi: g.rsi,
        rdi: g.rdi,
        r8: g.r8,
        r9: g.r9,
        r10: g.r10,
        r11: g.r11,
        r12: g.r12,
        r13: g.r13,
        r14: g.r14,
        r15: g.r15,
        rip: g.rip,
        ..Default::default()
    };
    if let Some(fp) = &regs.fp {
        c.context_flags |= CONTEXT_FLAGS_FP;
        c.float_save.copy_from_slice(&fp[..]);
        c.mx_csr = u32::from_le_bytes([fp[24], fp[25], fp[26], fp[27]]);
    }
    c
}

/// An ELF image loaded in the target, as the module list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    pub base: u64,
    pub end: u64,
    /// Path (or `linux-gate.so` for the vdso), raw bytes.
    pub name: Vec<u8>,
    pub build_id: Option<Vec<u8>>,
}

/// Derive the loaded ELF images from the file mappings: a module starts at
/// a mapping of file offset 0 whose memory starts with an ELF header, and
/// extends to the end of the last later mapping of the same file.
pub fn find_modules(snap: &ProcessSnapshot, mem: &dyn MemorySource) -> Vec<ModuleInfo> {
    let mut mods: Vec<ModuleInfo> = Vec::new();
    let mut open: HashMap<(u32, u32, u64, &[u8]), usize> = HashMap::new();
    for m in &snap.mappings {
        if m.name.as_slice() == b"[vdso]" {
            mods.push(ModuleInfo {
                base: m.start,
                end: m.end,
                name: b"linux-gate.so".to_vec(),
                build_id: elfmem::build_id_from_memory(mem, m.start),
            });
            continue;
        }
        if !m.is_file() {
            continue;
        }
        let key = (m.dev_major, m.dev_minor, m.inode, m.name.as_slice());
        if m.offset == 0 && m.perms.read && elfmem::has_elf_magic(mem, m.start) {
            open.insert(key, mods.len());
            mods.push(ModuleInfo {
                base: m.start,
                end: m.end,
                name: m.name.clone(),
                build_id: None,
            });
        } else if let Some(&i) = open.get(&key) {
            mods[i].end = mods[i].end.max(m.end);
        }
    }
    for md in mods.iter_mut().filter(|m| m.name.first() == Some(&b'/')) {
        md.build_id = elfmem::build_id_from_memory(mem, md.base).or_else(|| {
            if md.name.ends_with(b" (deleted)") {
                return None;
            }
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&md.name));
            elfmem::build_id_from_file(path).ok().flatten()
        });
    }
    mods
}

fn protection(m: &Mapping) -> u32 {
    let p = m.perms;
    match (p.read || p.write, p.write, p.exec) {
        (_, true, true) => 0x40,       // PAGE_EXECUTE_READWRITE
        (true, false, true) => 0x20,   // PAGE_EXECUTE_READ
        (false, false, true) => 0x10,  // PAGE_EXECUTE
        (_, true, false) => 0x04,      // PAGE_READWRITE
        (true, false, false) => 0x02,  // PAGE_READONLY
        (false, false, false) => 0x01, // PAGE_NOACCESS
    }
}

fn memory_type(m: &Mapping, modules: &[ModuleInfo]) -> u32 {
    let in_module = modules
        .iter()
        .any(|md| md.base <= m.start && m.end <= md.end);
    if m.is_file() && in_module {
        0x0100_0000 // MEM_IMAGE
    } else if m.is_file() || m.perms.shared {
        0x0004_0000 // MEM_MAPPED
    } else {
        0x0002_0000 // MEM_PRIVATE
    }
}

/// JSON array of strings.
fn soft_errors_json(errors: &[String]) -> String {
    let mut s = String::from("[");
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for c in e.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push(']');
    s
}

/// `soft_errors_json`, dropping entries from the end (and saying so) until
/// it fits in `cap` bytes.
fn soft_errors_json_capped(errors: &[String], cap: usize) -> String {
    let full = soft_errors_json(errors);
    if full.len() <= cap {
        return full;
    }
    let mut keep = errors.len();
    while keep > 0 {
        keep -= 1;
        let mut v = errors[..keep].to_vec();
        v.push(format!("{} more soft errors omitted", errors.len() - keep));
        let s = soft_errors_json(&v);
        if s.len() <= cap {
            return s;
        }
    }
    String::from("[]")
}

/// Values read from `/proc/cpuinfo` text.
struct CpuFacts {
    count: u8,
    vendor: [u8; 12],
    family: u32,
    model: u32,
    stepping: u32,
}

fn cpu_facts(cpuinfo: Option<&[u8]>) -> CpuFacts {
    let mut f = CpuFacts {
        count: 0,
        vendor: [0; 12],
        family: 0,
        model: 0,
        stepping: 0,
    };
    let mut first = true;
    let text = cpuinfo.map(String::from_utf8_lossy).unwrap_or_default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() && f.count > 0 {
                first = false;
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "processor" {
            f.count = f.count.saturating_add(1);
        }
        if !first {
            continue;
        }
        match k {
            "vendor_id" => {
                let n = v.len().min(12);
                f.vendor[..n].copy_from_slice(&v.as_bytes()[..n]);
            }
            "cpu family" => f.family = v.parse().unwrap_or(0),
            "model" => f.model = v.parse().unwrap_or(0),
            "stepping" => f.stepping = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    if f.count == 0 {
        f.count = std::thread::available_parallelism()
            .map(|n| n.get().min(255) as u8)
            .unwrap_or(1);
    }
    f
}

/// CPUID(1).EAX from family/model/stepping.
fn cpuid_version(f: &CpuFacts) -> u32 {
    let (fam, ext_fam) = if f.family >= 15 {
        (15, f.family - 15)
    } else {
        (f.family, 0)
    };
    (f.stepping & 0xf)
        | ((f.model & 0xf) << 4)
        | ((fam & 0xf) << 8)
        | (((f.model >> 4) & 0xf) << 16)
        | ((ext_fam & 0xff) << 20)
}

/// Kernel release and version (`uname -r`, `uname -v`).
fn kernel_version(soft: &mut Vec<String>) -> (String, String) {
    let read = |p: &str, soft: &mut Vec<String>| match std::fs::read_to_string(p) {
        Ok(s) => s.trim().to_owned(),
        Err(e) => {
            soft.push(format!("cannot read {p}: {e}"));
            String::new()
        }
    };
    (
        read("/proc/sys/kernel/osrelease", soft),
        read("/proc/sys/kernel/version", soft),
    )
}

fn write_system_info(
    b: &mut Blob,
    snap: &ProcessSnapshot,
    soft: &mut Vec<String>,
) -> Result<(), DumpError> {
    let cpu = cpu_facts(snap.files.cpuinfo.as_deref());
    let (release, version) = kernel_version(soft);
    let nums: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    let csd = format!("Linux {release} {version} x86_64");
    let csd_rva = b.string("CSD version", &csd)?;
    let mut cpu_data = [0u8; 24];
    cpu_data[..12].copy_from_slice(&cpu.vendor);
    cpu_data[12..16].copy_from_slice(&cpuid_version(&cpu).to_le_bytes());
    b.align(8);
    let start = b.pos();
    b.push(
        "system info",
        md::MINIDUMP_SYSTEM_INFO {
            processor_architecture: md::ProcessorArchitecture::PROCESSOR_ARCHITECTURE_AMD64 as u16,
            processor_level: cpu.family as u16,
            processor_revision: ((cpu.model as u16) << 8) | (cpu.stepping as u16 & 0xff),
            number_of_processors: cpu.count,
            product_type: 0,
            major_version: nums.first().copied().unwrap_or(0),
            minor_version: nums.get(1).copied().unwrap_or(0),
            build_number: nums.get(2).copied().unwrap_or(0),
            platform_id: md::PlatformId::Linux as u32,
            csd_version_rva: csd_rva,
            suite_mask: 0,
            reserved2: 0,
            cpu: md::CPU_INFORMATION { data: cpu_data },
        },
    )?;
    let loc = b.since("system info", start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::SystemInfoStream as u32, loc);
    Ok(())
}

fn write_misc_info(b: &mut Blob, snap: &ProcessSnapshot) -> Result<(), DumpError> {
    let mut flags = 1; // MINIDUMP_MISC1_PROCESS_ID
    if snap.start_time != 0 {
        flags |= 2; // MINIDUMP_MISC1_PROCESS_TIMES
    }
    b.align(8);
    let start = b.pos();
    b.push(
        "misc info",
        md::MINIDUMP_MISC_INFO {
            size_of_info: md::MINIDUMP_MISC_INFO::size_with(&LE) as u32,
            flags1: flags,
            process_id: snap.pid.0 as u32,
            process_create_time: snap.start_time.min(u64::from(u32::MAX)) as u32,
            process_user_time: 0,
            process_kernel_time: 0,
        },
    )?;
    let loc = b.since("misc info", start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::MiscInfoStream as u32, loc);
    Ok(())
}

/// Where a region's bytes land in the file.
struct MemoryLayout {
    regions: Vec<Region>,
    /// File offset of each region's first byte, relative to the memory base.
    offsets: Vec<u64>,
}

impl MemoryLayout {
    /// The region holding all of `r`, with its relative file offset.
    fn locate(&self, r: Region) -> Option<u64> {
        let i = self
            .regions
            .partition_point(|x| x.start <= r.start)
            .checked_sub(1)?;
        let x = self.regions[i];
        (r.end() <= x.end()).then(|| self.offsets[i] + (r.start - x.start))
    }
}

/// Write the dump. Called through [`crate::write_minidump`].
pub(crate) fn write(
    out: &mut File,
    snap: &ProcessSnapshot,
    mem: &dyn MemorySource,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    let crash = opts.crash.as_ref();
    let mut soft = snap.soft_errors.clone();
    let regions = plan_regions(snap, opts.level, crash);
    let mut offsets = Vec::with_capacity(regions.len());
    let mut total = 0u64;
    for r in &regions {
        offsets.push(total);
        total += r.len;
    }
    let layout = MemoryLayout { regions, offsets };

    let mut b = Blob {
        buf: Vec::with_capacity(64 * 1024),
        dir: Vec::new(),
    };
    b.push("header", header(0, 0, 0))?;

    write_system_info(&mut b, snap, &mut soft)?;
    write_misc_info(&mut b, snap)?;

    // Thread list; stack descriptors are patched once the memory base is known.
    let mut contexts: Vec<Option<Loc>> = Vec::with_capacity(snap.threads.len());
    for t in &snap.threads {
        match &t.regs {
            Some(r) => {
                b.align(16);
                let start = b.pos();
                b.push("thread context", context_amd64(r))?;
                contexts.push(Some(b.since("thread context", start)?));
            }
            None => {
                soft.push(format!(
                    "thread {}: registers unavailable, no context written",
                    t.tid
                ));
                contexts.push(None);
            }
        }
    }
    b.align(8);
    let tl_start = b.pos();
    b.buf
        .extend_from_slice(&(snap.threads.len() as u32).to_le_bytes());
    let mut stack_patches: Vec<(usize, Region)> = Vec::new();
    let sps: Vec<u64> = snap
        .threads
        .iter()
        .map(|t| t.regs.as_ref().map(|r| r.sp()).unwrap_or(0))
        .collect();
    let stacks = plan::stack_ranges(snap, &sps);
    for ((t, ctx), (&sp, &stack)) in snap
        .threads
        .iter()
        .zip(&contexts)
        .zip(sps.iter().zip(&stacks))
    {
        let stack = if t.regs.is_some() { stack } else { None };
        let off = b.push(
            "thread",
            md::MINIDUMP_THREAD {
                thread_id: t.tid.0 as u32,
                suspend_count: 0,
                priority_class: 0,
                priority: 0,
                teb: t.regs.as_ref().map(|r| r.gp.fs_base).unwrap_or(0),
                stack: md::MINIDUMP_MEMORY_DESCRIPTOR {
                    start_of_memory_range: sp,
                    memory: Loc::default(),
                },
                thread_context: ctx.unwrap_or_default(),
            },
        )?;
        if let Some(s) = stack {
            stack_patches.push((off + 24, s));
        }
    }
    let loc = b.since("thread list", tl_start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::ThreadListStream as u32, loc);

    // Thread names.
    let mut names = Vec::with_capacity(snap.threads.len());
    for t in &snap.threads {
        names.push(b.string("thread name", &String::from_utf8_lossy(&t.name))?);
    }
    b.align(8);
    let tn_start = b.pos();
    b.buf
        .extend_from_slice(&(snap.threads.len() as u32).to_le_bytes());
    for (t, rva) in snap.threads.iter().zip(names) {
        b.push(
            "thread name",
            md::MINIDUMP_THREAD_NAME {
                thread_id: t.tid.0 as u32,
                thread_name_rva: u64::from(rva),
            },
        )?;
    }
    let loc = b.since("thread names", tn_start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::ThreadNamesStream as u32, loc);

    // Modules.
    let modules = find_modules(snap, mem);
    let mut mod_extra = Vec::with_capacity(modules.len());
    for m in &modules {
        let name_rva = b.string("module name", &String::from_utf8_lossy(&m.name))?;
        let cv = match &m.build_id {
            Some(id) => {
                let mut rec = (md::CvSignature::Elf as u32).to_le_bytes().to_vec();
                rec.extend_from_slice(id);
                b.bytes("CodeView record", &rec)?
            }
            None => Loc::default(),
        };
        mod_extra.push((name_rva, cv));
    }
    b.align(8);
    let ml_start = b.pos();
    b.buf
        .extend_from_slice(&(modules.len() as u32).to_le_bytes());
    for (m, (name_rva, cv)) in modules.iter().zip(mod_extra) {
        b.push(
            "module",
            md::MINIDUMP_MODULE {
                base_of_image: m.base,
                size_of_image: (m.end - m.base).min(u64::from(u32::MAX)) as u32,
                module_name_rva: name_rva,
                cv_record: cv,
                ..Default::default()
            },
        )?;
    }
    let loc = b.since("module list", ml_start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::ModuleListStream as u32, loc);

    // Exception.
    write_exception(&mut b, snap, opts, &contexts)?;

    // Memory info: one entry per mapping.
    b.align(8);
    let mi_start = b.pos();
    b.push(
        "memory info list",
        md::MINIDUMP_MEMORY_INFO_LIST {
            size_of_header: md::MINIDUMP_MEMORY_INFO_LIST::size_with(&LE) as u32,
            size_of_entry: md::MINIDUMP_MEMORY_INFO::size_with(&LE) as u32,
            number_of_entries: snap.mappings.len() as u64,
        },
    )?;
    for m in &snap.mappings {
        let prot = protection(m);
        b.push(
            "memory info",
            md::MINIDUMP_MEMORY_INFO {
                base_address: m.start,
                allocation_base: m.start,
                allocation_protection: prot,
                __alignment1: 0,
                region_size: m.len(),
                state: 0x1000, // MEM_COMMIT
                protection: prot,
                _type: memory_type(m, &modules),
                __alignment2: 0,
            },
        )?;
    }
    let loc = b.since("memory info list", mi_start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::MemoryInfoListStream as u32, loc);

    // Linux streams.
    use md::MINIDUMP_STREAM_TYPE as S;
    let f = &snap.files;
    let raw: [(S, &'static str, Option<&[u8]>); 7] = [
        (S::LinuxCpuInfo, "/proc/cpuinfo", f.cpuinfo.as_deref()),
        (S::LinuxProcStatus, "/proc/PID/status", f.status.as_deref()),
        (S::LinuxLsbRelease, "os-release", f.os_release.as_deref()),
        (S::LinuxCmdLine, "/proc/PID/cmdline", f.cmdline.as_deref()),
        (S::LinuxEnviron, "/proc/PID/environ", f.environ.as_deref()),
        (S::LinuxAuxv, "/proc/PID/auxv", Some(snap.auxv.as_slice())),
        (S::MozLinuxLimits, "/proc/PID/limits", f.limits.as_deref()),
    ];
    for (ty, what, data) in raw {
        if let Some(d) = data {
            b.raw_stream(ty as u32, what, d)?;
        }
    }
    let maps_text;
    let maps: &[u8] = match &f.maps {
        Some(m) => m,
        None => {
            maps_text = maps_from_mappings(&snap.mappings);
            &maps_text
        }
    };
    b.raw_stream(S::LinuxMaps as u32, "/proc/PID/maps", maps)?;

    match elfmem::read_dso_debug(mem, |k| snap.auxv_value(k)) {
        Ok(d) => write_dso_debug(&mut b, &d)?,
        Err(e) => soft.push(format!("no LinuxDsoDebug stream: {e}")),
    }

    if let Some(c) = &opts.comment {
        let mut bytes = c.as_bytes().to_vec();
        bytes.push(0);
        b.raw_stream(S::CommentStreamA as u32, "comment", &bytes)?;
    }

    write_xstate(&mut b, snap, opts)?;

    // Soft errors: reserve room for what the memory copy may add.
    let reserve = soft_errors_json(&soft).len() + SOFT_ERRORS_SLACK;
    b.align(4);
    let soft_rva = b.rva("soft errors")?;
    b.buf.resize(b.buf.len() + reserve, 0);
    let soft_dir_index = b.dir.len();
    b.stream(
        S::MozSoftErrors as u32,
        Loc {
            data_size: 0,
            rva: soft_rva,
        },
    );

    // Memory list and directory come last; their sizes are known now.
    let dir_count = b.dir.len() + 1;
    let n = layout.regions.len();
    let est = |list: usize| (b.pos().next_multiple_of(8) + list + dir_count * 12) as u64;
    let use64 = opts.level != DumpLevel::Mini
        || est(4 + 16 * n).next_multiple_of(PAGE) + total > u64::from(u32::MAX);
    let list_size = if use64 { 16 + 16 * n } else { 4 + 16 * n };
    let mem_base = est(list_size).next_multiple_of(PAGE);
    if mem_base > u64::from(u32::MAX) {
        return Err(DumpError::MetadataTooLarge {
            pid: snap.pid,
            bytes: mem_base,
        });
    }

    b.align(8);
    let list_start = b.pos();
    if use64 {
        b.buf.extend_from_slice(&(n as u64).to_le_bytes());
        b.buf.extend_from_slice(&mem_base.to_le_bytes());
        for r in &layout.regions {
            b.push(
                "memory64 descriptor",
                md::MINIDUMP_MEMORY_DESCRIPTOR64 {
                    start_of_memory_range: r.start,
                    data_size: r.len,
                },
            )?;
        }
    } else {
        b.buf.extend_from_slice(&(n as u32).to_le_bytes());
        for (r, off) in layout.regions.iter().zip(&layout.offsets) {
            b.push(
                "memory descriptor",
                md::MINIDUMP_MEMORY_DESCRIPTOR {
                    start_of_memory_range: r.start,
                    memory: Loc {
                        data_size: r.len as u32,
                        rva: (mem_base + off) as u32,
                    },
                },
            )?;
        }
    }
    let loc = b.since("memory list", list_start)?;
    let list_type = if use64 {
        S::Memory64ListStream
    } else {
        S::MemoryListStream
    };
    b.stream(list_type as u32, loc);

    for (off, s) in stack_patches {
        let memory = match layout.locate(s) {
            Some(rel) if mem_base + rel + s.len <= u64::from(u32::MAX) => Loc {
                data_size: s.len as u32,
                rva: (mem_base + rel) as u32,
            },
            // Past 4 GiB: readers find it through the memory list.
            Some(_) => Loc {
                data_size: s.len.min(u64::from(u32::MAX)) as u32,
                rva: 0,
            },
            None => Loc::default(),
        };
        b.patch(
            "thread stack",
            off,
            md::MINIDUMP_MEMORY_DESCRIPTOR {
                start_of_memory_range: s.start,
                memory,
            },
        )?;
    }

    b.align(4);
    let dir_rva = b.rva("stream directory")?;
    let dir = std::mem::take(&mut b.dir);
    for d in &dir {
        b.push("directory", d.clone())?;
    }
    let flags = match opts.level {
        DumpLevel::Mini => MD_WITH_FULL_MEMORY_INFO,
        DumpLevel::MiniPlus => MD_WITH_FULL_MEMORY_INFO | MD_WITH_PRIVATE_RW_MEMORY,
        DumpLevel::Full => MD_WITH_FULL_MEMORY_INFO | MD_WITH_FULL_MEMORY,
    };
    b.patch("header", 0, header(dir.len() as u32, dir_rva, flags))?;
    debug_assert!(b.pos() as u64 <= mem_base);

    let io = |what: &'static str| move |source| DumpError::io(what, source);
    // Truncate only a file that has bytes: on ext4, truncating to zero
    // marks the inode for a synchronous flush at close (auto_da_alloc),
    // which costs ~0.25 s per GiB of dump for nothing on a new file.
    if out.metadata().map_err(io("truncate the minidump"))?.len() != 0 {
        out.set_len(0).map_err(io("truncate the minidump"))?;
    }
    out.write_all_at(&b.buf, 0)
        .map_err(io("write the minidump metadata"))?;
    out.seek(SeekFrom::Start(mem_base))
        .map_err(io("seek to the minidump memory"))?;
    let memory_bytes = copy_regions(mem, &layout.regions, out, progress, &mut soft)
        .map_err(io("write the minidump memory"))?;

    // Now the soft errors are complete: fill the reserved slot.
    let json = soft_errors_json_capped(&soft, reserve);
    out.write_all_at(json.as_bytes(), u64::from(soft_rva))
        .map_err(io("write the soft errors stream"))?;
    let mut entry = [0u8; 12];
    entry
        .pwrite_with(
            md::MINIDUMP_DIRECTORY {
                stream_type: S::MozSoftErrors as u32,
                location: Loc {
                    data_size: json.len() as u32,
                    rva: soft_rva,
                },
            },
            0,
            LE,
        )
        .map_err(|source| DumpError::Encode {
            what: "directory",
            source,
        })?;
    out.write_all_at(&entry, u64::from(dir_rva) + 12 * soft_dir_index as u64)
        .map_err(io("write the stream directory"))?;
    let end = mem_base + memory_bytes;
    out.set_len(end).map_err(io("set the minidump length"))?;

    Ok(DumpStats {
        bytes_written: end,
        memory_bytes,
        regions: layout.regions.len(),
        threads: snap.threads.len(),
        modules: modules.len(),
        soft_errors: soft,
    })
}

fn header(stream_count: u32, dir_rva: u32, flags: u64) -> md::MINIDUMP_HEADER {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0);
    md::MINIDUMP_HEADER {
        signature: md::MINIDUMP_SIGNATURE,
        version: md::MINIDUMP_VERSION,
        stream_count,
        stream_directory_rva: dir_rva,
        checksum: 0,
        time_date_stamp: now,
        flags,
    }
}

fn write_exception(
    b: &mut Blob,
    snap: &ProcessSnapshot,
    opts: &DumpOptions,
    contexts: &[Option<Loc>],
) -> Result<(), DumpError> {
    let (tid, rec, ctx) = match &opts.crash {
        Some(c) => {
            b.align(16);
            let start = b.pos();
            b.push("exception context", context_amd64(&c.regs))?;
            let ctx = b.since("exception context", start)?;
            let si = &c.siginfo;
            let mut info = [0u64; 15];
            let (address, nparams) = match si.fault_address() {
                Some(a) => {
                    info[0] = si.errno() as u32 as u64;
                    info[1] = a;
                    (a, 2)
                }
                None if !si.is_from_kernel() => {
                    info[0] = si.sender_pid() as u32 as u64;
                    info[1] = u64::from(si.sender_uid());
                    (c.regs.pc(), 2)
                }
                None => (c.regs.pc(), 0),
            };
            let rec = md::MINIDUMP_EXCEPTION {
                exception_code: si.signo() as u32,
                exception_flags: si.code() as u32,
                exception_record: 0,
                exception_address: address,
                number_parameters: nparams,
                __align: 0,
                exception_information: info,
            };
            (c.tid.0 as u32, rec, ctx)
        }
        None => {
            let Some((t, ctx)) = snap
                .threads
                .iter()
                .zip(contexts)
                .find_map(|(t, c)| c.map(|c| (t, c)))
            else {
                return Ok(());
            };
            let rec = md::MINIDUMP_EXCEPTION {
                exception_code: DUMP_REQUESTED,
                exception_address: t.regs.as_ref().map(|r| r.pc()).unwrap_or(0),
                ..Default::default()
            };
            (t.tid.0 as u32, rec, ctx)
        }
    };
    b.align(8);
    let start = b.pos();
    b.push(
        "exception",
        md::MINIDUMP_EXCEPTION_STREAM {
            thread_id: tid,
            __align: 0,
            exception_record: rec,
            thread_context: ctx,
        },
    )?;
    let loc = b.since("exception", start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::ExceptionStream as u32, loc);
    Ok(())
}

/// Breakpad's `MDRawDebug` + `MDRawLinkMap64` array, then the executable's
/// dynamic section bytes right after the `MDRawDebug`.
fn write_dso_debug(b: &mut Blob, d: &DsoDebug) -> Result<(), DumpError> {
    let mut names = Vec::with_capacity(d.maps.len());
    for m in &d.maps {
        names.push(b.string("link map name", &String::from_utf8_lossy(&m.name))?);
    }
    b.align(8);
    let map_rva = b.rva("link maps")?;
    for (m, name) in d.maps.iter().zip(names) {
        b.push(
            "link map",
            md::LINK_MAP_64 {
                addr: m.addr,
                name,
                ld: m.ld,
            },
        )?;
    }
    b.align(8);
    let start = b.pos();
    b.push(
        "r_debug",
        md::DSO_DEBUG_64 {
            version: d.version,
            map: map_rva,
            dso_count: d.maps.len() as u32,
            brk: d.brk,
            ldbase: d.ldbase,
            dynamic: d.dynamic,
        },
    )?;
    b.buf.extend_from_slice(&d.dynamic_bytes);
    let loc = b.since("r_debug", start)?;
    b.stream(md::MINIDUMP_STREAM_TYPE::LinuxDsoDebug as u32, loc);
    Ok(())
}

fn write_xstate(b: &mut Blob, snap: &ProcessSnapshot, opts: &DumpOptions) -> Result<(), DumpError> {
    let mut entries: Vec<(u32, &[u8])> = snap
        .threads
        .iter()
        .filter_map(|t| Some((t.tid.0 as u32, t.regs.as_ref()?.xstate.as_deref()?)))
        .collect();
    if let Some(x) = opts.crash.as_ref().and_then(|c| c.regs.xstate.as_deref()) {
        let tid = opts.crash.as_ref().map(|c| c.tid.0 as u32).unwrap_or(0);
        entries.push((tid | XSTATE_CRASH_FLAG, x));
    }
    if entries.is_empty() {
        return Ok(());
    }
    b.align(8);
    let start = b.pos();
    b.buf
        .extend_from_slice(&XSTATE_STREAM_VERSION.to_le_bytes());
    b.buf
        .extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (tid, x) in entries {
        b.buf.extend_from_slice(&tid.to_le_bytes());
        b.buf.extend_from_slice(&(x.len() as u32).to_le_bytes());
        b.buf.extend_from_slice(x);
        b.align(8);
    }
    let loc = b.since("xstate", start)?;
    b.stream(XSTATE_STREAM, loc);
    Ok(())
}

/// `/proc/PID/maps` text regenerated from the parsed mappings.
fn maps_from_mappings(maps: &[Mapping]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in maps {
        out.extend_from_slice(
            format!(
                "{:x}-{:x} {} {:08x} {:02x}:{:02x} {} ",
                m.start,
                m.end,
                m.perms.to_text(),
                m.offset,
                m.dev_major,
                m.dev_minor,
                m.inode
            )
            .as_bytes(),
        );
        out.extend_from_slice(&m.name);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_caps() {
        let e = vec!["a\"b\\c\nd\u{1}".to_owned(), "x".repeat(100)];
        assert_eq!(soft_errors_json(&e[..1]), r#"["a\"b\\c\nd\u0001"]"#);
        let capped = soft_errors_json_capped(&e, 60);
        assert!(capped.len() <= 60, "{capped}");
        assert!(capped.contains("1 more soft errors omitted"), "{capped}");
        assert_eq!(soft_errors_json_capped(&e, 1), "[]");
    }

    #[test]
    fn cpuid_from_cpuinfo() {
        let f = cpu_facts(Some(
            b"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nstepping\t: 7\n\nprocessor\t: 1\nvendor_id\t: X\n",
        ));
        assert_eq!(f.count, 2);
        assert_eq!(&f.vendor, b"GenuineIntel");
        assert_eq!(cpuid_version(&f), 0x0005_0657);
    }

    #[test]
    fn context_carries_fxsave() {
        let mut r = ThreadRegs::default();
        r.gp.rip = 5;
        r.gp.cs = 0x33;
        let mut fx = Box::new([0u8; 512]);
        fx[24] = 0x80;
        fx[25] = 0x1f;
        r.fp = Some(fx);
        let c = context_amd64(&r);
        assert_eq!((c.rip, c.cs, c.mx_csr), (5, 0x33, 0x1f80));
        assert_eq!(c.context_flags, 0x0010_000f);
    }
}
