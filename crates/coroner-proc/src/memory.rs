//! [`ProcessMemory`]: the live target's memory as a [`MemorySource`].
//!
//! Reads use `process_vm_readv` (one syscall per request of up to the
//! kernel's per-call limit) and fall back to `pread` on `/proc/PID/mem`
//! (opened on first need and kept) for regions `process_vm_readv` refuses:
//! `EFAULT` (e.g. `PROT_NONE` pages, which `/proc/PID/mem` reads with
//! `FOLL_FORCE`), `EPERM`/`ENOSYS` (then it is not tried again).
//!
//! Must not: allocate, read `/proc` text, or take locks in `read` — the dump
//! writers call it with 4 MiB chunks across gigabytes, from several threads.

use crate::error::ProcError;
use crate::snapshot::MemorySource;
use coroner_types::Pid;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The kernel's cap on one read/`process_vm_readv` (`MAX_RW_COUNT`,
/// `INT_MAX & PAGE_MASK`): longer requests come back short, which would
/// look like an unreadable byte, so [`ProcessMemory`] splits at it.
pub const MAX_RW_COUNT: usize = (i32::MAX as usize) & !(4096 - 1);

/// The memory of a live process, read with `process_vm_readv` or
/// `/proc/PID/mem`. `Sync`: share it with reader threads.
///
/// Reading needs ptrace access to the target (same user and dumpable, or
/// `CAP_SYS_PTRACE`); being its tracer is not required.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: Pid,
    max_per_call: usize,
    /// `/proc/PID/mem`, opened on first fallback; `Err(errno)` if that failed.
    mem: OnceLock<Result<File, i32>>,
    /// `process_vm_readv` answered `EPERM`/`ENOSYS`: use `/proc/PID/mem` only.
    vm_readv_unusable: AtomicBool,
}

impl ProcessMemory {
    /// Memory of `pid`. Fails with `NoSuchProcess` if `/proc/PID` is absent.
    pub fn new(pid: Pid) -> Result<ProcessMemory, ProcError> {
        ProcessMemory::with_max_per_call(pid, MAX_RW_COUNT)
    }

    /// Like [`ProcessMemory::new`] with a smaller per-syscall limit (clamped
    /// to 1..=[`MAX_RW_COUNT`]); for tests of the splitting and for callers
    /// that want shorter syscalls.
    pub fn with_max_per_call(pid: Pid, max_per_call: usize) -> Result<ProcessMemory, ProcError> {
        let dir = PathBuf::from(format!("/proc/{}", pid.0));
        std::fs::metadata(&dir).map_err(|source| ProcError::NoSuchProcess { pid, source })?;
        Ok(ProcessMemory {
            pid,
            max_per_call: max_per_call.clamp(1, MAX_RW_COUNT),
            mem: OnceLock::new(),
            vm_readv_unusable: AtomicBool::new(false),
        })
    }

