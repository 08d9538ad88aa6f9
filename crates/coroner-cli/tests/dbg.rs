//! `coroner dbg` end to end: scripted sessions (commands on stdin) on
//! crasher programs, checked against what CDB would do.

#[macro_use]
mod common;

use common::dbg::{call_sites, count, dbg, os, text};
use common::{coroner, crasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[test]
fn sx_listing_after_changes_matches_cdb() {
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("exit"), os("0")],
        "sxe -c \"r eax\" av\nsx- -c \"r ebx\" av\nsxe ld:kernel32\nsxd -c2 \"k\" ii\nsxn 0n10\nsxi SIGUSR2\nsx\nq\n",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let start = out
        .find("  ct - Create thread")
        .unwrap_or_else(|| panic!("{}", text(&o)));
    let end = out[start..]
        .find("   * - Other exception")
        .map(|e| start + e)
        .unwrap_or_else(|| panic!("{}", text(&o)));
    let eol = out[end..].find('\n').map(|e| end + e).unwrap_or(out.len());
    insta::assert_snapshot!("sx_listing", &out[start..eol]);
}

#[test]
fn sxd_av_lets_a_recovering_handler_run_silently() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), os("-G"), c.as_os_str(), os("recover")],
        "g\n",
    );
    let t = text(&o);
    // Three faults, each reported once at first chance, none at second.
    assert_eq!(
        count(
            &t,
            "Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)"
        ),
        3,
        "{t}"
    );
    assert!(!t.contains("second chance"), "{t}");
    assert!(t.contains("recovered 3"), "{t}");
}

#[test]
fn sxd_av_breaks_at_the_second_chance_of_a_reraise() {
    let c = crasher();
    let o = dbg(
        &[os("-g"), os("-xd"), os("av"), c.as_os_str(), os("reraise")],
        "k\n.lastevent\ngn\nq\n",
    );
    let t = text(&o);
    assert!(t.contains("(!!! second chance !!!)"), "{t}");
    assert!(
        t.contains("Last event:") && t.contains("second chance"),
        "{t}"
    );
    // The second chance is the delivery after the handler reset SIG_DFL.
    let sites = call_sites(&String::from_utf8_lossy(&o.stdout), 0);
    assert!(!sites.is_empty(), "a stack at the second chance\n{t}");
    // Passing it on kills the target: the exit event reports the signal.
    assert!(t.contains("killed by signal 11 (SIGSEGV)"), "{t}");
}

#[test]
fn automatic_commands_run_under_sxi() {
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("reraise")],
        "sxi -c \".echo FIRST-CHANCE; g\" -c2 \".echo SECOND-CHANCE; r rip; gn\" av\ng\nq\n",
    );
    let t = text(&o);
    // The handled fault and the re-raised one each get Cmd1; only the
    // fatal one gets Cmd2.
    assert_eq!(count(&t, "FIRST-CHANCE"), 2, "{t}");
    assert_eq!(count(&t, "SECOND-CHANCE"), 1, "{t}");
    assert!(t.contains("rip="), "{t}");
    // sxi prints no event lines.
    assert!(!t.contains("Access violation"), "{t}");
    assert!(t.contains("killed by signal 11"), "{t}");
}

#[test]
fn gh_after_fixing_a_register_continues_the_program() {
    let c = crasher();
    // crash_recover_fault writes cl to [rax] with rax = 0: point rax at
    // the stack below the red zone, resume handled, and let the program's
    // handler take the other two faults.
    let o = dbg(
        &[os("-xe"), os("av"), os("-G"), c.as_os_str(), os("recover")],
        "g\nu @rip L1\nr rax=@rsp-0x400\ngh\nsxd av\ng\n",
    );
    let t = text(&o);
    assert!(t.contains("mov     byte ptr [rax],cl"), "{t}");
    assert!(t.contains("recovered 2"), "{t}");
}

