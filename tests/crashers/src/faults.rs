//! Kinds where the CPU faults inside a `crash_*` function, which is then
//! frame 0. Each fault is one instruction of inline assembly, so neither
//! debug nor release builds can fold, reorder or "optimise away" it, and the
//! address is whatever the register holds, with no UB checks in the way.

use std::arch::asm;
use std::hint::black_box;
use std::ptr;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use coroner_crashers::{
    threads_crash_addr, SEGV_NONCANONICAL_ADDR, SEGV_WILD_ADDR, THREADS_CRASH_COUNT,
};

use crate::{announce, gettid, say};

/// Writes one byte at `addr` with a single `mov`.
///
/// # Safety
/// `addr` must not be memory any Rust code uses; the crasher only passes
/// addresses that fault (unmapped, read-only, non-canonical).
#[inline(always)]
unsafe fn poke(addr: u64) {
    // SAFETY: per this function's contract the store targets no Rust object;
    // it either faults (the point) or changes memory nobody reads.
    unsafe {
        asm!("mov byte ptr [{addr}], 0x43", addr = in(reg) addr, options(nostack));
    }
}

/// Writes address 0: SIGSEGV / SEGV_MAPERR, si_addr 0 (nothing can be mapped
/// below vm.mmap_min_addr).
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_segv_null() {
    // SAFETY: page 0 is never mapped, so this store only faults.
    unsafe { poke(black_box(0)) };
}

pub fn segv_null() {
    announce("segv-null", Some(0));
    crash_segv_null();
}

/// Writes SEGV_WILD_ADDR: canonical, unmapped: SEGV_MAPERR at that address.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_segv_wild() {
    // SAFETY: SEGV_WILD_ADDR is far from every region Linux places mappings
    // in for this process, so no Rust object lives there.
    unsafe { poke(black_box(SEGV_WILD_ADDR)) };
}

pub fn segv_wild() {
    announce("segv-wild", Some(SEGV_WILD_ADDR));
    crash_segv_wild();
}

/// Writes a non-canonical address: #GP, which Linux reports as SIGSEGV /
/// SI_KERNEL with si_addr 0.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_segv_noncanonical() {
    // SAFETY: a non-canonical address cannot be mapped; the store can only
    // fault.
    unsafe { poke(black_box(SEGV_NONCANONICAL_ADDR)) };
}

pub fn segv_noncanonical() {
    announce("segv-noncanonical", Some(0));
    crash_segv_noncanonical();
}

/// Writes into a read-only page: SEGV_ACCERR at `page`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_write_ro(page: *mut u8) {
    // SAFETY: `page` is the crasher's own PROT_READ mapping, which no Rust
    // reference points into; the store faults.
    unsafe { poke(page as u64) };
}

pub fn write_ro() {
    let page = map_page(-1, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    announce("write-ro", Some(page as u64));
    crash_write_ro(page);
}

/// Reads a shared mapping of an empty file: no page backs it, SIGBUS /
/// BUS_ADRERR at `page`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_sigbus(page: *const u8) -> u8 {
    let value: u8;
    // SAFETY: `page` is a PROT_READ mapping owned by the crasher; reading it
    // touches no Rust object (it raises SIGBUS since the file is empty).
    unsafe {
        asm!("mov {v}, byte ptr [{p}]", p = in(reg) page, v = out(reg_byte) value,
             options(nostack, readonly));
    }
    value
}

pub fn sigbus() {
    // SAFETY: the name is a NUL-terminated literal; memfd_create reports
    // failure through its return value, checked below.
    let fd = unsafe { libc::memfd_create(c"coroner-sigbus".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        die_setup("memfd_create");
    }
    // A memfd starts with size 0: the mapping has no page behind it.
    let page = map_page(fd, libc::PROT_READ, libc::MAP_SHARED);
    announce("sigbus", Some(page as u64));
    black_box(crash_sigbus(page));
}

/// `div` by a zero register: SIGFPE / FPE_INTDIV, si_addr = the `div`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_fpe_int_div(divisor: u32) -> u32 {
    let quotient: u32;
    // SAFETY: `div` only reads and writes the named registers; dividing by
    // zero raises #DE, which is the point.
    unsafe {
        asm!("div {d:e}", d = in(reg) divisor, inout("eax") 1u32 => quotient,
             inout("edx") 0u32 => _, options(nomem, nostack));
    }
    quotient
}

