//! Names for the procedure linkage table: the stubs a module calls another
//! module's functions through (`.plt`, `.plt.sec`, `.plt.got`).
//!
//! Owns: finding, in the binary's bytes, which stub jumps through which GOT
//! slot, and naming the stub after the dynamic symbol of that slot's
//! relocation (`JUMP_SLOT` in `.rela.plt`, `GLOB_DAT` in `.rela.dyn` for
//! `.plt.got`), as gdb and objdump do: `puts@plt`. An address in a PLT
//! section that no stub covers (the resolver entry PLT0, the lazy-binding
//! entries of an IBT `.plt` that only push an index) is `<plt>` plus its
//! offset in the section. No symbol table names these stubs, so without
//! this a stub took the name of whatever symbol happened to precede the
//! section (`_fini+0x70`). The GOT slots those relocations fill are named
//! too, as gdb names them: `puts@got.plt` in `.got.plt`, `name@got` in
//! `.got` (the operand of every stub's `jmp`, and what `dps` shows).
//!
//! Decoded: x86-64 stubs (`[endbr64] [bnd] jmp *disp32(%rip)`). Other
//! machines get the section-relative `<plt>` names only.
//!
//! Must not: panic on a malformed file (every read is bounds-checked).

use object::{Architecture, Object, ObjectSection, ObjectSymbol, ObjectSymbolTable};
use object::{RelocationTarget, SectionKind};
use std::borrow::Cow;
use std::collections::HashMap;

/// The section names that hold PLT stubs.
const PLT_SECTIONS: [&str; 3] = [".plt", ".plt.sec", ".plt.got"];

/// The name given to addresses in a PLT section that no named stub covers.
pub const UNNAMED_PLT: &str = "<plt>";

/// One PLT section (file addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PltSection {
    svma: u64,
    size: u64,
}

/// One stub named after the symbol it jumps to (file addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PltStub {
    pub svma: u64,
    pub size: u64,
    /// `name@plt`, demangled, without a symbol version.
    pub name: String,
    /// `raw@plt`: the dynamic symbol's own spelling.
    pub raw_name: String,
}

/// A named place in the PLT or GOT (file addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PltName {
    pub name: String,
    pub raw_name: String,
    pub svma: u64,
    pub size: u64,
}

/// The PLT of one module.
#[derive(Clone, Debug, Default)]
pub(crate) struct PltTable {
    sections: Vec<PltSection>,
    /// Sorted by `svma`, not overlapping.
    stubs: Vec<PltStub>,
    /// Named GOT slots (`name` is already `puts@got.plt`), sorted by
    /// `svma`.
    slots: Vec<PltStub>,
}

impl PltTable {
    /// The PLT sections of `layout` (the binary or, when only the debug
    /// file was found, its `NOBITS` copies of them), with the stubs decoded
    /// from `code` (a file with the sections' bytes: the binary) when given.
    pub(crate) fn read(layout: &object::File<'_>, code: Option<&object::File<'_>>) -> PltTable {
        let mut sections = Vec::new();
        for name in PLT_SECTIONS {
            if let Some(s) = layout.section_by_name(name) {
                if s.size() > 0 {
                    sections.push(PltSection {
                        svma: s.address(),
                        size: s.size(),
                    });
                }
            }
        }
        let mut stubs = Vec::new();
        let mut slots = Vec::new();
        if let Some(file) = code {
            let slot_names = slot_symbols(file);
            slots = got_slots(layout, file, &slot_names);
            if !sections.is_empty() && file.architecture() == Architecture::X86_64 {
                stubs = x86_64_stubs(file, &slot_names);
            }
        }
        for v in [&mut stubs, &mut slots] {
            v.sort_by_key(|s| s.svma);
            v.dedup_by(|b, a| b.svma < a.svma.saturating_add(a.size));
        }
        PltTable {
            sections,
            stubs,
            slots,
        }
    }

