//! `coroner dbg` commands end to end, on real crasher programs: the `out`
//! and `ud` events, `.abandon` and `.detach /n`, breakpoints, `t`/`p`,
//! `g ADDR`, `gN`, the memory display units, `-cf`, Tools.ini and the
//! terminal prompt. Sessions that must look at the target between two
//! commands are conversations (`common::dbg::Conversation`): each command
//! is answered by an `.echo` marker, and the programs say `ready` before
//! anything is checked.

#[macro_use]
mod common;

use common::dbg::{call_sites, count, dbg, dbg_env, os, section, text, Conversation, Place};
use common::{coroner, crasher};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// `/proc/PID/stat`'s state letter, `None` once the process is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

fn tracer(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

/// A conversation with `crasher live 1 1` launched under the debugger
/// (through `sh`, so that its stdin is a FIFO this test holds open, not
/// the debugger's command pipe). Returns the session at the initial
/// breakpoint and the FIFO's write end: dropping it lets the program end.
fn launch_live_on_fifo(dir: &Path) -> (Conversation, std::fs::File) {
    let fifo = dir.join("stdin");
    mkfifo(&fifo);
    // Read and write: opening a FIFO that way does not wait for a reader.
    let hold = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let c = crasher();
    let mut s = Conversation::start(&[
        os("sh"),
        os("-c"),
        os("exec \"$0\" live 1 1 <\"$1\""),
        c.as_os_str(),
        fifo.as_os_str(),
    ]);
    let first = s.cmd(".echo at the initial breakpoint");
    assert!(
        first.contains("Break instruction exception - code 80000003 (first chance)"),
        "{}",
        s.text()
    );
    (s, hold)
}

/// The pid in `ready <pid> ...`.
fn ready_pid(out: &str) -> u32 {
    let line = out
        .lines()
        .find(|l| l.starts_with("ready "))
        .unwrap_or_else(|| panic!("no ready line in\n{out}"));
    coroner_crashers::parse_ready_line(line)
        .unwrap_or_else(|| panic!("bad ready line {line:?}"))
        .pid
}

#[test]
fn sxe_out_breaks_on_a_matching_line_with_the_program_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, hold) = launch_live_on_fifo(dir.path());
    s.cmd("sxe out:READY*");
    // The program prints its ready line, then blocks reading the FIFO:
    // the break comes from the line, nothing else.
    let out = s.cmd("g");
    let pid = ready_pid(&out);
    let last = s.cmd(".lastevent");
    assert!(
        last.starts_with("Last event: Debuggee output: ready "),
        "{}",
        s.text()
    );
    // Stopped in the debugger while it was running on.
    assert_eq!(state(pid), Some('t'), "{}", s.text());
    let threads = s.cmd("~");
    assert_eq!(count(&threads, "Id: "), 2, "main + 1 worker\n{}", s.text());
    // End of its input lets the program finish.
    drop(hold);
    let end = s.cmd("g");
    assert!(
        end.contains("Exit process") && end.contains(", code 0"),
        "{}",
        s.text()
    );
    s.cmd("q");
    let (st, t) = s.finish();
    assert!(st.success(), "{t}");
}

#[test]
fn sxn_out_passes_output_through_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, hold) = launch_live_on_fifo(dir.path());
    s.cmd("sxn out");
    let mark = s.send("g");
    // The line comes through while the program runs on (blocked on its
    // input): no break, so no marker yet.
    let out = s.until(|l| l.starts_with("ready ") || l == mark);
    assert!(out.contains("ready "), "{}", s.text());
    let pid = ready_pid(&out);
    assert_ne!(state(pid), Some('t'), "not stopped\n{}", s.text());
    drop(hold);
    let end = s.until(|l| l == mark);
    assert!(end.contains("Exit process"), "{}", s.text());
    let last = s.cmd(".lastevent");
    assert!(last.contains(": Exit process"), "{}", s.text());
    assert!(!s.transcript.contains("Debuggee output"), "{}", s.text());
    s.cmd("q");
    s.finish();
}

/// Regression: with `ct` ignored (the default), a program hung at its
/// first new thread: the creating thread stayed in its clone stop and the
/// new one in its first stop, and nothing resumed either.
#[test]
fn a_program_that_starts_a_thread_runs_on_with_ct_ignored() {
    let c = crasher();
    let o = dbg(&[os("-G"), c.as_os_str(), os("thread-once")], "g\n");
    let t = text(&o);
    assert!(t.contains("thread ran"), "{t}");
    assert!(t.contains("Exit process") && t.contains(", code 0"), "{t}");
    assert!(!t.contains("Create thread"), "{t}");
    // Its output came before the exit, as it was written.
    assert!(t.find("thread ran") < t.find("Exit process"), "{t}");
}

