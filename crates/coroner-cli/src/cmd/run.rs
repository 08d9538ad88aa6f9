//! `coroner run [--config FILE] [-q] -- CMD ARGS…`: run a program with the
//! crash runtime preloaded, and say on its exit what happened: how it ended,
//! what crashed, whether the debugger was launched and what it did, and
//! which dump was written. Exits with the program's status (128 + signal
//! when a signal killed it, as a shell reports it).

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub const USAGE: &str = "\
Usage: coroner run [OPTIONS] -- COMMAND [ARGS...]

Run COMMAND with the coroner crash runtime (libcoroner.so) preloaded: a crash
launches the AeDebug debugger against the live process, or writes the
LocalDumps dump, as the configuration says. On exit, print what happened.
Exits with COMMAND's status (128 + signal if a signal killed it).

A 32-bit program gets the i686 build of the runtime when there is one
(cargo build --target i686-unknown-linux-gnu -p coroner-preload): LD_PRELOAD
then names it through the loader's $LIB, in a private directory removed on
exit.

Options:
  --config FILE   use this configuration instead of the system/user files
                  (sets CORONER_CONFIG for the program)
  -q, --quiet     print nothing; only the exit status
  -h, --help      this text
";

/// The runtime library for this (x86-64) host: next to this executable (a
/// cargo build, or an install that keeps them together), or in
/// `../lib/coroner/`, `../lib/x86_64-linux-gnu/coroner/` or
/// `../lib64/coroner/`.
pub fn find_runtime_library() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the coroner executable")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = [
        dir.join("libcoroner.so"),
        dir.join("../lib/coroner/libcoroner.so"),
        dir.join("../lib/x86_64-linux-gnu/coroner/libcoroner.so"),
        dir.join("../lib64/coroner/libcoroner.so"),
    ];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "the crash runtime libcoroner.so is not next to {} (build it: cargo build -p coroner-preload)",
        exe.display()
    )
}

/// The i686 build of the runtime, for 32-bit programs, if there is one: the
/// cargo layout (`target/i686-unknown-linux-gnu/<profile>/libcoroner.so`
/// beside `target/<profile>/coroner`, what `cargo build --target
/// i686-unknown-linux-gnu -p coroner-preload` makes) or an install's
/// `../lib32/coroner/` or `../lib/i386-linux-gnu/coroner/`. Only a 32-bit
/// x86 ELF object counts.
pub fn find_runtime_library_i386() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = Vec::new();
    if let Some(profile) = dir.file_name() {
        candidates.push(
            dir.join("../i686-unknown-linux-gnu")
                .join(profile)
                .join("libcoroner.so"),
        );
    }
    candidates.push(dir.join("../lib32/coroner/libcoroner.so"));
    candidates.push(dir.join("../lib/i386-linux-gnu/coroner/libcoroner.so"));
    candidates
        .into_iter()
        .find(|c| elf_class_machine(c) == Some((1, 3)))
        .map(|c| c.canonicalize().unwrap_or(c))
}

/// `(EI_CLASS, e_machine)` of an ELF file: (1, 3) is i386, (2, 62) x86-64.
pub fn elf_class_machine(path: &Path) -> Option<(u8, u16)> {
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    (head[..4] == *b"\x7fELF").then(|| (head[4], u16::from_le_bytes([head[18], head[19]])))
}

/// What glibc's loader substitutes for `$LIB` in a preload path, per class,
/// on the distributions we know: Debian and Ubuntu `lib/x86_64-linux-gnu`,
/// and `lib/i386-linux-gnu` (multiarch `libc6:i386`) or `lib32` (biarch
/// `libc6-i386`); Fedora, RHEL and SUSE `lib64` and `lib`; Arch `lib` and
/// `lib32`. Plain `lib` is 64-bit where `/lib64` is `/lib` (Arch) and
/// 32-bit elsewhere; see [`lib_is_64_bit`].
pub const LIB_DIRS_64: [&str; 2] = ["lib/x86_64-linux-gnu", "lib64"];
/// See [`LIB_DIRS_64`].
pub const LIB_DIRS_32: [&str; 2] = ["lib/i386-linux-gnu", "lib32"];

