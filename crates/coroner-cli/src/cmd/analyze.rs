//! `coroner analyze FILE [--json] [--debug-dir DIR]...`

use anyhow::Context;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

pub const USAGE: &str = "\
Usage: coroner analyze [OPTIONS] FILE

Read a minidump (coroner, Breakpad, Crashpad) or an ELF core and print the
exception, the faulting thread's stack first, every thread, the modules and
a crash signature for grouping.

Options:
  --json             print the typed report as JSON (schema_version 1)
  --debug-dir DIR    also look for separate debug files under DIR (repeatable;
                     /usr/lib/debug is always searched)
  --binary-dir DIR   also look for module files (matched by build-id) under DIR
  -h, --help         this text
";

#[derive(Debug)]
pub struct AnalyzeUsage(pub String);
impl fmt::Display for AnalyzeUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for AnalyzeUsage {}

pub fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut json = false;
    let mut file: Option<PathBuf> = None;
    let mut debug_dirs = Vec::new();
    let mut binary_dirs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-h" | "--help") => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Some("--json") => json = true,
            Some("--debug-dir") => {
                let d = it
                    .next()
                    .ok_or_else(|| AnalyzeUsage("--debug-dir needs a directory".into()))?;
                debug_dirs.push(PathBuf::from(d));
            }
            Some("--binary-dir") => {
                let d = it
                    .next()
                    .ok_or_else(|| AnalyzeUsage("--binary-dir needs a directory".into()))?;
                binary_dirs.push(PathBuf::from(d));
            }
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(AnalyzeUsage(format!(
                    "unknown option {s:?} (see coroner analyze --help)"
                ))
                .into())
            }
            _ => {
                if file.is_some() {
                    return Err(AnalyzeUsage(format!("unexpected argument {a:?}")).into());
                }
                file = Some(PathBuf::from(a));
            }
        }
    }
    let file =
        file.ok_or_else(|| AnalyzeUsage("missing FILE (see coroner analyze --help)".into()))?;
    let mut opts = coroner_analyze::AnalyzeOptions::default();
    opts.symbols.debug_dirs.extend(debug_dirs);
    opts.symbols.binary_dirs.extend(binary_dirs);
    let report = coroner_analyze::analyze_path(&file, &opts)
        .with_context(|| format!("cannot analyze {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let text = coroner_analyze::render_text(&report);
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}