#[test]
fn sxe_ud_breaks_when_dlclose_unloads_libm() {
    let loader = crasher().with_file_name("dlopener");
    let o = dbg(
        &[os("-G"), loader.as_os_str(), os("libm.so.6")],
        "sxe ud:libm*\ng\n.echo ==unload==\n.lastevent\nlm m libm*\n.echo ==end==\ng\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let unload = out
        .lines()
        .find(|l| l.starts_with("Unload module ") && l.contains("libm.so.6 at "))
        .unwrap_or_else(|| panic!("{t}"));
    // `.lastevent` names the thread: `pid.tid: Unload module ...`.
    let at = section(&out, "unload");
    let last = at.lines().next().unwrap_or("");
    assert!(
        last.starts_with("Last event: ") && last.ends_with(&unload["Unload module".len()..]),
        "{last}\n{t}"
    );
    assert!(last.contains(": Unload module "), "{t}");
    // The module list no longer has it at the break.
    assert!(at.contains("module name"), "{t}");
    assert!(!at.lines().any(|l| l.contains("   libm ")), "{t}");
    // The program was stopped inside dlclose: it says so only after `g`.
    let brk = out.find(unload).unwrap();
    let closed = out
        .find("unloaded libm.so.6")
        .unwrap_or_else(|| panic!("{t}"));
    assert!(brk < closed, "{t}");

    // The default (`ud` ignored) says nothing.
    let o = dbg(&[os("-G"), loader.as_os_str(), os("libm.so.6")], "g\n");
    let t = text(&o);
    assert!(t.contains("unloaded libm.so.6"), "{t}");
    assert!(!t.contains("Unload module"), "{t}");
}

#[test]
fn abandon_leaves_the_process_stopped_for_another_debugger() {
    let live = common::Live::start(1, 1);
    let pid = live.pid.to_string();
    let o = dbg(&[os("-p"), os(&pid)], ".abandon\n");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // Stopped (T, not the tracing stop t) and no longer traced.
    assert_eq!(live.state(), 'T', "{t}");
    assert_eq!(tracer(live.pid as u32), "0", "{t}");
    // Another debugger can take it (CDB's -pe) and end it.
    let o = dbg(&[os("-p"), os(&pid)], "~\nq\n");
    let t = text(&o);
    assert_eq!(count(&t, "Id: "), 2, "{t}");
    let mut live = live;
    let st = live.child.wait().unwrap();
    assert_eq!(st.signal(), Some(9), "q kills it: {st:?}\n{t}");
}

/// Attach to a `crasher live`, send it SIGUSR1 (no handler: fatal), break
/// on it, and detach with `how`. Returns the transcript.
fn detach_at_sigusr1(live: &common::Live, how: &str) -> String {
    let pid = live.pid.to_string();
    let mut s = Conversation::start(&[os("-p"), os(&pid)]);
    s.cmd("sxe SIGUSR1");
    let st = Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let brk = s.cmd("g");
    assert!(
        brk.contains("code 0000000a (SIGUSR1 SI_USER) (first chance)"),
        "{}",
        s.text()
    );
    s.cmd(how);
    let (st, t) = s.finish();
    assert!(st.success(), "{t}");
    t
}

#[test]
fn detach_n_delivers_the_pending_signal() {
    let mut live = common::Live::start(1, 1);
    let t = detach_at_sigusr1(&live, ".detach /n");
    let st = live.child.wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGUSR1), "{st:?}\n{t}");
}

#[test]
fn detach_h_drops_the_pending_signal() {
    let live = common::Live::start(1, 1);
    let t = detach_at_sigusr1(&live, ".detach");
    assert_ne!(live.state(), 't', "{t}");
    // It runs on and ends normally at the end of its input.
    live.finish();
}

#[test]
fn breakpoints_list_disable_enable_clear_and_hit() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), os("-G"), c.as_os_str(), os("recover")],
        "bp crasher!crash_recover_fault\nbp crasher!crash_segv_null\n\
         .echo ==both==\nbl\nbd 0\n.echo ==disabled==\nbl\nbe 0\nbc 1\n\
         .echo ==edited==\nbl\n.echo ==where==\n? crasher!crash_recover_fault\n\
         .echo ==hit==\ng\n.echo ==rip==\nr rip\n.lastevent\nbc *\n\
         .echo ==cleared==\nbl\n.echo ==end==\ng\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // `? sym` prints `Evaluate expression: N = 00005555`55554000`.
    let addr = section(&out, "where")
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .to_string();
    assert_eq!(addr.len(), 17, "{t}");
    let both: Vec<String> = section(&out, "both").lines().map(String::from).collect();
    assert_eq!(both.len(), 2, "{t}");
    assert_eq!(
        both[0],
        format!(" 0 e {addr}     0001 (0001)  0:**** crasher!crash_recover_fault"),
        "{t}"
    );
    assert!(both[1].starts_with(" 1 e "), "{t}");
    assert!(
        both[1].ends_with("0001 (0001)  0:**** crasher!crash_segv_null"),
        "{t}"
    );
    assert!(
        section(&out, "disabled").starts_with(&format!(" 0 d {addr} ")),
        "{t}"
    );
    let edited = section(&out, "edited");
    assert_eq!(edited.lines().count(), 1, "{t}");
    assert!(edited.starts_with(&format!(" 0 e {addr} ")), "{t}");
    // Hit: the pc is at the breakpoint, shown as the function itself.
    let hit = section(&out, "hit");
    assert!(hit.contains("Breakpoint 0 hit"), "{t}");
    let place = Place::last_in(&hit).unwrap_or_else(|| panic!("{t}"));
    assert_eq!(place.symbol, "crasher!crash_recover_fault", "{t}");
    assert_eq!(
        format!(
            "{:08x}`{:08x}",
            place.address >> 32,
            place.address & 0xffff_ffff
        ),
        addr
    );
    let rip = section(&out, "rip");
    assert!(
        rip.contains(&format!("rip={}", addr.replace('`', ""))),
        "{t}"
    );
    assert!(
        rip.contains(": Break instruction exception - code 80000003 (first chance)"),
        "{t}"
    );
    assert_eq!(section(&out, "cleared"), "", "{t}");
    // Hit once: cleared before the other two calls; the program ends well.
    assert_eq!(count(&out, "Breakpoint 0 hit"), 1, "{t}");
    assert!(t.contains("recovered 3"), "{t}");
}

