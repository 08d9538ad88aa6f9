//! `coroner dump` arguments: GNU long options and the ProcDump spellings
//! (`-mm`, `-mp`, `-ma`, `-o`, `-accepteula`, `/c`, `-e`, `-x`, `-j`) parsed
//! into one [`DumpArgs`] without touching the system (STYLE 3: raw args, then
//! resolved settings).

use std::ffi::OsString;
use std::fmt;

/// Dump level as asked on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Mini,
    MiniPlus,
    Full,
}

/// Output format as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Minidump,
    Core,
}

/// What to dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `coroner dump PID [FILE]`: dump now.
    Pid { pid: i32, dest: Option<OsString> },
    /// `coroner dump -e PID [FILE]`: wait for the process to crash, dump then.
    WatchPid { pid: i32, dest: Option<OsString> },
    /// `coroner dump -e -x DEST CMD ARGS...`: launch CMD, dump when it crashes.
    Launch {
        dest: OsString,
        command: Vec<OsString>,
    },
    /// `coroner dump -i [FOLDER]`: register `coroner dump -j` as the AeDebug
    /// debugger (ProcDump `-i`).
    Install { folder: Option<OsString> },
    /// `coroner dump -u`: restore what `-i` (or `coroner dbg -iae`) replaced.
    Uninstall,
    /// `coroner dump -j FOLDER PID EVENT ADDR`: the AeDebug entry.
    Jit {
        folder: OsString,
        pid: i32,
        event: i64,
        block: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpArgs {
    pub level: Level,
    pub format: Format,
    pub overwrite: bool,
    pub comment: Option<String>,
    pub target: Target,
    /// Seconds to wait for the attach to stop every thread.
    pub attach_timeout: u64,
    pub quiet: bool,
    /// fsync before publishing (always on for -e and -j).
    pub sync: bool,
    /// The configuration file `-i`/`-u` edit.
    pub config: Option<OsString>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

pub const USAGE: &str = "\
Usage: coroner dump [OPTIONS] PID [FILE|FOLDER]
       coroner dump -i [FOLDER] [-ma|-mp] [--config FILE]
       coroner dump -u [--config FILE]
       coroner dump [OPTIONS] -e PID [FILE|FOLDER]
       coroner dump [OPTIONS] -e -x FILE|FOLDER COMMAND [ARGS...]
       coroner dump [OPTIONS] -j FOLDER PID EVENT JIT_BLOCK_ADDRESS

Write a dump of a live process (ProcDump for Linux, coroner-style).

Options (ProcDump spellings in parentheses):
  --mini          (-mm)  threads, stacks, modules, code around each IP, Linux streams [default]
  --mini-plus     (-mp)  mini + every private writable mapping
  --full          (-ma)  every readable mapping (Memory64List; > 4 GiB safe)
  --format minidump|core  output format [default: minidump]
  --overwrite     (-o)   replace an existing dump file
  --comment TEXT  (/c)   store TEXT in the dump's comment stream
  --on-crash      (-e)   wait for an unhandled fatal signal, then dump
  --launch        (-x)   start COMMAND and watch it (with -e)
  --jit           (-j)   AeDebug entry: exception context from the JIT block
  -i [FOLDER]            install `coroner dump -j` as the AeDebug debugger
                         (auto = 1), dumping into FOLDER [default: .]
  -u                     uninstall: restore what -i or `coroner dbg -iae` replaced
  --config FILE          the configuration -i and -u edit
  --sync                 fsync the dump before it appears under its name, so
                         it survives a power loss (always on with -e and -j)
  --attach-timeout SECS  bound on stopping every thread, with -j [default: 30]
  --accept-eula   (-accepteula)  accepted and ignored
  -q, --quiet            no progress bar, no summary
  -h, --help             this text

A FOLDER gets a unique name: <exe>_<pid>_<YYMMDD_HHMMSS>.dmp (.core for
--format core); an existing file is never replaced without -o.
";

fn parse_pid(s: &str, what: &str) -> Result<i32, UsageError> {
    match s.parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(UsageError(format!(
            "{what} must be a positive process id, got {s:?}"
        ))),
    }
}

/// `%p`-style address: hex with or without `0x`.
fn parse_hex_addr(s: &str) -> Result<u64, UsageError> {
    let t = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(t, 16)
        .map_err(|_| UsageError(format!("JIT block address must be hex, got {s:?}")))
}

/// Parse the arguments after `dump`. `Ok(None)` means help was asked.
pub fn parse(args: &[OsString]) -> Result<Option<DumpArgs>, UsageError> {
    let mut level = None;
    let mut format = Format::Minidump;
    let mut overwrite = false;
    let mut comment = None;
    let mut on_crash = false;
    let mut launch = false;
    let mut jit = false;
    let mut quiet = false;
    let mut sync = false;
    let mut install = false;
    let mut uninstall = false;
    let mut config = None;
    let mut attach_timeout = 30;
    let mut positional: Vec<OsString> = Vec::new();

    let set_level = |l: Level, level: &mut Option<Level>| -> Result<(), UsageError> {
        match level {
            Some(prev) if *prev != l => Err(UsageError(
                "choose one dump level: -mm, -mp or -ma".to_string(),
            )),
            _ => {
                *level = Some(l);
                Ok(())
            }
        }
    };

    let mut i = 0;
    while i < args.len() {
        let raw = &args[i];
        let Some(a) = raw.to_str() else {
            positional.push(raw.clone());
            i += 1;
            if launch && positional.len() >= 2 {
                positional.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        };
        // After `-x DEST CMD`, everything belongs to the command.
        if launch && positional.len() >= 2 {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        let mut value = |name: &str| -> Result<String, UsageError> {
            i += 1;
            args.get(i)
                .and_then(|v| v.to_str())
                .map(str::to_string)
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        match a {
            "-h" | "--help" | "-?" | "/?" => return Ok(None),
            "-mm" | "--mini" => set_level(Level::Mini, &mut level)?,
            "-mp" | "--mini-plus" => set_level(Level::MiniPlus, &mut level)?,
            "-ma" | "--full" => set_level(Level::Full, &mut level)?,
            "-o" | "/o" | "--overwrite" => overwrite = true,
            "-accepteula" | "/accepteula" | "--accept-eula" => {}
            "-q" | "--quiet" => quiet = true,
            "--sync" => sync = true,
            "-i" | "/i" => install = true,
            "-u" | "/u" => uninstall = true,
            "--config" => config = Some(OsString::from(value(a)?)),
            "-e" | "/e" | "--on-crash" => on_crash = true,
            "-x" | "/x" | "--launch" => launch = true,
            "-j" | "/j" | "--jit" => jit = true,
            "-c" | "/c" | "--comment" => comment = Some(value(a)?),
            "--format" => {
                format = match value(a)?.as_str() {
                    "minidump" | "mdmp" | "dmp" => Format::Minidump,
                    "core" | "elf" => Format::Core,
                    other => {
                        return Err(UsageError(format!(
                            "--format must be minidump or core, got {other:?}"
                        )))
                    }
                }
            }
            "--attach-timeout" => {
                let v = value(a)?;
                attach_timeout = v.parse().map_err(|_| {
                    UsageError(format!("--attach-timeout must be seconds, got {v:?}"))
                })?;
            }
            _ if a.starts_with("--format=") => {
                let v = &a["--format=".len()..];
                format = match v {
                    "minidump" => Format::Minidump,
                    "core" => Format::Core,
                    other => {
                        return Err(UsageError(format!(
                            "--format must be minidump or core, got {other:?}"
                        )))
                    }
                };
            }
            _ if a.starts_with("--comment=") => comment = Some(a["--comment=".len()..].to_string()),
            _ if a.len() > 1 && a.starts_with('-') && a.parse::<i64>().is_err() => {
                return Err(UsageError(format!(
                    "unknown option {a:?} (see coroner dump --help)"
                )))
            }
            _ => positional.push(raw.clone()),
        }
        i += 1;
    }

    let pos_str = |k: usize| positional.get(k).and_then(|p| p.to_str()).unwrap_or("");
    let target = if uninstall {
        if install || jit || on_crash || launch || !positional.is_empty() || level.is_some() {
            return Err(UsageError("-u must be the only option".into()));
        }
        Target::Uninstall
    } else if install {
        if jit || on_crash || launch || positional.len() > 1 {
            return Err(UsageError("-i takes [FOLDER] and -ma/-mp only".into()));
        }
        if level == Some(Level::Mini) {
            return Err(UsageError(
                "-i writes mini dumps by default; give -ma or -mp for more".into(),
            ));
        }
        Target::Install {
            folder: positional.first().cloned(),
        }
    } else if jit {
        if on_crash || launch {
            return Err(UsageError("-j cannot be combined with -e or -x".into()));
        }
        if positional.len() != 4 {
            return Err(UsageError(
                "-j takes FOLDER PID EVENT JIT_BLOCK_ADDRESS".into(),
            ));
        }
        let event = pos_str(2)
            .parse::<i64>()
            .map_err(|_| UsageError(format!("EVENT must be a number, got {:?}", pos_str(2))))?;
        Target::Jit {
            folder: positional[0].clone(),
            pid: parse_pid(pos_str(1), "PID")?,
            event,
            block: parse_hex_addr(pos_str(3))?,
        }
    } else if launch {
        if !on_crash {
            return Err(UsageError(
                "-x launches a program to watch; use it with -e".into(),
            ));
        }
        if positional.len() < 2 {
            return Err(UsageError("-x takes FILE|FOLDER COMMAND [ARGS...]".into()));
        }
        Target::Launch {
            dest: positional[0].clone(),
            command: positional[1..].to_vec(),
        }
    } else {
        if positional.is_empty() {
            return Err(UsageError("missing PID (see coroner dump --help)".into()));
        }
        if positional.len() > 2 {
            return Err(UsageError(format!(
                "unexpected argument {:?}",
                positional[2]
            )));
        }
        let pid = parse_pid(pos_str(0), "PID")?;
        let dest = positional.get(1).cloned();
        if on_crash {
            Target::WatchPid { pid, dest }
        } else {
            Target::Pid { pid, dest }
        }
    };
    Ok(Some(DumpArgs {
        level: level.unwrap_or(Level::Mini),
        format,
        overwrite,
        comment,
        target,
        attach_timeout,
        quiet,
        sync,
        config,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Option<DumpArgs>, UsageError> {
        parse(&s.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn procdump_spellings_map_to_one_settings_type() {
        let a = p(&["-accepteula", "-ma", "-o", "1234", "out.dmp"])
            .unwrap()
            .unwrap();
        assert_eq!(a.level, Level::Full);
        assert!(a.overwrite);
        assert_eq!(
            a.target,
            Target::Pid {
                pid: 1234,
                dest: Some("out.dmp".into())
            }
        );
        let b = p(&["--full", "--overwrite", "1234", "out.dmp"])
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        let c = p(&["-mp", "/c", "hello there", "7"]).unwrap().unwrap();
        assert_eq!(c.level, Level::MiniPlus);
        assert_eq!(c.comment.as_deref(), Some("hello there"));
        assert_eq!(p(&["42"]).unwrap().unwrap().level, Level::Mini);
        assert_eq!(
            p(&["--format", "core", "42"]).unwrap().unwrap().format,
            Format::Core
        );
    }

    #[test]
    fn jit_and_launch_forms() {
        let j = p(&[
            "-accepteula",
            "-ma",
            "-j",
            "/tmp/d",
            "77",
            "5",
            "00007ffc12345678",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            j.target,
            Target::Jit {
                folder: "/tmp/d".into(),
                pid: 77,
                event: 5,
                block: 0x7ffc12345678
            }
        );
        let x = p(&["-e", "-x", "dumps", "prog", "-mm", "--weird"])
            .unwrap()
            .unwrap();
        assert_eq!(
            x.target,
            Target::Launch {
                dest: "dumps".into(),
                command: vec!["prog".into(), "-mm".into(), "--weird".into()]
            }
        );
        assert_eq!(x.level, Level::Mini);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(p(&[]).unwrap_err().0.contains("missing PID"));
        assert!(p(&["abc"]).unwrap_err().0.contains("\"abc\""));
        assert!(p(&["-1"]).unwrap_err().0.contains("positive"));
        assert!(p(&["-mm", "-ma", "1"])
            .unwrap_err()
            .0
            .contains("one dump level"));
        assert!(p(&["--bogus", "1"]).unwrap_err().0.contains("--bogus"));
        assert!(p(&["--format", "zip", "1"]).unwrap_err().0.contains("zip"));
        assert!(p(&["-j", "d", "1", "2"])
            .unwrap_err()
            .0
            .contains("JIT_BLOCK_ADDRESS"));
        assert!(p(&["-j", "d", "1", "2", "zz"])
            .unwrap_err()
            .0
            .contains("hex"));
        assert!(p(&["-x", "d", "prog"]).unwrap_err().0.contains("with -e"));
        assert!(p(&["1", "a", "b"]).unwrap_err().0.contains("unexpected"));
        assert_eq!(p(&["--help"]).unwrap(), None);
    }
}
