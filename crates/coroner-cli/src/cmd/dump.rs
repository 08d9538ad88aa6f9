//! `coroner dump`: resolve the parsed arguments against the system (where
//! the dump goes, which process) and call the dump library.

use crate::dump_args::{self, DumpArgs, Format, Level, Target};
use crate::naming;
use crate::progress::BarProgress;
use anyhow::{bail, Context};
use coroner_dump::{DumpFormat, DumpLevel, DumpOptions, DumpStats};
use coroner_proc::watch::{Watch, WatchEvent};
use coroner_proc::Attached;
use coroner_types::{CrashContext, Pid};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the crash runtime tells its LocalDumps dumper, in words it puts
/// first (`coroner dump --jit-outcome=W --jit-reason=R [--jit-note=M] -j
/// …`); see `crates/coroner-runtime/src/plan.rs`. Only `-j` takes them. A
/// `coroner dump -j` started as the AeDebug debugger itself gets none.
#[derive(Debug, Default, PartialEq, Eq)]
struct RuntimeWords {
    /// A `coroner_store::JitOutcome` spelling.
    outcome: Option<String>,
    /// The runtime's reason (`fault`, `abort`, `fail-fast`, ...).
    reason: Option<String>,
    /// The FailFast message, raw.
    note: Option<Vec<u8>>,
}

/// Splits the runtime's leading words off `raw`. Only leading words count,
/// so a program run by `-x` keeps arguments that look like them.
fn take_runtime_words(raw: &[OsString]) -> (RuntimeWords, &[OsString]) {
    let mut words = RuntimeWords::default();
    let mut n = 0;
    for a in raw {
        let b = a.as_bytes();
        if let Some(v) = b.strip_prefix(b"--jit-outcome=") {
            words.outcome = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = b.strip_prefix(b"--jit-reason=") {
            words.reason = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = b.strip_prefix(b"--jit-note=") {
            words.note = Some(v.to_vec());
        } else {
            break;
        }
        n += 1;
    }
    (words, &raw[n..])
}

/// Longest note kept from the runtime, bytes (the runtime sends at most
/// 512; anyone may run `coroner dump` with more).
const NOTE_MAX: usize = 512;

/// `bytes` as one line of text for the store: valid UTF-8 as is, except
/// control characters and `\` escaped (`\n`, `\t`, `\\`, `\u{..}`) and
/// other bytes as `\xNN`; cut at [`NOTE_MAX`] bytes with `...`.
fn escape_note(bytes: &[u8]) -> String {
    let cut = bytes.len() > NOTE_MAX;
    let mut out = String::new();
    for chunk in bytes[..bytes.len().min(NOTE_MAX)].utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out += &format!("\\x{b:02x}");
        }
    }
    if cut {
        out += "...";
    }
    out
}

/// The row's JIT outcome and the notes the runtime's words add.
fn runtime_outcome(words: &RuntimeWords) -> (coroner_store::JitOutcome, Vec<String>) {
    use coroner_store::JitOutcome;
    let mut notes = Vec::new();
    let jit = match &words.outcome {
        // Started as the AeDebug debugger itself (`coroner dump -i`): the
        // launched debugger is this dump.
        None => JitOutcome::Launched,
        Some(w) => JitOutcome::parse(w).unwrap_or_else(|| {
            notes.push(format!(
                "runtime: unknown JIT outcome {}",
                escape_note(w.as_bytes())
            ));
            JitOutcome::None
        }),
    };
    if let Some(r) = &words.reason {
        notes.push(format!("runtime: reason {}", escape_note(r.as_bytes())));
    }
    if let Some(m) = &words.note {
        notes.push(format!("fail-fast: {}", escape_note(m)));
    }
    (jit, notes)
}

