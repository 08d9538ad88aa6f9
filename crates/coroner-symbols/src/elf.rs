//! Facts read from one ELF file on disk: build id, `.gnu_debuglink`, the
//! static address of its first loadable page, whether it carries DWARF or a
//! symbol table, and the sections the CFI unwinder needs.
//!
//! Every read goes through `object`, which bounds-checks; nothing here
//! panics on a malformed file.

use object::{Object, ObjectSection, ObjectSegment, SectionKind};
use std::ops::Range;

/// Page size used for module base alignment (x86-64 mappings are 4 KiB granular).
const PAGE: u64 = 4096;

/// What coroner needs to know about an ELF file before trusting it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfFacts {
    /// `NT_GNU_BUILD_ID` note contents.
    pub build_id: Option<Vec<u8>>,
    /// `.gnu_debuglink`: file name and CRC-32 of the debug file.
    pub debuglink: Option<(Vec<u8>, u32)>,
    /// Lowest `PT_LOAD` virtual address, rounded down to a page: the static
    /// address (SVMA) that the module's base address (first mapping) maps to.
    /// 0 for PIE executables and shared objects, e.g. 0x400000 for `ET_EXEC`.
    pub svma_base: u64,
    /// `.debug_info` with contents (not `NOBITS`).
    pub has_dwarf: bool,
    /// A non-empty `.symtab` or `.dynsym`.
    pub has_symbols: bool,
    /// `.eh_frame` or `.debug_frame` with contents.
    pub has_cfi: bool,
}

/// Parse the facts out of a whole file image.
pub fn read_facts(data: &[u8]) -> Result<ElfFacts, object::Error> {
    let file = object::File::parse(data)?;
    let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
    let debuglink = file
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(name, crc)| (name.to_vec(), crc));
    let svma_base = file
        .segments()
        .map(|s| s.address())
        .min()
        .map(|a| a & !(PAGE - 1))
        .unwrap_or(0);
    let has_data = |name: &str| {
        file.section_by_name(name)
            .map(|s| s.kind() != SectionKind::UninitializedData && s.size() > 0)
            .unwrap_or(false)
    };
    let has_dwarf = has_data(".debug_info") || has_data(".zdebug_info");
    let has_symbols = file.symbols().next().is_some() || file.dynamic_symbols().next().is_some();
    let has_cfi = has_data(".eh_frame") || has_data(".debug_frame");
    Ok(ElfFacts {
        build_id,
        debuglink,
        svma_base,
        has_dwarf,
        has_symbols,
        has_cfi,
    })
}

/// The sections framehop reads, copied out of the file image.
pub fn unwind_sections(
    data: &[u8],
    svma_base: u64,
) -> Result<framehop::ExplicitModuleSectionInfo<Vec<u8>>, object::Error> {
    let file = object::File::parse(data)?;
    let range = |name: &str| -> Option<Range<u64>> {
        let s = file.section_by_name(name)?;
        Some(s.address()..s.address().checked_add(s.size())?)
    };
    let bytes = |name: &str| -> Option<Vec<u8>> {
        let s = file.section_by_name(name)?;
        if s.kind() == SectionKind::UninitializedData {
            return None;
        }
        let d = s.uncompressed_data().ok()?;
        (!d.is_empty()).then(|| d.into_owned())
    };
    Ok(framehop::ExplicitModuleSectionInfo {
        base_svma: svma_base,
        text_svma: range(".text"),
        text: bytes(".text"),
        got_svma: range(".got"),
        eh_frame_svma: range(".eh_frame"),
        eh_frame: bytes(".eh_frame"),
        eh_frame_hdr_svma: range(".eh_frame_hdr"),
        eh_frame_hdr: bytes(".eh_frame_hdr"),
        debug_frame: bytes(".debug_frame"),
        ..Default::default()
    })
}

/// Lower-case hex of a byte string (build ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and `.gnu_debuglink` use it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn facts_of_own_binary() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let f = read_facts(&data).unwrap();
        assert!(f.build_id.as_ref().is_some_and(|b| !b.is_empty()));
        assert!(f.has_symbols);
        assert!(f.has_cfi);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_facts(b"\x7fELF\x02\x01\x01garbage").is_err());
        assert!(read_facts(&[]).is_err());
    }
}