#[test]
fn sxe_ld_breaks_when_dlopen_loads_libm() {
    let loader = crasher().with_file_name("dlopener");
    let o = dbg(
        &[os("-G"), loader.as_os_str(), os("libm.so.6")],
        "sxe ld:libm*\ng\nlm m libm*\n.lastevent\ng\n",
    );
    let t = text(&o);
    let modload = t
        .lines()
        .find(|l| l.starts_with("ModLoad:") && l.contains("libm.so.6"))
        .unwrap_or("");
    assert!(!modload.is_empty(), "{t}");
    assert!(t.contains("libm             ("), "lm m libm* lists it\n{t}");
    // It broke before the program said it loaded the library.
    let brk = t.find(modload).unwrap();
    let loaded = t.find("loaded libm.so.6").expect(&t);
    assert!(brk < loaded, "{t}");
}

#[test]
fn child_debugging_breaks_on_a_named_child() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child-crasher");
    std::os::unix::fs::symlink(crasher(), &child).unwrap();
    let c = crasher();
    let o = dbg(
        &[
            os("-G"),
            c.as_os_str(),
            os("spawn"),
            child.as_os_str(),
            os("exit"),
            os("3"),
        ],
        ".childdbg 1\nsxe cpr:child*\ng\n|\ng\n",
    );
    let t = text(&o);
    assert!(
        t.contains("Processes created by the current process will be debugged"),
        "{t}"
    );
    assert!(t.contains("Create process child-crasher"), "{t}");
    assert!(t.contains("child exited 3"), "{t}");
}

#[test]
fn thread_create_and_exit_events() {
    let c = crasher();
    let o = dbg(
        &[os("-G"), c.as_os_str(), os("thread-once")],
        "sxe ct\nsxe et\ng\n~\ng\n.lastevent\ng\n",
    );
    let t = text(&o);
    assert!(t.contains("Create thread 1:"), "{t}");
    assert!(t.contains("Exit thread 1:"), "{t}");
    assert!(
        t.contains("\"once\"") || t.contains("\"crasher\""),
        "thread list\n{t}"
    );
    assert!(t.contains("thread ran"), "{t}");
    // `.lastevent` names the event as `pid.tid: text`.
    let last = t
        .lines()
        .find(|l| l.starts_with("Last event: "))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(last.contains(": Exit thread 1:"), "{last}");
    assert!(!last.contains("):"), "{last}");
}

#[test]
fn the_same_stack_on_a_live_target_a_minidump_and_a_core() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("live.dmp");
    let core = dir.path().join("live.core");
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("segv-null")],
        &format!(
            "g\nk\n.dump /ma {}\n.dump /f {}\nq\n",
            md.display(),
            core.display()
        ),
    );
    let t = text(&o);
    assert!(t.contains("Dump successfully written"), "{t}");
    let live = call_sites(&String::from_utf8_lossy(&o.stdout), 0);
    assert!(live.len() >= 3, "{t}");
    assert!(live[0].starts_with("crasher!crash_segv_null"), "{live:?}");
    for f in [&md, &core] {
        let o = dbg(&[os("-z"), f.as_os_str()], "k\n.exr -1\nq\n");
        let t2 = text(&o);
        let frames = call_sites(&String::from_utf8_lossy(&o.stdout), 0);
        assert_eq!(frames, live, "{}\n{t2}", f.display());
        assert!(t2.contains("ExceptionCode: 0000000b (SIGSEGV)"), "{t2}");
        assert!(
            t2.contains("Attempt to write to address 0000000000000000"),
            "{t2}"
        );
    }
}

#[test]
fn execution_commands_refuse_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("x.dmp");
    let c = crasher();
    dbg(
        &[c.as_os_str(), os("segv-null")],
        &format!("g\n.dump {}\nq\n", md.display()),
    );
    let o = dbg(&[os("-z"), md.as_os_str()], "g\np\nr rax=1\n~\nq\n");
    let t = text(&o);
    assert_eq!(count(&t, "cannot run"), 1, "{t}");
    assert!(t.contains("cannot step"), "{t}");
    assert!(t.contains("cannot change registers"), "{t}");
    assert!(t.contains("Id: "), "{t}");
}

/// A JIT session launched by the runtime: `coroner run` with an AeDebug
/// debugger `coroner dbg -p %ld -e %ld -c "<cmds>"`.
fn jit_session(cmds: &str, dir: &Path) -> (String, Output) {
    jit_session_with(cmds, dir, "")
}

