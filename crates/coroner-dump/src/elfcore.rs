//! The ELF core writer: what `gcore` and the kernel write, so gdb (and any
//! ELF core reader) opens the dump as it would a kernel core.
//!
//! Owns: the file layout (ELF header, one `PT_NOTE`, one or more `PT_LOAD`
//! per mapping, page-aligned data), the note descriptors (`NT_PRSTATUS`,
//! `NT_PRFPREG`, `NT_X86_XSTATE`, `NT_PRPSINFO`, `NT_SIGINFO`, `NT_AUXV`,
//! `NT_FILE`) in the kernel's x86-64 layouts and in the kernel's order, and
//! the choice of which bytes of each mapping the file holds.
//!
//! Must not: decide what a dump level holds (that is `plan`), read memory
//! other than through [`MemorySource`] and `copy_regions` (the bulk memory
//! is streamed, never held whole), or panic on odd snapshots (empty thread
//! lists, unreadable mappings, hostile names are all written as they are).
//!
//! Layout, as `fs/binfmt_elf.c` does it:
//! ```text
//! Elf64_Ehdr | Elf64_Phdr × n | [Elf64_Shdr when n >= PN_XNUM] | notes | pad to 4096 | data
//! ```
//! Notes follow the kernel's `write_note_info`: the first thread's
//! `NT_PRSTATUS`, then the process notes (`NT_PRPSINFO`, `NT_SIGINFO`,
//! `NT_AUXV`, `NT_FILE`), then that thread's `NT_PRFPREG` / `NT_X86_XSTATE`,
//! then every other thread's `NT_PRSTATUS`, `NT_PRFPREG`, `NT_X86_XSTATE`.
//! The crashing thread is the first thread; its registers come from the
//! [`CrashContext`] (the fault), not from the live thread (which sits in the
//! signal handler or the JIT wait).
//!
//! Windows/Linux note: a Windows full dump always carries an exception
//! record. Without a crash ("dump requested") the kernel has no core to
//! model; like `gcore` on a thread without a pending signal we then write no
//! `NT_SIGINFO` and `pr_cursig` 0, so gdb reports no terminating signal
//! instead of a made-up one.

use crate::copy::{copy_regions, Progress};
use crate::plan::{plan_regions, Region};
use crate::{DumpError, DumpOptions, DumpStats};
use coroner_proc::{MemorySource, ProcessSnapshot};
use coroner_types::{CrashContext, Mapping, ThreadRegs, Tid};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

/// Page size of x86-64 Linux; segment data offsets are aligned to it and the
/// `NT_FILE` offsets are counted in it.
pub const PAGE_SIZE: u64 = 4096;

/// `e_type` of a core file.
pub const ET_CORE: u16 = 4;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// Program header types.
pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
/// Program header flags.
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
/// `e_phnum` value meaning "the real count is in section header 0's
/// `sh_info`" (extended numbering).
pub const PN_XNUM: u16 = 0xffff;

/// Note types.
pub const NT_PRSTATUS: u32 = 1;
pub const NT_PRFPREG: u32 = 2;
pub const NT_PRPSINFO: u32 = 3;
pub const NT_AUXV: u32 = 6;
pub const NT_X86_XSTATE: u32 = 0x202;
pub const NT_SIGINFO: u32 = 0x5349_4749;
pub const NT_FILE: u32 = 0x4649_4c45;
/// Note type of the dump comment (`/c`), under the name [`COMMENT_NOTE_NAME`].
/// bfd dispatches unknown owner names on the type alone, so the type is one
/// no reader assigns a meaning to ("CMNT").
pub const NT_CORONER_COMMENT: u32 = 0x434d_4e54;
/// Owner name of coroner's own notes.
pub const COMMENT_NOTE_NAME: &str = "CORONER";

/// Sizes of the fixed structures (x86-64).
pub const EHDR_SIZE: u64 = 64;
pub const PHDR_SIZE: u64 = 56;
pub const SHDR_SIZE: u64 = 64;
/// `sizeof(struct elf_prstatus)` on x86-64.
pub const PRSTATUS_SIZE: usize = 336;
/// `sizeof(struct elf_prpsinfo)` on x86-64.
pub const PRPSINFO_SIZE: usize = 136;
/// Offset of `pr_reg` in `struct elf_prstatus`.
pub const PRSTATUS_REG_OFFSET: usize = 112;
/// Offset of `pr_fpvalid` in `struct elf_prstatus`.
pub const PRSTATUS_FPVALID_OFFSET: usize = 328;
/// `ELF_PRARGSZ`: bytes of `pr_psargs`, NUL included.
pub const PRARGSZ: usize = 80;

/// One program header to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub memsz: u64,
    /// `PF_*` bits from the mapping's permissions.
    pub flags: u32,
    /// The file holds the whole segment (`p_filesz == p_memsz`), or none of
    /// it (`p_filesz == 0`).
    pub present: bool,
}

/// `PF_*` bits of a mapping.
pub fn phdr_flags(m: &Mapping) -> u32 {
    let mut f = 0;
    if m.perms.read {
        f |= PF_R;
    }
    if m.perms.write {
        f |= PF_W;
    }
    if m.perms.exec {
        f |= PF_X;
    }
    f
}

