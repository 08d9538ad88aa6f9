//! The program's signal dispositions (STYLE.md 8, "chain, don't
//! replace"), behind the interposed `sigaction`/`signal` family, and the
//! `pthread_create` wrapper that gives each thread its alternate stack.
//! Not the crash path: these run in normal context (a `sigaction` called
//! from a signal handler is covered by blocking signals around the lock).
//!
//! Every libc entry point that sets a disposition is interposed, because
//! glibc's own ones call its internal `__sigaction`, which no interposer
//! sees: `sigaction` (and `__sigaction`), `signal`/`bsd_signal`/`ssignal`,
//! `sysv_signal`/`__sysv_signal` (what `signal` becomes under a strict
//! `-std=c99`), `sigset`, `sigignore` and `siginterrupt`. `sighold`,
//! `sigrelse` and `sigpause` only change the signal mask and are left to
//! libc; `sigvec` is a compatibility symbol no program can link any more.
//!
//! For the seven crash signals:
//! - the program's own handler goes into the kernel as is (nothing of
//!   coroner between the signal and it);
//! - except a one-shot handler (`SA_RESETHAND`, `sysv_signal`): the kernel
//!   would reset it to `SIG_DFL` behind our back, so ours goes in instead,
//!   without `SA_RESETHAND`, with the handler's mask and `SA_NODEFER`/
//!   `SA_RESTART`; ours calls it and does the reset itself (see
//!   `crash::chain_to_program`), so the next fault is ours;
//! - `SIG_DFL` puts our handler in, which stands in for the default action;
//! - `SIG_IGN` puts our handler in, which drops asynchronous deliveries and
//!   treats synchronous faults as fatal (the kernel forces those);
//! - a query returns what the program set (after a one-shot handler ran,
//!   `SIG_DFL`, as the kernel would say), never ours.
//!
//! Other signals go straight to libc.

use crate::altstack;
use crate::crash::{
    self, on_signal, raw_sigaction, slot_of, KernelSigaction, CRASH_SIGNALS, PROGRAM_FLAGS,
    PROGRAM_HANDLER, WISH, WISH_DFL, WISH_HANDLER, WISH_IGN, WISH_PENDING,
};
use libc::{c_int, c_void, pthread_attr_t, pthread_t, sighandler_t};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
/// The start routine `pthread_create` takes.
pub type StartRoutine = extern "C" fn(*mut c_void) -> *mut c_void;
type PthreadCreateFn =
    unsafe extern "C" fn(*mut pthread_t, *const pthread_attr_t, StartRoutine, *mut c_void) -> c_int;

#[link_section = ".data.coroner_start"]
static REAL_SIGACTION: AtomicUsize = AtomicUsize::new(0);
static REAL_PTHREAD_CREATE: AtomicUsize = AtomicUsize::new(0);
// The statics `install` writes are in `.data` (see `crash`).

/// The program's wishes as it set them (what queries return), per slot of
/// `CRASH_SIGNALS`; `None` before `install` read the kernel's.
#[link_section = ".data.coroner_start"]
static WISHES: Mutex<[Option<libc::sigaction>; 7]> = Mutex::new([None; 7]);

