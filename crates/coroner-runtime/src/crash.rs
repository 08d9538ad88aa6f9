//! THE CRASH PATH. Everything in this module may run inside a fatal-signal
//! handler of a process whose heap, locks and libc state can be broken
//! (STYLE.md 7): it allocates nothing, takes no locks, uses no stdio, and
//! calls only raw syscalls or async-signal-safe libc wrappers (`open`,
//! `read`, `write`, `close`, `poll`, `prctl`, `execve`, `_exit`,
//! `syscall`). It reads only data that [`crate::install`] prepared before
//! the handlers went in ([`PLAN`], [`OUR_ACTION`]) and writes only the
//! statics declared here.
//!
//! The steps (DESIGN.md "Three ways a crash is caught", spec 13.1):
//! 1. a debugger already attached (`TracerPid`) had its first chance:
//!    nothing special happens;
//! 2. excluded executable or no debugger configured: step 5;
//! 3. `auto = 0`: ask on `/dev/tty` (no terminal = no);
//! 4. fill the JIT block, create the eventfd, spawn the debugger
//!    (`PR_SET_PTRACER` set before it execs), wait on {event, pidfd} with
//!    the timeout: signalled → return (the fault repeats under the
//!    debugger); exited or timed out (killed) → step 5;
//! 5. LocalDumps: spawn the dumper with the same pid/event/block, bounded;
//! 6. write the report line to `CORONER_RUN_FD`;
//! 7. restore `SIG_DFL` and let the signal happen again (return for a
//!    synchronous fault, `tgkill` otherwise), so the exit status and kernel
//!    core handling are what they would have been without coroner.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use coroner_config::plan::{CmdRef, PieceRef};
use coroner_types::jit::{LinuxJitDebugInfo, JIT_DEBUG_INFO_SIZE, JIT_DEBUG_INFO_VERSION};
use libc::{c_char, c_int, c_void, siginfo_t, ucontext_t};

/// Interior-mutable static storage for the crash path. Only the thread that
/// owns [`OWNER`] touches the contents, so there is never a second accessor.
pub(crate) struct CrashCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose callers hold the crash
// ownership word (`OWNER`), which admits one thread at a time.
unsafe impl<T> Sync for CrashCell<T> {}

impl<T> CrashCell<T> {
    const fn new(v: T) -> Self {
        CrashCell(UnsafeCell::new(v))
    }
    fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// The signals coroner stands in for the default action of.
pub const CRASH_SIGNALS: [c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Index of `sig` in [`CRASH_SIGNALS`].
pub(crate) fn slot_of(sig: c_int) -> Option<usize> {
    CRASH_SIGNALS.iter().position(|&s| s == sig)
}

/// What the program asked for, per slot of [`CRASH_SIGNALS`]:
/// our handler stands in for the default action.
pub(crate) const WISH_DFL: u8 = 0;
/// Our handler is installed and ignores asynchronous deliveries.
pub(crate) const WISH_IGN: u8 = 1;
/// The program's handler ([`PROGRAM_HANDLER`]) is what should run. If ours
/// is in the kernel (a handler found at install time, or a race with the
/// interposer), ours calls it first.
pub(crate) const WISH_HANDLER: u8 = 2;
/// `install` is putting our handler in and has not yet published what the
/// kernel held before (one `rt_sigaction` swaps the two): a delivery now
/// waits the few instructions until it has.
pub(crate) const WISH_PENDING: u8 = 3;

#[allow(clippy::declare_interior_mutable_const)]
const WISH_INIT: AtomicU8 = AtomicU8::new(WISH_DFL);
#[allow(clippy::declare_interior_mutable_const)]
const USIZE_INIT: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const I32_INIT: AtomicI32 = AtomicI32::new(0);

// The statics `install` writes are in `.data`, not `.bss` (here and in
// `dispositions`): the library's `.data` page is written by its
// relocations anyway, where each `.bss` page is one more page fault at
// every process start (docs/benchmarks.md).

/// The program's wish per slot (`WISH_*`).
#[link_section = ".data.coroner_start"]
pub(crate) static WISH: [AtomicU8; 7] = [WISH_INIT; 7];
/// The program's handler function per slot, when `WISH` is `WISH_HANDLER`.
#[link_section = ".data.coroner_start"]
pub(crate) static PROGRAM_HANDLER: [AtomicUsize; 7] = [USIZE_INIT; 7];
/// The program handler's `sa_flags` (for `SA_SIGINFO`).
#[link_section = ".data.coroner_start"]
pub(crate) static PROGRAM_FLAGS: [AtomicI32; 7] = [I32_INIT; 7];

/// The kernel's `struct sigaction` for raw `rt_sigaction` (x86-64 and
/// i386: `unsigned long` flags, a 64-bit mask).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KernelSigaction {
    pub handler: usize,
    pub flags: libc::c_ulong,
    pub restorer: usize,
    pub mask: u64,
}

/// ELF `e_machine` of this build, for the JIT block.
#[cfg(target_arch = "x86_64")]
const MACHINE: u32 = coroner_types::jit::EM_X86_64;
#[cfg(target_arch = "x86")]
const MACHINE: u32 = coroner_types::jit::EM_386;

/// Hex digits of `%p`: the pointer width of this process.
const POINTER_DIGITS: usize = 2 * core::mem::size_of::<usize>();

/// Our handler as the kernel holds it (with libc's `sa_restorer`), read
/// back after the first installation so the crash path can re-install it
/// with a raw syscall.
#[link_section = ".data.coroner_start"]
pub(crate) static OUR_ACTION: CrashCell<KernelSigaction> = CrashCell::new(KernelSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
});

/// Records our handler as the kernel holds it (install, once, under the
/// dispositions lock, before any chained handler can need it). The mask and
/// the `SA_NODEFER`/`SA_RESTART` bits a program handler lent it are
/// dropped: re-installed from the crash path, ours stands in for `SIG_DFL`.
pub(crate) fn set_our_action(mut k: KernelSigaction) {
    k.mask = 0;
    k.flags &= !((libc::SA_NODEFER | libc::SA_RESTART) as u32 as libc::c_ulong);
    // SAFETY: written only here, by install (serialised by its lock), before
    // `ACTIVE` is published; the crash path only reads it.
    unsafe { *OUR_ACTION.get() = k };
}

/// What the pieces of a command expand to for one crash.
pub(crate) struct Expansion<'a> {
    pub pid: i32,
    pub event: c_int,
    pub block: u64,
    pub outcome: &'a str,
    pub reason: &'a str,
    pub note: &'a [u8],
}