#[test]
fn breakpoint_commands_run_at_every_hit() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), c.as_os_str(), os("recover")],
        "bp crasher!crash_recover_fault \".echo HIT; r rip; g\"\ng\n.lastevent\ng\n",
    );
    let t = text(&o);
    assert_eq!(count(&t, "Breakpoint 0 hit"), 3, "{t}");
    assert_eq!(count(&t, "\nHIT\n"), 3, "{t}");
    // Each hit ran on by itself: the next stop is the end.
    assert!(t.contains("recovered 3"), "{t}");
    let last = t
        .lines()
        .find(|l| l.starts_with("Last event: "))
        .unwrap_or("");
    assert!(
        last.contains(": Exit process ") && last.ends_with("code 0"),
        "{t}"
    );
}

#[test]
fn gn_is_refused_at_a_breakpoint_and_gcap_n_passes_the_sigtrap_on() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), c.as_os_str(), os("recover")],
        "bp crasher!crash_recover_fault\ng\n.echo ==gn==\ngn\n.echo ==gN==\ngN\n\
         .echo ==exr==\n.exr -1\n.echo ==end==\ngn\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        section(&out, "gn").contains("gn is not allowed at a breakpoint"),
        "{t}"
    );
    // The program has no SIGTRAP handler: passing it on would end the
    // process, which is its second chance.
    let second = section(&out, "gN");
    assert!(
        second.contains("Break instruction exception - code 00000005 (SIGTRAP SI_KERNEL) (!!! second chance !!!)"),
        "{t}"
    );
    assert!(
        section(&out, "exr").contains("ExceptionCode: 00000005 (SIGTRAP)"),
        "{t}"
    );
    assert!(
        section(&out, "end").contains("killed by signal 5 (SIGTRAP)"),
        "{t}"
    );
    assert!(!t.contains("recovered"), "{t}");
}

/// Regression: `gn` at the initial breakpoint ran the program. CDB's
/// initial break is a breakpoint exception, where `gn` is refused and `gN`
/// must be typed (spec §5.2), like at any breakpoint.
#[test]
fn gn_is_refused_at_the_initial_breakpoint() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), c.as_os_str(), os("recover")],
        ".echo ==gn==\ngn\n.echo ==g==\ng\n.echo ==end==\nq\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let gn = section(&out, "gn");
    assert!(
        gn.contains(
            "^ gn is not allowed at a breakpoint: passing SIGTRAP on would kill the target; use gN"
        ),
        "{t}"
    );
    assert!(!gn.contains("Exit process"), "gn ran the program\n{t}");
    // Still at the initial break: `g` runs the program to its end.
    let g = section(&out, "g");
    assert!(g.contains("Exit process") && g.contains("code 0"), "{t}");
    assert!(t.contains("recovered 3"), "{t}");
}

#[test]
fn gcap_n_at_exceptions_first_chance_runs_the_handler_second_chance_ends_it() {
    let c = crasher();
    // First chance, not handled: the program's handler steps over each
    // fault.
    let o = dbg(
        &[os("-xe"), os("av"), os("-G"), c.as_os_str(), os("recover")],
        "g\ngN\ngN\ngN\n",
    );
    let t = text(&o);
    assert_eq!(count(&t, "First chance exceptions are reported"), 3, "{t}");
    assert!(t.contains("recovered 3"), "{t}");
    assert!(t.contains(", code 0"), "{t}");
    // Second chance: not handled ends the process.
    let o = dbg(
        &[os("-g"), os("-xd"), os("av"), c.as_os_str(), os("reraise")],
        "gN\n",
    );
    let t = text(&o);
    assert!(t.contains("(!!! second chance !!!)"), "{t}");
    assert!(t.contains("killed by signal 11 (SIGSEGV)"), "{t}");
}

/// `at` when the instruction about to run there satisfies `want`, else
/// `p` until one does; at most `limit` steps.
fn step_until(
    s: &mut Conversation,
    at: Place,
    limit: usize,
    want: impl Fn(&Place) -> bool,
) -> Place {
    if want(&at) {
        return at;
    }
    for _ in 0..limit {
        let out = s.cmd("p");
        let at = Place::last_in(&out).unwrap_or_else(|| panic!("no place after p\n{}", s.text()));
        if want(&at) {
            return at;
        }
    }
    panic!("not reached in {limit} steps\n{}", s.text());
}

