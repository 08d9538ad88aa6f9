//! `coroner config show [--json]`, `coroner config set KEY VALUE`, and the
//! installers of the AeDebug entry (`coroner dbg -iae|-iaec K|-I`,
//! `coroner dump -i|-u`) and of the system-wide preload
//! (`coroner install|uninstall --jit --system`). Whatever changes a
//! configuration file also recompiles its plan for the runtime.

use crate::dump_args::UsageError;
use anyhow::Context;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const USAGE: &str = "\
Usage: coroner config show [--json] [--config FILE]
       coroner config set KEY VALUE [--config FILE]
       coroner config compile-plan [--config FILE] [--system-only] [--no-store]

show   print the effective configuration (system file, user file, or the
       CORONER_CONFIG override; see the precedence in coroner-config's docs)
set    change one key (e.g. aedebug.debugger, aedebug.auto, localdumps.type,
       localdumps.apps.NAME.type), keeping comments; the result is validated
       before it is written
compile-plan
       compile the plan the runtime reads instead of the TOML and store it
       beside the most specific file (when this user owns it); libcoroner.so
       runs this itself when a process finds the plan missing or stale

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
        ["compile-plan", flags @ ..] => compile_plan(config, flags),
        ["set", key, value] => {
            let file = target_file(config);
            coroner_config::set_key(&file, key, value)
                .with_context(|| format!("setting {key} in {}", file.display()))?;
            refresh_plan(&file);
            eprintln!("coroner: {key} set in {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(UsageError(format!(
            "config: unexpected arguments {words:?} (see coroner config --help)"
        ))
        .into()),
    }
}

/// Recompiles the plan the runtime reads instead of `file` (its
/// `coroner_config::plan`) after `file` changed, so the next process start
/// does not parse the TOML. `file` as the system file is the system plan
/// (what processes without a user file, and setuid ones, read); as the
/// per-user file it is that user's plan over the system file; any other
/// file is an override (`--config`, `CORONER_CONFIG`) and its plan is its
/// own. Silent: without a plan the runtime parses the file and writes the
/// plan itself when it may.
fn refresh_plan(file: &Path) {
    if !file.exists() {
        // Uninstalled down to nothing: no plan for a file that is gone.
        let _ = std::fs::remove_file(coroner_config::plan::plan_path(file));
        return;
    }
    let env = coroner_config::Sources::from_environment();
    let sources = if env.env_override.is_none() && file == env.system {
        coroner_config::Sources::system_only(Some(file), 0)
    } else if env.env_override.is_none() && env.user.as_deref() == Some(file) {
        env
    } else {
        let mut over = coroner_config::Sources::system_only(None, 0);
        over.env_override = Some(file.to_owned());
        over
    };
    let _ = coroner_config::plan::refresh(&sources);
}

