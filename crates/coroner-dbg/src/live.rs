//! The live target: one process (and, with `.childdbg 1`, its children)
//! under ptrace, in all-stop mode.
//!
//! Owns: launching and attaching (`PTRACE_SEIZE` on every thread), the
//! wait loop, software breakpoints (`int3`, stepped over on resume; user
//! ones by id, deferred ones until their module loads; the engine's own on
//! throw and panic entry points, which `bl` never lists), single
//! stepping, thread and process events (clone, exit, fork, exec), module
//! load and unload through the dynamic linker's rendezvous (`r_debug.r_brk`),
//! and the debuggee's output when we launched it. It reports typed
//! [`Event`]s; deciding what an event means (filters, break or go) and
//! where a symbol is are the session's job.
//!
//! Must not: leave a tracee stopped or with a breakpoint byte in it when the
//! session ends (detach restores every byte first), or call ptrace or
//! `waitpid` from any thread but the one that attached. There is no other
//! thread: the engine waits in the session's own thread, `waitpid(WNOHANG |
//! __WNOTHREAD)` for a moment, then one poll on `SIGCHLD` (a signalfd) and
//! the launched program's output pipes. Handing each stop over from a
//! waiter thread cost two thread wake-ups per stop; `__WNOTHREAD` keeps the
//! children of the process's other threads (and other sessions) out.
//!
//! Windows and Linux differ here in three ways that shape this module.
//! First chance is the signal-delivery-stop, before any handler of the
//! program runs; a *second* chance is a delivery that would kill the
//! process (no handler, not ignored, default action terminate), which is
//! exactly when Windows would tell the debugger again. The initial
//! breakpoint of a launched program is its entry point (`AT_ENTRY`): every
//! `DT_NEEDED` library is mapped then, but unlike Windows their
//! initialisers have already run. Module loads have no kernel event: a
//! breakpoint on `r_brk` reports each `RT_CONSISTENT` state and we diff the
//! file mappings.

use crate::target::{
    escape_name, modules_of, read_available, ExceptionInfo, Module, NoMemory, Target, TargetError,
    TargetKind, ThreadInfo,
};
use coroner_dump::elfmem::read_dso_debug;
use coroner_proc::procfs;
use coroner_proc::{auxv_value, MemorySource, ProcError, ProcessMemory, ProcessSnapshot};
use coroner_sys::poll::{self as sys_poll, ChildSignals};
use coroner_sys::ptrace;
use coroner_sys::wait::{self, WaitStatus};
use coroner_types::{Pid, SigInfo, Tid, UserRegs};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

const OPTIONS: u32 = ptrace::PTRACE_O_TRACECLONE
    | ptrace::PTRACE_O_TRACEEXEC
    | ptrace::PTRACE_O_TRACEEXIT
    | ptrace::PTRACE_O_TRACEFORK
    | ptrace::PTRACE_O_TRACEVFORK;
const SI_KERNEL: i32 = 0x80;
const TRAP_BRKPT: i32 = 1;
const TRAP_TRACE: i32 = 2;
const AT_ENTRY: u64 = 9;
const INT3: u8 = 0xcc;
/// How long the engine polls for the next stop before it sleeps.
const SPIN: Duration = Duration::from_micros(200);
/// The longest sleep between two looks at the tracees: a thread of ours
/// that does not block `SIGCHLD` (one that existed before the session, as
/// in a test harness) may take the signal that would have woken us.
const SLEEP_SLICE: Duration = Duration::from_millis(50);
/// How many waits may go by, each finding a stop at once, before the
/// output pipes are read anyway (so that a program that keeps stopping
/// never fills them).
const OUTPUT_EVERY: u32 = 64;
/// The most one read of the output takes from one pipe.
const OUTPUT_CHUNK: usize = 64 * 1024;

/// Which output stream of a launched target a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What happened in the target. The thread named is stopped (all-stop:
/// every other thread keeps running until the session calls
/// [`Live::stop_all`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Launch: the entry point was reached. Attach: the target was stopped.
    InitialBreakpoint {
        pid: Pid,
        tid: Tid,
    },
    /// A signal is about to be delivered (first chance). Its `siginfo_t`
    /// ([`Live::siginfo`]) and whether its delivery would kill the process
    /// (the second chance, [`Live::would_kill`]) each cost a system call,
    /// so the session asks only when a filter needs to know.
    Signal {
        pid: Pid,
        tid: Tid,
        signo: i32,
    },
    /// One of the engine's breakpoints on a throw or panic entry point was
    /// hit ([`Live::add_throw_breakpoint`]); the pc is at its address.
    /// The first chance of `eh` (a C++ throw) or `rp` (a Rust panic).
    Throw {
        pid: Pid,
        tid: Tid,
        kind: ThrowKind,
    },
    /// A user breakpoint (`bp`) was hit; the pc is at its address.
    Breakpoint {
        pid: Pid,
        tid: Tid,
        id: u32,
    },
    /// A `t`/`p` finished.
    StepDone {
        pid: Pid,
        tid: Tid,
    },
    /// A break address of `g ADDR` was reached; the pc is at it.
    GoAddressHit {
        pid: Pid,
        tid: Tid,
    },
    /// A thread was created: `tid` is the new thread; `parent`, the
    /// thread that created it, is the one stopped (at its clone event).
    /// The new thread runs from its first stop on unless the session
    /// stops everything first.
    ThreadCreated {
        pid: Pid,
        tid: Tid,
        parent: Tid,
    },
    ThreadExited {
        pid: Pid,
        tid: Tid,
        code: i32,
    },
    /// A debugged child ran `execve` for the first time (`cpr`).
    ProcessCreated {
        pid: Pid,
        parent: Pid,
        name: String,
    },
    /// The thread-group leader is exiting; memory is still readable (`epr`).
    ProcessExiting {
        pid: Pid,
        tid: Tid,
        code: i32,
    },
    /// The process is gone.
    ProcessExited {
        pid: Pid,
        status: WaitStatus,
    },
    ModuleLoaded {
        pid: Pid,
        tid: Tid,
        module: Module,
    },
    ModuleUnloaded {
        pid: Pid,
        tid: Tid,
        module: Module,
    },
    /// A line the launched target wrote (`out`); nothing is stopped.
    Output {
        pid: Pid,
        stream: Stream,
        line: String,
    },
}

impl Event {
    /// The process and thread the event stopped, if it stopped one.
    pub fn stopped(&self) -> Option<(Pid, Tid)> {
        match *self {
            Event::InitialBreakpoint { pid, tid }
            | Event::Signal { pid, tid, .. }
            | Event::Breakpoint { pid, tid, .. }
            | Event::Throw { pid, tid, .. }
            | Event::StepDone { pid, tid }
            | Event::GoAddressHit { pid, tid }
            | Event::ThreadCreated {
                pid, parent: tid, ..
            }
            | Event::ThreadExited { pid, tid, .. }
            | Event::ProcessExiting { pid, tid, .. }
            | Event::ModuleLoaded { pid, tid, .. }
            | Event::ModuleUnloaded { pid, tid, .. } => Some((pid, tid)),
            Event::ProcessCreated { pid, .. } => Some((pid, Tid(pid.0))),
            Event::ProcessExited { .. } | Event::Output { .. } => None,
        }
    }
}

/// Why a live operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("{op} on thread {tid} of process {pid}: {source}")]
    Ptrace {
        op: &'static str,
        pid: i32,
        tid: i32,
        #[source]
        source: io::Error,
    },
    #[error("waiting for the target: {0}")]
    Wait(#[source] io::Error),
    #[error("break-in timed out after {secs} s: thread(s) {tids:?} did not stop")]
    BreakInTimeout { secs: u64, tids: Vec<i32> },
    #[error("cannot write memory at {addr:#x} of process {pid}: {source}")]
    Write {
        pid: i32,
        addr: u64,
        #[source]
        source: io::Error,
    },
    #[error("no breakpoint can be set at {addr:#x}: the memory is not readable")]
    BadBreakpoint { addr: u64 },
    #[error("the target has exited")]
    Gone,
}

fn pt(op: &'static str, pid: Pid, tid: Tid) -> impl FnOnce(io::Error) -> LiveError {
    move |source| LiveError::Ptrace {
        op,
        pid: pid.0,
        tid: tid.0,
        source,
    }
}

/// How a thread sits in a ptrace stop, which decides how it resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Signal-delivery-stop of this signal; resumed with it unless handled.
    Signal(i32),
    /// Any other stop: resumed with no signal.
    Quiet,
}

#[derive(Debug, Default)]
struct ThreadState {
    stop: Option<Stop>,
    /// An interrupt was requested and its stop not seen yet.
    interrupting: bool,
    /// A new clone whose first stop has not been seen.
    starting: bool,
    /// In this stop its registers were written, or a step off one of our
    /// breakpoints was cut short by a signal: its pc may sit on an `int3`
    /// it has already hit.
    moved: bool,
}

/// A software breakpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    pub id: u32,
    pub address: u64,
    pub enabled: bool,
    /// Commands to run when it is hit.
    pub command: Option<String>,
    /// The text it was set with (`crasher!live_main_wait`).
    pub spec: String,
    /// Set with `bu` (or a `bp` whose symbol was not found): kept by its
    /// `spec`, which is resolved again whenever a module loads while it
    /// is unresolved (also after its module was unloaded).
    pub deferred: bool,
    /// Not resolved (its module is not loaded): `address` is 0 and
    /// nothing is inserted.
    pub unresolved: bool,
}

