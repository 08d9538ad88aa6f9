//! Start-up (not the crash path): turn the configuration into the
//! [`Plan`] the crash path reads — argv pieces, where the spawned child
//! finds each program, the dumper command line, timeouts, the report fd.
//! Allocation is fine here; every syscall is paid by every process start
//! (the library is preloaded everywhere), so file lookups that only a crash
//! needs are left to the crash-time child ([`Program`]).

use crate::crash::{Cmd, Piece, Plan, Program};
use coroner_config::{DebuggerTemplate, Effective};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Environment variable naming the inherited fd the report line goes to
/// (ignored in `AT_SECURE` processes).
pub const ENV_RUN_FD: &str = "CORONER_RUN_FD";

/// Basename of `/proc/self/exe` (without a ` (deleted)` suffix).
pub(crate) fn exe_name() -> String {
    let path = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(" (deleted)")
        .map(str::to_owned)
        .unwrap_or(name)
}

/// Whether the executable's name changes anything for `config`: an
/// `exclude` list or `[localdumps.apps]` to match it against, or an
/// `auto = 0` question that shows it. Otherwise [`exe_name`] is not read.
pub(crate) fn needs_exe_name(config: &coroner_config::Config, is_32bit: bool) -> bool {
    let ae = match (&config.aedebug_i386, is_32bit) {
        (Some(i386), true) => i386,
        _ => &config.aedebug,
    };
    let asks = !ae.auto && ae.debugger.as_ref().is_some_and(|d| !d.is_empty());
    asks || !ae.exclude.is_empty()
        || config
            .localdumps
            .as_ref()
            .is_some_and(|ld| !ld.apps.is_empty())
}

/// Whether `sources` names no file that exists, so that loading would give
/// the default configuration: no override, no notes, and neither the system
/// nor the user file there (an `lstat` each, raw: std's `metadata` costs a
/// process start more than the call itself). Anything present, even a
/// dangling link, is left to `coroner_config::load` to judge.
pub(crate) fn no_config_file(sources: &coroner_config::Sources) -> bool {
    sources.env_override.is_none()
        && sources.notes.is_empty()
        && absent(&sources.system)
        && sources.user.as_deref().is_none_or(absent)
}

