//! The `coroner dbg` command line in CDB's spelling (§9, §13.4):
//! [`parse_args`] turns raw arguments into [`DbgArgs`], checking only what
//! the text itself can tell (unknown options, missing or malformed values,
//! duplicates, conflicting targets, installers that must stand alone).
//!
//! Must not: touch the system (no pid lookups, no file reads, no config):
//! resolving `-pn NAME`, reading `-cf FILE` and applying `-xe` codes to the
//! event filters happen later, on the resolved settings.
//!
//! Spelling rules follow CDB: `/` may replace `-`; options are
//! case-insensitive except `-g` and `-G`; single-letter flag options may be
//! merged (`-gG`, `-ogG`); the program to launch and its arguments come last
//! and are taken verbatim. Where Linux differs we chose: (1) `-I`/`-IS` are
//! WinDbg's AeDebug installers and are compared case-sensitively like
//! WinDbg's options, so that `-i PATH` (CDB's image path) stays distinct;
//! (2) absolute program paths start with `/` on Linux, so an argument that
//! starts with `/` and is not a known option (or merged flags) begins the
//! program, while an unknown `-word` is an error; `--` also ends the options;
//! (3) `-e` is an inherited event file descriptor (an eventfd), not a
//! Windows event handle; (4) CDB's `-d` (hand over to the kernel debugger)
//! has no Linux equivalent, so `-odGg` is refused naming `d`.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use thiserror::Error;

/// What the session debugs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TargetSpec {
    /// Nothing named (help, installers, or an error to report later).
    #[default]
    None,
    /// `-p PID`
    Pid(u32),
    /// `-pn NAME`
    Name(String),
    /// `-z FILE`, repeatable.
    Dumps(Vec<PathBuf>),
    /// A program and its arguments.
    Launch(Vec<OsString>),
}

/// The break status set by `-xe`/`-xd`/`-xn`/`-xi` (as `sxe`/`sxd`/`sxn`/
/// `sxi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterSetting {
    /// `-xe`: break at first chance.
    Enable,
    /// `-xd`: break at second chance only.
    Disable,
    /// `-xn`: print a message, do not break.
    Notify,
    /// `-xi`: ignore.
    Ignore,
}

/// `-pv` / `-pvr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noninvasive {
    /// `-pv`: the target is stopped while examined.
    Suspended,
    /// `-pvr`: the target keeps running.
    Running,
}

/// The AeDebug installers; each must be the only option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Install {
    /// `-iae` (key `None`) or `-iaec KEYSTRING`.
    Cdb { key: Option<String> },
    /// `-I` or `-IS` (silent on success).
    WinDbg { silent: bool },
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DbgArgs {
    pub target: TargetSpec,
    /// `-e FD`: event fd to signal once attached.
    pub event_fd: Option<i32>,
    /// `-g`: do not stop at the initial breakpoint.
    pub skip_initial_break: bool,
    /// `-G`: do not stop at process exit (`sxd epr`).
    pub skip_final_break: bool,
    /// `-c "cmds"`
    pub initial_commands: Option<String>,
    /// `-cf FILE`
    pub command_file: Option<PathBuf>,
    /// `-x` (as `-xd av`), `-xe/-xd/-xn/-xi CODE`, in command-line order.
    pub exception_settings: Vec<(FilterSetting, String)>,
    /// `-o`: also debug child processes.
    pub debug_children: bool,
    /// `-pv` / `-pvr`
    pub noninvasive: Option<Noninvasive>,
    /// `-pd`: detach instead of killing at session end.
    pub detach_on_exit: bool,
    /// `-pe`: the target was already debugged (re-attach after `.abandon`).
    pub already_debugged: bool,
    /// `-pb`: no initial break-in on attach.
    pub no_break_in: bool,
    /// `-pr`: resume a stopped target after attaching.
    pub resume_after_attach: bool,
    /// `-pt SECONDS`: break-in timeout.
    pub break_in_timeout: Option<u32>,
    pub install: Option<Install>,
    /// `-y PATH`: symbol search path.
    pub symbol_path: Option<OsString>,
    /// `-i PATH`: image (binary) search path.
    pub image_path: Option<OsString>,
    /// `-v`: verbose.
    pub verbose: bool,
    /// `-n`: noisy symbol loading.
    pub noisy_symbols: bool,
    /// `-lines`: source line information.
    pub lines: bool,
    /// `-?`, `-h`, `--help`.
    pub help: bool,
}