/// Whether `$LIB` = `lib` means the 64-bit libraries on this system: true
/// when `/lib64` and `/lib` are the same directory (Arch), false when they
/// differ (Fedora's i686 `lib`, and Debian, which uses neither).
pub fn lib_is_64_bit() -> bool {
    match (
        std::fs::canonicalize("/lib64"),
        std::fs::canonicalize("/lib"),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A private directory laid out so that one `LD_PRELOAD` entry,
/// `<dir>/$LIB/libcoroner.so`, is the x86-64 build in a 64-bit process and
/// the i686 build in a 32-bit one: each `$LIB` expansion of
/// [`LIB_DIRS_64`]/[`LIB_DIRS_32`] (and `lib`) holds a symbolic link to the
/// build of its class. Removed when dropped.
pub struct PreloadTree {
    dir: tempfile::TempDir,
}

impl PreloadTree {
    pub fn create(host: &Path, i386: &Path) -> std::io::Result<PreloadTree> {
        let dir = tempfile::Builder::new().prefix("coroner-run.").tempdir()?;
        let lib = if lib_is_64_bit() { host } else { i386 };
        let links = LIB_DIRS_64
            .iter()
            .map(|d| (*d, host))
            .chain(LIB_DIRS_32.iter().map(|d| (*d, i386)))
            .chain([("lib", lib)]);
        for (sub, target) in links {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d)?;
            std::os::unix::fs::symlink(target, d.join("libcoroner.so"))?;
        }
        Ok(PreloadTree { dir })
    }

    /// The `LD_PRELOAD` entry: `<dir>/$LIB/libcoroner.so`.
    pub fn entry(&self) -> OsString {
        let mut e = self.dir.path().as_os_str().to_owned();
        e.push("/$LIB/libcoroner.so");
        e
    }
}

/// The `LD_PRELOAD` entry for `coroner run`: the x86-64 build alone, or,
/// when the i686 build is found, a [`PreloadTree`] entry that gives every
/// process the build of its own class (the tree must live until the program
/// has exited).
fn preload_entry(host: &Path) -> (OsString, Option<PreloadTree>) {
    let Some(i386) = find_runtime_library_i386() else {
        return (host.as_os_str().to_owned(), None);
    };
    match PreloadTree::create(host, &i386) {
        // LD_PRELOAD splits at blanks and ':'; a TMPDIR with one cannot hold
        // the tree.
        Ok(tree)
            if !tree
                .entry()
                .as_bytes()
                .iter()
                .any(|b| b.is_ascii_whitespace() || *b == b':') =>
        {
            (tree.entry(), Some(tree))
        }
        Ok(_) => (host.as_os_str().to_owned(), None),
        Err(e) => {
            eprintln!(
                "coroner: warning: 32-bit programs run without the runtime (preload tree: {e})"
            );
            (host.as_os_str().to_owned(), None)
        }
    }
}

pub fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let mut config: Option<PathBuf> = None;
    let mut quiet = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].to_str() {
            Some("-h" | "--help") => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            Some("--config") => {
                i += 1;
                let f = args
                    .get(i)
                    .ok_or_else(|| crate::dump_args::UsageError("--config needs a file".into()))?;
                config = Some(PathBuf::from(f));
            }
            Some("-q" | "--quiet") => quiet = true,
            Some("--") => {
                i += 1;
                break;
            }
            Some(s) if s.starts_with('-') => {
                return Err(crate::dump_args::UsageError(format!(
                    "unknown option {s:?} (see coroner run --help)"
                ))
                .into())
            }
            _ => break,
        }
        i += 1;
    }
    let command = &args[i..];
    let Some((program, prog_args)) = command.split_first() else {
        return Err(crate::dump_args::UsageError(
            "missing COMMAND (see coroner run --help)".into(),
        )
        .into());
    };
    let lib = find_runtime_library()?;
    if let Some(c) = &config {
        // Fail early and clearly on a bad file, naming its line and column.
        coroner_config::load(&crate::cmd::config::sources(Some(c.clone())))
            .with_context(|| format!("configuration {}", c.display()))?;
    }

    // The runtime writes one report line to this inherited descriptor.
    let mut report = tempfile::tempfile().context("creating the report file")?;
    coroner_sys::set_cloexec(report.as_fd(), false).context("sharing the report file")?;
    // Kept until the program has exited: its processes load from it.
    let (entry, _tree) = preload_entry(&lib);
    let preload = match std::env::var_os("LD_PRELOAD") {
        Some(p) if !p.is_empty() => {
            let mut v = entry;
            v.push(" ");
            v.push(p);
            v
        }
        _ => entry,
    };
    let mut cmd = Command::new(program);
    cmd.args(prog_args)
        .env("LD_PRELOAD", preload)
        .env("CORONER_RUN_FD", report.as_raw_fd().to_string());
    if let Some(c) = &config {
        cmd.env(
            "CORONER_CONFIG",
            c.canonicalize().unwrap_or_else(|_| c.clone()),
        );
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", Path::new(program).display()))?;
    let pid = child.id();
    let status = child.wait().context("waiting for the program")?;

    let mut text = String::new();
    report.rewind().ok();
    report.read_to_string(&mut text).ok();
    let fields = parse_report(&text);
    if !quiet {
        eprint!(
            "{}",
            describe(program, pid, &status, fields.as_ref(), config.as_deref())
        );
    }
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
        (None, Some(s)) => ExitCode::from((128 + s).clamp(0, 255) as u8),
        _ => ExitCode::from(1),
    })
}