/// Whether a mapping gets program headers at all: everything but the
/// kernel pseudo-mappings that cannot be read (`[vvar]`, `[vsyscall]`), as
/// gcore does. `[vdso]` is kept (gdb unwinds through it).
pub fn mapping_dumped(m: &Mapping) -> bool {
    !m.is_empty() && !m.is_special_unreadable()
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

fn page_up(a: u64) -> u64 {
    a.checked_add(PAGE_SIZE - 1)
        .map_or(!(PAGE_SIZE - 1), page_down)
}

/// Sort and merge half-open `[start, end)` ranges (empty ones dropped).
pub(crate) fn merge_ranges(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.retain(|r| r.0 < r.1);
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Bytes at the start of a mapping that every level keeps, as the kernel
/// does whatever the `coredump_filter`: the whole vDSO (its
/// `always_dump_vma` rule; gdb reads the vDSO image from the core to unwind
/// signal frames), and the first page of a file mapped from offset 0 that
/// starts with an ELF header (`coredump_filter` bit 4, so build-id notes are
/// in the core). `vdso` is the address of the vDSO (`AT_SYSINFO_EHDR`).
pub fn always_kept(m: &Mapping, vdso: Option<u64>, mem: &dyn MemorySource) -> Option<u64> {
    if !m.perms.read {
        return None;
    }
    if m.name == b"[vdso]" || vdso.is_some_and(|a| m.contains(a)) {
        return Some(m.len());
    }
    if !m.is_file() || m.offset != 0 {
        return None;
    }
    let mut magic = [0u8; 4];
    (matches!(mem.read(m.start, &mut magic), Ok(4)) && magic == *b"\x7fELF").then_some(PAGE_SIZE)
}

/// `AT_PHDR`, `AT_PHENT`, `AT_PHNUM`, `AT_SYSINFO_EHDR`.
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_SYSINFO_EHDR: u64 = 33;
/// `PT_DYNAMIC`, `PT_PHDR`, `DT_DEBUG`.
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
const DT_DEBUG: u64 = 21;
/// Bounds on what the link-map walk reads (the target is hostile).
const MAX_PHNUM: u64 = 256;
const MAX_DYN_BYTES: u64 = 64 << 10;
const MAX_LINK_MAPS: usize = 4096;
const MAX_NAME_BYTES: usize = 4096;
/// `sizeof(struct r_debug_extended)` (glibc 2.35+; older is 40 bytes).
const R_DEBUG_BYTES: u64 = 48;
/// `l_addr`, `l_name`, `l_ld`, `l_next`, `l_prev`: the public part of
/// `struct link_map`.
const LINK_MAP_BYTES: u64 = 40;

fn read_u64(mem: &dyn MemorySource, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read_exact(addr, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// The memory gdb needs to find the shared libraries of a process: the
/// executable's program headers and dynamic section, `r_debug` (found
/// through `DT_DEBUG`), every `link_map` entry and its name. A minidump
/// carries this as its module list; an ELF core carries it as memory, so a
/// mini core must hold these bytes or gdb sees no libraries.
///
/// Best effort: a broken or hostile chain ends the walk (bounded by
/// [`MAX_LINK_MAPS`] and cycle detection); what was found so far is kept.
pub fn link_map_regions(snap: &ProcessSnapshot, mem: &dyn MemorySource) -> Vec<Region> {
    let mut out = Vec::new();
    let (Some(phdr), Some(phnum)) = (snap.auxv_value(AT_PHDR), snap.auxv_value(AT_PHNUM)) else {
        return out;
    };
    let phent = snap.auxv_value(AT_PHENT).unwrap_or(PHDR_SIZE);
    if phent < PHDR_SIZE || phnum == 0 || phnum > MAX_PHNUM {
        return out;
    }
    let mut table = vec![0u8; (phent * phnum) as usize];
    if mem.read_exact(phdr, &mut table).is_err() {
        return out;
    }
    out.push(Region {
        start: phdr,
        len: table.len() as u64,
    });
    let field = |e: &[u8], o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
    let entries: Vec<&[u8]> = table.chunks_exact(phent as usize).collect();
    let ptype = |e: &[u8]| u32::from_le_bytes(e[0..4].try_into().unwrap_or([0; 4]));
    // Load bias: where PT_PHDR says the table is versus where it is.
    let bias = entries
        .iter()
        .find(|e| ptype(e) == PT_PHDR)
        .map_or(0, |e| phdr.wrapping_sub(field(e, 16)));
    let Some(dynamic) = entries.iter().find(|e| ptype(e) == PT_DYNAMIC) else {
        return out;
    };
    let dyn_addr = bias.wrapping_add(field(dynamic, 16));
    let dyn_len = field(dynamic, 40).min(MAX_DYN_BYTES) & !15;
    let mut dyn_bytes = vec![0u8; dyn_len as usize];
    let n = mem.read(dyn_addr, &mut dyn_bytes).unwrap_or(0);
    if n == 0 {
        return out;
    }
    out.push(Region {
        start: dyn_addr,
        len: n as u64,
    });
    let r_debug = dyn_bytes[..n]
        .chunks_exact(16)
        .find(|d| field(d, 0) == DT_DEBUG)
        .map(|d| field(d, 8))
        .filter(|&a| a != 0);
    let Some(r_debug) = r_debug else {
        return out;
    };
    out.push(Region {
        start: r_debug,
        len: R_DEBUG_BYTES,
    });
    let mut next = read_u64(mem, r_debug + 8).unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    while next != 0 && seen.len() < MAX_LINK_MAPS && seen.insert(next) {
        let mut lm = [0u8; LINK_MAP_BYTES as usize];
        if mem.read_exact(next, &mut lm).is_err() {
            break;
        }
        out.push(Region {
            start: next,
            len: LINK_MAP_BYTES,
        });
        let name = field(&lm, 8);
        if name != 0 {
            let mut buf = vec![0u8; MAX_NAME_BYTES];
            let got = mem.read(name, &mut buf).unwrap_or(0);
            let len = buf[..got]
                .iter()
                .position(|&c| c == 0)
                .map_or(got, |i| i + 1);
            if len > 0 {
                out.push(Region {
                    start: name,
                    len: len as u64,
                });
            }
        }
        next = field(&lm, 24);
    }
    out
}

/// The program headers of the memory: per dumped mapping, segments that
/// alternate between present and absent and together cover the mapping.
///
/// `wanted` are the byte ranges the dump level holds (from `plan_regions`).
/// Within a mapping they are rounded out to whole pages, so every present
/// segment starts and ends on a page boundary and the data stays page
/// aligned in the file. `always` gives, per mapping, how many bytes from
/// its start are kept even when the level does not hold them (see
/// [`always_kept`]).
pub fn layout_segments(
    mappings: &[Mapping],
    wanted: &[Region],
    mut always: impl FnMut(&Mapping) -> Option<u64>,
) -> Vec<LoadSegment> {
    let wanted = merge_ranges(
        wanted
            .iter()
            .map(|r| (r.start, r.start.saturating_add(r.len)))
            .collect(),
    );
    let mut segs = Vec::new();
    for m in mappings.iter().filter(|m| mapping_dumped(m)) {
        let flags = phdr_flags(m);
        // Ranges of wanted bytes inside this mapping, page-rounded and
        // clipped to the mapping.
        let first = wanted.partition_point(|r| r.1 <= m.start);
        let mut inside: Vec<(u64, u64)> = wanted[first..]
            .iter()
            .take_while(|r| r.0 < m.end)
            .map(|r| {
                let s = page_down(r.0.max(m.start)).max(m.start);
                let e = page_up(r.1.min(m.end)).min(m.end);
                (s, e)
            })
            .collect();
        if let Some(len) = always(m) {
            let e = page_up(m.start.saturating_add(len)).min(m.end);
            inside.push((m.start, e));
        }
        let inside = merge_ranges(inside);
        let mut at = m.start;
        for (s, e) in inside {
            if s > at {
                segs.push(LoadSegment {
                    vaddr: at,
                    memsz: s - at,
                    flags,
                    present: false,
                });
            }
            segs.push(LoadSegment {
                vaddr: s,
                memsz: e - s,
                flags,
                present: true,
            });
            at = e;
        }
        if at < m.end {
            segs.push(LoadSegment {
                vaddr: at,
                memsz: m.end - at,
                flags,
                present: false,
            });
        }
    }
    segs
}

/// Append one note: header, name (NUL-terminated, padded to 4), descriptor
/// (padded to 4).
pub fn push_note(buf: &mut Vec<u8>, name: &str, ntype: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    buf.extend_from_slice(&(namesz as u32).to_le_bytes());
    buf.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    buf.extend_from_slice(&ntype.to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    pad4(buf);
    buf.extend_from_slice(desc);
    pad4(buf);
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// What `NT_PRSTATUS` says about a thread besides its registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrStatusInfo {
    /// `pr_info.si_signo` and `pr_cursig`: the signal being delivered.
    pub signo: i32,
    pub sigpend: u64,
    pub sighold: u64,
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
}

/// `struct elf_prstatus` (x86-64, 336 bytes). Times are left zero: the
/// snapshot does not carry per-thread CPU times.
pub fn prstatus_bytes(info: &PrStatusInfo, regs: &ThreadRegs) -> [u8; PRSTATUS_SIZE] {
    let mut b = [0u8; PRSTATUS_SIZE];
    // pr_info: si_signo, si_code, si_errno. The kernel fills only si_signo.
    b[0..4].copy_from_slice(&info.signo.to_le_bytes());
    // pr_cursig is a short; signal numbers fit.
    b[12..14].copy_from_slice(&(info.signo as i16).to_le_bytes());
    b[16..24].copy_from_slice(&info.sigpend.to_le_bytes());
    b[24..32].copy_from_slice(&info.sighold.to_le_bytes());
    b[32..36].copy_from_slice(&info.pid.to_le_bytes());
    b[36..40].copy_from_slice(&info.ppid.to_le_bytes());
    b[40..44].copy_from_slice(&info.pgrp.to_le_bytes());
    b[44..48].copy_from_slice(&info.sid.to_le_bytes());
    // pr_utime, pr_stime, pr_cutime, pr_cstime: 48..112, zero.
    let gp = regs.gp.to_bytes();
    b[PRSTATUS_REG_OFFSET..PRSTATUS_REG_OFFSET + gp.len()].copy_from_slice(&gp);
    let fpvalid: i32 = regs.fp.is_some().into();
    b[PRSTATUS_FPVALID_OFFSET..PRSTATUS_FPVALID_OFFSET + 4].copy_from_slice(&fpvalid.to_le_bytes());
    b
}

/// What `NT_PRPSINFO` says about the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrPsInfo {
    /// State letter from `/proc/PID/status` (`R`, `S`, `D`, `T`, `t`, `Z`...).
    pub state: u8,
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    /// `comm` (cut to 15 bytes).
    pub fname: Vec<u8>,
    /// Raw `/proc/PID/cmdline` (NUL-separated).
    pub cmdline: Vec<u8>,
}

/// `struct elf_prpsinfo` (x86-64, 136 bytes), filled as `fill_psinfo` does.
pub fn prpsinfo_bytes(p: &PrPsInfo) -> [u8; PRPSINFO_SIZE] {
    let mut b = [0u8; PRPSINFO_SIZE];
    // pr_state is the index into "RSDTZW"; pr_sname the letter, '.' when
    // unknown. A traced stop ('t') is a stop.
    let letter = if p.state == b't' { b'T' } else { p.state };
    let (state, sname) = match b"RSDTZW".iter().position(|&c| c == letter) {
        Some(i) => (i as u8, letter),
        None => (6, b'.'),
    };
    b[0] = state;
    b[1] = sname;
    b[2] = u8::from(letter == b'Z');
    // pr_nice (3) and pr_flag (8..16) are not in the snapshot: zero.
    b[16..20].copy_from_slice(&p.uid.to_le_bytes());
    b[20..24].copy_from_slice(&p.gid.to_le_bytes());
    b[24..28].copy_from_slice(&p.pid.to_le_bytes());
    b[28..32].copy_from_slice(&p.ppid.to_le_bytes());
    b[32..36].copy_from_slice(&p.pgrp.to_le_bytes());
    b[36..40].copy_from_slice(&p.sid.to_le_bytes());
    let fname_len = p
        .fname
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(p.fname.len())
        .min(15);
    b[40..40 + fname_len].copy_from_slice(&p.fname[..fname_len]);
    // pr_psargs: the command line with NULs as spaces, at most 79 bytes and
    // NUL-terminated. The trailing NUL of the last argument is dropped (as
    // gcore does) so readers do not show a trailing space.
    let mut args = p.cmdline.as_slice();
    while let [rest @ .., 0] = args {
        args = rest;
    }
    let n = args.len().min(PRARGSZ - 1);
    for (dst, &src) in b[56..56 + n].iter_mut().zip(&args[..n]) {
        *dst = if src == 0 { b' ' } else { src };
    }
    b
}

/// `NT_FILE` descriptor: count, page size, `(start, end, offset / page)`
/// triples, then the NUL-terminated names, for every file-backed mapping.
pub fn file_note_bytes(mappings: &[Mapping]) -> Vec<u8> {
    let files: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| m.is_file() && !m.is_empty())
        .collect();
    let mut b = Vec::with_capacity(16 + files.len() * 24);
    b.extend_from_slice(&(files.len() as u64).to_le_bytes());
    b.extend_from_slice(&PAGE_SIZE.to_le_bytes());
    for m in &files {
        b.extend_from_slice(&m.start.to_le_bytes());
        b.extend_from_slice(&m.end.to_le_bytes());
        b.extend_from_slice(&(m.offset / PAGE_SIZE).to_le_bytes());
    }
    for m in &files {
        // Names cannot hold NUL (the kernel's maps text cannot); should one
        // arrive anyway, cut it there so the name table stays parseable.
        let end = m.name.iter().position(|&c| c == 0).unwrap_or(m.name.len());
        b.extend_from_slice(&m.name[..end]);
        b.push(0);
    }
    b
}

/// The fields of `/proc/PID/status` the notes use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFields {
    pub state: u8,
    pub pgrp: i32,
    pub sid: i32,
    pub sigpnd: u64,
    pub sigblk: u64,
}

/// Parse the few `/proc/PID/status` fields the notes carry. Missing or
/// malformed lines leave their field zero (the text is hostile input).
pub fn parse_status(text: &[u8]) -> StatusFields {
    let mut f = StatusFields::default();
    for line in text.split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let value = String::from_utf8_lossy(value);
        let first = value.split_whitespace().next().unwrap_or("");
        match key {
            b"State" => f.state = first.bytes().next().unwrap_or(0),
            b"NSpgid" => f.pgrp = first.parse().unwrap_or(0),
            b"NSsid" => f.sid = first.parse().unwrap_or(0),
            b"SigPnd" => f.sigpnd = u64::from_str_radix(first, 16).unwrap_or(0),
            b"SigBlk" => f.sigblk = u64::from_str_radix(first, 16).unwrap_or(0),
            _ => {}
        }
    }
    f
}

/// One thread as the notes describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct NoteThread<'a> {
    pub tid: Tid,
    pub regs: &'a ThreadRegs,
}

