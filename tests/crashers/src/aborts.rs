//! Kinds that end in `abort(3)`: SIGABRT sent by the process to itself with
//! tgkill (si_code SI_TKILL, no fault address). The `crash_*` function is on
//! the stack under the libc / libstdc++ / std frames that decided to abort.

use crate::announce;

extern "C" {
    /// `assert(0)` in C (csrc/crash_c.c).
    fn crash_assert();
    /// Overflows a buffer under -fstack-protector-all (csrc/crash_ssp.c).
    fn crash_stack_chk();
    /// Throws a C++ exception nobody catches (csrc/crash_cxx.cpp); noexcept,
    /// so nothing unwinds out of it.
    fn crash_cxx_terminate();
}

/// Calls libc's `abort`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_abort() {
    // SAFETY: abort(3) has no preconditions; it does not return.
    unsafe { libc::abort() };
}

pub fn abort() {
    announce("abort", None);
    crash_abort();
}

pub fn assert() {
    announce("assert", None);
    // SAFETY: a C function without arguments or preconditions; it aborts.
    unsafe { crash_assert() };
}

pub fn stack_chk() {
    announce("stack-chk", None);
    // SAFETY: a C function without arguments; its overflow stays inside its
    // own frame (buffer, padding, canary) and it aborts before returning.
    unsafe { crash_stack_chk() };
}

/// Panics in a function that cannot unwind (`extern "C"`): the unwinder
/// reaches this frame's terminate landing pad, std prints "panic in a
/// function that cannot unwind" and calls `abort`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn crash_rust_panic_abort() {
    panic!("coroner crasher: deliberate panic in an extern \"C\" fn");
}

pub fn rust_panic_abort() {
    announce("rust-panic-abort", None);
    crash_rust_panic_abort();
}

pub fn cxx_terminate() {
    announce("cxx-terminate", None);
    // SAFETY: a noexcept C++ function without arguments: the exception it
    // throws never leaves it (std::terminate aborts first).
    unsafe { crash_cxx_terminate() };
}
