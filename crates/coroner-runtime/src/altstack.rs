//! Guard-paged alternate signal stacks (STYLE.md 7): one per thread, so a
//! stack overflow can still run the handler. The calling thread of
//! `install` (the main thread, when preloaded) gets a static one; every
//! thread started through the interposed `pthread_create` gets a mapped one
//! at its start, freed by a thread-specific-data destructor when it exits.
//! A thread that already has an alternate stack (the program's, or std's)
//! keeps it. Not the crash path.
//!
//! The static stack lives in `.bss`, which the library maps anyway: its
//! pages cost nothing until a signal runs on them. Guard pages are
//! `MADV_GUARD_INSTALL` guard regions (Linux 6.13): page-table markers
//! that fault like `PROT_NONE` but split no mapping, which is most of what
//! an `mprotect` guard costs (measured in docs/benchmarks.md); older
//! kernels get the `mprotect`.

use std::io;
use std::sync::OnceLock;

/// Usable size of each alternate stack (below it: one PROT_NONE guard page).
pub const ALT_STACK_SIZE: usize = 64 * 1024;

/// The page size from the auxiliary vector (`sysconf` would touch one
/// more page of libc at every process start; `at_secure` has read the
/// vector already).
fn page_size() -> usize {
    // SAFETY: getauxval reads the process's auxiliary vector.
    match unsafe { libc::getauxval(libc::AT_PAGESZ) } {
        0 => 4096,
        p => p as usize,
    }
}

/// `MADV_GUARD_INSTALL` (Linux 6.13, not yet in the libc crate).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Makes `[base, base + len)` fault on any access: a guard region, or
/// `PROT_NONE` where the kernel has none. Raw syscalls: `syscall(2)` is on
/// a page of libc the runtime touches anyway, the wrappers each one more
/// page fault in a fresh process.
fn guard(base: *mut libc::c_void, len: usize) -> io::Result<()> {
    // SAFETY: madvise(2) on memory this module owns and nothing uses.
    if unsafe { libc::syscall(libc::SYS_madvise, base, len, MADV_GUARD_INSTALL) } == 0 {
        return Ok(());
    }
    // SAFETY: mprotect(2) on the same memory.
    if unsafe { libc::syscall(libc::SYS_mprotect, base, len, libc::PROT_NONE) } == 0 {
        return Ok(());
    }
    Err(io::Error::last_os_error())
}

/// Page size the static stack is laid out for (x86); with another page
/// size the first thread gets a mapped stack like the others.
const STATIC_PAGE: usize = 4096;

/// The first installing thread's stack: a guard page, then the stack, from
/// the first page boundary in it. Not aligned by the type: a page-aligned
/// static would page-align all of `.bss`, which then no longer shares its
/// first page with `.data` (written anyway), and that page is one more
/// fault at every start (crtstuff's `completed` flag lives there).
struct MainStack(core::cell::UnsafeCell<[u8; 2 * STATIC_PAGE + ALT_STACK_SIZE]>);

// SAFETY: the bytes are only ever touched by the kernel (signal frames on
// the thread whose alternate stack they are) and by that thread's handlers;
// Rust code never reads or writes them.
unsafe impl Sync for MainStack {}

static MAIN_STACK: MainStack = MainStack(core::cell::UnsafeCell::new(
    [0; 2 * STATIC_PAGE + ALT_STACK_SIZE],
));

/// The guard page of [`MAIN_STACK`]: its first page boundary.
fn main_stack_base() -> *mut libc::c_void {
    let start = MAIN_STACK.0.get().cast::<u8>();
    let skip = (STATIC_PAGE - start as usize % STATIC_PAGE) % STATIC_PAGE;
    // SAFETY: `skip` < STATIC_PAGE, inside the static, which has a spare
    // page for it.
    unsafe { start.add(skip) }.cast()
}

/// Gives the calling thread (the first to install) the static guarded
/// stack, unless it has an alternate stack already: one `mprotect` for the
/// guard and one `sigaltstack` that installs ours and returns what was
/// there (put back when it was enabled). The static stack is given once;
/// a later caller gets a mapped one.
pub(crate) fn give_main_thread() -> io::Result<Option<*mut libc::c_void>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static GIVEN: AtomicBool = AtomicBool::new(false);
    if page_size() != STATIC_PAGE || GIVEN.swap(true, Ordering::AcqRel) {
        return give_current_thread();
    }
    let base = main_stack_base();
    // The first whole page of our own static, which no Rust code
    // touches (stacks grow down: an overflow of the stack hits it).
    guard(base, STATIC_PAGE)?;
    let st = libc::stack_t {
        // SAFETY: base + STATIC_PAGE + ALT_STACK_SIZE is inside the static
        // (2 * STATIC_PAGE + ALT_STACK_SIZE bytes from before `base`).
        ss_sp: unsafe { base.cast::<u8>().add(STATIC_PAGE) }.cast(),
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: all-zero is a valid stack_t to receive the old one.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigaltstack(2): `st` describes static memory that lives as
    // long as the process; `old` is a live out-pointer.
    if unsafe { libc::syscall(libc::SYS_sigaltstack, &st, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if old.ss_flags & libc::SS_DISABLE == 0 {
        // The thread had one (the program's, or std's): it keeps it.
        // SAFETY: `old` is what the kernel just returned for this thread.
        unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) };
        return Ok(None);
    }
    Ok(Some(base))
}