    /// Without the existence check, for callers that already hold the
    /// process (a tracer, [`crate::Attached::adopt`]): reads of a process
    /// that is gone fail with ESRCH.
    pub fn unchecked(pid: Pid) -> ProcessMemory {
        ProcessMemory {
            pid,
            max_per_call: MAX_RW_COUNT,
            mem: OnceLock::new(),
            vm_readv_unusable: AtomicBool::new(false),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    fn mem_file(&self) -> Result<&File, i32> {
        self.mem
            .get_or_init(|| {
                File::open(format!("/proc/{}/mem", self.pid.0))
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
            })
            .as_ref()
            .map_err(|&e| e)
    }
}

/// The two ways to read one piece; a seam so the splitting and fallback
/// logic can be tested against a simulated kernel.
trait Backend {
    fn vm_read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// `Err(None)` when `/proc/PID/mem` cannot be used at all.
    fn mem_read(&self, addr: u64, buf: &mut [u8]) -> Result<usize, Option<io::Error>>;
    fn vm_usable(&self) -> bool;
    fn vm_disable(&self);
}

impl Backend for ProcessMemory {
    fn vm_read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        coroner_sys::process_vm_readv(self.pid, buf, addr)
    }
    fn mem_read(&self, addr: u64, buf: &mut [u8]) -> Result<usize, Option<io::Error>> {
        let f = self.mem_file().map_err(|_| None)?;
        coroner_sys::pread(f.as_fd(), buf, addr).map_err(Some)
    }
    fn vm_usable(&self) -> bool {
        !self.vm_readv_unusable.load(Ordering::Relaxed)
    }
    fn vm_disable(&self) {
        self.vm_readv_unusable.store(true, Ordering::Relaxed);
    }
}

/// Read one piece (at most the per-call limit): `process_vm_readv` first,
/// `/proc/PID/mem` when it refuses.
fn read_piece<B: Backend>(b: &B, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let vm_err = if b.vm_usable() {
        match b.vm_read(addr, buf) {
            Ok(n) if n > 0 => return Ok(n),
            Ok(_) => io::Error::from_raw_os_error(libc::EFAULT),
            Err(e) => match e.raw_os_error() {
                Some(libc::EFAULT) => e,
                Some(libc::EPERM) | Some(libc::ENOSYS) => {
                    b.vm_disable();
                    e
                }
                _ => return Err(e),
            },
        }
    } else {
        io::Error::from_raw_os_error(libc::EPERM)
    };
    match b.mem_read(addr, buf) {
        Ok(n) => Ok(n),
        Err(Some(e)) => Err(e),
        // /proc/PID/mem unavailable: the process_vm_readv error stands.
        Err(None) => Err(vm_err),
    }
}

/// Fill `buf` from `addr` in pieces of at most `max` bytes, continuing
/// after short pieces, stopping at the first unreadable byte.
fn read_split<B: Backend>(b: &B, max: usize, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0usize;
    while done < buf.len() {
        let Some(at) = addr.checked_add(done as u64) else {
            break;
        };
        let end = buf.len().min(done.saturating_add(max));
        let Some(piece) = buf.get_mut(done..end) else {
            break;
        };
        match read_piece(b, at, piece) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

impl MemorySource for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_split(self, self.max_per_call, addr, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A simulated target: `[start, end)` readable by process_vm_readv,
    /// `[mem_only_start, mem_only_end)` only through /proc/PID/mem, the rest
    /// unmapped. Byte at address `a` is `a as u8`. The simulated kernel cuts
    /// every call at `kernel_max` like MAX_RW_COUNT does.
    struct Fake {
        vm: (u64, u64),
        mem_only: (u64, u64),
        kernel_max: usize,
        mem_available: bool,
        vm_disabled: Cell<bool>,
        calls: RefCell<Vec<(&'static str, u64, usize)>>,
    }

    impl Fake {
        fn fill(&self, lo: u64, hi: u64, addr: u64, buf: &mut [u8]) -> usize {
            if addr < lo || addr >= hi {
                return 0;
            }
            let n = (buf.len().min(self.kernel_max) as u64).min(hi - addr) as usize;
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = (addr + i as u64) as u8;
            }
            n
        }
    }

    impl Backend for Fake {
        fn vm_read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            self.calls.borrow_mut().push(("vm", addr, buf.len()));
            match self.fill(self.vm.0, self.vm.1, addr, buf) {
                0 => Err(io::Error::from_raw_os_error(libc::EFAULT)),
                n => Ok(n),
            }
        }
        fn mem_read(&self, addr: u64, buf: &mut [u8]) -> Result<usize, Option<io::Error>> {
            self.calls.borrow_mut().push(("mem", addr, buf.len()));
            if !self.mem_available {
                return Err(None);
            }
            let n = self.fill(self.vm.0, self.vm.1, addr, buf);
            let n = if n > 0 {
                n
            } else {
                self.fill(self.mem_only.0, self.mem_only.1, addr, buf)
            };
            if n == 0 {
                Err(Some(io::Error::from_raw_os_error(libc::EIO)))
            } else {
                Ok(n)
            }
        }
        fn vm_usable(&self) -> bool {
            !self.vm_disabled.get()
        }
        fn vm_disable(&self) {
            self.vm_disabled.set(true)
        }
    }

    fn fake(vm: (u64, u64), mem_only: (u64, u64), kernel_max: usize) -> Fake {
        Fake {
            vm,
            mem_only,
            kernel_max,
            mem_available: true,
            vm_disabled: Cell::new(false),
            calls: RefCell::new(Vec::new()),
        }
    }

    fn check_bytes(addr: u64, buf: &[u8]) {
        for (i, &b) in buf.iter().enumerate() {
            assert_eq!(b, (addr + i as u64) as u8, "byte {i}");
        }
    }

    #[test]
    fn splits_at_the_limit_and_never_asks_more() {
        // Kernel cuts at 5000; we split at 4096: no call may exceed 4096
        // and the whole range must come back in ceil(20000/4096) = 5 calls.
        let f = fake((0x10000, 0x40000), (0, 0), 5000);
        let mut buf = vec![0u8; 20000];
        assert_eq!(read_split(&f, 4096, 0x10003, &mut buf).unwrap(), 20000);
        check_bytes(0x10003, &buf);
        let calls = f.calls.borrow();
        assert_eq!(calls.len(), 5);
        assert!(calls.iter().all(|&(k, _, len)| k == "vm" && len <= 4096));
        assert_eq!(calls[1], ("vm", 0x10003 + 4096, 4096));
    }

    #[test]
    fn without_splitting_the_kernel_limit_still_does_not_lose_data() {
        // A limit above the kernel's: the short answer is continued, not
        // mistaken for the end of readable memory.
        let f = fake((0x10000, 0x40000), (0, 0), 3000);
        let mut buf = vec![0u8; 10000];
        assert_eq!(
            read_split(&f, usize::MAX, 0x10000, &mut buf).unwrap(),
            10000
        );
        check_bytes(0x10000, &buf);
    }

    #[test]
    fn stops_at_a_hole_and_returns_the_prefix() {
        let f = fake((0x10000, 0x12000), (0, 0), usize::MAX);
        let mut buf = vec![0u8; 0x3000];
        assert_eq!(read_split(&f, 4096, 0x11000, &mut buf).unwrap(), 0x1000);
        check_bytes(0x11000, &buf[..0x1000]);
        // Nothing readable at all: the /proc/PID/mem error (EIO) comes back.
        let e = read_split(&f, 4096, 0x20000, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn falls_back_to_proc_mem_for_regions_vm_readv_refuses() {
        // [0x12000, 0x13000) is readable only through /proc/PID/mem
        // (a PROT_NONE page, say); the read continues through it.
        let f = fake((0x10000, 0x12000), (0x12000, 0x13000), usize::MAX);
        let mut buf = vec![0u8; 0x2800];
        assert_eq!(read_split(&f, 1 << 20, 0x10800, &mut buf).unwrap(), 0x2800);
        check_bytes(0x10800, &buf);
        assert!(f
            .calls
            .borrow()
            .iter()
            .any(|&(k, a, _)| k == "mem" && a == 0x12000));
        // EFAULT is per region: process_vm_readv stays in use.
        assert!(f.vm_usable());
    }

    #[test]
    fn without_proc_mem_the_vm_readv_error_stands() {
        let mut f = fake((0x10000, 0x12000), (0x12000, 0x13000), usize::MAX);
        f.mem_available = false;
        let mut buf = [0u8; 16];
        let e = read_split(&f, 4096, 0x12000, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
    }

    #[test]
    fn process_memory_reads_own_buffer_and_is_sync() {
        fn assert_sync<T: Sync + Send>() {}
        assert_sync::<ProcessMemory>();
        let src: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let m = ProcessMemory::with_max_per_call(coroner_sys::getpid(), 4096).unwrap();
        let mut dst = vec![0u8; src.len()];
        m.read_exact(src.as_ptr() as u64, &mut dst).unwrap();
        assert_eq!(dst, src);
        assert!(matches!(
            ProcessMemory::new(Pid(i32::MAX)),
            Err(ProcError::NoSuchProcess { .. })
        ));
    }
}
