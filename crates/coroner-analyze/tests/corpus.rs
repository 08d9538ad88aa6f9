//! No-panic corpus: every file in `tests/corpus/` goes through
//! `analyze_path`; errors are fine, panics are not.
//!
//! The corpus (each file < 64 KiB) was cut from a coroner minidump (level
//! Mini) of `sleep 100` and a gdb `gcore` of the same process:
//! `md_trunc_N` = first N bytes of the minidump, `md_flip_i` = its first
//! 65000 bytes with 6 bit flips; `core_compact` = the core reduced to its
//! headers, notes (minus gdb's target description) and 8 KiB of stack,
//! `core_trunc_N` / `core_flip_i` = truncations / 4-bit-flip copies of it;
//! plus an empty file and a text file. New crashers found by
//! `cargo +nightly fuzz` belong here too.

use coroner_analyze::{analyze_path, render_text, AnalyzeOptions};
use std::path::Path;

#[test]
fn corpus_never_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has {} files", files.len());
    let mut ok = Vec::new();
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() < 64 * 1024,
            "{}",
            f.display()
        );
        // A panic here fails the test and names the file.
        eprintln!("analyzing {}", f.display());
        if let Ok(r) = analyze_path(f, &AnalyzeOptions::default()) {
            let _ = render_text(&r);
            let _ = serde_json::to_string(&r).unwrap();
            ok.push(f.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    // The intact compact core still analyzes: the corpus reaches the
    // processor, not only the format check.
    assert!(ok.iter().any(|n| n == "core_compact"), "analyzed: {ok:?}");
}

#[test]
fn compact_core_report() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/core_compact");
    let r = analyze_path(&path, &AnalyzeOptions::default()).unwrap();
    assert_eq!(r.dump.format, "elf-core");
    assert_eq!(r.threads.len(), 1);
    assert!(!r.threads[0].frames.is_empty());
    // Module headers are not in the compact core, so no module list; the
    // process is still named.
    assert!(r.process.pid.is_some_and(|p| p > 0));
}
