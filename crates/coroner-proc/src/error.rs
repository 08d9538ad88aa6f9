//! The errors of live-process inspection. One enum for the phase (attach,
//! read, detach); each variant names the pid/tid/path it concerns and
//! carries the kernel's error where there is one.
//!
//! Must not: format for a terminal beyond one-line messages (the binary
//! prints the `{:#}` chain).

use coroner_types::{Pid, Tid};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A `/proc` text file did not have the shape we expect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ParseError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// Why inspecting or controlling a live process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {pid} does not exist")]
    NoSuchProcess {
        pid: Pid,
        #[source]
        source: io::Error,
    },
    #[error("process {pid} has exited and is waiting to be reaped (zombie); there is nothing left to inspect")]
    Zombie { pid: Pid },
    #[error("process {pid} is already traced by {tracer} ({tracer_name}); detach that debugger first (a process can have only one tracer)")]
    AlreadyTraced {
        pid: Pid,
        tracer: Pid,
        tracer_name: String,
    },
    #[error("process {pid} is this process; a process cannot trace itself")]
    SelfAttach { pid: Pid },
    #[error(
        "not permitted to trace thread {tid} of process {pid}: run as the same user as the target \
         (or with CAP_SYS_PTRACE); check kernel.yama.ptrace_scope, whether the target is \
         non-dumpable (setuid, prctl PR_SET_DUMPABLE 0), and security modules"
    )]
    PermissionDenied {
        pid: Pid,
        tid: Tid,
        #[source]
        source: io::Error,
    },
    #[error(
        "threads of process {pid} did not stop within {timeout:?}; \
         threads still seized by the calling thread until it exits: {stuck:?}"
    )]
    Timeout {
        pid: Pid,
        timeout: Duration,
        /// Threads that never stopped and so could not be detached; the
        /// kernel releases them when the calling thread exits.
        stuck: Vec<Tid>,
    },
    #[error("every thread of process {pid} vanished while attaching")]
    NoThreads { pid: Pid },
    #[error("ptrace {op} on thread {tid} of process {pid}")]
    Ptrace {
        op: &'static str,
        pid: Pid,
        tid: Tid,
        #[source]
        source: io::Error,
    },
    #[error("thread {tid} of process {pid} is not attached")]
    NotAttached { pid: Pid, tid: Tid },
    #[error(
        "process {pid} was attached by thread {tracer}, but thread {caller} asked; ptrace \
         requests must come from the attaching thread"
    )]
    WrongThread { pid: Pid, tracer: Tid, caller: Tid },
    #[error("waiting for thread {tid} of process {pid}")]
    Wait {
        pid: Pid,
        tid: Tid,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {command:?}")]
    Launch {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("process {pid} cannot be read safely: {what} (its PID may have been reused)")]
    PidReused { pid: Pid, what: String },
    #[error("parsing {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

impl ProcError {
    /// A read error on `path` of process `pid`: "no such process" when the
    /// process itself is gone, a plain read error otherwise.
    pub(crate) fn read(pid: Pid, path: PathBuf, source: io::Error) -> ProcError {
        let gone = matches!(
            source.raw_os_error(),
            Some(libc::ENOENT) | Some(libc::ESRCH)
        ) && !std::path::Path::new(&format!("/proc/{}", pid.0)).exists();
        if gone {
            ProcError::NoSuchProcess { pid, source }
        } else {
            ProcError::Read { path, source }
        }
    }
}
