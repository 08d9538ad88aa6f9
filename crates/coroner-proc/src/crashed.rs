//! Metadata of a process the kernel is dumping, read through a pidfd so a
//! recycled PID can never hand us another process's details (the
//! CVE-2025-4598 / CVE-2025-5054 / CVE-2019-15790 class).
//!
//! How: open the `/proc/PID` directory once (`O_NOFOLLOW`), then check that
//! the pidfd (the kernel's `%F`, or `SO_PEERPIDFD`) still names a live
//! process with that PID (its `/proc/self/fdinfo` `Pid:` line). While the
//! pidfd's process lives no other process can hold the PID, so the
//! directory opened before the check is that process's; every later read is
//! relative to the directory fd, and the check is repeated after the reads
//! ([`Crashed::verify`]). Without a pidfd (kernels before 6.16 do not pass
//! `%F`) one is opened by PID at once — racy, and said so in the result.
//!
//! Must not: follow a symlink, open a FIFO blocking, trust any byte read
//! (names and paths are kept as raw bytes for the caller to escape), or read
//! the environment unless asked.

use crate::error::ProcError;
use crate::procfs::{parse_stat, parse_status, ProcStatus};
use crate::snapshot::auxv_value;
use coroner_types::Pid;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// Most bytes read from one `/proc` file (environ and cmdline can be large;
/// what is past this is dropped and said so).
const MAX_PROC_FILE: u64 = 1 << 20;

/// `AT_SECURE` in the auxiliary vector.
const AT_SECURE: u64 = 23;

/// The opened process.
#[derive(Debug)]
pub struct Crashed {
    pid: Pid,
    dir: OwnedFd,
    pidfd: PidFd,
}

#[derive(Debug)]
enum PidFd {
    /// Given by the kernel (`%F`, `SO_PEERPIDFD`).
    Given(OwnedFd),
    /// Opened by PID ourselves: racy on its own.
    Opened(OwnedFd),
}

impl PidFd {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            PidFd::Given(f) | PidFd::Opened(f) => f.as_fd(),
        }
    }
}

/// What was read about the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashMeta {
    /// `/proc/PID/exe` target (raw bytes; may end in " (deleted)").
    pub exe: Vec<u8>,
    /// `/proc/PID/cmdline` words.
    pub cmdline: Vec<Vec<u8>>,
    /// `/proc/PID/cwd` target.
    pub cwd: Option<Vec<u8>>,
    pub status: ProcStatus,
    /// Start time in clock ticks after boot (`stat` field 22): with the PID
    /// and the boot id, names the process uniquely.
    pub start_time: u64,
    /// `/proc/PID/cgroup` (v2 line `0::/path`, or the whole text).
    pub cgroup: Option<Vec<u8>>,
    /// The PID namespace (`ns/pid` link, `pid:[N]`), if not the reader's.
    pub container_pid_ns: Option<Vec<u8>>,
    /// The PID inside its own namespace (last `NSpid:` entry).
    pub ns_pid: Option<u32>,
    /// `AT_SECURE` from the auxv (setuid, setgid, capabilities at exec).
    pub at_secure: bool,
    pub environ: Option<Vec<Vec<u8>>>,
    /// The pidfd was opened by PID, not given by the kernel.
    pub racy_pidfd: bool,
    /// What could not be read.
    pub problems: Vec<String>,
}

impl CrashMeta {
    /// Plainly dumpable: not setuid/setgid, no privileges gained at exec,
    /// real ids equal effective ids (systemd's `grant_user_access` rule).
    pub fn plainly_dumpable(&self, dump_mode: u8) -> bool {
        dump_mode == 1
            && !self.at_secure
            && self.status.uid[0] == self.status.uid[1]
            && self.status.gid[0] == self.status.gid[1]
    }
}