/// [`jit_session`] with more configuration (`[localdumps]`) after
/// `[aedebug]`.
fn jit_session_with(cmds: &str, dir: &Path, more_config: &str) -> (String, Output) {
    let config = dir.join("coroner.toml");
    std::fs::write(
        &config,
        format!(
            "[aedebug]\ndebugger = \"'{}' dbg -p %ld -e %ld -c '{cmds}'\"\nauto = 1\ntimeout = 60\n{more_config}",
            coroner().display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -c 0; exec timeout 120 \"$@\" </dev/null")
        .arg("sh")
        .arg(coroner())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--")
        .arg(crasher())
        .arg("segv-null");
    let out = cmd.output().unwrap();
    (text(&out), out)
}

#[test]
fn jdinfo_in_a_jit_session_shows_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (t, out) = jit_session(".jdinfo 0x%p; k; qd", dir.path());
    assert!(t.contains("----- Exception occurred on thread"), "{t}");
    assert!(t.contains("   ExceptionCode: 0000000b (SIGSEGV)"), "{t}");
    assert!(
        t.contains("Attempt to write to address 0000000000000000"),
        "{t}"
    );
    assert!(t.contains("----- Context record at"), "{t}");
    assert!(t.contains("crasher!crash_segv_null"), "{t}");
    // qd: the crash proceeds and the program dies of its SIGSEGV.
    assert_eq!(out.status.code(), Some(128 + 11), "{t}");
}

#[test]
fn dump_slash_j_in_a_jit_session_records_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let base: PathBuf = dir.path().join("AeDebug.dmp");
    let (t, _) = jit_session(
        &format!(".dump /j 0x%p /u {}; qd", base.display()),
        dir.path(),
    );
    assert!(t.contains("Dump successfully written"), "{t}");
    let dump = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("AeDebug_")
        })
        .expect(&t);
    let md = minidump::Minidump::read_path(&dump).unwrap();
    let exc: minidump::MinidumpException = md.get_stream().unwrap();
    assert_eq!(exc.raw.exception_record.exception_code, 11, "SIGSEGV");
    assert_eq!(exc.raw.exception_record.exception_flags, 1, "SEGV_MAPERR");
    assert_eq!(
        exc.raw.exception_record.exception_information[1], 0,
        "fault address"
    );
}

/// `q` in a JIT session ends the crashed program without a dump, and the
/// crash is filed as not reported (JIT outcome `quit`), as WER does when
/// the debugger quits; after `qd` the crash goes on.
#[test]
fn q_in_a_jit_session_is_filed_as_quit_and_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("dumps");
    let ld = format!("[localdumps]\nfolder = \"{}\"\n", folder.display());
    let (t, out) = jit_session_with("k; q", dir.path(), &ld);
    assert!(t.contains("crasher!crash_segv_null"), "{t}");
    use std::os::unix::process::ExitStatusExt;
    let killed = out.status.signal() == Some(9) || out.status.code() == Some(128 + 9);
    assert!(killed, "q kills the program: {:?}\n{t}", out.status);
    let store = coroner_store::Store::open(&folder).expect(&t);
    let rows = store.list(&coroner_store::Filter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}\n{t}");
    let r = &rows[0];
    assert_eq!(r.jit, coroner_store::JitOutcome::Quit, "{r:#?}");
    assert!(!r.reported, "{r:#?}");
    assert!(r.dumps.is_empty(), "{r:#?}");
    assert_eq!(
        (r.signal, r.si_code),
        (11, 1),
        "SIGSEGV SEGV_MAPERR: {r:#?}"
    );
    assert_eq!(r.fault_addr, Some(0), "{r:#?}");
    assert_eq!(r.tid, r.pid, "the main thread faulted: {r:#?}");
    assert!(r.exe.ends_with("/crasher"), "{r:#?}");
    assert!(r.cmdline.iter().any(|w| w == "segv-null"), "{r:#?}");
    assert_eq!(
        common::dump_files(&folder),
        Vec::<PathBuf>::new(),
        "no dump"
    );

    // qd: the crash goes on (to the kernel tier's report step); the
    // runtime does not take a LocalDumps dump of a crash its debugger took,
    // and the debugger files nothing.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("dumps");
    let ld = format!("[localdumps]\nfolder = \"{}\"\n", folder.display());
    let (t, out) = jit_session_with("qd", dir.path(), &ld);
    assert_eq!(out.status.code(), Some(128 + 11), "{t}");
    assert!(t.contains("dump: none (the debugger took the crash"), "{t}");
    assert!(!folder.join("reports.db").exists(), "{t}");
}

