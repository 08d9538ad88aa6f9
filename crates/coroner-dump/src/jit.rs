//! `JIT_DEBUG_INFO` (spec §13.3) → [`CrashContext`]: the `/j` entry point.
//!
//! Owns: reading the 40-byte block from the target, then the `siginfo_t`
//! and the `ucontext_t` it points to (x86-64 kernel/glibc layout:
//! `uc_mcontext.gregs[23]` at offset 40, the `fpregs` pointer at offset
//! 224 → the 512-byte FXSAVE image, followed by the XSAVE area when the
//! FXSAVE software-reserved bytes carry `FP_XSTATE_MAGIC1` and the area
//! ends in `FP_XSTATE_MAGIC2`).
//!
//! Must not: trust any pointer or size in the block (every read goes
//! through the [`MemorySource`] and fails cleanly), or check which threads
//! exist (the caller does: `write_dump` refuses a crash thread the
//! snapshot does not have).

use crate::DumpError;
use coroner_proc::MemorySource;
use coroner_types::jit::{EM_X86_64, JIT_DEBUG_INFO_SIZE};
use coroner_types::regs::FXSAVE_SIZE;
use coroner_types::{CrashContext, LinuxJitDebugInfo, SigInfo, ThreadRegs, Tid, UserRegs};

const UC_MCONTEXT_GREGS: u64 = 40;
const UC_FPREGS_PTR: u64 = 224;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Largest XSAVE area accepted (AMX tiles make it about 11 KiB today).
const MAX_XSTATE: u32 = 64 * 1024;

/// Read the `JIT_DEBUG_INFO` block at `addr` in the target and build the
/// crash context it describes.
pub fn crash_context_from_jit_block(
    mem: &dyn MemorySource,
    addr: u64,
) -> Result<CrashContext, DumpError> {
    let info = read_jit_block(mem, addr)?;
    let mut si = [0u8; 128];
    mem.read_exact(info.siginfo, &mut si)
        .map_err(|source| DumpError::JitContext {
            what: "siginfo_t",
            addr: info.siginfo,
            source,
        })?;
    Ok(CrashContext {
        tid: Tid(info.tid as i32),
        siginfo: SigInfo::from_bytes(&si),
        regs: context_from_ucontext(mem, info.ucontext)?,
    })
}

/// Read and check the 40-byte `JIT_DEBUG_INFO` block at `addr` (an x86-64
/// block: other machines are refused).
pub fn read_jit_block(mem: &dyn MemorySource, addr: u64) -> Result<LinuxJitDebugInfo, DumpError> {
    let mut block = [0u8; JIT_DEBUG_INFO_SIZE];
    mem.read_exact(addr, &mut block)
        .map_err(|source| DumpError::JitRead { addr, source })?;
    let info =
        LinuxJitDebugInfo::parse(&block).map_err(|source| DumpError::JitBlock { addr, source })?;
    if info.machine != EM_X86_64 {
        return Err(DumpError::JitMachine {
            addr,
            machine: info.machine,
        });
    }
    Ok(info)
}

