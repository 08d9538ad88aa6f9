//! A never-panicking reader of x86-64 Linux ELF core files (the kernel's,
//! gdb's `gcore`, ours).
//!
//! Owns: turning a core into a [`ProcessSnapshot`] (threads from
//! `NT_PRSTATUS` + `NT_PRFPREG` + `NT_X86_XSTATE` in note order, process ids
//! and name from `NT_PRPSINFO`, mappings from `PT_LOAD` + `NT_FILE`, auxv
//! from `NT_AUXV`), the crash context (`NT_SIGINFO` + the first thread), and
//! memory reads from `PT_LOAD` file data ([`MemorySource`]). The header,
//! program header and note parsing (`CoreMeta`) is shared with
//! [`crate::stream`], which meets the same bytes on a pipe, in one pass.
//!
//! Must not: trust any offset or size in the file (every one is bounds- and
//! overflow-checked: cores are outside input, and fuzzed), or load the whole
//! file (memory is read on demand with `pread`).
//!
//! What a core does not record: inodes (file-backed mappings get inode 1 so
//! that [`Mapping::is_file`] holds), thread names (left empty), the exact
//! `/proc/PID/cmdline` (rebuilt from `pr_psargs`, 80 bytes at most, words
//! split on spaces).

use coroner_proc::{LinuxFiles, MemorySource, ProcessSnapshot, ThreadSnapshot};
use coroner_types::{
    CrashContext, Mapping, Perms, Pid, SigInfo, ThreadRegs, Tid, UserRegs, FXSAVE_SIZE,
};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
pub(crate) const PT_LOAD: u32 = 1;
pub(crate) const PT_NOTE: u32 = 4;
pub(crate) const PN_XNUM: u16 = 0xffff;
const NT_PRSTATUS: u32 = 1;
const NT_PRFPREG: u32 = 2;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_X86_XSTATE: u32 = 0x202;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;
/// `pr_reg` offset in the x86-64 `elf_prstatus`.
const PRSTATUS_REG_OFFSET: usize = 112;
/// Most program headers accepted (PN_XNUM can claim 2^32).
pub(crate) const MAX_PHDRS: u64 = 1 << 20;
/// Most note bytes read per `PT_NOTE` segment.
pub(crate) const MAX_NOTE_BYTES: u64 = 256 << 20;
/// Most `NT_FILE` entries accepted.
const MAX_FILE_ENTRIES: u64 = 1 << 20;

/// Why a core could not be opened at all. Anything less is a soft error.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot open core {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read core {} at offset {offset:#x}: {source}", path.display())]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{} is not a 64-bit little-endian x86-64 ELF core: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

/// One note from a `PT_NOTE` segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub name: Vec<u8>,
    pub ntype: u32,
    pub desc: Vec<u8>,
}

/// An opened core: headers and notes in memory, bulk memory on disk.
#[derive(Debug)]
pub struct CoreFile {
    path: PathBuf,
    file: File,
    len: u64,
    meta: CoreMeta,
}

pub(crate) fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn i32_at(b: &[u8], o: usize) -> Option<i32> {
    u32_at(b, o).map(|v| v as i32)
}

/// Bytes up to the first NUL.
fn c_str(b: &[u8]) -> Vec<u8> {
    b.iter().take_while(|&&c| c != 0).copied().collect()
}

/// The ELF header fields a core reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CoreHeader {
    pub(crate) phoff: u64,
    pub(crate) shoff: u64,
    /// At least 56 (checked).
    pub(crate) phentsize: u64,
    /// `e_phnum` as written: [`PN_XNUM`] means "see section header 0".
    pub(crate) phnum: u16,
}

/// Why 64 bytes are not the ELF header of an x86-64 core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// No `\x7fELF` magic.
    NotElf,
    /// An ELF file, but not a 64-bit little-endian x86-64 core (why).
    Unsupported(String),
}