#[test]
fn attach_noninvasive_inspects_and_leaves_the_process_running() {
    let live = common::Live::start(4, 2);
    let pid = live.pid.to_string();
    let o = dbg(&[os("-pv"), os("-p"), os(&pid)], "~\ng\nk\nq\n");
    let t = text(&o);
    assert_eq!(count(&t, "Id: "), 3, "main + 2 workers\n{t}");
    assert!(t.contains("noninvasive session (-pv) cannot run"), "{t}");
    assert!(
        t.contains("live_main_wait") || t.contains("live_main_read_stdin"),
        "{t}"
    );
    // q in a -pv session detaches: the process runs on and exits cleanly.
    assert_ne!(live.state(), 't', "not left in a tracing stop");
    live.finish();
}

#[test]
fn attach_then_qd_detaches_and_q_kills() {
    let live = common::Live::start(4, 1);
    let pid = live.pid.to_string();
    let o = dbg(&[os("-p"), os(&pid)], "lm m crasher\nqd\n");
    let t = text(&o);
    assert!(t.contains("crasher"), "{t}");
    assert_ne!(live.state(), 't', "{t}");
    // A second debugger can attach now that the first is gone.
    let o = dbg(&[os("-p"), os(&pid)], "q\n");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let mut live = live;
    let st = live.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "q kills the target: {st:?}");
}

/// `eh` and `rp` were listed but never fired. `sxe eh` now breaks at the
/// throw (the engine's breakpoint on libstdc++'s `__cxa_throw`) with CDB's
/// first-chance text, in the thrower's stack, and `bl` does not list the
/// engine's breakpoint; `g` lets the throw go on to `std::terminate`.
#[test]
fn sxe_eh_breaks_at_a_cxx_throw() {
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("cxx-terminate")],
        "sxe eh\ng\nk\n.lastevent\n.echo ==bl==\nbl\n.echo ==end==\ng\nq\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        count(&t, "): C++ EH exception - code e06d7363 (first chance)"),
        1,
        "{t}"
    );
    assert!(t.contains("First chance exceptions are reported"), "{t}");
    assert!(t.contains("libstdc++!__cxa_throw:"), "{t}");
    assert!(
        t.contains("crasher!coroner_cxx_throw+"),
        "k: the thrower\n{t}"
    );
    let last = t.lines().find(|l| l.starts_with("Last event: ")).expect(&t);
    assert!(
        last.ends_with(": C++ EH exception - code e06d7363 (first chance)"),
        "{t}"
    );
    assert_eq!(common::dbg::section(&out, "bl"), "", "{t}");
    // The throw goes on: nobody catches it, std::terminate aborts.
    let brk = t.find("C++ EH exception").unwrap();
    let abort = t.find("Assertion failure - code 00000006").expect(&t);
    assert!(brk < abort, "{t}");
}

/// By default (`eh` second-chance break) a throw is not reported at all:
/// no breakpoint is set, so the program runs to its `std::terminate`.
#[test]
fn a_cxx_throw_is_printed_by_default_and_silent_under_sxi() {
    let c = crasher();
    // Default (second-chance break): CDB prints the first chance and goes
    // on; the break comes with the abort of std::terminate.
    let o = dbg(&[c.as_os_str(), os("cxx-terminate")], "g\nq\n");
    let t = text(&o);
    assert_eq!(
        count(&t, "): C++ EH exception - code e06d7363 (first chance)"),
        1,
        "{t}"
    );
    // Only the assertion (default: break) breaks in.
    assert_eq!(count(&t, "First chance exceptions are reported"), 1, "{t}");
    assert!(t.contains("terminate called after throwing"), "{t}");
    assert!(t.contains("Assertion failure - code 00000006"), "{t}");
    // sxi: nothing at all.
    let o = dbg(&[c.as_os_str(), os("cxx-terminate")], "sxi eh\ng\nq\n");
    let t = text(&o);
    assert!(!t.contains("C++ EH exception"), "{t}");
    assert!(t.contains("Assertion failure - code 00000006"), "{t}");
}

