//! Reading ELF structures out of a target's memory (or a module's file):
//! the build-id of a loaded module and the dynamic linker's `r_debug` /
//! `link_map` list.
//!
//! Owns: a small, bounds-checked reader of ELF64 headers, program headers,
//! notes and dynamic sections, over any byte source.
//!
//! Must not: panic on hostile bytes (every size is capped, every offset is
//! checked), follow loops forever (the link map walk is bounded and detects
//! cycles), or write anything.

use coroner_proc::MemorySource;
use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const NT_GNU_BUILD_ID: u32 = 3;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;

/// Most program headers read from one image.
const MAX_PHNUM: usize = 512;
/// Most note bytes read from one PT_NOTE segment.
const MAX_NOTE_BYTES: u64 = 64 * 1024;
/// Most dynamic entries read.
const MAX_DYN: usize = 4096;
/// Most link map entries followed.
pub const MAX_LINK_MAPS: usize = 8192;
/// Longest library name read from the target.
const MAX_NAME: usize = 4096;

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// One ELF64 program header (the fields we use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

fn parse_phdrs(b: &[u8], entsize: usize, num: usize) -> Vec<Phdr> {
    (0..num.min(MAX_PHNUM))
        .filter_map(|i| {
            let o = i.checked_mul(entsize)?;
            Some(Phdr {
                p_type: u32_at(b, o)?,
                offset: u64_at(b, o + 8)?,
                vaddr: u64_at(b, o + 16)?,
                filesz: u64_at(b, o + 32)?,
                memsz: u64_at(b, o + 40)?,
            })
        })
        .collect()
}

/// The ELF header fields that locate the program headers.
struct Ehdr {
    phoff: u64,
    phentsize: usize,
    phnum: usize,
}

fn parse_ehdr(b: &[u8]) -> Option<Ehdr> {
    // 64-bit, little-endian only.
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let phentsize = usize::from(u16_at(b, 0x36)?);
    if phentsize < 56 {
        return None;
    }
    Some(Ehdr {
        phoff: u64_at(b, 0x20)?,
        phentsize,
        phnum: usize::from(u16_at(b, 0x38)?),
    })
}

/// Whether the target has an ELF header at `addr`.
pub fn has_elf_magic(mem: &dyn MemorySource, addr: u64) -> bool {
    let mut m = [0u8; 4];
    mem.read_exact(addr, &mut m).is_ok() && &m == b"\x7fELF"
}

/// Find `NT_GNU_BUILD_ID` in a run of notes.
pub fn build_id_in_notes(notes: &[u8]) -> Option<Vec<u8>> {
    let mut o = 0usize;
    while o + 12 <= notes.len() {
        let namesz = u32_at(notes, o)? as usize;
        let descsz = u32_at(notes, o + 4)? as usize;
        let ntype = u32_at(notes, o + 8)?;
        let name_off = o + 12;
        let desc_off = name_off.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_off.checked_add(descsz.checked_add(3)? & !3)?;
        let name = notes.get(name_off..name_off.checked_add(namesz)?)?;
        if ntype == NT_GNU_BUILD_ID && name == b"GNU\0" {
            let desc = notes.get(desc_off..desc_off.checked_add(descsz)?)?;
            return (!desc.is_empty()).then(|| desc.to_vec());
        }
        o = next;
    }
    None
}

/// Read `len` bytes at `addr` of the target, or `None`.
fn read_mem(mem: &dyn MemorySource, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; len];
    mem.read_exact(addr, &mut v).ok()?;
    Some(v)
}

