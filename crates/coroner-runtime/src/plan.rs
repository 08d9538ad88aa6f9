//! Start-up (not the crash path): turn the configuration into the
//! [`Plan`] the crash path reads — argv pieces with the program resolved to
//! an absolute path, the dumper command line, timeouts, the report fd.
//! Allocation and file access are fine here.

use crate::crash::{Cmd, Piece, Plan};
use coroner_config::{DebuggerTemplate, Effective};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn lit(bytes: &[u8]) -> Vec<Piece> {
    vec![Piece::Lit(bytes.to_vec().into_boxed_slice())]
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` looked up on `search_path` when it has no `/` (execve does no
/// PATH search); unchanged otherwise or when not found (the exec then fails
/// and the crash path carries on as for a debugger that exited).
pub(crate) fn resolve_program(name: &str, search_path: Option<&OsStr>) -> OsString {
    if name.contains('/') {
        return name.into();
    }
    search_path
        .and_then(|sp| coroner_config::find_in_path(name, sp))
        .map_or_else(|| name.into(), PathBuf::into_os_string)
}

/// The debugger command: the template's words, the program resolved.
pub(crate) fn debugger_cmd(template: &DebuggerTemplate, search_path: Option<&OsStr>) -> Cmd {
    let mut words: Vec<Vec<Piece>> = template
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
    if let (Some(program), Some(first)) = (template.program(), words.first_mut()) {
        *first = lit(resolve_program(program, search_path).as_bytes());
    }
    Cmd { words }
}

/// `<dumper> dump --jit-outcome=<o> --jit-reason=<r> [--jit-note=<msg>]
/// -accepteula <level options> -j <folder> %ld %ld %p`. The first three
/// words are filled in at crash time: what the debugger step came to (a
/// `coroner_store::JitOutcome` spelling), the report's reason, and the
/// FailFast message when there is one; `coroner dump` takes them only as
/// its first words.
pub(crate) fn dumper_cmd(dumper: &Path, level: &[&str], folder: &Path) -> Cmd {
    let word = |prefix: &[u8], piece: Piece| vec![Piece::Lit(prefix.into()), piece];
    let mut words = vec![
        lit(dumper.as_os_str().as_bytes()),
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
    Cmd { words }
}

/// The dumper when the configuration names none (and `coroner` is not on
/// `PATH`): `coroner` next to this library (or the executable that links
/// the runtime), else next to `/proc/self/exe`.
pub(crate) fn default_dumper() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = own_object_dir() {
        candidates.push(dir.join("coroner"));
    }
    if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("coroner"));
        }
    }
    candidates
        .into_iter()
        .find(|c| is_executable(c))
        .unwrap_or_else(|| PathBuf::from("coroner"))
}

/// Directory of the ELF object this code is in (libcoroner.so when
/// preloaded).
fn own_object_dir() -> Option<PathBuf> {
    // SAFETY: all-zero is a valid Dl_info (pointers null).
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads the loader's tables for an address inside this
    // object and fills `info`, a live struct.
    let ok = unsafe { libc::dladdr(own_object_dir as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, valid
    // while the object stays loaded (for the process's lifetime here).
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(OsStr::from_bytes(name.to_bytes()));
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    path.parent().map(Path::to_path_buf)
}

/// The plan for this executable from its effective settings.
pub(crate) fn plan_from(
    exe: &str,
    eff: &Effective<'_>,
    search_path: Option<&OsStr>,
    report_fd: libc::c_int,
) -> Plan {
    let dumper = eff.localdumps.as_ref().map(|ld| {
        let program = ld
            .dumper
            .map(Path::to_path_buf)
            .unwrap_or_else(default_dumper);
        dumper_cmd(&program, ld.level.dump_args(), ld.folder)
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
    fn debugger_program_is_resolved_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let dbg = dir.path().join("mydbg");
        std::fs::write(&dbg, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&dbg, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = DebuggerTemplate::parse("mydbg -p %ld -e %ld -c \".jdinfo 0x%p\"").unwrap();
        let cmd = debugger_cmd(&t, Some(dir.path().as_os_str()));
        assert_eq!(
            words(&cmd),
            [
                dbg.to_str().unwrap(),
                "-p",
                "<pid>",
                "-e",
                "<event>",
                "-c",
                ".jdinfo 0x<addr>"
            ]
        );
        // Not found: left as written (exec fails later, reported as exited).
        let cmd = debugger_cmd(&t, Some(OsStr::new("/nonexistent")));
        assert_eq!(words(&cmd)[0], "mydbg");
        // A path is never searched.
        assert_eq!(resolve_program("./x", Some(dir.path().as_os_str())), "./x");
    }

    #[test]
    fn dumper_command_line() {
        let cmd = dumper_cmd(
            Path::new("/opt/coroner"),
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