/// `-xe rp` (set before any module is loaded): the panic breaks at std's
/// `rust_panic`, in the panicking function's stack.
#[test]
fn xe_rp_breaks_at_a_rust_panic() {
    let c = crasher();
    let o = dbg(
        &[
            os("-g"),
            os("-xe"),
            os("rp"),
            c.as_os_str(),
            os("rust-panic-abort"),
        ],
        "k\ng\nq\n",
    );
    let t = text(&o);
    assert_eq!(
        count(&t, "): Rust panic - code 00000005 (first chance)"),
        1,
        "{t}"
    );
    // std's entry point: `rust_panic`, or `__rustc::rust_panic` (v0
    // mangling, newer toolchains).
    assert!(
        t.contains("crasher!__rustc::rust_panic:") || t.contains("crasher!rust_panic:"),
        "{t}"
    );
    assert!(t.contains("crasher!crash_rust_panic_abort+"), "k\n{t}");
    // std printed its message before it called `rust_panic`.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("deliberate panic"),
        "{t}"
    );
}

/// `bu` of a module not loaded yet failed (its symbol did not resolve).
/// CDB keeps it and places it when the module loads: here when `dlopen`
/// loads libm, before the program says it did; `dlclose` then unloads
/// libm with the breakpoint in it, and the program ends normally.
#[test]
fn bu_of_a_module_not_loaded_yet_is_placed_when_it_loads() {
    let loader = crasher().with_file_name("dlopener");
    let o = dbg(
        &[os("-G"), loader.as_os_str(), os("libm.so.6")],
        "bu libm!cos\n.echo ==before==\nbl\nsxe ld:libm*\ng\n\
         .echo ==loaded==\nbl\n.echo ==end==\nsxd ld\nbc *\ng\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!t.contains("could not be resolved"), "bu says nothing\n{t}");
    let before = common::dbg::section(&out, "before");
    assert!(before.contains("libm!cos"), "listed unresolved\n{t}");
    let loaded = common::dbg::section(&out, "loaded");
    let line = loaded.lines().find(|l| l.starts_with(" 0 e ")).expect(&t);
    assert!(line.contains(" libm!cos"), "resolved in libm\n{t}");
    let brk = t.find("==loaded==").expect(&t);
    let said = t.find("loaded libm.so.6").expect(&t);
    assert!(brk < said, "placed before the program went on\n{t}");
    assert!(
        t.contains("unloaded libm.so.6") && t.contains(", code 0"),
        "{t}"
    );
}

/// `bp5 ADDR` made breakpoint 0 (the id was ignored). It is breakpoint 5;
/// naming 5 again moves it (`breakpoint 5 redefined`), and a `bp` with no
/// id takes the first free one.
#[test]
fn bp_with_an_id_uses_it_and_redefines_that_breakpoint() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), os("-G"), c.as_os_str(), os("recover")],
        "bp5 crasher!crash_segv_null\n.echo ==one==\nbl\n.echo ==again==\n\
         bp5 crasher!crash_recover_fault\n.echo ==moved==\nbl\n\
         bp crasher!crash_segv_null\n.echo ==two==\nbl\n.echo ==hit==\ng\n\
         .echo ==end==\nbc *\ng\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let one: Vec<String> = common::dbg::section(&out, "one")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(one.len(), 1, "{t}");
    assert!(one[0].starts_with(" 5 e "), "{t}");
    assert!(one[0].ends_with("crasher!crash_segv_null"), "{t}");
    assert_eq!(
        common::dbg::section(&out, "again"),
        "breakpoint 5 redefined\n",
        "{t}"
    );
    let moved = common::dbg::section(&out, "moved");
    let moved: Vec<&str> = moved.lines().collect();
    assert_eq!(moved.len(), 1, "{t}");
    assert!(moved[0].starts_with(" 5 e "), "{t}");
    assert!(moved[0].ends_with("crasher!crash_recover_fault"), "{t}");
    let two: Vec<String> = common::dbg::section(&out, "two")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(two.len(), 2, "{t}");
    assert!(two[0].starts_with(" 0 e "), "{t}");
    assert!(two[0].ends_with("crasher!crash_segv_null"), "{t}");
    assert!(two[1].starts_with(" 5 e "), "{t}");
    assert!(
        common::dbg::section(&out, "hit").contains("Breakpoint 5 hit"),
        "{t}"
    );
    assert!(t.contains("recovered 3"), "{t}");
}
