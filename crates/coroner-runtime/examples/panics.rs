//! Test helper (built by `cargo test`): a Rust program that links the
//! runtime, calls `coroner_runtime::install()`, and ends in one way per
//! argument, to check the crash reason the runtime records:
//! - `caught-then-null`: a panic caught by `catch_unwind`, then a null
//!   write (SIGSEGV: reason `fault`);
//! - `caught-then-abort`: a caught panic, then `std::process::abort()`
//!   (SIGABRT: reason `abort`, not `rust-panic`);
//! - `uncaught`: a panic in an `extern "C"` function, which cannot unwind,
//!   so std aborts while the thread is still panicking (reason
//!   `rust-panic`).
//!
//! Prints `caught` after a caught panic and `crashing <mode>` (flushed)
//! just before the crash.

use std::io::Write;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("flush");
}

fn catch_one() {
    let caught = std::panic::catch_unwind(|| panic!("this panic is caught"));
    assert!(caught.is_err());
    say("caught");
}

extern "C" fn cannot_unwind() {
    panic!("this panic cannot unwind");
}

fn main() {
    if let Err(e) = coroner_runtime::install() {
        eprintln!("{e}");
    }
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "caught-then-null" => {
            catch_one();
            say("crashing caught-then-null");
            let p: *mut u8 = std::hint::black_box(std::ptr::null_mut());
            // SAFETY: none: this write is the crash under test (address 0 is
            // never mapped), and nothing after it runs.
            unsafe { p.write_volatile(1) };
        }
        "caught-then-abort" => {
            catch_one();
            say("crashing caught-then-abort");
            std::process::abort();
        }
        "uncaught" => {
            say("crashing uncaught");
            cannot_unwind();
        }
        other => {
            eprintln!("usage: panics caught-then-null|caught-then-abort|uncaught (got {other:?})");
            std::process::exit(2);
        }
    }
    std::process::exit(70);
}