/// The threads in note order: the crashing thread first with the crash
/// registers, then the others in snapshot order. Threads whose registers
/// could not be read are left out (a `NT_PRSTATUS` with zero registers would
/// show a thread at address 0); each is reported in `soft_errors`.
pub fn note_threads<'a>(
    snap: &'a ProcessSnapshot,
    crash: Option<&'a CrashContext>,
    soft_errors: &mut Vec<String>,
) -> Vec<NoteThread<'a>> {
    let mut out = Vec::with_capacity(snap.threads.len() + 1);
    if let Some(c) = crash {
        out.push(NoteThread {
            tid: c.tid,
            regs: &c.regs,
        });
    }
    for t in &snap.threads {
        if crash.is_some_and(|c| c.tid == t.tid) {
            continue;
        }
        match &t.regs {
            Some(regs) => out.push(NoteThread { tid: t.tid, regs }),
            None => soft_errors.push(format!(
                "thread {}: registers unknown, left out of the ELF core",
                t.tid
            )),
        }
    }
    out
}

/// The whole `PT_NOTE` segment, in the kernel's order.
pub fn build_notes(
    snap: &ProcessSnapshot,
    crash: Option<&CrashContext>,
    comment: Option<&str>,
    soft_errors: &mut Vec<String>,
) -> (Vec<u8>, usize) {
    let status = snap
        .files
        .status
        .as_deref()
        .map(parse_status)
        .unwrap_or_default();
    let signo = crash.map_or(0, |c| c.siginfo.signo());
    let threads = note_threads(snap, crash, soft_errors);

    let mut process_notes = Vec::new();
    let psinfo = PrPsInfo {
        state: status.state,
        uid: snap.uid,
        gid: snap.gid,
        pid: snap.pid.0,
        ppid: snap.ppid.0,
        pgrp: status.pgrp,
        sid: status.sid,
        fname: snap.comm.clone(),
        cmdline: snap.files.cmdline.clone().unwrap_or_default(),
    };
    push_note(
        &mut process_notes,
        "CORE",
        NT_PRPSINFO,
        &prpsinfo_bytes(&psinfo),
    );
    if let Some(c) = crash {
        push_note(&mut process_notes, "CORE", NT_SIGINFO, &c.siginfo.raw);
    }
    push_note(&mut process_notes, "CORE", NT_AUXV, &snap.auxv);
    push_note(
        &mut process_notes,
        "CORE",
        NT_FILE,
        &file_note_bytes(&snap.mappings),
    );
    if let Some(text) = comment {
        push_note(
            &mut process_notes,
            COMMENT_NOTE_NAME,
            NT_CORONER_COMMENT,
            text.as_bytes(),
        );
    }

    let mut notes = Vec::new();
    for (i, t) in threads.iter().enumerate() {
        let leader = t.tid.0 == snap.pid.0;
        let info = PrStatusInfo {
            signo,
            // /proc/PID/status is the leader's: its per-thread masks belong
            // to the leader only.
            sigpend: if leader { status.sigpnd } else { 0 },
            sighold: if leader { status.sigblk } else { 0 },
            pid: t.tid.0,
            ppid: snap.ppid.0,
            pgrp: status.pgrp,
            sid: status.sid,
        };
        push_note(
            &mut notes,
            "CORE",
            NT_PRSTATUS,
            &prstatus_bytes(&info, t.regs),
        );
        if i == 0 {
            notes.extend_from_slice(&process_notes);
        }
        if let Some(fp) = &t.regs.fp {
            push_note(&mut notes, "CORE", NT_PRFPREG, &fp[..]);
        }
        if let Some(x) = &t.regs.xstate {
            push_note(&mut notes, "LINUX", NT_X86_XSTATE, x);
        }
    }
    if threads.is_empty() {
        notes.extend_from_slice(&process_notes);
    }
    (notes, threads.len())
}