fn calls_recover_fault(p: &Place) -> bool {
    p.instruction.starts_with("call ") && p.instruction.contains("crasher!crash_recover_fault")
}

/// `recover` calls `crash_recover_fault` three times: a loop in the debug
/// profile, three calls in a row in release (so there a return lands on
/// the next call, which the walk takes as it finds it).
#[test]
fn t_steps_into_a_call_and_p_steps_over_it() {
    let c = crasher();
    let mut s = Conversation::start(&[os("-xd"), os("av"), c.as_os_str(), os("recover")]);
    s.cmd("bp crasher!crash_recover_fault");
    assert!(s.cmd("g").contains("Breakpoint 0 hit"), "{}", s.text());
    s.cmd("bc *");
    // Back in the caller (`recover`), after the first call returned.
    let back = s.cmd("g @$ra");
    let ret = Place::last_in(&back).unwrap_or_else(|| panic!("{}", s.text()));
    assert_ne!(
        ret.function(),
        "crasher!crash_recover_fault",
        "{}",
        s.text()
    );
    // `t` at the next call goes into the callee.
    let call = step_until(&mut s, ret, 500, calls_recover_fault);
    let into = Place::last_in(&s.cmd("t")).unwrap_or_else(|| panic!("{}", s.text()));
    assert_eq!(Some(into.address), call.branch_target(), "{}", s.text());
    assert_eq!(into.symbol, "crasher!crash_recover_fault", "{}", s.text());
    let back = s.cmd("g @$ra");
    let ret = Place::last_in(&back).unwrap_or_else(|| panic!("{}", s.text()));
    assert_eq!(ret.address, call.address + call.len(), "{}", s.text());
    // `p` at the last call runs it whole (its fault is handled by the
    // program on the way) and stops at the next instruction.
    let call = step_until(&mut s, ret, 500, calls_recover_fault);
    let out = s.cmd("p");
    let over = Place::last_in(&out).unwrap_or_else(|| panic!("{}", s.text()));
    assert_eq!(over.address, call.address + call.len(), "{}", s.text());
    assert_eq!(over.function(), call.function(), "{}", s.text());
    assert!(!calls_recover_fault(&over), "a fourth call\n{}", s.text());
    assert_eq!(
        count(
            &out,
            "Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)"
        ),
        1,
        "{}",
        s.text()
    );
    let end = s.cmd("g");
    assert!(
        end.contains("Exit process") && end.contains("code 0"),
        "{}",
        s.text()
    );
    s.cmd("q");
    let (_, t) = s.finish();
    assert!(t.contains("recovered 3"), "{t}");
}

/// Regression: `t` on an instruction that faults, with the fault passed to
/// the program (`sxd av`), ran the program on to its end instead of
/// stopping: the step was resumed with PTRACE_CONT.
#[test]
fn stepping_a_faulting_instruction_stops_in_the_signal_handler() {
    let c = crasher();
    let mut s = Conversation::start(&[os("-xd"), os("av"), c.as_os_str(), os("recover")]);
    s.cmd("bp crasher!crash_recover_fault");
    let hit = s.cmd("g");
    let at = Place::last_in(&hit).unwrap_or_else(|| panic!("{}", s.text()));
    s.cmd("bc *");
    let fault = step_until(&mut s, at, 100, |p| p.bytes == "8808");
    assert_eq!(
        fault.instruction,
        "mov     byte ptr [rax],cl",
        "{}",
        s.text()
    );
    let out = s.cmd("t");
    assert!(
        out.contains("Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)"),
        "{}",
        s.text()
    );
    assert!(!out.contains("Exit process"), "{}", s.text());
    let at = Place::last_in(&out).unwrap_or_else(|| panic!("{}", s.text()));
    assert!(
        at.function().contains("recover_handler"),
        "{at:?}\n{}",
        s.text()
    );
    // Under the handler: the signal frame, then the faulting function.
    let k = s.cmd("k");
    let sites = call_sites(&k, 0);
    assert!(
        sites
            .iter()
            .any(|f| f.starts_with("crasher!crash_recover_fault+")),
        "{sites:?}\n{}",
        s.text()
    );
    let end = s.cmd("g");
    assert!(
        end.contains("Exit process") && end.contains("code 0"),
        "{}",
        s.text()
    );
    s.cmd("q");
    let (_, t) = s.finish();
    assert!(t.contains("recovered 3"), "{t}");
}

/// Regression: an address in a PLT stub took the name of the symbol before
/// the section (`crasher!_fini+0x70`); it is the stub, named after its
/// target as gdb names it, and `bp` takes that name.
#[test]
fn plt_stubs_are_named_after_the_function_they_jump_to() {
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("assert")],
        "bp crasher!__assert_fail@plt\ng\n.echo ==k==\nk 2\n\
         .echo ==u==\nu @$ip L1\nln @$ip+2\n.echo ==end==\nq\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Breakpoint 0 hit"), "{t}");
    let k = section(&out, "k");
    let sites = call_sites(&k, 0);
    assert_eq!(
        sites.first().map(String::as_str),
        Some("crasher!__assert_fail@plt"),
        "{t}"
    );
    let u = section(&out, "u");
    assert!(u.starts_with("crasher!__assert_fail@plt:\n"), "{t}");
    assert!(u.contains("crasher!__assert_fail@plt+0x2"), "{t}");
    assert!(!k.contains("_fini") && !u.contains("_fini+"), "{t}");
}

