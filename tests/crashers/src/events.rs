//! Kinds that make debugger events happen and then exit cleanly:
//! `thread-once` (a thread starts and ends) and `spawn PROG [ARGS]` (a
//! child process runs a program). Loading a library at run time is the
//! separate `dlopener` program: the crasher links libstdc++, which already
//! brings in libm.

use std::ffi::c_int;
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
