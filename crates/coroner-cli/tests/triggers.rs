//! The explicit triggers of the runtime's C API end to end, under `coroner
//! run`: a C program using `coroner.h` and linked with `-lcoroner`
//! (`crates/coroner-preload/tests/c/triggers.c`) calls
//! `coroner_launch_debugger` (Debugger.Launch), `coroner_fail_fast`
//! (FailFast) or `coroner_debug_break` (DebugBreak). The AeDebug debugger is
//! the `jitdbg` stand-in (records what it got, reads the JIT block, then
//! signals the event or exits), or the real `coroner dbg -p %ld -e %ld -g`
//! where what matters is what an attached debugger sees.

#[macro_use]
mod common;

use common::*;
use minidump::{Minidump, MinidumpException};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// What `triggers fail-fast` passes to `coroner_fail_fast`.
const MESSAGE: &str = "triggers: giving up on purpose";

/// The C program, compiled once per run beside the `coroner` binary (where
/// `libcoroner.so` is) and linked against that library.
fn triggers() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = coroner().parent().unwrap().to_path_buf();
            assert!(
                dir.join("libcoroner.so").is_file(),
                "libcoroner.so is not built next to coroner (cargo build -p coroner-preload)"
            );
            let preload = Path::new(env!("CARGO_MANIFEST_DIR")).join("../coroner-preload");
            let out_dir = dir.join("coroner-cli-c");
            std::fs::create_dir_all(&out_dir).unwrap();
            let out = out_dir.join("triggers");
            let tmp = out_dir.join(format!("triggers.{}.tmp", std::process::id()));
            let status = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
                .args(["-O0", "-g", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(preload.join("include"))
                .arg("-o")
                .arg(&tmp)
                .arg(preload.join("tests/c/triggers.c"))
                .arg("-L")
                .arg(&dir)
                .arg("-lcoroner")
                .arg(format!("-Wl,-rpath,{}", dir.display()))
                .status()
                .unwrap();
            assert!(status.success(), "compiling triggers.c: {status}");
            std::fs::rename(&tmp, &out).unwrap();
            out
        })
        .clone()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    out: PathBuf,
    dumps: PathBuf,
}

/// A config whose debugger is `debugger` (`None`: `jitdbg OUT MODE %ld %ld
/// %p`), with a LocalDumps folder if `localdumps`.
fn setup(jitdbg_mode: &str, debugger: Option<String>, localdumps: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jitdbg.out");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let debugger = debugger.unwrap_or_else(|| {
        format!(
            "'{}' '{}' {jitdbg_mode} %ld %ld %p",
            crasher().with_file_name("jitdbg").display(),
            out.display()
        )
    });
    let mut text = format!("[aedebug]\ndebugger = \"{debugger}\"\nauto = 1\ntimeout = 30\n");
    if localdumps {
        text += &format!(
            "[localdumps]\nfolder = \"{}\"\ntype = \"mini\"\ndumper = \"{}\"\ntimeout = 60\n",
            dumps.display(),
            coroner().display()
        );
    }
    let config = dir.path().join("coroner.toml");
    std::fs::write(&config, text).unwrap();
    Setup {
        dir,
        config,
        out,
        dumps,
    }
}

/// `coroner run --config … -- triggers MODE`, core files off, `stdin` fed
/// to the program (and so to a debugger it launches).
fn run(s: &Setup, mode: &str, stdin: &str) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -c 0; exec timeout 120 \"$@\"")
        .arg("sh")
        .arg(coroner())
        .arg("run")
        .arg("--config")
        .arg(&s.config)
        .arg("--")
        .arg(triggers())
        .arg(mode)
        .current_dir(s.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// jitdbg's lines, each as key → value.
fn launches(s: &Setup) -> Vec<BTreeMap<String, String>> {
    common::jitdbg_launches(&s.out)
}

fn dumps(s: &Setup) -> Vec<PathBuf> {
    common::dump_files(&s.dumps)
}

/// `coroner run`'s pid line: "coroner: triggers (pid N) …".
fn pid_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("coroner: triggers (pid "))
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no pid line in {stderr}"))
        .to_string()
}

/// The program's lines in order (a debugger's lines may be in between).
fn in_order(stdout: &str, lines: &[&str]) -> bool {
    let mut it = stdout.lines();
    lines.iter().all(|want| it.any(|l| l == *want))
}

/// The one jitdbg launch: a valid block for the main thread of `pid`.
fn one_launch(s: &Setup, pid: &str) -> BTreeMap<String, String> {
    let l = launches(s);
    assert_eq!(l.len(), 1, "exactly one debugger launch: {l:?}");
    let l = l.into_iter().next().unwrap();
    assert_eq!(l["argc"], "5");
    assert_eq!(l["pid"], pid);
    assert_eq!(l["tid"], pid, "the calling (main) thread");
    assert_eq!(
        (
            l["size"].as_str(),
            l["machine"].as_str(),
            l["version"].as_str()
        ),
        ("40", "62", "1")
    );
    assert_eq!(l["event_is_fd"], "1");
    l
}