/// Regression: `lm` and `ModLoad` named the x86-64 vDSO `linux-gate.so`,
/// the i386 name (and what Breakpad-format minidumps record on every
/// architecture). It is `linux-vdso.so.1`, its own `DT_SONAME`: live, in a
/// minidump `.dump` wrote (which still records `linux-gate.so`), and in
/// `coroner analyze` of that dump.
#[test]
#[cfg(target_arch = "x86_64")]
fn the_vdso_is_linux_vdso_so_1_live_in_a_dump_and_in_analyze() {
    use minidump::{Minidump, MinidumpModuleList, Module as _};
    let dir = tempfile::tempdir().unwrap();
    let dmp = dir.path().join("vdso.dmp");
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("recover")],
        &format!(".echo ==lm==\nlm\n.dump /ma {}\nq\n", dmp.display()),
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.lines()
            .any(|l| l.starts_with("ModLoad: ") && l.ends_with("   linux-vdso.so.1")),
        "{t}"
    );
    let lm = |out: &str| {
        section(out, "lm")
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("linux-vdso"))
    };
    assert!(lm(&out), "{t}");
    assert!(!t.contains("linux-gate"), "{t}");

    // The file keeps the format's name for it.
    let dump = Minidump::read_path(&dmp).unwrap();
    let modules = dump.get_stream::<MinidumpModuleList>().unwrap();
    assert!(
        modules.iter().any(|m| m.code_file() == "linux-gate.so"),
        "{t}"
    );

    let o = dbg(&[os("-z"), dmp.as_os_str()], ".echo ==lm==\nlm\nq\n");
    let t = text(&o);
    assert!(lm(&String::from_utf8_lossy(&o.stdout)), "{t}");
    assert!(!t.contains("linux-gate"), "{t}");

    let o = Command::new(coroner())
        .arg("analyze")
        .arg(&dmp)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains(" linux-vdso.so.1 "), "{t}");
    assert!(!t.contains("linux-gate"), "{t}");
}

/// Regression: `g ADDR` left ADDR behind as a permanent breakpoint (listed
/// by `bl`, hit again by every later pass).
#[test]
fn g_break_addresses_are_one_shot() {
    let c = crasher();
    let o = dbg(
        &[os("-xd"), os("av"), c.as_os_str(), os("recover")],
        "bp crasher!crash_recover_fault\ng\nbc *\n.echo ==ret==\ng @$ra\n\
         .echo ==bl==\nbl\n.lastevent\n.echo ==end==\ng\n",
    );
    let t = text(&o);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let ret = Place::last_in(&section(&out, "ret")).unwrap_or_else(|| panic!("{t}"));
    assert_ne!(ret.function(), "crasher!crash_recover_fault", "{t}");
    let bl = section(&out, "bl");
    assert!(bl.starts_with("Last event: "), "nothing listed by bl\n{t}");
    assert!(
        bl.contains(": Break instruction exception - code 80000003 (first chance)"),
        "{t}"
    );
    // The two later returns to the same place do not stop.
    let end = section(&out, "end");
    assert_eq!(count(&end, "(first chance)"), 2, "{t}");
    assert!(!end.contains("rip="), "{t}");
    assert!(end.contains("Exit process"), "{t}");
}

#[test]
fn memory_display_units_on_a_live_target() {
    let live = common::Live::start(1, 1);
    let pid = live.pid.to_string();
    let m = format!("0x{:x}", live.marker);
    let a = format!(
        "{:08x}`{:08x}",
        live.marker >> 32,
        live.marker & 0xffff_ffff
    );
    // The marker word is 0x434f524f4e45524d ("MRENOROC" in memory).
    let o = dbg(
        &[os("-p"), os(&pid)],
        &format!("db {m} L8\ndw {m} L4\ndd {m} L2\ndq {m} L1\nqd\n"),
    );
    let t = text(&o);
    let lines: Vec<&str> = t.lines().filter(|l| l.starts_with(&a)).collect();
    let pad = " ".repeat(26);
    assert_eq!(
        lines,
        [
            format!("{a}  4d 52 45 4e 4f 52 4f 43{pad}MRENOROC").as_str(),
            format!("{a}  524d 4e45 524f 434f").as_str(),
            format!("{a}  4e45524d 434f524f").as_str(),
            format!("{a}  434f524f`4e45524d").as_str(),
        ],
        "{t}"
    );
    live.finish();
}

#[test]
fn command_file_runs_before_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let cf = dir.path().join("cmds.txt");
    std::fs::write(&cf, ".echo FROM-FILE\ng\n.echo AFTER-G\n").unwrap();
    let c = crasher();
    let o = dbg(
        &[os("-cf"), cf.as_os_str(), c.as_os_str(), os("segv-null")],
        ".echo FROM-STDIN\nk\nq\n",
    );
    let t = text(&o);
    let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("no {s}\n{t}"));
    let fault = at("Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)");
    assert!(at("FROM-FILE") < fault, "{t}");
    assert!(fault < at("AFTER-G"), "{t}");
    assert!(at("AFTER-G") < at("FROM-STDIN"), "{t}");
    let sites = call_sites(&String::from_utf8_lossy(&o.stdout), 0);
    assert!(
        sites
            .first()
            .is_some_and(|f| f.starts_with("crasher!crash_segv_null")),
        "{t}"
    );
    // A missing file is an error that names it.
    let o = dbg(
        &[
            os("-cf"),
            os("/nonexistent/cmds"),
            c.as_os_str(),
            os("exit"),
            os("0"),
        ],
        "q\n",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("/nonexistent/cmds"), "{}", text(&o));
}

