//! PLT stubs are named after the function they jump to (`puts@plt`), as
//! gdb and objdump name them, not after the symbol that happens to precede
//! the PLT section (it was `crasher!_fini+0x70`). Checked against objdump's
//! own names on C programs built with each PLT layout gcc and ld make, and
//! on the crasher (a Rust binary linked by LLD).

use coroner_symbols::{ModuleImage, SymbolOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    puts("plt");
    printf("%d\n", atoi(argc > 1 ? argv[1] : "3"));
    return (int)strlen(argv[0]) == 0;
}
"#;

/// Where the test maps every module: any page-aligned base will do.
const BASE: u64 = 0x5555_0000_0000;

fn opts() -> SymbolOptions {
    SymbolOptions {
        debug_dirs: Vec::new(),
        binary_dirs: Vec::new(),
        sysroot: None,
    }
}

fn build(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("plt.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = dir.join(name);
    let status = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc (a C compiler) is needed for the PLT tests");
    assert!(status.success(), "cc {flags:?} failed");
    exe
}

/// objdump's names for the PLT stubs of `exe`, demangled as gdb shows
/// them: (file address, `name@plt`).
fn objdump_stubs(exe: &Path) -> Vec<(u64, String)> {
    let out = Command::new("objdump")
        .args(["-d", "-C", "-j", ".plt", "-j", ".plt.sec", "-j", ".plt.got"])
        .arg(exe)
        .output()
        .expect("objdump (binutils, which cc uses) is needed for the PLT tests");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut stubs = Vec::new();
    for line in text.lines() {
        // `0000000000001030 <puts@plt>:`
        let Some((addr, rest)) = line.split_once(" <") else {
            continue;
        };
        let Some(name) = rest.strip_suffix(">:") else {
            continue;
        };
        if !name.ends_with("@plt") || name.contains("@plt+") || name.contains("@plt-") {
            continue;
        }
        stubs.push((u64::from_str_radix(addr, 16).unwrap(), name.to_string()));
    }
    stubs
}

/// File address and size of section `name`, from `readelf -SW`.
fn section(exe: &Path, name: &str) -> Option<(u64, u64)> {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(exe)
        .output()
        .expect("readelf (binutils) is needed for the PLT tests");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("] ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&name) && f.len() > 5 {
            let addr = u64::from_str_radix(f[2], 16).ok()?;
            let size = u64::from_str_radix(f[4], 16).ok()?;
            return Some((addr, size));
        }
    }
    None
}

/// readelf's `JUMP_SLOT` relocations of `exe`: (GOT slot, bare symbol).
fn jump_slots(exe: &Path) -> Vec<(u64, String)> {
    let out = Command::new("readelf")
        .arg("-rW")
        .arg(exe)
        .output()
        .expect("readelf (binutils) is needed for the PLT tests");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut slots = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[2] == "R_X86_64_JUMP_SLOT" {
            let bare = f[4].split('@').next().unwrap().to_string();
            slots.push((u64::from_str_radix(f[0], 16).unwrap(), bare));
        }
    }
    slots
}

fn image(exe: &Path) -> ModuleImage {
    ModuleImage::load(&opts(), exe.to_str().unwrap(), BASE, 0x1000_0000, None)
}

/// Every stub objdump names has that name at its start and inside, and
/// `lookup` finds it by that name. Returns the stub names.
fn stubs_match_objdump(exe: &Path) -> Vec<String> {
    let img = image(exe);
    let stubs = objdump_stubs(exe);
    assert!(!stubs.is_empty(), "objdump names no stub in {exe:?}");
    for (addr, name) in &stubs {
        let at = BASE + addr;
        let hit = img.symbol_at(at).unwrap_or_else(|| panic!("{name}: none"));
        assert_eq!((&hit.name, hit.address), (name, at), "{exe:?}");
        let inside = img.symbol_at(at + 4).unwrap();
        assert_eq!((&inside.name, inside.address), (name, at), "{exe:?}");
        assert!(
            img.lookup(name).iter().any(|h| h.address == at),
            "{name} by name"
        );
    }
    stubs.into_iter().map(|(_, n)| n).collect()
}

