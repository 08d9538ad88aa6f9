//! `siginfo_t` (128 bytes on every Linux arch) kept raw, with decoded views.

use crate::signal::{has_fault_address, si_code_name, signal_label};

/// Size of `siginfo_t` on Linux.
pub const SIGINFO_SIZE: usize = 128;

/// A `siginfo_t` as the kernel delivered it. The raw bytes are kept so that
/// writers can store them unchanged (ELF `NT_SIGINFO`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub raw: [u8; SIGINFO_SIZE],
}

impl std::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigInfo")
            .field("signo", &self.signo())
            .field("code", &self.code())
            .field("errno", &self.errno())
            .field("addr", &format_args!("{:#x}", self.addr()))
            .finish()
    }
}

impl Default for SigInfo {
    fn default() -> Self {
        SigInfo {
            raw: [0; SIGINFO_SIZE],
        }
    }
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

impl SigInfo {
    /// From raw bytes; shorter input is zero-padded, longer is cut.
    pub fn from_bytes(bytes: &[u8]) -> SigInfo {
        let mut raw = [0u8; SIGINFO_SIZE];
        let n = bytes.len().min(SIGINFO_SIZE);
        raw[..n].copy_from_slice(&bytes[..n]);
        SigInfo { raw }
    }

    /// Build one for a fault (64-bit layout: signo, errno, code, pad, addr).
    pub fn new_fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        let mut raw = [0u8; SIGINFO_SIZE];
        raw[0..4].copy_from_slice(&signo.to_ne_bytes());
        raw[8..12].copy_from_slice(&code.to_ne_bytes());
        raw[16..24].copy_from_slice(&addr.to_ne_bytes());
        SigInfo { raw }
    }

    /// Build one for a signal sent by a process (`kill`, `tgkill`).
    pub fn new_sent(signo: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
        let mut raw = [0u8; SIGINFO_SIZE];
        raw[0..4].copy_from_slice(&signo.to_ne_bytes());
        raw[8..12].copy_from_slice(&code.to_ne_bytes());
        raw[16..20].copy_from_slice(&pid.to_ne_bytes());
        raw[20..24].copy_from_slice(&uid.to_ne_bytes());
        SigInfo { raw }
    }

    pub fn signo(&self) -> i32 {
        i32_at(&self.raw, 0)
    }
    pub fn errno(&self) -> i32 {
        i32_at(&self.raw, 4)
    }
    pub fn code(&self) -> i32 {
        i32_at(&self.raw, 8)
    }
    /// `si_addr` (64-bit layout, offset 16). Meaningful for faults.
    pub fn addr(&self) -> u64 {
        u64_at(&self.raw, 16)
    }
    /// `si_pid` for signals sent by a process.
    pub fn sender_pid(&self) -> i32 {
        i32_at(&self.raw, 16)
    }
    /// `si_uid` for signals sent by a process.
    pub fn sender_uid(&self) -> u32 {
        i32_at(&self.raw, 20) as u32
    }
    /// True when the kernel raised it for a fault (synchronous, `si_code > 0`
    /// or `SI_KERNEL`), false when a process sent it.
    pub fn is_from_kernel(&self) -> bool {
        self.code() > 0
    }
    /// The fault address when the signal carries one.
    pub fn fault_address(&self) -> Option<u64> {
        (self.is_from_kernel() && has_fault_address(self.signo())).then(|| self.addr())
    }
    /// `SIGSEGV / SEGV_MAPERR` style text.
    pub fn describe(&self) -> String {
        let sig = signal_label(self.signo());
        match si_code_name(self.signo(), self.code()) {
            Some(c) => format!("{sig} / {c}"),
            None => format!("{sig} / si_code {}", self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_layout() {
        let s = SigInfo::new_fault(11, 1, 0xdead);
        assert_eq!(s.signo(), 11);
        assert_eq!(s.code(), 1);
        assert_eq!(s.addr(), 0xdead);
        assert_eq!(s.fault_address(), Some(0xdead));
        assert_eq!(s.describe(), "SIGSEGV / SEGV_MAPERR");
        let k = SigInfo::new_sent(6, -6, 42, 1000);
        assert_eq!(k.sender_pid(), 42);
        assert_eq!(k.sender_uid(), 1000);
        assert_eq!(k.fault_address(), None);
        assert_eq!(k.describe(), "SIGABRT / SI_TKILL");
        assert_eq!(SigInfo::from_bytes(&[1, 2]).signo(), 0x0201);
    }
}