#[test]
fn tools_ini_in_init_sets_filters_start_and_command_file() {
    let dir = tempfile::tempdir().unwrap();
    let cf = dir.path().join("startup.txt");
    std::fs::write(&cf, ".echo FROM-INIFILE\n.lastevent\n").unwrap();
    std::fs::write(
        dir.path().join("tools.ini"),
        format!(
            "[NMAKE]\nsxe: av\n[CDB]\nsxd: av\nStopFirst: FALSE\nIniFile: {}\nFrobnicate: 1\n",
            cf.display()
        ),
    )
    .unwrap();
    let c = crasher();
    let o = dbg_env(
        &[c.as_os_str(), os("recover")],
        "q\n",
        &[("INIT", dir.path().as_os_str())],
    );
    let t = text(&o);
    // sxd av: three first chances reported, none broken on; StopFirst
    // FALSE: no stop at the initial breakpoint either, so the first
    // prompt (and the IniFile commands) come at the exit.
    assert_eq!(
        count(
            &t,
            "Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)"
        ),
        3,
        "{t}"
    );
    assert!(!t.contains("First chance exceptions are reported"), "{t}");
    assert!(t.contains("recovered 3"), "{t}");
    let exit = t.find("Exit process").unwrap_or_else(|| panic!("{t}"));
    let file = t.find("FROM-INIFILE").unwrap_or_else(|| panic!("{t}"));
    assert!(exit < file, "{t}");
    assert!(
        t.contains("line 7: unknown keyword `Frobnicate` in [CDB]"),
        "{t}"
    );
    // Without INIT, av breaks at the first chance as usual.
    let o = dbg(&[c.as_os_str(), os("recover")], "g\nq\n");
    assert!(text(&o).contains("First chance exceptions are reported"));
}

/// `script` runs `coroner dbg` on a pseudo-terminal; everything it writes
/// there comes here in chunks.
struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    chunks: Receiver<String>,
    screen: String,
}

impl Terminal {
    fn start(command: &str, home: &Path) -> Terminal {
        let mut child = Command::new("timeout")
            .args(["120", "script", "-qec", command, "/dev/null"])
            .env("HOME", home)
            .env_remove("XDG_STATE_HOME")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux)");
        let mut out = child.stdout.take().unwrap();
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    return;
                }
            }
        });
        let input = child.stdin.take().unwrap();
        Terminal {
            child,
            input,
            chunks,
            screen: String::new(),
        }
    }

    /// Read until `needle` is on the screen after byte `from`; returns
    /// where it ends.
    fn wait_for(&mut self, needle: &str, from: usize) -> usize {
        loop {
            if let Some(i) = self.screen.get(from..).and_then(|s| s.find(needle)) {
                return from + i + needle.len();
            }
            match self.chunks.recv_timeout(Duration::from_secs(120)) {
                Ok(c) => self.screen.push_str(&c),
                Err(_) => panic!("no {needle:?} on the terminal:\n{}", self.screen),
            }
        }
    }

    /// Type a line once the prompt is there.
    fn type_line(&mut self, line: &str) {
        write!(self.input, "{line}\r").unwrap();
        self.input.flush().unwrap();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Regression: on a terminal the prompt panicked before its first line
/// (rustyline, built without file history, cannot load a history file).
#[test]
fn the_prompt_on_a_terminal_reads_commands_and_keeps_a_history() {
    if !common::tool("script") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "{} dbg {} exit 3",
        shell_quote(&coroner()),
        shell_quote(&crasher())
    );
    let mut term = Terminal::start(&command, home.path());
    // Each line is typed only once the prompt asks for it. The command's
    // output starts a line; the typed command has `.echo ` before it.
    let at = term.wait_for("0:000> ", 0);
    term.type_line(".echo PROMPT-OK");
    let at = term.wait_for("\nPROMPT-OK", at);
    let at = term.wait_for("0:000> ", at);
    term.type_line("g");
    let at = term.wait_for(", code 3", at);
    term.wait_for("0:000> ", at);
    term.type_line("q");
    let st = term.child.wait().unwrap();
    let screen = term.screen.clone() + &term.chunks.try_iter().collect::<String>();
    assert!(st.success(), "{st:?}\n{screen}");
    assert!(!screen.contains("panicked"), "{screen}");
    let history = std::fs::read_to_string(home.path().join(".local/state/coroner/dbg_history"))
        .unwrap_or_else(|e| panic!("no history file ({e})\n{screen}"));
    assert_eq!(history, ".echo PROMPT-OK\ng\nq\n", "{screen}");
}

