//! `coroner handler --serve`: the kernel tier over the coredump socket
//! (`core_pattern` = `@@/run/coroner/coredump.socket`, Linux 6.17+; `@…` on
//! 6.16). The kernel connects once per crash from the crashing task; this
//! server answers each request with a per-crash policy before any byte of
//! the core is written:
//!
//! - **reject** (`COREDUMP_REJECT`) an excluded executable, a crash the
//!   in-process runtime already reported, or one over the rate limits: the
//!   kernel then writes nothing, and a crash flood costs one small answer
//!   per crash, not a process and a core each;
//! - **collect** (`COREDUMP_KERNEL | COREDUMP_WAIT`) otherwise: the kernel
//!   writes the core into the connection and keeps `/proc/PID` alive until
//!   we close it; a fresh `coroner handler --from-socket` process gets the
//!   connection as its stdin and runs the same pipeline as the pipe
//!   handler. A crash of that process costs one report, never the server.
//!
//! `COREDUMP_USERSPACE` (the server reads the process itself) is not used:
//! the kernel's own core writer is the fastest reader of a dying process.
//!
//! Trust: the socket is root-only (mode 0600; the kernel connects with its
//! own credentials), and every connection must come from a process the
//! kernel marked as dumping core (`SO_PEERPIDFD`, `PIDFD_INFO_COREDUMP`);
//! anything else is refused with a log line. Everything else is as hostile
//! as in the pipe handler.
//!
//! Must not: parse the core (the per-crash child does) or block on one
//! crash for long (reads from the kernel have a timeout; at most
//! `--max-children` crashes are collected at once, the rest wait in the
//! listen backlog).

