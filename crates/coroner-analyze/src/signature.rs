//! Crash signatures and buckets: the exception plus the top frames as
//! `module!function`, with no addresses or offsets, so the same bug in a
//! rebuilt or relocated binary lands in the same bucket.

use crate::report::{FrameReport, Signature};

/// Functions of the abort/raise path (glibc) and of Rust's panic path that
/// sit above the frame that actually failed. Skipped from the top only.
const MACHINERY_EXACT: &[&str] = &[
    "raise",
    "gsignal",
    "abort",
    "__GI_raise",
    "__GI_abort",
    "__pthread_kill_implementation",
    "__pthread_kill_internal",
    "__pthread_kill",
    "pthread_kill",
    "__assert_fail",
    "__assert_fail_base",
    "__assert_perror_fail",
    "__libc_message",
    "__libc_message_impl",
    "__fortify_fail",
    "__chk_fail",
    "__stack_chk_fail",
    "malloc_printerr",
    "rust_panic",
    "__rust_start_panic",
    "__rust_end_short_backtrace",
    "__rust_begin_short_backtrace",
    "rust_begin_unwind",
];
const MACHINERY_PREFIX: &[&str] = &[
    "std::panicking::",
    "core::panicking::",
    "std::sys::pal::unix::abort_internal",
    "std::sys::abort_internal",
    "std::process::abort",
    "panic_abort::",
    "std::rt::lang_start",
    "core::panic::",
];

fn is_machinery(function: &str) -> bool {
    MACHINERY_EXACT.contains(&function) || MACHINERY_PREFIX.iter().any(|p| function.starts_with(p))
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One frame as a signature element.
fn element(f: &FrameReport) -> String {
    let module = f.module.as_deref().unwrap_or("???");
    match &f.function {
        Some(func) => format!("{module}!{func}"),
        // Module-relative offsets survive ASLR, not rebuilds: the best left.
        None if f.module.is_some() => format!("{module}+{:#x}", f.module_offset.unwrap_or(0)),
        None => "???".to_string(),
    }
}

/// Build the signature from the exception label and the crashing thread's
/// frames (inline entries included, innermost first).
pub fn signature(exception: &str, frames: &[FrameReport], depth: usize) -> Signature {
    let skip = frames
        .iter()
        .take_while(|f| f.function.as_deref().is_some_and(is_machinery))
        .count();
    // Never skip everything: a crash inside the machinery itself keeps it.
    let start = if skip == frames.len() { 0 } else { skip };
    let elems: Vec<String> = frames[start..].iter().take(depth).map(element).collect();
    let text = std::iter::once(exception.to_string())
        .chain(elems.iter().cloned())
        .collect::<Vec<_>>()
        .join("|");
    Signature {
        exception: exception.to_string(),
        frames: elems,
        bucket: format!("{:016x}", fnv1a64(text.as_bytes())),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, function: &str, address: u64) -> FrameReport {
        FrameReport {
            index: 0,
            address,
            inline: false,
            module: Some(module.into()),
            module_offset: Some(address & 0xffff),
            function: Some(function.into()),
            function_offset: Some(address & 0xff),
            file: None,
            line: None,
            trust: "cfi".into(),
        }
    }

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn skips_abort_machinery_and_ignores_addresses() {
        let a = vec![
            frame(
                "libc.so.6",
                "__pthread_kill_implementation",
                0x7f00_0000_1234,
            ),
            frame("libc.so.6", "raise", 0x7f00_0000_2234),
            frame("libc.so.6", "abort", 0x7f00_0000_3234),
            frame("crasher", "crasher::do_abort", 0x5555_0000_1111),
            frame("crasher", "crasher::main", 0x5555_0000_2222),
        ];
        let s = signature("SIGABRT/SI_TKILL", &a, 5);
        assert_eq!(
            s.frames,
            vec!["crasher!crasher::do_abort", "crasher!crasher::main"]
        );
        assert_eq!(
            s.text,
            "SIGABRT/SI_TKILL|crasher!crasher::do_abort|crasher!crasher::main"
        );
        assert_eq!(s.bucket.len(), 16);
        // Same functions at other addresses (ASLR, rebuild): same bucket.
        let b: Vec<FrameReport> = a
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.address += 0x1000_0000;
                f.module_offset = Some(7);
                f.function_offset = Some(9);
                f
            })
            .collect();
        assert_eq!(signature("SIGABRT/SI_TKILL", &b, 5).bucket, s.bucket);
        // Another exception: another bucket.
        assert_ne!(signature("SIGSEGV/SEGV_MAPERR", &a, 5).bucket, s.bucket);
        // Depth limits the frames.
        assert_eq!(
            signature("X", &a, 1).frames,
            vec!["crasher!crasher::do_abort"]
        );
    }

    #[test]
    fn machinery_only_stack_is_kept() {
        let a = vec![frame("libc.so.6", "abort", 1)];
        assert_eq!(
            signature("SIGABRT/SI_TKILL", &a, 5).frames,
            vec!["libc.so.6!abort"]
        );
    }
}
