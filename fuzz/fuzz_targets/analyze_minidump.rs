//! Any bytes through minidump parsing, processing, reporting and
//! rendering: errors are fine, panics are bugs.
#![no_main]

use coroner_analyze::{analyze_minidump_bytes, render_text, AnalyzeOptions};
use coroner_symbols::SymbolOptions;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let opts = AnalyzeOptions {
        symbols: SymbolOptions {
            debug_dirs: Vec::new(),
            binary_dirs: Vec::new(),
        },
        signature_frames: 5,
    };
    if let Ok(r) = analyze_minidump_bytes(Path::new("fuzz.dmp"), data.to_vec(), &opts, Vec::new(), "minidump") {
        let _ = render_text(&r);
    }
});
