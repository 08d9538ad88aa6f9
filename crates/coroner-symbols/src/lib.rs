//! Symbols and CFI unwinding for the minidump processor, from local files.
//!
//! Owns: finding the file for a module (its code file, copies in extra
//! binary dirs, separate debug files by build id or `.gnu_debuglink`),
//! verifying it against the dump's build id, symbolizing addresses
//! (addr2line: demangled names, lines, inlined frames; ELF symbol table when
//! there is no DWARF) and CFI unwinding (framehop over `.eh_frame` /
//! `.debug_frame`) for [`CoronerSymbolProvider`], a
//! `minidump_unwind::SymbolProvider`. For the debugger: [`ModuleImage`]
//! (one module's symbols, lines and CFI at a runtime base) and
//! [`unwind`] (a gimli CFI unwinder over raw memory, x86-64).
//!
//! Must not: use a file whose build id differs from the dump's (it records
//! a [`Refusal`] instead), touch the network, or panic on a malformed file.
//! Every file is read with `std::fs::read`; no `unsafe` mapping.

pub mod cfi;
pub mod elf;
pub mod image;
pub mod locate;
pub mod plt;
pub mod provider;
pub mod vdso;

pub use cfi::{
    unwind, unwind_traced, FrameMemory, FrameTrust, Unwind, UnwindRegs, UnwindStop, UnwoundFrame,
    X86_64_REGS,
};
pub use image::{ModuleImage, SymbolHit};
pub use locate::{Refusal, SymbolOptions};
pub use provider::{CoronerSymbolProvider, InlineCall, ModuleSymbols, SymbolStatus, Symbolized};

use std::path::PathBuf;

/// Failures reading a candidate file. They are recorded per module
/// ([`ModuleSymbols::errors`]); symbolization carries on without the file.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a usable ELF file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
}