#[test]
fn launch_debugger_returns_once_the_debugger_signalled_and_the_program_goes_on() {
    let s = setup("signal", None, true);
    let out = run(&s, "launch", "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        in_order(&stdout, &["launched=1", "after launch"]),
        "{stdout}"
    );
    let l = one_launch(&s, &pid_of(&stderr));
    // A synthetic SIGTRAP/SI_USER siginfo; the registers are getcontext's.
    assert_eq!((l["signo"].as_str(), l["code"].as_str()), ("5", "0"));
    assert!(
        !stderr.contains("crashed"),
        "no crash was reported: {stderr}"
    );
    assert!(dumps(&s).is_empty(), "Debugger.Launch writes no dump");
}

#[test]
fn launch_debugger_returns_0_when_the_debugger_does_not_signal_or_none_is_configured() {
    let s = setup("exit", None, false);
    let out = run(&s, "launch", "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        in_order(&stdout, &["launched=0", "after launch"]),
        "{stdout}"
    );
    one_launch(&s, &pid_of(&String::from_utf8_lossy(&out.stderr)));

    let none = setup("signal", None, false);
    std::fs::write(&none.config, "").unwrap();
    let out = run(&none, "launch", "");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(in_order(
        &String::from_utf8_lossy(&out.stdout),
        &["launched=0", "after launch"]
    ));
    assert!(launches(&none).is_empty());
}

#[test]
fn fail_fast_skips_the_program_handlers_and_reaches_debugger_and_dump() {
    let s = setup("exit", None, true);
    let out = run(&s, "fail-fast", "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGABRT),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("crashing"), "{stdout}");
    assert!(
        !stdout.contains("own handler"),
        "the program's SIGABRT/SIGSEGV handlers must not run: {stdout}"
    );
    assert!(stderr.contains(MESSAGE), "the message on stderr: {stderr}");
    assert!(stderr.contains("(reason: fail-fast)"), "{stderr}");
    let pid = pid_of(&stderr);
    let l = one_launch(&s, &pid);
    assert_eq!(
        (l["signo"].as_str(), l["code"].as_str()),
        ("6", &*libc::SI_TKILL.to_string())
    );
    let d = dumps(&s);
    assert_eq!(d.len(), 1, "the LocalDumps dump: {d:?}\n{stderr}");
    let md = Minidump::read_path(&d[0]).expect("dump parses");
    let exc: MinidumpException = md.get_stream().expect("exception stream");
    assert_eq!(
        exc.raw.exception_record.exception_code as i32,
        libc::SIGABRT
    );
    assert_eq!(exc.raw.thread_id.to_string(), pid);
    assert!(stderr.contains("dump: written"), "{stderr}");
    // The message and the reason are in the report store, from the runtime.
    let store = coroner_store::Store::open(&s.dumps).unwrap();
    let rows = store.list(&coroner_store::Filter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].jit, coroner_store::JitOutcome::Launched);
    for note in [
        format!("fail-fast: {MESSAGE}"),
        "runtime: reason fail-fast".into(),
    ] {
        assert!(rows[0].notes.contains(&note), "{note}: {:?}", rows[0].notes);
    }
}

#[test]
fn debug_break_without_a_debugger_launches_the_jit_debugger() {
    let s = setup("exit", None, false);
    let out = run(&s, "debug-break", "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTRAP),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("breaking") && !stdout.contains("after break"));
    assert!(stderr.contains("(reason: debug-break)"), "{stderr}");
    let l = one_launch(&s, &pid_of(&stderr));
    // A breakpoint instruction: SIGTRAP / SI_KERNEL.
    assert_eq!((l["signo"].as_str(), l["code"].as_str()), ("5", "128"));
}

/// Debugger.Launch with the real debugger, then DebugBreak under it: the
/// debugger stops at a plain breakpoint, `g` goes on after it, and the
/// runtime's crash path never runs.
#[test]
fn debug_break_under_an_attached_debugger_is_a_plain_breakpoint() {
    let dbg = format!("'{}' dbg -p %ld -e %ld -g", coroner().display());
    let s = setup("", Some(dbg), true);
    let out = run(&s, "launch-break", "g\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        in_order(
            &stdout,
            &["launched=1", "after launch", "breaking", "after break"]
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("Break instruction exception") && l.contains("SIGTRAP SI_KERNEL")),
        "the debugger reports a breakpoint: {stdout}"
    );
    assert!(!stderr.contains("crashed"), "{stderr}");
    assert!(dumps(&s).is_empty());
}
