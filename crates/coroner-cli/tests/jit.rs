//! The live JIT tier end to end: `coroner run` preloads the runtime, the
//! crasher crashes, the runtime launches the AeDebug debugger (here
//! `jitdbg`, which records what it was given and reads the JIT block
//! through /proc/PID/mem) against the still-live process, then either the
//! debugger signals the event (the fault repeats and kills the process) or
//! it exits (the runtime goes on to the LocalDumps dump). Either way the
//! process dies by its own signal.

#[macro_use]
mod common;

use common::*;
use coroner_crashers::{
    kind, parse_crashing_line, parse_threads_line, threads_crash_addr, FaultAddr,
};
use minidump::{Minidump, MinidumpException};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sibling(name: &str) -> PathBuf {
    crasher().with_file_name(name)
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    out: PathBuf,
    dumps: PathBuf,
}

/// A config whose debugger is `jitdbg OUT MODE %ld %ld %p`.
fn setup(mode: &str, extra_aedebug: &str, localdumps: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jitdbg.out");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    let mut text = format!(
        "[aedebug]\ndebugger = \"'{}' '{}' {mode} %ld %ld %p\"\nauto = 1\ntimeout = 20\n{extra_aedebug}\n",
        sibling("jitdbg").display(),
        out.display()
    );
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
        _dir: dir,
        config,
        out,
        dumps,
    }
}

fn run(s: &Setup, program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(coroner())
        .arg("run")
        .arg("--config")
        .arg(&s.config)
        .arg("--")
        .arg(program)
        .args(args);
    // No core files from the re-raised signals.
    let mut sh = Command::new("sh");
    sh.arg("-c").arg("ulimit -c 0; exec \"$@\"").arg("sh");
    sh.arg(cmd.get_program()).args(cmd.get_args());
    sh.output().unwrap()
}

/// jitdbg's lines, each as key → value.
fn launches(s: &Setup) -> Vec<BTreeMap<String, String>> {
    common::jitdbg_launches(&s.out)
}

fn dumps(s: &Setup) -> Vec<PathBuf> {
    common::dump_files(&s.dumps)
}

