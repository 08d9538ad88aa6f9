//! `coroner handler`: the kernel tier. The kernel runs it, as root, for
//! every crashing process on the host (`core_pattern` =
//! `|coroner handler %P %I %s %t %d %F %u %g %c %h %p %i %e`) and streams the
//! ELF core on its stdin. It writes what `[localdumps]` asks for (minidump
//! and/or ELF core, from one read of the stream), records the crash in the
//! report store beside the dumps, and forwards the core to the handler that
//! was installed before coroner (chaining).
//!
//! Everything from the crashing process is hostile: its name (sanitized in
//! file names, escaped in logs and reports), its `/proc` entries (read only
//! through the pidfd, re-verified), its memory (parsed by a never-panicking
//! reader with caps). Analysis, which opens the files the process had
//! mapped, runs in a child with the crashing user's credentials (`nobody`
//! for root's crashes). Dumps go into a root-owned folder via `O_TMPFILE` +
//! `linkat`; the crashing user may read its own dump only when the process
//! was plainly dumpable (`%d` = 1, not setuid/setgid, no `AT_SECURE`).
//!
//! Nothing is lost quietly: every refusal and failure is one log line
//! (`/dev/kmsg`, so the journal and `dmesg` have it, and stderr) naming the
//! process, and a crash that was seen but could not be dumped still gets its
//! store row with the reason.

use crate::dumpdir::{set_access, DumpDir, FolderMode};
use crate::naming::{sanitize_component, yymmdd_hhmmss};
use anyhow::Context;
use coroner_config::kernel::{chain_command, parse_handler_args, saved_state, HandlerArgs};
use coroner_config::{Config, DumpLevel as CfgLevel, KernelTier, Sources};
use coroner_dump::stream::{ingest, CoreOut, Ingested, StreamPlan};
use coroner_dump::{DumpFormat, DumpLevel, DumpOptions, NoProgress};
use coroner_proc::crashed::{CrashMeta, Crashed};
use coroner_store::text::escape;
use coroner_store::{Admission, DumpFile, NewReport, RateLimits, Retention, Store, Tier};
use coroner_types::Pid;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub const USAGE: &str = "\
Usage: coroner handler [--config=FILE] %P %I %s %t %d %F %u %g %c %h %p %i %e
       coroner handler --serve [--config FILE] [--socket PATH] [--max-children N]
       coroner handler --analyze < MINIDUMP

The kernel-tier crash handler. The kernel runs it for every crashing process
once `coroner install --system` has set kernel.core_pattern; it is not meant
to be run by hand (tests feed it recorded core streams). `--serve` is the
coredump-socket server `coroner install --system --socket` points the kernel
at instead (see `coroner handler --serve --help`). `--analyze` is the
unprivileged analysis step it runs in a child: a minidump on stdin, the
analysis as JSON on stdout.
";

/// The uid analysis runs as for crashes of root's processes.
const NOBODY: u32 = 65534;
/// Longest the analysis child may take.
const ANALYSIS_TIME: Duration = Duration::from_secs(60);
/// Largest minidump the analysis step accepts on stdin.
const ANALYSIS_MAX: u64 = 512 << 20;

/// One-line log sink: `/dev/kmsg` (journal, dmesg) and stderr.
pub struct Log {
    kmsg: Option<File>,
    prefix: String,
}

impl Log {
    pub fn open(pid: u32) -> Log {
        Log::with_prefix(format!(
            "coroner-handler[{}]: crash of pid {pid}: ",
            std::process::id()
        ))
    }

    /// A log whose lines start with `prefix` (the socket server's own).
    pub fn with_prefix(prefix: String) -> Log {
        let kmsg = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok();
        Log { kmsg, prefix }
    }

    /// Log one line (escaped: never more than one line, no control bytes).
    pub fn line(&mut self, level: u8, msg: &str) {
        let text = format!("{}{}", self.prefix, escape(msg));
        if let Some(k) = &mut self.kmsg {
            let _ = k.write_all(format!("<{level}>{text}\n").as_bytes());
        }
        eprintln!("{text}");
    }
    pub fn warn(&mut self, msg: &str) {
        self.line(4, msg)
    }
    pub fn info(&mut self, msg: &str) {
        self.line(6, msg)
    }
}