/// Command-line errors; each names the option or value concerned.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ArgsError {
    #[error("unknown option `{option}`")]
    UnknownOption { option: String },
    #[error("`{token}`: `{letter}` is not a flag option that can be merged (o, g, G, v, n, x)")]
    BadMergedFlag { token: String, letter: char },
    #[error("{option} needs {expected}")]
    MissingValue {
        option: String,
        expected: &'static str,
    },
    #[error("{option}: `{value}` is not {expected}")]
    BadValue {
        option: String,
        value: String,
        expected: &'static str,
    },
    #[error("{option}: the value is not valid UTF-8")]
    NotUtf8 { option: String },
    #[error("{option} given twice")]
    Duplicate { option: String },
    #[error("{first} conflicts with {second}")]
    Conflict { first: String, second: String },
    #[error("{install} must be the only option, but {other} was also given")]
    NotAlone { install: String, other: String },
    #[error("{option} needs a process to attach to (-p PID or -pn NAME)")]
    NeedsAttach { option: String },
}

/// How an option consumes the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    P,
    Pn,
    E,
    LowerG,
    UpperG,
    C,
    Cf,
    X,
    Xe,
    Xd,
    Xn,
    Xi,
    O,
    Z,
    Pv,
    Pvr,
    Pd,
    Pe,
    Pb,
    Pr,
    Pt,
    Iae,
    Iaec,
    InstallWinDbg,
    InstallWinDbgSilent,
    Y,
    I,
    V,
    N,
    Lines,
    Help,
}

/// Case-insensitive option names (lowercase), after `-` or `/`.
const OPTIONS: &[(&str, Opt)] = &[
    ("p", Opt::P),
    ("pn", Opt::Pn),
    ("e", Opt::E),
    ("c", Opt::C),
    ("cf", Opt::Cf),
    ("x", Opt::X),
    ("xe", Opt::Xe),
    ("xd", Opt::Xd),
    ("xn", Opt::Xn),
    ("xi", Opt::Xi),
    ("o", Opt::O),
    ("z", Opt::Z),
    ("pv", Opt::Pv),
    ("pvr", Opt::Pvr),
    ("pd", Opt::Pd),
    ("pe", Opt::Pe),
    ("pb", Opt::Pb),
    ("pr", Opt::Pr),
    ("pt", Opt::Pt),
    ("iae", Opt::Iae),
    ("iaec", Opt::Iaec),
    ("y", Opt::Y),
    ("i", Opt::I),
    ("v", Opt::V),
    ("n", Opt::N),
    ("lines", Opt::Lines),
    ("?", Opt::Help),
    ("h", Opt::Help),
];

/// Case-sensitive option names.
const EXACT_OPTIONS: &[(&str, Opt)] = &[
    ("g", Opt::LowerG),
    ("G", Opt::UpperG),
    ("I", Opt::InstallWinDbg),
    ("IS", Opt::InstallWinDbgSilent),
];

fn lookup(body: &str) -> Option<Opt> {
    if let Some((_, o)) = EXACT_OPTIONS.iter().find(|(n, _)| *n == body) {
        return Some(*o);
    }
    if body == "--help" || body == "-help" {
        return Some(Opt::Help);
    }
    OPTIONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(body))
        .map(|(_, o)| *o)
}

/// A flag option that may be merged into one token with others.
fn merged_flag(letter: char) -> Option<Opt> {
    match letter {
        'g' => Some(Opt::LowerG),
        'G' => Some(Opt::UpperG),
        'o' | 'O' => Some(Opt::O),
        'v' | 'V' => Some(Opt::V),
        'n' | 'N' => Some(Opt::N),
        'x' | 'X' => Some(Opt::X),
        _ => None,
    }
}

/// Expands merged flags (`gG` → [-g, -G]); `Err(letter)` names the first
/// letter that is not a flag option.
fn expand_merged(body: &str) -> Result<Vec<Opt>, char> {
    let mut out = Vec::new();
    for c in body.chars() {
        out.push(merged_flag(c).ok_or(c)?);
    }
    Ok(out)
}

struct State {
    args: DbgArgs,
    pid: Option<u32>,
    name: Option<String>,
    dumps: Vec<PathBuf>,
    launch: Option<Vec<OsString>>,
    /// Options seen, as typed, for duplicate and "only option" checks.
    seen: Vec<(Opt, String)>,
}