/// Set (under the `WISHES` lock) once `install` has put our handlers in.
#[link_section = ".data.coroner_start"]
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The next definition of `name` after this object (libc's), looked up once.
fn next_symbol(cache: &AtomicUsize, name: &std::ffi::CStr) -> usize {
    let cached = cache.load(Ordering::Acquire);
    if cached != 0 {
        return cached;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; it returns
    // null or the address of the next definition after this object.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    cache.store(p, Ordering::Release);
    p
}

fn real_sigaction() -> io::Result<SigactionFn> {
    match next_symbol(&REAL_SIGACTION, c"sigaction") {
        0 => Err(io::Error::other(
            "dlsym(RTLD_NEXT, \"sigaction\") found nothing",
        )),
        // SAFETY: the next `sigaction` after us is libc's, with this
        // signature.
        p => Ok(unsafe { std::mem::transmute::<usize, SigactionFn>(p) }),
    }
}

fn real_pthread_create() -> io::Result<PthreadCreateFn> {
    match next_symbol(&REAL_PTHREAD_CREATE, c"pthread_create") {
        0 => Err(io::Error::other(
            "dlsym(RTLD_NEXT, \"pthread_create\") found nothing",
        )),
        // SAFETY: the next `pthread_create` after us is libc's, with this
        // signature.
        p => Ok(unsafe { std::mem::transmute::<usize, PthreadCreateFn>(p) }),
    }
}

/// The `WISHES` lock with every signal blocked on this thread, so a
/// handler calling `sigaction` cannot interrupt the holder and deadlock.
struct Locked {
    guard: MutexGuard<'static, [Option<libc::sigaction>; 7]>,
    old_mask: u64,
}

fn lock() -> Locked {
    let old_mask = crate::crash::sigprocmask(libc::SIG_BLOCK, !0);
    let guard = WISHES.lock().unwrap_or_else(|e| e.into_inner());
    Locked { guard, old_mask }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // The mask saved in `lock`.
        crate::crash::sigprocmask(libc::SIG_SETMASK, self.old_mask);
    }
}

/// Our handler as it goes into the kernel. In front of a program handler
/// (`lend`) it takes that handler's mask and `SA_NODEFER`/`SA_RESTART`, so
/// the handler runs with the signals blocked that it asked for; never
/// `SA_RESETHAND` (emulated, see the module docs).
fn our_action(lend: Option<&libc::sigaction>) -> libc::sigaction {
    // SAFETY: all-zero is a valid sigaction (empty mask, no flags).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_signal as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    if let Some(p) = lend.filter(|p| is_handler(p.sa_sigaction)) {
        act.sa_mask = p.sa_mask;
        act.sa_flags |= p.sa_flags & (libc::SA_NODEFER | libc::SA_RESTART);
    }
    act
}

fn is_handler(h: sighandler_t) -> bool {
    h != libc::SIG_DFL && h != libc::SIG_IGN
}

/// A program handler the kernel must not hold itself.
fn is_one_shot(act: &libc::sigaction) -> bool {
    is_handler(act.sa_sigaction) && act.sa_flags & libc::SA_RESETHAND != 0
}

