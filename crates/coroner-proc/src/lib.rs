//! Live-process inspection: `/proc` parsing, attaching to every thread,
//! reading registers and memory, and putting the process back as it was.
//!
//! Owns: [`ProcessSnapshot`] (everything about a process except its bulk
//! memory), the [`MemorySource`] trait, and the live implementations of both.
//!
//! Must not: write dumps or format output; every raw syscall goes through
//! `coroner-sys`.

pub mod snapshot;

pub use snapshot::{LinuxFiles, MemorySource, ProcessSnapshot, ThreadSnapshot};