/// The registers saved in the x86-64 `ucontext_t` at `addr`: the general
/// registers of `uc_mcontext`, and the FXSAVE (and XSAVE) image its
/// `fpregs` pointer names, when it names one.
pub fn context_from_ucontext(mem: &dyn MemorySource, addr: u64) -> Result<ThreadRegs, DumpError> {
    let gregs_addr = addr.wrapping_add(UC_MCONTEXT_GREGS);
    let mut g = [0u8; 23 * 8 + 8];
    mem.read_exact(gregs_addr, &mut g)
        .map_err(|source| DumpError::JitContext {
            what: "ucontext_t",
            addr,
            source,
        })?;
    let mut gregs = [0u64; 23];
    for (i, w) in gregs.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&g[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    let mut p = [0u8; 8];
    p.copy_from_slice(&g[184..192]);
    let fpregs = u64::from_le_bytes(p);
    debug_assert_eq!(UC_MCONTEXT_GREGS + 184, UC_FPREGS_PTR);

    let gp: UserRegs = UserRegs::from_mcontext_gregs(&gregs);
    let (fp, xstate) = if fpregs == 0 {
        (None, None)
    } else {
        let mut fx = Box::new([0u8; FXSAVE_SIZE]);
        mem.read_exact(fpregs, &mut fx[..])
            .map_err(|source| DumpError::JitContext {
                what: "FXSAVE area",
                addr: fpregs,
                source,
            })?;
        let xstate = read_xstate(mem, fpregs, &fx);
        (Some(fx), xstate)
    };
    Ok(ThreadRegs { gp, fp, xstate })
}

/// The XSAVE area after the FXSAVE image, when the kernel marked it there.
fn read_xstate(mem: &dyn MemorySource, fpregs: u64, fx: &[u8; FXSAVE_SIZE]) -> Option<Vec<u8>> {
    let u32_at = |o: usize| u32::from_le_bytes([fx[o], fx[o + 1], fx[o + 2], fx[o + 3]]);
    // struct _fpx_sw_bytes at offset 464: magic1, extended_size,
    // xfeatures (u64), xstate_size.
    if u32_at(464) != FP_XSTATE_MAGIC1 {
        return None;
    }
    let xstate_size = u32_at(480);
    if !(FXSAVE_SIZE as u32 + 64..=MAX_XSTATE).contains(&xstate_size) {
        return None;
    }
    let mut x = vec![0u8; xstate_size as usize];
    mem.read_exact(fpregs, &mut x).ok()?;
    let mut m2 = [0u8; 4];
    mem.read_exact(fpregs.wrapping_add(u64::from(xstate_size)), &mut m2)
        .ok()?;
    (u32::from_le_bytes(m2) == FP_XSTATE_MAGIC2).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    struct VecMem(u64, Vec<u8>);
    impl MemorySource for VecMem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            let Some(off) = addr.checked_sub(self.0).map(|o| o as usize) else {
                return Ok(0);
            };
            if off >= self.1.len() {
                return Ok(0);
            }
            let n = buf.len().min(self.1.len() - off);
            buf[..n].copy_from_slice(&self.1[off..off + n]);
            Ok(n)
        }
    }

    const BASE: u64 = 0x1000;

    fn image(xstate: bool) -> VecMem {
        let mut m = vec![0u8; 0x2000];
        let block = LinuxJitDebugInfo {
            size: 40,
            machine: EM_X86_64,
            tid: 77,
            version: 1,
            exception_address: 0x401234,
            siginfo: BASE + 0x100,
            ucontext: BASE + 0x200,
        };
        m[..40].copy_from_slice(&block.to_bytes());
        m[0x100..0x180].copy_from_slice(&SigInfo::new_fault(11, 2, 0xdead).raw);
        let g = 0x200 + 40;
        m[g + 16 * 8..g + 17 * 8].copy_from_slice(&0x401234u64.to_le_bytes()); // RIP
        m[g + 15 * 8..g + 16 * 8].copy_from_slice(&0x7ffd_0000u64.to_le_bytes()); // RSP
        let fp = BASE + 0x800;
        m[0x200 + 224..0x200 + 232].copy_from_slice(&fp.to_le_bytes());
        m[0x800 + 24] = 0x80; // mxcsr low byte
        if xstate {
            let size = 512 + 64 + 256;
            m[0x800 + 464..0x800 + 468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
            m[0x800 + 480..0x800 + 484].copy_from_slice(&(size as u32).to_le_bytes());
            m[0x800 + size..0x800 + size + 4].copy_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
        }
        VecMem(BASE, m)
    }

    #[test]
    fn parses_block_siginfo_and_context() {
        let c = crash_context_from_jit_block(&image(true), BASE).unwrap();
        assert_eq!(c.tid, Tid(77));
        assert_eq!(
            (c.siginfo.signo(), c.siginfo.code(), c.siginfo.addr()),
            (11, 2, 0xdead)
        );
        assert_eq!((c.regs.gp.rip, c.regs.gp.rsp), (0x401234, 0x7ffd_0000));
        assert_eq!(c.regs.fp.as_ref().map(|f| f[24]), Some(0x80));
        assert_eq!(c.regs.xstate.as_ref().map(Vec::len), Some(512 + 64 + 256));
        let plain = crash_context_from_jit_block(&image(false), BASE).unwrap();
        assert!(plain.regs.xstate.is_none());
        assert!(plain.regs.fp.is_some());
    }

    #[test]
    fn bad_blocks_are_errors() {
        let mut m = image(false);
        m.1[0] = 39;
        assert!(matches!(
            crash_context_from_jit_block(&m, BASE),
            Err(DumpError::JitBlock { addr: BASE, .. })
        ));
        let mut m = image(false);
        m.1[12] = 2;
        assert!(matches!(
            crash_context_from_jit_block(&m, BASE),
            Err(DumpError::JitBlock { .. })
        ));
        let mut m = image(false);
        m.1[4] = 3;
        assert!(matches!(
            crash_context_from_jit_block(&m, BASE),
            Err(DumpError::JitMachine { machine: 3, .. })
        ));
        assert!(matches!(
            crash_context_from_jit_block(&image(false), 0x9999_0000),
            Err(DumpError::JitRead { .. })
        ));
        let mut m = image(false);
        m.1[24..32].copy_from_slice(&0x5555_0000u64.to_le_bytes());
        assert!(matches!(
            crash_context_from_jit_block(&m, BASE),
            Err(DumpError::JitContext {
                what: "siginfo_t",
                ..
            })
        ));
    }
}