/// The key whose destructor frees a thread's stack.
fn key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: `k` is a live out-pointer; `free_stack` has the
        // destructor signature.
        (unsafe { libc::pthread_key_create(&mut k, Some(free_stack)) } == 0).then_some(k)
    })
}

/// The calling thread's current alternate stack, if enabled.
pub fn current() -> Option<libc::stack_t> {
    // SAFETY: all-zero is a valid stack_t; query only.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: query only; `cur` is a live out-pointer.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } != 0 {
        return None;
    }
    (cur.ss_flags & libc::SS_DISABLE == 0).then_some(cur)
}

/// Gives the calling thread a guard-paged alternate stack unless it has
/// one. Returns the mapping's base (guard page included) when it made one.
pub(crate) fn give_current_thread() -> io::Result<Option<*mut libc::c_void>> {
    if current().is_some() {
        return Ok(None);
    }
    let page = page_size();
    let total = ALT_STACK_SIZE + page;
    // SAFETY: a fresh anonymous private mapping; no existing memory touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // The lowest page of the mapping made above (stacks grow down: an
    // overflow of the alternate stack hits it).
    let guarded = guard(base, page).is_ok();
    let st = libc::stack_t {
        // SAFETY: `page` is inside the mapping of `total` bytes.
        ss_sp: unsafe { base.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `st` describes memory we own for the thread's lifetime.
    if !guarded || unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the mapping made above, not in use.
        unsafe { libc::munmap(base, total) };
        return Err(e);
    }
    Ok(Some(base))
}

/// At thread start (interposed `pthread_create`): a stack, freed at exit.
pub(crate) fn give_this_thread() {
    let Some(k) = key() else { return };
    if let Ok(Some(base)) = give_current_thread() {
        // SAFETY: `k` is a created key; the value is our mapping's base.
        unsafe { libc::pthread_setspecific(k, base) };
    }
}

/// Key destructor: disables the thread's alternate stack if it is still
/// ours, then unmaps it.
extern "C" fn free_stack(base: *mut libc::c_void) {
    let page = page_size();
    if let Some(cur) = current() {
        if cur.ss_sp as usize == base as usize + page {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling; the thread is exiting and not on it.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
        }
    }
    // SAFETY: `base` is the mapping give_current_thread made for this
    // thread, no longer installed as its alternate stack.
    unsafe { libc::munmap(base, ALT_STACK_SIZE + page) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the page at `base` is a guard: `PROT_NONE` in the maps, or
    /// a guard region, which pagemap marks with bit 58 (Linux 6.14).
    fn guarded(base: *mut libc::c_void) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let start = format!("{:x}-", base as usize);
        if maps
            .lines()
            .any(|l| l.starts_with(&start) && l.contains(" ---p "))
        {
            return true;
        }
        use std::os::unix::fs::FileExt;
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        let mut entry = [0u8; 8];
        let at = (base as u64 / page_size() as u64) * 8;
        pagemap.read_exact_at(&mut entry, at).unwrap();
        u64::from_le_bytes(entry) & (1 << 58) != 0
    }

    #[test]
    fn thread_gets_a_guarded_stack_once() {
        std::thread::spawn(|| {
            // A fresh test thread: replace whatever it has with ours.
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling this thread's alternate stack.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
            let base = give_current_thread().unwrap().expect("made one");
            let cur = current().unwrap();
            assert_eq!(cur.ss_size, ALT_STACK_SIZE);
            assert_eq!(cur.ss_sp as usize, base as usize + page_size());
            assert!(guarded(base));
            // Already has one: nothing new.
            assert!(give_current_thread().unwrap().is_none());
            free_stack(base);
            assert!(current().is_none());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_first_thread_gets_the_static_guarded_stack_once() {
        std::thread::spawn(|| {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling this fresh test thread's alternate stack.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
            let base = give_main_thread().unwrap().expect("made one");
            assert_eq!(base, main_stack_base());
            assert_eq!(base as usize % STATIC_PAGE, 0);
            let cur = current().unwrap();
            assert_eq!(cur.ss_size, ALT_STACK_SIZE);
            assert_eq!(cur.ss_sp as usize, base as usize + STATIC_PAGE);
            assert!(guarded(base));
            // Given once; this thread has one now, so nothing new either.
            assert!(give_main_thread().unwrap().is_none());
            // SAFETY: disabling it again before the thread ends.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
        })
        .join()
        .unwrap();
    }
}