/// The runtime's `coroner-report v1 key=value...` line as a map.
pub fn parse_report(text: &str) -> Option<BTreeMap<String, String>> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("coroner-report "))?;
    Some(
        line.split_whitespace()
            .skip(2)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn describe(
    program: &OsStr,
    pid: u32,
    status: &std::process::ExitStatus,
    report: Option<&BTreeMap<String, String>>,
    config: Option<&Path>,
) -> String {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    let ended = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!(
            "was killed by {}{}",
            coroner_types::signal::signal_label(s),
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        _ => "ended".to_string(),
    };
    out += &format!("coroner: {name} (pid {pid}) {ended}\n");
    let Some(r) = report else {
        return out;
    };
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("-");
    let signo: i32 = get("signal").parse().unwrap_or(0);
    let code: i32 = get("code").parse().unwrap_or(0);
    let si = coroner_types::SigInfo::new_fault(signo, code, 0);
    out += &format!(
        "coroner: crashed: {} at {} in thread {} (reason: {})\n",
        si.describe(),
        get("addr"),
        get("tid"),
        get("reason")
    );
    let debugger = match get("debugger") {
        "launched" => match get("event") {
            "signalled" => {
                "launched; it attached and signalled the event (the crash went on under it)"
                    .to_string()
            }
            "timeout" => "launched; it did not answer in time and was stopped".to_string(),
            _ => "launched; it exited without signalling".to_string(),
        },
        "none" => "none configured".to_string(),
        "excluded" => "not launched: the executable is in the exclude list".to_string(),
        "declined" => "not launched: declined (auto = 0 and no yes on the terminal)".to_string(),
        "traced" => "not launched: a debugger was already attached".to_string(),
        other => other.to_string(),
    };
    out += &format!("coroner: debugger: {debugger}\n");
    let dump = match get("dump") {
        "written" => match find_dump(&name, pid, config) {
            Some(p) => format!("written: {}", p.display()),
            None => "written".to_string(),
        },
        "failed" => "the dumper failed (see its messages above)".to_string(),
        _ if get("event") == "signalled" => {
            "none (the debugger took the crash, so LocalDumps did not run)".to_string()
        }
        _ => "none (no [localdumps] for this program)".to_string(),
    };
    out += &format!("coroner: dump: {dump}\n");
    out
}

/// The dump the LocalDumps step wrote for `pid`: `<exe>_<pid>_*` in the
/// configured folder.
fn find_dump(exe: &str, pid: u32, config: Option<&Path>) -> Option<PathBuf> {
    let sources = crate::cmd::config::sources(config.map(Path::to_path_buf));
    let loaded = coroner_config::load(&sources).ok()?;
    let eff = loaded.config.effective(exe, false);
    let folder = eff.localdumps?.folder;
    let prefix = format!(
        "{}_{pid}_",
        crate::naming::sanitize_component(exe.as_bytes())
    );
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_parses() {
        let r = parse_report("noise\ncoroner-report v1 pid=5 tid=6 signal=11 code=1 addr=0x0 debugger=launched event=signalled dump=none\n").unwrap();
        assert_eq!(r["signal"], "11");
        assert_eq!(r["event"], "signalled");
        assert!(parse_report("nothing here").is_none());
    }

    #[test]
    fn elf_class_and_machine_of_this_test() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(elf_class_machine(&me), Some((2, 62)));
        assert_eq!(elf_class_machine(Path::new("/nonexistent")), None);
    }

    #[test]
    fn preload_tree_links_each_lib_expansion_to_its_class() {
        let dir = tempfile::tempdir().unwrap();
        let (host, i386) = (dir.path().join("l64.so"), dir.path().join("l32.so"));
        std::fs::write(&host, "64").unwrap();
        std::fs::write(&i386, "32").unwrap();
        let tree = PreloadTree::create(&host, &i386).unwrap();
        let entry = PathBuf::from(tree.entry());
        assert!(entry.ends_with("$LIB/libcoroner.so"), "{entry:?}");
        let root = entry.parent().unwrap().parent().unwrap().to_path_buf();
        let read =
            |sub: &str| std::fs::read_to_string(root.join(sub).join("libcoroner.so")).unwrap();
        for d in LIB_DIRS_64 {
            assert_eq!(read(d), "64", "{d}");
        }
        for d in LIB_DIRS_32 {
            assert_eq!(read(d), "32", "{d}");
        }
        assert_eq!(read("lib"), if lib_is_64_bit() { "64" } else { "32" });
        drop(tree);
        assert!(!root.exists(), "removed with the tree");
    }
}
