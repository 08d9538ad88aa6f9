//! A plain Rust program (std's `main`, so std's own SIGSEGV handler is
//! installed) that writes through a null pointer. Under coroner's runtime
//! the write must still reach the postmortem step: std's handler resets the
//! signal to SIG_DFL and returns, the write faults again, and coroner stands
//! in for the default action.
//!
//! Prints `crashing stdcrash pid=<pid> tid=<pid> addr=0x0` first.

fn main() {
    println!(
        "crashing stdcrash pid={0} tid={0} addr=0x0",
        std::process::id()
    );
    use std::io::Write;
    std::io::stdout().flush().expect("flush");
    let p: *mut u8 = std::hint::black_box(std::ptr::null_mut());
    // SAFETY: none: this write is the crash under test (address 0 is never
    // mapped), and nothing after it runs.
    unsafe { p.write_volatile(0x43) };
    unreachable!("the null write returned");
}
