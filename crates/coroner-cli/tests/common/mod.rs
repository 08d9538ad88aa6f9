//! Helpers shared by the end-to-end tests: run the real `coroner` binary
//! and the crasher, read dumps back with independent readers.
#![allow(dead_code, unused_macros)]

/// One `#[test]` per crasher kind, each calling `$check(kind, $arg)`:
/// the one list of kinds the end-to-end suites run.
macro_rules! crash_kind_tests {
    ($check:path, $arg:expr) => {
        crash_kind_tests!(@each $check, $arg,
            segv_null => "segv-null",
            segv_wild => "segv-wild",
            segv_noncanonical => "segv-noncanonical",
            write_ro => "write-ro",
            stack_overflow => "stack-overflow",
            sigbus => "sigbus",
            fpe_int_div => "fpe-int-div",
            sigill => "sigill",
            abort => "abort",
            assert => "assert",
            stack_chk => "stack-chk",
            rust_panic_abort => "rust-panic-abort",
            cxx_terminate => "cxx-terminate",
            threads_crash => "threads-crash",
            reraise => "reraise",
        );
    };
    (@each $check:path, $arg:expr, $($test:ident => $kind:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $check($kind, $arg);
            }
        )*
    };
}

pub mod dbg;
pub mod sysctl;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

pub fn coroner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coroner"))
}

pub fn crasher() -> PathBuf {
    coroner_crashers::crasher_path().expect("crasher binary")
}

/// Run a command line through `sh` with core files disabled, so crashes
/// delivered to the kernel leave nothing behind.
pub fn run_no_core(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -c 0; exec \"$@\"").arg("sh");
    cmd.args(args);
    cmd.output().expect("spawn sh")
}

/// Is an interop tool present? Missing tools fail the test when
/// `CORONER_REQUIRE_INTEROP=1` (CI), else the test says it skipped.
pub fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CORONER_REQUIRE_INTEROP").is_some_and(|v| v == "1") {
            panic!("{name} is required (CORONER_REQUIRE_INTEROP=1) but not on PATH");
        }
        eprintln!("SKIP: {name} not on PATH");
    }
    found
}

/// A `crasher live MIB THREADS` child, killed on drop.
pub struct Live {
    pub child: Child,
    pub pid: i32,
    pub marker: u64,
    stdin: Option<ChildStdin>,
}

impl Live {
    pub fn start(mib: usize, threads: usize) -> Live {
        let mut child = Command::new(crasher())
            .args(["live", &mib.to_string(), &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn crasher live");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready = coroner_crashers::parse_ready_line(&line)
            .unwrap_or_else(|| panic!("bad ready line {line:?}"));
        let stdin = child.stdin.take();
        Live {
            pid: ready.pid as i32,
            marker: ready.marker.expect("marker"),
            child,
            stdin,
        }
    }

    /// Process state letter from /proc/PID/stat (R, S, T, t, ...).
    pub fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.chars().next().unwrap()
    }

    pub fn task_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .unwrap()
            .count()
    }

    /// Close stdin and expect a clean exit: proves the process still runs.
    pub fn finish(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let st = self.child.wait().unwrap();
        assert!(st.success(), "live crasher ended with {st:?}");
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The one dump file in `dir` (no temporary file left beside it).
pub fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "expected exactly one file in {}: {files:?}",
        dir.display()
    );
    files.into_iter().next().unwrap()
}

/// The dump files in a LocalDumps folder (the report store `reports.db*`
/// beside them is not a dump).
pub fn dump_files(folder: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("reports.db")
        })
        .collect()
}

/// The stand-in debugger `jitdbg`'s output file: one line per launch, each
/// as key → value.
pub fn jitdbg_launches(out: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `coroner dump OPTS -e -x DIR crasher ARGS...` with core files off: the
/// crasher watched by coroner and dumped into `dir` if it crashes.
pub fn dump_on_crash(dir: &Path, opts: &[&str], crasher_args: &[&str]) -> Output {
    let crasher = crasher();
    let mut args: Vec<&std::ffi::OsStr> = vec![coroner_os(), "dump".as_ref()];
    args.extend(opts.iter().map(|o| std::ffi::OsStr::new(*o)));
    args.extend([
        "-e".as_ref(),
        "-x".as_ref(),
        dir.as_os_str(),
        crasher.as_os_str(),
    ]);
    args.extend(crasher_args.iter().map(|a| std::ffi::OsStr::new(*a)));
    run_no_core(&args)
}

fn coroner_os() -> &'static std::ffi::OsStr {
    std::ffi::OsStr::new(env!("CARGO_BIN_EXE_coroner"))
}
