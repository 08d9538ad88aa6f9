//! `coroner config show [--json]`, `coroner config set KEY VALUE`, and the
//! installers of the AeDebug entry (`coroner dbg -iae|-iaec K|-I`,
//! `coroner dump -i|-u`) and of the system-wide preload
//! (`coroner install|uninstall --jit --system`).

use crate::dump_args::UsageError;
use anyhow::Context;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const USAGE: &str = "\
Usage: coroner config show [--json] [--config FILE]
       coroner config set KEY VALUE [--config FILE]

show   print the effective configuration (system file, user file, or the
       CORONER_CONFIG override; see the precedence in coroner-config's docs)
set    change one key (e.g. aedebug.debugger, aedebug.auto, localdumps.type,
       localdumps.apps.NAME.type), keeping comments; the result is validated
       before it is written

--config FILE   the file to read or edit (default: $CORONER_CONFIG, else
                /etc/coroner/coroner.toml as root, else the per-user file)
";

/// The file an editing command works on.
pub fn target_file(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(p) = std::env::var_os("CORONER_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let sources = coroner_config::Sources::from_environment();
    if is_root() {
        sources.system
    } else {
        sources.user.unwrap_or(sources.system)
    }
}

fn is_root() -> bool {
    // The owner of /proc/self is the effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Where the configuration comes from: FILE alone when given (as the
/// runtime treats CORONER_CONFIG), else the system and user files.
pub fn sources(config: Option<PathBuf>) -> coroner_config::Sources {
    let mut s = coroner_config::Sources::from_environment();
    if config.is_some() {
        s.env_override = config;
    }
    s
}

/// Pull `--config FILE` out of `args`.
pub fn take_config(args: &mut Vec<OsString>) -> Result<Option<PathBuf>, UsageError> {
    if let Some(i) = args.iter().position(|a| a == "--config") {
        if i + 1 >= args.len() {
            return Err(UsageError("--config needs a file".into()));
        }
        let f = args.remove(i + 1);
        args.remove(i);
        return Ok(Some(PathBuf::from(f)));
    }
    Ok(None)
}

pub fn run(raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut args = raw.to_vec();
    let config = take_config(&mut args)?;
    let words: Vec<&str> = args
        .iter()
        .map(|a| a.to_str().unwrap_or("\u{fffd}"))
        .collect();
    match words.as_slice() {
        [] | ["-h" | "--help"] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        ["show", rest @ ..] => {
            let json = match rest {
                [] => false,
                ["--json"] => true,
                _ => return Err(UsageError(format!("config show: unexpected {rest:?}")).into()),
            };
            let sources = sources(config);
            let loaded = coroner_config::load(&sources).context("loading the configuration")?;
            for w in &loaded.warnings {
                eprintln!("coroner: warning: {w}");
            }
            if json {
                println!("{}", coroner_config::show_json(&loaded));
            } else {
                print!("{}", coroner_config::show(&loaded));
            }
            Ok(ExitCode::SUCCESS)
        }
        ["set", key, value] => {
            let file = target_file(config);
            coroner_config::set_key(&file, key, value)
                .with_context(|| format!("setting {key} in {}", file.display()))?;
            eprintln!("coroner: {key} set in {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(UsageError(format!(
            "config: unexpected arguments {words:?} (see coroner config --help)"
        ))
        .into()),
    }
}

fn self_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the coroner executable")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

/// `coroner dbg -iae`, `-iaec KEYSTRING`, `-I`: register `coroner dbg` as
/// the AeDebug debugger.
pub fn install_debugger(
    config: Option<PathBuf>,
    keystring: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let file = target_file(config);
    let msg =
        coroner_config::install_debugger(&file, &self_exe()?, keystring).with_context(|| {
            format!(
                "installing coroner dbg as the AeDebug debugger in {}",
                file.display()
            )
        })?;
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

/// `coroner dump -i [FOLDER] [-ma|-mp]`.
pub fn install_dumper(
    config: Option<PathBuf>,
    folder: &Path,
    level: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let file = target_file(config);
    let folder = folder
        .canonicalize()
        .with_context(|| format!("dump folder {}", folder.display()))?;
    let msg =
        coroner_config::install_dumper(&file, &self_exe()?, &folder, level).with_context(|| {
            format!(
                "installing coroner dump as the AeDebug debugger in {}",
                file.display()
            )
        })?;
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

/// `coroner dump -u`: restore what the installers replaced.
pub fn uninstall(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let file = target_file(config);
    let msg = coroner_config::uninstall(&file)
        .with_context(|| format!("uninstalling from {}", file.display()))?;
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

pub const INSTALL_USAGE: &str = "\
Usage: coroner install --jit --system [--preload-file FILE] [--library LIB]
       coroner uninstall --jit --system [--preload-file FILE] [--library LIB]

--jit --system   load the crash runtime (libcoroner.so) into every dynamically
                 linked program, through /etc/ld.so.preload; uninstall removes
                 exactly that line and keeps everything else
--preload-file   edit FILE instead of /etc/ld.so.preload (tests, chroots)
--library LIB    the runtime library (default: libcoroner.so next to coroner);
                 it must be root-owned, not writable by others, and stay put:
                 a broken preload entry breaks every program
";

/// `coroner install|uninstall --jit --system`.
pub fn preload(install: bool, raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut jit = false;
    let mut system = false;
    let mut file = PathBuf::from("/etc/ld.so.preload");
    let mut lib: Option<PathBuf> = None;
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-h" | "--help") => {
                print!("{INSTALL_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Some("--jit") => jit = true,
            Some("--system") => system = true,
            Some("--preload-file") => {
                file = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| UsageError("--preload-file needs a file".into()))?
            }
            Some("--library") => {
                lib = Some(
                    it.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| UsageError("--library needs a file".into()))?,
                )
            }
            _ => {
                return Err(UsageError(format!(
                    "unexpected argument {a:?} (see coroner install --help)"
                ))
                .into())
            }
        }
    }
    if !(jit && system) {
        return Err(UsageError(
            "only --jit --system is available here (the kernel tier's install comes with its issue)".into(),
        )
        .into());
    }
    let lib = match lib {
        Some(l) => l,
        None => crate::cmd::run::find_runtime_library()?,
    };
    let msg = if install {
        coroner_config::preload_install(&file, &lib)
    } else {
        coroner_config::preload_uninstall(&file, &lib)
    }
    .with_context(|| format!("editing {}", file.display()))?;
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}