use std::os::unix::fs::OpenOptionsExt;

pub fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    match args.first().and_then(|a| a.to_str()) {
        Some("-h" | "--help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some("--analyze") => analyze_stdin(&args[1..]),
        Some("--serve") => crate::cmd::serve::serve(&args[1..]),
        Some(a) if a.starts_with("--from-socket") => Ok(crate::cmd::serve::connection(args)),
        _ => Ok(pipe(args)),
    }
}

/// Limit what a crash of this process could do: no core of it (RLIMIT_CORE
/// 1 makes the kernel refuse to run a pipe handler for it, so a crash of
/// the handler never recurses), not dumpable, private files.
pub(crate) fn harden() {
    let _ = coroner_sys::set_rlimit(libc::RLIMIT_CORE, 1, 1);
    let _ = coroner_sys::set_dumpable(false);
    coroner_sys::set_umask(0o077);
}

/// `--analyze [--sysroot=DIR]`: the unprivileged step. Reads a minidump
/// from stdin and prints the analyzer's report as JSON. `DIR`: the crashed
/// process's root when it ran in another mount namespace (a container):
/// its module paths and debug files are found there.
fn analyze_stdin(args: &[OsString]) -> anyhow::Result<ExitCode> {
    harden();
    let mut opts = coroner_analyze::AnalyzeOptions::default();
    for a in args {
        match a.as_bytes().strip_prefix(b"--sysroot=") {
            Some(dir) if dir.starts_with(b"/") => {
                let dir = Path::new(std::ffi::OsStr::from_bytes(dir)).to_path_buf();
                opts.symbols.debug_dirs.insert(0, dir.join("usr/lib/debug"));
                opts.symbols.sysroot = Some(dir);
            }
            _ => anyhow::bail!("--analyze: unexpected argument {a:?}"),
        }
    }
    let mut data = Vec::new();
    io::stdin()
        .take(ANALYSIS_MAX)
        .read_to_end(&mut data)
        .context("cannot read the minidump from stdin")?;
    let report = coroner_analyze::analyze_minidump_bytes(
        Path::new("<stdin>"),
        data,
        &opts,
        Vec::new(),
        "minidump",
    )?;
    serde_json::to_writer(io::stdout().lock(), &report)?;
    Ok(ExitCode::SUCCESS)
}

/// The crash as the handler sees it: arguments, and what /proc said.
pub(crate) struct Crash {
    pub(crate) args: HandlerArgs,
    meta: Option<CrashMeta>,
    crashed: Option<Crashed>,
    boot_id: String,
    exe: String,
    notes: Vec<String>,
}

impl Crash {
    pub(crate) fn exe_base(&self) -> &str {
        self.exe.rsplit('/').next().unwrap_or(&self.exe)
    }
    fn comm(&self) -> String {
        String::from_utf8_lossy(self.args.comm.as_bytes()).into_owned()
    }
}

pub(crate) fn load_config(config: Option<&Path>, log: &mut Log) -> Config {
    let sources = Sources::system_only(config, 0);
    match coroner_config::load(&sources) {
        Ok(l) => {
            for w in l.warnings {
                log.warn(&w);
            }
            l.config
        }
        Err(e) => {
            log.warn(&format!("{e:#}; using the defaults"));
            Config::default()
        }
    }
}

/// The pidfd the kernel passed as `%F` (fd 3), made close-on-exec so only
/// the chained handler (which is given it on purpose) sees it.
fn take_pidfd(args: &HandlerArgs, log: &mut Log) -> Option<OwnedFd> {
    let n = args.pidfd?;
    match coroner_sys::fs::take_inherited_pidfd(n) {
        Ok(fd) => Some(fd),
        Err(e) => {
            log.warn(&format!(
                "%F = {n} is not a pidfd ({e}); opening one by PID"
            ));
            None
        }
    }
}