pub fn run(raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let (runtime, raw) = take_runtime_words(raw);
    let Some(args) = dump_args::parse(raw)? else {
        print!("{}", dump_args::USAGE);
        return Ok(ExitCode::SUCCESS);
    };
    let opts = DumpOptions {
        level: match args.level {
            Level::Mini => DumpLevel::Mini,
            Level::MiniPlus => DumpLevel::MiniPlus,
            Level::Full => DumpLevel::Full,
        },
        format: match args.format {
            Format::Minidump => DumpFormat::Minidump,
            Format::Core => DumpFormat::ElfCore,
        },
        comment: args.comment.clone(),
        crash: None,
        // A dump taken at a crash is the only record of it: make it durable.
        durable: args.sync || !matches!(args.target, Target::Pid { .. }),
    };
    if runtime != RuntimeWords::default() && !matches!(args.target, Target::Jit { .. }) {
        return Err(dump_args::UsageError(
            "--jit-outcome/--jit-reason/--jit-note go with -j".into(),
        )
        .into());
    }
    match &args.target {
        Target::Install { folder } => {
            let folder = folder.clone().unwrap_or_else(|| ".".into());
            let level = match args.level {
                Level::Full => Some("-ma"),
                Level::MiniPlus => Some("-mp"),
                Level::Mini => None,
            };
            crate::cmd::config::install_dumper(
                args.config.clone().map(PathBuf::from),
                Path::new(&folder),
                level,
            )
        }
        Target::Uninstall => crate::cmd::config::uninstall(args.config.clone().map(PathBuf::from)),
        Target::Pid { pid, dest } => {
            let pid = Pid(*pid);
            let path = destination(dest.as_deref(), pid, &args)?;
            let progress = BarProgress::new(args.quiet);
            announce(&args, &opts, pid, &path);
            let t = Instant::now();
            let stats = coroner_dump::dump_live(pid, &path, args.overwrite, &opts, &progress)
                .with_context(|| format!("cannot dump process {pid}"))?;
            progress.finish();
            summary(&args, &path, &stats, t);
            Ok(ExitCode::SUCCESS)
        }
        Target::Jit {
            folder,
            pid,
            event: _,
            block,
        } => {
            // The runtime waits for us to exit; we signal nothing.
            let pid = Pid(*pid);
            let folder = Path::new(folder);
            let meta = std::fs::symlink_metadata(folder)
                .with_context(|| format!("dump folder {}", folder.display()))?;
            if meta.file_type().is_symlink() || !meta.is_dir() {
                bail!(
                    "dump folder {} must be a real directory (not a symlink or a file)",
                    folder.display()
                );
            }
            let att = Attached::seize(pid, Duration::from_secs(args.attach_timeout))
                .with_context(|| format!("cannot attach to process {pid}"))?;
            let crash = coroner_dump::crash_context_from_jit_block(att.memory(), *block)
                .with_context(|| {
                    format!("cannot read the JIT_DEBUG_INFO block at {block:#x} in process {pid}")
                })?;
            let path = in_folder(folder, pid, &args)?;
            let opts = DumpOptions {
                crash: Some(crash),
                ..opts
            };
            announce(&args, &opts, pid, &path);
            let t = Instant::now();
            let progress = BarProgress::new(args.quiet);
            let stats = coroner_dump::dump_attached(&att, &path, args.overwrite, &opts, &progress)
                .with_context(|| format!("cannot dump process {pid}"))?;
            let crash = opts.crash.clone();
            att.detach()
                .with_context(|| format!("detaching from process {pid}"))?;
            progress.finish();
            summary(&args, &path, &stats, t);
            if let Err(e) =
                record_runtime_report(folder, pid, crash.as_ref(), &path, &opts, &stats, &runtime)
            {
                eprintln!(
                    "coroner: the dump is written but the crash is not in the report store: {e:#}"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Target::WatchPid { pid, dest } => {
            let pid = Pid(*pid);
            let watch =
                Watch::attach(pid).with_context(|| format!("cannot watch process {pid}"))?;
            watch_and_dump(watch, dest.as_deref(), &args, opts)
        }
        Target::Launch { dest, command } => {
            let watch = Watch::launch(command).context("cannot start the program to watch")?;
            watch_and_dump(watch, Some(dest.as_os_str()), &args, opts)
        }
    }
}

/// Wait for the unhandled fatal signal, dump with its exact context, then
/// let the signal kill the process and exit with its status.
fn watch_and_dump(
    mut watch: Watch,
    dest: Option<&std::ffi::OsStr>,
    args: &DumpArgs,
    opts: DumpOptions,
) -> anyhow::Result<ExitCode> {
    let pid = watch.pid();
    if !args.quiet {
        eprintln!(
            "coroner: watching process {pid}; it will be dumped if a signal is about to kill it"
        );
    }
    let event = watch
        .wait_for_crash()
        .with_context(|| format!("watching process {pid}"))?;
    let (tid, siginfo) = match event {
        WatchEvent::Crash { tid, siginfo } => (tid, siginfo),
        WatchEvent::Exited(code) => {
            if !args.quiet {
                eprintln!("coroner: process {pid} exited with status {code}; no crash, no dump");
            }
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        WatchEvent::Killed(sig) => {
            if !args.quiet {
                eprintln!(
                    "coroner: process {pid} was killed by {}; no crash, no dump",
                    coroner_types::signal::signal_label(sig)
                );
            }
            return Ok(ExitCode::from((128 + sig).clamp(0, 255) as u8));
        }
    };
    let tids = watch
        .stop_others(tid)
        .with_context(|| format!("stopping the threads of process {pid}"))?;
    let att = Attached::adopt(pid, tids);
    let regs = att
        .regs(tid)
        .with_context(|| format!("reading the registers of crashed thread {tid}"))?;
    let crash = CrashContext { tid, siginfo, regs };
    if !args.quiet {
        eprintln!(
            "coroner: process {pid} thread {tid} crashed: {} at {:#x}",
            siginfo.describe(),
            siginfo.fault_address().unwrap_or(crash.regs.pc())
        );
    }
    let path = destination(dest, pid, args)?;
    let opts = DumpOptions {
        crash: Some(crash),
        ..opts
    };
    announce(args, &opts, pid, &path);
    let t = Instant::now();
    let progress = BarProgress::new(args.quiet);
    let result = coroner_dump::dump_attached(&att, &path, args.overwrite, &opts, &progress);
    progress.finish();
    drop(att);
    // Whatever happened to the dump, the process goes on to die as it would
    // have: the crash is not ours to swallow.
    let end = watch
        .deliver_and_wait(tid, siginfo.signo())
        .with_context(|| format!("resuming process {pid}"))?;
    let stats = result.with_context(|| format!("cannot dump process {pid}"))?;
    summary(args, &path, &stats, t);
    Ok(match end {
        WatchEvent::Exited(code) => ExitCode::from(code.clamp(0, 255) as u8),
        WatchEvent::Killed(sig) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        // deliver_and_wait never stops for a second crash.
        WatchEvent::Crash { .. } => ExitCode::from(1),
    })
}

fn extension(args: &DumpArgs) -> &'static str {
    match args.format {
        Format::Minidump => "dmp",
        Format::Core => "core",
    }
}

/// FILE as given, or a unique name in FOLDER (the current directory when
/// nothing was given).
fn destination(
    dest: Option<&std::ffi::OsStr>,
    pid: Pid,
    args: &DumpArgs,
) -> anyhow::Result<PathBuf> {
    let dest = match dest {
        None => PathBuf::from("."),
        Some(d) => PathBuf::from(d),
    };
    if dest.is_dir() {
        return in_folder(&dest, pid, args);
    }
    if dest.as_os_str().as_bytes().ends_with(b"/") {
        bail!("dump folder {} does not exist", dest.display());
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "folder {} of dump file {} does not exist",
                parent.display(),
                dest.display()
            );
        }
    }
    if dest.symlink_metadata().is_ok() && !args.overwrite {
        bail!("{} already exists (use -o to overwrite)", dest.display());
    }
    Ok(dest)
}

fn in_folder(folder: &Path, pid: Pid, args: &DumpArgs) -> anyhow::Result<PathBuf> {
    let exe = coroner_proc::procfs::exe_path(pid)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.as_bytes().to_vec()))
        .or_else(|| coroner_proc::procfs::comm(pid).ok())
        .unwrap_or_else(|| b"process".to_vec());
    let exe = exe
        .strip_suffix(b" (deleted)")
        .map(<[u8]>::to_vec)
        .unwrap_or(exe);
    Ok(naming::unique_in_folder(
        folder,
        &exe,
        pid.0,
        naming::now_epoch(),
        extension(args),
    ))
}