/// The one report the LocalDumps step filed beside the dump.
fn one_report(s: &Setup) -> coroner_store::Report {
    let store = coroner_store::Store::open(&s.dumps).expect("report store beside the dump");
    let mut rows = store.list(&coroner_store::Filter::default()).unwrap();
    assert_eq!(rows.len(), 1, "one report: {rows:#?}");
    rows.remove(0)
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

/// One crasher kind with the debugger signalling (`signal`) or declining
/// (`exit`, then the LocalDumps dump is checked).
fn check(kind_name: &str, mode: &str) {
    let k = kind(kind_name).unwrap();
    let s = setup(mode, "", true);
    let out = run(&s, &crasher(), &[kind_name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(128 + k.signal),
        "{kind_name}/{mode}: dies by its own signal\nstdout:{stdout}\nstderr:{stderr}"
    );
    let line = stdout
        .lines()
        .find_map(parse_crashing_line)
        .expect("crashing line");
    let threads = stdout.lines().find_map(parse_threads_line);
    let l = launches(&s);
    assert_eq!(
        l.len(),
        1,
        "{kind_name}/{mode}: exactly one debugger launch: {l:?}\n{stderr}"
    );
    let l = &l[0];
    assert_eq!(l["pid"], line.pid.to_string(), "{kind_name}: pid");
    assert_eq!(l["argc"], "5");
    assert_eq!(l["size"], "40", "{kind_name}: block size");
    assert_eq!(l["machine"], "62");
    assert_eq!(l["version"], "1");
    assert_eq!(
        l["event_is_fd"], "1",
        "{kind_name}: %ld event is an inherited eventfd"
    );
    assert_eq!(l["block"].len(), 16, "%p is 16 hex digits without 0x");
    let tid: u32 = l["tid"].parse().unwrap();
    if k.printed_tid_crashes {
        assert_eq!(tid, line.tid, "{kind_name}: faulting thread");
    } else {
        assert!(threads.clone().unwrap().contains(&tid));
    }
    assert_eq!(
        l["signo"].parse::<i32>().unwrap(),
        k.signal,
        "{kind_name}: signal"
    );
    if let Some(code) = k.si_code {
        assert_eq!(
            l["code"].parse::<i32>().unwrap(),
            code,
            "{kind_name}: si_code"
        );
    }
    let si_addr = hex(&l["si_addr"]);
    match k.fault_addr {
        FaultAddr::Exact(a) => assert_eq!(si_addr, a, "{kind_name}: fault address"),
        FaultAddr::Printed => assert_eq!(Some(si_addr), line.addr, "{kind_name}: fault address"),
        FaultAddr::Pc => assert_eq!(si_addr, hex(&l["exc"]), "{kind_name}: si_addr is the pc"),
        FaultAddr::PerThread => {
            let i = threads.unwrap().iter().position(|&t| t == tid).unwrap();
            assert_eq!(si_addr, threads_crash_addr(i));
        }
        FaultAddr::None => {}
    }
    let d = dumps(&s);
    if mode == "signal" {
        assert!(
            d.is_empty(),
            "{kind_name}: the debugger took it; no dump: {d:?}"
        );
        return;
    }
    assert_eq!(
        d.len(),
        1,
        "{kind_name}: one LocalDumps dump: {d:?}\n{stderr}"
    );
    let md = Minidump::read_path(&d[0]).expect("dump parses");
    let exc: MinidumpException = md.get_stream().expect("exception stream");
    assert_eq!(exc.raw.exception_record.exception_code as i32, k.signal);
    if let Some(code) = k.si_code {
        assert_eq!(exc.raw.exception_record.exception_flags as i32, code);
    }
    assert_eq!(
        exc.raw.thread_id, tid,
        "{kind_name}: dump's exception thread"
    );
    assert!(stderr.contains("dump: written"), "{stderr}");
    // The runtime's LocalDumps step filed the crash in the report store.
    let store = coroner_store::Store::open(&s.dumps).expect("report store beside the dump");
    let rows = store.list(&coroner_store::Filter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{kind_name}: one report: {rows:#?}");
    let r = &rows[0];
    assert_eq!(r.tier, coroner_store::Tier::Runtime);
    assert_eq!(
        (r.signal, r.tid as i32),
        (k.signal, tid as i32),
        "{kind_name}"
    );
    assert_eq!(r.jit, coroner_store::JitOutcome::Launched);
    assert_eq!(
        Some(r.dumps[0].name.as_str()),
        d[0].file_name().and_then(|n| n.to_str())
    );
    assert!(r.bucket.is_some(), "{kind_name}: analyzed: {r:#?}");
}

mod signalled {
    crash_kind_tests!(super::check, "signal");
}

mod declined_then_dumped {
    crash_kind_tests!(super::check, "exit");
}

/// std's own SIGSEGV handler resets to SIG_DFL and returns; the runtime
/// stands in for the default action.
#[test]
fn plain_rust_null_write_reaches_the_debugger() {
    let s = setup("exit", "", false);
    let out = run(&s, &sibling("stdcrash"), &[]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    let l = launches(&s);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["signo"], "11");
    assert_eq!(l[0]["code"], "1");
    assert_eq!(hex(&l[0]["si_addr"]), 0);
}

#[test]
fn auto_0_without_a_terminal_launches_nothing() {
    let s = setup("signal", "", true);
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config)
            .unwrap()
            .replace("auto = 1", "auto = 0"),
    )
    .unwrap();
    // setsid: a new session has no controlling terminal.
    let out = Command::new("setsid")
        .args(["-w", "sh", "-c", "ulimit -c 0; exec \"$@\"", "sh"])
        .arg(coroner())
        .args(["run", "--config"])
        .arg(&s.config)
        .arg("--")
        .arg(crasher())
        .arg("segv-null")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    assert!(launches(&s).is_empty(), "no debugger without a yes");
    assert_eq!(dumps(&s).len(), 1, "LocalDumps still writes the dump");
    assert!(String::from_utf8_lossy(&out.stderr).contains("declined"));
    assert_eq!(one_report(&s).jit, coroner_store::JitOutcome::Declined);
}

#[test]
fn excluded_executables_are_not_debugged() {
    let s = setup("signal", "exclude = [\"crasher\"]", true);
    let out = run(&s, &crasher(), &["segv-null"]);
    assert_eq!(out.status.code(), Some(139));
    assert!(launches(&s).is_empty());
    assert_eq!(dumps(&s).len(), 1);
    // The store said `launched` whenever a debugger was configured.
    assert_eq!(one_report(&s).jit, coroner_store::JitOutcome::Excluded);
}

/// With no `dumper` configured, the LocalDumps step runs the `coroner`
/// beside libcoroner.so. The runtime used to look for it at every process
/// start (a stat per PATH directory); now the crash-time child tries PATH,
/// then the library's directory (through `coroner run`'s symbolic link
/// when the i686 build is around), then the executable's.
#[test]
fn the_default_dumper_is_the_coroner_beside_the_library() {
    let s = setup("exit", "", true);
    let text = std::fs::read_to_string(&s.config).unwrap();
    let line = text.lines().find(|l| l.starts_with("dumper = ")).unwrap();
    std::fs::write(&s.config, text.replace(line, "")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -c 0; exec \"$@\"", "sh"])
        .arg(coroner())
        .args(["run", "--config"])
        .arg(&s.config)
        .arg("--")
        .arg(crasher())
        .arg("segv-null")
        // No coroner on this PATH: the one beside the library is found.
        .env("PATH", "/usr/bin:/bin");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{stderr}");
    assert!(stderr.contains("dump: written"), "{stderr}");
    assert_eq!(dumps(&s).len(), 1);
    assert_eq!(one_report(&s).jit, coroner_store::JitOutcome::Launched);
}

/// The store row's JIT outcome comes from the runtime: with no debugger
/// configured it is `none`, and the reason is in the notes.
#[test]
fn no_debugger_configured_is_none_in_the_store() {
    let s = setup("signal", "", true);
    let text = std::fs::read_to_string(&s.config).unwrap();
    let localdumps = &text[text.find("[localdumps]").unwrap()..];
    std::fs::write(&s.config, localdumps).unwrap();
    let out = run(&s, &crasher(), &["segv-null"]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("none configured"));
    let r = one_report(&s);
    assert_eq!(r.jit, coroner_store::JitOutcome::None);
    assert!(
        r.notes.iter().any(|n| n == "runtime: reason fault"),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_program_that_recovers_is_unaffected() {
    let s = setup("signal", "", true);
    let out = run(&s, &crasher(), &["recover"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("recovered 3"));
    assert!(launches(&s).is_empty());
    assert!(dumps(&s).is_empty());
}

#[test]
fn a_hanging_debugger_does_not_hang_the_target() {
    let s = setup("hang", "", true);
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config)
            .unwrap()
            .replace("timeout = 20", "timeout = 1"),
    )
    .unwrap();
    let out = run(&s, &crasher(), &["segv-null"]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    assert_eq!(launches(&s).len(), 1);
    assert_eq!(dumps(&s).len(), 1, "after the timeout the dump step runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer in time"));
    // The store said `launched` whenever a debugger was configured.
    assert_eq!(one_report(&s).jit, coroner_store::JitOutcome::TimedOut);
}

#[test]
fn a_bad_template_is_rejected_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[aedebug]\ndebugger = \"gdb -p %s\"\n").unwrap();
    let out = Command::new(coroner())
        .args(["run", "--config"])
        .arg(&config)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("2:"), "line 2 is named: {err}");
    assert!(err.contains("%s"), "{err}");
}