use crate::cmd::handler::{
    admit, destination, excluded, folder_for, handle, harden, identify, load_config, open_crashed,
    start_time_cap, Crash, Log,
};
use crate::dump_args::UsageError;
use anyhow::Context;
use coroner_config::kernel::HandlerArgs;
use coroner_config::Config;
use coroner_proc::crashed::{CrashMeta, Crashed};
use coroner_sys::sock::{
    peer_pidfd, pidfd_info, PidfdInfo, PIDFD_INFO_COREDUMP, PIDFD_INFO_CREDS, PIDFD_INFO_PID,
};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where the server listens unless told otherwise (and where the shipped
/// systemd socket unit listens).
pub const DEFAULT_SOCKET: &str = "/run/coroner/coredump.socket";
/// Crashes collected at once by default (like `core_pipe_limit`).
const DEFAULT_MAX_CHILDREN: usize = 16;
/// Longest the server waits on the kernel for one protocol message.
const PROTOCOL_TIMEOUT: Duration = Duration::from_secs(10);

pub const SERVE_USAGE: &str = "\
Usage: coroner handler --serve [--config FILE] [--socket PATH] [--max-children N]

The coredump-socket server (Linux 6.16+). Listens on PATH (default
/run/coroner/coredump.socket, root-only), or on the socket systemd passes
(LISTEN_FDS, see dist/systemd/). `coroner install --system --socket` then
points kernel.core_pattern at it. Each crash is answered on its own:
rejected when excluded, already reported or rate-limited, collected by a
fresh `coroner handler --from-socket` process otherwise.
";

/// The coredump socket protocol (`linux/coredump.h`): the kernel sends a
/// `coredump_req`, we answer with a `coredump_ack`, the kernel confirms
/// with a `coredump_mark`.
pub mod proto {
    /// The kernel writes the core into the connection.
    pub const KERNEL: u64 = 1 << 0;
    /// The server collects the core itself (offered, never asked for).
    #[allow(dead_code)]
    pub const USERSPACE: u64 = 1 << 1;
    /// No core at all.
    pub const REJECT: u64 = 1 << 2;
    /// The kernel keeps the process until the server closes the connection.
    pub const WAIT: u64 = 1 << 3;
    /// `COREDUMP_REQ_SIZE_VER0` / `COREDUMP_ACK_SIZE_VER0`.
    pub const REQ_SIZE_VER0: u32 = 16;
    pub const ACK_SIZE_VER0: u32 = 16;
    /// Larger requests than this are not from a kernel we understand.
    pub const REQ_SIZE_MAX: u32 = 4096;

    /// A `coredump_req`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Request {
        pub size: u32,
        /// The largest `coredump_ack` the kernel reads.
        pub size_ack: u32,
        /// What the kernel supports.
        pub mask: u64,
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    /// The request's size from its first four bytes, checked.
    pub fn request_size(head: [u8; 4]) -> Result<u32, String> {
        let size = u32::from_le_bytes(head);
        if !(REQ_SIZE_VER0..=REQ_SIZE_MAX).contains(&size) {
            return Err(format!(
                "a coredump request of {size} bytes (expected {REQ_SIZE_VER0}..={REQ_SIZE_MAX})"
            ));
        }
        Ok(size)
    }

    /// Parse a whole request (`size` bytes; fields past version 0 are
    /// ignored, as the protocol allows).
    pub fn parse_request(b: &[u8]) -> Result<Request, String> {
        let bad = || format!("a coredump request of {} bytes is too short", b.len());
        let size = u32_at(b, 0).ok_or_else(bad)?;
        let size_ack = u32_at(b, 4).ok_or_else(bad)?;
        let mask = u64::from_le_bytes(
            b.get(8..16)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        if size as usize != b.len() {
            return Err(format!(
                "a coredump request says {size} bytes but has {}",
                b.len()
            ));
        }
        Ok(Request {
            size,
            size_ack,
            mask,
        })
    }

    /// The mask to answer with: collect (the kernel writes the core and
    /// waits for us) or reject. An error if this kernel cannot do it.
    pub fn answer(req: &Request, reject: bool) -> Result<u64, String> {
        if req.size_ack < ACK_SIZE_VER0 {
            return Err(format!(
                "the kernel reads acknowledgements of {} bytes, fewer than the {ACK_SIZE_VER0} of version 0",
                req.size_ack
            ));
        }
        let want = if reject { REJECT } else { KERNEL | WAIT };
        let must = if reject { REJECT } else { KERNEL };
        if req.mask & must != must {
            return Err(format!(
                "the kernel does not offer {} (it offers {:#x})",
                if reject { "REJECT" } else { "KERNEL" },
                req.mask
            ));
        }
        Ok(want & req.mask)
    }

    /// A version-0 `coredump_ack` carrying `mask`.
    pub fn ack(mask: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&ACK_SIZE_VER0.to_le_bytes());
        b[8..16].copy_from_slice(&mask.to_le_bytes());
        b
    }

    /// What the kernel's `coredump_mark` means.
    pub fn mark(m: u32) -> Result<(), String> {
        match m {
            0 => Ok(()),
            1 => Err("MINSIZE: our acknowledgement was too small".into()),
            2 => Err("MAXSIZE: our acknowledgement was too large".into()),
            3 => Err("UNSUPPORTED: we asked for something the kernel does not offer".into()),
            4 => Err("CONFLICTING: we asked for two exclusive things".into()),
            n => Err(format!("unknown mark {n}")),
        }
    }
}

struct ServeOpts {
    config: Option<PathBuf>,
    socket: PathBuf,
    max_children: usize,
}

fn parse_serve(args: &[OsString]) -> Result<Option<ServeOpts>, UsageError> {
    let mut o = ServeOpts {
        config: None,
        socket: PathBuf::from(DEFAULT_SOCKET),
        max_children: DEFAULT_MAX_CHILDREN,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        let mut value = |name: &str, inline: Option<&[u8]>| -> Result<OsString, UsageError> {
            match inline {
                Some(v) => Ok(OsStr::from_bytes(v).to_owned()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        match b {
            b"-h" | b"--help" => {
                print!("{SERVE_USAGE}");
                return Ok(None);
            }
            _ if b == b"--config" || b.starts_with(b"--config=") => {
                let v = PathBuf::from(value("--config", b.strip_prefix(b"--config="))?);
                if !v.is_absolute() {
                    return Err(UsageError(format!(
                        "--config {} must be an absolute path",
                        v.display()
                    )));
                }
                o.config = Some(v);
            }
            _ if b == b"--socket" || b.starts_with(b"--socket=") => {
                let v = PathBuf::from(value("--socket", b.strip_prefix(b"--socket="))?);
                if !v.is_absolute() {
                    return Err(UsageError(format!(
                        "--socket {} must be an absolute path",
                        v.display()
                    )));
                }
                o.socket = v;
            }
            _ if b == b"--max-children" || b.starts_with(b"--max-children=") => {
                let v = value("--max-children", b.strip_prefix(b"--max-children="))?;
                o.max_children = v
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        UsageError(format!("--max-children {v:?}: not a positive number"))
                    })?;
            }
            _ => {
                return Err(UsageError(format!(
                    "unexpected argument {a:?} (see coroner handler --serve --help)"
                )))
            }
        }
    }
    Ok(Some(o))
}

fn server_log() -> Log {
    Log::with_prefix(format!("coroner-serve[{}]: ", std::process::id()))
}

/// The listening socket systemd passed (`LISTEN_PID` = us, `LISTEN_FDS` =
/// 1: fd 3), if any.
fn activated() -> anyhow::Result<Option<UnixListener>> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS").ok();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !ours {
        return Ok(None);
    }
    if fds.as_deref() != Some("1") {
        anyhow::bail!(
            "systemd passed LISTEN_FDS={} sockets; the server takes exactly one",
            fds.unwrap_or_default()
        );
    }
    let fd = coroner_sys::sock::take_inherited_socket(3)
        .context("the socket systemd passed as fd 3 is not usable")?;
    Ok(Some(UnixListener::from(fd)))
}