/// Check and decode the 64-byte ELF header of a core.
pub(crate) fn parse_header(ehdr: &[u8]) -> Result<CoreHeader, HeaderProblem> {
    if ehdr.len() < 4 || &ehdr[..4] != b"\x7fELF" {
        return Err(HeaderProblem::NotElf);
    }
    let unsupported = |what: String| Err(HeaderProblem::Unsupported(what));
    if ehdr.len() < 64 {
        return unsupported(format!("ELF header is {} bytes", ehdr.len()));
    }
    if ehdr[4] != 2 || ehdr[5] != 1 {
        return unsupported(format!("class {} data {}", ehdr[4], ehdr[5]));
    }
    let e_type = u16_at(ehdr, 16).unwrap_or(0);
    let e_machine = u16_at(ehdr, 18).unwrap_or(0);
    if e_type != ET_CORE {
        return unsupported(format!("e_type {e_type}, not ET_CORE"));
    }
    if e_machine != EM_X86_64 {
        return unsupported(format!("e_machine {e_machine}"));
    }
    let phentsize = u64::from(u16_at(ehdr, 54).unwrap_or(0));
    if phentsize < 56 {
        return unsupported(format!("e_phentsize {phentsize}"));
    }
    Ok(CoreHeader {
        phoff: u64_at(ehdr, 32).unwrap_or(0),
        shoff: u64_at(ehdr, 40).unwrap_or(0),
        phentsize,
        phnum: u16_at(ehdr, 56).unwrap_or(0),
    })
}

/// What a core's program headers and notes say, whatever reads the bytes:
/// [`CoreFile`] (`pread` on a file) and [`crate::stream`] (one pass over a
/// pipe) share this one parser.
#[derive(Clone, Debug, Default)]
pub(crate) struct CoreMeta {
    /// The `PT_LOAD` segments, sorted by address.
    pub(crate) loads: Vec<LoadSegment>,
    /// Every note, in file order.
    pub(crate) notes: Vec<Note>,
    /// Problems met while parsing.
    pub(crate) soft_errors: Vec<String>,
}

impl CoreMeta {
    /// Take the `PT_LOAD`s of a program header table (whole entries of
    /// `phentsize` bytes; a partial last entry is ignored) and return the
    /// `PT_NOTE` segments as `(file offset, file size)`.
    pub(crate) fn parse_phdrs(&mut self, table: &[u8], phentsize: u64) -> Vec<(u64, u64)> {
        let Ok(entsize) = usize::try_from(phentsize) else {
            return Vec::new();
        };
        if entsize < 56 {
            return Vec::new();
        }
        let mut note_segments = Vec::new();
        for ph in table.chunks_exact(entsize) {
            let p_type = u32_at(ph, 0).unwrap_or(0);
            let flags = u32_at(ph, 4).unwrap_or(0);
            let offset = u64_at(ph, 8).unwrap_or(0);
            let vaddr = u64_at(ph, 16).unwrap_or(0);
            let filesz = u64_at(ph, 32).unwrap_or(0);
            let memsz = u64_at(ph, 40).unwrap_or(0);
            match p_type {
                PT_LOAD => {
                    if vaddr.checked_add(memsz).is_none() || offset.checked_add(filesz).is_none() {
                        self.soft_errors.push(format!(
                            "PT_LOAD at {vaddr:#x} size {memsz:#x} / file {offset:#x}+{filesz:#x} overflows; skipped"
                        ));
                        continue;
                    }
                    self.loads.push(LoadSegment {
                        vaddr,
                        memsz,
                        offset,
                        filesz: filesz.min(memsz),
                        flags,
                    });
                }
                PT_NOTE => note_segments.push((offset, filesz)),
                _ => {}
            }
        }
        self.loads.sort_by_key(|l| l.vaddr);
        note_segments
    }

    /// Append the notes of one `PT_NOTE` segment's bytes (`file_offset`
    /// names where they were, for messages).
    pub(crate) fn parse_notes(&mut self, data: &[u8], file_offset: u64) {
        let align4 = |v: usize| v.checked_add(3).map(|x| x & !3);
        let mut pos = 0usize;
        while pos < data.len() {
            let (Some(namesz), Some(descsz), Some(ntype)) = (
                u32_at(data, pos),
                u32_at(data, pos.saturating_add(4)),
                u32_at(data, pos.saturating_add(8)),
            ) else {
                self.soft_errors.push(format!(
                    "note header at {:#x} is cut off",
                    file_offset.saturating_add(pos as u64)
                ));
                return;
            };
            let name_start = pos + 12;
            let name_end = name_start.checked_add(namesz as usize);
            let desc_start = name_end.and_then(align4);
            let desc_end = desc_start.and_then(|d| d.checked_add(descsz as usize));
            let (Some(name_end), Some(desc_start), Some(desc_end)) =
                (name_end, desc_start, desc_end)
            else {
                self.soft_errors.push(format!(
                    "note at {:#x} has impossible sizes",
                    file_offset.saturating_add(pos as u64)
                ));
                return;
            };
            if desc_end > data.len() {
                self.soft_errors.push(format!(
                    "note type {ntype:#x} at {:#x} runs past its segment",
                    file_offset.saturating_add(pos as u64)
                ));
                return;
            }
            self.notes.push(Note {
                name: c_str(&data[name_start..name_end]),
                ntype,
                desc: data[desc_start..desc_end].to_vec(),
            });
            match align4(desc_end) {
                Some(next) if next > pos => pos = next,
                _ => return,
            }
        }
    }