/// What [`Live::set_breakpoint`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpSet {
    /// A new breakpoint with this id.
    New(u32),
    /// The breakpoint with this id (the one asked for, or the one at the
    /// same address) was given the new place and commands: CDB's
    /// `breakpoint N redefined`.
    Redefined(u32),
}

/// What an engine breakpoint on a throw or panic entry point reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThrowKind {
    /// `__cxa_throw`: a C++ exception is thrown (`eh`).
    Cxx,
    /// std's `rust_panic`: a Rust panic starts unwinding (`rp`).
    RustPanic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Internal {
    /// The entry point of a launched program (initial breakpoint).
    Entry,
    /// `r_debug.r_brk`: module list changes.
    RBrk,
    /// The return address of a `p` over a call, for this thread.
    StepOver(Tid),
    /// A break address of `g ADDR`: one-shot, gone at the next break.
    GoAddress,
    /// A throw or panic entry point, while its filter wants to hear of it.
    Throw(ThrowKind),
}

/// One process under the debugger.
pub struct Process {
    pub pid: Pid,
    /// Thread-group leader first.
    threads: BTreeMap<Tid, ThreadState>,
    mem: ProcessMemory,
    mem_rw: Option<File>,
    /// Inserted breakpoint bytes: address → original byte.
    inserted: BTreeMap<u64, u8>,
    internal: Vec<(u64, Internal)>,
    modules: Vec<Module>,
    r_debug: Option<u64>,
    /// A child we follow (`.childdbg 1`) that has not exec'd yet.
    child_of: Option<Pid>,
    exited: bool,
}

impl Process {
    fn new(pid: Pid) -> Process {
        Process {
            pid,
            threads: BTreeMap::new(),
            // We trace it: if it vanished meanwhile, reads fail, which
            // every caller handles.
            mem: ProcessMemory::unchecked(pid),
            mem_rw: open_mem_rw(pid),
            inserted: BTreeMap::new(),
            internal: Vec::new(),
            modules: Vec::new(),
            r_debug: None,
            child_of: None,
            exited: false,
        }
    }

    fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), LiveError> {
        let f = self.mem_rw.as_ref().ok_or_else(|| LiveError::Write {
            pid: self.pid.0,
            addr,
            source: io::Error::other("/proc/PID/mem is not open for writing"),
        })?;
        f.write_all_at(bytes, addr)
            .map_err(|source| LiveError::Write {
                pid: self.pid.0,
                addr,
                source,
            })
    }

    fn insert(&mut self, addr: u64) -> Result<(), LiveError> {
        if self.inserted.contains_key(&addr) {
            return Ok(());
        }
        let mut b = [0u8; 1];
        if self.mem.read(addr, &mut b).unwrap_or(0) != 1 {
            return Err(LiveError::BadBreakpoint { addr });
        }
        self.write_bytes(addr, &[INT3])?;
        self.inserted.insert(addr, b[0]);
        Ok(())
    }

    fn remove(&mut self, addr: u64) -> Result<(), LiveError> {
        if let Some(orig) = self.inserted.remove(&addr) {
            self.write_bytes(addr, &[orig])?;
        }
        Ok(())
    }

    /// Read memory as the program sees it, without our `int3` bytes.
    fn read_clean(&self, addr: u64, buf: &mut [u8]) -> usize {
        let done = read_available(&self.mem, addr, buf);
        let end = addr.saturating_add(done as u64);
        for (&a, &orig) in self.inserted.range(addr..end) {
            buf[(a - addr) as usize] = orig;
        }
        done
    }

    fn snapshot(&self) -> ProcessSnapshot {
        let mappings = procfs::read_maps(self.pid).unwrap_or_default();
        ProcessSnapshot {
            pid: self.pid,
            mappings,
            ..Default::default()
        }
    }

    fn refresh_modules(&mut self) -> (Vec<Module>, Vec<Module>) {
        let now = modules_of(&self.snapshot(), &self.mem);
        let loaded: Vec<Module> = now
            .iter()
            .filter(|m| {
                !self
                    .modules
                    .iter()
                    .any(|o| o.base == m.base && o.path == m.path)
            })
            .cloned()
            .collect();
        let unloaded: Vec<Module> = self
            .modules
            .iter()
            .filter(|o| !now.iter().any(|m| o.base == m.base && o.path == m.path))
            .cloned()
            .collect();
        self.modules = now;
        (loaded, unloaded)
    }

    fn internal_at(&self, addr: u64) -> Option<Internal> {
        self.internal
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, k)| *k)
    }
}

/// What [`Live::next`] found.
enum Next {
    Status(Tid, WaitStatus),
    /// An output line is now a pending event.
    Output,
    /// Timed out, or nothing is left to wait for.
    Nothing,
}

/// What one non-blocking `waitpid` found.
enum Reap {
    Status(Tid, WaitStatus),
    /// Nothing to report yet.
    Nothing,
    /// This thread has no child or tracee left.
    NoChildren,
}

/// One captured output stream of a launched program (non-blocking).
struct OutputPipe {
    pid: Pid,
    stream: Stream,
    pipe: std::io::PipeReader,
    /// The start of a line the program has not finished.
    line: Vec<u8>,
    /// Not at end of file yet.
    open: bool,
}

/// The live debugging engine.
pub struct Live {
    procs: BTreeMap<Pid, Process>,
    /// The process the session is looking at.
    pub current: Pid,
    /// User breakpoints, by id.
    pub breakpoints: Vec<Breakpoint>,
    /// Follow children (`-o`, `.childdbg 1`).
    pub debug_children: bool,
    pub launched: bool,
    /// `SIGCHLD` as a descriptor: the engine sleeps in one poll on it and
    /// the output pipes. `None` if it could not be made; the engine then
    /// looks at the tracees every [`SLEEP_SLICE`].
    child_signals: Option<ChildSignals>,
    /// The launched program's captured stdout and stderr.
    outputs: Vec<OutputPipe>,
    /// Waits since the output was last read.
    since_output: u32,
    /// Statuses read while waiting for something else.
    queued: VecDeque<(Tid, WaitStatus)>,
    /// Events decoded but not yet returned.
    pending: VecDeque<Event>,
    /// The last exception event, for `.exr -1` / `.ecxr`.
    pub last_exception: Option<ExceptionInfo>,
    /// Thread being single-stepped by the user (`t`/`p`).
    user_step: Option<Tid>,
    /// Threads → pid.
    owner: BTreeMap<Tid, Pid>,
    /// Break-in timeout (`-pt`).
    pub break_timeout: Duration,
    /// The registers of stopped threads, read from the kernel at most once
    /// per stop: every resume forgets a thread's entry, `set_regs` updates
    /// it. An event (say a SIGSEGV that breaks) needs them for its
    /// classification, its exception record and its display.
    regs_cache: RefCell<BTreeMap<Tid, UserRegs>>,
    /// The `siginfo_t` of threads in a signal-delivery-stop, read at most
    /// once per stop, as the registers are.
    siginfo_cache: RefCell<BTreeMap<Tid, SigInfo>>,
    /// How many times registers were read from the kernel (for tests).
    regs_reads: Cell<u64>,
}

impl Live {
    fn new(pid: Pid, launched: bool) -> Live {
        Live {
            procs: BTreeMap::new(),
            current: pid,
            breakpoints: Vec::new(),
            debug_children: false,
            launched,
            child_signals: ChildSignals::new().ok(),
            outputs: Vec::new(),
            since_output: 0,
            queued: VecDeque::new(),
            pending: VecDeque::new(),
            last_exception: None,
            user_step: None,
            owner: BTreeMap::new(),
            break_timeout: Duration::from_secs(30),
            regs_cache: RefCell::new(BTreeMap::new()),
            siginfo_cache: RefCell::new(BTreeMap::new()),
            regs_reads: Cell::new(0),
        }
    }

    /// The registers of stopped thread `tid`, from the kernel the first
    /// time in this stop.
    fn thread_regs(&self, tid: Tid) -> io::Result<UserRegs> {
        if let Some(r) = self.regs_cache.borrow().get(&tid) {
            return Ok(*r);
        }
        self.regs_reads.set(self.regs_reads.get() + 1);
        let r = ptrace::get_regs(tid)?;
        self.regs_cache.borrow_mut().insert(tid, r);
        Ok(r)
    }

    /// How many times registers were read from the kernel so far.
    pub fn kernel_register_reads(&self) -> u64 {
        self.regs_reads.get()
    }

    /// `tid` runs again (or stopped anew): its registers change.
    fn forget_regs(&self, tid: Tid) {
        self.regs_cache.borrow_mut().remove(&tid);
        self.siginfo_cache.borrow_mut().remove(&tid);
    }

    /// The `siginfo_t` of the signal thread `tid` is stopped for, from the
    /// kernel the first time in this stop (a bare one of `signo` if the
    /// kernel has none to give).
    pub fn siginfo(&self, tid: Tid, signo: i32) -> SigInfo {
        if let Some(si) = self.siginfo_cache.borrow().get(&tid) {
            return *si;
        }
        let si = ptrace::get_siginfo(tid).unwrap_or_else(|_| SigInfo::new_sent(signo, 0, 0, 0));
        self.siginfo_cache.borrow_mut().insert(tid, si);
        si
    }

    /// `PTRACE_CONT`, forgetting the thread's registers.
    fn cont(&self, tid: Tid, sig: i32) -> io::Result<()> {
        self.forget_regs(tid);
        ptrace::cont(tid, sig)
    }