pub fn fpe_int_div() {
    announce("fpe-int-div", None);
    black_box(crash_fpe_int_div(black_box(0)));
}

/// `ud2`: SIGILL / ILL_ILLOPN, si_addr = the `ud2`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_sigill() {
    // SAFETY: `ud2` touches no memory or register; it raises #UD.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

pub fn sigill() {
    announce("sigill", None);
    crash_sigill();
}

/// Bytes each `crash_stack_overflow` frame fills.
const OVERFLOW_FRAME: usize = 1024;
/// The recursion is bounded by the stack rlimit; capping it keeps a shell
/// with `ulimit -s unlimited` from growing the stack over gigabytes.
const OVERFLOW_RLIMIT: libc::rlim_t = 8 << 20;

/// Recurses until the main thread's stack hits its rlimit; every frame
/// writes a buffer, so the stack really grows. The access below the limit
/// has no mapping: SIGSEGV / SEGV_MAPERR at an address nobody can predict.
#[no_mangle]
#[inline(never)]
#[allow(unconditional_recursion)] // The point of the function.
pub extern "C" fn crash_stack_overflow(depth: u64) -> u64 {
    let mut frame = [0u8; OVERFLOW_FRAME];
    for (i, byte) in frame.iter_mut().enumerate() {
        // SAFETY: `byte` is a valid, exclusive reference into `frame`.
        unsafe { ptr::write_volatile(byte, (depth as u8) ^ (i as u8)) };
    }
    let below = crash_stack_overflow(black_box(depth + 1));
    // Using the buffer after the call keeps it alive across it (no tail call).
    below ^ u64::from(black_box(&frame)[depth as usize % OVERFLOW_FRAME])
}

pub fn stack_overflow() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 {
        die_setup("getrlimit");
    }
    if limit.rlim_cur > OVERFLOW_RLIMIT {
        limit.rlim_cur = OVERFLOW_RLIMIT;
        // SAFETY: `limit` is a valid rlimit; lowering the soft limit is
        // always allowed and the stack is far below 8 MiB here.
        if unsafe { libc::setrlimit(libc::RLIMIT_STACK, &limit) } != 0 {
            die_setup("setrlimit");
        }
    }
    announce("stack-overflow", None);
    black_box(crash_stack_overflow(0));
}

/// Thread `index` of `threads-crash` writes `threads_crash_addr(index)`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_threads(index: usize) {
    // SAFETY: threads_crash_addr gives unmapped addresses (see the library),
    // so the store only faults.
    unsafe { poke(black_box(threads_crash_addr(index))) };
}

/// Eight threads meet at a barrier, then all fault at once; the first
/// SIGSEGV delivered kills the process.
pub fn threads_crash() {
    let barrier = Arc::new(Barrier::new(THREADS_CRASH_COUNT + 1));
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(THREADS_CRASH_COUNT);
    for index in 0..THREADS_CRASH_COUNT {
        let barrier = Arc::clone(&barrier);
        let tx = tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("crash-{index}"))
            .spawn(move || {
                let _ = tx.send((index, gettid()));
                drop(tx);
                barrier.wait();
                crash_threads(index);
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(_) => die_setup("spawning a thread"),
        }
    }
    drop(tx);
    let mut tids = [0u32; THREADS_CRASH_COUNT];
    for (index, tid) in rx {
        tids[index] = tid;
    }
    announce("threads-crash", None);
    let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
    say(&format!("threads {}", tids.join(" ")));
    barrier.wait();
    for handle in handles {
        let _ = handle.join();
    }
}

/// One page at a kernel-chosen address.
fn map_page(fd: libc::c_int, prot: libc::c_int, flags: libc::c_int) -> *mut u8 {
    // SAFETY: a fresh mapping at an address of the kernel's choice overlaps
    // nothing Rust owns; failure is checked below.
    let page = unsafe { libc::mmap(ptr::null_mut(), 4096, prot, flags, fd, 0) };
    if page == libc::MAP_FAILED {
        die_setup("mmap");
    }
    page.cast()
}

/// Exits with 71 when the set-up before a crash fails, so no test mistakes
/// it for the crash.
pub(crate) fn die_setup(what: &str) -> ! {
    eprintln!(
        "crasher: {what} failed: {}",
        std::io::Error::last_os_error()
    );
    std::process::exit(71)
}
