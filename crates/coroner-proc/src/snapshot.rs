//! The plain-data picture of a process that dump writers consume. Built from
//! a live process (this crate) or from an ELF core (`coroner-dump`).

use coroner_types::{Mapping, Pid, ThreadRegs, Tid};
use std::io;
use std::path::PathBuf;

/// Raw copies of the `/proc` files and system files minidumps carry as Linux
/// streams. `None` when the file could not be read (recorded as a soft error).
#[derive(Clone, Debug, Default)]
pub struct LinuxFiles {
    pub cmdline: Option<Vec<u8>>,
    pub environ: Option<Vec<u8>>,
    pub status: Option<Vec<u8>>,
    pub maps: Option<Vec<u8>>,
    pub limits: Option<Vec<u8>>,
    pub cpuinfo: Option<Vec<u8>>,
    pub os_release: Option<Vec<u8>>,
    /// Raw `/proc/PID/smaps`: dump planning uses `Rss` to skip reserved but
    /// untouched areas and `VmFlags` `io` to skip device mappings.
    pub smaps: Option<Vec<u8>>,
}

/// One thread at the moment the process was stopped.
#[derive(Clone, Debug, Default)]
pub struct ThreadSnapshot {
    pub tid: Tid,
    /// `/proc/PID/task/TID/comm` without the newline (raw bytes: hostile).
    pub name: Vec<u8>,
    /// `None` when the registers could not be read (thread vanished).
    pub regs: Option<ThreadRegs>,
}

/// Everything about a stopped process except its bulk memory.
#[derive(Clone, Debug, Default)]
pub struct ProcessSnapshot {
    pub pid: Pid,
    pub ppid: Pid,
    pub uid: u32,
    pub gid: u32,
    /// Target of `/proc/PID/exe` (may end in ` (deleted)`).
    pub exe: PathBuf,
    /// `/proc/PID/comm` (raw bytes, hostile).
    pub comm: Vec<u8>,
    /// Thread-group leader first, then by tid.
    pub threads: Vec<ThreadSnapshot>,
    /// Sorted by start address.
    pub mappings: Vec<Mapping>,
    /// Raw `/proc/PID/auxv`.
    pub auxv: Vec<u8>,
    pub files: LinuxFiles,
    /// Seconds since the epoch when the process started (0 if unknown).
    pub start_time: u64,
    /// Non-fatal problems met while collecting (unreadable file, thread that
    /// vanished). Writers carry them into the dump.
    pub soft_errors: Vec<String>,
}

impl ProcessSnapshot {
    /// The mapping containing `addr`.
    pub fn mapping_at(&self, addr: u64) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.end <= addr);
        self.mappings.get(i).filter(|m| m.contains(addr))
    }

    /// The value of an auxv entry (`AT_ENTRY` = 9, `AT_PHDR` = 3, ...).
    pub fn auxv_value(&self, key: u64) -> Option<u64> {
        auxv_value(&self.auxv, key)
    }
}

/// The value of entry `key` in a raw auxv (`/proc/PID/auxv`: pairs of
/// native-endian u64).
pub fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    auxv.chunks_exact(16).find_map(|c| {
        let mut k = [0u8; 8];
        let mut v = [0u8; 8];
        k.copy_from_slice(&c[..8]);
        v.copy_from_slice(&c[8..]);
        (u64::from_ne_bytes(k) == key).then(|| u64::from_ne_bytes(v))
    })
}

/// Random access to the target's memory.
///
/// `read` fills as much of `buf` as is readable starting at `addr` and
/// returns the count; a short count means the byte after it is unreadable.
/// `Ok(0)` or an error means nothing at `addr` is readable.
pub trait MemorySource: Sync {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Read exactly `buf.len()` bytes or fail.
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read(addr + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("memory at {:#x} is not readable", addr + done as u64),
                ));
            }
            done += n;
        }
        Ok(())
    }
}