/// Where the spawned child looks for the program of a [`Cmd`], whose name
/// is its first word. The search happens in the child, at crash time, with
/// `execve` on each candidate in turn: a `PATH` walk at start-up would
/// cost every process a `stat` per directory for a program it will almost
/// never run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    /// The first word as it stands.
    AsIs,
    /// The name in each absolute directory of `path` (a `PATH` value), in
    /// order, as `execvp` searches; relative entries are skipped.
    Search { path: &'static [u8] },
    /// The name in the directory of the file `object`, then, when `object`
    /// is a symbolic link, in the directory of what it links to.
    Beside { object: &'static [u8] },
    /// The name in the installation `object` (this library) belongs to,
    /// from the directory of `object` and then of what it links to: that
    /// directory itself, `../../bin` and `../../../bin` (the library as
    /// `PREFIX/lib32/coroner/` or `PREFIX/lib/<triple>/coroner/`, the
    /// program in `PREFIX/bin`), and `../../<same name>` (the i686 build in
    /// `target/i686-unknown-linux-gnu/<profile>/`, the program in
    /// `target/<profile>/`). The layouts `coroner run` and `coroner
    /// install` look for the library in, seen from the library.
    Installed { object: &'static [u8] },
}

/// Most candidates a [`Cmd`] has (the default dumper's three).
pub(crate) const MAX_PROGRAMS: usize = 3;

/// A precomputed command line: words of pieces (in the plan's encoding,
/// `coroner_config::plan`), and where to find the program (tried in
/// order; none means the first word as it stands). Plain data over bytes
/// that live as long as the process, small enough to be copied without a
/// `memcpy` call (see `crate::bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cmd {
    pub words: CmdRef<'static>,
    programs: [Program; MAX_PROGRAMS],
    nprograms: usize,
}

impl Cmd {
    /// `words` with the first `n` of `programs`.
    pub(crate) fn new(words: CmdRef<'static>, programs: [Program; MAX_PROGRAMS], n: usize) -> Cmd {
        Cmd {
            words,
            programs,
            nprograms: n.min(MAX_PROGRAMS),
        }
    }

    pub(crate) fn programs(&self) -> &[Program] {
        &self.programs[..self.nprograms]
    }
}

/// Everything the crash path needs, computed by `install` and never
/// changed afterwards (read through [`PLAN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Executable basename, for the terminal question (empty when no
    /// setting needed it).
    pub exe_name: &'static [u8],
    /// The AeDebug debugger; `None` when not configured.
    pub debugger: Option<Cmd>,
    pub auto: bool,
    pub excluded: bool,
    /// Bound on waiting for the debugger, milliseconds.
    pub debugger_timeout_ms: i64,
    /// The LocalDumps dumper command; `None` when LocalDumps does not apply.
    pub dumper: Option<Cmd>,
    pub dump_timeout_ms: i64,
    /// `CORONER_RUN_FD`, or -1.
    pub report_fd: c_int,
}

/// The plan in force; null until `install` has published it.
#[link_section = ".data.coroner_start"]
pub(crate) static PLAN: AtomicPtr<Plan> = AtomicPtr::new(ptr::null_mut());

/// Where the published plan lives.
static PLAN_SLOT: CrashCell<Plan> = CrashCell::new(crate::plan::empty_plan(-1));

/// Publishes `plan` for the crash path. `install` calls it once, under its
/// lock (a published plan's bytes may be in use by a crash on another
/// thread, so it is never replaced).
pub(crate) fn publish_plan(plan: &Plan) {
    let slot = PLAN_SLOT.get();
    // SAFETY: install calls this once, under its lock, before any pointer
    // to the slot is published, so nobody reads the slot yet. Field by
    // field: a whole-Plan copy would be a call to libc's memcpy, one more
    // page fault at start-up (see `crate::bytes`).
    unsafe {
        (*slot).exe_name = plan.exe_name;
        (*slot).debugger = plan.debugger;
        (*slot).auto = plan.auto;
        (*slot).excluded = plan.excluded;
        (*slot).debugger_timeout_ms = plan.debugger_timeout_ms;
        (*slot).dumper = plan.dumper;
        (*slot).dump_timeout_ms = plan.dump_timeout_ms;
        (*slot).report_fd = plan.report_fd;
    }
    PLAN.store(slot, Ordering::Release);
}

/// Why the process is crashing, as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// A hardware fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS).
    Fault = 1,
    /// SIGABRT: `abort`, failed `assert`, `std::terminate`.
    Abort = 2,
    /// `fail_fast`.
    FailFast = 3,
    /// SIGTRAP: `debug_break` or a breakpoint instruction.
    DebugBreak = 4,
    /// SIGABRT from a Rust panic that was not caught (the runtime's panic
    /// hook ran and the thread is still panicking when it aborts).
    RustPanic = 5,
}

impl Reason {
    /// The word in the report line.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Fault => "fault",
            Reason::Abort => "abort",
            Reason::FailFast => "fail-fast",
            Reason::DebugBreak => "debug-break",
            Reason::RustPanic => "rust-panic",
        }
    }
}

/// Set by `fail_fast` and `debug_break` just before the signal they lead
/// to; 0 = none.
pub(crate) static REASON_HINT: AtomicU8 = AtomicU8::new(0);

/// Set by the runtime's panic hook: some thread of this process panicked
/// (whether or not the panic was caught later). See [`reason_of`].
pub(crate) static PANIC_HOOK_RAN: AtomicBool = AtomicBool::new(false);

/// Longest FailFast message passed on to the dumper, bytes.
pub(crate) const NOTE_MAX: usize = 512;
/// The FailFast message, copied by `set_note` before the signal is raised
/// (no allocation: the program's heap may be what failed).
static NOTE: CrashCell<[u8; NOTE_MAX]> = CrashCell::new([0; NOTE_MAX]);
/// The thread whose message [`NOTE`] holds (0: none); the first caller
/// claims it, so the buffer is written once.
static NOTE_TID: AtomicI32 = AtomicI32::new(0);
static NOTE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Keeps `message` (up to [`NOTE_MAX`] bytes, up to a NUL) for the crash
/// this thread is about to raise. Normal context, but allocation-free.
pub(crate) fn set_note(message: &[u8]) {
    let me = gettid();
    if NOTE_TID
        .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let n = message
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(message.len())
        .min(NOTE_MAX);
    // SAFETY: NOTE_TID admits one thread, once, to write the buffer; the
    // crash path reads it only on that thread (after this returns and the
    // thread raised its signal), through `note_of`.
    unsafe { (&mut *NOTE.get())[..n].copy_from_slice(&message[..n]) };
    NOTE_LEN.store(n, Ordering::Release);
}

/// The message `set_note` kept for thread `tid`, or nothing.
fn note_of(tid: i32) -> &'static [u8] {
    if NOTE_TID.load(Ordering::Acquire) != tid {
        return &[];
    }
    let n = NOTE_LEN.load(Ordering::Acquire);
    // SAFETY: written once by this very thread before it raised the
    // signal being handled; never written again.
    unsafe { &(&*NOTE.get())[..n] }
}