    /// The stub (or unnamed PLT range) containing file address `svma`, or
    /// the named GOT slot; `None` anywhere else.
    pub(crate) fn at(&self, svma: u64) -> Option<PltName> {
        let containing = |list: &[PltStub]| {
            let i = list.partition_point(|s| s.svma <= svma);
            let s = list.get(i.checked_sub(1)?)?;
            (svma - s.svma < s.size.max(1)).then(|| PltName {
                name: s.name.clone(),
                raw_name: s.raw_name.clone(),
                svma: s.svma,
                size: s.size,
            })
        };
        let Some(section) = self
            .sections
            .iter()
            .find(|s| svma >= s.svma && svma - s.svma < s.size)
        else {
            return containing(&self.slots);
        };
        containing(&self.stubs)
            .filter(|s| s.svma >= section.svma)
            .or_else(|| {
                Some(PltName {
                    name: UNNAMED_PLT.to_string(),
                    raw_name: UNNAMED_PLT.to_string(),
                    svma: section.svma,
                    size: section.size,
                })
            })
    }

    /// Every named stub.
    pub(crate) fn stubs(&self) -> &[PltStub] {
        &self.stubs
    }
}

/// The stride of the entries of PLT section `name`: its `sh_entsize` when
/// that divides the section, else 16 (every x86-64 layout but the 8-byte
/// `.plt.got` of a build without IBT, which says so in `sh_entsize`).
fn entry_size(file: &object::File<'_>, name: &str, size: u64) -> u64 {
    use object::read::elf::SectionHeader as _;
    let declared: u64 = match file {
        object::File::Elf64(f) => f
            .section_by_name(name)
            .map(|s| s.elf_section_header().sh_entsize(f.endian()))
            .unwrap_or(0),
        object::File::Elf32(f) => f
            .section_by_name(name)
            .map(|s| u64::from(s.elf_section_header().sh_entsize(f.endian())))
            .unwrap_or(0),
        _ => 0,
    };
    if declared >= 4 && size.is_multiple_of(declared) {
        declared
    } else {
        16
    }
}

/// GOT slot → dynamic symbol (name as shown, raw name), from every
/// dynamic relocation that names a symbol.
fn slot_symbols(file: &object::File<'_>) -> HashMap<u64, (String, String)> {
    let mut out = HashMap::new();
    let (Some(relocs), Some(dynsym)) = (file.dynamic_relocations(), file.dynamic_symbol_table())
    else {
        return out;
    };
    for (slot, reloc) in relocs {
        let RelocationTarget::Symbol(index) = reloc.target() else {
            continue;
        };
        let Ok(sym) = dynsym.symbol_by_index(index) else {
            continue;
        };
        let Ok(raw) = sym.name() else { continue };
        let bare = match raw.split_once('@') {
            Some((b, _)) if !b.is_empty() => b,
            _ => raw,
        };
        if bare.is_empty() {
            continue;
        }
        let shown = addr2line::demangle_auto(Cow::Borrowed(bare), None).into_owned();
        out.entry(slot).or_insert_with(|| (shown, bare.to_string()));
    }
    out
}

/// The GOT slot an x86-64 stub at file address `at` (bytes `code`) jumps
/// through: `jmp *disp32(%rip)`, maybe after `endbr64` and a `bnd` prefix.
fn x86_64_jump_slot(at: u64, code: &[u8]) -> Option<u64> {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    let mut i = 0usize;
    if code.starts_with(&ENDBR64) {
        i += ENDBR64.len();
    }
    if code.get(i) == Some(&0xf2) {
        i += 1;
    }
    if code.get(i..i + 2)? != [0xff, 0x25] {
        return None;
    }
    let disp: [u8; 4] = code.get(i + 2..i + 6)?.try_into().ok()?;
    let next = at.checked_add(u64::try_from(i + 6).ok()?)?;
    Some(next.wrapping_add_signed(i64::from(i32::from_le_bytes(disp))))
}

/// The GOT slots (in `.got.plt` and `.got` of `layout`) that a dynamic
/// relocation of `code` names: `puts@got.plt`, `name@got`.
fn got_slots(
    layout: &object::File<'_>,
    code: &object::File<'_>,
    names: &HashMap<u64, (String, String)>,
) -> Vec<PltStub> {
    let width = if code.is_64() { 8 } else { 4 };
    let mut out = Vec::new();
    for (section, suffix) in [(".got.plt", "@got.plt"), (".got", "@got")] {
        let Some(s) = layout.section_by_name(section) else {
            continue;
        };
        let (start, size) = (s.address(), s.size());
        for (&slot, (shown, raw)) in names {
            if slot >= start && slot - start < size {
                out.push(PltStub {
                    svma: slot,
                    size: width,
                    name: format!("{shown}{suffix}"),
                    raw_name: format!("{raw}{suffix}"),
                });
            }
        }
    }
    out
}

