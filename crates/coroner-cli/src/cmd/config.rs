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
    let mut p = Some(exe);
    while let Some(cur) = p {
        let m = std::fs::symlink_metadata(cur)
            .with_context(|| format!("cannot stat {}", cur.display()))?;
        // A root-owned sticky directory (like /tmp) is fine above the
        // program: nobody else may rename or remove what root put there.
        let sticky_ok = cur != exe && m.uid() == 0 && m.mode() & 0o1000 != 0;
        if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky_ok) {
            anyhow::bail!(
                "{} is {} (mode {:o}, owner uid {}): the kernel would run {} as root for every crash, so it must be root-owned and writable only by root",
                cur.display(),
                if m.uid() != 0 { "not owned by root" } else { "writable by group or others" },
                m.mode() & 0o7777,
                m.uid(),
                exe.display()
            );
        }
        p = cur.parent();
    }
    Ok(())
}
