//! `ptrace(2)` requests, one function each. All requests but
//! [`seize`] and [`interrupt`] need the tracee to be in a ptrace stop, and
//! all must come from the thread that seized it (the tracer is a thread, not
//! a process); otherwise the kernel answers `ESRCH`.

use coroner_types::{SigInfo, Tid, UserRegs, FXSAVE_SIZE};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

const PTRACE_PEEKUSER: libc::c_long = 3;
const PTRACE_CONT: libc::c_long = 7;
const PTRACE_SINGLESTEP: libc::c_long = 9;
const PTRACE_SETOPTIONS: libc::c_long = 0x4200;
const PTRACE_DETACH: libc::c_long = 17;
const PTRACE_GETEVENTMSG: libc::c_long = 0x4201;
const PTRACE_GETSIGINFO: libc::c_long = 0x4202;
const PTRACE_SETSIGINFO: libc::c_long = 0x4203;
const PTRACE_GETREGSET: libc::c_long = 0x4204;
const PTRACE_SETREGSET: libc::c_long = 0x4205;
const PTRACE_SEIZE: libc::c_long = 0x4206;
const PTRACE_INTERRUPT: libc::c_long = 0x4207;
const PTRACE_LISTEN: libc::c_long = 0x4208;

/// Register-set note types (`<elf.h>`).
pub const NT_PRSTATUS: u32 = 1;
pub const NT_PRFPREG: u32 = 2;
pub const NT_X86_XSTATE: u32 = 0x202;

/// `PTRACE_O_*` options for [`seize`].
pub const PTRACE_O_TRACESYSGOOD: u32 = 0x01;
pub const PTRACE_O_TRACEFORK: u32 = 0x02;
pub const PTRACE_O_TRACEVFORK: u32 = 0x04;
pub const PTRACE_O_TRACECLONE: u32 = 0x08;
pub const PTRACE_O_TRACEEXEC: u32 = 0x10;
pub const PTRACE_O_TRACEVFORKDONE: u32 = 0x20;
pub const PTRACE_O_TRACEEXIT: u32 = 0x40;
pub const PTRACE_O_TRACESECCOMP: u32 = 0x80;
pub const PTRACE_O_EXITKILL: u32 = 0x10_0000;

/// `PTRACE_EVENT_*` numbers as seen in [`crate::WaitStatus::PtraceEvent`].
pub const PTRACE_EVENT_FORK: u32 = 1;
pub const PTRACE_EVENT_VFORK: u32 = 2;
pub const PTRACE_EVENT_CLONE: u32 = 3;
pub const PTRACE_EVENT_EXEC: u32 = 4;
pub const PTRACE_EVENT_VFORK_DONE: u32 = 5;
pub const PTRACE_EVENT_EXIT: u32 = 6;
pub const PTRACE_EVENT_SECCOMP: u32 = 7;

/// Raw `ptrace` syscall. The raw syscall (unlike glibc's wrapper) stores
/// PEEK results through `data` and returns 0, so `-1` always means error.
///
/// # Safety
/// `addr` and `data` must be valid for the request: any pointer among them
/// must point to live memory of the size and mutability the request uses.
unsafe fn raw(req: libc::c_long, tid: Tid, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees `addr`/`data` are valid for `req`.
    crate::check(unsafe { libc::syscall(libc::SYS_ptrace, req, tid.0, addr, data) })
}

/// `PTRACE_SEIZE` with `options` (`PTRACE_O_*`): trace `tid` without
/// stopping it. Errors: `EPERM` (not allowed, already traced, or a zombie),
/// `ESRCH` (no such task).
pub fn seize(tid: Tid, options: u32) -> io::Result<()> {
    // SAFETY: SEIZE takes no pointers (addr 0, data is the option bits).
    unsafe { raw(PTRACE_SEIZE, tid, 0, options as usize) }.map(drop)
}

/// `PTRACE_INTERRUPT`: ask a seized tracee to enter a ptrace stop; the stop
/// is reported by `waitpid` as a `PTRACE_EVENT_STOP` (or a group-stop or
/// signal-delivery-stop if one comes first).
pub fn interrupt(tid: Tid) -> io::Result<()> {
    // SAFETY: INTERRUPT takes no pointers.
    unsafe { raw(PTRACE_INTERRUPT, tid, 0, 0) }.map(drop)
}

/// `PTRACE_CONT`, delivering `sig` (0 for none).
pub fn cont(tid: Tid, sig: i32) -> io::Result<()> {
    // SAFETY: CONT takes no pointers (data is the signal number).
    unsafe { raw(PTRACE_CONT, tid, 0, sig as usize) }.map(drop)
}

