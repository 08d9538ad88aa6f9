//! The name of the vDSO, the ELF image the kernel maps into every process.
//!
//! Owns: the one name every part of coroner shows for it — the vDSO's own
//! `DT_SONAME` (the name the dynamic linker puts in `link_map`, and the one
//! `ldd` and gdb show): `linux-vdso.so.1` on x86-64 and arm64,
//! `linux-gate.so.1` on i386 — and the spellings a recorded module list
//! uses for it: `[vdso]` in `/proc/PID/maps`, and `linux-gate.so`, the
//! name Breakpad-format minidump writers (Breakpad, Crashpad,
//! minidump-writer, and ours, so that tools keyed on it keep working) give
//! it on every architecture. The i386 name on an x86-64 dump was what `lm`
//! showed.
//!
//! Must not: panic on a malformed image (every read is bounds-checked).

pub use minidump::system_info::Cpu;
use object::{Object, ObjectSection};

/// How `/proc/PID/maps` names the vDSO's mapping.
pub const MAPS_NAME: &str = "[vdso]";

/// How Breakpad-format minidumps name the vDSO module, whatever the
/// architecture.
pub const MINIDUMP_NAME: &str = "linux-gate.so";

/// `true` for a recorded module name that means the vDSO.
pub fn is_vdso(recorded: &str) -> bool {
    recorded == MAPS_NAME || recorded == MINIDUMP_NAME
}

/// The kernel's `DT_SONAME` for the vDSO of `cpu`, for when the image
/// itself cannot be read.
pub fn default_name(cpu: Cpu) -> &'static str {
    match cpu {
        Cpu::X86 => "linux-gate.so.1",
        Cpu::Ppc64 => "linux-vdso64.so.1",
        Cpu::Ppc => "linux-vdso32.so.1",
        _ => "linux-vdso.so.1",
    }
}

/// The `DT_SONAME` of an ELF image as it lies in memory (the vDSO is one
/// mapping whose file offsets are its addresses), if it has one.
pub fn soname(image: &[u8]) -> Option<String> {
    const DT_NULL: u64 = 0;
    const DT_SONAME: u64 = 14;
    let file = object::File::parse(image).ok()?;
    let dynamic = file.section_by_name(".dynamic")?.data().ok()?;
    let strings = file.section_by_name(".dynstr")?.data().ok()?;
    let width = if file.is_64() { 8 } else { 4 };
    let word = |b: &[u8]| -> Option<u64> {
        let b = b.get(..width)?;
        let mut v = [0u8; 8];
        if file.is_little_endian() {
            v[..width].copy_from_slice(b);
            Some(u64::from_le_bytes(v))
        } else {
            v[8 - width..].copy_from_slice(b);
            Some(u64::from_be_bytes(v))
        }
    };
    for entry in dynamic.chunks_exact(2 * width) {
        match word(entry)? {
            DT_NULL => return None,
            DT_SONAME => {
                let at = usize::try_from(word(&entry[width..])?).ok()?;
                let rest = strings.get(at..)?;
                let name = &rest[..rest.iter().position(|&b| b == 0)?];
                return (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
            }
            _ => {}
        }
    }
    None
}

/// The name to show for a module recorded as `recorded`: the vDSO's own
/// name (from `image`, its bytes in the target when they can be read, else
/// [`default_name`] of `cpu`) when `recorded` means the vDSO, else `None`.
pub fn display_name(recorded: &str, image: Option<&[u8]>, cpu: Cpu) -> Option<String> {
    if !is_vdso(recorded) {
        return None;
    }
    Some(
        image
            .and_then(soname)
            .unwrap_or_else(|| default_name(cpu).to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's vDSO, read from its own memory.
    fn own_vdso() -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let line = maps
            .lines()
            .find(|l| l.ends_with(MAPS_NAME))
            .expect("a [vdso] mapping");
        let range = line.split_whitespace().next().unwrap();
        let (s, e) = range.split_once('-').unwrap();
        let s = u64::from_str_radix(s, 16).unwrap();
        let e = u64::from_str_radix(e, 16).unwrap();
        let mut buf = vec![0u8; (e - s) as usize];
        let mem = std::fs::File::open("/proc/self/mem").unwrap();
        mem.read_exact_at(&mut buf, s).unwrap();
        buf
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn own_vdso_is_linux_vdso_so_1() {
        let image = own_vdso();
        assert_eq!(soname(&image).as_deref(), Some("linux-vdso.so.1"));
        assert_eq!(
            display_name("linux-gate.so", Some(&image), Cpu::X86_64).as_deref(),
            Some("linux-vdso.so.1")
        );
        // The fallback agrees with what the kernel says.
        assert_eq!(default_name(Cpu::X86_64), "linux-vdso.so.1");
    }

    #[test]
    fn recorded_names_and_fallbacks() {
        assert!(is_vdso("[vdso]") && is_vdso("linux-gate.so"));
        assert!(!is_vdso("/usr/lib/libc.so.6") && !is_vdso("linux-vdso.so.1"));
        assert_eq!(display_name("/lib/libc.so.6", None, Cpu::X86_64), None);
        assert_eq!(
            display_name("linux-gate.so", None, Cpu::X86_64).as_deref(),
            Some("linux-vdso.so.1")
        );
        assert_eq!(
            display_name("[vdso]", Some(b"junk"), Cpu::X86).as_deref(),
            Some("linux-gate.so.1")
        );
        assert_eq!(default_name(Cpu::Arm64), "linux-vdso.so.1");
    }

    #[test]
    fn malformed_images_have_no_soname() {
        assert_eq!(soname(&[]), None);
        assert_eq!(soname(b"\x7fELF\x02\x01\x01garbage"), None);
        let mut image = own_vdso();
        // Cut inside the section headers or the strings: never a panic.
        for len in [64, 200, image.len() / 2, image.len() - 1] {
            let _ = soname(&image[..len]);
        }
        // Corrupt every 7th byte: never a panic.
        for i in (0..image.len()).step_by(7) {
            image[i] ^= 0x5a;
        }
        let _ = soname(&image);
    }
}