fn pipe(raw: &[OsString]) -> ExitCode {
    harden();
    let started = Instant::now();
    let args = match parse_handler_args(raw) {
        Ok(a) => a,
        Err(e) => {
            let mut log = Log::open(0);
            log.warn(&format!("refusing: {e}"));
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            return ExitCode::from(2);
        }
    };
    let mut log = Log::open(args.pid);
    // The kernel writes the core from the crashing task into our stdin
    // pipe; a larger pipe means far fewer sleeps and wake-ups on both sides
    // (the default 64 KiB is one round trip per 16 pages).
    let _ = coroner_sys::set_pipe_size(io::stdin().as_fd(), 8 << 20)
        .or_else(|_| coroner_sys::set_pipe_size(io::stdin().as_fd(), 1 << 20));
    let config = load_config(args.config.as_deref(), &mut log);
    start_time_cap(&config.kernel);
    let pidfd = take_pidfd(&args, &mut log);
    let opened = open_crashed(args.pid, pidfd, config.kernel.environment);
    let crash = identify(args, opened, &mut log);
    handle(crash, &config, None, started, &mut log)
}

/// The time cap: past it (plus a grace for the store row), give up.
pub(crate) fn start_time_cap(kernel: &KernelTier) {
    let grace = kernel.time_max + Duration::from_secs(30);
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        let mut log = Log::open(0);
        log.warn(&format!(
            "time cap of {} s exceeded: giving up",
            grace.as_secs()
        ));
        std::process::exit(1);
    });
}

/// One crash, identified: collect it (the core stream on stdin), then
/// chain. `admitted`: the socket server already ran [`admit`] and answered
/// the kernel; this is the `suppressed_before` it got.
pub(crate) fn handle(
    mut crash: Crash,
    config: &Config,
    admitted: Option<u64>,
    started: Instant,
    log: &mut Log,
) -> ExitCode {
    let kernel = &config.kernel;
    let previous = chain_previous(kernel, log);
    let mut out = Collected {
        spool: None,
        stream_read: false,
        chain: previous.is_some(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        collect(&mut crash, config, kernel, admitted, started, &mut out, log)
    }));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log.warn(&format!("{e:#}")),
        Err(_) => log.warn("the handler panicked; nothing was published for this crash"),
    }
    if let Some(argv) = previous.and_then(|p| chain_argv(&crash, &p, log)) {
        chain(&argv, out.spool.take(), out.stream_read, log);
    }
    ExitCode::SUCCESS
}

/// `/proc/PID` bound to the pidfd (opened by PID if `None`), and what it
/// says, verified after the reads.
pub(crate) fn open_crashed(
    pid: u32,
    pidfd: Option<OwnedFd>,
    environment: bool,
) -> Result<(Crashed, CrashMeta), String> {
    let c = Crashed::open(Pid(pid as i32), pidfd)
        .map_err(|e| format!("process metadata refused: {e}"))?;
    let m = c
        .read_meta(environment)
        .map_err(|e| format!("process metadata refused: {e}"))?;
    Ok((c, m))
}

/// Who crashed: /proc through the pidfd, verified; on failure the crash is
/// still collected, from the core alone, and marked sensitive.
pub(crate) fn identify(
    args: HandlerArgs,
    opened: Result<(Crashed, CrashMeta), String>,
    log: &mut Log,
) -> Crash {
    let mut notes = Vec::new();
    let boot_id = coroner_proc::procfs::boot_id();
    let (crashed, meta) = match opened {
        Ok((c, m)) => (Some(c), Some(m)),
        Err(e) => {
            notes.push(e);
            (None, None)
        }
    };
    if meta.is_none() {
        log.warn(&format!(
            "{}; the dump is kept root-only",
            notes.last().map(String::as_str).unwrap_or("")
        ));
    }
    if let Some(m) = &meta {
        notes.extend(m.problems.iter().cloned());
        if m.racy_pidfd {
            notes.push("no pidfd from the kernel (%F): opened one by PID".into());
        }
    }
    let exe = meta
        .as_ref()
        .filter(|m| !m.exe.is_empty())
        .map(|m| String::from_utf8_lossy(&m.exe).into_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(args.comm.as_bytes()).into_owned());
    Crash {
        args,
        meta,
        crashed,
        boot_id,
        exe,
        notes,
    }
}