/// `Elf64_Ehdr` of a core with `phnum` program headers (extended numbering
/// when `phnum >= PN_XNUM`, the section header following the program
/// headers).
pub fn ehdr_bytes(phnum: u64) -> [u8; EHDR_SIZE as usize] {
    let mut b = [0u8; EHDR_SIZE as usize];
    b[0..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // ELFDATA2LSB
    b[6] = 1; // EV_CURRENT
    b[7] = 0; // ELFOSABI_NONE, as the kernel writes
    b[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
    b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    // e_entry 0
    b[32..40].copy_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    let extended = phnum >= u64::from(PN_XNUM);
    if extended {
        let shoff = EHDR_SIZE + phnum * PHDR_SIZE;
        b[40..48].copy_from_slice(&shoff.to_le_bytes());
    }
    b[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    b[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    let e_phnum = if extended { PN_XNUM } else { phnum as u16 };
    b[56..58].copy_from_slice(&e_phnum.to_le_bytes());
    if extended {
        b[58..60].copy_from_slice(&(SHDR_SIZE as u16).to_le_bytes());
        b[60..62].copy_from_slice(&1u16.to_le_bytes());
    }
    b
}

/// The single `SHT_NULL` section header of extended numbering: `sh_info`
/// holds the real program header count.
fn extnum_shdr_bytes(phnum: u64) -> [u8; SHDR_SIZE as usize] {
    let mut b = [0u8; SHDR_SIZE as usize];
    // sh_size = e_shnum (1) as the kernel fills it; sh_info = segment count.
    b[32..40].copy_from_slice(&1u64.to_le_bytes());
    b[44..48].copy_from_slice(&(phnum.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    b
}

#[allow(clippy::too_many_arguments)]
fn phdr_bytes(
    ptype: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
) -> [u8; PHDR_SIZE as usize] {
    let mut b = [0u8; PHDR_SIZE as usize];
    b[0..4].copy_from_slice(&ptype.to_le_bytes());
    b[4..8].copy_from_slice(&flags.to_le_bytes());
    b[8..16].copy_from_slice(&offset.to_le_bytes());
    b[16..24].copy_from_slice(&vaddr.to_le_bytes());
    // p_paddr 0
    b[32..40].copy_from_slice(&filesz.to_le_bytes());
    b[40..48].copy_from_slice(&memsz.to_le_bytes());
    b[48..56].copy_from_slice(&align.to_le_bytes());
    b
}

/// Write an ELF core of `snap` to `out` (from offset 0; the file ends up
/// exactly as long as the core, a sparse tail included).
///
/// The memory written is what `plan_regions` gives for `opts.level`, rounded
/// to whole pages per mapping, plus what the kernel always keeps (the
/// vDSO, the first page of every mapped ELF file; see [`always_kept`]) and
/// what gdb needs to find the shared libraries ([`link_map_regions`]). It is streamed with `copy_regions`: bytes that cannot be read
/// are written as zeros and reported in the stats' soft errors.
pub fn write_elf_core(
    out: &mut File,
    snap: &ProcessSnapshot,
    mem: &dyn MemorySource,
    opts: &DumpOptions,
    progress: &dyn Progress,
) -> Result<DumpStats, DumpError> {
    let mut soft_errors = snap.soft_errors.clone();
    let crash = opts.crash.as_ref();

    let mut wanted = plan_regions(snap, opts.level, crash);
    wanted.extend(link_map_regions(snap, mem));
    let vdso = snap.auxv_value(AT_SYSINFO_EHDR);
    let segments = layout_segments(&snap.mappings, &wanted, |m| always_kept(m, vdso, mem));
    let (notes, thread_count) = build_notes(snap, crash, opts.comment.as_deref(), &mut soft_errors);

    let phnum = segments.len() as u64 + 1;
    let extended = phnum >= u64::from(PN_XNUM);
    let notes_off = EHDR_SIZE + phnum * PHDR_SIZE + if extended { SHDR_SIZE } else { 0 };
    let data_off = page_up(notes_off + notes.len() as u64);

    let mut headers = Vec::with_capacity((notes_off - EHDR_SIZE) as usize);
    headers.extend_from_slice(&phdr_bytes(
        PT_NOTE,
        0,
        notes_off,
        0,
        notes.len() as u64,
        0,
        4,
    ));
    let mut off = data_off;
    let mut present: Vec<Region> = Vec::new();
    for s in &segments {
        let filesz = if s.present { s.memsz } else { 0 };
        headers.extend_from_slice(&phdr_bytes(
            PT_LOAD, s.flags, off, s.vaddr, filesz, s.memsz, PAGE_SIZE,
        ));
        if s.present {
            present.push(Region {
                start: s.vaddr,
                len: s.memsz,
            });
            off += s.memsz;
        }
    }
    if extended {
        headers.extend_from_slice(&extnum_shdr_bytes(phnum));
    }

    let io = |what: &'static str| move |source: std::io::Error| DumpError::io(what, source);
    // Start from an empty file: stale bytes past the end of what is written
    // would otherwise survive, and the copy leaves holes only past the
    // file's end.
    // Truncate only a file that has bytes: on ext4, truncating to zero
    // marks the inode for a synchronous flush at close (auto_da_alloc),
    // which costs ~0.25 s per GiB of dump for nothing on a new file.
    if out.metadata().map_err(io("truncate the core file"))?.len() != 0 {
        out.set_len(0).map_err(io("truncate the core file"))?;
    }
    out.seek(SeekFrom::Start(0))
        .map_err(io("seek to the core header"))?;
    out.write_all(&ehdr_bytes(phnum))
        .map_err(io("write the ELF header"))?;
    out.write_all(&headers)
        .map_err(io("write the program headers"))?;
    out.write_all(&notes).map_err(io("write the notes"))?;
    out.seek(SeekFrom::Start(data_off))
        .map_err(io("seek to the core memory"))?;
    let memory_bytes = copy_regions(mem, &present, out, progress, &mut soft_errors)
        .map_err(io("write the core memory"))?;
    let end = data_off + present.iter().map(|r| r.len).sum::<u64>();
    out.set_len(end).map_err(io("set the core file length"))?;
    out.flush().map_err(io("flush the core file"))?;

    Ok(DumpStats {
        bytes_written: end,
        memory_bytes,
        regions: present.len(),
        threads: thread_count,
        modules: file_note_count(&snap.mappings),
        soft_errors,
    })
}

fn file_note_count(mappings: &[Mapping]) -> usize {
    let mut names: Vec<&[u8]> = mappings
        .iter()
        .filter(|m| m.is_file())
        .map(|m| m.name.as_slice())
        .collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_proc::{LinuxFiles, ThreadSnapshot};
    use coroner_types::{Perms, Pid, SigInfo, UserRegs};

    fn mapping(start: u64, end: u64, perms: &str, name: &str, offset: u64) -> Mapping {
        Mapping {
            start,
            end,
            perms: Perms::from_text(perms.as_bytes()).expect("test perms"),
            offset,
            inode: if name.starts_with('/') { 42 } else { 0 },
            name: name.as_bytes().to_vec(),
            ..Mapping::default()
        }
    }

    /// Walk a note segment into (name, type, descriptor) triples, checking
    /// the 4-byte padding on the way.
    fn parse_notes(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        while !b.is_empty() {
            let (namesz, descsz, ntype) =
                (u32_at(b, 0) as usize, u32_at(b, 4) as usize, u32_at(b, 8));
            let name_end = 12 + namesz;
            let desc_start = 12 + namesz.div_ceil(4) * 4;
            let next = desc_start + descsz.div_ceil(4) * 4;
            assert!(next <= b.len(), "note runs past the segment");
            assert_eq!(b[name_end - 1], 0, "note name not NUL-terminated");
            let name = String::from_utf8(b[12..name_end - 1].to_vec()).unwrap();
            out.push((name, ntype, b[desc_start..desc_start + descsz].to_vec()));
            b = &b[next..];
        }
        out
    }

    #[test]
    fn notes_are_padded_to_four_bytes() {
        let mut b = Vec::new();
        push_note(&mut b, "CORE", 7, &[1, 2, 3]);
        // 12 header + "CORE\0" padded to 8 + 3 desc padded to 4.
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..12], &[5, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&b[12..20], b"CORE\0\0\0\0");
        assert_eq!(&b[20..24], &[1, 2, 3, 0]);
        push_note(&mut b, "LINUX", 0x202, &[9; 8]);
        let notes = parse_notes(&b);
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[1], ("LINUX".to_string(), 0x202, vec![9; 8]));
    }

    #[test]
    fn prstatus_layout_matches_the_kernel() {
        let mut regs = ThreadRegs::default();
        regs.gp.r15 = 0x1515;
        regs.gp.rip = 0x401000;
        regs.gp.gs = 0x6767;
        let info = PrStatusInfo {
            signo: 11,
            pid: 77,
            ppid: 1,
            pgrp: 5,
            sid: 6,
            ..Default::default()
        };
        let b = prstatus_bytes(&info, &regs);
        assert_eq!(i32::from_le_bytes(b[0..4].try_into().unwrap()), 11);
        assert_eq!(i16::from_le_bytes(b[12..14].try_into().unwrap()), 11);
        assert_eq!(i32::from_le_bytes(b[32..36].try_into().unwrap()), 77);
        assert_eq!(i32::from_le_bytes(b[44..48].try_into().unwrap()), 6);
        assert_eq!(u64::from_le_bytes(b[112..120].try_into().unwrap()), 0x1515);
        // rip is word 16 of pr_reg; gs the last word.
        assert_eq!(
            u64::from_le_bytes(b[240..248].try_into().unwrap()),
            0x401000
        );
        assert_eq!(u64::from_le_bytes(b[320..328].try_into().unwrap()), 0x6767);
        assert_eq!(&b[328..332], &[0, 0, 0, 0], "no FP registers: pr_fpvalid 0");
        regs.fp = Some(Box::new([0u8; 512]));
        assert_eq!(&prstatus_bytes(&info, &regs)[328..332], &[1, 0, 0, 0]);
    }

    #[test]
    fn prpsinfo_carries_comm_and_args() {
        let p = PrPsInfo {
            state: b't',
            uid: 1000,
            gid: 100,
            pid: 42,
            ppid: 1,
            fname: b"a-very-long-command-name".to_vec(),
            cmdline: b"./crasher\0live\08\0".to_vec(),
            ..Default::default()
        };
        let b = prpsinfo_bytes(&p);
        assert_eq!((b[0], b[1], b[2]), (3, b'T', 0));
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 1000);
        assert_eq!(i32::from_le_bytes(b[24..28].try_into().unwrap()), 42);
        assert_eq!(&b[40..56], b"a-very-long-com\0");
        assert_eq!(&b[56..56 + 18], b"./crasher live 8\0\0");

        let long = PrPsInfo {
            cmdline: vec![b'x'; 300],
            ..Default::default()
        };
        let b = prpsinfo_bytes(&long);
        assert_eq!(&b[56..56 + 79], &[b'x'; 79][..]);
        assert_eq!(b[135], 0, "psargs stays NUL-terminated");
        assert_eq!((b[0], b[1]), (6, b'.'), "unknown state");
    }

    #[test]
    fn file_note_lists_file_mappings_in_pages() {
        let maps = [
            mapping(0x400000, 0x401000, "r--p", "/bin/x", 0),
            mapping(0x401000, 0x403000, "r-xp", "/bin/x", 0x1000),
            mapping(0x600000, 0x601000, "rw-p", "[heap]", 0),
            mapping(0x700000, 0x701000, "rw-p", "", 0),
        ];
        let b = file_note_bytes(&maps);
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!((w(0), w(1)), (2, 4096));
        assert_eq!((w(2), w(3), w(4)), (0x400000, 0x401000, 0));
        assert_eq!((w(5), w(6), w(7)), (0x401000, 0x403000, 1));
        assert_eq!(&b[64..], b"/bin/x\0/bin/x\0");
    }

    #[test]
    fn segments_split_partially_held_mappings_on_pages() {
        let maps = [
            mapping(0x400000, 0x404000, "r-xp", "/bin/x", 0),
            mapping(0x500000, 0x501000, "r--p", "[vvar]", 0),
            mapping(0x600000, 0x610000, "rw-p", "", 0),
            mapping(0x700000, 0x702000, "---p", "", 0),
        ];
        // Half a page of the anonymous mapping, crossing a page boundary.
        let wanted = [Region {
            start: 0x603800,
            len: 0x1000,
        }];
        let segs = layout_segments(&maps, &wanted, |m| m.is_file().then_some(1));
        let want = [
            (0x400000, 0x1000, PF_R | PF_X, true),
            (0x401000, 0x3000, PF_R | PF_X, false),
            (0x600000, 0x3000, PF_R | PF_W, false),
            (0x603000, 0x2000, PF_R | PF_W, true),
            (0x605000, 0xb000, PF_R | PF_W, false),
            (0x700000, 0x2000, 0, false),
        ];
        let got: Vec<_> = segs
            .iter()
            .map(|s| (s.vaddr, s.memsz, s.flags, s.present))
            .collect();
        assert_eq!(got, want);

        // A wanted range spanning two mappings is clipped to each.
        let wanted = [Region {
            start: 0x400000,
            len: 0x300000,
        }];
        let segs = layout_segments(&maps, &wanted, |_| None);
        assert!(segs
            .iter()
            .filter(|s| s.vaddr < 0x700000)
            .all(|s| s.present));
        assert_eq!(
            segs.iter()
                .filter(|s| s.present)
                .map(|s| s.memsz)
                .sum::<u64>(),
            0x14000
        );
    }

    #[test]
    fn status_fields_parse_and_tolerate_garbage() {
        let s = parse_status(
            b"Name:\tx\nState:\tt (tracing stop)\nNSpgid:\t12\t3\nNSsid:\t9\nSigPnd:\t0000000000000100\nSigBlk:\tzz\n\xff\xfe",
        );
        assert_eq!(
            s,
            StatusFields {
                state: b't',
                pgrp: 12,
                sid: 9,
                sigpnd: 0x100,
                sigblk: 0
            }
        );
        assert_eq!(parse_status(b""), StatusFields::default());
    }

    fn regs_with_rip(rip: u64, fp: bool, xstate: bool) -> ThreadRegs {
        ThreadRegs {
            gp: UserRegs {
                rip,
                ..UserRegs::default()
            },
            fp: fp.then(|| Box::new([0xf0u8; 512])),
            xstate: xstate.then(|| vec![0x55u8; 832]),
        }
    }

    #[test]
    fn notes_follow_the_kernel_order_with_the_crashing_thread_first() {
        let snap = ProcessSnapshot {
            pid: Pid(100),
            ppid: Pid(1),
            comm: b"demo".to_vec(),
            threads: vec![
                ThreadSnapshot {
                    tid: Tid(100),
                    name: b"demo".to_vec(),
                    regs: Some(regs_with_rip(1, true, true)),
                },
                ThreadSnapshot {
                    tid: Tid(101),
                    name: b"w".to_vec(),
                    regs: Some(regs_with_rip(2, true, false)),
                },
                ThreadSnapshot {
                    tid: Tid(102),
                    name: b"gone".to_vec(),
                    regs: None,
                },
            ],
            auxv: vec![6, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0],
            files: LinuxFiles {
                cmdline: Some(b"demo\0".to_vec()),
                ..Default::default()
            },
            ..Default::default()
        };
        let crash = CrashContext {
            tid: Tid(101),
            siginfo: SigInfo::new_fault(11, 1, 0xdead),
            regs: regs_with_rip(0xbad, true, true),
        };
        let mut soft = Vec::new();
        let (notes, threads) = build_notes(&snap, Some(&crash), Some("hello"), &mut soft);
        assert_eq!(threads, 2);
        assert_eq!(soft.len(), 1, "{soft:?}");
        assert!(soft[0].contains("102"));
        let notes = parse_notes(&notes);
        let kinds: Vec<(&str, u32, usize)> = notes
            .iter()
            .map(|(n, t, d)| (n.as_str(), *t, d.len()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("CORE", NT_PRSTATUS, 336),
                ("CORE", NT_PRPSINFO, 136),
                ("CORE", NT_SIGINFO, 128),
                ("CORE", NT_AUXV, 16),
                ("CORE", NT_FILE, 16),
                ("CORONER", NT_CORONER_COMMENT, 5),
                ("CORE", NT_PRFPREG, 512),
                ("LINUX", NT_X86_XSTATE, 832),
                ("CORE", NT_PRSTATUS, 336),
                ("CORE", NT_PRFPREG, 512),
                ("LINUX", NT_X86_XSTATE, 832),
            ]
        );
        let first = &notes[0].2;
        assert_eq!(i32::from_le_bytes(first[32..36].try_into().unwrap()), 101);
        assert_eq!(
            u64::from_le_bytes(first[240..248].try_into().unwrap()),
            0xbad,
            "crash regs, not live"
        );
        assert_eq!(i16::from_le_bytes(first[12..14].try_into().unwrap()), 11);
        assert_eq!(notes[2].2, crash.siginfo.raw.to_vec());
        let second = &notes[8].2;
        assert_eq!(i32::from_le_bytes(second[32..36].try_into().unwrap()), 100);
        assert_eq!(u64::from_le_bytes(second[240..248].try_into().unwrap()), 1);

        // Without a crash: no NT_SIGINFO, pr_cursig 0, leader first.
        let (notes, _) = build_notes(&snap, None, None, &mut Vec::new());
        let notes = parse_notes(&notes);
        assert!(notes.iter().all(|n| n.1 != NT_SIGINFO));
        assert_eq!(
            i32::from_le_bytes(notes[0].2[32..36].try_into().unwrap()),
            100
        );
        assert_eq!(&notes[0].2[12..14], &[0, 0]);
    }

    #[test]
    fn many_segments_use_extended_numbering() {
        let e = ehdr_bytes(3);
        assert_eq!(u16::from_le_bytes([e[56], e[57]]), 3);
        assert_eq!(&e[40..48], &[0; 8]);
        let e = ehdr_bytes(70_000);
        assert_eq!(u16::from_le_bytes([e[56], e[57]]), PN_XNUM);
        assert_eq!(
            u64::from_le_bytes(e[40..48].try_into().unwrap()),
            64 + 70_000 * 56
        );
        assert_eq!(u16::from_le_bytes([e[60], e[61]]), 1);
        let sh = extnum_shdr_bytes(70_000);
        assert_eq!(u32::from_le_bytes(sh[44..48].try_into().unwrap()), 70_000);
    }
}