/// True if a listening socket is bound at `path` (per `/proc/net/unix`).
pub fn listening(path: &Path) -> bool {
    std::fs::read("/proc/net/unix")
        .map(|t| coroner_config::kernel::unix_listening(&t, path))
        .unwrap_or(false)
}

/// Bind `path` ourselves: its directory must be root's and writable only by
/// root (created 0755 if missing); a stale socket from an earlier server is
/// replaced, anything else at `path` is refused.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .with_context(|| format!("{} has no directory", path.display()))?;
    if std::fs::symlink_metadata(parent).is_err() {
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let unsafe_dir = match crate::rootonly::first_unsafe_component(parent)? {
        Some(found) => Some(found),
        None => {
            let m = std::fs::symlink_metadata(parent)
                .with_context(|| format!("cannot stat {}", parent.display()))?;
            (!m.is_dir()).then(|| (parent.to_path_buf(), m))
        }
    };
    if let Some((cur, m)) = unsafe_dir {
        anyhow::bail!(
            "{} is not a root-owned directory writable only by root (mode {:o}, uid {}): refusing to put the coredump socket under it",
            cur.display(),
            m.mode() & 0o7777,
            m.uid()
        );
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if listening(path) {
                anyhow::bail!("another server already listens on {}", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        ),
        Err(_) => {}
    }
    // umask 077 (harden) makes it root-only from the start; 0600 is what
    // the systemd unit asks for too.
    let l =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(l)
}

/// Bounded count of crashes being collected.
#[derive(Default)]
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn wait_below(&self, max: usize) {
        let mut n = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
    fn take(&self) {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    fn give(&self) {
        let mut n = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.freed.notify_all();
    }
}

pub fn serve(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let Some(opts) = parse_serve(args)? else {
        return Ok(ExitCode::SUCCESS);
    };
    harden();
    let mut log = server_log();
    let (listener, origin) = match activated()? {
        Some(l) => (l, "the socket systemd passed".to_owned()),
        None => (bind(&opts.socket)?, opts.socket.display().to_string()),
    };
    if coroner_sys::uids().1 != 0 {
        log.warn("not running as root: crashes of other users cannot be collected");
    }
    log.info(&format!(
        "listening on {origin} (at most {} crashes collected at once)",
        opts.max_children
    ));
    let slots = Arc::new(Slots::default());
    loop {
        slots.wait_below(opts.max_children);
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log.warn(&format!("accept failed: {e}"));
                // Out of descriptors or memory: let collections finish.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if let Err(e) = serve_one(conn, &opts, &slots) {
            log.warn(&format!("{e:#}"));
        }
    }
}

/// The process at the other end, verified to be dumping core.
fn dumping_peer(sock: BorrowedFd<'_>) -> anyhow::Result<(OwnedFd, PidfdInfo)> {
    let pidfd = peer_pidfd(sock).context("cannot get the connecting process (SO_PEERPIDFD)")?;
    let info = pidfd_info(
        pidfd.as_fd(),
        PIDFD_INFO_PID | PIDFD_INFO_CREDS | PIDFD_INFO_COREDUMP,
    )
    .context("cannot ask pidfs about the connecting process (PIDFD_GET_INFO)")?;
    if !info.is_dumping_core() {
        anyhow::bail!(
            "refused a connection from pid {} (uid {}): that process is not dumping core",
            info.pid,
            info.ruid
        );
    }
    Ok((pidfd, info))
}

/// `RLIMIT_CORE`'s soft limit from `/proc/PID/limits` (`%c`), as decimal.
fn core_limit(c: &Crashed) -> Option<String> {
    let f = coroner_sys::fs::open_read_at(c.dir(), OsStr::new("limits")).ok()?;
    let mut text = Vec::new();
    f.take(64 << 10).read_to_end(&mut text).ok()?;
    let line = text
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"Max core file size"))?;
    let soft = line[b"Max core file size".len()..]
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    let v = match soft {
        b"unlimited" => u64::MAX,
        n => std::str::from_utf8(n).ok()?.parse().ok()?,
    };
    c.verify().ok()?;
    Some(v.to_string())
}