    fn note(&self, ntype: u32) -> Option<&Note> {
        self.notes
            .iter()
            .find(|n| n.ntype == ntype && n.name == b"CORE")
    }

    /// Threads in note order: each `NT_PRSTATUS` with the FP/XSAVE notes
    /// that follow it up to the next `NT_PRSTATUS`.
    fn threads(&self, soft: &mut Vec<String>) -> Vec<ThreadSnapshot> {
        let mut threads: Vec<ThreadSnapshot> = Vec::new();
        for n in &self.notes {
            match n.ntype {
                NT_PRSTATUS if n.name == b"CORE" => {
                    let tid = Tid(i32_at(&n.desc, 32).unwrap_or(0));
                    let regs = n
                        .desc
                        .get(PRSTATUS_REG_OFFSET..)
                        .and_then(UserRegs::from_bytes)
                        .map(|gp| ThreadRegs {
                            gp,
                            fp: None,
                            xstate: None,
                        });
                    if regs.is_none() {
                        soft.push(format!(
                            "NT_PRSTATUS of thread {tid} is {} bytes; no registers",
                            n.desc.len()
                        ));
                    }
                    threads.push(ThreadSnapshot {
                        tid,
                        name: Vec::new(),
                        regs,
                    });
                }
                NT_PRFPREG if n.name == b"CORE" => {
                    if let Some(regs) = threads.last_mut().and_then(|t| t.regs.as_mut()) {
                        match <[u8; FXSAVE_SIZE]>::try_from(
                            n.desc.get(..FXSAVE_SIZE).unwrap_or(&[]),
                        ) {
                            Ok(a) => regs.fp = Some(Box::new(a)),
                            Err(_) => soft.push(format!("NT_PRFPREG is {} bytes", n.desc.len())),
                        }
                    }
                }
                NT_X86_XSTATE if n.name == b"LINUX" => {
                    if let Some(regs) = threads.last_mut().and_then(|t| t.regs.as_mut()) {
                        regs.xstate = Some(n.desc.clone());
                    }
                }
                _ => {}
            }
        }
        threads
    }

    /// `NT_FILE` entries: (start, end, file offset in bytes, name).
    fn file_entries(&self, soft: &mut Vec<String>) -> Vec<(u64, u64, u64, Vec<u8>)> {
        let Some(n) = self.note(NT_FILE) else {
            return Vec::new();
        };
        let d = &n.desc;
        let (Some(count), Some(page)) = (u64_at(d, 0), u64_at(d, 8)) else {
            soft.push("NT_FILE header is cut off".into());
            return Vec::new();
        };
        if count > MAX_FILE_ENTRIES {
            soft.push(format!("NT_FILE claims {count} entries"));
            return Vec::new();
        }
        let count = count as usize;
        let Some(names_at) = count.checked_mul(24).and_then(|v| v.checked_add(16)) else {
            return Vec::new();
        };
        let mut names = d.get(names_at..).unwrap_or(&[]).split(|&c| c == 0);
        let mut out = Vec::with_capacity(count.min(4096));
        for i in 0..count {
            let o = 16 + i * 24;
            let (Some(start), Some(end), Some(pgoff)) =
                (u64_at(d, o), u64_at(d, o + 8), u64_at(d, o + 16))
            else {
                soft.push(format!("NT_FILE entry {i} is cut off"));
                break;
            };
            let name = names.next().unwrap_or(&[]).to_vec();
            if end < start {
                soft.push(format!("NT_FILE entry {start:#x}-{end:#x} is backwards"));
                continue;
            }
            out.push((start, end, pgoff.saturating_mul(page), name));
        }
        out
    }