/// `lstat(path)` fails with `ENOENT` or `ENOTDIR`.
fn absent(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    let mut buf = [0u8; 4096];
    let Some(c) = buf.get_mut(..=bytes.len()) else {
        return false;
    };
    c[..bytes.len()].copy_from_slice(bytes);
    c[bytes.len()] = 0;
    if bytes.contains(&0) {
        return false;
    }
    // SAFETY: all-zero is a valid `stat` to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path in `buf`; `st` is a live
    // out-pointer.
    let r = unsafe {
        libc::fstatat(
            libc::AT_FDCWD,
            c.as_ptr().cast(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: this thread's errno slot.
    r != 0
        && matches!(
            unsafe { *libc::__errno_location() },
            libc::ENOENT | libc::ENOTDIR
        )
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn lit(bytes: &[u8]) -> Vec<Piece> {
    vec![Piece::Lit(bytes.to_vec().into_boxed_slice())]
}

/// Where the child finds `program`: as written when it has a `/` (execve
/// does no `PATH` search) or there is no `PATH` (a secure process), else on
/// `search_path`, at crash time.
fn lookup(program: &[u8], search_path: Option<&OsStr>) -> Vec<Program> {
    match search_path {
        Some(sp) if !program.contains(&b'/') => vec![Program::Search {
            name: program.into(),
            path: sp.as_bytes().into(),
        }],
        _ => vec![Program::AsIs],
    }
}

/// The debugger command: the template's words; its program is looked up
/// on `search_path` by the child when it is a bare name.
pub(crate) fn debugger_cmd(template: &DebuggerTemplate, search_path: Option<&OsStr>) -> Cmd {
    let words: Vec<Vec<Piece>> = template
        .words()
        .iter()
        .map(|w| {
            w.iter()
                .map(|p| match p {
                    coroner_config::Piece::Lit(s) => Piece::Lit(s.as_bytes().into()),
                    coroner_config::Piece::Pid => Piece::Pid,
                    coroner_config::Piece::Event => Piece::Event,
                    coroner_config::Piece::JitAddr => Piece::JitAddr,
                })
                .collect()
        })
        .collect();
    let programs = template
        .program()
        .map_or_else(Vec::new, |p| lookup(p.as_bytes(), search_path));
    Cmd { words, programs }
}

/// `<dumper> dump --jit-outcome=<o> --jit-reason=<r> [--jit-note=<msg>]
/// -accepteula <level options> -j <folder> %ld %ld %p`. The first three
/// words are filled in at crash time: what the debugger step came to (a
/// `coroner_store::JitOutcome` spelling), the report's reason, and the
/// FailFast message when there is one; `coroner dump` takes them only as
/// its first words. `programs` says where the child finds `dumper`.
pub(crate) fn dumper_cmd(
    dumper: &[u8],
    programs: Vec<Program>,
    level: &[&str],
    folder: &Path,
) -> Cmd {
    let word = |prefix: &[u8], piece: Piece| vec![Piece::Lit(prefix.into()), piece];
    let mut words = vec![
        lit(dumper),
        lit(b"dump"),
        word(b"--jit-outcome=", Piece::Outcome),
        word(b"--jit-reason=", Piece::Reason),
        word(b"--jit-note=", Piece::Note),
        lit(b"-accepteula"),
    ];
    words.extend(level.iter().map(|a| lit(a.as_bytes())));
    words.push(lit(b"-j"));
    words.push(lit(folder.as_os_str().as_bytes()));
    words.push(vec![Piece::Pid]);
    words.push(vec![Piece::Event]);
    words.push(vec![Piece::JitAddr]);
    Cmd { words, programs }
}

/// Where the child finds the dumper when the configuration names none:
/// `coroner` on `PATH`, else beside this library (or the executable that
/// links the runtime; through a symbolic link too, as `coroner run`'s
/// preload tree has), else beside `/proc/self/exe`.
pub(crate) fn default_dumper(search_path: Option<&OsStr>) -> Vec<Program> {
    let name: Box<[u8]> = b"coroner"[..].into();
    let mut programs = Vec::new();
    if let Some(sp) = search_path {
        programs.push(Program::Search {
            name: name.clone(),
            path: sp.as_bytes().into(),
        });
    }
    if let Some(object) = own_object_path() {
        programs.push(Program::Beside {
            object,
            name: name.clone(),
        });
    }
    programs.push(Program::Beside {
        object: b"/proc/self/exe"[..].into(),
        name,
    });
    programs
}

/// The path the loader gave the ELF object this code is in (libcoroner.so
/// when preloaded). `dladdr` reads the loader's tables: no syscall.
fn own_object_path() -> Option<Box<[u8]>> {
    // SAFETY: all-zero is a valid Dl_info (pointers null).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables for an address inside this
    // object and fills `info`, a live struct.
    let ok = unsafe { libc::dladdr(own_object_path as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, valid
    // while the object stays loaded (for the process's lifetime here).
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(name.to_bytes().into())
}

/// The plan for this executable from its effective settings.
pub(crate) fn plan_from(
    exe: &str,
    eff: &Effective<'_>,
    search_path: Option<&OsStr>,
    report_fd: libc::c_int,
) -> Plan {
    let dumper = eff.localdumps.as_ref().map(|ld| {
        let (program, programs) = match ld.dumper {
            Some(p) => (
                p.as_os_str().as_bytes(),
                lookup(p.as_os_str().as_bytes(), search_path),
            ),
            None => (&b"coroner"[..], default_dumper(search_path)),
        };
        dumper_cmd(program, programs, ld.level.dump_args(), ld.folder)
    });
    Plan {
        exe_name: exe.as_bytes().into(),
        debugger: eff.debugger.map(|t| debugger_cmd(t, search_path)),
        auto: eff.auto,
        excluded: eff.excluded,
        debugger_timeout_ms: millis(eff.timeout),
        dump_timeout_ms: eff.localdumps.as_ref().map_or(0, |ld| millis(ld.timeout)),
        dumper,
        report_fd,
    }
}

/// A plan that does nothing but report (used when the configuration could
/// not be loaded).
pub(crate) fn empty_plan(exe: &str, report_fd: libc::c_int) -> Plan {
    Plan {
        exe_name: exe.as_bytes().into(),
        debugger: None,
        auto: true,
        excluded: false,
        debugger_timeout_ms: 0,
        dumper: None,
        dump_timeout_ms: 0,
        report_fd,
    }
}

/// `CORONER_RUN_FD` (unless `AT_SECURE`), duplicated to a private
/// close-on-exec descriptor so the program closing or reusing the number
/// cannot redirect the report; -1 when unset, invalid or not open.
pub(crate) fn report_fd() -> libc::c_int {
    if coroner_sys::at_secure() {
        return -1;
    }
    let Some(fd) = std::env::var(ENV_RUN_FD)
        .ok()
        .and_then(|v| v.trim().parse::<libc::c_int>().ok())
        .filter(|fd| *fd >= 0)
    else {
        return -1;
    };
    // SAFETY: F_DUPFD_CLOEXEC on a caller-named descriptor number; fails
    // with EBADF if it is not open, touching no memory.
    unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_config::DumpLevel;

    fn words(cmd: &Cmd) -> Vec<String> {
        cmd.words
            .iter()
            .map(|w| {
                w.iter()
                    .map(|p| match p {
                        Piece::Lit(b) => String::from_utf8_lossy(b).into_owned(),
                        Piece::Pid => "<pid>".into(),
                        Piece::Event => "<event>".into(),
                        Piece::JitAddr => "<addr>".into(),
                        Piece::Outcome => "<outcome>".into(),
                        Piece::Reason => "<reason>".into(),
                        Piece::Note => "<note>".into(),
                    })
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn bare_programs_are_looked_up_on_path_by_the_child() {
        let t = DebuggerTemplate::parse("mydbg -p %ld -e %ld -c \".jdinfo 0x%p\"").unwrap();
        let cmd = debugger_cmd(&t, Some(OsStr::new("/a:/b")));
        assert_eq!(
            words(&cmd),
            [
                "mydbg",
                "-p",
                "<pid>",
                "-e",
                "<event>",
                "-c",
                ".jdinfo 0x<addr>"
            ]
        );
        assert_eq!(
            cmd.programs,
            [Program::Search {
                name: b"mydbg"[..].into(),
                path: b"/a:/b"[..].into()
            }]
        );
        // No PATH (a secure process): as written.
        assert_eq!(debugger_cmd(&t, None).programs, [Program::AsIs]);
        // A path is never searched.
        let t = DebuggerTemplate::parse("./x %ld").unwrap();
        assert_eq!(
            debugger_cmd(&t, Some(OsStr::new("/a"))).programs,
            [Program::AsIs]
        );
    }

    #[test]
    fn the_default_dumper_is_found_at_crash_time() {
        let p = default_dumper(Some(OsStr::new("/bin")));
        assert!(matches!(&p[0], Program::Search { name, .. } if &**name == b"coroner"));
        // The test binary links the runtime: its own path, then /proc/self/exe.
        let me = std::env::current_exe().unwrap();
        assert!(
            matches!(&p[1], Program::Beside { object, .. } if Path::new(OsStr::from_bytes(object)) == me),
            "{p:?}"
        );
        assert!(matches!(&p[2], Program::Beside { object, .. } if &**object == b"/proc/self/exe"));
    }

    #[test]
    fn dumper_command_line() {
        let cmd = dumper_cmd(
            b"/opt/coroner",
            vec![Program::AsIs],
            DumpLevel::Full.dump_args(),
            Path::new("/var/crash x"),
        );
        assert_eq!(
            words(&cmd),
            [
                "/opt/coroner",
                "dump",
                "--jit-outcome=<outcome>",
                "--jit-reason=<reason>",
                "--jit-note=<note>",
                "-accepteula",
                "-ma",
                "-j",
                "/var/crash x",
                "<pid>",
                "<event>",
                "<addr>"
            ]
        );
    }

    #[test]
    fn the_executable_name_is_read_only_when_it_matters() {
        let needs = |text: &str, is_32bit: bool| {
            let c = coroner_config::parse_str(text, Path::new("t.toml")).unwrap();
            needs_exe_name(&c, is_32bit)
        };
        assert!(!needs("", false));
        assert!(!needs(
            "[aedebug]\ndebugger = \"/bin/dbg %ld\"\n[localdumps]\nfolder = \"/tmp\"\n",
            false
        ));
        assert!(needs("[aedebug]\nexclude = [\"x\"]\n", false));
        assert!(needs(
            "[aedebug]\ndebugger = \"/bin/dbg %ld\"\nauto = 0\n",
            false
        ));
        assert!(
            !needs("[aedebug]\nauto = 0\n", false),
            "no debugger: nothing to ask"
        );
        assert!(needs(
            "[localdumps]\nfolder = \"/tmp\"\n[localdumps.apps.x]\ncount = 1\n",
            false
        ));
        let i386 = "[aedebug]\nexclude = [\"x\"]\n[aedebug.i386]\ndebugger = \"/bin/dbg32 %ld\"\n";
        assert!(needs(i386, false));
        assert!(
            needs(i386, true),
            "{i386}: the i386 key falls back to [aedebug]'s exclude?"
        );
    }

    #[test]
    fn no_config_file_means_what_load_gives_for_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources =
            coroner_config::Sources::system_only(Some(&dir.path().join("none.toml")), 0);
        sources.user = Some(dir.path().join("nodir/coroner.toml"));
        assert!(no_config_file(&sources));
        // What install would have built by loading: the default.
        let loaded = coroner_config::load(&sources).unwrap();
        assert_eq!(loaded.config, coroner_config::Config::default());
        assert!(loaded.warnings.is_empty());
        // Anything there (a dangling link too) is for load to judge.
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("none.toml")).unwrap();
        assert!(!no_config_file(&sources));
        let mut over = coroner_config::Sources::system_only(Some(&dir.path().join("x")), 0);
        over.env_override = Some(dir.path().join("x"));
        assert!(
            !no_config_file(&over),
            "a missing override is an error load reports"
        );
    }

    #[test]
    fn plan_follows_effective_settings() {
        let config = coroner_config::parse_str(
            "[aedebug]\ndebugger = \"/bin/dbg %ld\"\nauto = 0\nexclude = [\"bad*\"]\ntimeout = 3\n\
             [localdumps]\nfolder = \"/tmp/d\"\ntype = \"mini-plus\"\ndumper = \"/bin/dumper\"\ntimeout = 7\n",
            Path::new("test.toml"),
        )
        .unwrap();
        let plan = plan_from("good", &config.effective("good", false), None, 9);
        assert!(!plan.auto && !plan.excluded);
        assert_eq!(plan.debugger_timeout_ms, 3000);
        assert_eq!(plan.dump_timeout_ms, 7000);
        assert_eq!(plan.report_fd, 9);
        assert_eq!(
            words(plan.debugger.as_ref().unwrap()),
            ["/bin/dbg", "<pid>"]
        );
        assert_eq!(
            words(plan.dumper.as_ref().unwrap())[5..8],
            ["-accepteula", "-mp", "-j"]
        );
        let plan = plan_from("badapp", &config.effective("badapp", false), None, -1);
        assert!(plan.excluded);
        let none = coroner_config::Config::default();
        let plan = plan_from("x", &none.effective("x", false), None, -1);
        assert!(plan.debugger.is_none() && plan.dumper.is_none());
    }
}