/// PLT0 (the lazy resolver entry) is named after the section.
fn plt0_is_unnamed(exe: &Path) {
    let img = image(exe);
    let (plt, _) = section(exe, ".plt").expect(".plt section");
    let hit = img.symbol_at(BASE + plt + 6).unwrap();
    assert_eq!((hit.name.as_str(), hit.address), ("<plt>", BASE + plt));
}

#[test]
fn lazy_plt_and_plt_got_stubs_are_named_after_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build(
        dir.path(),
        "lazy",
        &["-O0", "-fcf-protection=none", "-Wl,-z,lazy"],
    );
    let names = stubs_match_objdump(&exe);
    for want in ["puts@plt", "printf@plt", "atoi@plt", "strlen@plt"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    plt0_is_unnamed(&exe);
    // The GOT slots the stubs jump through (what `u` shows as the `jmp`
    // operand, and `dps` on the GOT).
    let img = image(&exe);
    let slots = jump_slots(&exe);
    assert!(slots.len() >= 4, "{slots:?}");
    for (slot, bare) in slots {
        let hit = img.symbol_at(BASE + slot + 2).unwrap();
        assert_eq!(hit.name, format!("{bare}@got.plt"));
        assert_eq!((hit.address, hit.size), (BASE + slot, 8));
    }
}

#[test]
fn ibt_plt_sec_stubs_are_named_and_lazy_entries_are_plt_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build(
        dir.path(),
        "ibt",
        &[
            "-O1",
            "-fcf-protection=full",
            "-Wl,-z,ibtplt",
            "-Wl,-z,lazy",
        ],
    );
    let (sec, _) = section(&exe, ".plt.sec").expect("-z ibtplt makes .plt.sec");
    let img = image(&exe);
    let names = stubs_match_objdump(&exe);
    assert!(names.iter().any(|n| n == "puts@plt"), "{names:?}");
    assert!(img.symbol_at(BASE + sec).unwrap().name.ends_with("@plt"));
    plt0_is_unnamed(&exe);
    // The IBT `.plt` entries only push an index for the lazy resolver
    // (objdump leaves them `.plt+0x10`): `<plt>` at the section's start.
    let (plt, _) = section(&exe, ".plt").unwrap();
    let hit = img.symbol_at(BASE + plt + 0x14).unwrap();
    assert_eq!((hit.name.as_str(), hit.address), ("<plt>", BASE + plt));
}

#[test]
fn bind_now_stubs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build(dir.path(), "now", &["-O1", "-Wl,-z,now"]);
    let names = stubs_match_objdump(&exe);
    assert!(names.iter().any(|n| n == "puts@plt"), "{names:?}");
}

#[test]
fn crasher_stubs_linked_by_lld_are_named() {
    let crasher = coroner_crashers::crasher_path().expect("crasher binary");
    let names = stubs_match_objdump(&crasher);
    assert!(names.len() > 2, "{names:?}");
    plt0_is_unnamed(&crasher);
    // Not the symbol before the section (the bug: `_fini+0x70`).
    let img = image(&crasher);
    let (plt, size) = section(&crasher, ".plt").unwrap();
    for off in (0..size).step_by(8) {
        let name = img.symbol_at(BASE + plt + off).unwrap().name;
        assert!(name == "<plt>" || name.ends_with("@plt"), "{name}");
    }
}

#[test]
fn without_the_binary_a_plt_address_is_not_named_at_all() {
    let gone = ModuleImage::load(&opts(), "/nonexistent/libgone.so.1", BASE, 0x1000, None);
    assert_eq!(gone.symbol_at(BASE + 0x20), None);
    assert!(gone.lookup("puts@plt").is_empty());
}
