//! Minidump and ELF core writers, and a never-panicking ELF core reader.
//!
//! Owns: what memory a dump holds ([`plan`]), the bulk memory copy into a
//! dump file ([`copy`]), and the dump formats.
//!
//! Must not: call the kernel directly (live access goes through
//! `coroner-proc`), or print anything.

pub mod copy;
pub mod plan;

pub use copy::{copy_regions, NoProgress, Progress};
pub use plan::{plan_regions, DumpLevel, Region};
