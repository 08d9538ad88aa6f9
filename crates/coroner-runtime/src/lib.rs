//! The in-process crash runtime (DESIGN.md "Three ways a crash is caught",
//! tier 1, live JIT): what DESIGN calls the `coroner` Rust crate
//! (`coroner::install()`) is this crate, `coroner_runtime::install()`;
//! `libcoroner.so` (crate `coroner-preload`) is a thin C ABI over it.
//!
//! [`install`] reads the configuration's compiled plan (compiling it only
//! when it is missing or stale; see the modules `start` and `compile`),
//! precomputes everything the crash path needs without allocating, and
//! puts `SA_SIGINFO|SA_ONSTACK` handlers in for SIGSEGV,
//! SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP and SIGSYS, with a guard-paged
//! alternate stack for the calling thread. On a crash that would kill the
//! process the handler launches the AeDebug debugger against the live
//! process (`%ld` pid, `%ld` an inherited eventfd, `%p` the address of a
//! [`coroner_types::jit::LinuxJitDebugInfo`]), and, when the debugger
//! declines, runs the LocalDumps dumper, writes a report line, and lets the
//! signal kill the process as it would have without coroner. The crash
//! path is the module `crash` (async-signal-safe; see its docs).
//!
//! # Report line
//! When `CORONER_RUN_FD` names an open descriptor at install time (and the
//! process is not `AT_SECURE`), the crash path writes exactly one line to
//! it (to a private duplicate, so the program closing the number does not
//! redirect it):
//!
//! ```text
//! coroner-report v1 pid=<pid> tid=<tid> signal=<n> code=<si_code> addr=0x<hex> reason=<r> debugger=<d> event=<e> dump=<w>
//! ```
//! - `addr`: `si_addr` for SIGSEGV/SIGBUS/SIGILL/SIGFPE faults (`si_code` >
//!   0), otherwise the PC of the signalled thread;
//! - `reason`: `fault | abort | fail-fast | debug-break | rust-panic`;
//! - `debugger`: `none` (not configured) `| excluded | declined` (`auto = 0`
//!   and no yes on the terminal) `| traced` (already attached: it had its
//!   chance) `| launched | failed` (could not be spawned);
//! - `event`: `signalled | exited` (debugger exited without signalling, or
//!   could not be exec'ed) `| timeout` (killed) `| -` (not launched);
//! - `dump`: `written` (dumper exited 0) `| failed | none` (no LocalDumps,
//!   or the debugger signalled).
//!
//! # Program dispositions
//! The `sigaction`, `signal` (also `bsd_signal`, `ssignal`), `sysv_signal`,
//! `sigset`, `sigignore`, `siginterrupt` and `pthread_create` entry points
//! here are what `libcoroner.so` exports as interposers; see the module
//! `dispositions`. A Rust program that links
//! this crate and calls [`install`] (no preload) gets no interposition:
//! handlers already installed (std's SIGSEGV/SIGBUS reporter) are chained
//! to, and when one resets the disposition to `SIG_DFL` the runtime takes
//! over again before the fault repeats.

mod altstack;
mod bytes;
mod compile;
mod crash;
mod dispositions;
mod plan;
mod start;

pub use altstack::ALT_STACK_SIZE;
pub use crash::{Reason, CRASH_SIGNALS};
pub use dispositions::{
    pthread_create, sigaction, sigignore, siginterrupt, signal, signal as bsd_signal, sigset,
    sysv_signal, HandlerError, StartRoutine, SIG_HOLD,
};
pub use plan::ENV_RUN_FD;

use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// The first words of the report line.
pub const REPORT_PREFIX: &str = "coroner-report v1";