/// libcoroner.so has no TOML parser: the first start after a file is
/// written or edited runs `coroner config compile-plan`, which stores the
/// plan beside the file, so an edit takes effect at the very next start,
/// and later starts read the plan.
#[test]
fn an_edited_configuration_takes_effect_at_the_next_start() {
    let s = setup("signal", "exclude = ['nomatch']", false);
    let plan = coroner_config::plan::plan_path(&s.config);
    assert!(!plan.exists());
    let out = run(&s, &crasher(), &["segv-null"]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    assert_eq!(launches(&s).len(), 1, "{out:?}");
    let first = std::fs::read(&plan).expect("the compiler stored the plan");
    // Edited in place, same size: the crasher is excluded from now on.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let edited = text.replace("'nomatch'", "'crash**'");
    assert_eq!(edited.len(), text.len());
    std::fs::write(&s.config, edited).unwrap();
    let out = run(&s, &crasher(), &["segv-null"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{stderr}");
    assert_eq!(launches(&s).len(), 1, "no second launch: {stderr}");
    assert!(
        stderr.contains("the executable is in the exclude list"),
        "{stderr}"
    );
    assert_ne!(std::fs::read(&plan).unwrap(), first, "compiled again");
    // And back: the plan follows.
    std::fs::write(&s.config, text).unwrap();
    let out = run(&s, &crasher(), &["segv-null"]);
    assert_eq!(out.status.code(), Some(139), "{out:?}");
    assert_eq!(launches(&s).len(), 2, "{out:?}");
    assert_eq!(std::fs::read(&plan).unwrap(), first);
}

/// A configuration that does not load gives every process the line it
/// gave when the library parsed the TOML itself (now the compiler's
/// message), and changes nothing else: the program runs, a crash is
/// reported without a debugger and ends with the same signal.
#[test]
fn a_malformed_configuration_is_named_at_each_start_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[aedebug]\ndebugger = \"gdb -p %s\"\n").unwrap();
    let lib = coroner().with_file_name("libcoroner.so");
    let want = format!(
        "coroner: configuration not loaded, crash handling without debugger or dumps: {}:2:20: aedebug.debugger: bad debugger template\n",
        config.display()
    );
    let start = |program: &Path, args: &[&str]| {
        Command::new("sh")
            .args(["-c", "ulimit -c 0; exec \"$@\"", "sh"])
            .arg(program)
            .args(args)
            .env("LD_PRELOAD", &lib)
            .env("CORONER_CONFIG", &config)
            .output()
            .unwrap()
    };
    let out = start(Path::new("/bin/true"), &[]);
    assert_eq!(out.status.code(), Some(0));
    // `sh` has the library too, so the line may come twice; nothing else.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.is_empty() && stderr.split_inclusive('\n').all(|l| l == want),
        "{stderr}"
    );
    assert!(!coroner_config::plan::plan_path(&config).exists());
    let out = start(&crasher(), &["segv-null"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(11), "SIGSEGV: {stderr}");
    assert!(stderr.starts_with(&want), "{stderr}");
}

/// Says why a 32-bit test cannot run here and returns true (the test then
/// passes as a skip), unless `CORONER_REQUIRE_I386=1`.
fn skip_i386(what: &str) -> bool {
    if std::env::var_os("CORONER_REQUIRE_I386").is_some_and(|v| v == "1") {
        panic!("{what} is required (CORONER_REQUIRE_I386=1)");
    }
    eprintln!("SKIP: {what} is missing (scripts/setup.sh installs it)");
    true
}

/// The i686 runtime where `coroner run` looks for it: built by the cargo
/// running the tests into `target/i686-unknown-linux-gnu/<profile>/`, beside
/// `target/<profile>/coroner`. `None` (with a SKIP line) without the i686
/// Rust target.
fn build_i686_runtime() -> Option<PathBuf> {
    const TRIPLE: &str = "i686-unknown-linux-gnu";
    let libdir = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "target-libdir", "--target", TRIPLE])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_std = libdir
        .and_then(|d| std::fs::read_dir(d).ok())
        .is_some_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    if !has_std && skip_i386("the i686-unknown-linux-gnu Rust target") {
        return None;
    }
    let profile_dir = coroner().parent().unwrap().to_path_buf();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let target_dir = profile_dir.parent().unwrap();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--quiet", "-p", "coroner-preload", "--lib"])
        .args(["--target", TRIPLE, "--profile", &profile])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "building libcoroner.so for {TRIPLE}");
    Some(
        target_dir
            .join(TRIPLE)
            .join(profile_dir.file_name().unwrap())
            .join("libcoroner.so"),
    )
}