/// What the chained handler is fed: the plain core we spooled.
type Spool = Option<File>;

/// What `collect` leaves for chaining, whatever its outcome.
struct Collected {
    /// The plain core as received (unnamed unless the core was published).
    spool: Spool,
    /// Something was read from stdin (so it can no longer be handed on).
    stream_read: bool,
    /// A chained handler wants the whole core.
    chain: bool,
}

fn md_level(l: CfgLevel) -> Option<DumpLevel> {
    match l {
        CfgLevel::Mini => Some(DumpLevel::Mini),
        CfgLevel::MiniPlus => Some(DumpLevel::MiniPlus),
        CfgLevel::Full => Some(DumpLevel::Full),
        CfgLevel::Core => None,
    }
}

/// True (logged) if `[kernel] exclude` names the executable or the command.
pub(crate) fn excluded(crash: &Crash, kernel: &KernelTier, log: &mut Log) -> bool {
    let base = crash.exe_base();
    let hit = kernel.excluded(base) || kernel.excluded(&crash.comm());
    if hit {
        log.info(&format!(
            "{base} is excluded ([kernel] exclude): not collected"
        ));
    }
    hit
}

/// The executable's `[localdumps]` settings (the kernel tier collects even
/// without a `[localdumps]` table: the defaults then, as an empty table
/// would give).
fn local_dumps(config: &Config) -> std::borrow::Cow<'_, coroner_config::LocalDumps> {
    match &config.localdumps {
        Some(l) => std::borrow::Cow::Borrowed(l),
        None => std::borrow::Cow::Owned(coroner_config::LocalDumps::default()),
    }
}

/// The crash's dump folder (root-owned, checked on the way) and the report
/// store in it.
pub(crate) fn destination(folder: &Path, kernel: &KernelTier) -> anyhow::Result<(DumpDir, Store)> {
    let mode = FolderMode {
        group: kernel.group,
        traverse: kernel.user_access,
    };
    let dir = DumpDir::open(folder, 0, mode)?;
    let store = Store::open(dir.path())
        .with_context(|| format!("cannot open the report store in {}", dir.path().display()))?;
    Ok((dir, store))
}

/// The folder `[localdumps]` gives this crash's executable.
pub(crate) fn folder_for(crash: &Crash, config: &Config) -> std::path::PathBuf {
    local_dumps(config)
        .effective(crash.exe_base())
        .folder
        .to_path_buf()
}

/// Whether a crash that is not excluded is collected: not if the runtime
/// already reported it, nor over the rate limits (counted then).
/// `Some(n)`: collect; `n` crashes were suppressed just before it.
pub(crate) fn admit(
    crash: &Crash,
    kernel: &KernelTier,
    store: &mut Store,
    log: &mut Log,
) -> anyhow::Result<Option<u64>> {
    if let Some(m) = &crash.meta {
        if store.was_reported(&crash.boot_id, crash.args.pid, m.start_time)? {
            log.info("already reported by the in-process runtime: not reported twice");
            return Ok(None);
        }
    }
    let limits = RateLimits {
        interval_secs: kernel.rate_interval.as_secs(),
        per_exe_burst: kernel.rate_burst,
        global_burst: kernel.rate_global_burst,
    };
    let base = crash.exe_base();
    Ok(match store.admit(base, crash.args.time, &limits)? {
        Admission::Suppress { suppressed } => {
            log.warn(&format!(
                "rate limit: {base} crashed {suppressed} times over the limit in this interval; counted, not dumped"
            ));
            None
        }
        Admission::Record { suppressed_before } => Some(suppressed_before),
    })
}

