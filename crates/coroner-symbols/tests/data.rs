//! Addresses outside code: a variable's bytes are named after the variable
//! (`dps` on a stack that holds `&table[10]` shows `prog!table+0x28`), and
//! a function symbol without a size (`_fini`, the last thing in `.fini`)
//! does not name every address of the sections after it.

use coroner_symbols::{ModuleImage, SymbolOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
int table[64] = {1};
static const char banner[256] = "banner";
const char *volatile keep;
int main(void) {
    keep = banner;
    return table[0] - 1;
}
"#;

/// Where the test maps the module: any page-aligned base will do.
const BASE: u64 = 0x5555_0000_0000;

fn build(dir: &Path) -> PathBuf {
    let src = dir.join("data.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = dir.join("data");
    let status = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc (a C compiler) is needed for this test");
    assert!(status.success(), "cc failed");
    exe
}

/// The file address of `name` as `nm` lists it.
fn nm(exe: &Path, name: &str) -> u64 {
    let out = Command::new("nm")
        .arg(exe)
        .output()
        .expect("nm (binutils) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, _kind, sym) = (w.next()?, w.next()?, w.next()?);
            (sym == name).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("{name} not in nm's list:\n{text}"))
}

/// File address and size of section `name`, from `readelf -SW`.
fn section(exe: &Path, name: &str) -> (u64, u64) {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(exe)
        .output()
        .expect("readelf (binutils) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let Some(rest) = line.split_once(']').map(|(_, r)| r) else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        if w.first() == Some(&name) && w.len() > 5 {
            return (
                u64::from_str_radix(w[2], 16).unwrap(),
                u64::from_str_radix(w[4], 16).unwrap(),
            );
        }
    }
    panic!("no section {name}:\n{text}")
}

#[test]
fn variables_are_named_and_sizeless_functions_stay_in_their_section() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build(dir.path());
    let opts = SymbolOptions {
        debug_dirs: Vec::new(),
        binary_dirs: Vec::new(),
        sysroot: None,
    };
    let img = ModuleImage::load(&opts, exe.to_str().unwrap(), BASE, 0x1000_0000, None);

    let table = nm(&exe, "table");
    let hit = img.symbol_at(BASE + table + 40).expect("table");
    assert_eq!(hit.name, "table");
    assert_eq!(hit.address, BASE + table);
    let banner = nm(&exe, "banner");
    let hit = img.symbol_at(BASE + banner + 100).expect("banner");
    assert_eq!(hit.name, "banner");

    // Code still goes to its function.
    let main = nm(&exe, "main");
    assert_eq!(img.symbol_at(BASE + main + 1).unwrap().name, "main");

    // `.eh_frame` holds no symbol; before, `_fini` (size 0) named it.
    let (eh, size) = section(&exe, ".eh_frame");
    assert!(size > 8);
    let hit = img.symbol_at(BASE + eh + 4);
    assert!(
        hit.as_ref().is_none_or(|h| h.name != "_fini"),
        "{:?}",
        hit.map(|h| h.name)
    );
}
