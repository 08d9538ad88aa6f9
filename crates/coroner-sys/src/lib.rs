//! The only place with raw syscalls: ptrace, waitpid, pidfd,
//! process_vm_readv, tgkill, and friends. Thin, typed wrappers; every
//! `unsafe` block carries a `// SAFETY:` line naming the invariant.
//!
//! Must not: hold policy (what to attach, when to detach) or parse `/proc`.
