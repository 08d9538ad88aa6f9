//! libcoroner.so under LD_PRELOAD against the crasher and the example
//! programs: the debugger gets pid, an inherited eventfd and a valid JIT
//! block; the process then dies by its own signal; programs with their own
//! handlers are unaffected. The library and examples are (re)built with the
//! cargo running the tests, so a stale library is never tested.

use coroner_crashers::{crasher_path, parse_crashing_line};
use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;

/// The running test's target/<profile>.
fn profile_dir() -> PathBuf {
    common::profile_dir().0
}

/// target/<profile>/libcoroner.so, built (with the examples) once per run.
fn library() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            common::cargo_build(
                common::PRELOAD_MANIFEST,
                &["-p", "coroner-preload", "--lib", "--examples"],
                "libcoroner.so",
            );
            // The plan compiler the library runs when a configuration is
            // new or edited (it has no TOML parser): `coroner` beside it.
            common::build_coroner();
            let lib = profile_dir().join("libcoroner.so");
            assert!(lib.is_file(), "{} missing", lib.display());
            lib
        })
        .clone()
}

fn example(name: &str) -> PathBuf {
    library();
    profile_dir().join("examples").join(name)
}

struct Run {
    out: Output,
    report: Option<BTreeMap<String, String>>,
    elapsed: Duration,
}

/// Runs `program args` with the library preloaded, `config` as
/// CORONER_CONFIG and a report file on CORONER_RUN_FD.
fn run(dir: &Path, config: &str, program: &Path, args: &[&str], setsid: bool) -> Run {
    let cfg = dir.join("coroner.toml");
    std::fs::write(&cfg, config).unwrap();
    let report_path = dir.join("report");
    let report = std::fs::File::create(&report_path).unwrap();
    let report_fd = {
        use std::os::fd::AsRawFd;
        report.as_raw_fd()
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LD_PRELOAD", library())
        .env("CORONER_CONFIG", &cfg)
        .env("CORONER_RUN_FD", "9")
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec: dup2,
    // setrlimit, setsid.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(report_fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            if setsid {
                libc::setsid();
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = start.elapsed();
    drop(report);
    let text = std::fs::read_to_string(&report_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 1, "one report line at most: {text:?}");
    let report = lines.first().map(|l| {
        assert!(l.starts_with("coroner-report v1 "), "{l}");
        l.split(' ')
            .skip(2)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    });
    Run {
        out,
        report,
        elapsed,
    }
}

fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn crashing(out: &Output) -> coroner_crashers::CrashingLine {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(parse_crashing_line)
        .unwrap_or_else(|| panic!("no crashing line in {stdout:?}"))
}

fn probe_debugger(out: &Path, signal: bool) -> String {
    format!(
        "[aedebug]\ndebugger = \"'{}' '{}' {}%ld %ld %p\"\n",
        example("jit_probe").display(),
        out.display(),
        if signal { "signal " } else { "" }
    )
}

#[test]
fn debugger_gets_pid_eventfd_and_block_then_the_same_signal_kills() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &crasher_path().unwrap(),
        &["segv-null"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
    let c = crashing(&r.out);
    let p = fields(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(p["pid"], c.pid.to_string());
    assert_eq!(p["eventfd"], "true", "{p:?}");
    assert_eq!(p["size"], "40");
    assert_eq!(p["machine"], "62");
    assert_eq!(p["tid"], c.tid.to_string());
    assert_eq!(p["version"], "1");
    assert_eq!(p["signo"], "11");
    assert_eq!(p["code"], "1");
    assert_eq!(p["pc"], p["ucontext_pc"], "block PC = ucontext RIP");
    let rep = r.report.expect("report line");
    assert_eq!(rep["pid"], c.pid.to_string());
    assert_eq!(rep["tid"], c.tid.to_string());
    assert_eq!(rep["signal"], "11");
    assert_eq!(rep["code"], "1");
    assert_eq!(rep["addr"], "0x0");
    assert_eq!(rep["reason"], "fault");
    assert_eq!(rep["debugger"], "launched");
    assert_eq!(rep["event"], "exited");
    assert_eq!(rep["dump"], "none");
}

#[test]
fn abort_reaches_the_debugger_and_dies_by_sigabrt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &crasher_path().unwrap(),
        &["abort"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGABRT), "{:?}", r.out);
    let p = fields(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(p["signo"], "6");
    assert_eq!(p["code"], "-6");
    let rep = r.report.unwrap();
    assert_eq!(
        (rep["reason"].as_str(), rep["event"].as_str()),
        ("abort", "exited")
    );
}

#[test]
fn signalled_event_returns_and_the_fault_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let config = format!(
        "{}[localdumps]\nfolder = '{}'\ndumper = '{}'\n",
        probe_debugger(&out, true),
        dir.path().display(),
        example("jit_probe").display()
    );
    let r = run(
        dir.path(),
        &config,
        &crasher_path().unwrap(),
        &["segv-wild"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
    assert!(out.is_file());
    let rep = r.report.unwrap();
    assert_eq!(rep["event"], "signalled");
    assert_eq!(
        rep["dump"], "none",
        "no LocalDumps after a debugger signalled"
    );
    assert_eq!(
        rep["addr"],
        format!("{:#x}", coroner_crashers::SEGV_WILD_ADDR)
    );
    assert!(!dir.path().join("probe-dump.txt").exists());
}

#[test]
fn hung_debugger_times_out_and_the_dumper_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[aedebug]\ndebugger = 'sleep 60'\ntimeout = 1\n[localdumps]\nfolder = '{}'\ntype = 'full'\ndumper = '{}'\n",
        dir.path().display(),
        example("jit_probe").display()
    );
    let r = run(
        dir.path(),
        &config,
        &crasher_path().unwrap(),
        &["sigill"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGILL), "{:?}", r.out);
    assert!(r.elapsed < Duration::from_secs(30), "{:?}", r.elapsed);
    let rep = r.report.unwrap();
    assert_eq!(rep["debugger"], "launched");
    assert_eq!(rep["event"], "timeout");
    assert_eq!(rep["dump"], "written");
    let c = crashing(&r.out);
    let d = fields(&std::fs::read_to_string(dir.path().join("probe-dump.txt")).unwrap());
    assert_eq!(d["levels"], "-ma");
    // The runtime tells the dumper what the debugger step came to.
    assert_eq!(
        (d["outcome"].as_str(), d["reason"].as_str()),
        ("timed-out", "fault")
    );
    assert_eq!(d["pid"], c.pid.to_string());
    assert_eq!(d["signo"], "4");
    assert_eq!(d["eventfd"], "true");
}