/// `PTRACE_SINGLESTEP`, delivering `sig` (0 for none): run one
/// instruction, then stop with `SIGTRAP` (`TRAP_TRACE`).
pub fn step(tid: Tid, sig: i32) -> io::Result<()> {
    // SAFETY: SINGLESTEP takes no pointers (data is the signal number).
    unsafe { raw(PTRACE_SINGLESTEP, tid, 0, sig as usize) }.map(drop)
}

/// `PTRACE_SETOPTIONS`: replace the `PTRACE_O_*` options of a tracee.
pub fn set_options(tid: Tid, options: u32) -> io::Result<()> {
    // SAFETY: SETOPTIONS takes no pointers (data is the option bits).
    unsafe { raw(PTRACE_SETOPTIONS, tid, 0, options as usize) }.map(drop)
}

/// `PTRACE_DETACH`, delivering `sig` (0 for none). A tracee detached while
/// its group-stop is in effect stays stopped.
pub fn detach(tid: Tid, sig: i32) -> io::Result<()> {
    // SAFETY: DETACH takes no pointers (data is the signal number).
    unsafe { raw(PTRACE_DETACH, tid, 0, sig as usize) }.map(drop)
}

/// `PTRACE_LISTEN`: leave a seized tracee in its group-stop but let the
/// tracer hear when it ends (SIGCONT).
pub fn listen(tid: Tid) -> io::Result<()> {
    // SAFETY: LISTEN takes no pointers.
    unsafe { raw(PTRACE_LISTEN, tid, 0, 0) }.map(drop)
}