/// Why [`install`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The configuration could not be loaded. The handlers ARE installed
    /// (crashes are still reported on `CORONER_RUN_FD` and re-raised), but
    /// with no debugger and no LocalDumps.
    #[error("coroner: configuration not loaded, crash handling without debugger or dumps: {0}")]
    Config(#[source] coroner_config::ConfigError),
    /// The same for the preloaded library, which has the plan compiler
    /// (`coroner config compile-plan`) load the configuration: its message,
    /// or why it could not be run.
    #[error("coroner: configuration not loaded, crash handling without debugger or dumps: {0}")]
    Compile(String),
    /// The signal handlers could not be installed.
    #[error("coroner: {0}")]
    Handlers(#[source] HandlerError),
    /// The calling thread's alternate signal stack could not be set up
    /// (the handlers are installed; a stack overflow on this thread will
    /// not reach them).
    #[error("coroner: alternate signal stack: {0}")]
    AltStack(#[source] std::io::Error),
}

/// Installs the crash runtime (idempotent: a second call after success
/// does nothing and returns `Ok`). See the crate docs. A missing or stale
/// plan is compiled in this process: a program that links the runtime
/// links the TOML parser too.
pub fn install() -> Result<(), InstallError> {
    install_with(true, full_in_process)
}

/// [`install`] for `libcoroner.so`: everything but the panic hook. The
/// hook would go into the library's own copy of std, which never sees the
/// program's panics (a preloaded Rust program keeps its own std), and
/// setting it costs every process start an allocation and the pages of
/// std's hook code. A missing or stale plan is compiled by `coroner config
/// compile-plan` (the module `compile`), so that the library, loaded into
/// every process, does not carry the TOML parser.
pub fn install_preloaded() -> Result<(), InstallError> {
    install_with(false, full_by_compiler)
}

/// How [`install_with`] gets the plan when the quick path cannot: given
/// the environment, whether the plan is worth storing, `AT_SECURE`, and
/// the facts of this process. Passed as a function so that each entry
/// point links only its own (the preloaded library has no TOML parser).
type Fallback = fn(
    &start::Env<'_>,
    bool,
    bool,
    &plan::Facts<'_>,
    &mut plan::Arena,
) -> (crash::Plan, Option<InstallError>);

/// [`install`]'s fallback: parse the TOML here.
fn full_in_process(
    _env: &start::Env<'_>,
    store: bool,
    secure: bool,
    facts: &plan::Facts<'_>,
    arena: &mut plan::Arena,
) -> (crash::Plan, Option<InstallError>) {
    let (plan, e) = start::full(store, secure, facts, arena);
    (plan, e.map(InstallError::Config))
}

/// [`install_preloaded`]'s fallback: have `coroner config compile-plan`
/// compile the plan (not in the compiler itself: there a stale plan is no
/// configuration).
fn full_by_compiler(
    env: &start::Env<'_>,
    store: bool,
    secure: bool,
    facts: &plan::Facts<'_>,
    arena: &mut plan::Arena,
) -> (crash::Plan, Option<InstallError>) {
    let empty = plan::empty_plan(facts.report_fd);
    if env.compiling {
        return (empty, None);
    }
    let path = facts.path.map(|p| arena.copy(p));
    let bytes = match compile::run(secure, store, path) {
        Ok(bytes) => bytes,
        Err(f) => return (empty, Some(InstallError::Compile(compile::describe(f)))),
    };
    match coroner_config::plan::PlanView::parse(bytes) {
        Some(view) => (plan::plan_from_view(&view, facts, arena), None),
        None => (
            empty,
            Some(InstallError::Compile(compile::describe(
                compile::Failure::Unreadable,
            ))),
        ),
    }
}

/// How far [`install`] got; its lock is the install lock.
struct Installed {
    /// The crash plan is published (it is built once, even if the handlers
    /// then fail and `install` is called again).
    plan: bool,
    /// Everything is in.
    done: bool,
}

fn install_with(panic_hook: bool, fallback: Fallback) -> Result<(), InstallError> {
    // In .data rather than .bss: the library's .data page is written by
    // its relocations anyway, where a .bss page is one more page fault.
    #[link_section = ".data.coroner_install"]
    static STATE: Mutex<Installed> = Mutex::new(Installed {
        plan: false,
        done: false,
    });
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.done {
        return Ok(());
    }
    let mut config_error = None;
    if !state.plan {
        // SAFETY: STATE's lock is the install lock: one Arena at a time.
        let mut arena = unsafe { plan::Arena::new() };
        // SAFETY: getauxval reads the process's own auxiliary vector.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        // SAFETY: the environment is only read until `facts` and the quick
        // path are done with it, below, under the install lock; PATH is
        // copied into the arena when the plan keeps it.
        let env = unsafe { start::Env::from_environ() };
        let facts = plan::Facts {
            path: env.path.filter(|_| !secure),
            report_fd: start::report_fd(&env, secure),
            secure,
        };
        let plan = match start::quick(&env, secure, &mut arena) {
            start::Quick::Nothing => plan::empty_plan(facts.report_fd),
            start::Quick::Plan(bytes) => match coroner_config::plan::PlanView::parse(bytes) {
                Some(view) => plan::plan_from_view(&view, &facts, &mut arena),
                None => plan::empty_plan(facts.report_fd),
            },
            start::Quick::Full { store } => {
                let (plan, e) = fallback(&env, store, secure, &facts, &mut arena);
                config_error = e;
                plan
            }
        };
        crash::publish_plan(&plan);
        state.plan = true;
    }
    let stack = altstack::give_main_thread();
    dispositions::install_handlers().map_err(InstallError::Handlers)?;
    if panic_hook {
        set_panic_hook();
    }
    state.done = true;
    if let Some(e) = config_error {
        return Err(e);
    }
    stack.map(|_| ()).map_err(InstallError::AltStack)
}

/// Serialises unit tests that use the start-up arena (`install` holds its
/// own lock for that).
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes that a panic happened, then runs the previous hook. The crash path
/// reports a SIGABRT as `rust-panic` only if the aborting thread is still
/// panicking (`panic = abort`, a panic that cannot unwind, a panic while
/// panicking): a panic that `catch_unwind` caught is over, and a later
/// `abort()` or fault is reported as what it is.
fn set_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        crash::PANIC_HOOK_RAN.store(true, Ordering::Release);
        previous(info)
    }));
}