fn collect(
    crash: &mut Crash,
    config: &Config,
    kernel: &KernelTier,
    admitted: Option<u64>,
    started: Instant,
    out: &mut Collected,
    log: &mut Log,
) -> anyhow::Result<()> {
    let base = crash.exe_base().to_owned();
    if admitted.is_none() && excluded(crash, kernel, log) {
        return Ok(());
    }
    let local = local_dumps(config);
    let dumps = local.effective(&base);
    let (dir, mut store) = destination(dumps.folder, kernel)?;
    let suppressed_before = match admitted {
        Some(n) => n,
        None => match admit(crash, kernel, &mut store, log)? {
            Some(n) => n,
            None => return Ok(()),
        },
    };
    let (_, fs_total) = dir.free_space().unwrap_or((0, 0));
    let retention = Retention {
        count_per_exe: local.count,
        count_for: local.app_counts(),
        max_use: kernel.max_use.map(|s| s.bytes(fs_total)),
        keep_free: kernel.keep_free.map(|s| s.bytes(fs_total)),
    };
    let mut notes = crash.notes.clone();
    let gc = store.gc(&retention, 0, None)?;
    notes.extend(gc.problems);

    // What to write.
    let want_core = dumps.types.contains(&CfgLevel::Core);
    let md = dumps.types.iter().find_map(|l| md_level(*l));
    let need_plain = want_core || out.chain || md == Some(DumpLevel::Full);
    let plain = if need_plain {
        Some(dir.tmpfile().context("cannot create the core file")?)
    } else {
        None
    };
    let plan = StreamPlan {
        core: plain
            .as_ref()
            .map(|f| f.try_clone().map(CoreOut::Plain))
            .transpose()
            .context("cannot duplicate the core file descriptor")?,
        minidump: md,
        max_bytes: kernel.process_size_max,
        deadline: Some(started + kernel.time_max),
        scratch: None,
    };
    let mut report = new_report(crash);
    report.notes = notes;
    report.suppressed_before = suppressed_before;
    out.spool = plain
        .as_ref()
        .map(File::try_clone)
        .transpose()
        .context("cannot duplicate the core file descriptor")?;
    out.stream_read = true;
    let ingested = ingest(&mut io::stdin().lock(), plan);
    if let Ok(Ingested { crash: Some(c), .. }) = &ingested {
        // The socket gives no %s / %I: the core's NT_SIGINFO and first
        // thread do (and they are what the minidump says).
        if crash.args.signal == 0 {
            crash.args.signal = c.siginfo.signo();
            report.signal = crash.args.signal;
        }
    }
    let crash = &*crash;
    let a = &crash.args;
    let reader = reader_uid(crash, kernel);
    let mut written: Vec<DumpFile> = Vec::new();
    let stem = format!(
        "{}-{}-{}",
        yymmdd_hhmmss(u64::try_from(a.time).unwrap_or(0)),
        sanitize_component(a.comm.as_bytes()),
        a.pid
    );
    let mut minidump_file = None;
    match &ingested {
        Err(e) => {
            log.warn(&format!("the core stream was not usable: {e}"));
            report.notes.push(format!("core stream: {e}"));
        }
        Ok(ing) => {
            // Every stream byte up to the size cap goes to the plain core
            // in order, so fewer stored means a write failed (disk full).
            // Such a core is never published (a dump is complete under its
            // name or absent); it is cut back to the prefix that was stored
            // (its headers are patched to that), giving the space of the
            // failed write back to the minidump and the store row.
            let core_failed = plain.is_some()
                && ing.stats.core_bytes < ing.stats.stream_bytes.min(kernel.process_size_max);
            if let (true, Some(core)) = (core_failed, &plain) {
                let _ = core.set_len(ing.stats.core_bytes);
            }
            report.truncated = ing.stats.truncated;
            if let Some(why) = &ing.stats.truncated_reason {
                log.warn(&format!("core truncated: {why}"));
                report.notes.push(format!("truncated: {why}"));
            }
            report.notes.extend(ing.soft_errors.iter().cloned());
            fill_from_core(&mut report, ing);
            if let Some(level) = md {
                match write_minidump(&dir, ing, level, &stem, kernel, reader) {
                    Ok((f, d)) => {
                        minidump_file = Some(f);
                        written.push(d);
                    }
                    Err(e) => {
                        log.warn(&format!("minidump not written: {e:#}"));
                        report.notes.push(format!("minidump not written: {e:#}"));
                    }
                }
            }
            if want_core && core_failed {
                let why = ing
                    .soft_errors
                    .iter()
                    .find(|e| e.starts_with("core write failed"))
                    .cloned()
                    .unwrap_or_else(|| {
                        format!("the write failed after {} bytes", ing.stats.core_bytes)
                    });
                log.warn(&format!("core not written: {why}"));
                report.notes.push(format!("core not written: {why}"));
            } else if want_core {
                if let Some(core) = &plain {
                    let r = publish_core(&dir, core, dumps.compress, &stem, kernel, reader, ing);
                    match r {
                        Ok(d) => written.push(d),
                        Err(e) => {
                            log.warn(&format!("core not written: {e:#}"));
                            report.notes.push(format!("core not written: {e:#}"));
                        }
                    }
                }
            }
        }
    }
    report.dumps = written;
    if let Some(f) = &minidump_file {
        analyze(f, crash, &mut report, log);
    }
    let id = match store.insert(&report) {
        Ok(id) => id,
        Err(e) => {
            log.warn(&format!(
                "report not stored ({e}); dumps: {}",
                dump_names(&report)
            ));
            return Ok(());
        }
    };
    let gc = store.gc(&retention, 0, Some(id))?;
    for p in gc.problems {
        log.warn(&p);
    }
    log.info(&format!(
        "{base} (signal {}) recorded as report {id} in {} ({} ms, peak memory {} KiB): {}",
        report.signal,
        dir.path().display(),
        started.elapsed().as_millis(),
        peak_rss_kib(),
        dump_names(&report)
    ));
    Ok(())
}