    fn mappings(&self, soft: &mut Vec<String>) -> Vec<Mapping> {
        let files = self.file_entries(soft);
        let mut maps: Vec<Mapping> = files
            .iter()
            .map(|(start, end, offset, name)| {
                let perms = self
                    .loads
                    .iter()
                    .find(|l| l.vaddr < *end && l.vaddr.saturating_add(l.memsz) > *start)
                    .map(|l| perms_of(l.flags))
                    .unwrap_or(Perms {
                        read: true,
                        ..Perms::default()
                    });
                Mapping {
                    start: *start,
                    end: *end,
                    perms,
                    offset: *offset,
                    inode: u64::from(name.first() == Some(&b'/')),
                    name: name.clone(),
                    ..Mapping::default()
                }
            })
            .collect();
        let mut covered: Vec<(u64, u64)> = files.iter().map(|f| (f.0, f.1)).collect();
        covered.sort_unstable();
        for l in &self.loads {
            let end = l.vaddr.saturating_add(l.memsz);
            let mut cur = l.vaddr;
            for &(s, e) in &covered {
                if e <= cur || s >= end {
                    continue;
                }
                if s > cur {
                    maps.push(anon(cur, s, l.flags));
                }
                cur = cur.max(e);
            }
            if cur < end {
                maps.push(anon(cur, end, l.flags));
            }
        }
        maps.sort_by_key(|m| (m.start, m.end));
        maps
    }

    /// The process the notes and program headers describe. `mem` is read
    /// only for `AT_EXECFN` when no mapping names the executable.
    pub(crate) fn snapshot(&self, mem: &dyn MemorySource) -> ProcessSnapshot {
        let mut soft = self.soft_errors.clone();
        let threads = self.threads(&mut soft);
        let mappings = self.mappings(&mut soft);
        let mut snap = ProcessSnapshot {
            threads,
            mappings,
            ..ProcessSnapshot::default()
        };
        match self.note(NT_PRPSINFO) {
            Some(n) if n.desc.len() >= 136 => {
                let d = &n.desc;
                snap.uid = u32_at(d, 16).unwrap_or(0);
                snap.gid = u32_at(d, 20).unwrap_or(0);
                snap.pid = Pid(i32_at(d, 24).unwrap_or(0));
                snap.ppid = Pid(i32_at(d, 28).unwrap_or(0));
                snap.comm = c_str(&d[40..56]);
                let args = c_str(&d[56..136]);
                let mut cmdline: Vec<u8> = args
                    .split(|&c| c == b' ')
                    .filter(|w| !w.is_empty())
                    .flat_map(|w| w.iter().copied().chain([0]))
                    .collect();
                if cmdline.is_empty() {
                    cmdline = snap.comm.iter().copied().chain([0]).collect();
                }
                snap.files.cmdline = Some(cmdline);
            }
            Some(n) => soft.push(format!("NT_PRPSINFO is {} bytes, need 136", n.desc.len())),
            None => soft.push("no NT_PRPSINFO note".into()),
        }
        if snap.pid.0 == 0 {
            if let Some(t) = snap.threads.first() {
                snap.pid = Pid(t.tid.0);
            }
        }
        if let Some(n) = self.note(NT_PRSTATUS) {
            if snap.ppid.0 == 0 {
                snap.ppid = Pid(i32_at(&n.desc, 36).unwrap_or(0));
            }
        }
        if snap.threads.is_empty() {
            soft.push("no NT_PRSTATUS note: no threads".into());
        }
        match self.note(NT_AUXV) {
            Some(n) => snap.auxv = n.desc.clone(),
            None => soft.push("no NT_AUXV note".into()),
        }
        // The executable: the mapping holding AT_ENTRY, else AT_EXECFN.
        let entry_map = snap
            .auxv_value(9)
            .and_then(|e| snap.mapping_at(e))
            .filter(|m| !m.name.is_empty())
            .map(|m| m.name.clone());
        let exe = entry_map.or_else(|| {
            snap.auxv_value(31)
                .and_then(|a| read_c_string(mem, a, 4096))
        });
        if let Some(exe) = exe {
            snap.exe = PathBuf::from(String::from_utf8_lossy(&exe).into_owned());
        }
        snap.files = LinuxFiles {
            maps: Some(maps_text(&snap.mappings)),
            ..snap.files
        };
        snap.soft_errors = soft;
        snap
    }

