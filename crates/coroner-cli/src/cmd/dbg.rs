//! `coroner dbg`: the CDB-style debugger front end. Parses the command line
//! (coroner-dbg's `cmdline`), opens or attaches the target, applies `-x*`,
//! `-G`, `-o` and Tools.ini, then runs the session on stdin (with line
//! editing and history on a terminal). The AeDebug installers `-iae`,
//! `-iaec KEYSTRING` and `-I` write the config and start no session.

use crate::dump_args::UsageError;
use anyhow::Context as _;
use coroner_dbg::cmdline::{parse_args, usage, FilterSetting, Install, TargetSpec};
use coroner_dbg::exec::{LineSource, ReaderLines};
use coroner_dbg::filters::BreakStatus;
use coroner_dbg::live::Live;
use coroner_dbg::session::{Session, SessionEnd, SessionOptions, TargetBox};
use coroner_dbg::target::DumpTarget;
use coroner_symbols::SymbolOptions;
use coroner_types::Pid;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub fn run(raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut args = raw.to_vec();
    let config = crate::cmd::config::take_config(&mut args)?;
    let a = parse_args(&args).map_err(|e| UsageError(format!("coroner dbg: {e}")))?;
    if a.help {
        print!("{}", usage());
        return Ok(ExitCode::SUCCESS);
    }
    match &a.install {
        Some(Install::Cdb { key }) => {
            return crate::cmd::config::install_debugger(config, key.as_deref())
        }
        Some(Install::WinDbg { .. }) => return crate::cmd::config::install_debugger(config, None),
        None => {}
    }

    let mut symbols = SymbolOptions::default();
    if let Some(p) = &a.symbol_path {
        symbols.debug_dirs = split_path(p);
        symbols.debug_dirs.push(PathBuf::from("/usr/lib/debug"));
    }
    if let Some(p) = &a.image_path {
        symbols.binary_dirs = split_path(p);
    }

    let tools = coroner_dbg::toolsini::load_tools_ini(std::env::var_os("INIT").as_deref());
    let mut debug_children = a.debug_children;
    let mut skip_initial = a.skip_initial_break;
    let mut skip_final = a.skip_final_break;
    if let Some((_, t)) = &tools {
        debug_children |= t.debug_children == Some(true);
        if t.stop_first == Some(false) {
            skip_initial = true;
        }
        if t.stop_on_process_exit == Some(false) {
            skip_final = true;
        }
    }

    let target = match &a.target {
        TargetSpec::None => {
            return Err(UsageError(format!(
                "coroner dbg: no target: give -p PID, -pn NAME, -z DUMP or a program\n\n{}",
                usage()
            ))
            .into())
        }
        TargetSpec::Dumps(files) => {
            let first = files
                .first()
                .ok_or_else(|| UsageError("-z needs a file".into()))?;
            if files.len() > 1 {
                eprintln!(
                    "coroner dbg: opening {}; several dumps in one session are not supported",
                    first.display()
                );
            }
            let d = DumpTarget::open(first)?;
            for w in &d.warnings {
                eprintln!("warning: {w}");
            }
            TargetBox::Dump(Box::new(d))
        }
        TargetSpec::Pid(pid) => attach(Pid(*pid as i32), &a)?,
        TargetSpec::Name(name) => {
            let pid = find_by_name(name)?;
            attach(pid, &a)?
        }
        TargetSpec::Launch(cmd) => {
            // The program's output comes through us (for `out`) when it
            // would not have gone to a terminal anyway; on a terminal it
            // keeps the terminal, so its buffering is what it would be.
            let capture = !std::io::stdout().is_terminal();
            let mut l = Live::launch(cmd, capture).with_context(|| {
                format!(
                    "cannot start {}",
                    cmd.first()
                        .map(|c| c.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            })?;
            l.debug_children = debug_children;
            TargetBox::Live(Box::new(l))
        }
    };
    let mut target = target;
    if let TargetBox::Live(l) = &mut target {
        l.debug_children = debug_children;
        if let Some(s) = a.break_in_timeout {
            l.break_timeout = Duration::from_secs(u64::from(s));
        }
    }

    let jit = a.event_fd.is_some();
    let interactive = std::io::stdin().is_terminal();
    let opts = SessionOptions {
        initial_commands: a.initial_commands.clone(),
        skip_initial_break: skip_initial,
        detach_on_quit: a.detach_on_exit || a.noninvasive.is_some(),
        event_fd: a.event_fd,
        symbols,
        echo_prompt: false,
        noninvasive: a.noninvasive.is_some(),
    };
    let mut stdout = std::io::stdout();
    let mut session = Session::new(target, &mut stdout, opts);
    if let Some((path, t)) = &tools {
        for w in &t.warnings {
            eprintln!("{}: {w}", path.display());
        }
        for (status, code) in &t.sx {
            if let Err(e) = session.filters.set_break(code, *status, 16) {
                eprintln!("{}: {e}", path.display());
            }
        }
    }
    if skip_final {
        session
            .filters
            .set_break("epr", BreakStatus::SecondChance, 16)?;
    }
    for (setting, code) in &a.exception_settings {
        let status = match setting {
            FilterSetting::Enable => BreakStatus::Break,
            FilterSetting::Disable => BreakStatus::SecondChance,
            FilterSetting::Notify => BreakStatus::Output,
            FilterSetting::Ignore => BreakStatus::Ignore,
        };
        session
            .filters
            .set_break(code, status, 16)
            .map_err(|e| UsageError(format!("coroner dbg: -x{}: {e}", code)))?;
    }

    if interactive {
        // Ctrl+C on the terminal reaches a launched target (same
        // foreground group) as SIGINT, which the `cce` filter reports as a
        // break-in; the debugger itself must survive it.
        let _ = coroner_sys::signal::ignore(libc::SIGINT);
    }
    let mut input: Box<dyn LineSource> = if interactive {
        Box::new(crate::cmd::dbg_prompt::Editor::new()?)
    } else {
        Box::new(ReaderLines(std::io::stdin().lock()))
    };
    // `-cf FILE`, else Tools.ini's `IniFile` (its equivalent, spec §10).
    let command_file = a.command_file.clone().or_else(|| {
        tools
            .as_ref()
            .and_then(|(_, t)| t.ini_file.as_ref().map(PathBuf::from))
    });
    if let Some(cf) = &command_file {
        let f = std::fs::File::open(cf)
            .with_context(|| format!("cannot read the command file {}", cf.display()))?;
        input = Box::new(Chain {
            first: Some(ReaderLines(BufReader::new(f))),
            then: input,
        });
    }
    if jit && !interactive {
        // End of input in a JIT session detaches (as `qd`), so that the
        // crash still goes on to be reported: only an explicit `q` ends
        // the crashed program without a report.
        session.set_end_of_input_detaches(true);
    }
    // A JIT session that ends with `q` is filed as not reported (as
    // Windows does): the process is read now, while it is there to read.
    // Its exception is the one whose handler (the runtime's) the crashing
    // thread is in, unless the session sees the fault again.
    let quit_row = match (&a.target, jit) {
        (TargetSpec::Pid(pid), true) => {
            let handled = session.signal_being_handled();
            Some(crate::liverow::live_process_row(
                Pid(*pid as i32),
                handled.as_ref().map(|(tid, si)| (*tid, si)),
                coroner_store::Tier::Runtime,
            ))
        }
        _ => None,
    };
    session.interact(input.as_mut());
    let end = session.end();
    let exception = session.exception();
    drop(session);
    if let (Some(mut row), Some(SessionEnd::Killed)) = (quit_row, end) {
        if let Some(e) = &exception {
            crate::liverow::set_exception(&mut row, e.tid, &e.siginfo);
        }
        if let Err(e) = record_quit(config.as_deref(), row) {
            eprintln!("coroner dbg: the crash is not in the report store: {e:#}");
        }
    }
    Ok(match end {
        Some(
            SessionEnd::Killed
            | SessionEnd::Detached
            | SessionEnd::Abandoned
            | SessionEnd::TargetExited
            | SessionEnd::EndOfInput,
        )
        | None => ExitCode::SUCCESS,
    })
}

/// File the crash of a JIT session ended with `q` in the report store of
/// the `[localdumps]` folder in effect for its executable: JIT outcome
/// `quit`, not reported, no dump. Nothing is filed without `[localdumps]`
/// (there is no store to file it in, as for every runtime-tier crash).
fn record_quit(config: Option<&Path>, mut row: coroner_store::NewReport) -> anyhow::Result<()> {
    let config = crate::cmd::config::load_config(config)?;
    let Some(dumps) = config.effective(&row.exe, false).localdumps else {
        return Ok(());
    };
    let folder = dumps.folder;
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create the dump folder {}", folder.display()))?;
    row.jit = coroner_store::JitOutcome::Quit;
    row.reported = false;
    row.notes
        .push("debugger: the session ended with q, which ended the process".into());
    let mut store = coroner_store::Store::open(folder)?;
    store.insert(&row)?;
    Ok(())
}

fn attach(pid: Pid, a: &coroner_dbg::cmdline::DbgArgs) -> anyhow::Result<TargetBox> {
    // -pv/-pvr: there is no way to read registers on Linux without a ptrace
    // stop, so a noninvasive session attaches and stops the target, refuses
    // execution commands, and detaches at the end.
    let l = Live::attach(pid, !a.no_break_in || a.noninvasive.is_some())
        .with_context(|| format!("cannot attach to process {}", pid.0))?;
    if a.resume_after_attach {
        let _ = coroner_sys::signal::kill(pid, libc::SIGCONT);
    }
    Ok(TargetBox::Live(Box::new(l)))
}

/// `-pn NAME`: the one process whose `comm` or executable name is NAME.
fn find_by_name(name: &str) -> anyhow::Result<Pid> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc")
        .context("cannot list /proc")?
        .flatten()
    {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let exe_name = exe
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        if comm.trim_end() == name || exe_name.as_deref() == Some(name) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [one] => Ok(Pid(*one)),
        [] => Err(UsageError(format!("coroner dbg: -pn {name}: no process has that name")).into()),
        many => Err(UsageError(format!(
            "coroner dbg: -pn {name}: {} processes have that name ({}); use -p PID",
            many.len(),
            many.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
    }
}

fn split_path(p: &std::ffi::OsStr) -> Vec<PathBuf> {
    p.to_string_lossy()
        .split([';', ':'])
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// A command file, then the rest of the input.
struct Chain<R: BufRead> {
    first: Option<ReaderLines<R>>,
    then: Box<dyn LineSource>,
}

impl<R: BufRead> LineSource for Chain<R> {
    fn next_line(&mut self, prompt: &str) -> Option<String> {
        if let Some(f) = &mut self.first {
            if let Some(l) = f.next_line(prompt) {
                return Some(l);
            }
            self.first = None;
        }
        self.then.next_line(prompt)
    }
}
