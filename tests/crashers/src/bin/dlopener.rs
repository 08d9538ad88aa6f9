//! `dlopener LIB`: prints `ready <pid>`, then `dlopen(LIB, RTLD_NOW)`,
//! prints `loaded LIB` (exit 0) or `dlopen failed` (exit 1). A plain Rust
//! program that links only libc and libgcc_s, so that loading libm is a
//! real run-time module load for the debugger's `ld` event.

use std::ffi::CString;
use std::io::Write;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let Some(lib) = std::env::args().nth(1) else {
        eprintln!("usage: dlopener LIB");
        std::process::exit(2);
    };
    let Ok(name) = CString::new(lib.clone()) else {
        std::process::exit(2);
    };
    say(&format!("ready {}", std::process::id()));
    // SAFETY: `name` is a valid NUL-terminated string; the libraries the
    // tests load (libm) have initialisers that need nothing from us.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        say("dlopen failed");
        std::process::exit(1);
    }
    say(&format!("loaded {lib}"));
}
