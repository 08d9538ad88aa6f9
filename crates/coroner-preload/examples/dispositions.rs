//! Test helper (built by `cargo test`, run under `LD_PRELOAD`): a program
//! with its own signal handling, printing what it observes, one
//! `key=value` per line:
//! - `own_handler_in_kernel`: after `sigaction(SIGSEGV, its handler)`, the
//!   kernel (raw `rt_sigaction`) holds exactly that handler;
//! - `query_returns_own`: `sigaction` queries return the program's handler;
//! - `faults N ns_per_fault X`: N SIGSEGVs recovered by its handler;
//! - `ignored_abort_query` / `abort_ignored`: SIG_IGN for SIGABRT is what a
//!   query returns, and a raised SIGABRT is ignored;
//! - `signal_returned_own`: `signal(SIGSEGV, SIG_DFL)` returns its handler;
//! - `thread_altstack`: the size of a new thread's alternate stack.
//!
//! Then it exits 0.

use std::sync::atomic::{AtomicUsize, Ordering};

static PAGE: AtomicUsize = AtomicUsize::new(0);
const PAGE_SIZE: usize = 4096;

extern "C" fn unprotect(_sig: i32, _info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    // SAFETY: PAGE is the page mapped in main; making it writable lets the
    // faulting write go through when the handler returns.
    unsafe {
        libc::mprotect(
            PAGE.load(Ordering::Relaxed) as *mut libc::c_void,
            PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
}

#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

fn kernel_handler(sig: i32) -> usize {
    let mut k = KernelSigaction::default();
    // SAFETY: query only, into a struct of the kernel's layout.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            std::ptr::null::<KernelSigaction>(),
            &mut k,
            8usize,
        )
    };
    k.handler
}

fn query(sig: i32) -> usize {
    // SAFETY: all-zero is a valid sigaction; query only.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: query only, into a live struct.
    unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    old.sa_sigaction
}

fn main() {
    let faults: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    // SAFETY: a fresh anonymous page.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE_SIZE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    PAGE.store(page as usize, Ordering::Relaxed);

    // SAFETY: all-zero is a valid sigaction.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = unprotect as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO;
    // SAFETY: installs a valid handler.
    let rc = unsafe { libc::sigaction(libc::SIGSEGV, &act, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    let own = act.sa_sigaction;
    println!(
        "own_handler_in_kernel={}",
        kernel_handler(libc::SIGSEGV) == own
    );
    println!("query_returns_own={}", query(libc::SIGSEGV) == own);

    let start = std::time::Instant::now();
    for i in 0..faults {
        // SAFETY: the page is ours; the write faults and the handler makes
        // it writable, then we protect it again.
        unsafe {
            std::ptr::write_volatile(page.cast::<u8>(), i as u8);
            libc::mprotect(page, PAGE_SIZE, libc::PROT_NONE);
        }
    }
    let ns = start.elapsed().as_nanos() / faults.max(1) as u128;
    println!("faults {faults} ns_per_fault {ns}");

    // SAFETY: plain SIG_IGN for SIGABRT.
    unsafe { libc::signal(libc::SIGABRT, libc::SIG_IGN) };
    println!(
        "ignored_abort_query={}",
        query(libc::SIGABRT) == libc::SIG_IGN
    );
    // SAFETY: raise on ourselves; ignored.
    unsafe { libc::raise(libc::SIGABRT) };
    println!("abort_ignored=true");

    // SAFETY: back to the default action; returns the previous handler.
    let prev = unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    println!("signal_returned_own={}", prev == own);
    println!(
        "query_after_dfl_is_dfl={}",
        query(libc::SIGSEGV) == libc::SIG_DFL
    );

    let size = std::thread::spawn(|| {
        // SAFETY: all-zero stack_t; query only.
        let mut st: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: query only.
        unsafe { libc::sigaltstack(std::ptr::null(), &mut st) };
        if st.ss_flags & libc::SS_DISABLE != 0 {
            0
        } else {
            st.ss_size
        }
    })
    .join()
    .unwrap();
    println!("thread_altstack={size}");
}
