//! The Linux `JIT_DEBUG_INFO` block (spec §13.3): the same 40-byte shape as
//! Windows', living in the crashing process; its address is the `%p` of the
//! AeDebug command line.

/// Size of the block, and its `size` field.
pub const JIT_DEBUG_INFO_SIZE: usize = 40;
/// Current `version` value.
pub const JIT_DEBUG_INFO_VERSION: u32 = 1;
/// ELF `e_machine` for x86-64.
pub const EM_X86_64: u32 = 62;
/// ELF `e_machine` for i386.
pub const EM_386: u32 = 3;

/// `#[repr(C)]` so the runtime can fill it in place.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinuxJitDebugInfo {
    /// = 40
    pub size: u32,
    /// ELF e_machine of the process.
    pub machine: u32,
    /// gettid() of the faulting thread.
    pub tid: u32,
    /// = 1
    pub version: u32,
    /// PC from `uc_mcontext`.
    pub exception_address: u64,
    /// Address of the `siginfo_t` (128 bytes) in the target.
    pub siginfo: u64,
    /// Address of the `ucontext_t` in the target.
    pub ucontext: u64,
}

/// Why a block read from a target was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JitBlockError {
    Short(usize),
    BadSize(u32),
    BadVersion(u32),
}

impl std::fmt::Display for JitBlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JitBlockError::Short(n) => write!(f, "JIT_DEBUG_INFO block is {n} bytes, need 40"),
            JitBlockError::BadSize(s) => write!(f, "JIT_DEBUG_INFO size field is {s}, expected 40"),
            JitBlockError::BadVersion(v) => {
                write!(f, "JIT_DEBUG_INFO version {v} is not supported")
            }
        }
    }
}
impl std::error::Error for JitBlockError {}

impl LinuxJitDebugInfo {
    /// Parse from target bytes (little-endian), validating size and version.
    pub fn parse(b: &[u8]) -> Result<LinuxJitDebugInfo, JitBlockError> {
        if b.len() < JIT_DEBUG_INFO_SIZE {
            return Err(JitBlockError::Short(b.len()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let info = LinuxJitDebugInfo {
            size: u32_at(0),
            machine: u32_at(4),
            tid: u32_at(8),
            version: u32_at(12),
            exception_address: u64_at(16),
            siginfo: u64_at(24),
            ucontext: u64_at(32),
        };
        if info.size as usize != JIT_DEBUG_INFO_SIZE {
            return Err(JitBlockError::BadSize(info.size));
        }
        if info.version != JIT_DEBUG_INFO_VERSION {
            return Err(JitBlockError::BadVersion(info.version));
        }
        Ok(info)
    }

    /// Little-endian bytes, as the block sits in memory.
    pub fn to_bytes(&self) -> [u8; JIT_DEBUG_INFO_SIZE] {
        let mut b = [0u8; JIT_DEBUG_INFO_SIZE];
        b[0..4].copy_from_slice(&self.size.to_le_bytes());
        b[4..8].copy_from_slice(&self.machine.to_le_bytes());
        b[8..12].copy_from_slice(&self.tid.to_le_bytes());
        b[12..16].copy_from_slice(&self.version.to_le_bytes());
        b[16..24].copy_from_slice(&self.exception_address.to_le_bytes());
        b[24..32].copy_from_slice(&self.siginfo.to_le_bytes());
        b[32..40].copy_from_slice(&self.ucontext.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_40_bytes() {
        assert_eq!(
            std::mem::size_of::<LinuxJitDebugInfo>(),
            JIT_DEBUG_INFO_SIZE
        );
        let j = LinuxJitDebugInfo {
            size: 40,
            machine: EM_X86_64,
            tid: 7,
            version: 1,
            exception_address: 0x1000,
            siginfo: 0x2000,
            ucontext: 0x3000,
        };
        assert_eq!(LinuxJitDebugInfo::parse(&j.to_bytes()), Ok(j));
        let mut bad = j.to_bytes();
        bad[0] = 39;
        assert_eq!(
            LinuxJitDebugInfo::parse(&bad),
            Err(JitBlockError::BadSize(39))
        );
        assert_eq!(
            LinuxJitDebugInfo::parse(&bad[..3]),
            Err(JitBlockError::Short(3))
        );
    }
}