/// Puts our handler in the kernel for `sig` (in front of `lend`, the
/// program's handler, if any).
fn install_ours(real: SigactionFn, sig: c_int, lend: Option<&libc::sigaction>) -> io::Result<()> {
    let act = our_action(lend);
    // SAFETY: `act` is a valid sigaction; no old action wanted.
    if unsafe { real(sig, &act, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Records `wish` for `slot` where the crash path reads it.
fn publish(slot: usize, wish: &libc::sigaction) {
    let h = wish.sa_sigaction;
    PROGRAM_HANDLER[slot].store(h, Ordering::Release);
    PROGRAM_FLAGS[slot].store(wish.sa_flags, Ordering::Release);
    let kind = match h {
        libc::SIG_DFL => WISH_DFL,
        libc::SIG_IGN => WISH_IGN,
        _ => WISH_HANDLER,
    };
    WISH[slot].store(kind, Ordering::Release);
}

/// Why `install` could not put the handlers in.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// libc's own function could not be found behind the interposer.
    #[error("finding libc's {0}: {1}")]
    Symbol(&'static str, #[source] io::Error),
    /// sigaction refused our handler.
    #[error("installing the handler for signal {signal}: {source}")]
    Sigaction {
        signal: c_int,
        #[source]
        source: io::Error,
    },
}

/// Puts our handler in for each crash signal and takes what the kernel
/// held before as the program's wish, one `sigaction` call per signal
/// (ours in, the old one out; a second call when the old one is a handler,
/// installed before us and not through the interposer, which ours then
/// stands in front of and chains to). Between the swap and the publishing
/// of the old action the wish is `WISH_PENDING`, so a delivery on another
/// thread waits for it instead of taking the signal for a crash; this
/// thread has every signal blocked meanwhile.
pub(crate) fn install_handlers() -> Result<(), HandlerError> {
    // libc's pthread_create is looked up at the first thread (one dlsym
    // less at every process start). The cache is written, not read, here:
    // reading an untouched page first costs a second page fault to write.
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; it returns
    // null or the address of the next definition after this object.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr()) } as usize;
    REAL_SIGACTION.store(p, Ordering::Release);
    let real = real_sigaction().map_err(|e| HandlerError::Symbol("sigaction", e))?;
    let mut locked = lock();
    if ACTIVE.load(Ordering::Acquire) {
        return Ok(());
    }
    let plain = our_action(None);
    for (slot, &sig) in CRASH_SIGNALS.iter().enumerate() {
        // The old action goes straight into its WISHES slot (a sigaction
        // is too big to copy without a memcpy call; see `crate::bytes`).
        // SAFETY: all-zero is a valid sigaction to receive the old one.
        let old = locked.guard[slot].insert(unsafe { std::mem::zeroed() });
        WISH[slot].store(WISH_PENDING, Ordering::Release);
        // SAFETY: `plain` is a valid sigaction; `old` a live out-pointer.
        if unsafe { real(sig, &plain, old) } != 0 {
            let source = io::Error::last_os_error();
            // Refused: the kernel keeps what it had, unknown to us.
            locked.guard[slot] = None;
            WISH[slot].store(WISH_DFL, Ordering::Release);
            return Err(HandlerError::Sigaction {
                signal: sig,
                source,
            });
        }
        publish(slot, old);
        if is_handler(old.sa_sigaction) {
            install_ours(real, sig, Some(old)).map_err(|source| HandlerError::Sigaction {
                signal: sig,
                source,
            })?;
        }
        if slot == 0 {
            let mut k = KernelSigaction::default();
            // SAFETY: query only; `k` is a live out-pointer in the kernel's
            // layout.
            unsafe { raw_sigaction(sig, std::ptr::null(), &mut k) };
            crash::set_our_action(k);
        }
    }
    ACTIVE.store(true, Ordering::Release);
    Ok(())
}

/// The interposed `sigaction(2)`: see the module docs.
///
/// # Safety
/// As libc's `sigaction`: `act` and `oldact` are null or valid pointers.
pub unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    let real = match real_sigaction() {
        Ok(r) => r,
        Err(_) => {
            // SAFETY: this thread's errno slot.
            unsafe { *libc::__errno_location() = libc::ENOSYS };
            return -1;
        }
    };
    let Some(slot) = slot_of(sig) else {
        // SAFETY: forwarded as the caller gave them.
        return unsafe { real(sig, act, oldact) };
    };
    let mut locked = lock();
    if !ACTIVE.load(Ordering::Acquire) {
        drop(locked);
        // SAFETY: forwarded as the caller gave them.
        return unsafe { real(sig, act, oldact) };
    }
    let previous = current_wish(&mut locked, slot);
    if !act.is_null() {
        // SAFETY: the caller passes a valid sigaction.
        let new = unsafe { *act };
        // The wish first, so whatever is in the kernel until the next line
        // (ours chains to a handler) already follows it.
        publish(slot, &new);
        let ok = if is_handler(new.sa_sigaction) && !is_one_shot(&new) {
            // SAFETY: the program's own action, as it gave it.
            unsafe { real(sig, &new, std::ptr::null_mut()) == 0 }
        } else {
            install_ours(real, sig, Some(&new)).is_ok()
        };
        if !ok {
            // The kernel refused the change (errno is set): the previous
            // wish stands, in the kernel as before.
            if let Some(p) = previous {
                publish(slot, &p);
            }
            return -1;
        }
        locked.guard[slot] = Some(new);
    }
    if !oldact.is_null() {
        if let Some(p) = previous {
            // SAFETY: the caller passes a writable sigaction.
            unsafe { *oldact = p };
        }
    }
    0
}

/// The program's wish for `slot` as a query must report it: a one-shot
/// handler that has run (the crash path swapped its word to `SIG_DFL`) is
/// `SIG_DFL` now, with its flags and mask, as the kernel keeps them.
fn current_wish(locked: &mut Locked, slot: usize) -> Option<libc::sigaction> {
    let wish = locked.guard[slot].as_mut()?;
    if is_one_shot(wish) && PROGRAM_HANDLER[slot].load(Ordering::Acquire) == libc::SIG_DFL {
        wish.sa_sigaction = libc::SIG_DFL;
    }
    Some(*wish)
}

unsafe fn signal_with(
    sig: c_int,
    handler: sighandler_t,
    flags: c_int,
    mask_self: bool,
) -> sighandler_t {
    // SAFETY: all-zero is a valid sigaction (empty mask).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: `act.sa_mask` is a live sigset; sigaddset validates `sig`.
    if mask_self && unsafe { libc::sigaddset(&mut act.sa_mask, sig) } != 0 {
        return libc::SIG_ERR;
    }
    // SAFETY: all-zero is a valid sigaction to receive the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both point to live sigactions on this frame.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// Signals `siginterrupt(sig, 1)` asked not to restart system calls
/// (bit `sig - 1`); `signal` leaves `SA_RESTART` out for them, as glibc's.
static INTERRUPTING: AtomicU64 = AtomicU64::new(0);

fn sig_bit(sig: c_int) -> u64 {
    if (1..=64).contains(&sig) {
        1u64 << (sig - 1)
    } else {
        0
    }
}

/// The interposed `signal(3)` (glibc's BSD semantics: `SA_RESTART` unless
/// `siginterrupt` said otherwise, the signal blocked in its handler); also
/// `bsd_signal` and `ssignal`.
///
/// # Safety
/// As libc's `signal`: `handler` is SIG_DFL, SIG_IGN or a function.
pub unsafe fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    let flags = if INTERRUPTING.load(Ordering::Relaxed) & sig_bit(sig) != 0 {
        0
    } else {
        libc::SA_RESTART
    };
    // SAFETY: forwarded precondition.
    unsafe { signal_with(sig, handler, flags, true) }
}

/// `SIG_HOLD` of `<signal.h>` (System V): `sigset` blocks the signal.
pub const SIG_HOLD: sighandler_t = 2;
/// glibc's `_NSIG`: signal numbers are below it.
const NSIG: c_int = 65;

fn set_errno(e: c_int) {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The interposed `sigset(3)` (System V): `SIG_HOLD` blocks `sig` and
/// returns its disposition (or `SIG_HOLD` if it was blocked already);
/// anything else becomes the disposition (no flags, empty mask, as glibc
/// sets it) and unblocks `sig`, returning the previous disposition, or
/// `SIG_HOLD` if `sig` was blocked.
///
/// # Safety
/// As libc's `sigset`: `disp` is SIG_DFL, SIG_IGN, SIG_HOLD or a function.
pub unsafe fn sigset(sig: c_int, disp: sighandler_t) -> sighandler_t {
    if disp == libc::SIG_ERR || !(1..NSIG).contains(&sig) {
        set_errno(libc::EINVAL);
        return libc::SIG_ERR;
    }
    // SAFETY: all-zero is a valid (empty) sigset_t.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut was: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset; `sig` was range-checked.
    unsafe { libc::sigaddset(&mut set, sig) };
    // SAFETY: all-zero is a valid sigaction to receive the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    if disp == SIG_HOLD {
        // SAFETY: live sigsets on this frame.
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut was) } != 0 {
            return libc::SIG_ERR;
        }
        // SAFETY: `was` is the live sigset just filled.
        if unsafe { libc::sigismember(&was, sig) } == 1 {
            return SIG_HOLD;
        }
        // SAFETY: a query into a live sigaction.
        if unsafe { sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            return libc::SIG_ERR;
        }
        return old.sa_sigaction;
    }
    // SAFETY: all-zero is a valid sigaction (empty mask, no flags).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = disp;
    // SAFETY: both point to live sigactions on this frame.
    if unsafe { sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    // SAFETY: live sigsets on this frame.
    if unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut was) } != 0 {
        return libc::SIG_ERR;
    }
    // SAFETY: `was` is the live sigset just filled.
    if unsafe { libc::sigismember(&was, sig) } == 1 {
        SIG_HOLD
    } else {
        old.sa_sigaction
    }
}