/// `coroner config compile-plan [--runtime] [--system-only] [--no-store]`:
/// the plan of the configuration (as the runtime finds it, or `--config
/// FILE`), compiled and stored beside the most specific file when this user
/// owns it (`coroner_config::plan::compile`). libcoroner.so, which has no
/// TOML parser, runs it with `--runtime` when a process finds the plan
/// missing or stale: the plan's bytes go to standard output, or, when the
/// configuration does not load, the message with exit status
/// `COMPILE_CONFIG_ERROR`. `--system-only`: the system file alone, as a
/// setuid process reads it. `--no-store`: write no file.
fn compile_plan(config: Option<PathBuf>, flags: &[&str]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let (mut runtime, mut system_only, mut store) = (false, false, true);
    for f in flags {
        match *f {
            "--runtime" => runtime = true,
            "--system-only" => system_only = true,
            "--no-store" => store = false,
            _ => {
                return Err(UsageError(format!(
                    "config compile-plan: unexpected {f:?} (see coroner config --help)"
                ))
                .into())
            }
        }
    }
    if system_only && config.is_some() {
        return Err(
            UsageError("config compile-plan: --system-only or --config, not both".into()).into(),
        );
    }
    let sources = if system_only {
        coroner_config::Sources::system_only(None, 0)
    } else {
        sources(config)
    };
    let mut out = std::io::stdout().lock();
    match coroner_config::plan::compile(&sources, store) {
        Ok((plan, _)) if runtime => {
            out.write_all(&plan)?;
            out.flush()?;
        }
        Ok((_, Some(path))) => writeln!(out, "coroner: plan written to {}", path.display())?,
        Ok((_, None)) => writeln!(
            out,
            "coroner: no plan written (no configuration file, --no-store, or this user does not own the file it would go beside)"
        )?,
        Err(e) if runtime => {
            write!(out, "{e}")?;
            out.flush()?;
            return Ok(ExitCode::from(coroner_config::plan::COMPILE_CONFIG_ERROR));
        }
        Err(e) => return Err(e).context("loading the configuration"),
    }
    Ok(ExitCode::SUCCESS)
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
    refresh_plan(&file);
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
    refresh_plan(&file);
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

/// `coroner dump -u`: restore what the installers replaced.
pub fn uninstall(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let file = target_file(config);
    let msg = coroner_config::uninstall(&file)
        .with_context(|| format!("uninstalling from {}", file.display()))?;
    refresh_plan(&file);
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

pub const INSTALL_USAGE: &str = "\
Usage: coroner install --system [--socket[=PATH]] [--config FILE] [--sysctl-dir DIR]
                      [--pipe-limit N]
       coroner uninstall --system [--config FILE] [--sysctl-dir DIR]
       coroner install --jit --system [--preload-file FILE] [--library LIB]
       coroner uninstall --jit --system [--preload-file FILE] [--library LIB]

--system         the kernel tier: set kernel.core_pattern to run `coroner
                 handler` for every crashing process (and core_pipe_limit, so
                 /proc/PID stays valid while it runs); the values replaced are
                 saved under [kernel] state_dir and uninstall restores them
                 byte for byte. The handler forwards each core to the handler
                 that was there before (chaining, [kernel] chain).
--config FILE    the handler reads FILE instead of /etc/coroner/coroner.toml
                 (root-owned, not writable by others)
--sysctl-dir DIR edit DIR/core_pattern and DIR/core_pipe_limit instead of
                 /proc/sys/kernel (tests)
--pipe-limit N   core_pipe_limit to set at least (default 16)
--socket[=PATH]  point core_pattern at the coredump socket server
                 (`coroner handler --serve`, or the systemd units in
                 dist/systemd/) on PATH (default /run/coroner/coredump.socket)
                 instead of running a handler per crash: `@@PATH` on Linux
                 6.17+, where the server rejects excluded and rate-limited
                 crashes before the kernel writes anything; `@PATH` on 6.16;
                 the pipe handler on older kernels. The server must already
                 be listening.

--jit --system   load the crash runtime (libcoroner.so) into every dynamically
                 linked program, through /etc/ld.so.preload; uninstall removes
                 exactly that line and keeps everything else
--preload-file   edit FILE instead of /etc/ld.so.preload (tests, chroots)
--library LIB    the runtime library (default: PREFIX/$LIB/coroner/libcoroner.so
                 when both builds are installed there beside PREFIX/bin/coroner,
                 else libcoroner.so next to coroner, 64-bit programs only);
                 it must be root-owned, not writable by others, and stay put:
                 a broken preload entry breaks every program. A path with the
                 loader's $LIB (quote it) names one build per class, so 32-bit
                 programs load the i686 build: both loaders are asked where it
                 leads, and it is refused unless each finds its build there
";

/// `coroner install|uninstall --jit --system`.
pub fn preload(install: bool, raw: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut jit = false;
    let mut system = false;
    let mut file = PathBuf::from("/etc/ld.so.preload");
    let mut lib: Option<PathBuf> = None;
    let mut config: Option<PathBuf> = None;
    let mut sysctl_dir: Option<PathBuf> = None;
    let mut pipe_limit = 16u32;
    let mut socket: Option<PathBuf> = None;
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-h" | "--help") => {
                print!("{INSTALL_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Some("--jit") => jit = true,
            Some("--socket") => socket = Some(PathBuf::from(crate::cmd::serve::DEFAULT_SOCKET)),
            Some(s) if s.starts_with("--socket=") => {
                socket = Some(PathBuf::from(&s["--socket=".len()..]));
            }
            Some("--system") => system = true,
            Some("--preload-file") => {
                file = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or_else(|| UsageError("--preload-file needs a file".into()))?
            }
            Some("--config") => {
                config = Some(
                    it.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| UsageError("--config needs a file".into()))?,
                )
            }
            Some("--sysctl-dir") => {
                sysctl_dir = Some(
                    it.next()
                        .map(PathBuf::from)
                        .ok_or_else(|| UsageError("--sysctl-dir needs a directory".into()))?,
                )
            }
            Some("--pipe-limit") => {
                pipe_limit = it
                    .next()
                    .and_then(|v| v.to_str()?.parse().ok())
                    .ok_or_else(|| UsageError("--pipe-limit needs a number".into()))?
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
    if !system {
        return Err(UsageError("say --system (see coroner install --help)".into()).into());
    }
    if !jit {
        return kernel_tier(install, config, sysctl_dir, pipe_limit, socket);
    }
    let lib = match lib {
        Some(l) => l,
        None => default_preload_library()?,
    };
    let msg = if install && lib.as_os_str().to_string_lossy().contains(LIB_TOKEN) {
        install_lib_token_entry(&file, &lib)?
    } else if install {
        coroner_config::preload_install(&file, &lib)
            .with_context(|| format!("editing {}", file.display()))?
    } else {
        coroner_config::preload_uninstall(&file, &lib)
            .with_context(|| format!("editing {}", file.display()))?
    };
    println!("{msg}");
    Ok(ExitCode::SUCCESS)
}

/// The dynamic loader's token for its own library directory, different per
/// class (Windows keeps 32-bit programs apart with WOW64's redirected
/// System32; glibc's loader substitutes `$LIB` in a preload path, e.g.
/// `lib/x86_64-linux-gnu` in a 64-bit process and `lib32` or
/// `lib/i386-linux-gnu` in a 32-bit one on Debian). One preload line then
/// names both builds, and neither class sees the other's ("wrong ELF
/// class", printed by every process).
const LIB_TOKEN: &str = "$LIB";
/// The loaders of the two classes (their ABI-mandated paths).
const LOADER_64: &str = "/lib64/ld-linux-x86-64.so.2";
const LOADER_32: &str = "/lib/ld-linux.so.2";

/// Where `loader` takes the preload `entry` when it loads `object` (a
/// dynamically linked ELF file of its class: the loader preloads nothing
/// for an object without dependencies), as it says in list mode (`ld.so --list`, which maps
/// the objects without running any of their code): the line
/// `<entry> => <path> (0x…)`. `None` when it finds nothing there.
fn resolve_with_loader(loader: &str, object: &Path, entry: &str) -> Option<PathBuf> {
    let out = std::process::Command::new(loader)
        .arg("--list")
        .arg(object)
        .env_clear()
        .env("LD_PRELOAD", entry)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let prefix = format!("{entry} => ");
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(&prefix)?;
        let path = rest.rsplit_once(" (0x").map_or(rest, |(p, _)| p);
        Some(PathBuf::from(path))
    })
}

/// An i686 object for the 32-bit loader to list: the build the `$LIB`
/// entry names under one of the expansions `coroner run` knows.
fn i386_probe_object(entry: &str) -> Option<PathBuf> {
    use crate::cmd::run::{elf_class_machine, LIB_DIRS_32};
    LIB_DIRS_32
        .iter()
        .chain(&["lib"])
        .map(|d| PathBuf::from(entry.replace(LIB_TOKEN, d)))
        .find(|p| elf_class_machine(p) == Some((1, 3)))
}

/// What `$LIB` in `entry` leads to for each class: the x86-64 build, and
/// the i686 build when this system runs 32-bit programs (has their loader).
fn resolve_lib_token_entry(entry: &str) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let exe = std::env::current_exe().context("locating the coroner executable")?;
    let host = resolve_with_loader(LOADER_64, &exe, entry).with_context(|| {
        format!("the 64-bit loader finds no library at {entry} (its $LIB is this system's library directory, e.g. lib/x86_64-linux-gnu or lib64)")
    })?;
    if !Path::new(LOADER_32).exists() {
        return Ok((host, None));
    }
    let i386 = i386_probe_object(entry)
        .and_then(|object| resolve_with_loader(LOADER_32, &object, entry))
        .with_context(|| {
            format!("the 32-bit loader finds no i686 build at {entry} (its $LIB is e.g. lib32 or lib/i386-linux-gnu), so every 32-bit program would print a loader error; install the i686 build there, or give the x86-64 build's own path")
        })?;
    Ok((host, Some(i386)))
}

