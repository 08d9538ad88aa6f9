//! Symbolizing this test binary's own functions through the provider, with
//! build-id verification and separate debug files.

use coroner_symbols::elf::{hex, read_facts};
use coroner_symbols::{CoronerSymbolProvider, Refusal, SymbolOptions, SymbolStatus};
use minidump::format::CV_INFO_ELF;
use minidump::{CodeView, MinidumpModule};
use std::path::{Path, PathBuf};
use std::process::Command;

const MARKER_LINE: u32 = line!() + 2;
#[inline(never)]
fn marker_function(x: u64) -> u64 {
    std::hint::black_box(x.wrapping_mul(31).rotate_left(7))
}

/// Base (start of the offset-0 mapping) and end of the mapping range of
/// `path` in this process.
fn module_range(path: &Path) -> (u64, u64) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let want = path.to_str().unwrap();
    let mut base = None;
    let mut end = 0;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != want {
            continue;
        }
        let (s, e) = f[0].split_once('-').unwrap();
        let (s, e) = (
            u64::from_str_radix(s, 16).unwrap(),
            u64::from_str_radix(e, 16).unwrap(),
        );
        if base.is_none() && u64::from_str_radix(f[2], 16).unwrap() == 0 {
            base = Some(s);
        }
        end = end.max(e);
    }
    (base.expect("exe mapping at offset 0"), end)
}

fn own_build_id() -> Vec<u8> {
    let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    read_facts(&data)
        .unwrap()
        .build_id
        .expect("test binary has a build id")
}

fn module(code_file: &Path, base: u64, end: u64, build_id: Vec<u8>) -> MinidumpModule {
    let mut m = MinidumpModule::new(base, (end - base) as u32, code_file.to_str().unwrap());
    m.codeview_info = Some(CodeView::Elf(CV_INFO_ELF {
        cv_signature: 0x4c45_7042,
        build_id,
    }));
    m
}

fn no_system_dirs() -> SymbolOptions {
    SymbolOptions {
        debug_dirs: vec![],
        binary_dirs: vec![],
        sysroot: None,
    }
}

#[test]
fn symbolizes_own_function_with_line_and_offset() {
    let exe = std::env::current_exe().unwrap();
    let (base, end) = module_range(&exe);
    let m = module(&exe, base, end, own_build_id());
    let p = CoronerSymbolProvider::new(no_system_dirs());
    let f = marker_function as fn(u64) -> u64 as usize as u64;
    assert!(f > base && f < end);
    let s = p.symbolize(&m, f + 4).expect("symbolized");
    assert!(s.function.ends_with("marker_function"), "{}", s.function);
    assert_eq!(s.function_address, Some(f), "offset = 4");
    let line = s.line.expect("line");
    assert!(
        (MARKER_LINE..MARKER_LINE + 3).contains(&line),
        "line {line}"
    );
    assert!(s.file.as_deref().unwrap().ends_with("symbolize.rs"));
    let info = p.module_symbols(&m);
    assert_eq!(info.status, SymbolStatus::Dwarf);
    assert!(info.cfi);
    assert_eq!(info.binary.as_deref(), Some(exe.as_path()));
    assert_eq!(info.dump_build_id, Some(hex(&own_build_id())));
    marker_function(1);
}

#[test]
fn refuses_file_whose_build_id_differs() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let copy = dir.path().join("copy-of-test");
    std::fs::copy(&exe, &copy).unwrap();
    let (base, end) = module_range(&exe);
    let fake = vec![0xab; 20];
    let m = module(&copy, base, end, fake.clone());
    let p = CoronerSymbolProvider::new(no_system_dirs());
    let f = marker_function as fn(u64) -> u64 as usize as u64;
    assert_eq!(p.symbolize(&m, f), None);
    let info = p.module_symbols(&m);
    assert_eq!(info.status, SymbolStatus::Refused);
    assert_eq!(info.binary, None);
    assert!(!info.cfi);
    assert_eq!(
        info.refusals,
        vec![Refusal::BuildIdMismatch {
            path: copy.clone(),
            file_build_id: Some(hex(&own_build_id())),
            dump_build_id: hex(&fake),
        }]
    );
    let msg = info.refusals[0].to_string();
    assert!(msg.contains("file on disk has build-id"), "{msg}");
    assert!(msg.contains(&hex(&fake)), "{msg}");
    // The same copy in a binary dir under another code path: also refused.
    let p = CoronerSymbolProvider::new(SymbolOptions {
        debug_dirs: vec![],
        binary_dirs: vec![dir.path().to_path_buf()],
        sysroot: None,
    });
    let m = module(Path::new("/nonexistent/copy-of-test"), base, end, fake);
    assert_eq!(p.module_symbols(&m).status, SymbolStatus::Refused);
}

fn objcopy(args: &[&std::ffi::OsStr]) {
    let st = Command::new("objcopy")
        .args(args)
        .status()
        .expect("objcopy runs");
    assert!(st.success(), "objcopy {args:?}");
}