/// Crash ownership: 0 free, a tid = that thread is handling a crash (or
/// `launch_debugger`), [`DONE`] = a crash was handled; the process is on
/// its way out (or continues under a debugger).
static OWNER: AtomicI32 = AtomicI32::new(0);
const DONE: i32 = -1;

/// The JIT block whose address is `%p`.
static BLOCK: CrashCell<LinuxJitDebugInfo> = CrashCell::new(LinuxJitDebugInfo {
    size: 0,
    machine: 0,
    tid: 0,
    version: 0,
    exception_address: 0,
    siginfo: 0,
    ucontext: 0,
});

const ARENA_SIZE: usize = 16 * 1024;
const MAX_WORDS: usize = 255;
/// Expanded argv strings and the pointer array for `execve`.
static ARENA: CrashCell<[u8; ARENA_SIZE]> = CrashCell::new([0; ARENA_SIZE]);
static ARGV: CrashCell<[*const c_char; MAX_WORDS + 1]> =
    CrashCell::new([ptr::null(); MAX_WORDS + 1]);

extern "C" {
    /// The process environment (libc's).
    pub(crate) static environ: *const *const c_char;
}

// ---------------------------------------------------------------------
// Small async-signal-safe helpers.
// ---------------------------------------------------------------------

fn gettid() -> i32 {
    // SAFETY: gettid(2) takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn getpid() -> i32 {
    // SAFETY: getpid(2) takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

fn close(fd: c_int) {
    if fd >= 0 {
        // SAFETY: the callers pass descriptors this module opened and no
        // longer uses.
        unsafe { libc::close(fd) };
    }
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes.
pub(crate) fn write_all(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write(2) reads at most its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// A fixed buffer that formats text without allocating; text past the end
/// is dropped.
pub(crate) struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Line<N> {
    pub(crate) const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub(crate) fn dec(&mut self, v: i64) -> &mut Self {
        let mut tmp = [0u8; 24];
        let n = fmt_dec(v, &mut tmp);
        self.bytes(&tmp[..n])
    }
    pub(crate) fn hex(&mut self, v: u64, min_digits: usize) -> &mut Self {
        let mut tmp = [0u8; 16];
        let n = fmt_hex(v, min_digits, &mut tmp);
        self.bytes(&tmp[..n])
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Decimal digits of `v` at the start of `out`; returns the length.
pub(crate) fn fmt_dec(v: i64, out: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut u = v.unsigned_abs();
    loop {
        digits[n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let mut len = 0;
    if v < 0 {
        out[0] = b'-';
        len = 1;
    }
    for i in (0..n).rev() {
        out[len] = digits[i];
        len += 1;
    }
    len
}

/// Lower-case hex of `v`, at least `min_digits` digits (at most 16).
pub(crate) fn fmt_hex(v: u64, min_digits: usize, out: &mut [u8; 16]) -> usize {
    let mut digits = 1;
    while digits < 16 && (v >> (4 * digits)) != 0 {
        digits += 1;
    }
    let digits = digits.max(min_digits.min(16));
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        let nib = ((v >> (4 * (digits - 1 - i))) & 0xf) as u8;
        *slot = if nib < 10 {
            b'0' + nib
        } else {
            b'a' + nib - 10
        };
    }
    digits
}

/// Raw `rt_sigaction`; `act`/`old` may be null.
pub(crate) unsafe fn raw_sigaction(
    sig: c_int,
    act: *const KernelSigaction,
    old: *mut KernelSigaction,
) -> c_int {
    // SAFETY: the caller passes null or valid pointers to the kernel's
    // struct layout; sigsetsize 8 is the kernel's sigset_t on x86-64.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, act, old, 8usize) as c_int }
}

/// Puts the kernel default action back for `sig`.
pub(crate) fn set_default(sig: c_int) {
    let dfl = KernelSigaction::default(); // handler 0 = SIG_DFL
                                          // SAFETY: `dfl` is a valid kernel sigaction on this stack frame.
    unsafe { raw_sigaction(sig, &dfl, ptr::null_mut()) };
}

/// Re-installs our handler for `sig` with a raw syscall.
pub(crate) fn reinstall_ours(sig: c_int) {
    // SAFETY: OUR_ACTION was written once by install() before any handler
    // of ours could run and is read-only from then on.
    let ours = unsafe { *OUR_ACTION.get() };
    if ours.handler != 0 {
        // SAFETY: `ours` is a valid kernel sigaction on this stack frame.
        unsafe { raw_sigaction(sig, &ours, ptr::null_mut()) };
    }
}

/// FailFast: our handler for `sig`, whatever the program installed, and
/// treated as the default action (the program's handler is skipped).
pub(crate) fn force_ours(sig: c_int) {
    if let Some(slot) = slot_of(sig) {
        WISH[slot].store(WISH_DFL, Ordering::Release);
    }
    reinstall_ours(sig);
}

fn tgkill_self(sig: c_int) {
    // SAFETY: tgkill(2) on our own pid/tid with a valid signal number.
    unsafe { libc::syscall(libc::SYS_tgkill, getpid(), gettid(), sig) };
}

// The casts widen a 32-bit time_t (i386), whose seconds times 1000
// overflow after 24 days of uptime; they are no-ops on 64-bit targets.
#[allow(clippy::unnecessary_cast)]
fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec on this stack frame.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i64 * 1000 + ts.tv_nsec as i64 / 1_000_000
}

fn futex_wait(word: &AtomicI32, expected: i32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAIT only
    // reads it and sleeps while it equals `expected`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake_all(word: &AtomicI32) {
    // SAFETY: as in futex_wait; FUTEX_WAKE touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

// ---------------------------------------------------------------------
// Ownership of the crash machinery.
// ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Acquired {
    /// This thread handles it.
    Owner,
    /// This thread already owns it: a crash inside the handler.
    Reentered,
    /// Another crash was handled already.
    Done,
}

/// Takes crash ownership, waiting (futex) while another thread holds it.
pub(crate) fn acquire(me: i32) -> Acquired {
    loop {
        let cur = OWNER.load(Ordering::Acquire);
        if cur == 0 {
            if OWNER
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Acquired::Owner;
            }
        } else if cur == me {
            return Acquired::Reentered;
        } else if cur == DONE {
            return Acquired::Done;
        } else {
            futex_wait(&OWNER, cur);
        }
    }
}

/// Gives ownership up: `done` marks the process as crashed for good.
pub(crate) fn release(done: bool) {
    OWNER.store(if done { DONE } else { 0 }, Ordering::Release);
    futex_wake_all(&OWNER);
}

// ---------------------------------------------------------------------
// The handler.
// ---------------------------------------------------------------------

/// A fault that repeats by itself when the handler returns (the PC is at
/// the faulting instruction); everything else must be re-raised.
fn repeats_on_return(sig: c_int, code: c_int) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) && code > 0
}

/// The `SA_SIGINFO` handler for every signal of [`CRASH_SIGNALS`] whose
/// program wish is the default action or ignore (and, at install time,
/// signals that already had a foreign handler, which it chains to).
pub(crate) unsafe extern "C" fn on_signal(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    let Some(slot) = slot_of(sig) else { return };
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    let mut spins = 0u32;
    while WISH[slot].load(Ordering::Acquire) == WISH_PENDING {
        // `install` is between its swap and its publish, with every signal
        // blocked on its own thread: a few instructions.
        spins += 1;
        if spins.is_multiple_of(64) {
            // SAFETY: sched_yield(2) takes no arguments.
            unsafe { libc::sched_yield() };
        } else {
            core::hint::spin_loop();
        }
    }
    match WISH[slot].load(Ordering::Acquire) {
        WISH_IGN if code <= 0 => return,
        // SAFETY: `info` and `uc` are the kernel's, valid for this call.
        WISH_HANDLER if unsafe { chain_to_program(slot, sig, info, uc) } => return,
        _ => {}
    }
    // SAFETY: `info` and `uc` come from the kernel and live until we return.
    unsafe { crash(sig, info, uc.cast()) }
}

/// Runs the program's own handler for `slot` (ours was in the kernel in
/// front of it). Returns false if there is none after all.
///
/// `SA_RESETHAND` (also what `sysv_signal` sets) is emulated here: the
/// kernel holds ours without it (see `dispositions`), and the delivery that
/// runs a one-shot handler first makes the program's disposition `SIG_DFL`,
/// as the kernel would have, so the next one reaches the crash path. The
/// handler word is swapped, not read, so of two threads faulting at once
/// only one runs the one-shot handler; the other gets the default action,
/// as it would from the kernel.
unsafe fn chain_to_program(slot: usize, sig: c_int, info: *mut siginfo_t, uc: *mut c_void) -> bool {
    let flags = PROGRAM_FLAGS[slot].load(Ordering::Acquire);
    let h = if flags & libc::SA_RESETHAND != 0 {
        let h = PROGRAM_HANDLER[slot].swap(libc::SIG_DFL, Ordering::AcqRel);
        WISH[slot].store(WISH_DFL, Ordering::Release);
        h
    } else {
        PROGRAM_HANDLER[slot].load(Ordering::Acquire)
    };
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return false;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: `h` is the sa_sigaction the program registered with
        // SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, uc);
    } else {
        // SAFETY: `h` is the sa_handler the program registered without
        // SA_SIGINFO, so it takes only the signal number.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
    // A handler that changed the disposition behind our back (it called
    // libc's sigaction directly, e.g. std's, linked before install): take
    // its new wish, and stand in for SIG_DFL/SIG_IGN again.
    let mut now = KernelSigaction::default();
    // SAFETY: querying only; `now` is a valid out-pointer.
    unsafe { raw_sigaction(sig, ptr::null(), &mut now) };
    if now.handler == libc::SIG_DFL || now.handler == libc::SIG_IGN {
        let wish = if now.handler == libc::SIG_DFL {
            WISH_DFL
        } else {
            WISH_IGN
        };
        WISH[slot].store(wish, Ordering::Release);
        reinstall_ours(sig);
    }
    true
}

/// What the debugger step came to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Debugger {
    None,
    Excluded,
    Declined,
    Traced,
    Launched,
    /// The command could not be spawned (clone failed, argv too long).
    Failed,
}

impl Debugger {
    fn as_str(self) -> &'static str {
        match self {
            Debugger::None => "none",
            Debugger::Excluded => "excluded",
            Debugger::Declined => "declined",
            Debugger::Traced => "traced",
            Debugger::Launched => "launched",
            Debugger::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Event {
    NotWaited,
    Signalled,
    Exited,
    Timeout,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::NotWaited => "-",
            Event::Signalled => "signalled",
            Event::Exited => "exited",
            Event::Timeout => "timeout",
        }
    }
}

/// Whether a SIGABRT on this thread comes from a Rust panic: the hook ran
/// and this thread is still panicking (a panic under `panic = abort`, one
/// that hit a frame that cannot unwind, or a panic while panicking). A panic
/// that `catch_unwind` caught has ended (std counts it down when it is
/// caught), so a later `abort()` is an `abort`, not a `rust-panic`.
///
/// `std::thread::panicking` reads an atomic and, only while some thread is
/// panicking, a constant-initialised thread-local without destructor: no
/// lock, no allocation. It is the panic count of the std that runs our hook
/// (the program's own when it links this crate; libcoroner.so's copy, which
/// never sees the program's panics, when preloaded).
fn panicking_now() -> bool {
    PANIC_HOOK_RAN.load(Ordering::Acquire) && std::thread::panicking()
}

fn reason_of(sig: c_int) -> Reason {
    let hint = REASON_HINT.load(Ordering::Acquire);
    match sig {
        libc::SIGABRT if hint == Reason::FailFast as u8 => Reason::FailFast,
        libc::SIGABRT if panicking_now() => Reason::RustPanic,
        libc::SIGABRT => Reason::Abort,
        libc::SIGTRAP => Reason::DebugBreak,
        _ => Reason::Fault,
    }
}

fn pc_of(uc: *const ucontext_t) -> u64 {
    if uc.is_null() {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    const PC: usize = libc::REG_RIP as usize;
    #[cfg(target_arch = "x86")]
    const PC: usize = libc::REG_EIP as usize;
    // SAFETY: `uc` is the kernel's (or getcontext's) ucontext, readable.
    // The register is read as the unsigned word it is.
    unsafe { (*uc).uc_mcontext.gregs[PC] as usize as u64 }
}

/// The whole crash path for a fatal `sig` (see the module docs).
unsafe fn crash(sig: c_int, info: *mut siginfo_t, uc: *mut ucontext_t) {
    let me = gettid();
    if acquire(me) != Acquired::Owner {
        // Re-entered (a crash in the handler) or another thread's crash was
        // handled already: straight to the default action.
        // SAFETY: `uc` is the kernel's, live until we return.
        unsafe { finish(sig, info, uc) };
        return;
    }
    // SAFETY: the kernel's siginfo for this delivery.
    let code = unsafe { (*info).si_code };
    let addr = if repeats_on_return(sig, code) {
        // SAFETY: a fault siginfo carries si_addr.
        unsafe { (*info).si_addr() as u64 }
    } else {
        pc_of(uc)
    };
    let reason = reason_of(sig);
    let plan_ptr = PLAN.load(Ordering::Acquire);
    let mut debugger = Debugger::None;
    let mut event = Event::NotWaited;
    let mut dump = "none";
    if tracer_pid() != 0 {
        debugger = Debugger::Traced;
    } else if !plan_ptr.is_null() {
        // SAFETY: PLAN points to PLAN_SLOT, written once before it was
        // published and never changed after; its bytes live as long as the
        // process.
        let plan = unsafe { &*plan_ptr };
        // SAFETY: we own the crash machinery (acquire above), so BLOCK is
        // ours to fill; info/uc stay valid while the handler runs.
        let block = unsafe { fill_block(me, info.cast(), uc) };
        let dumpable = prepare_dumpable();
        let evfd = make_event();
        let mut x = Expansion {
            pid: getpid(),
            event: evfd,
            block,
            outcome: "none",
            reason: reason.as_str(),
            note: note_of(me),
        };
        (debugger, event) = debugger_step(plan, sig, addr, &x);
        if event != Event::Signalled {
            if let Some(dumper) = &plan.dumper {
                x.outcome = jit_outcome(debugger, event);
                dump = if cfg!(target_pointer_width = "32") {
                    // `coroner dump -j` refuses a 32-bit block: say so
                    // once, here, instead of running it.
                    write_all(2, NO_DUMP_32.as_bytes());
                    "failed"
                } else {
                    // SAFETY: as for the debugger: argv statics are ours.
                    match unsafe { spawn(dumper, &x) } {
                        Some(child) => match wait_child(&child, -1, plan.dump_timeout_ms) {
                            (Event::Exited, 0) => "written",
                            _ => "failed",
                        },
                        None => "failed",
                    }
                };
            }
        }
        close(evfd);
        restore_dumpable(dumpable);
    }
    if !plan_ptr.is_null() {
        // SAFETY: as above.
        let fd = unsafe { (*plan_ptr).report_fd };
        if fd >= 0 {
            let mut line = Line::<320>::new();
            line.str("coroner-report v1 pid=")
                .dec(getpid() as i64)
                .str(" tid=")
                .dec(me as i64)
                .str(" signal=")
                .dec(sig as i64)
                .str(" code=")
                .dec(code as i64)
                .str(" addr=0x")
                .hex(addr, 1)
                .str(" reason=")
                .str(reason.as_str())
                .str(" debugger=")
                .str(debugger.as_str())
                .str(" event=")
                .str(event.as_str())
                .str(" dump=")
                .str(dump)
                .str("\n");
            write_all(fd, line.as_bytes());
        }
    }
    release(true);
    // SAFETY: `uc` is the kernel's, live until we return.
    unsafe { finish(sig, info, uc) };
}

/// What a 32-bit process with LocalDumps configured says instead of a
/// dump (the report line then says `dump=failed`).
pub(crate) const NO_DUMP_32: &str =
    "coroner: no LocalDumps dump: this is a 32-bit process, and coroner dump writes dumps of x86-64 processes only\n";

/// Step 7: default action back, and the signal again.
unsafe fn finish(sig: c_int, info: *const siginfo_t, uc: *mut ucontext_t) {
    set_default(sig);
    // SAFETY: the kernel's siginfo for this delivery.
    let code = unsafe { (*info).si_code };
    if repeats_on_return(sig, code) {
        return;
    }
    if !uc.is_null() {
        // The mask restored by sigreturn must let the re-raised signal in
        // (abort()/raise() with the signal blocked, or our own handler's
        // mask).
        // SAFETY: `uc` is the kernel's writable ucontext of this delivery.
        unsafe { libc::sigdelset(&mut (*uc).uc_sigmask, sig) };
    }
    tgkill_self(sig);
}

/// What the LocalDumps dumper is told the debugger step came to: the
/// spelling of `coroner_store::JitOutcome` (the dumper files it in the
/// report store). It runs only when no debugger took the crash over
/// (`traced` and `signalled` never get here).
fn jit_outcome(debugger: Debugger, event: Event) -> &'static str {
    match (debugger, event) {
        (Debugger::Launched, Event::Timeout) => "timed-out",
        (Debugger::Launched, _) => "launched",
        (Debugger::Excluded, _) => "excluded",
        (Debugger::Declined, _) => "declined",
        (Debugger::Failed, _) => "failed",
        (Debugger::None | Debugger::Traced, _) => "none",
    }
}

/// The debugger step (1–4 of the module docs, except the traced check).
fn debugger_step(plan: &Plan, sig: c_int, addr: u64, x: &Expansion<'_>) -> (Debugger, Event) {
    let Some(cmd) = &plan.debugger else {
        return (Debugger::None, Event::NotWaited);
    };
    if plan.excluded {
        return (Debugger::Excluded, Event::NotWaited);
    }
    if !plan.auto && !ask(plan, sig, addr) {
        return (Debugger::Declined, Event::NotWaited);
    }
    if x.event < 0 {
        return (Debugger::Failed, Event::NotWaited);
    }
    // SAFETY: the caller owns the crash machinery, so the argv statics are
    // ours.
    match unsafe { spawn(cmd, x) } {
        None => (Debugger::Failed, Event::NotWaited),
        Some(child) => (
            Debugger::Launched,
            wait_child(&child, x.event, plan.debugger_timeout_ms).0,
        ),
    }
}

/// Fills [`BLOCK`]; returns its address.
unsafe fn fill_block(tid: i32, info: *const c_void, uc: *const ucontext_t) -> u64 {
    let block = BLOCK.get();
    // SAFETY: the caller owns the crash machinery; nobody else touches
    // BLOCK while it does.
    unsafe {
        *block = LinuxJitDebugInfo {
            size: JIT_DEBUG_INFO_SIZE as u32,
            machine: MACHINE,
            tid: tid as u32,
            version: JIT_DEBUG_INFO_VERSION,
            exception_address: pc_of(uc),
            siginfo: info as u64,
            ucontext: uc as u64,
        };
    }
    block as u64
}

/// `PR_SET_DUMPABLE 1` if it was 0 (ptrace needs it); returns the old value.
fn prepare_dumpable() -> c_int {
    // SAFETY: prctl(PR_GET_DUMPABLE) takes no pointers.
    let was = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    if was == 0 {
        // SAFETY: prctl(PR_SET_DUMPABLE, 1) takes no pointers.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
    was
}

fn restore_dumpable(was: c_int) {
    if was == 0 {
        // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes no pointers.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    // SAFETY: PR_SET_PTRACER 0 clears the exception; no pointers.
    unsafe { libc::prctl(libc::PR_SET_PTRACER, 0, 0, 0, 0) };
}

/// An eventfd the children inherit (not close-on-exec); -1 on failure.
fn make_event() -> c_int {
    // SAFETY: eventfd(2) takes no pointers.
    unsafe { libc::eventfd(0, 0) }
}

/// `TracerPid` from `/proc/self/status`, 0 if none or unreadable.
pub(crate) fn tracer_pid() -> i64 {
    let mut buf = [0u8; 2048];
    // SAFETY: a NUL-terminated literal path; O_CLOEXEC so no child keeps it.
    let fd = unsafe {
        libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    close(fd);
    parse_tracer_pid(&buf[..len])
}

pub(crate) fn parse_tracer_pid(status: &[u8]) -> i64 {
    const KEY: &[u8] = b"\nTracerPid:";
    let Some(at) = status.windows(KEY.len()).position(|w| w == KEY) else {
        return 0;
    };
    let mut v: i64 = 0;
    for &b in status[at + KEY.len()..]
        .iter()
        .skip_while(|b| **b == b'\t' || **b == b' ')
    {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    v
}

/// `auto = 0`: asks on the controlling terminal; no terminal means no.
fn ask(plan: &Plan, sig: c_int, addr: u64) -> bool {
    // SAFETY: a NUL-terminated literal path.
    let fd = unsafe {
        libc::open(
            c"/dev/tty".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut q = Line::<512>::new();
    q.bytes(plan.exe_name)
        .str(" (")
        .dec(getpid() as i64)
        .str(") crashed with ")
        .str(coroner_types::signal::signal_name(sig).unwrap_or("a signal"))
        .str(" at 0x")
        .hex(addr, 1)
        .str(". Debug it? [y/N] ");
    write_all(fd, q.as_bytes());
    let mut answer = [0u8; 64];
    let n = loop {
        // SAFETY: reads into `answer`, at most its length.
        let n = unsafe { libc::read(fd, answer.as_mut_ptr().cast(), answer.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        break n;
    };
    close(fd);
    n > 0
        && answer[..n as usize]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'y' || *b == b'Y')
}

/// Expands `cmd` into [`ARENA`]/[`ARGV`]; returns the argv pointer.
unsafe fn build_argv(cmd: &Cmd, x: &Expansion<'_>) -> Option<*const *const c_char> {
    // SAFETY: the caller owns the crash machinery; the arena and argv
    // statics are used by nobody else meanwhile.
    let (arena, argv) = unsafe { (&mut *ARENA.get(), &mut *ARGV.get()) };
    let n = cmd.words.word_count();
    if n == 0 || n > MAX_WORDS {
        return None;
    }
    let mut at = 0usize;
    let mut argc = 0usize;
    for word in cmd.words.words() {
        if x.note.is_empty() && word.pieces().any(|p| p == PieceRef::Note) {
            continue;
        }
        let start = at;
        for piece in word.pieces() {
            let mut tmp = [0u8; 24];
            let mut hex = [0u8; 16];
            let bytes: &[u8] = match piece {
                PieceRef::Lit(b) => b,
                PieceRef::Pid => {
                    let n = fmt_dec(x.pid as i64, &mut tmp);
                    &tmp[..n]
                }
                PieceRef::Event => {
                    let n = fmt_dec(x.event as i64, &mut tmp);
                    &tmp[..n]
                }
                PieceRef::JitAddr => {
                    let n = fmt_hex(x.block, POINTER_DIGITS, &mut hex);
                    &hex[..n]
                }
                PieceRef::Outcome => x.outcome.as_bytes(),
                PieceRef::Reason => x.reason.as_bytes(),
                PieceRef::Note => x.note,
            };
            let end = at.checked_add(bytes.len())?;
            arena.get_mut(at..end)?.copy_from_slice(bytes);
            at = end;
        }
        *arena.get_mut(at)? = 0;
        at += 1;
        *argv.get_mut(argc)? = arena[start..].as_ptr().cast();
        argc += 1;
    }
    *argv.get_mut(argc)? = ptr::null();
    Some(argv.as_ptr())
}

/// A spawned helper: pid and pidfd.
pub(crate) struct Child {
    pid: c_int,
    pidfd: c_int,
}

/// Spawns `cmd` (expanded by `x`) with a raw clone + execve, no SIGCHLD
/// (exit signal 0, so the program's own SIGCHLD handling and `waitpid(-1)`
/// never see it), and allows it to ptrace us before it execs.
pub(crate) unsafe fn spawn(cmd: &Cmd, x: &Expansion<'_>) -> Option<Child> {
    // SAFETY: forwarded precondition (crash machinery owned).
    let argv = unsafe { build_argv(cmd, x)? };
    let mut gate = [-1 as c_int; 2];
    // SAFETY: `gate` has room for the two descriptors.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let mut pidfd: c_int = -1;
    // SAFETY: clone without CLONE_VM or a new stack is fork(2) without the
    // atfork handlers (which could take locks); CLONE_PIDFD stores the
    // pidfd in `pidfd`, a live int. The child only makes raw syscalls on
    // its copy of this stack until execve.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PIDFD as libc::c_ulong,
            0usize,
            &mut pidfd as *mut c_int,
            0usize,
            0usize,
        )
    };
    if ret == 0 {
        // SAFETY: we are the fresh child; argv is NUL-terminated strings.
        unsafe { child_exec(gate, argv, cmd.programs()) };
    }
    close(gate[0]);
    if ret < 0 {
        close(gate[1]);
        return None;
    }
    let pid = ret as c_int;
    // Yama (ptrace_scope 1): let the child attach; harmless without Yama.
    // SAFETY: PR_SET_PTRACER takes a pid, no pointers.
    unsafe { libc::prctl(libc::PR_SET_PTRACER, pid as libc::c_ulong, 0, 0, 0) };
    // Closing the gate lets the child exec.
    close(gate[1]);
    Some(Child { pid, pidfd })
}

/// In the cloned child: wait for the gate, clear the signal mask (exec
/// keeps it, and we are inside a handler), exec the first program of
/// `programs` that can be (see [`Program`]). Never returns; 127 when none
/// could.
unsafe fn child_exec(gate: [c_int; 2], argv: *const *const c_char, programs: &[Program]) -> ! {
    close(gate[1]);
    let mut b = 0u8;
    // SAFETY: reads one byte into `b`; returns 0 at EOF (parent closed).
    while unsafe { libc::read(gate[0], (&mut b as *mut u8).cast(), 1) } < 0
        && errno() == libc::EINTR
    {}
    sigprocmask(libc::SIG_SETMASK, 0);
    // SAFETY: environ is libc's NULL-terminated environment, as the
    // program left it.
    let envp = unsafe { environ };
    if programs.is_empty() {
        // SAFETY: argv is a NULL-terminated array of NUL-terminated strings
        // in the arena.
        unsafe { try_exec(*argv, argv, envp) };
    }
    for p in programs {
        // SAFETY: as above.
        unsafe { exec_program(p, argv, envp) };
    }
    // SAFETY: _exit(2) ends this child at once.
    unsafe { libc::_exit(127) }
}

/// `execve(path, argv, envp)`; returns only when it failed.
///
/// # Safety
/// `path` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays
/// of NUL-terminated strings.
unsafe fn try_exec(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) {
    // SAFETY: the caller's promise.
    unsafe { libc::execve(path, argv, envp) };
}

/// `parts` joined into `buf` with a NUL; `None` when it does not fit.
fn join_path<'a>(buf: &'a mut [u8], parts: &[&[u8]]) -> Option<&'a [u8]> {
    let mut at = 0;
    for p in parts {
        buf.get_mut(at..at + p.len())?.copy_from_slice(p);
        at += p.len();
    }
    *buf.get_mut(at)? = 0;
    Some(&buf[..=at])
}

/// Everything before the last `/` (empty for a bare name).
fn dir_of(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|&b| b == b'/')
        .map_or(&[], |i| &path[..i])
}

/// The directories [`Program::Beside`] and [`Program::Installed`] start
/// from: that of `object`, then, when `object` is a symbolic link, that of
/// what it links to. `each` gets each directory and a 4 KiB scratch buffer.
/// Two such buffers in all: this may run on a copy of the crashing
/// thread's stack, which may be the 64 KiB alternate one.
fn object_dirs(object: &[u8], each: &mut dyn FnMut(&[u8], &mut [u8])) {
    let mut a = [0u8; 4096];
    let mut b = [0u8; 4096];
    each(dir_of(object), &mut a);
    let Some(o) = join_path(&mut a, &[object]) else {
        return;
    };
    // SAFETY: `o` is NUL-terminated; readlink writes at most `b.len()`
    // bytes into `b`.
    let n = unsafe { libc::readlink(o.as_ptr().cast(), b.as_mut_ptr().cast(), b.len()) };
    if n <= 0 || n as usize >= b.len() {
        return;
    }
    let target = &b[..n as usize];
    if target.first() == Some(&b'/') {
        each(dir_of(target), &mut a);
        return;
    }
    let Some(len) = join_path(&mut a, &[dir_of(object), b"/", dir_of(target)]).map(|d| d.len() - 1)
    else {
        return;
    };
    each(&a[..len], &mut b);
}

/// Tries the candidates of one [`Program`] (child, before exec); the name
/// looked for is `argv[0]`.
///
/// # Safety
/// As [`try_exec`], with `argv[0]` the program's name.
pub(crate) unsafe fn exec_program(
    p: &Program,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    // SAFETY: argv[0] is a NUL-terminated word.
    let name = unsafe { crate::bytes::c_prefix((*argv).cast(), 0) };
    match *p {
        // SAFETY: argv is the caller's NULL-terminated array.
        Program::AsIs => unsafe { try_exec(*argv, argv, envp) },
        Program::Search { path } => {
            let mut buf = [0u8; 4096];
            for dir in path
                .split(|&b| b == b':')
                .filter(|d| d.first() == Some(&b'/'))
            {
                if let Some(c) = join_path(&mut buf, &[dir, b"/", name]) {
                    // SAFETY: `c` is NUL-terminated in `buf`.
                    unsafe { try_exec(c.as_ptr().cast(), argv, envp) };
                }
            }
        }
        Program::Beside { object } => object_dirs(object, &mut |dir, buf| {
            if let Some(c) = join_path(buf, &[dir, b"/", name]) {
                // SAFETY: `c` is NUL-terminated in `buf`.
                unsafe { try_exec(c.as_ptr().cast(), argv, envp) };
            }
        }),
        Program::Installed { object } => object_dirs(object, &mut |dir, buf| {
            let profile = match dir.iter().rposition(|&b| b == b'/') {
                Some(i) => &dir[i + 1..],
                None => dir,
            };
            let none: &[u8] = &[];
            for parts in [
                [dir, b"/", none, none, name],
                [dir, b"/../../bin/", none, none, name],
                [dir, b"/../../../bin/", none, none, name],
                [dir, b"/../../", profile, b"/", name],
            ] {
                if let Some(c) = join_path(buf, &parts) {
                    // SAFETY: `c` is NUL-terminated in `buf`.
                    unsafe { try_exec(c.as_ptr().cast(), argv, envp) };
                }
            }
        }),
    }
}

/// Waits for `child` to exit, or (if `evfd >= 0`) the event to be
/// signalled, at most `timeout_ms` (negative: forever). A child still
/// running at the deadline is killed and reaped. Returns the outcome and,
/// for `Exited`, the wait status.
pub(crate) fn wait_child(child: &Child, evfd: c_int, timeout_ms: i64) -> (Event, c_int) {
    let deadline = if timeout_ms < 0 {
        i64::MAX
    } else {
        monotonic_ms().saturating_add(timeout_ms)
    };
    let outcome = loop {
        let mut fds = [
            libc::pollfd {
                fd: child.pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: evfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let left = if deadline == i64::MAX {
            -1
        } else {
            (deadline - monotonic_ms()).clamp(0, i32::MAX as i64) as c_int
        };
        // SAFETY: `fds` is a live array of two pollfds; a negative fd is
        // ignored by poll(2).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, left) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break Event::Timeout;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            break Event::Signalled;
        }
        if fds[0].revents != 0 {
            break Event::Exited;
        }
        if n == 0 && left == 0 {
            break Event::Timeout;
        }
        if child.pidfd < 0 && n == 0 {
            break Event::Timeout;
        }
    };
    let mut status: c_int = 0;
    match outcome {
        Event::Signalled => {
            // The debugger lives on (it is attached); nothing to reap.
        }
        Event::Timeout => {
            // SAFETY: kill(2) on our own child's pid (not reaped yet, so the
            // pid cannot have been reused).
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            reap(child.pid, &mut status);
        }
        _ => reap(child.pid, &mut status),
    }
    close(child.pidfd);
    (outcome, status)
}

fn reap(pid: c_int, status: &mut c_int) {
    loop {
        // SAFETY: `status` is a live int; __WALL reaps our exit-signal-0
        // clone child.
        let r = unsafe { libc::waitpid(pid, status, libc::__WALL) };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return;
    }
}

// ---------------------------------------------------------------------
// Explicit triggers that share the path (normal context).
// ---------------------------------------------------------------------

/// `launch_debugger` (Debugger.Launch) from a normal context: a JIT block
/// for the calling thread (`getcontext`, a synthetic SIGTRAP siginfo);
/// true once the debugger attached and signalled the event.
pub(crate) fn launch_from_here() -> bool {
    let plan_ptr = PLAN.load(Ordering::Acquire);
    if plan_ptr.is_null() {
        return false;
    }
    // SAFETY: see `crash`: the published plan is immutable.
    let plan = unsafe { &*plan_ptr };
    if plan.debugger.is_none() || plan.excluded {
        return false;
    }
    let me = gettid();
    if acquire(me) != Acquired::Owner {
        return false;
    }
    let attached = if tracer_pid() != 0 {
        true
    } else {
        // SAFETY: all-zero is a valid ucontext_t/siginfo_t (plain data).
        let mut uc: ucontext_t = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        let mut si: siginfo_t = unsafe { core::mem::zeroed() };
        si.si_signo = libc::SIGTRAP;
        si.si_code = libc::SI_USER;
        // SAFETY: `uc` is a live ucontext_t to fill.
        unsafe { libc::getcontext(&mut uc) };
        let pc = pc_of(&uc);
        // SAFETY: we own the crash machinery; `si`/`uc` outlive the wait.
        let block = unsafe { fill_block(me, (&si as *const siginfo_t).cast(), &uc) };
        let dumpable = prepare_dumpable();
        let evfd = make_event();
        let x = Expansion {
            pid: getpid(),
            event: evfd,
            block,
            outcome: "none",
            reason: Reason::DebugBreak.as_str(),
            note: &[],
        };
        let (_, event) = debugger_step(plan, libc::SIGTRAP, pc, &x);
        close(evfd);
        restore_dumpable(dumpable);
        event == Event::Signalled
    };
    release(false);
    attached
}

/// A breakpoint instruction, with SIGTRAP unblocked (a trap while it is
/// blocked would be forced to the default action, past every handler).
pub(crate) fn breakpoint() {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        unblock(libc::SIGTRAP);
        // SAFETY: `int3` only raises SIGTRAP on this thread; it touches no
        // memory and, when the handler or a debugger resumes, execution
        // continues at the next instruction with every register intact.
        unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    raise_unblocked(libc::SIGTRAP);
}

/// Sends `sig` to the calling thread with it unblocked.
pub(crate) fn raise_unblocked(sig: c_int) {
    unblock(sig);
    tgkill_self(sig);
}

fn unblock(sig: c_int) {
    sigprocmask(libc::SIG_UNBLOCK, 1u64 << (sig - 1));
}

/// `rt_sigprocmask(how, set)` on the kernel's 8-byte signal set, as a raw
/// system call (async-signal-safe, and no libc wrapper page touched at
/// start-up); returns the mask before.
pub(crate) fn sigprocmask(how: c_int, set: u64) -> u64 {
    let mut old: u64 = 0;
    // SAFETY: `set` and `old` are 8-byte kernel sigsets on this stack frame,
    // valid for the length of the call.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            &set as *const u64,
            &mut old as *mut u64,
            8usize,
        )
    };
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_hex() {
        let mut l = Line::<64>::new();
        l.dec(0).str(" ").dec(-42).str(" ").dec(i64::MIN).str(" ");
        l.hex(0, 1)
            .str(" ")
            .hex(0xdead, 16)
            .str(" ")
            .hex(u64::MAX, 1);
        assert_eq!(
            std::str::from_utf8(l.as_bytes()).unwrap(),
            "0 -42 -9223372036854775808 0 000000000000dead ffffffffffffffff"
        );
        let mut short = Line::<4>::new();
        short.str("abcdef");
        assert_eq!(short.as_bytes(), b"abcd");
    }

    #[test]
    fn tracer_pid_parses() {
        assert_eq!(parse_tracer_pid(b"Name:\tx\nTracerPid:\t0\nUid:\t0\n"), 0);
        assert_eq!(
            parse_tracer_pid(b"Name:\tx\nTracerPid:\t4711\nUid:\t0\n"),
            4711
        );
        assert_eq!(parse_tracer_pid(b"Name:\tx\n"), 0);
        // The test harness is not traced (unless run under a debugger).
        let status = std::fs::read("/proc/self/status").unwrap();
        assert_eq!(tracer_pid(), parse_tracer_pid(&status));
    }

    #[test]
    fn argv_expansion() {
        use coroner_config::plan::{put_cmd_header, put_lit_word, put_piece, put_word_header};
        let mut bytes = Vec::new();
        put_cmd_header(&mut bytes, 8);
        put_lit_word(&mut bytes, b"/bin/echo");
        for (prefix, piece) in [
            (&b"--jit-outcome="[..], PieceRef::Outcome),
            (b"--jit-reason=", PieceRef::Reason),
            (b"--jit-note=", PieceRef::Note),
        ] {
            put_word_header(&mut bytes, 2);
            put_piece(&mut bytes, PieceRef::Lit(prefix));
            put_piece(&mut bytes, piece);
        }
        put_lit_word(&mut bytes, b"-p");
        put_word_header(&mut bytes, 1);
        put_piece(&mut bytes, PieceRef::Pid);
        put_word_header(&mut bytes, 2);
        put_piece(&mut bytes, PieceRef::Lit(b"e="));
        put_piece(&mut bytes, PieceRef::Event);
        put_word_header(&mut bytes, 2);
        put_piece(&mut bytes, PieceRef::Lit(b"0x"));
        put_piece(&mut bytes, PieceRef::JitAddr);
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let (words, rest) = CmdRef::parse(bytes, true).unwrap();
        assert!(rest.is_empty());
        let cmd = Cmd::new(words, [Program::AsIs; MAX_PROGRAMS], 0);
        let mut x = Expansion {
            pid: 12,
            event: 7,
            block: 0xabc,
            outcome: "timed-out",
            reason: "fail-fast",
            note: b"it broke",
        };
        let me = gettid();
        assert_eq!(acquire(me), Acquired::Owner);
        assert_eq!(acquire(me), Acquired::Reentered);
        let words = |x: &Expansion<'_>| -> Vec<String> {
            // SAFETY: we own the crash machinery (acquired above).
            let argv = unsafe { build_argv(&cmd, x) }.unwrap();
            let mut out = Vec::new();
            // SAFETY: build_argv filled NUL-terminated words up to a null.
            while let Some(w) = unsafe { (*argv.add(out.len())).as_ref() } {
                // SAFETY: as above: a NUL-terminated word of the arena.
                out.push(
                    unsafe { std::ffi::CStr::from_ptr(w) }
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            out
        };
        let block = format!("0x{:0w$x}", 0xabc, w = POINTER_DIGITS);
        assert_eq!(
            words(&x),
            [
                "/bin/echo",
                "--jit-outcome=timed-out",
                "--jit-reason=fail-fast",
                "--jit-note=it broke",
                "-p",
                "12",
                "e=7",
                block.as_str()
            ]
        );
        // No message: its word is left out.
        x.note = b"";
        assert_eq!(words(&x)[3..5], ["-p", "12"]);
        release(false);
    }

    #[test]
    fn outcome_words_are_the_store_spellings() {
        assert_eq!(jit_outcome(Debugger::Launched, Event::Exited), "launched");
        assert_eq!(jit_outcome(Debugger::Launched, Event::Timeout), "timed-out");
        assert_eq!(
            jit_outcome(Debugger::Excluded, Event::NotWaited),
            "excluded"
        );
        assert_eq!(
            jit_outcome(Debugger::Declined, Event::NotWaited),
            "declined"
        );
        assert_eq!(jit_outcome(Debugger::Failed, Event::NotWaited), "failed");
        assert_eq!(jit_outcome(Debugger::None, Event::NotWaited), "none");
    }
}