#[test]
fn no_debugger_configured_dies_by_the_same_signal() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, sig) in [
        ("segv-null", libc::SIGSEGV),
        ("abort", libc::SIGABRT),
        ("fpe-int-div", libc::SIGFPE),
    ] {
        let r = run(dir.path(), "", &crasher_path().unwrap(), &[kind], false);
        assert_eq!(r.out.status.signal(), Some(sig), "{kind}: {:?}", r.out);
        let rep = r.report.unwrap();
        assert_eq!(rep["debugger"], "none", "{kind}");
        assert_eq!(rep["signal"], sig.to_string());
        assert_eq!(rep["dump"], "none");
    }
}

#[test]
fn excluded_and_declined_do_not_launch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let excluded = format!("{}exclude = ['crash*']\n", probe_debugger(&out, false));
    let r = run(
        dir.path(),
        &excluded,
        &crasher_path().unwrap(),
        &["segv-null"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV));
    assert_eq!(r.report.unwrap()["debugger"], "excluded");
    // auto = 0 and no controlling terminal (new session): "no".
    let ask = format!("{}auto = 0\n", probe_debugger(&out, false));
    let r = run(
        dir.path(),
        &ask,
        &crasher_path().unwrap(),
        &["segv-null"],
        true,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV));
    assert_eq!(r.report.unwrap()["debugger"], "declined");
    assert!(!out.exists());
}