fn x86_64_stubs(file: &object::File<'_>, slots: &HashMap<u64, (String, String)>) -> Vec<PltStub> {
    let mut stubs = Vec::new();
    if slots.is_empty() {
        return stubs;
    }
    for name in PLT_SECTIONS {
        let Some(section) = file.section_by_name(name) else {
            continue;
        };
        if section.kind() == SectionKind::UninitializedData {
            continue;
        }
        let Ok(data) = section.data() else { continue };
        let stride = entry_size(file, name, data.len() as u64);
        let Ok(step) = usize::try_from(stride) else {
            continue;
        };
        for (k, entry) in data.chunks(step).enumerate() {
            let Some(at) = u64::try_from(k)
                .ok()
                .and_then(|k| k.checked_mul(stride))
                .and_then(|off| section.address().checked_add(off))
            else {
                break;
            };
            let Some((shown, raw)) = x86_64_jump_slot(at, entry).and_then(|s| slots.get(&s)) else {
                continue;
            };
            stubs.push(PltStub {
                svma: at,
                size: entry.len() as u64,
                name: format!("{shown}@plt"),
                raw_name: format!("{raw}@plt"),
            });
        }
    }
    stubs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_slot_forms() {
        // jmp *0x2fca(%rip) at 0x1030: slot 0x1036 + 0x2fca.
        let plain = [0xff, 0x25, 0xca, 0x2f, 0, 0, 0x68, 0, 0, 0, 0];
        assert_eq!(x86_64_jump_slot(0x1030, &plain), Some(0x4000));
        // endbr64; bnd jmp *0x2f86(%rip) at 0x1070: slot 0x107b + 0x2f86.
        let ibt = [0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, 0x86, 0x2f, 0, 0];
        assert_eq!(x86_64_jump_slot(0x1070, &ibt), Some(0x4001));
        // endbr64; push $0; jmp PLT0: no slot.
        let lazy = [0xf3, 0x0f, 0x1e, 0xfa, 0x68, 0, 0, 0, 0, 0xe9];
        assert_eq!(x86_64_jump_slot(0x1030, &lazy), None);
        // Truncated and negative displacements.
        assert_eq!(x86_64_jump_slot(0x1000, &[0xff, 0x25, 0xca]), None);
        assert_eq!(x86_64_jump_slot(0x1000, &[]), None);
        let back = [0xff, 0x25, 0xfa, 0xff, 0xff, 0xff];
        assert_eq!(x86_64_jump_slot(0x1000, &back), Some(0x1000));
    }

    #[test]
    fn unnamed_ranges_and_stub_bounds() {
        let t = PltTable {
            sections: vec![PltSection {
                svma: 0x1000,
                size: 0x40,
            }],
            stubs: vec![PltStub {
                svma: 0x1010,
                size: 0x10,
                name: "puts@plt".into(),
                raw_name: "puts@plt".into(),
            }],
            slots: vec![PltStub {
                svma: 0x4000,
                size: 8,
                name: "puts@got.plt".into(),
                raw_name: "puts@got.plt".into(),
            }],
        };
        let at = |svma| t.at(svma).map(|h| (h.name, h.svma));
        assert_eq!(at(0xfff), None);
        assert_eq!(at(0x1040), None);
        assert_eq!(at(0x1004), Some(("<plt>".into(), 0x1000)));
        assert_eq!(at(0x1010), Some(("puts@plt".into(), 0x1010)));
        assert_eq!(at(0x101f), Some(("puts@plt".into(), 0x1010)));
        assert_eq!(at(0x1020), Some(("<plt>".into(), 0x1000)));
        assert_eq!(at(0x4003), Some(("puts@got.plt".into(), 0x4000)));
        assert_eq!(at(0x4008), None);
    }
}