/// The i686 runtime built, and a 32-bit program that writes to NULL
/// compiled into `dir`; `None` (with a SKIP line) without the i686 target
/// or a `-m32` C compiler.
fn i686_runtime_and_program(dir: &Path) -> Option<PathBuf> {
    let lib32 = build_i686_runtime()?;
    assert!(lib32.is_file(), "{}", lib32.display());
    let null32 = dir.join("null32");
    let compiled = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-m32", "-O0", "-g", "-o"])
        .arg(&null32)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../coroner-preload/tests/c/null.c"
        ))
        .status()
        .is_ok_and(|s| s.success());
    if !compiled && skip_i386("a C compiler that links -m32 (gcc-multilib)") {
        return None;
    }
    Some(null32)
}

/// `coroner dump -j` writes dumps of x86-64 processes only. A 32-bit
/// process with `[localdumps]` ran it anyway (found it or not) and the
/// user read "the dumper failed (see its messages above)" with nothing, or
/// a message about a JIT block, above. Now the i686 runtime says why in
/// one line instead, and the process still dies by its signal.
#[test]
fn a_32_bit_crash_with_localdumps_says_why_there_is_no_dump() {
    let dir = tempfile::tempdir().unwrap();
    let Some(null32) = i686_runtime_and_program(dir.path()) else {
        return;
    };
    for dumper in [true, false] {
        let s = setup("exit", "", true);
        if !dumper {
            // The default dumper: the coroner of the library's installation.
            let text = std::fs::read_to_string(&s.config).unwrap();
            let line = text.lines().find(|l| l.starts_with("dumper = ")).unwrap();
            std::fs::write(&s.config, text.replace(line, "")).unwrap();
        }
        let out = run(&s, &null32, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(139), "{stderr}");
        let why = "coroner: no LocalDumps dump: this is a 32-bit process, and coroner dump writes dumps of x86-64 processes only\n";
        assert_eq!(stderr.matches(why).count(), 1, "{stderr}");
        assert!(!stderr.contains("JIT_DEBUG_INFO"), "{stderr}");
        assert!(stderr.contains("dump: the dumper failed"), "{stderr}");
        assert!(dumps(&s).is_empty());
    }
}