/// The build-id of the ELF image loaded at `base` (where file offset 0 is
/// mapped), read from the image's notes in target memory.
pub fn build_id_from_memory(mem: &dyn MemorySource, base: u64) -> Option<Vec<u8>> {
    let eh = parse_ehdr(&read_mem(mem, base, 64)?)?;
    let ph_bytes = read_mem(
        mem,
        base.checked_add(eh.phoff)?,
        eh.phentsize.checked_mul(eh.phnum.min(MAX_PHNUM))?,
    )?;
    let phdrs = parse_phdrs(&ph_bytes, eh.phentsize, eh.phnum);
    // Load bias: the PT_LOAD holding file offset 0 is mapped at `base`.
    let first = phdrs
        .iter()
        .find(|p| p.p_type == PT_LOAD && p.offset == 0)?;
    let bias = base.wrapping_sub(first.vaddr);
    phdrs.iter().filter(|p| p.p_type == PT_NOTE).find_map(|p| {
        let len = p.filesz.min(MAX_NOTE_BYTES) as usize;
        build_id_in_notes(&read_mem(mem, bias.wrapping_add(p.vaddr), len)?)
    })
}

/// The build-id of the ELF file at `path`, from its PT_NOTE segments.
pub fn build_id_from_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)?;
    let mut read_at = |off: u64, len: usize| -> io::Result<Vec<u8>> {
        f.seek(SeekFrom::Start(off))?;
        let mut v = Vec::with_capacity(len);
        (&mut f).take(len as u64).read_to_end(&mut v)?;
        Ok(v)
    };
    let Some(eh) = parse_ehdr(&read_at(0, 64)?) else {
        return Ok(None);
    };
    let ph_len = eh.phentsize.saturating_mul(eh.phnum.min(MAX_PHNUM));
    let phdrs = parse_phdrs(&read_at(eh.phoff, ph_len)?, eh.phentsize, eh.phnum);
    for p in phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let notes = read_at(p.offset, p.filesz.min(MAX_NOTE_BYTES) as usize)?;
        if let Some(id) = build_id_in_notes(&notes) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// One `struct link_map` of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkMap {
    /// `l_addr`: the load bias.
    pub addr: u64,
    /// `l_name`, read from the target (may be empty for the executable).
    pub name: Vec<u8>,
    /// `l_ld`: the module's dynamic section.
    pub ld: u64,
}

/// The dynamic linker's debug rendezvous (`struct r_debug`) of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsoDebug {
    /// Address of `struct r_debug` itself (`DT_DEBUG`'s value); its
    /// `r_state` (offset 24) says whether the list is consistent.
    pub addr: u64,
    pub version: u32,
    pub brk: u64,
    pub ldbase: u64,
    /// Address of the executable's dynamic section.
    pub dynamic: u64,
    /// The executable's dynamic section, up to and including `DT_NULL`.
    pub dynamic_bytes: Vec<u8>,
    pub maps: Vec<LinkMap>,
}

/// Why the `r_debug` walk failed (recorded as a soft error).
#[derive(Debug, thiserror::Error)]
pub enum DsoDebugError {
    #[error("auxv has no AT_PHDR/AT_PHNUM")]
    NoAuxv,
    #[error("cannot read the executable's program headers at {addr:#x}")]
    Phdrs { addr: u64 },
    #[error("the executable has no PT_PHDR or PT_DYNAMIC (static?)")]
    NoDynamic,
    #[error("cannot read the dynamic section at {addr:#x}")]
    Dynamic { addr: u64 },
    #[error("the dynamic section has no DT_DEBUG entry, or it is 0 (static, or not yet set)")]
    NoDebug,
    #[error("cannot read r_debug at {addr:#x}")]
    RDebug { addr: u64 },
}