/// `PTRACE_GETREGSET` into `buf`; returns the length the kernel filled.
fn get_regset(tid: Tid, note: u32, buf: &mut [u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` points at the live, exclusively borrowed `buf` with its
    // exact length; the kernel writes at most `iov_len` bytes there and
    // updates `iov.iov_len`, which is live and writable for the call.
    unsafe {
        raw(
            PTRACE_GETREGSET,
            tid,
            note as usize,
            &mut iov as *mut libc::iovec as usize,
        )
    }?;
    Ok(iov.iov_len)
}

/// `PTRACE_GETREGSET NT_PRSTATUS`: the general registers.
pub fn get_regs(tid: Tid) -> io::Result<UserRegs> {
    let mut buf = [0u8; std::mem::size_of::<UserRegs>()];
    let n = get_regset(tid, NT_PRSTATUS, &mut buf)?;
    UserRegs::from_bytes(&buf[..n.min(buf.len())]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("NT_PRSTATUS of {tid}: {n} bytes"),
        )
    })
}

/// `PTRACE_SETREGSET NT_PRSTATUS`: write the general registers.
pub fn set_regs(tid: Tid, regs: &UserRegs) -> io::Result<()> {
    let mut bytes = regs.to_bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: `iov` points at `bytes` (live for the call, exact length);
    // the kernel only reads the buffer and updates the live `iov`.
    unsafe {
        raw(
            PTRACE_SETREGSET,
            tid,
            NT_PRSTATUS as usize,
            &mut iov as *mut libc::iovec as usize,
        )
    }
    .map(drop)
}

/// `PTRACE_GETREGSET NT_PRFPREG`: the 512-byte FXSAVE image.
pub fn get_fpregs(tid: Tid) -> io::Result<Box<[u8; FXSAVE_SIZE]>> {
    let mut buf = Box::new([0u8; FXSAVE_SIZE]);
    let n = get_regset(tid, NT_PRFPREG, &mut buf[..])?;
    if n != FXSAVE_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("NT_PRFPREG of {tid}: {n} bytes, expected {FXSAVE_SIZE}"),
        ));
    }
    Ok(buf)
}

/// Last XSAVE size seen, so later calls allocate the right size at once.
static XSTATE_SIZE_HINT: AtomicUsize = AtomicUsize::new(4096);
const XSTATE_MAX: usize = 1 << 16;

/// `PTRACE_GETREGSET NT_X86_XSTATE`: the XSAVE area, sized as the kernel
/// reports (the buffer grows until the kernel's answer fits).
pub fn get_xstate(tid: Tid) -> io::Result<Vec<u8>> {
    let mut size = XSTATE_SIZE_HINT
        .load(Ordering::Relaxed)
        .clamp(FXSAVE_SIZE, XSTATE_MAX);
    loop {
        let mut buf = vec![0u8; size];
        let n = get_regset(tid, NT_X86_XSTATE, &mut buf)?;
        // A full buffer may mean the kernel cut the area short: grow and retry.
        if n < size || size >= XSTATE_MAX {
            buf.truncate(n);
            // Next time ask for a little more than this (the kernel wants a
            // multiple of 8, else EINVAL), so a full buffer still means
            // "grow".
            XSTATE_SIZE_HINT.store((n + 64) & !63, Ordering::Relaxed);
            return Ok(buf);
        }
        size = (size * 2).min(XSTATE_MAX);
    }
}

/// `PTRACE_GETSIGINFO`: the siginfo of the signal that caused the stop
/// (for event stops the kernel makes one up: `SIGTRAP`, `si_code` holding
/// `event << 8 | SIGTRAP`).
pub fn get_siginfo(tid: Tid) -> io::Result<SigInfo> {
    let mut si = SigInfo::default();
    // SAFETY: `si.raw` is a live, writable 128-byte buffer, the size of the
    // kernel's siginfo_t, which is all GETSIGINFO writes.
    unsafe { raw(PTRACE_GETSIGINFO, tid, 0, si.raw.as_mut_ptr() as usize) }?;
    Ok(si)
}

/// `PTRACE_SETSIGINFO`: replace the siginfo delivered at the next restart.
pub fn set_siginfo(tid: Tid, si: &SigInfo) -> io::Result<()> {
    // SAFETY: `si.raw` is a live 128-byte buffer (siginfo_t's size) that the
    // kernel only reads.
    unsafe { raw(PTRACE_SETSIGINFO, tid, 0, si.raw.as_ptr() as usize) }.map(drop)
}

/// `PTRACE_GETEVENTMSG`: the data of the last `PTRACE_EVENT_*` stop (new
/// tid for clone, exit status for exit, former tid for exec).
pub fn get_event_msg(tid: Tid) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: `msg` is a live, writable unsigned long, which is what
    // GETEVENTMSG stores.
    unsafe {
        raw(
            PTRACE_GETEVENTMSG,
            tid,
            0,
            &mut msg as *mut libc::c_ulong as usize,
        )
    }?;
    Ok(crate::widen(msg))
}

/// `PTRACE_PEEKUSER`: one word of the `struct user` area at byte `offset`
/// (debug registers live at `offsetof(struct user, u_debugreg)` = 848).
pub fn peek_user(tid: Tid, offset: usize) -> io::Result<u64> {
    let mut word: libc::c_ulong = 0;
    // SAFETY: with the raw syscall, PEEKUSER stores the word through `data`,
    // which points at the live, writable `word`; `offset` is checked by the
    // kernel (EIO when out of range or unaligned).
    unsafe {
        raw(
            PTRACE_PEEKUSER,
            tid,
            offset,
            &mut word as *mut libc::c_ulong as usize,
        )
    }?;
    Ok(crate::widen(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{wait_tid, WaitStatus};
    use std::process::{Command, Stdio};

    #[test]
    #[cfg_attr(
        not(target_arch = "x86_64"),
        ignore = "x86-64 register sets and struct user offsets (the tracer is 64-bit)"
    )]
    fn seize_interrupt_read_detach() {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let tid = Tid(child.id() as i32);
        seize(tid, PTRACE_O_TRACESYSGOOD).unwrap();
        interrupt(tid).unwrap();
        assert_eq!(
            wait_tid(tid).unwrap(),
            WaitStatus::PtraceEventStop { sig: libc::SIGTRAP }
        );
        let regs = get_regs(tid).unwrap();
        assert!(regs.rip != 0 && regs.rsp != 0);
        // Writing back what we read is accepted and changes nothing.
        set_regs(tid, &regs).unwrap();
        assert_eq!(get_regs(tid).unwrap(), regs);
        let fp = get_fpregs(tid).unwrap();
        // MXCSR (offset 24) of a fresh process is 0x1f80.
        assert_eq!(u32::from_le_bytes([fp[24], fp[25], fp[26], fp[27]]), 0x1f80);
        let xs = get_xstate(tid).unwrap();
        assert!(xs.len() > FXSAVE_SIZE, "xstate {} bytes", xs.len());
        // The second call starts from the size hint the first one left.
        assert_eq!(get_xstate(tid).unwrap(), xs);
        // The legacy region (x87, MXCSR, XMM0-15: 416 bytes) is the same in
        // both; bytes 464..512 are software-reserved and differ.
        assert_eq!(&xs[..416], &fp[..416]);
        let si = get_siginfo(tid).unwrap();
        assert_eq!(si.signo(), libc::SIGTRAP);
        assert_eq!(si.code() >> 8, crate::wait::PTRACE_EVENT_STOP as i32);
        set_siginfo(tid, &si).unwrap();
        // u_debugreg[7] of a thread with no hardware breakpoints is 0.
        assert_eq!(peek_user(tid, 848 + 7 * 8).unwrap(), 0);
        detach(tid, 0).unwrap();
        // Detached and running: cat exits at EOF.
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn requests_on_untraced_task_fail_with_esrch() {
        let e = get_regs(crate::gettid()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        let e = seize(Tid(i32::MAX), 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
