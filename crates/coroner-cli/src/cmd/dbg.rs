//! `coroner dbg`: for now the AeDebug installers `-iae`, `-iaec KEYSTRING`
//! and `-I` (CDB/WinDbg spellings; `/` may replace `-`). The debugger
//! session itself (attach, `sx*`, `.jdinfo`, ...) is the debugger issue's.

use crate::dump_args::UsageError;
use std::ffi::OsString;
use std::process::ExitCode;

pub const USAGE: &str = "\
Usage: coroner dbg -iae [--config FILE]
       coroner dbg -iaec KEYSTRING [--config FILE]
       coroner dbg -I [--config FILE]

Register coroner dbg as the AeDebug (postmortem) debugger:
  debugger = \"<coroner> dbg -p %ld -e %ld -g[ KEYSTRING]\", auto = 1
`coroner dump -u` restores what was there before.
";

pub fn run(raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut args = raw.to_vec();
    let config = crate::cmd::config::take_config(&mut args)?;
    let words: Vec<String> = args
        .iter()
        .map(|a| {
            a.to_string_lossy().replacen(
                '/',
                "-",
                usize::from(a.to_string_lossy().starts_with('/')),
            )
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["-h" | "--help" | "-?"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        ["-iae"] | ["-I"] | ["-IS"] => crate::cmd::config::install_debugger(config, None),
        ["-iaec", key] => crate::cmd::config::install_debugger(config, Some(key)),
        ["-iaec"] => Err(UsageError("-iaec needs a KEYSTRING".into()).into()),
        _ => Err(UsageError(
            "coroner dbg: only the installers -iae, -iaec KEYSTRING and -I are available in this version; \
             the interactive debugger is not built yet"
                .into(),
        )
        .into()),
    }
}