/// `coroner run` preloaded only the 64-bit runtime, so a 32-bit program
/// ignored it ("wrong ELF class") and crashed with no debugger. Now the
/// `$LIB` entry gives it the i686 build, which launches `[aedebug.i386]`.
#[test]
fn coroner_run_gives_a_32_bit_program_the_i386_runtime_and_debugger() {
    let dir = tempfile::tempdir().unwrap();
    let Some(null32) = i686_runtime_and_program(dir.path()) else {
        return;
    };
    let s = setup("signal", "", false);
    let out32 = dir.path().join("jitdbg32.out");
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config).unwrap()
            + &format!(
                "[aedebug.i386]\ndebugger = \"'{}' '{}' signal %ld %ld %p\"\n",
                sibling("jitdbg").display(),
                out32.display()
            ),
    )
    .unwrap();
    let out = run(&s, &null32, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{stdout}\n{stderr}");
    assert!(!stderr.contains("wrong ELF class"), "{stderr}");
    assert!(
        launches(&s).is_empty(),
        "the 64-bit debugger ran for a 32-bit program"
    );
    let text = std::fs::read_to_string(&out32).expect("the [aedebug.i386] debugger ran");
    let l: BTreeMap<&str, &str> = text
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let pid = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .expect("the program's pid line");
    assert_eq!(l["pid"], pid);
    assert_eq!(l["tid"], pid);
    assert_eq!(
        l["machine"], "3",
        "EM_386: the i686 runtime filled the block"
    );
    assert_eq!(l["block"].len(), 8, "%p of a 32-bit process: 8 hex digits");
    assert_eq!((l["signo"], l["code"]), ("11", "1"));
    assert_eq!(l["event_is_fd"], "1");
    assert!(
        stderr.contains("debugger: launched; it attached and signalled"),
        "{stderr}"
    );
}