/// Whether [`install`] has put the handlers in.
pub fn is_installed() -> bool {
    dispositions::ACTIVE.load(Ordering::Acquire)
}

/// DebugBreak: a breakpoint instruction (`int3` on x86; SIGTRAP raised on
/// the calling thread elsewhere), with SIGTRAP unblocked first. An attached
/// debugger stops at it as at any breakpoint (SIGTRAP `SI_KERNEL`, CDB's
/// "Break instruction exception") and continuing goes on after it; without
/// one the handler runs the JIT steps with reason `debug-break` (a debugger
/// that attaches and signals sees the SIGTRAP again and can continue;
/// otherwise the process dies by SIGTRAP, as DebugBreak without a debugger
/// ends a Windows process).
pub fn debug_break() {
    crash::REASON_HINT.store(Reason::DebugBreak as u8, Ordering::Release);
    crash::breakpoint();
}

/// Debugger.Launch: starts the configured debugger now against this
/// process, with a JIT block for the calling thread (its `getcontext`
/// registers and a synthetic SIGTRAP/`SI_USER` siginfo). Returns true once
/// it attached and signalled the event (or if a debugger is attached
/// already); false when none is configured, the executable is excluded,
/// the user declined, it exited or timed out, or a crash is being handled.
pub fn launch_debugger() -> bool {
    is_installed() && crash::launch_from_here()
}

/// FailFast: writes `message` to stderr and goes straight to the JIT and
/// LocalDumps steps with reason `fail-fast`, skipping the program's own
/// SIGABRT handler; the process then dies by SIGABRT. Never returns.
pub fn fail_fast(message: &str) -> ! {
    fail_fast_bytes(message.as_bytes())
}

/// [`fail_fast`] with the message as bytes (the C API's, which need not be
/// UTF-8). Allocates nothing: the heap may be what failed. The first
/// [`crash::NOTE_MAX`] bytes (up to a NUL) go to the LocalDumps dumper,
/// which files them in the report's notes.
pub fn fail_fast_bytes(message: &[u8]) -> ! {
    crash::write_all(2, message);
    crash::write_all(2, b"\n");
    if is_installed() {
        crash::set_note(message);
        crash::REASON_HINT.store(Reason::FailFast as u8, Ordering::Release);
        crash::force_ours(libc::SIGABRT);
        crash::raise_unblocked(libc::SIGABRT);
    }
    crash::set_default(libc::SIGABRT);
    crash::raise_unblocked(libc::SIGABRT);
    std::process::abort()
}
