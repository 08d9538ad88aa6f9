//! Kinds where the crasher installs its own signal handler (the program's
//! handlers coroner must chain to, never replace): `recover` survives its
//! faults, `reraise` dies by re-raising, `sigusr1-loop` measures delivery.

use std::arch::asm;
use std::ffi::{c_int, c_void};
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::faults::die_setup;
use crate::{announce, say};

/// The instruction `crash_recover_fault` faults on: `mov byte ptr [rax], cl`.
const RECOVER_INSN: [u8; 2] = [0x88, 0x08];
/// How many faults `recover` takes and survives.
const RECOVER_FAULTS: u32 = 3;

static RECOVERED: AtomicU32 = AtomicU32::new(0);
static SIGUSR1_HITS: AtomicU64 = AtomicU64::new(0);

type Handler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);

/// Installs `handler` for `signal` with SA_SIGINFO.
fn install(signal: c_int, handler: Handler) {
    // SAFETY: sigaction is plain data; all-zero is a valid empty value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action` is initialised, the handler has the SA_SIGINFO
    // signature, and the old action is not requested.
    if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
        die_setup("sigaction");
    }
}

/// Writes address 0 with the two-byte `RECOVER_INSN`, so the handler can
/// step over it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_recover_fault() {
    // SAFETY: the store targets page 0, which is never mapped: it faults and
    // `recover_handler` resumes after it; no memory is written.
    unsafe {
        asm!("mov byte ptr [rax], cl", in("rax") black_box(0usize), in("cl") 0x43u8,
             options(nostack));
    }
}

/// Steps over a fault of `crash_recover_fault`; any other fault goes back to
/// the default action and re-faults.
extern "C" fn recover_handler(_signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: for an SA_SIGINFO handler the kernel passes a valid siginfo and
    // a valid, writable ucontext_t of the interrupted thread.
    let (addr, context) = unsafe { ((*info).si_addr(), &mut *context.cast::<libc::ucontext_t>()) };
    let rip = &mut context.uc_mcontext.gregs[libc::REG_RIP as usize];
    let pc = *rip as usize as *const [u8; 2];
    // SAFETY: the fault was raised by an instruction fetched from `pc`, so
    // at least its first bytes are mapped and readable code.
    let insn = unsafe { pc.read_unaligned() };
    if addr.is_null() && insn == RECOVER_INSN {
        *rip += RECOVER_INSN.len() as i64;
        RECOVERED.fetch_add(1, Ordering::Relaxed);
    } else {
        // SAFETY: resetting a disposition is async-signal-safe; returning
        // re-executes the faulting instruction, which now kills.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    }
}

/// Faults `RECOVER_FAULTS` times on address 0, recovering each time by
/// advancing RIP past the faulting instruction; prints `recovered N`.
pub fn recover() -> c_int {
    install(libc::SIGSEGV, recover_handler);
    announce("recover", Some(0));
    for _ in 0..RECOVER_FAULTS {
        crash_recover_fault();
    }
    let recovered = RECOVERED.load(Ordering::Relaxed);
    say(&format!("recovered {recovered}"));
    if recovered == RECOVER_FAULTS {
        0
    } else {
        1
    }
}

/// Resets SIGSEGV to the default action and re-raises it. SIGSEGV is blocked
/// while the handler runs, so the raised one stays pending until the handler
/// returns; then it kills the process with the registers of the fault.
extern "C" fn reraise_handler(signal: c_int, _info: *mut libc::siginfo_t, _context: *mut c_void) {
    const NOTE: &[u8] = b"crasher: reraise handler ran, re-raising with SIG_DFL\n";
    // SAFETY: write(2), signal(2) and raise(3) are async-signal-safe; NOTE
    // is a valid buffer of NOTE.len() bytes.
    unsafe {
        libc::write(libc::STDERR_FILENO, NOTE.as_ptr().cast(), NOTE.len());
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Writes address 0 under `reraise_handler`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_reraise() {
    // SAFETY: page 0 is never mapped: the store only faults.
    unsafe {
        asm!("mov byte ptr [{p}], 0x43", p = in(reg) black_box(0usize), options(nostack));
    }
}

pub fn reraise() {
    install(libc::SIGSEGV, reraise_handler);
    announce("reraise", None);
    crash_reraise();
}

extern "C" fn sigusr1_handler(_signal: c_int, _info: *mut libc::siginfo_t, _context: *mut c_void) {
    SIGUSR1_HITS.fetch_add(1, Ordering::Relaxed);
}

/// Raises SIGUSR1 `count` times under a counting handler; prints
/// `hits N ns_per_signal X`.
pub fn sigusr1_loop(count: u64) -> c_int {
    install(libc::SIGUSR1, sigusr1_handler);
    let start = Instant::now();
    for _ in 0..count {
        // SAFETY: raise(3) has no memory preconditions; the handler for
        // SIGUSR1 is installed, so it does not kill.
        unsafe { libc::raise(libc::SIGUSR1) };
    }
    let elapsed = start.elapsed().as_nanos();
    let hits = SIGUSR1_HITS.load(Ordering::Relaxed);
    let per = elapsed.checked_div(u128::from(count)).unwrap_or(0);
    say(&format!("hits {hits} ns_per_signal {per}"));
    if hits == count {
        0
    } else {
        1
    }
}