    /// The signal and faulting thread: `NT_SIGINFO` (or the first
    /// `NT_PRSTATUS`'s `pr_info`/`pr_cursig`) and the first thread.
    pub(crate) fn crash_context(&self) -> Option<CrashContext> {
        let mut soft = Vec::new();
        let first = self.threads(&mut soft).into_iter().next()?;
        let prstatus = self.note(NT_PRSTATUS)?;
        let siginfo = match self.note(NT_SIGINFO) {
            Some(n) => SigInfo::from_bytes(&n.desc),
            None => {
                let signo = i32_at(&prstatus.desc, 0).unwrap_or(0);
                let code = i32_at(&prstatus.desc, 4).unwrap_or(0);
                let cursig = i32::from(u16_at(&prstatus.desc, 12).unwrap_or(0));
                let signo = if signo != 0 { signo } else { cursig };
                SigInfo::new_sent(signo, code, 0, 0)
            }
        };
        if siginfo.signo() == 0 {
            return None;
        }
        Some(CrashContext {
            tid: first.tid,
            siginfo,
            regs: first.regs?,
        })
    }
}

fn perms_of(flags: u32) -> Perms {
    Perms {
        read: flags & 4 != 0,
        write: flags & 2 != 0,
        exec: flags & 1 != 0,
        shared: false,
    }
}

fn anon(start: u64, end: u64, flags: u32) -> Mapping {
    Mapping {
        start,
        end,
        perms: perms_of(flags),
        ..Mapping::default()
    }
}

/// A NUL-terminated string from target memory, at most `max` bytes.
fn read_c_string(mem: &dyn MemorySource, addr: u64, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let n = mem.read(addr, &mut buf).ok()?;
    let s = c_str(&buf[..n.min(max)]);
    (s.len() < n).then_some(s)
}

