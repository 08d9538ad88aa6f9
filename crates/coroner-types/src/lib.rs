//! Plain data shared by every coroner crate.
//!
//! Owns: process/thread id newtypes, address newtypes, signal and `si_code`
//! names, the x86-64 register sets as the kernel lays them out, the
//! `siginfo_t` decoding, the 40-byte `JIT_DEBUG_INFO` block, and the crash
//! context handed to dump writers.
//!
//! Must not: do any I/O, call the kernel, or depend on another coroner crate.

pub mod addr;
pub mod jit;
pub mod maps;
pub mod regs;
pub mod siginfo;
pub mod signal;
pub mod time;

pub use addr::{Pid, RuntimeAddr, Tid};
pub use jit::LinuxJitDebugInfo;
pub use maps::{Mapping, Perms};
pub use regs::{ThreadRegs, UserRegs, FXSAVE_SIZE};
pub use siginfo::SigInfo;
pub use signal::{si_code_name, signal_name, signal_number};

/// What a dump writer needs to describe a crash: the faulting thread, the
/// signal as the kernel delivered it, and the CPU context at the fault.
///
/// This is the explicit entry point for `/j` (a `JIT_DEBUG_INFO` block read
/// from the target) and for the harness that catches a fault under ptrace.
/// Without one, writers say "dump requested" and use the live contexts.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashContext {
    pub tid: Tid,
    pub siginfo: SigInfo,
    pub regs: ThreadRegs,
}
