//! x86-64 register sets in the kernel's layouts: `user_regs_struct`
//! (`NT_PRSTATUS` / `PTRACE_GETREGS`), the 512-byte FXSAVE area
//! (`NT_PRFPREG` / `user_fpregs_struct`), and the XSAVE area
//! (`NT_X86_XSTATE`).

/// Size of the FXSAVE area (`user_fpregs_struct`).
pub const FXSAVE_SIZE: usize = 512;

/// `struct user_regs_struct` for x86-64, field order as in `<sys/user.h>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// Number of 64-bit words in [`UserRegs`].
pub const USER_REGS_WORDS: usize = 27;

impl UserRegs {
    /// The registers as the 27 words the kernel writes, in order.
    pub fn to_words(&self) -> [u64; USER_REGS_WORDS] {
        [
            self.r15,
            self.r14,
            self.r13,
            self.r12,
            self.rbp,
            self.rbx,
            self.r11,
            self.r10,
            self.r9,
            self.r8,
            self.rax,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.orig_rax,
            self.rip,
            self.cs,
            self.eflags,
            self.rsp,
            self.ss,
            self.fs_base,
            self.gs_base,
            self.ds,
            self.es,
            self.fs,
            self.gs,
        ]
    }

    /// From the kernel's 27 words.
    pub fn from_words(w: &[u64; USER_REGS_WORDS]) -> UserRegs {
        UserRegs {
            r15: w[0],
            r14: w[1],
            r13: w[2],
            r12: w[3],
            rbp: w[4],
            rbx: w[5],
            r11: w[6],
            r10: w[7],
            r9: w[8],
            r8: w[9],
            rax: w[10],
            rcx: w[11],
            rdx: w[12],
            rsi: w[13],
            rdi: w[14],
            orig_rax: w[15],
            rip: w[16],
            cs: w[17],
            eflags: w[18],
            rsp: w[19],
            ss: w[20],
            fs_base: w[21],
            gs_base: w[22],
            ds: w[23],
            es: w[24],
            fs: w[25],
            gs: w[26],
        }
    }

    /// Little-endian bytes in kernel layout (216 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_words()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    /// From kernel-layout bytes; `None` if fewer than 216 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<UserRegs> {
        if b.len() < USER_REGS_WORDS * 8 {
            return None;
        }
        let mut w = [0u64; USER_REGS_WORDS];
        for (i, word) in w.iter_mut().enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *word = u64::from_le_bytes(a);
        }
        Some(UserRegs::from_words(&w))
    }

    /// From a `ucontext_t`'s `uc_mcontext.gregs` (glibc order: R8..R15, RDI,
    /// RSI, RBP, RBX, RDX, RAX, RCX, RSP, RIP, EFL, CSGSFS, ERR, TRAPNO,
    /// OLDMASK, CR2). Segment bases are not in the mcontext and stay 0.
    pub fn from_mcontext_gregs(g: &[u64; 23]) -> UserRegs {
        let csgsfs = g[18];
        UserRegs {
            r8: g[0],
            r9: g[1],
            r10: g[2],
            r11: g[3],
            r12: g[4],
            r13: g[5],
            r14: g[6],
            r15: g[7],
            rdi: g[8],
            rsi: g[9],
            rbp: g[10],
            rbx: g[11],
            rdx: g[12],
            rax: g[13],
            rcx: g[14],
            rsp: g[15],
            rip: g[16],
            eflags: g[17],
            cs: csgsfs & 0xffff,
            gs: (csgsfs >> 16) & 0xffff,
            fs: (csgsfs >> 32) & 0xffff,
            ss: (csgsfs >> 48) & 0xffff,
            orig_rax: u64::MAX,
            ..UserRegs::default()
        }
    }
}

/// One thread's CPU state: general registers always, FP/SSE (FXSAVE) and the
/// XSAVE area (AVX and later) when they could be read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ThreadRegs {
    pub gp: UserRegs,
    /// 512-byte FXSAVE image (x87, MXCSR, XMM0-15).
    pub fp: Option<Box<[u8; FXSAVE_SIZE]>>,
    /// XSAVE area as `PTRACE_GETREGSET NT_X86_XSTATE` returns it.
    pub xstate: Option<Vec<u8>>,
}

impl ThreadRegs {
    pub fn pc(&self) -> u64 {
        self.gp.rip
    }
    pub fn sp(&self) -> u64 {
        self.gp.rsp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let r = UserRegs {
            rip: 0x1234,
            gs: 7,
            ..UserRegs::default()
        };
        let b = r.to_bytes();
        assert_eq!(b.len(), 216);
        assert_eq!(UserRegs::from_bytes(&b), Some(r));
        assert_eq!(UserRegs::from_bytes(&b[..10]), None);
    }

    #[test]
    fn mcontext_order() {
        let mut g = [0u64; 23];
        g[16] = 0x401000;
        g[15] = 0x7ffc0000;
        g[13] = 42;
        let r = UserRegs::from_mcontext_gregs(&g);
        assert_eq!((r.rip, r.rsp, r.rax), (0x401000, 0x7ffc0000, 42));
    }
}
