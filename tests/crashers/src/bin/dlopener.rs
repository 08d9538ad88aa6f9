//! `dlopener LIB`: prints `ready <pid>`, then `dlopen(LIB, RTLD_NOW)`,
//! prints `loaded LIB` (or `dlopen failed`, exit 1), then `dlclose`s it and
//! prints `unloaded LIB` (exit 0; `dlclose failed`, exit 1). A plain Rust
//! program that links only libc and libgcc_s, so that loading libm is a
//! real run-time module load for the debugger's `ld` event, and closing
//! the only reference to it a real unload for `ud`.

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
    // SAFETY: `handle` came from the successful dlopen above and is closed
    // once; nothing of the library is used after this point.
    if unsafe { libc::dlclose(handle) } != 0 {
        say("dlclose failed");
        std::process::exit(1);
    }
    say(&format!("unloaded {lib}"));
}