/// The compiled plan beside the configuration (docs/jit.md, "Start-up"):
/// the first start writes it and later starts use it instead of the TOML,
/// but only while it was compiled from exactly the file's bytes and is
/// owned by the file's owner.
#[test]
fn the_plan_is_used_only_when_fresh_and_trusted() {
    use coroner_config::plan::{encode, plan_path, PlanView, Role, Stamp};
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let cfg = dir.path().join("coroner.toml");
    let plan = plan_path(&cfg);
    // Two configurations of the same size: the second excludes the crasher.
    let launches = format!("{}exclude = ['nomatch']\n", probe_debugger(&out, false));
    let excludes = format!("{}exclude = ['crash**']\n", probe_debugger(&out, false));
    assert_eq!(launches.len(), excludes.len());
    let crash = |text: &str| {
        let r = run(
            dir.path(),
            text,
            &crasher_path().unwrap(),
            &["segv-null"],
            false,
        );
        assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
        r.report.unwrap()["debugger"].clone()
    };
    assert_eq!(crash(&launches), "launched");
    let bytes = std::fs::read(&plan).expect("the first start wrote the plan");
    let stamp = [Stamp::of(Role::Override, launches.as_bytes())];
    assert!(PlanView::parse(&bytes).unwrap().compiled_from(&stamp));
    // Edited in place, same size: the stale plan is not used.
    assert_eq!(crash(&excludes), "excluded");
    // A plan stamped with the file's bytes is what a start believes: this
    // one says no debugger.
    let forged = encode(&coroner_config::Config::default(), &stamp);
    std::fs::write(&plan, &forged).unwrap();
    std::fs::write(&cfg, &launches).unwrap();
    assert_eq!(crash(&launches), "none", "the plan, not the TOML");
    // Owned by someone else, it is not used (and is replaced).
    // SAFETY: geteuid takes no arguments.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::write(&plan, &forged).unwrap();
        std::os::unix::fs::chown(&plan, Some(65534), Some(65534)).unwrap();
        assert_eq!(crash(&launches), "launched");
        assert_eq!(std::fs::metadata(&plan).unwrap().uid(), 0);
    }
}

#[test]
fn threads_crash_is_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &crasher_path().unwrap(),
        &["threads-crash"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    let tids = stdout
        .lines()
        .find_map(coroner_crashers::parse_threads_line)
        .unwrap();
    let rep = r.report.unwrap();
    let tid: u32 = rep["tid"].parse().unwrap();
    let index = tids.iter().position(|t| *t == tid).expect("a crash thread");
    assert_eq!(
        rep["addr"],
        format!("{:#x}", coroner_crashers::threads_crash_addr(index))
    );
    let p = fields(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(p["tid"], rep["tid"]);
}

#[test]
fn stack_overflow_runs_on_the_alternate_stack() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &crasher_path().unwrap(),
        &["stack-overflow"],
        false,
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
    assert_eq!(r.report.unwrap()["event"], "exited");
    assert!(out.is_file());
}

#[test]
fn program_with_its_own_handler_is_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &crasher_path().unwrap(),
        &["recover"],
        false,
    );
    assert!(r.out.status.success(), "{:?}", r.out);
    assert!(String::from_utf8_lossy(&r.out.stdout).contains("recovered 3"));
    assert!(r.report.is_none());
    assert!(!out.exists());

    let r = run(
        dir.path(),
        &probe_debugger(&out, false),
        &example("dispositions"),
        &["100000"],
        false,
    );
    assert!(r.out.status.success(), "{:?}", r.out);
    let stdout = String::from_utf8_lossy(&r.out.stdout);
    for expected in [
        "own_handler_in_kernel=true",
        "query_returns_own=true",
        "ignored_abort_query=true",
        "abort_ignored=true",
        "signal_returned_own=true",
        "query_after_dfl_is_dfl=true",
        &format!("thread_altstack={}", coroner_runtime::ALT_STACK_SIZE),
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "{expected} not in {stdout}"
        );
    }
    assert!(stdout.contains("faults 100000 "), "{stdout}");
    assert!(r.report.is_none());
    assert!(!out.exists());
}