/// A stripped copy of this binary with a `.gnu_debuglink` to `name.debug`
/// in `.debug/`. `build_id_in_debug`: keep the build-id note in the debug file.
fn make_debuglink_pair(dir: &Path, build_id_in_debug: bool) -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().unwrap();
    let bin = dir.join("stripped");
    std::fs::create_dir_all(dir.join(".debug")).unwrap();
    let dbg = dir.join(".debug").join("stripped.debug");
    objcopy(&[
        "--only-keep-debug".as_ref(),
        exe.as_os_str(),
        dbg.as_os_str(),
    ]);
    if !build_id_in_debug {
        objcopy(&[
            "--remove-section=.note.gnu.build-id".as_ref(),
            dbg.as_os_str(),
        ]);
    }
    let link = format!("--add-gnu-debuglink={}", dbg.display());
    objcopy(&[
        "--strip-debug".as_ref(),
        link.as_ref(),
        exe.as_os_str(),
        bin.as_os_str(),
    ]);
    (bin, dbg)
}

#[test]
fn debuglink_by_build_id_and_by_crc() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let (base, end) = module_range(&exe);
    let f = marker_function as fn(u64) -> u64 as usize as u64;

    let (bin, dbg) = make_debuglink_pair(dir.path(), false);
    let m = module(&bin, base, end, own_build_id());
    let p = CoronerSymbolProvider::new(no_system_dirs());
    let info = p.module_symbols(&m);
    assert_eq!(info.binary.as_deref(), Some(bin.as_path()));
    assert_eq!(info.debug_file.as_deref(), Some(dbg.as_path()), "{info:?}");
    assert_eq!(info.status, SymbolStatus::Dwarf);
    let s = p.symbolize(&m, f + 1).unwrap();
    assert!(s.function.ends_with("marker_function"));
    assert!(s.line.is_some());

    // Damage the debug file: CRC no longer matches, no build id to rescue it.
    let mut data = std::fs::read(&dbg).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&dbg, &data).unwrap();
    let p = CoronerSymbolProvider::new(no_system_dirs());
    let info = p.module_symbols(&m);
    assert_eq!(info.debug_file, None);
    assert!(
        matches!(info.refusals.as_slice(), [Refusal::DebuglinkCrc { path, .. }] if path == &dbg)
    );
    // The stripped binary still has its symbol table.
    assert_eq!(info.status, SymbolStatus::SymbolTable);
    let s = p.symbolize(&m, f + 1).unwrap();
    assert!(s.function.ends_with("marker_function"));
    assert_eq!(s.line, None);
}

#[test]
fn debug_file_by_build_id_dir() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let (base, end) = module_range(&exe);
    let id = hex(&own_build_id());
    let root = dir.path().join("debugroot");
    let sub = root.join(".build-id").join(&id[..2]);
    std::fs::create_dir_all(&sub).unwrap();
    let dbg = sub.join(format!("{}.debug", &id[2..]));
    objcopy(&[
        "--only-keep-debug".as_ref(),
        exe.as_os_str(),
        dbg.as_os_str(),
    ]);
    // The module's code file is gone; only the debug file is left.
    let m = module(Path::new("/nonexistent/bin"), base, end, own_build_id());
    let p = CoronerSymbolProvider::new(SymbolOptions {
        debug_dirs: vec![root],
        binary_dirs: vec![],
        sysroot: None,
    });
    let info = p.module_symbols(&m);
    assert_eq!(info.debug_file.as_deref(), Some(dbg.as_path()));
    assert_eq!(info.status, SymbolStatus::Dwarf);
    let f = marker_function as fn(u64) -> u64 as usize as u64;
    assert!(p
        .symbolize(&m, f)
        .unwrap()
        .function
        .ends_with("marker_function"));
}

/// A container's binary: its code path exists only under the process's
/// root (`/proc/PID/root`), which `sysroot` names.
#[test]
fn finds_a_module_under_the_sysroot_by_its_path_there() {
    let root = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let inside = Path::new("/opt/ctr-only/prog");
    std::fs::create_dir_all(root.path().join("opt/ctr-only")).unwrap();
    std::fs::copy(&exe, root.path().join("opt/ctr-only/prog")).unwrap();
    let (base, end) = module_range(&exe);
    let m = module(inside, base, end, own_build_id());
    let f = marker_function as fn(u64) -> u64 as usize as u64;
    // Without the sysroot the path names nothing on this machine.
    let p = CoronerSymbolProvider::new(no_system_dirs());
    assert_eq!(p.symbolize(&m, f + 4), None);
    let p = CoronerSymbolProvider::new(SymbolOptions {
        sysroot: Some(root.path().to_path_buf()),
        ..no_system_dirs()
    });
    let s = p
        .symbolize(&m, f + 4)
        .expect("symbolized through the sysroot");
    assert!(s.function.ends_with("marker_function"), "{}", s.function);
    assert_eq!(
        p.module_symbols(&m).binary.as_deref(),
        Some(root.path().join("opt/ctr-only/prog").as_path())
    );
}