/// The interposed `sigignore(3)`: `SIG_IGN`, no flags, empty mask.
///
/// # Safety
/// As libc's `sigignore` (any `sig`; a bad one fails with EINVAL).
pub unsafe fn sigignore(sig: c_int) -> c_int {
    // SAFETY: all-zero is a valid sigaction (empty mask, no flags).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `act` is a live sigaction; no old one wanted.
    unsafe { sigaction(sig, &act, std::ptr::null_mut()) }
}

/// The interposed `siginterrupt(3)`: takes `SA_RESTART` out of (`flag`
/// non-zero) or puts it into `sig`'s current action, and remembers the
/// choice for later `signal` calls.
///
/// # Safety
/// As libc's `siginterrupt` (any `sig`; a bad one fails with EINVAL).
pub unsafe fn siginterrupt(sig: c_int, flag: c_int) -> c_int {
    // SAFETY: all-zero is a valid sigaction to receive the current one.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query into a live sigaction.
    if unsafe { sigaction(sig, std::ptr::null(), &mut act) } != 0 {
        return -1;
    }
    if flag != 0 {
        INTERRUPTING.fetch_or(sig_bit(sig), Ordering::Relaxed);
        act.sa_flags &= !libc::SA_RESTART;
    } else {
        INTERRUPTING.fetch_and(!sig_bit(sig), Ordering::Relaxed);
        act.sa_flags |= libc::SA_RESTART;
    }
    // SAFETY: `act` is a live sigaction; no old one wanted.
    unsafe { sigaction(sig, &act, std::ptr::null_mut()) }
}