fn value<'a>(
    it: &mut std::slice::Iter<'a, OsString>,
    option: &str,
    expected: &'static str,
) -> Result<&'a OsStr, ArgsError> {
    it.next()
        .map(OsString::as_os_str)
        .ok_or_else(|| ArgsError::MissingValue {
            option: option.to_string(),
            expected,
        })
}

fn utf8(v: &OsStr, option: &str) -> Result<String, ArgsError> {
    v.to_str()
        .map(str::to_string)
        .ok_or_else(|| ArgsError::NotUtf8 {
            option: option.to_string(),
        })
}

fn decimal<T: std::str::FromStr>(
    v: &OsStr,
    option: &str,
    expected: &'static str,
) -> Result<T, ArgsError> {
    let s = utf8(v, option)?;
    let bad = || ArgsError::BadValue {
        option: option.to_string(),
        value: s.clone(),
        expected,
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

impl State {
    fn apply(
        &mut self,
        opt: Opt,
        option: &str,
        it: &mut std::slice::Iter<'_, OsString>,
    ) -> Result<(), ArgsError> {
        let repeatable = matches!(opt, Opt::Xe | Opt::Xd | Opt::Xn | Opt::Xi | Opt::X | Opt::Z);
        if !repeatable && self.seen.iter().any(|(o, _)| *o == opt) {
            return Err(ArgsError::Duplicate {
                option: option.to_string(),
            });
        }
        self.seen.push((opt, option.to_string()));
        let a = &mut self.args;
        match opt {
            Opt::P => {
                let pid: u32 = decimal(
                    value(it, option, "a decimal process id")?,
                    option,
                    "a decimal process id",
                )?;
                if pid == 0 {
                    return Err(ArgsError::BadValue {
                        option: option.to_string(),
                        value: "0".into(),
                        expected: "a process id above 0",
                    });
                }
                self.pid = Some(pid);
            }
            Opt::Pn => self.name = Some(utf8(value(it, option, "a process name")?, option)?),
            Opt::E => {
                a.event_fd = Some(decimal(
                    value(it, option, "a decimal file descriptor")?,
                    option,
                    "a decimal file descriptor",
                )?)
            }
            Opt::LowerG => a.skip_initial_break = true,
            Opt::UpperG => a.skip_final_break = true,
            Opt::C => {
                a.initial_commands = Some(utf8(value(it, option, "a command string")?, option)?)
            }
            Opt::Cf => a.command_file = Some(PathBuf::from(value(it, option, "a script file")?)),
            Opt::X => a
                .exception_settings
                .push((FilterSetting::Disable, "av".to_string())),
            Opt::Xe | Opt::Xd | Opt::Xn | Opt::Xi => {
                let setting = match opt {
                    Opt::Xe => FilterSetting::Enable,
                    Opt::Xd => FilterSetting::Disable,
                    Opt::Xn => FilterSetting::Notify,
                    _ => FilterSetting::Ignore,
                };
                let code = utf8(
                    value(it, option, "an exception code or event name")?,
                    option,
                )?;
                a.exception_settings.push((setting, code));
            }
            Opt::O => a.debug_children = true,
            Opt::Z => self
                .dumps
                .push(PathBuf::from(value(it, option, "a dump file")?)),
            Opt::Pv | Opt::Pvr => {
                if let Some((_, first)) = self
                    .seen
                    .iter()
                    .find(|(o, _)| matches!(o, Opt::Pv | Opt::Pvr) && *o != opt)
                {
                    return Err(ArgsError::Conflict {
                        first: first.clone(),
                        second: option.to_string(),
                    });
                }
                a.noninvasive = Some(if opt == Opt::Pv {
                    Noninvasive::Suspended
                } else {
                    Noninvasive::Running
                });
            }
            Opt::Pd => a.detach_on_exit = true,
            Opt::Pe => a.already_debugged = true,
            Opt::Pb => a.no_break_in = true,
            Opt::Pr => a.resume_after_attach = true,
            Opt::Pt => {
                a.break_in_timeout = Some(decimal(
                    value(it, option, "a timeout in seconds")?,
                    option,
                    "a decimal number of seconds",
                )?)
            }
            Opt::Iae => a.install = Some(Install::Cdb { key: None }),
            Opt::Iaec => {
                let key = utf8(value(it, option, "a KEYSTRING")?, option)?;
                a.install = Some(Install::Cdb { key: Some(key) });
            }
            Opt::InstallWinDbg => a.install = Some(Install::WinDbg { silent: false }),
            Opt::InstallWinDbgSilent => a.install = Some(Install::WinDbg { silent: true }),
            Opt::Y => a.symbol_path = Some(value(it, option, "a symbol path")?.to_os_string()),
            Opt::I => a.image_path = Some(value(it, option, "an image path")?.to_os_string()),
            Opt::V => a.verbose = true,
            Opt::N => a.noisy_symbols = true,
            Opt::Lines => a.lines = true,
            Opt::Help => a.help = true,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<DbgArgs, ArgsError> {
        let option_of = |wanted: Opt, seen: &[(Opt, String)]| {
            seen.iter()
                .find(|(o, _)| *o == wanted)
                .map(|(_, s)| s.clone())
        };
        // Targets, in the order of the table below; two is a conflict.
        let mut targets: Vec<(String, TargetSpec)> = Vec::new();
        if let Some(pid) = self.pid {
            let name = option_of(Opt::P, &self.seen).unwrap_or_else(|| "-p".into());
            targets.push((name, TargetSpec::Pid(pid)));
        }
        if let Some(n) = self.name.take() {
            let name = option_of(Opt::Pn, &self.seen).unwrap_or_else(|| "-pn".into());
            targets.push((name, TargetSpec::Name(n)));
        }
        if !self.dumps.is_empty() {
            let name = option_of(Opt::Z, &self.seen).unwrap_or_else(|| "-z".into());
            targets.push((name, TargetSpec::Dumps(std::mem::take(&mut self.dumps))));
        }
        if let Some(cmd) = self.launch.take() {
            let program = cmd
                .first()
                .map(|p| format!("the program `{}`", p.to_string_lossy()))
                .unwrap_or_else(|| "a program".into());
            targets.push((program, TargetSpec::Launch(cmd)));
        }
        if let [(first, _), (second, _), ..] = targets.as_slice() {
            return Err(ArgsError::Conflict {
                first: first.clone(),
                second: second.clone(),
            });
        }
        if let Some((install_opt, _)) = self.seen.iter().find(|(o, _)| {
            matches!(
                o,
                Opt::Iae | Opt::Iaec | Opt::InstallWinDbg | Opt::InstallWinDbgSilent
            )
        }) {
            let install = option_of(*install_opt, &self.seen).unwrap_or_default();
            let other = self
                .seen
                .iter()
                .find(|(o, _)| o != install_opt)
                .map(|(_, s)| s.clone())
                .or_else(|| targets.first().map(|(n, _)| n.clone()));
            if let Some(other) = other {
                return Err(ArgsError::NotAlone { install, other });
            }
        }
        let attaching = matches!(
            targets.first(),
            Some((_, TargetSpec::Pid(_) | TargetSpec::Name(_)))
        );
        if !attaching {
            if let Some((_, option)) = self
                .seen
                .iter()
                .find(|(o, _)| matches!(o, Opt::Pv | Opt::Pvr | Opt::Pe | Opt::Pr))
            {
                return Err(ArgsError::NeedsAttach {
                    option: option.clone(),
                });
            }
        }
        self.args.target = targets
            .into_iter()
            .next()
            .map_or(TargetSpec::None, |(_, t)| t);
        Ok(self.args)
    }
}

/// Parses `coroner dbg`'s arguments (without the program name and `dbg`).
pub fn parse_args(args: &[OsString]) -> Result<DbgArgs, ArgsError> {
    let mut st = State {
        args: DbgArgs::default(),
        pid: None,
        name: None,
        dumps: Vec::new(),
        launch: None,
        seen: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            // Not UTF-8: cannot be an option, so the program starts here.
            let mut cmd = vec![arg.clone()];
            cmd.extend(it.by_ref().cloned());
            st.launch = Some(cmd);
            break;
        };
        if text == "--" {
            let cmd: Vec<OsString> = it.by_ref().cloned().collect();
            if !cmd.is_empty() {
                st.launch = Some(cmd);
            }
            break;
        }
        let (prefix, body) = match text.chars().next() {
            Some(c @ ('-' | '/')) if text.len() > 1 => (c, text.get(1..).unwrap_or("")),
            _ => {
                let mut cmd = vec![arg.clone()];
                cmd.extend(it.by_ref().cloned());
                st.launch = Some(cmd);
                break;
            }
        };
        if let Some(opt) = lookup(body) {
            st.apply(opt, text, &mut it)?;
            continue;
        }
        match expand_merged(body) {
            Ok(flags) => {
                for opt in flags {
                    st.apply(opt, text, &mut it)?;
                }
            }
            Err(_) if prefix == '/' => {
                // An absolute program path, not an option.
                let mut cmd = vec![arg.clone()];
                cmd.extend(it.by_ref().cloned());
                st.launch = Some(cmd);
                break;
            }
            Err(letter) => {
                // Report a merged-flag error only when the token looks like
                // merged flags (its first letter is a flag); otherwise it is
                // simply an unknown option.
                let first_is_flag = body
                    .chars()
                    .next()
                    .is_some_and(|c| merged_flag(c).is_some());
                return Err(if first_is_flag && body.len() > 1 {
                    ArgsError::BadMergedFlag {
                        token: text.to_string(),
                        letter,
                    }
                } else {
                    ArgsError::UnknownOption {
                        option: text.to_string(),
                    }
                });
            }
        }
    }
    st.finish()
}

/// `coroner dbg --help`.
pub fn usage() -> &'static str {
    "\
Usage: coroner dbg [options] [-p PID | -pn NAME | -z DUMP... | PROGRAM [ARGS...]]
       coroner dbg -iae | -iaec KEYSTRING | -I | -IS

A CDB-style debugger. Options may start with - or /; only -g, -G, -I and -IS
are case-sensitive; flag options may be merged (-gG, -ogG). Everything after
the options is the program to launch, taken verbatim (-- also ends options).

Targets:
  -p PID          attach to a running process (decimal pid)
  -pn NAME        attach to the only running process with this name
  -z FILE         open a minidump or ELF core (repeatable)
  PROGRAM ARGS    launch a program under the debugger

Attaching:
  -e FD           signal this inherited event fd once attached (AeDebug %ld)
  -pv             noninvasive attach, target stopped while examined
  -pvr            noninvasive attach, target keeps running
  -pd             detach instead of killing the target when the session ends
  -pe             the target was already debugged (re-attach after .abandon)
  -pb             no initial break-in on attach
  -pr             resume a stopped target after attaching
  -pt SECONDS     break-in timeout (default 30)

Events:
  -g              do not stop at the initial breakpoint
  -G              do not stop at process exit (same as sxd epr)
  -o              also debug child processes (.childdbg 1)
  -x              same as -xd av
  -xe CODE        break at first chance on CODE (sxe); repeatable
  -xd CODE        break at second chance only (sxd); repeatable
  -xn CODE        report without breaking (sxn); repeatable
  -xi CODE        ignore (sxi); repeatable

Commands:
  -c \"CMDS\"       run these ;-separated commands first
  -cf FILE        run the commands in FILE first

Symbols and output:
  -y PATH         symbol search path
  -i PATH         image (binary) search path
  -lines          use source line information
  -n              noisy symbol loading
  -v              verbose output

Postmortem registration (each must be the only option):
  -iae            register as the AeDebug debugger: \"<coroner> dbg -p %ld -e %ld -g\"
  -iaec KEYSTRING as -iae, appending KEYSTRING to the command
  -I              as -iae (WinDbg spelling)
  -IS             as -I, silent on success

  -?, -h, --help  this help
"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(v: &[&str]) -> Result<DbgArgs, ArgsError> {
        parse_args(&os(v))
    }

    fn ok(v: &[&str]) -> DbgArgs {
        match parse(v) {
            Ok(a) => a,
            Err(e) => panic!("{v:?}: {e}"),
        }
    }

    #[test]
    fn aedebug_line() {
        let a = ok(&["-p", "1234", "-e", "7", "-g"]);
        assert_eq!(a.target, TargetSpec::Pid(1234));
        assert_eq!(a.event_fd, Some(7));
        assert!(a.skip_initial_break && !a.skip_final_break);
    }

    #[test]
    fn every_value_option() {
        let a = ok(&[
            "-pn",
            "myserver",
            "-c",
            "r; k",
            "-cf",
            "script.txt",
            "-pt",
            "5",
            "-y",
            "/syms",
            "-i",
            "/bins",
            "-xe",
            "c0000374",
            "-x",
            "-xn",
            "ld",
            "-xi",
            "0x3c",
            "-xd",
            "av",
        ]);
        assert_eq!(a.target, TargetSpec::Name("myserver".into()));
        assert_eq!(a.initial_commands.as_deref(), Some("r; k"));
        assert_eq!(a.command_file, Some(PathBuf::from("script.txt")));
        assert_eq!(a.break_in_timeout, Some(5));
        assert_eq!(a.symbol_path, Some(OsString::from("/syms")));
        assert_eq!(a.image_path, Some(OsString::from("/bins")));
        assert_eq!(
            a.exception_settings,
            vec![
                (FilterSetting::Enable, "c0000374".to_string()),
                (FilterSetting::Disable, "av".to_string()),
                (FilterSetting::Notify, "ld".to_string()),
                (FilterSetting::Ignore, "0x3c".to_string()),
                (FilterSetting::Disable, "av".to_string()),
            ]
        );
    }

    #[test]
    fn every_flag_option() {
        let a = ok(&[
            "-G", "-o", "-pd", "-pe", "-pb", "-pr", "-pv", "-v", "-n", "-lines", "-p", "9",
        ]);
        assert!(a.skip_final_break && a.debug_children && a.detach_on_exit);
        assert!(a.already_debugged && a.no_break_in && a.resume_after_attach);
        assert_eq!(a.noninvasive, Some(Noninvasive::Suspended));
        assert!(a.verbose && a.noisy_symbols && a.lines);
        assert_eq!(
            ok(&["-pvr", "-p", "9"]).noninvasive,
            Some(Noninvasive::Running)
        );
        for h in ["-?", "-h", "--help", "/?", "-H"] {
            assert!(ok(&[h]).help, "{h}");
        }
    }

    #[test]
    fn slash_spelling_and_case() {
        let a = ok(&["/P", "42", "/E", "3", "/g", "/PD"]);
        assert_eq!(a.target, TargetSpec::Pid(42));
        assert_eq!(a.event_fd, Some(3));
        assert!(a.skip_initial_break && a.detach_on_exit);
        // -g and -G are distinct.
        let g = ok(&["-G"]);
        assert!(g.skip_final_break && !g.skip_initial_break);
        // -I (install) and -i PATH (image path) are distinct.
        assert_eq!(ok(&["-I"]).install, Some(Install::WinDbg { silent: false }));
        assert_eq!(ok(&["-IS"]).install, Some(Install::WinDbg { silent: true }));
        assert_eq!(
            ok(&["-i", "x", "prog"]).image_path,
            Some(OsString::from("x"))
        );
        assert_eq!(ok(&["-IAE"]).install, Some(Install::Cdb { key: None }));
    }

    #[test]
    fn merged_flags() {
        let a = ok(&["-gG"]);
        assert!(a.skip_initial_break && a.skip_final_break);
        let a = ok(&["/ogG", "prog"]);
        assert!(a.debug_children && a.skip_initial_break && a.skip_final_break);
        assert!(ok(&["-Ov"]).verbose);
        assert_eq!(
            ok(&["-gx"]).exception_settings,
            vec![(FilterSetting::Disable, "av".to_string())]
        );
        assert_eq!(
            parse(&["-odGg"]),
            Err(ArgsError::BadMergedFlag {
                token: "-odGg".into(),
                letter: 'd'
            })
        );
        assert_eq!(
            parse(&["-gg"]),
            Err(ArgsError::Duplicate {
                option: "-gg".into()
            })
        );
    }

    #[test]
    fn launch_is_verbatim() {
        let a = ok(&["-g", "/usr/bin/prog", "-p", "5", "-g", "--", "x"]);
        assert_eq!(
            a.target,
            TargetSpec::Launch(os(&["/usr/bin/prog", "-p", "5", "-g", "--", "x"]))
        );
        assert!(a.skip_initial_break);
        let a = ok(&["--", "-weird-name", "arg"]);
        assert_eq!(a.target, TargetSpec::Launch(os(&["-weird-name", "arg"])));
        let a = ok(&["prog"]);
        assert_eq!(a.target, TargetSpec::Launch(os(&["prog"])));
        assert_eq!(ok(&[]).target, TargetSpec::None);
        assert_eq!(ok(&["--"]).target, TargetSpec::None);
    }

    #[test]
    fn dumps_repeat() {
        let a = ok(&["-z", "a.dmp", "-z", "b.core"]);
        assert_eq!(
            a.target,
            TargetSpec::Dumps(vec![PathBuf::from("a.dmp"), PathBuf::from("b.core")])
        );
    }

    #[test]
    fn conflicts() {
        assert_eq!(
            parse(&["-p", "1", "-z", "a.dmp"]),
            Err(ArgsError::Conflict {
                first: "-p".into(),
                second: "-z".into()
            })
        );
        assert_eq!(
            parse(&["-pn", "x", "prog"]),
            Err(ArgsError::Conflict {
                first: "-pn".into(),
                second: "the program `prog`".into()
            })
        );
        assert_eq!(
            parse(&["-p", "1", "-pn", "x"]),
            Err(ArgsError::Conflict {
                first: "-p".into(),
                second: "-pn".into()
            })
        );
        assert_eq!(
            parse(&["-pv", "-pvr", "-p", "1"]),
            Err(ArgsError::Conflict {
                first: "-pv".into(),
                second: "-pvr".into()
            })
        );
        assert_eq!(
            parse(&["-p", "1", "-p", "2"]),
            Err(ArgsError::Duplicate {
                option: "-p".into()
            })
        );
        assert_eq!(
            parse(&["-pv", "prog"]),
            Err(ArgsError::NeedsAttach {
                option: "-pv".into()
            })
        );
    }

    #[test]
    fn installers_stand_alone() {
        assert_eq!(ok(&["-iae"]).install, Some(Install::Cdb { key: None }));
        assert_eq!(
            ok(&["/iaec", "-c \".dump /ma /j %p x\""]).install,
            Some(Install::Cdb {
                key: Some("-c \".dump /ma /j %p x\"".into())
            })
        );
        assert_eq!(
            parse(&["-iae", "-g"]),
            Err(ArgsError::NotAlone {
                install: "-iae".into(),
                other: "-g".into()
            })
        );
        assert_eq!(
            parse(&["-p", "3", "-I"]),
            Err(ArgsError::NotAlone {
                install: "-I".into(),
                other: "-p".into()
            })
        );
        assert_eq!(
            parse(&["-iae", "prog"]),
            Err(ArgsError::NotAlone {
                install: "-iae".into(),
                other: "the program `prog`".into()
            })
        );
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            parse(&["-p"]),
            Err(ArgsError::MissingValue {
                option: "-p".into(),
                expected: "a decimal process id"
            })
        );
        assert_eq!(
            parse(&["-p", "0x10"]),
            Err(ArgsError::BadValue {
                option: "-p".into(),
                value: "0x10".into(),
                expected: "a decimal process id"
            })
        );
        assert!(matches!(
            parse(&["-p", "0"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["-p", "99999999999"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["-e", "-1"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["-pt", "ten"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["-xe"]),
            Err(ArgsError::MissingValue { .. })
        ));
        assert_eq!(
            parse(&["-frob"]),
            Err(ArgsError::UnknownOption {
                option: "-frob".into()
            })
        );
        assert_eq!(
            parse(&["-"]),
            Ok(DbgArgs {
                target: TargetSpec::Launch(os(&["-"])),
                ..DbgArgs::default()
            })
        );
    }

    #[test]
    fn non_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff, b'x']);
        assert_eq!(
            parse_args(&[OsString::from("-c"), bad.clone()]),
            Err(ArgsError::NotUtf8 {
                option: "-c".into()
            })
        );
        let a = parse_args(&[OsString::from("-g"), bad.clone()]).unwrap();
        assert_eq!(a.target, TargetSpec::Launch(vec![bad]));
    }

    #[test]
    fn usage_lists_every_option() {
        let u = usage();
        for opt in [
            "-p PID",
            "-pn NAME",
            "-z FILE",
            "-e FD",
            "-pv ",
            "-pvr",
            "-pd",
            "-pe",
            "-pb",
            "-pr",
            "-pt SECONDS",
            "-g ",
            "-G ",
            "-o ",
            "-x ",
            "-xe CODE",
            "-xd CODE",
            "-xn CODE",
            "-xi CODE",
            "-c \"CMDS\"",
            "-cf FILE",
            "-y PATH",
            "-i PATH",
            "-lines",
            "-n ",
            "-v ",
            "-iae",
            "-iaec KEYSTRING",
            "-I ",
            "-IS",
            "--help",
        ] {
            assert!(u.contains(opt), "{opt}");
        }
    }
}