/// The report's dump file names, for a log line.
fn dump_names(report: &NewReport) -> String {
    let names: Vec<&str> = report.dumps.iter().map(|d| d.name.as_str()).collect();
    names.join(", ")
}

/// This process's peak resident set (`VmHWM`), for the log line.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The uid that may read the dumps besides root: the crashing user, only
/// for a plainly dumpable process whose metadata was verified.
fn reader_uid(crash: &Crash, kernel: &KernelTier) -> Option<u32> {
    let m = crash.meta.as_ref()?;
    (kernel.user_access && crash.args.uid != 0 && m.plainly_dumpable(crash.args.dumpable))
        .then_some(crash.args.uid)
}

fn new_report(crash: &Crash) -> NewReport {
    let a = &crash.args;
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let m = crash.meta.as_ref();
    NewReport {
        host: lossy(a.host.as_bytes()),
        boot_id: crash.boot_id.clone(),
        exe: crash.exe.clone(),
        comm: crash.comm(),
        cmdline: m
            .map(|m| m.cmdline.iter().map(|w| lossy(w)).collect())
            .unwrap_or_default(),
        cwd: m.and_then(|m| m.cwd.as_deref()).map(lossy),
        pid: a.pid,
        tid: a.tid,
        start_time: m.map_or(0, |m| m.start_time),
        uid: a.uid,
        gid: a.gid,
        signal: a.signal,
        cgroup: m.and_then(|m| m.cgroup.as_deref()).map(lossy),
        unit: m
            .and_then(|m| m.cgroup.as_deref())
            .map(lossy)
            .and_then(|c| {
                c.rsplit('/')
                    .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
                    .map(str::to_owned)
            }),
        container: m.and_then(|m| m.container_pid_ns.as_deref()).map(lossy),
        dumpable: Some(a.dumpable),
        sensitive: m.is_none_or(|m| !m.plainly_dumpable(a.dumpable)),
        ..NewReport::new(Tier::Kernel, a.time)
    }
}

/// si_code and the fault address from the core's `NT_SIGINFO`.
fn fill_from_core(r: &mut NewReport, ing: &Ingested) {
    if let Some(c) = &ing.crash {
        r.si_code = c.siginfo.code();
        r.fault_addr = c.siginfo.fault_address();
        r.tid = c.tid.0 as u32;
    }
}