/// The kernel's host name (`%h` shows the crashing process's UTS
/// namespace; here it is the server's, which differs only in containers).
fn host() -> OsString {
    let mut h = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
    while h.last() == Some(&b'\n') {
        h.pop();
    }
    OsStr::from_bytes(&h).to_owned()
}

/// What the pipe handler gets as `%P %I %s %t %d %F %u %g %c %h %p %i %e`,
/// from pidfs and the verified `/proc`. The signal and the crashing thread
/// are not known before the core arrives: 0 here, filled in from its
/// `NT_SIGINFO` by the handler.
fn peer_args(
    info: &PidfdInfo,
    opened: Option<&(Crashed, CrashMeta)>,
    config: Option<&Path>,
) -> HandlerArgs {
    let meta = opened.map(|(_, m)| m);
    let ns_pid = meta.and_then(|m| m.ns_pid).unwrap_or(info.pid);
    HandlerArgs {
        config: config.map(Path::to_path_buf),
        pid: info.pid,
        tid: info.pid,
        signal: 0,
        time: i64::try_from(crate::naming::now_epoch()).unwrap_or(0),
        dumpable: info.dump_mode(),
        pidfd: None,
        uid: info.ruid,
        gid: info.rgid,
        core_limit: opened.and_then(|(c, _)| core_limit(c)).unwrap_or_default(),
        host: host(),
        ns_pid,
        ns_tid: ns_pid,
        comm: meta
            .map(|m| OsStr::from_bytes(&m.status.name).to_owned())
            .unwrap_or_default(),
    }
}

/// The crash at the other end of `sock`, identified as the pipe handler
/// identifies its crash.
fn peer_crash(
    sock: BorrowedFd<'_>,
    config_path: Option<&Path>,
    config: &Config,
    log: &mut Log,
) -> anyhow::Result<(Crash, PidfdInfo)> {
    let (pidfd, info) = dumping_peer(sock)?;
    let opened = open_crashed(info.pid, Some(pidfd), config.kernel.environment);
    let args = peer_args(&info, opened.as_ref().ok(), config_path);
    Ok((identify(args, opened, log), info))
}

/// Whether to collect this crash, as the pipe handler would decide it:
/// `Some(suppressed_before)` to collect, `None` to reject (logged).
fn decide(crash: &Crash, info: &PidfdInfo, config: &Config, log: &mut Log) -> Option<Option<u64>> {
    // Our collecting processes make themselves non-dumpable first thing;
    // should one still dump, collecting it could recurse.
    if info.ppid == std::process::id() {
        log.warn("a crash of the server's own collecting process: not collected");
        return None;
    }
    if excluded(crash, &config.kernel, log) {
        return None;
    }
    let folder = folder_for(crash, config);
    let admitted = destination(&folder, &config.kernel)
        .and_then(|(_, mut store)| admit(crash, &config.kernel, &mut store, log));
    match admitted {
        Ok(Some(n)) => Some(Some(n)),
        Ok(None) => None,
        Err(e) => {
            // Collect anyway: the collecting process meets the same
            // problem and records it with the crash.
            log.warn(&format!("cannot apply the rate limits: {e:#}"));
            Some(None)
        }
    }
}

