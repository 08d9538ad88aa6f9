//! The debugger engine behind `coroner dbg`.
//!
//! Owns: the [`target::Target`] trait and its three implementations (a live
//! process under ptrace, a minidump, an ELF core), the CDB event-filter model
//! (`sx*`, first and second chance), the command language (typed AST,
//! expressions), and the session that runs commands against a target and
//! renders CDB-style output.
//!
//! Must not: print anywhere but the session's output sink, use `unsafe`
//! (raw syscalls live in coroner-sys), or trust a dump's bytes.

pub mod cmdline;
pub mod command;
pub mod disasm;
pub mod exec;
pub mod expr;
pub mod filters;
pub mod format;
pub mod live;
pub mod session;
pub mod target;
pub mod toolsini;
pub mod wildcard;
