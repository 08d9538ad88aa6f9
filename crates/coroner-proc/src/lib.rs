//! Live-process inspection: `/proc` parsing, attaching to every thread,
//! reading registers and memory, and putting the process back as it was.
//!
//! Owns: [`ProcessSnapshot`] (everything about a process except its bulk
//! memory), the [`MemorySource`] trait, and the live implementations of both
//! ([`Attached`], [`ProcessMemory`]).
//!
//! Must not: write dumps or format output; every raw syscall goes through
//! `coroner-sys`.

pub mod attach;
pub mod crashed;
pub mod error;
pub mod memory;
pub mod procfs;
pub mod snapshot;
pub mod watch;

pub use attach::Attached;
pub use error::{ParseError, ProcError};
pub use memory::{ProcessMemory, MAX_RW_COUNT};
pub use procfs::ProcStatus;
pub use snapshot::{auxv_value, LinuxFiles, MemorySource, ProcessSnapshot, ThreadSnapshot};