fn serve_one(mut conn: UnixStream, opts: &ServeOpts, slots: &Arc<Slots>) -> anyhow::Result<()> {
    conn.set_read_timeout(Some(PROTOCOL_TIMEOUT))?;
    conn.set_write_timeout(Some(PROTOCOL_TIMEOUT))?;
    let mut log = server_log();
    let mut first = [0u8; 1];
    if coroner_sys::sock::peek(conn.as_fd(), &mut first)
        .context("nothing came on a new connection")?
        == 0
    {
        anyhow::bail!("a connection closed before sending anything");
    }
    // `@` mode: the core's ELF magic comes first. `@@`: a request, whose
    // first byte is the low byte of its size (16 for version 0).
    if first[0] == 0x7f {
        let (_, info) = dumping_peer(conn.as_fd())?;
        conn.set_read_timeout(None)?;
        return spawn(conn, None, info.pid, opts, slots);
    }
    let mut head = [0u8; 4];
    conn.read_exact(&mut head)
        .context("cannot read the kernel's coredump request")?;
    let size = proto::request_size(head).map_err(|e| anyhow::anyhow!("refused {e}"))?;
    let mut whole = head.to_vec();
    whole.resize(size as usize, 0);
    conn.read_exact(&mut whole[4..])
        .context("cannot read the kernel's coredump request")?;
    let req = proto::parse_request(&whole).map_err(|e| anyhow::anyhow!("refused {e}"))?;
    let config = load_config(opts.config.as_deref(), &mut log);
    let (crash, info) = peer_crash(conn.as_fd(), opts.config.as_deref(), &config, &mut log)?;
    let mut log = Log::with_prefix(format!(
        "coroner-serve[{}]: crash of pid {}: ",
        std::process::id(),
        crash.args.pid
    ));
    let decision = decide(&crash, &info, &config, &mut log);
    let mask = proto::answer(&req, decision.is_none()).map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.write_all(&proto::ack(mask))
        .context("cannot answer the kernel's coredump request")?;
    let mut mark = [0u8; 4];
    conn.read_exact(&mut mark)
        .context("the kernel did not confirm our answer")?;
    if let Err(e) = proto::mark(u32::from_le_bytes(mark)) {
        anyhow::bail!(
            "the kernel refused our answer to pid {}: {e}",
            crash.args.pid
        );
    }
    let Some(admitted) = decision else {
        log.info("rejected: the kernel writes no core");
        return Ok(());
    };
    conn.set_read_timeout(None)?;
    conn.set_write_timeout(None)?;
    spawn(conn, admitted, crash.args.pid, opts, slots)
}

/// Hand the connection to a fresh `coroner handler --from-socket[=N]`.
fn spawn(
    conn: UnixStream,
    admitted: Option<u64>,
    pid: u32,
    opts: &ServeOpts,
    slots: &Arc<Slots>,
) -> anyhow::Result<()> {
    let exe = std::fs::read_link("/proc/self/exe").context("cannot find this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("handler").arg(match admitted {
        Some(n) => format!("--from-socket={n}"),
        None => "--from-socket".to_owned(),
    });
    if let Some(c) = &opts.config {
        let mut a = OsString::from("--config=");
        a.push(c);
        cmd.arg(a);
    }
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::from(OwnedFd::from(conn)))
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start the collection of pid {pid}"))?;
    slots.take();
    let slots = Arc::clone(slots);
    std::thread::spawn(move || {
        let _ = child.wait();
        slots.give();
    });
    Ok(())
}

