//! Kinds that make debugger events happen and then exit cleanly:
//! `thread-once` (a thread starts and ends), `dlopen LIB` (a library is
//! loaded at run time), `spawn PROG [ARGS]` (a child process runs a program).

use std::ffi::{c_int, CString};
use std::process::Command;
use std::thread;

use crate::say;

/// Starts one thread that prints `thread ran` and ends; joins it.
pub fn thread_once() -> c_int {
    let t = thread::Builder::new()
        .name("once".into())
        .spawn(|| say("thread ran"));
    match t.map(|t| t.join()) {
        Ok(Ok(())) => 0,
        _ => 1,
    }
}

/// `dlopen(lib, RTLD_NOW)`; prints `loaded LIB` or `dlopen failed`.
pub fn dlopen(lib: &str) -> c_int {
    let Ok(name) = CString::new(lib) else {
        return 2;
    };
    // SAFETY: `name` is a valid NUL-terminated string; dlopen runs the
    // library's initialisers, which for the system libraries the tests load
    // (libm) do nothing unsafe for us.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    if handle.is_null() {
        say("dlopen failed");
        return 1;
    }
    say(&format!("loaded {lib}"));
    0
}

/// Runs `prog args…` as a child (fork + exec), waits, exits with its code.
pub fn spawn(prog: &str, args: &[&str]) -> c_int {
    match Command::new(prog).args(args).status() {
        Ok(st) => {
            say(&format!("child exited {}", st.code().unwrap_or(-1)));
            st.code().unwrap_or(1)
        }
        Err(_) => {
            say("spawn failed");
            1
        }
    }
}
