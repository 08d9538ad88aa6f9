//! `crasher KIND [ARGS]`: dies (or waits, or survives a fault) in exactly
//! one way per argument, for the tests of every other coroner crate. The
//! contract (kinds, signals, lines printed) is the `coroner_crashers`
//! library; this binary only carries it out.
//!
//! `#![no_main]`: the C runtime calls our `main` directly, so Rust's runtime
//! setup does not run and installs no SIGSEGV/SIGBUS handler (std's stack
//! overflow reporter). Every signal keeps the kernel's default action unless
//! a kind installs a handler itself, as in a C program; that is what makes a
//! stack overflow a plain SIGSEGV here rather than std's message + SIGABRT.

#![no_main]

mod aborts;
mod events;
mod faults;
mod handlers;
mod live;

use std::ffi::{c_char, c_int};
use std::io::{self, Write};
use std::process;

const USAGE: &str = "usage: crasher KIND [ARGS]
crash kinds: segv-null segv-wild segv-noncanonical write-ro stack-overflow sigbus
             fpe-int-div sigill abort assert stack-chk rust-panic-abort
             cxx-terminate threads-crash reraise
others:      live [MIB] [THREADS] | sleep | recover | sigusr1-loop N | exit CODE
             thread-once | spawn PROG [ARGS]";

/// Entry point called by the C runtime (see the crate docs for why it is not
/// Rust's `fn main`). Arguments come from `std::env::args`, which glibc
/// hands to std before `main` runs.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(code) => {
            flush();
            code
        }
        Err(message) => {
            eprintln!("crasher: {message}\n{USAGE}");
            2
        }
    }
}

fn run(args: &[&str]) -> Result<c_int, String> {
    let (&kind, rest) = args.split_first().ok_or("no kind given")?;
    let no_args = |code: c_int| match rest {
        [] => Ok(code),
        _ => Err(format!("{kind} takes no arguments")),
    };
    match kind {
        "live" => {
            let mib = number(rest.first(), coroner_crashers::LIVE_DEFAULT_MIB, "MIB")?;
            let threads = number(
                rest.get(1),
                coroner_crashers::LIVE_DEFAULT_THREADS,
                "THREADS",
            )?;
            if mib == 0 || rest.len() > 2 {
                return Err("live takes [MIB >= 1] [THREADS]".into());
            }
            live::live(mib, threads);
            Ok(0)
        }
        "sleep" => {
            no_args(0)?;
            live::sleep();
            Ok(0)
        }
        "recover" => {
            no_args(0)?;
            Ok(handlers::recover())
        }
        "sigusr1-loop" => match rest {
            [n] => Ok(handlers::sigusr1_loop(parse(n, "N")?)),
            _ => Err("sigusr1-loop takes N".into()),
        },
        "thread-once" => {
            no_args(0)?;
            Ok(events::thread_once())
        }
        "spawn" => match rest {
            [prog, args @ ..] => Ok(events::spawn(prog, args)),
            _ => Err("spawn takes PROG [ARGS]".into()),
        },
        "exit" => match rest {
            [code] => Ok(parse(code, "CODE")?),
            _ => Err("exit takes CODE".into()),
        },
        _ => {
            if coroner_crashers::kind(kind).is_none() {
                return Err(format!("unknown kind {kind:?}"));
            }
            no_args(0)?;
            crash(kind);
            // Every crash function dies; getting here is a broken crasher.
            eprintln!("crasher: {kind} did not crash");
            Ok(70)
        }
    }
}

/// Dispatches a kind of `coroner_crashers::KINDS`; returns only if the crash
/// did not happen.
fn crash(kind: &str) {
    match kind {
        "segv-null" => faults::segv_null(),
        "segv-wild" => faults::segv_wild(),
        "segv-noncanonical" => faults::segv_noncanonical(),
        "write-ro" => faults::write_ro(),
        "stack-overflow" => faults::stack_overflow(),
        "sigbus" => faults::sigbus(),
        "fpe-int-div" => faults::fpe_int_div(),
        "sigill" => faults::sigill(),
        "threads-crash" => faults::threads_crash(),
        "abort" => aborts::abort(),
        "assert" => aborts::assert(),
        "stack-chk" => aborts::stack_chk(),
        "rust-panic-abort" => aborts::rust_panic_abort(),
        "cxx-terminate" => aborts::cxx_terminate(),
        "reraise" => handlers::reraise(),
        other => eprintln!("crasher: kind {other} is in the table but not here"),
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what} must be a number, not {text:?}"))
}

fn number(text: Option<&&str>, default: usize, what: &str) -> Result<usize, String> {
    text.map_or(Ok(default), |t| parse(t, what))
}

/// The calling thread's kernel id.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid(2) has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    tid as u32
}

/// Prints one line on stdout and flushes, so a test reading the pipe sees
/// it before anything else happens.
pub(crate) fn say(line: &str) {
    let mut out = io::stdout().lock();
    // A test that closed its end of the pipe still wants the crash.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn flush() {
    let _ = io::stdout().flush();
}

/// `crashing <kind> pid=<pid> tid=<tid> addr=<0xHEX or ->`.
pub(crate) fn announce(kind: &str, addr: Option<u64>) {
    let addr = addr.map_or_else(|| "-".to_string(), |a| format!("{a:#x}"));
    say(&format!(
        "crashing {kind} pid={} tid={} addr={addr}",
        process::id(),
        gettid()
    ));
}
