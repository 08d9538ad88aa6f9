//! The `coroner` binary: parses arguments, wires the libraries, prints.
//! All behaviour lives in the library crates (STYLE 2).
//!
//! Exit codes: 0 success; 1 the operation failed (message on stderr);
//! 2 usage error. `dump -e` exits with the watched program's status.

mod cmd;
mod dump_args;
mod dumpdir;
mod liverow;
mod naming;
mod progress;
mod rootonly;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
coroner: postmortem and just-in-time debugging for Linux

Usage: coroner <COMMAND> [ARGS...]

Commands:
  dump      write a minidump or ELF core of a live process (ProcDump)
  analyze   read a minidump or ELF core and print what happened
  run       run a program with the crash runtime (JIT debugger, LocalDumps)
  config    show or change the AeDebug / LocalDumps configuration
  dbg       register coroner as the AeDebug debugger (-iae, -iaec, -I)
  install   install system-wide pieces (--jit --system: the preload runtime)
  uninstall remove them again, restoring what was there
  help      this text

Run `coroner <COMMAND> --help` for the options of one command.
";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let command = args.remove(0);
    // Commands that print data end quietly when their reader goes away
    // (`| head`). Not the handler (the kernel's helper) nor the debugger,
    // which write to pipes of their own.
    if matches!(
        command.to_str(),
        Some("reports" | "analyze" | "config" | "help")
    ) {
        let _ = coroner_sys::signal::default_action(libc::SIGPIPE);
    }
    let result = match command.to_str() {
        Some("dump") => cmd::dump::run(&args),
        Some("analyze") => cmd::analyze::run(&args),
        Some("run") => cmd::run::run(&args),
        Some("config") => cmd::config::run(&args),
        Some("dbg") => cmd::dbg::run(&args),
        Some("handler") => cmd::handler::run(&args),
        Some("reports") => cmd::reports::run(&args),
        Some("install") => cmd::config::preload(true, &args),
        Some("uninstall") => cmd::config::preload(false, &args),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("coroner {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("coroner: unknown command {command:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<dump_args::UsageError>() {
                eprintln!("coroner: {u}");
                return ExitCode::from(2);
            }
            if let Some(u) = e.downcast_ref::<cmd::analyze::AnalyzeUsage>() {
                eprintln!("coroner: {u}");
                return ExitCode::from(2);
            }
            eprintln!("coroner: {e:#}");
            ExitCode::from(1)
        }
    }
}
