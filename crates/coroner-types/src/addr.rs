//! Id and address newtypes (gimli-style typed values: a pid is not a tid,
//! a runtime address is not a module offset).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A process id (thread-group id) in the caller's PID namespace.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Pid(pub i32);

/// A thread id (kernel task id) in the caller's PID namespace.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tid(pub i32);

/// An address in the target's address space, as the target sees it (after
/// relocation). Module-relative offsets are plain `u64` named `*_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuntimeAddr(pub u64);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#018x}", self.0)
    }
}
impl From<Pid> for Tid {
    /// The thread-group leader's tid equals the pid.
    fn from(p: Pid) -> Tid {
        Tid(p.0)
    }
}