/// The PID a pidfd names: the `Pid:` line of its fdinfo; `None` once the
/// process is gone (the kernel prints -1) or on kernels without the line.
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<i32> {
    let text = std::fs::read(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    text.split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(b"Pid:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}

fn read_capped(mut f: std::fs::File) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    (&mut f).take(MAX_PROC_FILE).read_to_end(&mut buf)?;
    let mut more = [0u8; 1];
    let truncated = f.read(&mut more)? > 0;
    Ok((buf, truncated))
}

fn nul_split(b: &[u8]) -> Vec<Vec<u8>> {
    b.split(|&c| c == 0)
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

impl Crashed {
    /// Open `/proc/PID` and bind it to `pidfd` (or to a pidfd opened now if
    /// `None`). Fails if the pidfd's process is not `pid` or is gone.
    pub fn open(pid: Pid, pidfd: Option<OwnedFd>) -> Result<Crashed, ProcError> {
        let gone = |source: io::Error| ProcError::NoSuchProcess { pid, source };
        let pidfd = match pidfd {
            Some(fd) => PidFd::Given(fd),
            None => PidFd::Opened(coroner_sys::pidfd_open(pid, 0).map_err(gone)?),
        };
        let path = format!("/proc/{}", pid.0);
        let dir = coroner_sys::fs::open_dir_path(OsStr::new(&path)).map_err(gone)?;
        let c = Crashed { pid, dir, pidfd };
        c.verify()?;
        Ok(c)
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The pidfd (for chaining it on to another handler).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.fd()
    }

    /// The `/proc/PID` directory, for further reads relative to it.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The pidfd still names a live process with our PID, so everything
    /// read through the directory so far was that process's.
    pub fn verify(&self) -> Result<(), ProcError> {
        match pidfd_pid(self.pidfd.fd()) {
            Some(p) if p == self.pid.0 => Ok(()),
            Some(-1) => Err(ProcError::PidReused {
                pid: self.pid,
                what: "the process behind the pidfd is gone".into(),
            }),
            Some(other) => Err(ProcError::PidReused {
                pid: self.pid,
                what: format!("the pidfd names pid {other}"),
            }),
            None => Err(ProcError::PidReused {
                pid: self.pid,
                what: "the pidfd's fdinfo has no Pid: line".into(),
            }),
        }
    }

    fn read(&self, name: &str) -> Result<(Vec<u8>, bool), ProcError> {
        let path = || PathBuf::from(format!("/proc/{}/{name}", self.pid.0));
        let f = coroner_sys::fs::open_read_at(self.dir.as_fd(), OsStr::new(name)).map_err(
            |source| ProcError::Read {
                path: path(),
                source,
            },
        )?;
        read_capped(f).map_err(|source| ProcError::Read {
            path: path(),
            source,
        })
    }

    fn link(&self, name: &str) -> Result<Vec<u8>, ProcError> {
        coroner_sys::fs::read_link_at(self.dir.as_fd(), OsStr::new(name)).map_err(|source| {
            ProcError::Read {
                path: PathBuf::from(format!("/proc/{}/{name}", self.pid.0)),
                source,
            }
        })
    }

    /// Read everything, then verify again. `status` and `stat` are
    /// required; anything else missing is a problem noted in the result.
    pub fn read_meta(&self, want_environ: bool) -> Result<CrashMeta, ProcError> {
        let mut m = CrashMeta {
            racy_pidfd: matches!(self.pidfd, PidFd::Opened(_)),
            ..CrashMeta::default()
        };
        let (status, _) = self.read("status")?;
        m.status = parse_status(&status).map_err(|source| ProcError::Parse {
            path: PathBuf::from(format!("/proc/{}/status", self.pid.0)),
            source,
        })?;
        m.ns_pid = status
            .split(|&c| c == b'\n')
            .find_map(|l| l.strip_prefix(b"NSpid:"))
            .and_then(|v| {
                v.split(|c| c.is_ascii_whitespace())
                    .rfind(|w| !w.is_empty())
            })
            .and_then(|w| std::str::from_utf8(w).ok()?.parse().ok());
        let (stat, _) = self.read("stat")?;
        m.start_time = parse_stat(&stat)
            .map_err(|source| ProcError::Parse {
                path: PathBuf::from(format!("/proc/{}/stat", self.pid.0)),
                source,
            })?
            .1;
        let mut note = |what: &str, e: ProcError| m.problems.push(format!("{what}: {e}"));
        match self.link("exe") {
            Ok(e) => m.exe = e,
            Err(e) => note("exe", e),
        }
        match self.read("cmdline") {
            Ok((c, cut)) => {
                m.cmdline = nul_split(&c);
                if cut {
                    m.problems.push("cmdline: longer than 1 MiB, cut".into());
                }
            }
            Err(e) => m.problems.push(format!("cmdline: {e}")),
        }
        match self.link("cwd") {
            Ok(c) => m.cwd = Some(c),
            Err(e) => m.problems.push(format!("cwd: {e}")),
        }
        match self.read("cgroup") {
            Ok((c, _)) => {
                let v2 = c
                    .split(|&b| b == b'\n')
                    .find_map(|l| l.strip_prefix(b"0::"))
                    .map(<[u8]>::to_vec);
                m.cgroup = Some(v2.unwrap_or(c));
            }
            Err(e) => m.problems.push(format!("cgroup: {e}")),
        }
        let ns_pid = coroner_sys::fs::open_dir_at(self.dir.as_fd(), OsStr::new("ns"))
            .and_then(|ns| coroner_sys::fs::read_link_at(ns.as_fd(), OsStr::new("pid")))
            .map_err(|source| ProcError::Read {
                path: PathBuf::from(format!("/proc/{}/ns/pid", self.pid.0)),
                source,
            });
        match (ns_pid, std::fs::read_link("/proc/self/ns/pid")) {
            (Ok(theirs), Ok(ours)) if theirs.as_slice() != ours.as_os_str().as_encoded_bytes() => {
                m.container_pid_ns = Some(theirs)
            }
            (Err(e), _) => m.problems.push(format!("ns/pid: {e}")),
            _ => {}
        }
        match self.read("auxv") {
            Ok((a, _)) => m.at_secure = auxv_value(&a, AT_SECURE).is_some_and(|v| v != 0),
            // Unreadable: assume the worst for readability decisions.
            Err(e) => {
                m.at_secure = true;
                m.problems.push(format!("auxv: {e}"));
            }
        }
        if want_environ {
            match self.read("environ") {
                Ok((e, _)) => m.environ = Some(nul_split(&e)),
                Err(e) => m.problems.push(format!("environ: {e}")),
            }
        }
        self.verify()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    #[test]
    fn reads_a_live_child_and_binds_to_its_pidfd() {
        let mut child = Command::new("sh")
            .args(["-c", "echo ready; read x"])
            .env("CORONER_TEST_VAR", "v1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let pid = Pid(child.id() as i32);
        let pidfd = coroner_sys::pidfd_open(pid, 0).unwrap();
        let c = Crashed::open(pid, Some(pidfd)).unwrap();
        let m = c.read_meta(true).unwrap();
        assert!(m.exe.ends_with(b"sh") || m.exe.ends_with(b"dash") || m.exe.ends_with(b"bash"));
        assert_eq!(m.cmdline[0], b"sh");
        assert_eq!(m.status.tgid, pid);
        assert!(m.start_time > 0);
        assert!(!m.at_secure && !m.racy_pidfd);
        assert!(m.plainly_dumpable(1) && !m.plainly_dumpable(2));
        assert!(m
            .environ
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e == b"CORONER_TEST_VAR=v1"));
        assert_eq!(m.container_pid_ns, None);
        assert_eq!(m.ns_pid, Some(pid.0 as u32));
        // The process goes away and is reaped: the binding fails, even
        // though the directory fd is still open.
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(matches!(c.verify(), Err(ProcError::PidReused { .. })));
        assert!(c.read_meta(false).is_err());
    }

    #[test]
    fn a_pidfd_of_another_process_is_refused() {
        let me = coroner_sys::getpid();
        let other = coroner_sys::pidfd_open(Pid(1), 0).unwrap();
        assert!(matches!(
            Crashed::open(me, Some(other)),
            Err(ProcError::PidReused { .. })
        ));
        assert!(matches!(
            Crashed::open(Pid(i32::MAX - 1), None),
            Err(ProcError::NoSuchProcess { .. })
        ));
    }
}
