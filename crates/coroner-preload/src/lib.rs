//! `libcoroner.so` / `libcoroner.a`: the C ABI over `coroner-runtime`, with
//! no logic of its own (DESIGN.md, "Three ways a crash is caught").
//!
//! - A constructor in `.init_array` calls
//!   `coroner_runtime::install_preloaded()` (install without the panic
//!   hook, which this library's own std would never fire) when the library
//!   is loaded (`LD_PRELOAD`, `/etc/ld.so.preload`, or linked); a failure
//!   prints one line on stderr and never stops the program.
//! - Interposers for every libc call that sets a signal disposition
//!   (`sigaction`, `__sigaction`, `signal`, `bsd_signal`, `ssignal`,
//!   `sysv_signal`, `__sysv_signal`, `sigset`, `sigignore`, `siginterrupt`)
//!   and for `pthread_create` forward to the runtime, which keeps the
//!   program's dispositions and gives each thread a guard-paged alternate
//!   stack. glibc's own versions call its internal `__sigaction`, which no
//!   interposer sees, hence one interposer each.
//! - The C API of `include/coroner.h`: `coroner_install`,
//!   `coroner_debug_break`, `coroner_launch_debugger`, `coroner_fail_fast`.
//!
//! Rust programs link `coroner-runtime` instead (DESIGN's
//! `coroner::install()` is `coroner_runtime::install()`).

use libc::{c_char, c_int, c_void, pthread_attr_t, pthread_t, sighandler_t};

/// Runs at load time, before the program's `main` (and before the
/// constructors of objects loaded after this one).
extern "C" fn coroner_constructor() {
    if let Err(e) = coroner_runtime::install_preloaded() {
        let line = format!("{e}\n");
        // SAFETY: writes a live buffer to stderr; no Rust stdio state (the
        // program's stderr may be anything, even closed).
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = coroner_constructor;

/// `int coroner_install(void)`: 0 on success (also when already installed),
/// -1 on failure (a message went to stderr). The constructor already calls
/// it; calling it again is harmless.
#[no_mangle]
pub extern "C" fn coroner_install() -> c_int {
    match coroner_runtime::install_preloaded() {
        Ok(()) => 0,
        Err(e) => {
            let line = format!("{e}\n");
            // SAFETY: writes a live buffer to stderr.
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            -1
        }
    }
}

/// `void coroner_debug_break(void)`: DebugBreak.
#[no_mangle]
pub extern "C" fn coroner_debug_break() {
    coroner_runtime::debug_break()
}

/// `int coroner_launch_debugger(void)`: Debugger.Launch; 1 when a debugger
/// attached and signalled, 0 otherwise.
#[no_mangle]
pub extern "C" fn coroner_launch_debugger() -> c_int {
    c_int::from(coroner_runtime::launch_debugger())
}

/// `void coroner_fail_fast(const char *msg)`: FailFast; never returns.
///
/// # Safety
/// `msg` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn coroner_fail_fast(msg: *const c_char) -> ! {
    let text: &[u8] = if msg.is_null() {
        b"fail-fast"
    } else {
        // SAFETY: the caller passes a NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(msg) }.to_bytes()
    };
    coroner_runtime::fail_fast_bytes(text)
}

/// Interposed `sigaction(2)`.
///
/// # Safety
/// As libc's `sigaction`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sigaction(sig, act, oldact) }
}

/// Interposed `__sigaction` (glibc exports it; the same as `sigaction`).
///
/// # Safety
/// As libc's `sigaction`.
#[no_mangle]
pub unsafe extern "C" fn __sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sigaction(sig, act, oldact) }
}

/// Interposed `signal(3)`.
///
/// # Safety
/// As libc's `signal`.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::signal(sig, handler) }
}

/// Interposed `bsd_signal(3)` (the same as `signal`).
///
/// # Safety
/// As libc's `bsd_signal`.
#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::bsd_signal(sig, handler) }
}

/// Interposed `ssignal(3)` (glibc: the same as `signal`).
///
/// # Safety
/// As libc's `ssignal`.
#[no_mangle]
pub unsafe extern "C" fn ssignal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::signal(sig, handler) }
}

/// Interposed `__sysv_signal`: what `signal` is redirected to when a C
/// program is compiled without `_DEFAULT_SOURCE` (e.g. `-std=c99`).
///
/// # Safety
/// As libc's `sysv_signal`.
#[no_mangle]
pub unsafe extern "C" fn __sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sysv_signal(sig, handler) }
}

/// Interposed `sigset(3)` (System V; `SIG_HOLD` blocks the signal).
///
/// # Safety
/// As libc's `sigset`.
#[no_mangle]
pub unsafe extern "C" fn sigset(sig: c_int, disp: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sigset(sig, disp) }
}

/// Interposed `sigignore(3)`.
///
/// # Safety
/// As libc's `sigignore`.
#[no_mangle]
pub unsafe extern "C" fn sigignore(sig: c_int) -> c_int {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sigignore(sig) }
}

/// Interposed `siginterrupt(3)`.
///
/// # Safety
/// As libc's `siginterrupt`.
#[no_mangle]
pub unsafe extern "C" fn siginterrupt(sig: c_int, flag: c_int) -> c_int {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::siginterrupt(sig, flag) }
}

/// Interposed `sysv_signal(3)`.
///
/// # Safety
/// As libc's `sysv_signal`.
#[no_mangle]
pub unsafe extern "C" fn sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::sysv_signal(sig, handler) }
}

/// Interposed `pthread_create(3)`.
///
/// # Safety
/// As libc's `pthread_create`.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut pthread_t,
    attr: *const pthread_attr_t,
    start: coroner_runtime::StartRoutine,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded precondition.
    unsafe { coroner_runtime::pthread_create(thread, attr, start, arg) }
}