    /// `PTRACE_SINGLESTEP`, forgetting the thread's registers.
    fn step(&self, tid: Tid, sig: i32) -> io::Result<()> {
        self.forget_regs(tid);
        ptrace::step(tid, sig)
    }

    /// `PTRACE_DETACH`, forgetting the thread's registers.
    fn detach_thread(&self, tid: Tid, sig: i32) -> io::Result<()> {
        self.forget_regs(tid);
        ptrace::detach(tid, sig)
    }

    /// Start `command` under the debugger. With `capture`, its stdout and
    /// stderr come through pipes as [`Event::Output`] lines (for `out`);
    /// otherwise they are inherited. Returns once the program is stopped
    /// right after `execve`; the first [`Live::wait_event`] runs it to its
    /// entry point ([`Event::InitialBreakpoint`]).
    pub fn launch(command: &[OsString], capture: bool) -> Result<Live, LiveError> {
        let (program, args) = command.split_first().ok_or_else(|| {
            LiveError::Proc(ProcError::Launch {
                command: String::new(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
            })
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        let launch_error = |source| {
            LiveError::Proc(ProcError::Launch {
                command: program.to_string_lossy().into_owned(),
                source,
            })
        };
        let mut readers = Vec::new();
        if capture {
            for stream in [Stream::Stdout, Stream::Stderr] {
                let (r, w) = std::io::pipe().map_err(launch_error)?;
                sys_poll::set_nonblocking(r.as_fd(), true).map_err(launch_error)?;
                match stream {
                    Stream::Stdout => cmd.stdout(w),
                    Stream::Stderr => cmd.stderr(w),
                };
                readers.push((stream, r));
            }
        }
        let (pid, child) =
            coroner_proc::watch::launch_seized(&mut cmd, OPTIONS | ptrace::PTRACE_O_EXITKILL)?;
        // The program's ends of the pipes: only the program holds them now.
        drop(cmd);
        let tid = Tid(pid.0);
        let mut live = Live::new(pid, true);
        let mut p = Process::new(pid);
        p.threads.insert(tid, ThreadState::default());
        live.owner.insert(tid, pid);
        live.procs.insert(pid, p);
        live.outputs = readers
            .into_iter()
            .map(|(stream, pipe)| OutputPipe {
                pid,
                stream,
                pipe,
                line: Vec::new(),
                open: true,
            })
            .collect();
        // `child` is reaped by our waitpid loop, never by `Child::wait`.
        drop(child);
        coroner_sys::signal::kill(pid, libc::SIGCONT).map_err(pt("SIGCONT", pid, tid))?;
        // Run to the SIGCONT stop: the program has not run an instruction.
        loop {
            let st = live.next_status_of(tid, None)?.ok_or(LiveError::Gone)?;
            match st {
                WaitStatus::Stopped { sig } if sig == libc::SIGCONT => {
                    live.set_stop(tid, Stop::Quiet);
                    break;
                }
                WaitStatus::Stopped { .. }
                | WaitStatus::GroupStop { .. }
                | WaitStatus::PtraceEventStop { .. } => {
                    live.cont(tid, 0).map_err(pt("CONT", pid, tid))?;
                }
                WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => {
                    return Err(LiveError::Gone)
                }
                _ => live.cont(tid, 0).map_err(pt("CONT", pid, tid))?,
            }
        }
        let entry = procfs::read_auxv(pid)
            .ok()
            .and_then(|a| auxv_value(&a, AT_ENTRY));
        let p = live.procs.get_mut(&pid).ok_or(LiveError::Gone)?;
        match entry {
            Some(e) => {
                p.insert(e)?;
                p.internal.push((e, Internal::Entry));
                live.resume_thread(tid, 0)?;
            }
            None => live
                .pending
                .push_back(Event::InitialBreakpoint { pid, tid }),
        }
        Ok(live)
    }

    /// Attach to every thread of `pid`. With `stop` (no `-pb`) every thread
    /// is interrupted and the first [`Live::wait_event`] reports
    /// [`Event::InitialBreakpoint`], after a [`Event::ModuleLoaded`] for
    /// each module.
    pub fn attach(pid: Pid, stop: bool) -> Result<Live, LiveError> {
        let tids = coroner_proc::watch::seize_threads(pid, OPTIONS)?;
        let mut live = Live::new(pid, false);
        let mut p = Process::new(pid);
        for tid in tids {
            p.threads.insert(tid, ThreadState::default());
            live.owner.insert(tid, pid);
        }
        live.procs.insert(pid, p);
        if stop {
            live.stop_all()?;
            let tid = Tid(pid.0);
            live.initial_modules(pid, tid);
            live.pending
                .push_back(Event::InitialBreakpoint { pid, tid });
        } else if let Some(p) = live.procs.get_mut(&pid) {
            p.refresh_modules();
        }
        live.watch_rbrk(pid);
        Ok(live)
    }

    /// Everything a launched program wrote to its captured output before
    /// now, as `Output` events, in order: those already read and the rest
    /// of what the pipes hold (a write the program finished is in its
    /// pipe). The session calls this before it reports a stop, so that the
    /// program's lines come before the event, as they were written. Empty
    /// when the output is not captured.
    pub fn sync_output(&mut self) -> Vec<Event> {
        self.read_output();
        let mut lines = Vec::new();
        self.pending.retain(|e| {
            let out = matches!(e, Event::Output { .. });
            if out {
                lines.push(e.clone());
            }
            !out
        });
        lines
    }

    /// Read what the output pipes hold now, without waiting, into pending
    /// `Output` events, one per line; a line the program has not finished
    /// stays for later (all of it at end of file).
    fn read_output(&mut self) {
        self.since_output = 0;
        let mut buf = [0u8; 4096];
        for o in self.outputs.iter_mut().filter(|o| o.open) {
            let mut taken = 0;
            while taken < OUTPUT_CHUNK {
                match o.pipe.read(&mut buf) {
                    Ok(0) => {
                        o.open = false;
                        break;
                    }
                    Ok(n) => {
                        taken += n;
                        o.line.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        o.open = false;
                        break;
                    }
                }
            }
            for line in take_lines(&mut o.line, !o.open) {
                self.pending.push_back(Event::Output {
                    pid: o.pid,
                    stream: o.stream,
                    line,
                });
            }
        }
    }

    /// Put an event back in front of the queue (its stop stays as it is).
    pub fn requeue(&mut self, ev: Event) {
        self.pending.push_front(ev);
    }

    /// Read the output pipes to end of file (the program is gone) and
    /// queue every line.
    fn drain_output(&mut self) {
        // A process the program started may keep the pipes open: wait a
        // little for end of file, never forever.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            self.read_output();
            let open: Vec<_> = self
                .outputs
                .iter()
                .filter(|o| o.open)
                .map(|o| o.pipe.as_fd())
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if open.is_empty() || left.is_zero() {
                break;
            }
            if sys_poll::wait_readable(&open, Some(left)).is_err() {
                break;
            }
        }
        self.outputs.clear();
    }

    /// The next wait status, from the queue or the tracees (with a
    /// deadline). Output lines met on the way become pending events.
    fn next_status(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<(Tid, WaitStatus)>, LiveError> {
        match self.next(deadline, false)? {
            Next::Status(t, st) => Ok(Some((t, st))),
            Next::Output | Next::Nothing => Ok(None),
        }
    }

    /// The next status of `tid`: one already queued, else the next the
    /// kernel reports for it. Statuses of other threads that arrive
    /// meanwhile are queued, in order, behind those queued before. `None`
    /// at the deadline or when no tracee is left. (Popping the queue and
    /// pushing another thread's status back, as [`Live::next_status`]
    /// would, pops the same status again forever.)
    fn next_status_of(
        &mut self,
        tid: Tid,
        deadline: Option<Instant>,
    ) -> Result<Option<WaitStatus>, LiveError> {
        if let Some(i) = self.queued.iter().position(|(t, _)| *t == tid) {
            return Ok(self.queued.remove(i).map(|(_, st)| st));
        }
        let mut later = std::mem::take(&mut self.queued);
        let found = loop {
            match self.next_status(deadline) {
                Ok(Some((t, st))) if t == tid => break Ok(Some(st)),
                Ok(Some(other)) => later.push_back(other),
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        later.append(&mut self.queued);
        self.queued = later;
        found
    }

    /// One `waitpid(WNOHANG)` for the tracees and children of this thread
    /// (`__WNOTHREAD`: another thread's children are none of ours).
    fn try_wait(&self) -> Result<Reap, LiveError> {
        match wait::wait_any(libc::WNOHANG | libc::__WNOTHREAD) {
            Ok(Some((t, st))) => {
                // A new stop (or an exit): whatever was read is stale.
                self.forget_regs(t);
                Ok(Reap::Status(t, st))
            }
            Ok(None) => Ok(Reap::Nothing),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(Reap::NoChildren),
            Err(e) => Err(LiveError::Wait(e)),
        }
    }

    /// [`Live::next_status`] that also returns when an output line became a
    /// pending event (`wake_on_output`): the program may print and then run
    /// for a long time without a stop, and the line is an event of its own.
    ///
    /// The engine waits in its own thread, the one that attached (no
    /// hand-over from a waiter thread: each costs a thread wake-up, tens
    /// of microseconds on a VM). It looks with `waitpid(WNOHANG)`, yielding
    /// in between, for [`SPIN`]; then it sleeps in one poll on `SIGCHLD`
    /// (a signalfd) and the output pipes.
    fn next(&mut self, deadline: Option<Instant>, wake_on_output: bool) -> Result<Next, LiveError> {
        if let Some((t, st)) = self.queued.pop_front() {
            return Ok(Next::Status(t, st));
        }
        let spin_until = Instant::now() + SPIN;
        // The SIGCHLDs pending were taken and the tracees looked at since:
        // the next one is news.
        let mut armed = false;
        let mut turn = 0u32;
        loop {
            turn = turn.wrapping_add(1);
            match self.try_wait()? {
                Reap::Status(t, st) => {
                    self.since_output += 1;
                    if self.since_output >= OUTPUT_EVERY && !self.outputs.is_empty() {
                        self.read_output();
                    }
                    return Ok(Next::Status(t, st));
                }
                Reap::NoChildren => return Ok(Next::Nothing),
                Reap::Nothing => {}
            }
            let now = Instant::now();
            let spinning = now < spin_until;
            // A pipe read is a syscall: while spinning, the output waits a
            // few turns (a stop is what the spin is for).
            if !self.outputs.is_empty() && (!spinning || turn.is_multiple_of(16)) {
                let before = self.pending.len();
                self.read_output();
                if wake_on_output && self.pending.len() > before {
                    return Ok(Next::Output);
                }
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(Next::Nothing);
            }
            if spinning {
                // Yield rather than spin: on a busy or single CPU the
                // tracee may need this very CPU to reach its next stop.
                std::thread::yield_now();
                continue;
            }
            if !armed {
                // Take the SIGCHLDs of the stops already looked at, then
                // look once more: a stop in between left no signal behind.
                if let Some(c) = &self.child_signals {
                    let _ = c.clear();
                }
                armed = true;
                continue;
            }
            let mut fds: Vec<_> = self.child_signals.iter().map(|c| c.as_fd()).collect();
            fds.extend(
                self.outputs
                    .iter()
                    .filter(|o| o.open)
                    .map(|o| o.pipe.as_fd()),
            );
            let slice = deadline.map_or(SLEEP_SLICE, |d| (d - now).min(SLEEP_SLICE));
            sys_poll::wait_readable(&fds, Some(slice)).map_err(LiveError::Wait)?;
            armed = false;
        }
    }

    fn set_stop(&mut self, tid: Tid, stop: Stop) {
        if let Some(th) = self.thread_mut(tid) {
            th.stop = Some(stop);
            th.interrupting = false;
            th.starting = false;
            th.moved = false;
        }
    }

    fn thread_mut(&mut self, tid: Tid) -> Option<&mut ThreadState> {
        let pid = *self.owner.get(&tid)?;
        self.procs.get_mut(&pid)?.threads.get_mut(&tid)
    }

    fn pid_of(&self, tid: Tid) -> Pid {
        self.owner.get(&tid).copied().unwrap_or(Pid(tid.0))
    }

    /// Block until the next event the session should see.
    pub fn wait_event(&mut self) -> Result<Event, LiveError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            if self.procs.values().all(|p| p.exited) {
                self.drain_output();
                return self.pending.pop_front().ok_or(LiveError::Gone);
            }
            let (tid, st) = match self.next(None, true)? {
                Next::Status(tid, st) => (tid, st),
                Next::Output => continue,
                Next::Nothing => {
                    for p in self.procs.values_mut() {
                        p.exited = true;
                    }
                    continue;
                }
            };
            if let Some(e) = self.decode(tid, st)? {
                return Ok(e);
            }
        }
    }

    /// Like [`Live::wait_event`] but returns `None` if nothing happened
    /// before `timeout`.
    pub fn poll_event(&mut self, timeout: Duration) -> Result<Option<Event>, LiveError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            let (tid, st) = match self.next(Some(deadline), true)? {
                Next::Status(tid, st) => (tid, st),
                Next::Output => continue,
                Next::Nothing => return Ok(self.pending.pop_front()),
            };
            if let Some(e) = self.decode(tid, st)? {
                return Ok(Some(e));
            }
        }
    }

    /// Turn one wait status into an event, or handle it internally (and
    /// resume the thread) and return `None`.
    fn decode(&mut self, tid: Tid, st: WaitStatus) -> Result<Option<Event>, LiveError> {
        if std::env::var_os("CORONER_DBG_TRACE").is_some() {
            eprintln!("[engine] tid {} {st:?}", tid.0);
        }
        let pid = self.pid_of(tid);
        if !self.owner.contains_key(&tid) {
            // A new child's first stop can come before its parent's fork
            // event: remember it until the fork event claims it.
            match st {
                WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => return Ok(None),
                _ => {
                    self.queued.push_back((tid, st));
                    // Let the fork event (from another thread) come first.
                    if let Some(next) = self.next_status(None)? {
                        let (t, s) = next;
                        return self.decode(t, s);
                    }
                    return Ok(None);
                }
            }
        }
        match st {
            WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => {
                self.owner.remove(&tid);
                let Some(p) = self.procs.get_mut(&pid) else {
                    return Ok(None);
                };
                p.threads.remove(&tid);
                if tid.0 == pid.0 {
                    p.exited = true;
                    p.inserted.clear();
                    if self.procs.values().all(|p| p.exited) {
                        // Everything the program wrote comes before the
                        // news that it is gone.
                        self.drain_output();
                    }
                    self.pending
                        .push_back(Event::ProcessExited { pid, status: st });
                    return Ok(self.pending.pop_front());
                }
                Ok(None)
            }
            WaitStatus::PtraceEventStop { .. } | WaitStatus::GroupStop { .. } => {
                let th = self.thread_mut(tid);
                let expected = th.as_ref().is_some_and(|t| t.interrupting || t.starting);
                let first_stop = th.as_ref().is_some_and(|t| t.starting && !t.interrupting);
                if expected {
                    self.set_stop(tid, Stop::Quiet);
                    // A new thread's first stop: let it run unless we are
                    // stopping everything. (Kept stopped, nothing would
                    // ever resume it: its creation was already reported.)
                    if first_stop {
                        self.resume_thread(tid, 0)?;
                    }
                    return Ok(None);
                }
                self.cont(tid, 0).map_err(pt("CONT", pid, tid))?;
                Ok(None)
            }
            WaitStatus::PtraceEvent { event, .. } => self.decode_ptrace_event(pid, tid, event),
            WaitStatus::Stopped { sig } => self.decode_signal(pid, tid, sig),
            WaitStatus::SyscallStop | WaitStatus::Continued => {
                self.cont(tid, 0).map_err(pt("CONT", pid, tid))?;
                Ok(None)
            }
        }
    }

    fn decode_ptrace_event(
        &mut self,
        pid: Pid,
        tid: Tid,
        event: u32,
    ) -> Result<Option<Event>, LiveError> {
        self.set_stop(tid, Stop::Quiet);
        let msg = ptrace::get_event_msg(tid).unwrap_or(0);
        match event {
            ptrace::PTRACE_EVENT_CLONE => {
                let new = Tid(msg as i32);
                self.owner.insert(new, pid);
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.threads.insert(
                        new,
                        ThreadState {
                            starting: true,
                            ..Default::default()
                        },
                    );
                }
                self.claim_early_stop(new);
                Ok(Some(Event::ThreadCreated {
                    pid,
                    tid: new,
                    parent: tid,
                }))
            }
            ptrace::PTRACE_EVENT_FORK | ptrace::PTRACE_EVENT_VFORK => {
                let child = Pid(msg as i32);
                let ctid = Tid(child.0);
                let mut p = Process::new(child);
                p.threads.insert(
                    ctid,
                    ThreadState {
                        starting: true,
                        ..Default::default()
                    },
                );
                p.child_of = Some(pid);
                self.owner.insert(ctid, child);
                self.procs.insert(child, p);
                self.claim_early_stop(ctid);
                // Wait for the child's first stop, then keep or release it.
                self.wait_for_stop(ctid)?;
                // Breakpoints belong to the first process. A fork child has
                // copies of its int3 bytes: give it the original bytes back.
                // A vfork child shares the parent's memory, so it is left.
                if event == ptrace::PTRACE_EVENT_FORK {
                    let parent_bytes: Vec<(u64, u8)> = self
                        .procs
                        .get(&pid)
                        .map(|pp| pp.inserted.iter().map(|(a, b)| (*a, *b)).collect())
                        .unwrap_or_default();
                    if let Some(c) = self.procs.get(&child) {
                        for (a, b) in parent_bytes {
                            let _ = c.write_bytes(a, &[b]);
                        }
                    }
                }
                if self.debug_children {
                    self.cont(ctid, 0).map_err(pt("CONT", child, ctid))?;
                    if let Some(t) = self.thread_mut(ctid) {
                        t.stop = None;
                    }
                } else {
                    let _ = self.detach_thread(ctid, 0);
                    self.procs.remove(&child);
                    self.owner.remove(&ctid);
                }
                self.resume_thread(tid, 0)?;
                Ok(None)
            }
            ptrace::PTRACE_EVENT_EXEC => {
                // The old image is gone, with our breakpoints in it; the
                // thread that exec'd now has the leader's tid.
                let first_exec = self.procs.get(&pid).is_some_and(|p| p.child_of.is_some());
                let parent = self.procs.get(&pid).and_then(|p| p.child_of);
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.inserted.clear();
                    p.internal.clear();
                    p.modules.clear();
                    p.r_debug = None;
                    p.child_of = None;
                    p.mem_rw = open_mem_rw(pid);
                    let others: Vec<Tid> =
                        p.threads.keys().copied().filter(|t| t.0 != pid.0).collect();
                    for t in others {
                        p.threads.remove(&t);
                        self.owner.remove(&t);
                    }
                    p.threads.entry(Tid(pid.0)).or_default().stop = Some(Stop::Quiet);
                    p.refresh_modules();
                }
                self.owner.insert(Tid(pid.0), pid);
                if first_exec {
                    let name = procfs::comm(pid)
                        .map(|c| escape_name(&c))
                        .unwrap_or_default();
                    return Ok(Some(Event::ProcessCreated {
                        pid,
                        parent: parent.unwrap_or(pid),
                        name,
                    }));
                }
                self.resume_thread(Tid(pid.0), 0)?;
                Ok(None)
            }
            ptrace::PTRACE_EVENT_EXIT => {
                let code = msg as i32;
                if tid.0 == pid.0 {
                    Ok(Some(Event::ProcessExiting { pid, tid, code }))
                } else {
                    Ok(Some(Event::ThreadExited { pid, tid, code }))
                }
            }
            _ => {
                self.resume_thread(tid, 0)?;
                Ok(None)
            }
        }
    }

    /// A stop of `tid` that arrived before we knew the thread: take it out
    /// of the queue and record it.
    fn claim_early_stop(&mut self, tid: Tid) {
        if let Some(i) = self.queued.iter().position(|(t, _)| *t == tid) {
            self.queued.remove(i);
            self.set_stop(tid, Stop::Quiet);
        }
    }

    fn decode_signal(&mut self, pid: Pid, tid: Tid, sig: i32) -> Result<Option<Event>, LiveError> {
        self.set_stop(tid, Stop::Signal(sig));
        if sig == libc::SIGTRAP {
            let code = self.siginfo(tid, sig).code();
            if code == SI_KERNEL || code == TRAP_BRKPT {
                let regs = self.thread_regs(tid).map_err(pt("GETREGS", pid, tid))?;
                let at = regs.rip.wrapping_sub(1);
                let ours = self
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.inserted.contains_key(&at));
                if ours {
                    let mut r = regs;
                    r.rip = at;
                    self.set_regs(tid, &r)?;
                    // Only rip changed, to a value the kernel keeps as is.
                    self.regs_cache.borrow_mut().insert(tid, r);
                    self.set_stop(tid, Stop::Quiet);
                    return self.hit_breakpoint(pid, tid, at);
                }
            }
            // The trap after a step: TRAP_TRACE; TRAP_BRKPT when the step
            // was a syscall (an x86 quirk); and, when the step delivered a
            // signal, the notification at the handler's first instruction,
            // whose si_code is SIGTRAP itself.
            if matches!(code, TRAP_TRACE | TRAP_BRKPT | libc::SIGTRAP)
                && self.user_step == Some(tid)
            {
                self.user_step = None;
                self.set_stop(tid, Stop::Quiet);
                return Ok(Some(Event::StepDone { pid, tid }));
            }
        }
        Ok(Some(Event::Signal {
            pid,
            tid,
            signo: sig,
        }))
    }

    fn hit_breakpoint(&mut self, pid: Pid, tid: Tid, at: u64) -> Result<Option<Event>, LiveError> {
        let internal = self.procs.get(&pid).and_then(|p| p.internal_at(at));
        let user = self
            .breakpoints
            .iter()
            .find(|b| b.enabled && !b.unresolved && b.address == at && pid == self.first_pid())
            .map(|b| b.id);
        match internal {
            Some(Internal::Entry) => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.internal
                        .retain(|(a, k)| !(*a == at && *k == Internal::Entry));
                    if user.is_none() {
                        p.remove(at)?;
                    }
                }
                self.initial_modules(pid, tid);
                self.watch_rbrk(pid);
                self.pending
                    .push_back(Event::InitialBreakpoint { pid, tid });
                return Ok(self.pending.pop_front());
            }
            Some(Internal::RBrk) => {
                let consistent = self
                    .procs
                    .get(&pid)
                    .and_then(|p| p.r_debug.map(|rd| (p, rd)))
                    .and_then(|(p, rd)| {
                        let mut b = [0u8; 4];
                        (p.read_clean(rd + 24, &mut b) == 4).then(|| u32::from_le_bytes(b) == 0)
                    })
                    .unwrap_or(true);
                let mut evs = Vec::new();
                if consistent {
                    if let Some(p) = self.procs.get_mut(&pid) {
                        let (loaded, unloaded) = p.refresh_modules();
                        for module in unloaded {
                            // Its code is gone, and our int3s in it with
                            // it: nothing to put back.
                            let gone: Vec<u64> = p
                                .inserted
                                .keys()
                                .copied()
                                .filter(|a| module.contains(*a))
                                .collect();
                            for a in &gone {
                                p.inserted.remove(a);
                            }
                            p.internal.retain(|(a, k)| {
                                !(matches!(k, Internal::Throw(_)) && module.contains(*a))
                            });
                            evs.push(Event::ModuleUnloaded { pid, tid, module });
                        }
                        for module in loaded {
                            evs.push(Event::ModuleLoaded { pid, tid, module });
                        }
                    }
                }
                if pid == self.first_pid() {
                    // A `bu` in a module that went away waits for it to
                    // come back.
                    for ev in &evs {
                        if let Event::ModuleUnloaded { module, .. } = ev {
                            for b in self.breakpoints.iter_mut() {
                                if b.deferred && !b.unresolved && module.contains(b.address) {
                                    b.unresolved = true;
                                    b.address = 0;
                                }
                            }
                        }
                    }
                }
                if user.is_none() {
                    if evs.is_empty() {
                        self.resume_thread(tid, 0)?;
                        return Ok(None);
                    }
                    self.pending.extend(evs);
                    return Ok(self.pending.pop_front());
                }
                self.pending.extend(evs);
            }
            Some(Internal::StepOver(t)) if t == tid => {
                if let Some(p) = self.procs.get_mut(&pid) {
                    p.internal
                        .retain(|(a, k)| !(*a == at && *k == Internal::StepOver(t)));
                    let still_used = p.internal.iter().any(|(a, _)| *a == at)
                        || self
                            .breakpoints
                            .iter()
                            .any(|b| b.enabled && !b.unresolved && b.address == at);
                    if !still_used {
                        p.remove(at)?;
                    }
                }
                return Ok(Some(Event::StepDone { pid, tid }));
            }
            Some(Internal::GoAddress) => {
                self.end_run();
                return Ok(Some(Event::GoAddressHit { pid, tid }));
            }
            Some(Internal::Throw(kind)) => {
                // A user breakpoint on the same address is reported next,
                // from the same stop.
                self.pending.push_back(Event::Throw { pid, tid, kind });
                if let Some(id) = user {
                    self.pending.push_back(Event::Breakpoint { pid, tid, id });
                }
                return Ok(self.pending.pop_front());
            }
            _ => {}
        }
        match user {
            Some(id) => Ok(Some(Event::Breakpoint { pid, tid, id })),
            None => {
                // Another thread's step-over breakpoint: not for this one.
                self.resume_thread(tid, 0)?;
                Ok(None)
            }
        }
    }

    fn first_pid(&self) -> Pid {
        self.procs.keys().next().copied().unwrap_or(self.current)
    }

    fn initial_modules(&mut self, pid: Pid, tid: Tid) {
        if let Some(p) = self.procs.get_mut(&pid) {
            let (loaded, _) = p.refresh_modules();
            for module in loaded {
                self.pending
                    .push_back(Event::ModuleLoaded { pid, tid, module });
            }
        }
    }

    /// Put the internal breakpoint on `r_debug.r_brk`, if the program has a
    /// dynamic linker rendezvous.
    fn watch_rbrk(&mut self, pid: Pid) {
        let Some(p) = self.procs.get_mut(&pid) else {
            return;
        };
        let auxv = procfs::read_auxv(pid).unwrap_or_default();
        let Ok(dso) = read_dso_debug(&p.mem, |k| auxv_value(&auxv, k)) else {
            return;
        };
        if dso.brk == 0 {
            return;
        }
        p.r_debug = Some(dso.addr);
        if p.insert(dso.brk).is_ok() {
            p.internal.push((dso.brk, Internal::RBrk));
        }
    }

    /// Wait until `tid` is in a ptrace stop, queueing other statuses.
    fn wait_for_stop(&mut self, tid: Tid) -> Result<(), LiveError> {
        let deadline = Instant::now() + self.break_timeout;
        loop {
            if self.thread_mut(tid).is_none_or(|t| t.stop.is_some()) {
                return Ok(());
            }
            let Some(st) = self.next_status_of(tid, Some(deadline))? else {
                return Err(LiveError::BreakInTimeout {
                    secs: self.break_timeout.as_secs(),
                    tids: vec![tid.0],
                });
            };
            match st {
                WaitStatus::PtraceEventStop { .. } | WaitStatus::GroupStop { .. } => {
                    self.set_stop(tid, Stop::Quiet);
                }
                WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => {
                    self.queued.push_back((tid, st));
                    return Ok(());
                }
                _ => {
                    // A real event: it is this thread's stop; keep it to
                    // report later.
                    let stop = match st {
                        WaitStatus::Stopped { sig } => Stop::Signal(sig),
                        _ => Stop::Quiet,
                    };
                    self.set_stop(tid, stop);
                    self.queued.push_back((tid, st));
                }
            }
        }
    }

    /// The threads of every process that are in a ptrace stop we have seen
    /// (`stopped`), or that are not.
    fn threads_where(&self, stopped: bool) -> Vec<Tid> {
        self.procs
            .values()
            .flat_map(|p| p.threads.iter())
            .filter(|(_, s)| s.stop.is_some() == stopped)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Stop every running thread of every process (`PTRACE_INTERRUPT`).
    /// Events that arrive meanwhile are kept and reported later.
    pub fn stop_all(&mut self) -> Result<(), LiveError> {
        let running = self.threads_where(false);
        for &tid in &running {
            if let Some(th) = self.thread_mut(tid) {
                if th.interrupting {
                    continue;
                }
                th.interrupting = true;
            }
            if let Err(e) = ptrace::interrupt(tid) {
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(pt("INTERRUPT", self.pid_of(tid), tid)(e));
                }
            }
        }
        let deadline = Instant::now() + self.break_timeout;
        let mut requeue = Vec::new();
        loop {
            let waiting: Vec<Tid> = running
                .iter()
                .copied()
                .filter(|t| self.thread_mut(*t).is_some_and(|s| s.stop.is_none()))
                .collect();
            if waiting.is_empty() {
                break;
            }
            let Some((t, st)) = self.next_status(Some(deadline))? else {
                self.queued.extend(requeue);
                return Err(LiveError::BreakInTimeout {
                    secs: self.break_timeout.as_secs(),
                    tids: waiting.iter().map(|t| t.0).collect(),
                });
            };
            match st {
                WaitStatus::PtraceEventStop { .. } | WaitStatus::GroupStop { .. }
                    if self
                        .thread_mut(t)
                        .is_some_and(|s| s.interrupting || s.starting) =>
                {
                    self.set_stop(t, Stop::Quiet);
                }
                WaitStatus::Exited { .. } | WaitStatus::Signaled { .. } => {
                    if let Some(th) = self.thread_mut(t) {
                        th.stop = Some(Stop::Quiet);
                    }
                    requeue.push((t, st));
                }
                WaitStatus::Stopped { sig } => {
                    // A signal raced the interrupt: keep it for later, the
                    // thread stays in its signal-delivery-stop.
                    self.set_stop(t, Stop::Signal(sig));
                    requeue.push((t, st));
                }
                _ => {
                    self.set_stop(t, Stop::Quiet);
                    requeue.push((t, st));
                }
            }
        }
        // The interrupt stop of a thread that had a real event first comes
        // later; it is consumed as an unexpected stop (continued) by decode.
        self.queued.extend(requeue);
        Ok(())
    }

    /// Resume one stopped thread, delivering `sig`. A thread that is not
    /// in a stop we have seen is left alone: it is running, or its stop is
    /// still on its way (a resume now would make that stop look like one
    /// the thread never left).
    pub fn resume_thread(&mut self, tid: Tid, sig: i32) -> Result<(), LiveError> {
        if self.more_from(tid) || self.thread_mut(tid).is_some_and(|t| t.stop.is_none()) {
            return Ok(());
        }
        let pid = self.pid_of(tid);
        self.step_off_breakpoint(pid, tid)?;
        // A thread in the middle of a `t` that met an event the session
        // did not break on (a signal passed to its handler) goes on
        // stepping: the step ends at the handler's first instruction, as
        // it would end in the exception dispatcher on Windows.
        let (op, r) = if self.user_step == Some(tid) {
            ("SINGLESTEP", self.step(tid, sig))
        } else {
            ("CONT", self.cont(tid, sig))
        };
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(pt(op, pid, tid)(e)),
        }
        if let Some(t) = self.thread_mut(tid) {
            t.stop = None;
        }
        Ok(())
    }

    /// Resume every stopped thread whose event has been reported; `tid`
    /// gets `sig`, the others none. Threads with an event not yet reported
    /// stay stopped: their event comes next.
    pub fn resume_all(&mut self, tid: Option<Tid>, sig: i32) -> Result<(), LiveError> {
        let queued: BTreeSet<Tid> = self.queued.iter().map(|(t, _)| *t).collect();
        let mut stopped = self.threads_where(true);
        stopped.retain(|t| !queued.contains(t));
        if let Some(step) = self.user_step {
            // A `t` runs its one thread: the event thread (the stepping
            // one, or one whose event was queued) goes on, the rest stay.
            if let Some(t) = tid.filter(|t| stopped.contains(t)) {
                self.resume_thread(t, sig)?;
            }
            if Some(step) != tid && stopped.contains(&step) {
                self.resume_thread(step, 0)?;
            }
            return Ok(());
        }
        // The event thread last, so the others are running when it goes.
        for t in stopped.iter().copied().filter(|t| Some(*t) != tid) {
            self.resume_thread(t, 0)?;
        }
        if let Some(t) = tid.filter(|t| stopped.contains(t)) {
            self.resume_thread(t, sig)?;
        }
        Ok(())
    }

    /// If `tid` sits on one of our `int3`s, run that one instruction with
    /// the original byte back in place, then put the `int3` back.
    ///
    /// A thread in a signal-delivery-stop (other than SIGTRAP) that we did
    /// not move is where the signal found it: an `int3` at its pc has not
    /// run yet, and running it is a hit. Its registers are not read (the
    /// hot path of a program that takes many signals).
    fn step_off_breakpoint(&mut self, pid: Pid, tid: Tid) -> Result<(), LiveError> {
        let untouched_signal_stop = self.thread_mut(tid).is_some_and(|t| {
            matches!(t.stop, Some(Stop::Signal(s)) if s != libc::SIGTRAP) && !t.moved
        });
        if untouched_signal_stop {
            return Ok(());
        }
        let Ok(regs) = self.thread_regs(tid) else {
            return Ok(());
        };
        let at = regs.rip;
        let Some(p) = self.procs.get_mut(&pid) else {
            return Ok(());
        };
        if !p.inserted.contains_key(&at) {
            return Ok(());
        }
        p.remove(at)?;
        self.step(tid, 0).map_err(pt("SINGLESTEP", pid, tid))?;
        if let Some(t) = self.thread_mut(tid) {
            t.stop = None;
        }
        // Wait for this thread's step trap; keep everything else.
        match self.next_status_of(tid, None)?.ok_or(LiveError::Gone)? {
            WaitStatus::Stopped { sig } if sig == libc::SIGTRAP => {
                self.set_stop(tid, Stop::Quiet);
            }
            other => {
                // Something else stopped it first (a signal, exit): put
                // the byte back and report that instead.
                if let WaitStatus::Stopped { sig } = other {
                    self.set_stop(tid, Stop::Signal(sig));
                    if let Some(t) = self.thread_mut(tid) {
                        t.moved = true;
                    }
                }
                self.queued.push_front((tid, other));
            }
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            if !p.exited {
                p.insert(at)?;
            }
        }
        Ok(())
    }

    /// `t`: run one instruction of `tid` (the others stay stopped).
    pub fn single_step(&mut self, tid: Tid, sig: i32) -> Result<(), LiveError> {
        let pid = self.pid_of(tid);
        let regs = self.thread_regs(tid).map_err(pt("GETREGS", pid, tid))?;
        let on_bp = self
            .procs
            .get(&pid)
            .is_some_and(|p| p.inserted.contains_key(&regs.rip));
        if on_bp {
            // Stepping off the breakpoint is exactly one instruction.
            self.step_off_breakpoint(pid, tid)?;
            if self.queued.front().is_some_and(|(t, _)| *t == tid) {
                return Ok(());
            }
            self.pending.push_back(Event::StepDone { pid, tid });
            return Ok(());
        }
        self.user_step = Some(tid);
        self.step(tid, sig).map_err(pt("SINGLESTEP", pid, tid))?;
        if let Some(t) = self.thread_mut(tid) {
            t.stop = None;
        }
        Ok(())
    }

    /// `p` over a call: a one-shot breakpoint at `return_to`, then run.
    pub fn step_over_call(&mut self, tid: Tid, return_to: u64, sig: i32) -> Result<(), LiveError> {
        let pid = self.pid_of(tid);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.insert(return_to)?;
            p.internal.push((return_to, Internal::StepOver(tid)));
        }
        self.resume_all(Some(tid), sig)
    }

    /// A break address of `g ADDR`: a one-shot breakpoint in the current
    /// process for any thread, removed at the next break (whatever it is).
    pub fn add_go_address(&mut self, address: u64) -> Result<(), LiveError> {
        let pid = self.current;
        if let Some(p) = self.procs.get_mut(&pid) {
            p.insert(address)?;
            p.internal.push((address, Internal::GoAddress));
        }
        Ok(())
    }

    /// The session broke in: what the last `g ADDR`, `t` or `p` set up for
    /// its run is over (CDB drops a step and `g`'s break addresses at any
    /// break, so a later `g` runs freely).
    pub fn end_run(&mut self) {
        self.user_step = None;
        let user: BTreeSet<u64> = self
            .breakpoints
            .iter()
            .filter(|b| b.enabled && !b.unresolved)
            .map(|b| b.address)
            .collect();
        let first = self.first_pid();
        for (pid, p) in self.procs.iter_mut() {
            let gone: Vec<u64> = p
                .internal
                .iter()
                .filter(|(_, k)| matches!(k, Internal::StepOver(_) | Internal::GoAddress))
                .map(|(a, _)| *a)
                .collect();
            if gone.is_empty() {
                continue;
            }
            p.internal
                .retain(|(_, k)| !matches!(k, Internal::StepOver(_) | Internal::GoAddress));
            for a in gone {
                let still_used =
                    p.internal.iter().any(|(b, _)| *b == a) || (*pid == first && user.contains(&a));
                if !still_used && !p.exited {
                    let _ = p.remove(a);
                }
            }
        }
    }

    /// Add a breakpoint (`bp`) with the first free id; inserted into the
    /// first process.
    pub fn add_breakpoint(
        &mut self,
        address: u64,
        spec: String,
        command: Option<String>,
    ) -> Result<u32, LiveError> {
        let pid = self.first_pid();
        if let Some(p) = self.procs.get_mut(&pid) {
            p.insert(address)?;
        }
        let id = self.free_breakpoint_id();
        self.put_breakpoint(Breakpoint {
            id,
            address,
            enabled: true,
            command,
            spec,
            deferred: false,
            unresolved: false,
        });
        Ok(id)
    }

    /// `bp[ID]`/`bu[ID]` as CDB does them. With `id`, that breakpoint is
    /// redefined if it exists (new place, commands and text, enabled),
    /// else made with that id; without, a breakpoint already at `address`
    /// is redefined, else a new one takes the first free id (CDB: "the
    /// first available breakpoint number"). `address` `None`: not resolved
    /// yet (`deferred` then; [`Live::resolve_breakpoint`] places it).
    pub fn set_breakpoint(
        &mut self,
        id: Option<u32>,
        address: Option<u64>,
        spec: String,
        command: Option<String>,
        deferred: bool,
    ) -> Result<BpSet, LiveError> {
        let existing = match id {
            Some(id) => self.breakpoints.iter().position(|b| b.id == id),
            None => address.and_then(|a| {
                self.breakpoints
                    .iter()
                    .position(|b| !b.unresolved && b.address == a)
            }),
        };
        if let Some(a) = address {
            // Fails (and changes nothing) if the address takes no int3.
            let pid = self.first_pid();
            if let Some(p) = self.procs.get_mut(&pid) {
                p.insert(a)?;
            }
        }
        let id = match (existing, id) {
            (Some(i), _) => self.breakpoints[i].id,
            (None, Some(id)) => id,
            (None, None) => self.free_breakpoint_id(),
        };
        let bp = Breakpoint {
            id,
            address: address.unwrap_or(0),
            enabled: true,
            command,
            spec,
            deferred: deferred || address.is_none(),
            unresolved: address.is_none(),
        };
        let done = match existing {
            Some(i) => {
                self.breakpoints[i] = bp;
                BpSet::Redefined(id)
            }
            None => {
                self.put_breakpoint(bp);
                BpSet::New(id)
            }
        };
        // The old place of a redefined one, if nothing else uses it.
        self.sync_breakpoints()?;
        Ok(done)
    }

    /// The deferred breakpoints not resolved yet: id and text.
    pub fn unresolved_breakpoints(&self) -> Vec<(u32, String)> {
        self.breakpoints
            .iter()
            .filter(|b| b.unresolved)
            .map(|b| (b.id, b.spec.clone()))
            .collect()
    }

    /// Place unresolved breakpoint `id` at `address` (its module loaded).
    pub fn resolve_breakpoint(&mut self, id: u32, address: u64) -> Result<(), LiveError> {
        let Some(i) = self.breakpoints.iter().position(|b| b.id == id) else {
            return Ok(());
        };
        if self.breakpoints[i].enabled {
            let pid = self.first_pid();
            if let Some(p) = self.procs.get_mut(&pid) {
                p.insert(address)?;
            }
        }
        let b = &mut self.breakpoints[i];
        b.address = address;
        b.unresolved = false;
        Ok(())
    }

    fn free_breakpoint_id(&self) -> u32 {
        (0..=u32::MAX)
            .find(|i| !self.breakpoints.iter().any(|b| b.id == *i))
            .unwrap_or(u32::MAX)
    }

    /// Add to the list, which stays in id order (as `bl` lists it).
    fn put_breakpoint(&mut self, bp: Breakpoint) {
        let at = self.breakpoints.partition_point(|b| b.id < bp.id);
        self.breakpoints.insert(at, bp);
    }

    /// Put an engine breakpoint reporting `kind` ([`Event::Throw`]) at
    /// `address` in process `pid`. It is not a user breakpoint: `bl` does
    /// not list it and `bc` does not clear it.
    pub fn add_throw_breakpoint(
        &mut self,
        pid: Pid,
        address: u64,
        kind: ThrowKind,
    ) -> Result<(), LiveError> {
        let p = self.procs.get_mut(&pid).ok_or(LiveError::Gone)?;
        if p.exited {
            return Err(LiveError::Gone);
        }
        p.insert(address)?;
        if !p.internal.contains(&(address, Internal::Throw(kind))) {
            p.internal.push((address, Internal::Throw(kind)));
        }
        Ok(())
    }

    /// Take out every engine breakpoint of `kind`, in every process.
    pub fn remove_throw_breakpoints(&mut self, kind: ThrowKind) {
        let first = self.first_pid();
        let user: BTreeSet<u64> = self
            .breakpoints
            .iter()
            .filter(|b| b.enabled && !b.unresolved)
            .map(|b| b.address)
            .collect();
        for (pid, p) in self.procs.iter_mut() {
            let gone: Vec<u64> = p
                .internal
                .iter()
                .filter(|(_, k)| *k == Internal::Throw(kind))
                .map(|(a, _)| *a)
                .collect();
            p.internal.retain(|(_, k)| *k != Internal::Throw(kind));
            for a in gone {
                let still_used =
                    p.internal.iter().any(|(b, _)| *b == a) || (*pid == first && user.contains(&a));
                if !still_used && !p.exited {
                    let _ = p.remove(a);
                }
            }
        }
    }

    /// The addresses of the engine breakpoints of `kind` in process `pid`
    /// (for tests and `.exr`-like reports).
    pub fn throw_breakpoints(&self, pid: Pid, kind: ThrowKind) -> Vec<u64> {
        self.procs
            .get(&pid)
            .map(|p| {
                p.internal
                    .iter()
                    .filter(|(_, k)| *k == Internal::Throw(kind))
                    .map(|(a, _)| *a)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The modules of process `pid` as last seen.
    pub fn process_modules(&self, pid: Pid) -> Vec<Module> {
        self.procs
            .get(&pid)
            .map(|p| p.modules.clone())
            .unwrap_or_default()
    }

    /// Enable, disable (`be`/`bd`) or clear (`bc`) breakpoints by id.
    pub fn change_breakpoint(&mut self, id: u32, action: BpAction) -> Result<bool, LiveError> {
        let Some(i) = self.breakpoints.iter().position(|b| b.id == id) else {
            return Ok(false);
        };
        match action {
            BpAction::Enable => self.breakpoints[i].enabled = true,
            BpAction::Disable => self.breakpoints[i].enabled = false,
            BpAction::Clear => {
                self.breakpoints.remove(i);
            }
        }
        self.sync_breakpoints()?;
        Ok(true)
    }

    /// Make the inserted bytes match the enabled breakpoints.
    fn sync_breakpoints(&mut self) -> Result<(), LiveError> {
        let pid = self.first_pid();
        let want: BTreeSet<u64> = self
            .breakpoints
            .iter()
            .filter(|b| b.enabled && !b.unresolved)
            .map(|b| b.address)
            .collect();
        let Some(p) = self.procs.get_mut(&pid) else {
            return Ok(());
        };
        let internal: BTreeSet<u64> = p.internal.iter().map(|(a, _)| *a).collect();
        let have: Vec<u64> = p.inserted.keys().copied().collect();
        for a in have {
            if !want.contains(&a) && !internal.contains(&a) {
                p.remove(a)?;
            }
        }
        for a in want {
            match p.insert(a) {
                // The module of a plain `bp` was unloaded: it stays
                // listed, with nothing to insert.
                Err(LiveError::BadBreakpoint { .. }) => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Would delivering `si` now end process `pid` (its second chance)?
    pub fn would_kill(&self, pid: Pid, si: &SigInfo) -> bool {
        coroner_proc::watch::would_kill(si, coroner_proc::watch::Dispositions::read(pid))
    }

    /// Take every `int3` out of every process (before a dump or detach).
    pub fn remove_all_breakpoints(&mut self) {
        for p in self.procs.values_mut() {
            let addrs: Vec<u64> = p.inserted.keys().copied().collect();
            for a in addrs {
                let _ = p.remove(a);
            }
        }
    }

    /// Put the enabled breakpoints and internal ones back (after a dump).
    pub fn reinsert_breakpoints(&mut self) -> Result<(), LiveError> {
        for p in self.procs.values_mut() {
            let internal: Vec<u64> = p.internal.iter().map(|(a, _)| *a).collect();
            for a in internal {
                let _ = p.insert(a);
            }
        }
        self.sync_breakpoints()
    }

    /// End the session leaving the target running (`qd`, `.detach`):
    /// every thread stopped, every byte restored, each thread detached; the
    /// event thread `tid` gets `sig` (`.detach /n`). With `stopped`
    /// (`.abandon`) the process is left stopped by `SIGSTOP`.
    pub fn detach(mut self, tid: Option<Tid>, sig: i32, stopped: bool) -> Result<(), LiveError> {
        self.stop_all()?;
        self.remove_all_breakpoints();
        let queued: BTreeMap<Tid, i32> = self
            .queued
            .iter()
            .filter_map(|(t, s)| match s {
                WaitStatus::Stopped { sig } => Some((*t, *sig)),
                _ => None,
            })
            .collect();
        if stopped {
            for p in self.procs.keys() {
                let _ = coroner_sys::signal::kill(*p, libc::SIGSTOP);
            }
        }
        for t in self.owner.keys() {
            // A signal that arrived while we were stopping threads, and was
            // never reported, is delivered as it would have been.
            let s = if Some(*t) == tid {
                sig
            } else {
                queued.get(t).copied().unwrap_or(0)
            };
            let _ = self.detach_thread(*t, s);
        }
        if stopped {
            self.wait_group_stopped();
        }
        self.procs.clear();
        Ok(())
    }

    /// After `.abandon`'s detach: each thread takes the SIGSTOP a moment
    /// later, on its way out of the ptrace stop. Wait for that (bounded by
    /// the break-in timeout), so that the process is stopped (`T`) when
    /// the session ends, not just about to be: whoever attaches next
    /// finds it as we left it.
    fn wait_group_stopped(&self) {
        let deadline = Instant::now() + self.break_timeout;
        let running = || {
            self.owner.iter().any(|(t, p)| {
                matches!(procfs::task_state(*p, *t), Ok(c) if !matches!(c, 'T' | 'Z' | 'X'))
            })
        };
        while running() && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }

    /// End the session and the target (`q`, `.kill`).
    pub fn kill(mut self) -> Result<(), LiveError> {
        for pid in self.procs.keys().copied().collect::<Vec<_>>() {
            let _ = coroner_sys::signal::kill(pid, libc::SIGKILL);
        }
        // A thread held in a stop we already saw may never see the
        // SIGKILL: one stopped at its exit (PTRACE_EVENT_EXIT) is past
        // signals. Let each go; the others die of the SIGKILL on the way.
        for t in self.threads_where(true) {
            let _ = self.cont(t, 0);
        }
        // Reap until every process is gone (or nothing is left to wait for).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.procs.values().any(|p| !p.exited) {
            match self.next_status(Some(deadline))? {
                Some((tid, WaitStatus::Exited { .. } | WaitStatus::Signaled { .. })) => {
                    let pid = self.pid_of(tid);
                    if tid.0 == pid.0 {
                        if let Some(p) = self.procs.get_mut(&pid) {
                            p.exited = true;
                        }
                    }
                }
                Some((tid, _)) => {
                    let _ = self.cont(tid, 0);
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Set registers of a stopped thread (`r rax=…`).
    pub fn set_regs(&mut self, tid: Tid, regs: &UserRegs) -> Result<(), LiveError> {
        let pid = self.pid_of(tid);
        // Whatever the kernel made of them is read back next time.
        self.regs_cache.borrow_mut().remove(&tid);
        ptrace::set_regs(tid, regs).map_err(pt("SETREGS", pid, tid))?;
        if let Some(t) = self.thread_mut(tid) {
            t.moved = true;
        }
        Ok(())
    }

    /// Write memory (keeps breakpoint bytes consistent).
    pub fn write_memory(&mut self, addr: u64, bytes: &[u8]) -> Result<(), LiveError> {
        let pid = self.current;
        let p = self.procs.get_mut(&pid).ok_or(LiveError::Gone)?;
        p.write_bytes(addr, bytes)?;
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            if let Some(orig) = p.inserted.get_mut(&a) {
                *orig = *b;
                p.write_bytes(a, &[INT3])?;
            }
        }
        Ok(())
    }

    /// Whether an event of the same stop of `tid` is still to be reported
    /// (module loads before the initial breakpoint): do not resume it yet.
    pub fn more_from(&self, tid: Tid) -> bool {
        self.pending
            .iter()
            .any(|e| e.stopped().is_some_and(|(_, t)| t == tid))
    }

    /// Process ids under the debugger, in order (the `|` listing).
    pub fn process_ids(&self) -> Vec<Pid> {
        self.procs.keys().copied().collect()
    }

    fn proc(&self) -> Option<&Process> {
        self.procs
            .get(&self.current)
            .or_else(|| self.procs.values().next())
    }

    /// Tids of the current process that are stopped.
    pub fn stopped_tids(&self) -> Vec<Tid> {
        self.proc()
            .map(|p| {
                p.threads
                    .iter()
                    .filter(|(_, s)| s.stop.is_some())
                    .map(|(t, _)| *t)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wrap the current process for the dump writer (all threads must be
    /// stopped; breakpoints must be out).
    pub fn adopt_for_dump(&self) -> coroner_proc::Attached {
        let p = self.proc();
        let tids = p
            .map(|p| p.threads.keys().copied().collect())
            .unwrap_or_default();
        coroner_proc::Attached::adopt(self.current, tids)
    }

    /// Whether any process is still alive.
    pub fn alive(&self) -> bool {
        self.procs.values().any(|p| !p.exited)
    }

    /// Forget an exited process.
    pub fn reap(&mut self, pid: Pid) {
        if self.procs.get(&pid).is_some_and(|p| p.exited) {
            self.procs.remove(&pid);
            if self.current == pid {
                if let Some(&p) = self.procs.keys().next() {
                    self.current = p;
                }
            }
        }
    }
}

/// `be`/`bd`/`bc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpAction {
    Enable,
    Disable,
    Clear,
}

impl Target for Live {
    fn kind(&self) -> TargetKind {
        TargetKind::Live
    }
    fn pid(&self) -> u32 {
        self.current.0 as u32
    }
    fn exe(&self) -> String {
        procfs::exe_path(self.current)
            .map(|p| escape_name(p.as_os_str().as_encoded_bytes()))
            .unwrap_or_default()
    }
    fn threads(&self) -> Vec<ThreadInfo> {
        let Some(p) = self.proc() else {
            return Vec::new();
        };
        p.threads
            .keys()
            .map(|&tid| ThreadInfo {
                tid,
                name: procfs::thread_name(p.pid, tid)
                    .map(|n| escape_name(&n))
                    .unwrap_or_default(),
            })
            .collect()
    }
    fn regs(&self, tid: Tid) -> Result<UserRegs, TargetError> {
        self.thread_regs(tid).map_err(|source| TargetError::Ptrace {
            what: "read the registers of",
            tid: tid.0,
            source,
        })
    }
    fn memory(&self) -> &dyn MemorySource {
        match self.proc() {
            Some(p) => &p.mem,
            None => &NoMemory,
        }
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.proc().map(|p| p.read_clean(addr, buf)).unwrap_or(0)
    }
    fn modules(&self) -> Vec<Module> {
        self.proc().map(|p| p.modules.clone()).unwrap_or_default()
    }
    fn exception(&self) -> Option<ExceptionInfo> {
        self.last_exception.clone()
    }
}

/// Take the finished lines out of `buf` (without their newline); at end
/// of file (`eof`), what is left is a line too.
fn take_lines(buf: &mut Vec<u8>, eof: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        lines.push(String::from_utf8_lossy(&buf[start..start + nl]).into_owned());
        start += nl + 1;
    }
    buf.drain(..start);
    if eof && !buf.is_empty() {
        lines.push(String::from_utf8_lossy(buf).into_owned());
        buf.clear();
    }
    lines
}

/// `/proc/PID/mem` for writing breakpoint bytes (a tracer may write even
/// read-only text: the kernel copies the page).
fn open_mem_rw(pid: Pid) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{}/mem", pid.0))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waiting for one thread while another's status is queued returns the
    /// first thread's own status and keeps the other queued as it was
    /// (taking it and pushing it back would take it again forever).
    #[test]
    fn waiting_for_one_thread_keeps_the_others_queued() {
        let cmd = [
            coroner_crashers::crasher_path()
                .expect("crasher binary")
                .into_os_string(),
            OsString::from("exit"),
            OsString::from("0"),
        ];
        let mut live = Live::launch(&cmd, true).expect("launch the crasher");
        let tid = Tid(live.first_pid().0);
        let other = (Tid(i32::MAX), WaitStatus::Exited { code: 7 });
        live.queued.push_back(other);
        // Launched, it runs to its entry point's breakpoint.
        let deadline = Instant::now() + Duration::from_secs(60);
        let st = live.next_status_of(tid, Some(deadline)).unwrap();
        assert!(
            matches!(st, Some(WaitStatus::Stopped { .. })),
            "the entry breakpoint's stop: {st:?}"
        );
        assert_eq!(live.queued, [other]);
        // One queued for `tid` itself is taken from the queue first.
        live.queued.push_back((tid, WaitStatus::Exited { code: 3 }));
        let st = live.next_status_of(tid, Some(deadline)).unwrap();
        assert_eq!(st, Some(WaitStatus::Exited { code: 3 }));
        assert_eq!(live.queued, [other]);
        live.queued.clear();
        live.set_stop(tid, Stop::Quiet);
        live.kill().unwrap();
    }

    #[test]
    fn output_is_cut_into_lines_and_an_unfinished_one_waits() {
        let mut buf = b"one\ntwo\nthr".to_vec();
        assert_eq!(take_lines(&mut buf, false), ["one", "two"]);
        assert_eq!(buf, b"thr");
        buf.extend(b"ee\n\n");
        assert_eq!(take_lines(&mut buf, false), ["three", ""]);
        assert!(buf.is_empty());
        // At end of file the rest is a line of its own.
        buf.extend(b"last words");
        assert_eq!(take_lines(&mut buf, false), Vec::<String>::new());
        assert_eq!(take_lines(&mut buf, true), ["last words"]);
        assert!(buf.is_empty());
        // Bytes that are not UTF-8 are replaced, not dropped.
        let mut buf = b"a\xffb\n".to_vec();
        assert_eq!(take_lines(&mut buf, true), ["a\u{fffd}b"]);
    }
}