/// `coroner handler --from-socket[=N] [--config=FILE]`: collect the crash
/// whose connection is stdin. `N`: the server already admitted it (and `N`
/// crashes were suppressed before it); without it (`@` mode) the crash is
/// gated here as in the pipe handler.
pub fn connection(args: &[OsString]) -> ExitCode {
    harden();
    let started = Instant::now();
    let mut log = Log::with_prefix(format!("coroner-handler[{}]: ", std::process::id()));
    let admitted = match args[0].as_bytes().strip_prefix(b"--from-socket") {
        Some(b"") => None,
        Some(n) => match n
            .strip_prefix(b"=")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => Some(n),
            None => {
                log.warn(&format!("refusing: bad argument {:?}", args[0]));
                return ExitCode::from(2);
            }
        },
        None => return ExitCode::from(2),
    };
    let config_path = match &args[1..] {
        [] => None,
        [c] => match c.as_bytes().strip_prefix(b"--config=") {
            Some(p) if p.starts_with(b"/") => Some(PathBuf::from(OsStr::from_bytes(p))),
            _ => {
                log.warn(&format!("refusing: bad argument {c:?}"));
                return ExitCode::from(2);
            }
        },
        more => {
            log.warn(&format!("refusing: {} unexpected arguments", more.len()));
            return ExitCode::from(2);
        }
    };
    let config = load_config(config_path.as_deref(), &mut log);
    start_time_cap(&config.kernel);
    let stdin = io::stdin();
    let crash = match peer_crash(stdin.as_fd(), config_path.as_deref(), &config, &mut log) {
        Ok((c, _)) => c,
        Err(e) => {
            log.warn(&format!("{e:#}"));
            return ExitCode::from(1);
        }
    };
    let mut log = Log::open(crash.args.pid);
    handle(crash, &config, admitted, started, &mut log)
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;

    fn req(size: u32, size_ack: u32, mask: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&size.to_le_bytes());
        b.extend_from_slice(&size_ack.to_le_bytes());
        b.extend_from_slice(&mask.to_le_bytes());
        b.resize(size as usize, 0xAA);
        b
    }

    #[test]
    fn a_version_0_request_is_answered_collect_or_reject() {
        let all = KERNEL | USERSPACE | REJECT | WAIT;
        let r = parse_request(&req(16, 16, all)).unwrap();
        assert_eq!(
            r,
            Request {
                size: 16,
                size_ack: 16,
                mask: all
            }
        );
        assert_eq!(answer(&r, false).unwrap(), KERNEL | WAIT);
        assert_eq!(answer(&r, true).unwrap(), REJECT);
        let a = ack(KERNEL | WAIT);
        assert_eq!(&a[0..4], &16u32.to_le_bytes());
        assert_eq!(
            &a[4..8],
            &[0; 4],
            "spare must be zero or the kernel refuses"
        );
        assert_eq!(&a[8..16], &(KERNEL | WAIT).to_le_bytes());
    }

    #[test]
    fn a_larger_request_from_a_newer_kernel_is_read_whole() {
        let r = parse_request(&req(24, 24, KERNEL | REJECT)).unwrap();
        assert_eq!(r.size, 24);
        // No WAIT offered: collect without it.
        assert_eq!(answer(&r, false).unwrap(), KERNEL);
    }

    #[test]
    fn malformed_requests_are_refused_with_the_reason() {
        assert!(request_size(8u32.to_le_bytes())
            .unwrap_err()
            .contains("8 bytes"));
        assert!(request_size(1_000_000u32.to_le_bytes()).is_err());
        assert_eq!(request_size(16u32.to_le_bytes()), Ok(16));
        assert!(parse_request(&[16, 0, 0])
            .unwrap_err()
            .contains("too short"));
        let mut lying = req(16, 16, KERNEL);
        lying[0] = 20;
        assert!(parse_request(&lying).unwrap_err().contains("says 20"));
        let small_ack = parse_request(&req(16, 8, KERNEL | REJECT)).unwrap();
        assert!(answer(&small_ack, false).unwrap_err().contains("8 bytes"));
        let no_kernel = parse_request(&req(16, 16, REJECT | WAIT)).unwrap();
        assert!(answer(&no_kernel, false).unwrap_err().contains("KERNEL"));
        let no_reject = parse_request(&req(16, 16, KERNEL)).unwrap();
        assert!(answer(&no_reject, true).unwrap_err().contains("REJECT"));
    }

    #[test]
    fn marks_name_what_the_kernel_refused() {
        assert!(mark(0).is_ok());
        assert!(mark(3).unwrap_err().starts_with("UNSUPPORTED"));
        assert!(mark(4).unwrap_err().starts_with("CONFLICTING"));
        assert!(mark(99).unwrap_err().contains("99"));
    }

    #[test]
    fn serve_options_are_checked() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let o = parse_serve(&os(&["--socket=/run/x.sock", "--max-children", "3"]))
            .unwrap()
            .unwrap();
        assert_eq!(o.socket, Path::new("/run/x.sock"));
        assert_eq!(o.max_children, 3);
        assert!(o.config.is_none());
        assert!(parse_serve(&os(&["--socket", "rel.sock"])).is_err());
        assert!(parse_serve(&os(&["--config=etc/c.toml"])).is_err());
        assert!(parse_serve(&os(&["--max-children=0"])).is_err());
        assert!(parse_serve(&os(&["--bogus"])).is_err());
        assert!(parse_serve(&os(&["--socket"])).is_err());
    }

    #[test]
    fn a_connection_from_a_process_that_is_not_dumping_is_refused() {
        let (a, _b) = UnixStream::pair().unwrap();
        match dumping_peer(a.as_fd()) {
            Ok(_) => panic!("a live test process passed as dumping core"),
            Err(e) => {
                let msg = format!("{e:#}");
                // Kernels without SO_PEERPIDFD / PIDFD_GET_INFO say so instead.
                assert!(
                    msg.contains("not dumping core")
                        || msg.contains("SO_PEERPIDFD")
                        || msg.contains("PIDFD_GET_INFO"),
                    "{msg}"
                );
            }
        }
    }
}