/// The checks `coroner_config::preload_install` makes of a library, for
/// each build a `$LIB` entry leads to: a regular file owned by root and
/// writable by nobody else.
fn check_preload_library(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)
        .with_context(|| format!("cannot use the library {}", path.display()))?;
    if !m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{} must be a regular file owned by root and not group- or world-writable (uid {}, mode {:o})",
            path.display(),
            m.uid(),
            m.mode() & 0o7777
        );
    }
    Ok(())
}

/// `install --jit --system` of a `$LIB` entry: both loaders must find their
/// build through it (checked as any preload library), then the line is
/// appended as `coroner_config::preload_install` does (same layout, so its
/// `preload_uninstall` removes it byte for byte), replacing the file
/// atomically.
fn install_lib_token_entry(file: &Path, lib: &Path) -> anyhow::Result<String> {
    let entry = lib
        .to_str()
        .filter(|s| {
            lib.is_absolute()
                && !s.contains(|c: char| c.is_ascii_whitespace() || c == ':' || c == '\0')
        })
        .with_context(|| {
            format!(
                "{} must be an absolute UTF-8 path without blanks or ':'",
                lib.display()
            )
        })?;
    let (host, i386) = resolve_lib_token_entry(entry)?;
    check_preload_library(&host)?;
    if let Some(p) = &i386 {
        check_preload_library(p)?;
    }
    let text = match std::fs::read(file) {
        Ok(b) => String::from_utf8(b).map_err(|_| {
            anyhow::anyhow!("{} is not UTF-8 text; refusing to edit", file.display())
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if text
        .split(|c: char| c.is_ascii_whitespace() || c == ':')
        .any(|w| w == entry)
    {
        return Ok(format!(
            "{entry} is already listed in {}.\n",
            file.display()
        ));
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
        out.push_str(entry);
    } else {
        out.push_str(entry);
        out.push('\n');
    }
    replace_file(file, out.as_bytes()).with_context(|| format!("writing {}", file.display()))?;
    let i386 = match &i386 {
        Some(p) => format!(" and {} in 32-bit ones", p.display()),
        None => " (this system has no 32-bit loader)".to_string(),
    };
    Ok(format!(
        "Added {entry} to {}: it is loaded into every new process, {} in 64-bit ones{i386}.\n",
        file.display(),
        host.display()
    ))
}

/// Replaces `path` with `bytes` through a synced temporary file beside it,
/// keeping its mode (0644 for a new file).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The library `install|uninstall --jit --system` use without `--library`:
/// `PREFIX/$LIB/coroner/libcoroner.so` (coroner in `PREFIX/bin`) when both
/// loaders find their build there, else the x86-64 build as `coroner run`
/// finds it, which 32-bit programs cannot load (said when an i686 build is
/// around).
fn default_preload_library() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the coroner executable")?;
    if let Some(prefix) = exe
        .parent()
        .and_then(Path::parent)
        .and_then(|p| p.canonicalize().ok())
    {
        let entry = prefix.join(LIB_TOKEN).join("coroner/libcoroner.so");
        if let Some(s) = entry.to_str() {
            if resolve_lib_token_entry(s).is_ok() {
                return Ok(entry);
            }
        }
    }
    let host = crate::cmd::run::find_runtime_library()?;
    if let Some(i386) = crate::cmd::run::find_runtime_library_i386() {
        eprintln!(
            "coroner: note: 32-bit programs will not load {} (the i686 build is {}): install the two builds as PREFIX/$LIB/coroner/libcoroner.so and give that path, quoted, to --library",
            host.display(),
            i386.display()
        );
    }
    Ok(host)
}

/// `coroner install|uninstall --system`: the kernel tier's core_pattern.
fn kernel_tier(
    install: bool,
    config: Option<PathBuf>,
    sysctl_dir: Option<PathBuf>,
    pipe_limit: u32,
    socket: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use coroner_config::kernel::{handler_pattern, install_kernel, uninstall_kernel, SysctlPaths};
    if let Some(c) = &config {
        if !c.is_absolute() {
            return Err(
                UsageError(format!("--config {} must be an absolute path", c.display())).into(),
            );
        }
    }
    let sources = coroner_config::Sources::system_only(config.as_deref(), 0);
    let loaded = coroner_config::load(&sources)?;
    for w in &loaded.warnings {
        eprintln!("coroner: warning: {w}");
    }
    if config.is_some() && !loaded.warnings.is_empty() {
        anyhow::bail!(
            "the handler would ignore {}: fix its owner or mode first",
            sources.system.display()
        );
    }
    let state = &loaded.config.kernel.state_dir;
    let sys = sysctl_dir
        .map(|dir| SysctlPaths { dir })
        .unwrap_or_else(SysctlPaths::system);
    if install {
        let exe = std::env::current_exe()
            .and_then(|e| e.canonicalize())
            .context("cannot find this program's path")?;
        trusted_program(&exe)?;
        let pattern = match socket {
            Some(s) => socket_or_pipe(&s, &exe, config.as_deref())?,
            None => handler_pattern(&exe, config.as_deref())?,
        };
        let outcome = install_kernel(&sys, state, &pattern, pipe_limit)
            .with_context(|| format!("installing in {}", sys.dir.display()))?;
        println!("{outcome}");
    } else {
        let outcome = uninstall_kernel(&sys, state)
            .with_context(|| format!("uninstalling from {}", sys.dir.display()))?;
        println!("{outcome}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `install --system --socket`: `@@SOCKET` (request mode) on Linux 6.17+,
/// `@SOCKET` on 6.16, the pipe handler before that. The server must already
/// listen there: a socket pattern with nobody behind it loses every crash.
fn socket_or_pipe(
    socket: &std::path::Path,
    exe: &std::path::Path,
    config: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    use coroner_config::kernel::{handler_pattern, socket_pattern, socket_support, SocketSupport};
    if !socket.is_absolute() {
        return Err(UsageError(format!(
            "--socket={} must be an absolute path",
            socket.display()
        ))
        .into());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let support = socket_support(release);
    if support == SocketSupport::None {
        eprintln!(
            "coroner: this kernel ({release}) has no coredump socket (Linux 6.16+): installing the pipe handler instead"
        );
        return Ok(handler_pattern(exe, config)?);
    }
    if !crate::cmd::serve::listening(socket) {
        anyhow::bail!(
            "nothing listens on {}: start the server first (`coroner handler --serve --socket {}`, or `systemctl enable --now coroner-coredump.socket` with the units in dist/systemd/), then install",
            socket.display(),
            socket.display()
        );
    }
    if support == SocketSupport::Plain {
        eprintln!(
            "coroner: this kernel ({release}) has the coredump socket without requests (Linux 6.17+): every crash is written to the server, which applies the rate limits after the fact"
        );
    }
    Ok(socket_pattern(socket, support == SocketSupport::Request)?)
}

/// The kernel runs the handler as root for every crash: the program and
/// every directory above it must be root-owned and writable by nobody else,
/// or whoever can replace it owns the machine.
fn trusted_program(exe: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let Some((cur, m)) = crate::rootonly::first_unsafe_component(exe)? {
        anyhow::bail!(
            "{} is {} (mode {:o}, owner uid {}): the kernel would run {} as root for every crash, so it must be root-owned and writable only by root",
            cur.display(),
            if m.uid() != 0 { "not owned by root" } else { "writable by group or others" },
            m.mode() & 0o7777,
            m.uid(),
            exe.display()
        );
    }
    Ok(())
}

/// The configuration: `explicit` alone when given, else the system and
/// user files (and `CORONER_CONFIG`) as everywhere else.
pub(crate) fn load_config(explicit: Option<&Path>) -> anyhow::Result<coroner_config::Config> {
    let sources = match explicit {
        Some(file) => {
            // `load` takes a missing system file for "no configuration";
            // a file named on the command line must be there.
            std::fs::symlink_metadata(file)
                .with_context(|| format!("cannot use the configuration file {}", file.display()))?;
            // Trusted when owned by whoever runs this (root: root).
            coroner_config::Sources::system_only(Some(file), coroner_sys::uids().1)
        }
        None => coroner_config::Sources::from_environment(),
    };
    let loaded = coroner_config::load(&sources).context("loading the configuration")?;
    if let (Some(file), false) = (explicit, loaded.warnings.is_empty()) {
        // The only warnings here are about `file`: refuse rather than go on
        // with the defaults (gc would apply the wrong retention).
        anyhow::bail!(
            "not using the configuration file {}: {}",
            file.display(),
            loaded.warnings.join("; ")
        );
    }
    for w in &loaded.warnings {
        eprintln!("coroner: warning: {w}");
    }
    Ok(loaded.config)
}