/// `ah` at the `asrt` event of `crasher assert` (glibc `assert` →
/// `__assert_fail` → `abort` → SIGABRT): the setting is keyed by the
/// assertion's place, the caller found by unwinding out of libc, and wins
/// over `sx* asrt`.
#[test]
fn ah_settings_at_an_assertion_win_over_sx_asrt() {
    let c = crasher();
    // Where is the assertion? `ahi` with no address at the break takes it.
    let mut s = Conversation::start(&[c.as_os_str(), os("assert")]);
    let brk = s.cmd("g");
    assert!(
        brk.contains("Assertion failure - code 00000006 (SIGABRT SI_TKILL) (first chance)"),
        "{}",
        s.text()
    );
    s.cmd("ahi");
    let listed = s.cmd("ah");
    let (addr, how) = listed
        .trim()
        .split_once(" - ")
        .unwrap_or_else(|| panic!("{}", s.text()));
    assert_eq!(how, "ignore", "{}", s.text());
    // The place is a return address: after a call that does not return
    // (`__assert_fail`), it may be the first byte past the function.
    let near = s.cmd(&format!("ln {addr}-1"));
    let site = near.trim().rsplit(' ').next().unwrap_or("").to_string();
    assert!(site.starts_with("crasher!crash_assert+0x"), "{}", s.text());
    // ahd and ahc remove settings.
    s.cmd("ahd");
    assert_eq!(s.cmd("ah").trim(), "", "{}", s.text());
    s.cmd(&format!("ahb {addr}"));
    s.cmd("ahc");
    assert_eq!(s.cmd("ah").trim(), "", "{}", s.text());
    s.cmd("q");
    s.finish();

    // ahi there: the assertion (break by default) passes silently and the
    // program dies of its SIGABRT.
    let o = dbg(
        &[c.as_os_str(), os("assert")],
        &format!("ahi {site}+1\ng\n.lastevent\n"),
    );
    let t = text(&o);
    assert!(!t.contains("Assertion failure"), "{t}");
    assert!(t.contains("killed by signal 6 (SIGABRT)"), "{t}");

    // ahb there over sxi asrt: it breaks.
    let o = dbg(
        &[c.as_os_str(), os("assert")],
        &format!("sxi asrt\nahb {site}+1\ng\n.lastevent\n"),
    );
    let t = text(&o);
    assert!(
        t.contains(": Assertion failure - code 00000006 (SIGABRT SI_TKILL) (first chance)"),
        "{t}"
    );
    assert!(t.contains("First chance exceptions are reported"), "{t}");
    // And with no setting, sxi asrt says nothing at all.
    let o = dbg(&[c.as_os_str(), os("assert")], "sxi asrt\ng\n");
    let t = text(&o);
    assert!(!t.contains("Assertion failure"), "{t}");
    assert!(t.contains("killed by signal 6 (SIGABRT)"), "{t}");
}

/// What a round trip must keep of a minidump: the exception (code, flags,
/// address, thread), the thread ids in order, and the modules (file, base,
/// size).
#[derive(Debug, PartialEq, Eq)]
struct MinidumpFacts {
    exception: (u32, u32, u64, u32),
    threads: Vec<u32>,
    modules: Vec<(String, u64, u64)>,
}

fn minidump_facts(path: &Path) -> MinidumpFacts {
    use minidump::Module as _;
    use minidump::{Minidump, MinidumpException, MinidumpModuleList, MinidumpThreadList};
    let dump = Minidump::read_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let exc = dump.get_stream::<MinidumpException>().unwrap();
    let rec = &exc.raw.exception_record;
    let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
    let modules = dump.get_stream::<MinidumpModuleList>().unwrap();
    MinidumpFacts {
        exception: (
            rec.exception_code,
            rec.exception_flags,
            rec.exception_address,
            exc.thread_id,
        ),
        threads: threads.threads.iter().map(|t| t.raw.thread_id).collect(),
        modules: modules
            .iter()
            .map(|m| (m.code_file().into_owned(), m.base_address(), m.size()))
            .collect(),
    }
}