fn write_minidump(
    dir: &DumpDir,
    ing: &Ingested,
    level: DumpLevel,
    stem: &str,
    kernel: &KernelTier,
    reader: Option<u32>,
) -> anyhow::Result<(File, DumpFile)> {
    let mut f = dir.tmpfile().context("cannot create the minidump file")?;
    let opts = DumpOptions {
        level,
        format: DumpFormat::Minidump,
        comment: Some("coroner kernel tier".into()),
        crash: ing.crash.clone(),
        durable: true,
    };
    let stats =
        coroner_dump::write_minidump(&mut f, &ing.snapshot, &ing.memory, &opts, &NoProgress)?;
    f.sync_all().context("cannot sync the minidump")?;
    set_access(&f, 0, kernel.group, reader).context("cannot set the minidump's owner and mode")?;
    let name = dir
        .publish(&f, stem, "dmp")
        .context("cannot name the minidump")?;
    Ok((
        f,
        DumpFile {
            name,
            format: "minidump".into(),
            level: Some(level.as_str().into()),
            bytes: stats.bytes_written,
            truncated: ing.stats.truncated,
        },
    ))
}

fn publish_core(
    dir: &DumpDir,
    core: &File,
    compress: bool,
    stem: &str,
    kernel: &KernelTier,
    reader: Option<u32>,
    ing: &Ingested,
) -> anyhow::Result<DumpFile> {
    let (file, ext, format) = if compress {
        let mut out = dir.tmpfile().context("cannot create the compressed core")?;
        let mut src = core.try_clone()?;
        src.rewind()?;
        let mut enc = zstd::stream::Encoder::new(&mut out, 3)?;
        io::copy(&mut src, &mut enc).context("cannot compress the core")?;
        enc.finish().context("cannot finish the compressed core")?;
        (out, "core.zst", "core.zst")
    } else {
        (core.try_clone()?, "core", "core")
    };
    file.sync_all().context("cannot sync the core")?;
    set_access(&file, 0, kernel.group, reader).context("cannot set the core's owner and mode")?;
    let bytes = file.metadata()?.len();
    let name = dir
        .publish(&file, stem, ext)
        .context("cannot name the core")?;
    Ok(DumpFile {
        name,
        format: format.into(),
        level: None,
        bytes,
        truncated: ing.stats.truncated,
    })
}

/// The crashed process's root directory if it ran in another mount
/// namespace than ours (a container): opened through its verified
/// `/proc/PID`, for the analysis to find its files by their paths there.
fn container_root(crash: &Crash) -> Option<OwnedFd> {
    let c = crash.crashed.as_ref()?;
    let ns = coroner_sys::fs::open_dir_at(c.dir(), std::ffi::OsStr::new("ns")).ok()?;
    let theirs = coroner_sys::fs::read_link_at(ns.as_fd(), std::ffi::OsStr::new("mnt")).ok()?;
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    if theirs == ours.as_os_str().as_bytes() {
        return None;
    }
    let root = coroner_sys::fs::open_proc_link_dir(c.dir(), std::ffi::OsStr::new("root")).ok()?;
    c.verify().ok()?;
    Some(root)
}