impl CoreFile {
    /// Open and index a core. Fails only when the file is unreadable or not
    /// an x86-64 ELF core; damaged headers and notes become soft errors.
    pub fn open(path: &Path) -> Result<CoreFile, CoreError> {
        let file = File::open(path).map_err(|source| CoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| CoreError::Open {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let mut core = CoreFile {
            path: path.to_path_buf(),
            file,
            len,
            meta: CoreMeta::default(),
        };
        let ehdr = core.read_bytes(0, 64)?;
        let hdr = parse_header(&ehdr).map_err(|p| match p {
            HeaderProblem::NotElf => CoreError::NotElf {
                path: path.to_path_buf(),
            },
            HeaderProblem::Unsupported(what) => CoreError::Unsupported {
                path: path.to_path_buf(),
                what,
            },
        })?;
        let mut phnum = u64::from(hdr.phnum);
        if hdr.phnum == PN_XNUM {
            // The real count is in section header 0's sh_info.
            match core.read_bytes(hdr.shoff, 64) {
                Ok(sh) if sh.len() == 64 => phnum = u64::from(u32_at(&sh, 44).unwrap_or(0)),
                _ => core.meta.soft_errors.push(format!(
                    "PN_XNUM but section header 0 at {:#x} is unreadable",
                    hdr.shoff
                )),
            }
        }
        if phnum > MAX_PHDRS {
            core.meta.soft_errors.push(format!(
                "{phnum} program headers; reading the first {MAX_PHDRS}"
            ));
            phnum = MAX_PHDRS;
        }
        let table_len = phnum * hdr.phentsize;
        let table = core.read_bytes(hdr.phoff, table_len)?;
        if (table.len() as u64) < table_len {
            core.meta.soft_errors.push(format!(
                "program header table truncated: {} of {table_len} bytes",
                table.len()
            ));
        }
        let note_segments = core.meta.parse_phdrs(&table, hdr.phentsize);
        for (offset, filesz) in note_segments {
            let want = filesz.min(MAX_NOTE_BYTES);
            if want < filesz {
                core.meta.soft_errors.push(format!(
                    "PT_NOTE at {offset:#x} is {filesz} bytes; reading {want}"
                ));
            }
            let data = match core.read_bytes(offset, want) {
                Ok(d) => d,
                Err(e) => {
                    core.meta.soft_errors.push(e.to_string());
                    continue;
                }
            };
            if (data.len() as u64) < want {
                core.meta.soft_errors.push(format!(
                    "PT_NOTE at {offset:#x} truncated: {} of {want} bytes",
                    data.len()
                ));
            }
            core.meta.parse_notes(&data, offset);
        }
        Ok(core)
    }

    /// Up to `len` bytes at file `offset` (fewer at end of file).
    fn read_bytes(&self, offset: u64, len: u64) -> Result<Vec<u8>, CoreError> {
        let avail = self.len.saturating_sub(offset);
        let n = len.min(avail);
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
        let mut done = 0usize;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CoreError::Read {
                        path: self.path.clone(),
                        offset: offset + done as u64,
                        source,
                    })
                }
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// The `PT_LOAD` segments, sorted by address.
    pub fn loads(&self) -> &[LoadSegment] {
        &self.meta.loads
    }

    /// Every note, in file order.
    pub fn notes(&self) -> &[Note] {
        &self.meta.notes
    }

    /// Problems met while opening (truncation, bad headers).
    pub fn soft_errors(&self) -> &[String] {
        &self.meta.soft_errors
    }

    /// The process as the core describes it.
    pub fn snapshot(&self) -> ProcessSnapshot {
        self.meta.snapshot(self)
    }

    /// The signal and faulting thread: `NT_SIGINFO` (or the first
    /// `NT_PRSTATUS`'s `pr_info`/`pr_cursig`) and the first thread, which
    /// the kernel and coroner put first. `None` when no signal is recorded.
    pub fn crash_context(&self) -> Option<CrashContext> {
        self.meta.crash_context()
    }
}

/// `/proc/PID/maps`-style text for the mappings (device 00:00).
fn maps_text(maps: &[Mapping]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in maps {
        out.extend_from_slice(
            format!(
                "{:x}-{:x} {} {:08x} 00:00 {}",
                m.start,
                m.end,
                m.perms.to_text(),
                m.offset,
                m.inode
            )
            .as_bytes(),
        );
        if !m.name.is_empty() {
            out.extend_from_slice(b"    ");
            out.extend_from_slice(&m.name);
        }
        out.push(b'\n');
    }
    out
}

/// Read target memory from a core's bytes in `file` (`file_len` of them
/// present): the `PT_LOAD` of `loads` (sorted by address) holding `addr`.
/// Bytes past `p_filesz` (not dumped) and past `file_len` are unreadable
/// (0 bytes read).
pub(crate) fn read_loads(
    file: &File,
    file_len: u64,
    loads: &[LoadSegment],
    addr: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let i = loads.partition_point(|l| l.vaddr.saturating_add(l.memsz) <= addr);
    let Some(l) = loads.get(i).filter(|l| l.vaddr <= addr) else {
        return Ok(0);
    };
    let rel = addr - l.vaddr;
    if rel >= l.filesz {
        return Ok(0);
    }
    let Some(off) = l.offset.checked_add(rel) else {
        return Ok(0);
    };
    let avail = (l.filesz - rel).min(file_len.saturating_sub(off));
    let n = usize::try_from(avail).unwrap_or(usize::MAX).min(buf.len());
    read_full_at(file, &mut buf[..n], off)
}

/// `pread` until `buf` is full or EOF; the bytes read (an error only when
/// nothing could be read).
pub(crate) fn read_full_at(f: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], pos.saturating_add(done as u64)) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

impl MemorySource for CoreFile {
    /// Bytes of the `PT_LOAD` holding `addr`; bytes past `p_filesz` (not
    /// dumped) and past the end of a truncated file are unreadable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_loads(&self.file, self.len, &self.meta.loads, addr, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, Command, Stdio};

    /// A `cat` child that has echoed a line back: it has exec'd and now
    /// blocks in `read`.
    fn ready_cat() -> (Child, BufReader<std::process::ChildStdout>) {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn cat");
        child.stdin.as_mut().unwrap().write_all(b"ready\n").unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        (child, out)
    }