/// `tests/c/NAME.c` compiled with the system C compiler (once per run) into
/// the profile directory.
fn c_program(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let dir = profile_dir().join("coroner-preload-c");
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let out = dir.join(name);
    // Built beside, then renamed: another run of these tests may be using
    // the previous binary.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = Command::new(cc)
        .args(["-O0", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "compiling {}: {status}", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    built.push((name.to_string(), out.clone()));
    out
}

/// Runs `program args` without coroner (core files off).
fn run_plain(program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).env_remove("LD_PRELOAD");
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// Runs a C test program without and with the runtime (the debugger a
/// non-signalling probe): the program prints the same lines either way and
/// dies by SIGSEGV either way, and under the runtime the last SIGSEGV
/// reached the postmortem step. Returns the runtime's run, its report and
/// what the debugger read.
fn same_with_and_without(
    program: &str,
    args: &[&str],
) -> (String, BTreeMap<String, String>, BTreeMap<String, String>) {
    let exe = c_program(program);
    let plain = run_plain(&exe, args);
    assert_eq!(plain.status.signal(), Some(libc::SIGSEGV), "{plain:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let r = run(dir.path(), &probe_debugger(&out, false), &exe, args, false);
    let stdout = String::from_utf8_lossy(&r.out.stdout).into_owned();
    assert_eq!(
        stdout,
        String::from_utf8_lossy(&plain.stdout),
        "{program} {args:?}: the program sees the same with and without coroner\n{:?}",
        r.out
    );
    assert_eq!(r.out.status.signal(), Some(libc::SIGSEGV), "{:?}", r.out);
    let report = r
        .report
        .unwrap_or_else(|| panic!("{program} {args:?}: the fatal SIGSEGV bypassed coroner"));
    let probe = fields(
        &std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{program} {args:?}: no debugger launched: {e}")),
    );
    (stdout, report, probe)
}

/// glibc's `sigset`/`sigignore`/`siginterrupt` set dispositions through its
/// internal `__sigaction`: before they were interposed the runtime did not
/// see them, so queries returned stale wishes and `sigset(SIGSEGV,
/// SIG_DFL)` + `raise` left coroner out of the crash.
#[test]
fn sigset_family_is_seen_like_sigaction() {
    let (stdout, rep, probe) = same_with_and_without("sigset", &[]);
    for expected in [
        "sigset_prev=dfl",
        "segv_query=on_segv",
        "kernel_is_handler=1",
        "hits=1",
        "restart_off=0",
        "restart_on=1",
        "abrt_query=ign",
        "abrt_survived=1",
        "bus_prev=hold",
        "bus_query=on_bus",
        "bus_hold_prev=on_bus",
        "bus_hold_again=hold",
        "segv_prev=on_segv",
        "segv_query_dfl=dfl",
        "raising",
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "{expected} not in {stdout}"
        );
    }
    assert_eq!(rep["signal"], "11");
    assert_eq!(rep["code"], libc::SI_TKILL.to_string(), "the raise()");
    assert_eq!(rep["reason"], "fault");
    assert_eq!(rep["debugger"], "launched");
    assert_eq!(probe["signo"], "11");
}

/// A one-shot handler (`SA_RESETHAND`, and `sysv_signal` which sets it) ran
/// once, the kernel reset the disposition to SIG_DFL behind the runtime's
/// back, and the repeated fault killed the process without the postmortem
/// step. The runtime now keeps its own handler in the kernel and does the
/// reset itself; the handler's mask and `SA_NODEFER` still hold.
#[test]
fn one_shot_handlers_run_once_then_the_fault_reaches_the_debugger() {
    for (mode, hits, segv_blocked, usr1_blocked) in [
        ("sysv", 1, 0, 0),
        ("__sysv", 1, 0, 0),
        ("resethand", 1, 1, 1),
        ("nodefer", 1, 0, 1),
        ("rearm", 3, 0, 0),
    ] {
        let (stdout, rep, probe) = same_with_and_without("resethand", &[mode]);
        for hit in 1..=hits {
            let expected = format!(
                "hit {hit} segv_blocked={segv_blocked} usr1_blocked={usr1_blocked} query=dfl"
            );
            assert!(
                stdout.lines().any(|l| l == expected),
                "{mode}: {expected} not in {stdout}"
            );
        }
        assert!(!stdout.contains(&format!("hit {}", hits + 1)), "{mode}");
        assert_eq!(
            (rep["signal"].as_str(), rep["code"].as_str()),
            ("11", "1"),
            "{mode}: the repeated fault"
        );
        assert_eq!(rep["debugger"], "launched", "{mode}");
        assert_eq!(
            (probe["signo"].as_str(), probe["code"].as_str()),
            ("11", "1")
        );
    }
}

/// libcoroner.so now carries libgcc's unwinder (static `libgcc_eh`, no
/// `libgcc_s.so.1`: it cost every process start its constructor). A thread
/// ended by `pthread_exit` or cancelled is unwound by glibc through the
/// runtime's `pthread_create` wrapper with the system's `libgcc_s`; both
/// must still run their cleanup handlers and end as without the runtime.
#[test]
fn pthread_exit_and_cancel_unwind_through_the_thread_wrapper() {
    let (stdout, rep, _) = same_with_and_without("threads", &[]);
    assert_eq!(
        stdout,
        "cleanup exit\nexited 7\ncleanup cancel\ncancelled 1\n"
    );
    assert_eq!(rep["signal"], "11");
}