/// Run the analysis as the crashing user (nobody for root), with the
/// minidump on its stdin; fill in the signature.
fn analyze(minidump: &File, crash: &Crash, r: &mut NewReport, log: &mut Log) {
    // Inherited by the analysis child only (close-on-exec is cleared for
    // the spawn, and the descriptor closed right after it).
    let root = container_root(crash);
    let (uid, gid) = match crash.args.uid {
        0 => (NOBODY, NOBODY),
        u => (u, crash.args.gid),
    };
    let run = || -> anyhow::Result<String> {
        let mut input = minidump.try_clone()?;
        input.rewind()?;
        let exe = std::fs::read_link("/proc/self/exe").context("cannot find this program")?;
        let mut cmd = Command::new(exe);
        cmd.args(["handler", "--analyze"]);
        if let Some(fd) = &root {
            coroner_sys::set_cloexec(fd.as_fd(), false)?;
            cmd.arg(format!("--sysroot=/proc/self/fd/{}", fd.as_raw_fd()));
        }
        let spawned = cmd
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::from(input))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        if let Some(fd) = &root {
            coroner_sys::set_cloexec(fd.as_fd(), true)?;
        }
        let mut child = spawned.context("cannot start the analysis")?;
        let mut out = child.stdout.take().context("no stdout")?;
        // The report arrives when the child closes its stdout (it exits);
        // wait for that, up to the limit, without polling.
        let mut err_pipe = child.stderr.take().context("no stderr")?;
        let err_reader = std::thread::spawn(move || {
            let mut err = Vec::new();
            let _ = (&mut err_pipe).take(4096).read_to_end(&mut err);
            let _ = io::copy(&mut err_pipe, &mut io::sink());
            String::from_utf8_lossy(&err).into_owned()
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = (&mut out).take(64 << 20).read_to_string(&mut s);
            let _ = tx.send(s);
        });
        let Ok(text) = rx.recv_timeout(ANALYSIS_TIME) else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("analysis took longer than {} s", ANALYSIS_TIME.as_secs());
        };
        let st = child.wait()?;
        if !st.success() {
            let err = err_reader.join().unwrap_or_default();
            anyhow::bail!("analysis failed ({st}): {}", err.trim());
        }
        Ok(text)
    };
    match run() {
        Ok(json) => {
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            r.signature = v["signature"]["text"].as_str().map(str::to_owned);
            r.bucket = v["signature"]["bucket"].as_str().map(str::to_owned);
            r.analysis_json = Some(json);
        }
        Err(e) => {
            log.warn(&format!("{e:#}"));
            r.notes.push(format!("{e:#}"));
        }
    }
}

/// The pattern of the handler installed before us, if chaining is on and
/// there is one.
fn chain_previous(kernel: &KernelTier, log: &mut Log) -> Option<Vec<u8>> {
    if !kernel.chain {
        return None;
    }
    match saved_state(&kernel.state_dir, 0) {
        Ok(Some(s)) => Some(s.previous_pattern),
        Ok(None) => None,
        Err(e) => {
            log.warn(&format!("not chaining: {e}"));
            None
        }
    }
}

/// The previous handler's pattern expanded as the kernel would have
/// (`None`: nothing to run, e.g. a file pattern).
fn chain_argv(crash: &Crash, previous: &[u8], log: &mut Log) -> Option<Vec<OsString>> {
    let a = &crash.args;
    // The chained handler gets the pidfd as fd 3, as from the kernel: only
    // when ours is the kernel's fd 3 (dup2 onto 3 could close a descriptor
    // in use otherwise).
    let pidfd3 = crash.crashed.as_ref().is_some_and(|c| {
        c.pidfd().as_raw_fd() == 3 && coroner_sys::fs::dup_to(c.pidfd(), 3).is_ok()
    });
    let exe_path = (!crash.exe.is_empty()).then(|| Path::new(crash.exe.as_str()));
    let fields = a.chain_fields(exe_path, pidfd3.then_some(3));
    match chain_command(previous, &fields) {
        Ok(Some(argv)) if !argv.is_empty() => Some(argv),
        Ok(_) => None,
        Err(e) => {
            log.warn(&format!("not chaining: {e}"));
            None
        }
    }
}

/// Forward the core to the handler installed before us: the spooled core
/// on its stdin (or the untouched stream itself), the pidfd as fd 3. Waits
/// for it, so it still sees `/proc/PID`.
fn chain(argv: &[OsString], spool: Spool, stream_read: bool, log: &mut Log) {
    let stdin = match spool {
        Some(mut f) => match f.rewind() {
            Ok(()) => Stdio::from(f),
            Err(e) => {
                log.warn(&format!(
                    "not chaining: cannot rewind the spooled core: {e}"
                ));
                return;
            }
        },
        // Nothing was read from the stream: hand it on as it is.
        None if !stream_read => Stdio::inherit(),
        None => {
            log.warn("not chaining: the core stream was read but not kept");
            return;
        }
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(stdin);
    match cmd.status() {
        Ok(st) if st.success() => {}
        Ok(st) => log.warn(&format!(
            "chained handler {} ended with {st}",
            Path::new(&argv[0]).display()
        )),
        Err(e) => log.warn(&format!(
            "cannot run the chained handler {}: {e}",
            Path::new(&argv[0]).display()
        )),
    }
}