fn level_name(opts: &DumpOptions) -> &'static str {
    match opts.level {
        DumpLevel::Mini => "mini",
        DumpLevel::MiniPlus => "mini-plus",
        DumpLevel::Full => "full",
    }
}

fn announce(args: &DumpArgs, opts: &DumpOptions, pid: Pid, path: &Path) {
    if args.quiet {
        return;
    }
    let kind = match opts.format {
        DumpFormat::Minidump => "minidump",
        DumpFormat::ElfCore => "ELF core",
    };
    eprintln!(
        "Creating {} - {} {kind} of process {pid}",
        path.display(),
        level_name(opts)
    );
}

fn summary(args: &DumpArgs, path: &Path, stats: &DumpStats, t: Instant) {
    if args.quiet {
        return;
    }
    eprintln!(
        "Dump successfully written: {} ({} bytes, {} threads, {} modules, {} memory regions, {:.3} s)",
        path.display(),
        stats.bytes_written,
        stats.threads,
        stats.modules,
        stats.regions,
        t.elapsed().as_secs_f64()
    );
    for e in &stats.soft_errors {
        eprintln!("  note: {e}");
    }
}

/// The runtime's LocalDumps step files its crash in the report store of the
/// dump folder (`reports.db` beside the dump), so `coroner reports` lists
/// it and the kernel tier, seeing the same process (boot id, pid, start
/// time) crash on, does not report it twice. Runs as the crashing user,
/// which is also who analyzes the dump here.
fn record_runtime_report(
    folder: &Path,
    pid: Pid,
    crash: Option<&CrashContext>,
    dump: &Path,
    opts: &DumpOptions,
    stats: &DumpStats,
    runtime: &RuntimeWords,
) -> anyhow::Result<()> {
    use coroner_store::{DumpFile, Store, Tier};
    // What the debugger step came to, as the runtime says (a dump is only
    // taken when no debugger took over).
    let (jit, runtime_notes) = runtime_outcome(runtime);
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report =
        crate::liverow::live_process_row(pid, crash.map(|c| (c.tid, &c.siginfo)), Tier::Runtime);
    report.jit = jit;
    report.dumps = vec![DumpFile {
        name,
        format: match opts.format {
            coroner_dump::DumpFormat::Minidump => "minidump".into(),
            coroner_dump::DumpFormat::ElfCore => "core".into(),
        },
        level: Some(opts.level.as_str().into()),
        bytes: stats.bytes_written,
        truncated: false,
    }];
    report.notes = runtime_notes
        .into_iter()
        .chain(stats.soft_errors.iter().cloned())
        .collect();
    if let Ok(a) = coroner_analyze::analyze_path(dump, &coroner_analyze::AnalyzeOptions::default())
    {
        report.signature = Some(a.signature.text.clone());
        report.bucket = Some(a.signature.bucket.clone());
        report.analysis_json = serde_json::to_string(&a).ok();
    }
    let mut store = Store::open(folder)?;
    store.insert(&report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_store::JitOutcome;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn runtime_words_are_taken_only_first() {
        let raw = os(&[
            "--jit-outcome=timed-out",
            "--jit-reason=fail-fast",
            "--jit-note=bad state",
            "-j",
            "d",
            "--jit-outcome=x",
        ]);
        let (w, rest) = take_runtime_words(&raw);
        assert_eq!(w.outcome.as_deref(), Some("timed-out"));
        assert_eq!(w.reason.as_deref(), Some("fail-fast"));
        assert_eq!(w.note.as_deref(), Some(&b"bad state"[..]));
        assert_eq!(rest, &raw[3..]);
        let (w, rest) = take_runtime_words(&raw[3..]);
        assert_eq!(w, RuntimeWords::default());
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn outcome_and_notes_from_the_runtime() {
        let words = |o: Option<&str>, note: Option<&[u8]>| RuntimeWords {
            outcome: o.map(str::to_owned),
            reason: Some("fail-fast".into()),
            note: note.map(<[u8]>::to_vec),
        };
        assert_eq!(
            runtime_outcome(&words(Some("excluded"), None)).0,
            JitOutcome::Excluded
        );
        assert_eq!(
            runtime_outcome(&words(Some("timed-out"), None)).0,
            JitOutcome::TimedOut
        );
        // The AeDebug debugger itself: no words.
        assert_eq!(
            runtime_outcome(&RuntimeWords::default()),
            (JitOutcome::Launched, vec![])
        );
        let (jit, notes) = runtime_outcome(&words(Some("what\n"), Some(b"a\nb\\c\xff")));
        assert_eq!(jit, JitOutcome::None);
        assert_eq!(
            notes,
            [
                "runtime: unknown JIT outcome what\\n",
                "runtime: reason fail-fast",
                "fail-fast: a\\nb\\\\c\\xff"
            ]
        );
    }

    #[test]
    fn notes_are_bounded() {
        let long = vec![b'x'; 2 * NOTE_MAX];
        let e = escape_note(&long);
        assert_eq!(e.len(), NOTE_MAX + 3);
        assert!(e.ends_with("x..."));
        assert_eq!(escape_note("déjà\u{7}".as_bytes()), "déjà\\u{7}");
    }
}