/// The interposed `sysv_signal(3)`: one-shot, not blocked in its handler.
///
/// # Safety
/// As libc's `sysv_signal`.
pub unsafe fn sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    // SAFETY: forwarded precondition.
    unsafe { signal_with(sig, handler, libc::SA_RESETHAND | libc::SA_NODEFER, false) }
}

struct Start {
    routine: StartRoutine,
    arg: *mut c_void,
}

extern "C" fn thread_start(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Box<Start> leaked by `pthread_create` below, handed
    // to exactly this thread.
    let start = unsafe { Box::from_raw(p.cast::<Start>()) };
    altstack::give_this_thread();
    (start.routine)(start.arg)
}

/// The interposed `pthread_create(3)`: the new thread first gets its own
/// guard-paged alternate signal stack (freed when it exits).
///
/// # Safety
/// As libc's `pthread_create`.
pub unsafe fn pthread_create(
    thread: *mut pthread_t,
    attr: *const pthread_attr_t,
    routine: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    let Ok(real) = real_pthread_create() else {
        return libc::ENOSYS;
    };
    if !ACTIVE.load(Ordering::Acquire) {
        // SAFETY: forwarded as the caller gave them.
        return unsafe { real(thread, attr, routine, arg) };
    }
    let start = Box::into_raw(Box::new(Start { routine, arg }));
    // SAFETY: forwarded arguments; our start routine takes the box.
    let r = unsafe { real(thread, attr, thread_start, start.cast()) };
    if r != 0 {
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    r
}