    fn gcore(pid: u32, dir: &Path) -> PathBuf {
        let prefix = dir.join("core");
        let out = Command::new("gcore")
            .arg("-o")
            .arg(&prefix)
            .arg(pid.to_string())
            .output()
            .expect("run gcore");
        assert!(
            out.status.success(),
            "gcore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.join(format!("core.{pid}"))
    }

    fn gcore_of_cat(dir: &Path) -> (PathBuf, u32) {
        let (mut child, _out) = ready_cat();
        let pid = child.id();
        let core = gcore(pid, dir);
        child.kill().unwrap();
        child.wait().unwrap();
        (core, pid)
    }

    #[test]
    fn reads_a_gcore_core() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pid) = gcore_of_cat(dir.path());
        let core = CoreFile::open(&path).unwrap();
        let snap = core.snapshot();
        assert_eq!(snap.pid, Pid(pid as i32));
        assert_eq!(snap.comm, b"cat");
        assert_eq!(snap.threads.len(), 1);
        assert_eq!(snap.threads[0].tid, Tid(pid as i32));
        let regs = snap.threads[0].regs.as_ref().expect("registers");
        assert!(regs.fp.is_some());
        assert!(!snap.auxv.is_empty());
        assert!(snap.auxv_value(9).is_some(), "AT_ENTRY");
        assert!(
            snap.exe.to_string_lossy().ends_with("/cat"),
            "exe {}",
            snap.exe.display()
        );
        let libc = snap
            .mappings
            .iter()
            .find(|m| m.name_lossy().contains("libc.so"))
            .expect("libc mapping");
        assert!(libc.is_file());
        assert!(snap.mappings.windows(2).all(|w| w[0].start <= w[1].start));
        // The stack pointer's memory is in the core.
        let mut word = [0u8; 8];
        core.read_exact(regs.sp(), &mut word).unwrap();
        // Unmapped memory is not.
        assert_eq!(core.read(8, &mut word).unwrap(), 0);
        let maps = String::from_utf8(snap.files.maps.clone().unwrap()).unwrap();
        assert!(maps.contains("libc.so"));
        // gcore of a stopped process: no fault; if gdb records a signal it
        // names the first thread.
        if let Some(c) = core.crash_context() {
            assert_eq!(c.tid, Tid(pid as i32));
        }
    }

    #[test]
    fn truncated_and_corrupted_cores_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = gcore_of_cat(dir.path());
        let data = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut");
        // Cut inside the note segment and inside the memory.
        for len in [0, 3, 63, 64, 200, 1000, data.len() / 3, data.len() - 5000] {
            std::fs::write(&cut, &data[..len.min(data.len())]).unwrap();
            if let Ok(core) = CoreFile::open(&cut) {
                let snap = core.snapshot();
                let _ = core.crash_context();
                for t in &snap.threads {
                    if let Some(r) = &t.regs {
                        let mut b = [0u8; 64];
                        let _ = core.read(r.sp(), &mut b);
                    }
                }
                if (64..=1000).contains(&len) {
                    // The program header table is cut: said so.
                    assert!(!snap.soft_errors.is_empty(), "len {len}");
                }
            }
        }
        // Memory past the end of a truncated file reads short.
        let full = CoreFile::open(&path).unwrap();
        let last = *full
            .loads()
            .iter()
            .max_by_key(|l| l.offset + l.filesz)
            .unwrap();
        let keep = (last.offset + last.filesz / 2) as usize;
        std::fs::write(&cut, &data[..keep]).unwrap();
        let core = CoreFile::open(&cut).unwrap();
        let mut b = vec![0u8; last.filesz as usize];
        let n = core.read(last.vaddr, &mut b).unwrap();
        assert_eq!(n as u64, last.filesz / 2);
        // Bit flips in the headers and notes.
        let mut seed = 0x1234_5678u32;
        for _ in 0..300 {
            let mut d = data[..data.len().min(64 * 1024)].to_vec();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let i = seed as usize % d.len();
                d[i] ^= 1 << (seed % 8);
            }
            std::fs::write(&cut, &d).unwrap();
            if let Ok(core) = CoreFile::open(&cut) {
                let _ = core.snapshot();
                let _ = core.crash_context();
            }
        }
    }

    #[test]
    fn not_a_core_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"MDMP....").unwrap();
        assert!(matches!(CoreFile::open(&p), Err(CoreError::NotElf { .. })));
        let exe = std::env::current_exe().unwrap();
        assert!(matches!(
            CoreFile::open(&exe),
            Err(CoreError::Unsupported { .. })
        ));
        assert!(matches!(
            CoreFile::open(&dir.path().join("missing")),
            Err(CoreError::Open { .. })
        ));
    }
}