/// Follow auxv `AT_PHDR` → `PT_DYNAMIC` → `DT_DEBUG` → `r_debug` → the
/// `link_map` list. `auxv_value` looks an auxv key up.
pub fn read_dso_debug(
    mem: &dyn MemorySource,
    auxv_value: impl Fn(u64) -> Option<u64>,
) -> Result<DsoDebug, DsoDebugError> {
    let phdr_addr = auxv_value(AT_PHDR).ok_or(DsoDebugError::NoAuxv)?;
    let phnum = auxv_value(AT_PHNUM).ok_or(DsoDebugError::NoAuxv)? as usize;
    let phnum = phnum.min(MAX_PHNUM);
    let ph =
        read_mem(mem, phdr_addr, phnum * 56).ok_or(DsoDebugError::Phdrs { addr: phdr_addr })?;
    let phdrs = parse_phdrs(&ph, 56, phnum);
    let pt_phdr = phdrs
        .iter()
        .find(|p| p.p_type == PT_PHDR)
        .ok_or(DsoDebugError::NoDynamic)?;
    let bias = phdr_addr.wrapping_sub(pt_phdr.vaddr);
    let dynp = phdrs
        .iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .ok_or(DsoDebugError::NoDynamic)?;
    let dynamic = bias.wrapping_add(dynp.vaddr);
    let dyn_len = (dynp.memsz as usize).min(MAX_DYN * 16);
    let dyn_bytes =
        read_mem(mem, dynamic, dyn_len).ok_or(DsoDebugError::Dynamic { addr: dynamic })?;
    let mut r_debug = 0u64;
    let mut used = dyn_bytes.len();
    for (i, e) in dyn_bytes.chunks_exact(16).enumerate() {
        let tag = u64_at(e, 0).unwrap_or(DT_NULL);
        let val = u64_at(e, 8).unwrap_or(0);
        if tag == DT_DEBUG {
            r_debug = val;
        }
        if tag == DT_NULL {
            used = (i + 1) * 16;
            break;
        }
    }
    if r_debug == 0 {
        return Err(DsoDebugError::NoDebug);
    }
    let rd = read_mem(mem, r_debug, 40).ok_or(DsoDebugError::RDebug { addr: r_debug })?;
    let version = u32_at(&rd, 0).unwrap_or(0);
    let mut next = u64_at(&rd, 8).unwrap_or(0);
    let brk = u64_at(&rd, 16).unwrap_or(0);
    let ldbase = u64_at(&rd, 32).unwrap_or(0);
    let mut maps = Vec::new();
    let mut seen = HashSet::new();
    while next != 0 && maps.len() < MAX_LINK_MAPS && seen.insert(next) {
        // A broken entry ends the list; what was read so far is kept.
        let Some(lm) = read_mem(mem, next, 40) else {
            break;
        };
        let addr = u64_at(&lm, 0).unwrap_or(0);
        let name_ptr = u64_at(&lm, 8).unwrap_or(0);
        let ld = u64_at(&lm, 16).unwrap_or(0);
        next = u64_at(&lm, 24).unwrap_or(0);
        let name = if name_ptr == 0 {
            Vec::new()
        } else {
            read_c_string(mem, name_ptr)
        };
        maps.push(LinkMap { addr, name, ld });
    }
    Ok(DsoDebug {
        addr: r_debug,
        version,
        brk,
        ldbase,
        dynamic,
        dynamic_bytes: dyn_bytes[..used].to_vec(),
        maps,
    })
}

/// A NUL-terminated string of at most [`MAX_NAME`] bytes; what is readable.
fn read_c_string(mem: &dyn MemorySource, addr: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut a = addr;
    while out.len() < MAX_NAME {
        // Do not read across a page: the next one may be unmapped.
        let in_page = (4096 - (a % 4096)) as usize;
        let want = in_page.min(buf.len());
        let n = match mem.read(a, &mut buf[..want]) {
            Ok(n) if n > 0 => n.min(want),
            _ => break,
        };
        if let Some(z) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..z]);
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        a = a.saturating_add(n as u64);
    }
    out.truncate(MAX_NAME);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounds_checked() {
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&NT_GNU_BUILD_ID.to_le_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(build_id_in_notes(&n), Some(vec![1, 2, 3, 4]));
        for cut in 0..n.len() {
            assert_eq!(build_id_in_notes(&n[..cut]), None);
        }
        let mut huge = n.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_id_in_notes(&huge), None);
    }

    #[test]
    fn bad_ehdr_is_none() {
        assert!(parse_ehdr(b"\x7fELF").is_none());
        assert!(parse_ehdr(&[0u8; 64]).is_none());
    }
}