/// `k`, `.exr -1` and `~` of `coroner dbg -z FILE`, then SCRIPT; returns
/// (the frames, the whole transcript).
fn inspect_dump(file: &Path, script: &str) -> (Vec<String>, String) {
    let o = dbg(
        &[os("-z"), file.as_os_str()],
        &format!("k\n.echo ==exr==\n.exr -1\n.echo ==threads==\n~\n.echo ==end==\n{script}q\n"),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    (call_sites(&out, 0), text(&o))
}

/// `.dump` on a dump target (spec §8: "on a dump target a new (usually
/// smaller) dump is written from the old one"), which was refused. From an
/// ELF core: a minidump of any level. From a full minidump: a smaller one
/// (rebuilt from its streams and memory) or an ELF core; at its own level,
/// a copy. Each new dump keeps the exception, the threads and the modules
/// of its source, and `k` on it shows the source's frames; a minidump
/// cannot be grown.
#[test]
fn dump_from_a_dump_keeps_the_exception_threads_modules_and_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let c = crasher();
    let o = dbg(
        &[c.as_os_str(), os("threads-crash")],
        &format!(
            "g\n.dump /ma {}\n.dump /f {}\nq\n",
            p("full.dmp").display(),
            p("live.core").display()
        ),
    );
    assert_eq!(
        count(&text(&o), "Dump successfully written"),
        2,
        "{}",
        text(&o)
    );
    let full = minidump_facts(&p("full.dmp"));
    assert!(full.threads.len() > 1, "{full:?}");
    assert_eq!(full.exception.0, 11, "SIGSEGV: {full:?}");

    // From the ELF core.
    let (core_frames, t) = inspect_dump(
        &p("live.core"),
        &format!(
            ".dump /m {}\n.dump /ma {}\n",
            p("core-mini.dmp").display(),
            p("core-full.dmp").display()
        ),
    );
    assert!(core_frames.len() >= 3, "{t}");
    assert_eq!(count(&t, "Dump successfully written"), 2, "{t}");
    let core_sections = |t: &str| (section(t, "exr"), section(t, "threads"));
    for name in ["core-mini.dmp", "core-full.dmp"] {
        let facts = minidump_facts(&p(name));
        // The core names no vDSO, so neither does a minidump made from it.
        let mut want = full.modules.clone();
        want.retain(|(f, _, _)| f != "linux-gate.so");
        assert_eq!(facts.exception, full.exception, "{name}");
        // A core lists the signalled thread first (its order is checked
        // with `~` below); the threads are the same.
        let sorted = |v: &[u32]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(&facts.threads), sorted(&full.threads), "{name}");
        assert_eq!(facts.modules, want, "{name}");
        let (frames, t2) = inspect_dump(&p(name), "");
        assert_eq!(frames, core_frames, "{name}\n{t2}");
        assert_eq!(core_sections(&t2), core_sections(&t), "{name}\n{t2}");
    }

    // From the full minidump: smaller levels, an ELF core, and a copy.
    let (full_frames, t) = inspect_dump(
        &p("full.dmp"),
        &format!(
            ".dump /m {}\n.dump /mw {}\n.dump /ma {}\n.dump /f {}\n",
            p("mini.dmp").display(),
            p("plus.dmp").display(),
            p("copy.dmp").display(),
            p("full.core").display()
        ),
    );
    assert_eq!(full_frames, core_frames, "{t}");
    assert_eq!(count(&t, "Dump successfully written"), 4, "{t}");
    for name in ["mini.dmp", "plus.dmp", "copy.dmp"] {
        assert_eq!(minidump_facts(&p(name)), full, "{name}");
    }
    let size = |name: &str| std::fs::metadata(p(name)).unwrap().len();
    assert!(size("mini.dmp") * 4 < size("full.dmp"), "shrunk");
    assert_eq!(
        std::fs::read(p("copy.dmp")).unwrap(),
        std::fs::read(p("full.dmp")).unwrap()
    );
    for name in ["mini.dmp", "plus.dmp", "copy.dmp", "full.core"] {
        let (frames, t2) = inspect_dump(&p(name), "");
        assert_eq!(frames, full_frames, "{name}\n{t2}");
        let (exr, threads) = core_sections(&t2);
        assert_eq!(exr, section(&t, "exr"), "{name}\n{t2}");
        // An ELF core has no thread names and lists the signalled thread
        // first.
        if name.ends_with(".dmp") {
            assert_eq!(threads, section(&t, "threads"), "{name}\n{t2}");
        }
    }

    // A mini minidump lacks the memory of a bigger one.
    let (_, t) = inspect_dump(
        &p("mini.dmp"),
        &format!(".dump /ma {}\n", p("grown.dmp").display()),
    );
    assert!(
        t.contains("cannot write a full minidump from this mini minidump: it lacks the memory"),
        "{t}"
    );
    assert!(!p("grown.dmp").exists());
}

/// `.dump` on a core gdb wrote (`gcore`: its notes come after the memory):
/// the minidump made from it shows the core's frames, threads and modules.
#[test]
fn dump_from_a_gcore_core() {
    if !common::tool("gcore") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let live = common::Live::start(1, 2);
    let prefix = dir.path().join("g");
    let st = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(live.pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run gcore");
    assert!(st.success(), "gcore failed");
    live.finish();
    let core = dir.path().join(format!("g.{}", common_pid(&prefix)));
    let md = dir.path().join("from-gcore.dmp");
    let (frames, t) = inspect_dump(
        &core,
        &format!(
            ".echo ==lm==\nlm\n.echo ==dump==\n.dump /m {}\n",
            md.display()
        ),
    );
    assert!(t.contains("Dump successfully written"), "{t}");
    assert!(frames.len() >= 3, "{t}");
    let (frames2, t2) = inspect_dump(&md, ".echo ==lm==\nlm\n.echo ==dump==\n");
    assert_eq!(frames2, frames, "{t2}");
    assert_eq!(section(&t2, "threads"), section(&t, "threads"), "{t2}");
    assert_eq!(section(&t2, "lm"), section(&t, "lm"), "{t2}");
}

/// The pid suffix gcore gave the one core file whose name starts with
/// `prefix.`.
fn common_pid(prefix: &Path) -> String {
    let dir = prefix.parent().unwrap();
    let stem = format!("{}.", prefix.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(&stem)
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no core named {stem}* in {}", dir.display()))
}
