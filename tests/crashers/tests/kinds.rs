//! Runs the built `crasher` for every kind and checks it does what the
//! table in `coroner_crashers` says: the death signal and crashing line for
//! all kinds, and (under ptrace) the exact `si_code`, `si_addr` and the pc
//! inside the named function for every kind that dies on the thread it
//! announced.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, Stdio};

use coroner_crashers::{
    parse_crashing_line, parse_ready_line, parse_threads_line, CrashKind, FaultAddr, KINDS,
    THREADS_CRASH_COUNT,
};

const CRASHER: &str = env!("CARGO_BIN_EXE_crasher");

/// A crasher command that writes no core file: RLIMIT_CORE is set to 0 in
/// the child only, between fork and exec.
fn crasher(args: &[&str]) -> Command {
    let mut cmd = Command::new(CRASHER);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setrlimit(2), which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("read crasher stdout");
    line
}

#[test]
fn every_kind_dies_by_its_signal_after_its_crashing_line() {
    for k in KINDS {
        let output = crasher(&[k.name]).output().expect("run crasher");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            Some(k.signal),
            "{}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
            k.name,
            output.status
        );
        let first = stdout.lines().next().unwrap_or_default();
        let line = parse_crashing_line(first)
            .unwrap_or_else(|| panic!("{}: bad crashing line {first:?}", k.name));
        assert_eq!(line.kind, k.name);
        assert!(line.pid > 0 && line.tid > 0, "{first}");
        if k.printed_tid_crashes {
            assert_eq!(line.tid, line.pid, "{}: crashes on the main thread", k.name);
        }
        match k.fault_addr {
            FaultAddr::Exact(addr) => assert_eq!(line.addr, Some(addr), "{first}"),
            FaultAddr::Printed => assert!(line.addr.is_some(), "{first}"),
            FaultAddr::Pc | FaultAddr::PerThread | FaultAddr::None => {
                assert_eq!(line.addr, None, "{first}")
            }
        }
    }
}

#[test]
fn crashing_line_pid_is_the_childs() {
    let mut child = crasher(&["segv-null"]).spawn().expect("spawn crasher");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let line = parse_crashing_line(&read_line(&mut out)).expect("crashing line");
    assert_eq!(line.pid, child.id());
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGSEGV));
}

#[test]
fn threads_crash_prints_every_thread_and_dies() {
    let mut child = crasher(&["threads-crash"]).spawn().expect("spawn crasher");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let line = parse_crashing_line(&read_line(&mut out)).expect("crashing line");
    assert_eq!(line.pid, child.id());
    let tids = parse_threads_line(&read_line(&mut out)).expect("threads line");
    assert_eq!(tids.len(), THREADS_CRASH_COUNT);
    assert!(tids.iter().all(|&t| t != line.pid && t != 0), "{tids:?}");
    let mut distinct = tids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), tids.len(), "{tids:?}");
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGSEGV));
}

#[test]
fn recover_survives_three_faults() {
    let output = crasher(&["recover"]).output().expect("run crasher");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let mut lines = stdout.lines();
    let line = parse_crashing_line(lines.next().unwrap_or_default()).expect("crashing line");
    assert_eq!((line.kind.as_str(), line.addr), ("recover", Some(0)));
    assert_eq!(lines.next(), Some("recovered 3"));
}

#[test]
fn live_waits_for_stdin_eof() {
    let mut child = crasher(&["live", "8", "2"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn crasher");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let ready = parse_ready_line(&read_line(&mut out)).expect("ready line");
    assert_eq!(ready.pid, child.id());
    assert_eq!(ready.threads, Some(2));
    let marker = ready.marker.expect("marker address");
    assert_ne!(marker, 0);
    let task = fs::read_dir(format!("/proc/{}/task", child.id())).expect("task dir");
    let mut names: Vec<String> = task
        .map(|t| {
            let path = t.expect("task entry").path().join("comm");
            fs::read_to_string(path)
                .expect("comm")
                .trim_end()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["crasher", "worker-0", "worker-1"]);
    // Still waiting: writing is fine, only EOF ends it.
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"not yet\n").expect("write stdin");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn sleep_exit_and_sigusr1_loop() {
    let mut child = crasher(&["sleep"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn crasher");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let ready = parse_ready_line(&read_line(&mut out)).expect("ready line");
    assert_eq!((ready.pid, ready.marker), (child.id(), None));
    drop(child.stdin.take());
    assert_eq!(child.wait().expect("wait").code(), Some(0));

    let status = crasher(&["exit", "7"]).status().expect("run crasher");
    assert_eq!(status.code(), Some(7));

    let output = crasher(&["sigusr1-loop", "100"])
        .output()
        .expect("run crasher");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert!(
        matches!(words[..], ["hits", "100", "ns_per_signal", n] if n.parse::<u64>().is_ok()),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &[][..],
        &["no-such-kind"],
        &["segv-null", "extra"],
        &["live", "0"],
    ] {
        let status = crasher(args).status().expect("run crasher");
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
}

/// The last signal the kernel delivered before the process died, seen
/// through ptrace: siginfo, pc, and the address `function` is loaded at.
struct Fatal {
    signo: i32,
    code: i32,
    addr: u64,
    pc: u64,
    function: std::ops::Range<u64>,
    crashing_line: String,
}

/// Runs `k` under PTRACE_TRACEME (only the main thread is traced), passes
/// every signal on, and returns the last one before death.
fn trace(k: &CrashKind) -> Fatal {
    let mut cmd = crasher(&[k.name]);
    // Nobody drains stderr while tracing; a panic backtrace must not block.
    cmd.stderr(Stdio::null());
    // SAFETY: runs in the forked child before exec; ptrace(PTRACE_TRACEME)
    // is a single async-signal-safe syscall that allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The tracer is this thread: every ptrace call below stays on it.
    // Reaped below by waitpid(2), which ptrace stops require; std's wait
    // would only find it gone.
    #[allow(clippy::zombie_processes)]
    let mut child: Child = cmd.spawn().expect("spawn traced crasher");
    let pid = child.id() as libc::pid_t;
    let (symbol_value, symbol_size) = elf_symbol(CRASHER, k.function)
        .unwrap_or_else(|| panic!("no symbol {} in the crasher", k.function));
    let mut last: Option<(libc::siginfo_t, u64, u64)> = None;
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        assert_eq!(waited, pid, "waitpid");
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            assert!(libc::WIFSIGNALED(status), "{}: exited", k.name);
            assert_eq!(libc::WTERMSIG(status), k.signal, "{}", k.name);
            break;
        }
        let sig = libc::WSTOPSIG(status);
        let mut pass = sig;
        if sig == libc::SIGTRAP && last.is_none() {
            // The stop at exec.
            pass = 0;
        } else {
            // SAFETY: an all-zero siginfo is valid plain data for the kernel
            // to overwrite.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is stopped in a signal-delivery stop and traced
            // by this thread; `info` is a valid siginfo_t to fill.
            let r = unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &mut info) };
            assert_eq!(r, 0, "PTRACE_GETSIGINFO");
            // SAFETY: as above; user_regs_struct is plain data.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is stopped and traced by this thread; `regs` is
            // a valid user_regs_struct to fill.
            let r = unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) };
            assert_eq!(r, 0, "PTRACE_GETREGS");
            last = Some((info, regs.rip, load_base(pid)));
        }
        // SAFETY: `pid` is stopped and traced by this thread; the data
        // argument is the signal to deliver (0 for none).
        let r = unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, pass as libc::c_long) };
        assert_eq!(r, 0, "PTRACE_CONT");
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let (info, pc, base) = last.unwrap_or_else(|| panic!("{}: no signal stop", k.name));
    let start = base + symbol_value;
    Fatal {
        signo: info.si_signo,
        code: info.si_code,
        // SAFETY: si_addr reads the first word of the union, which the
        // kernel filled (for tgkill'd signals it holds pid/uid, ignored).
        addr: unsafe { info.si_addr() } as u64,
        pc,
        function: start..start + symbol_size,
        crashing_line: stdout.lines().next().unwrap_or_default().to_string(),
    }
}

#[test]
fn fatal_siginfo_and_pc_match_the_table() {
    for k in KINDS.iter().filter(|k| k.printed_tid_crashes) {
        let fatal = trace(k);
        let line = parse_crashing_line(&fatal.crashing_line).expect("crashing line");
        assert_eq!(fatal.signo, k.signal, "{}", k.name);
        assert_eq!(Some(fatal.code), k.si_code, "{}", k.name);
        match k.fault_addr {
            FaultAddr::Exact(addr) => assert_eq!(fatal.addr, addr, "{}", k.name),
            FaultAddr::Printed => assert_eq!(Some(fatal.addr), line.addr, "{}", k.name),
            FaultAddr::Pc => assert_eq!(fatal.addr, fatal.pc, "{}", k.name),
            FaultAddr::PerThread | FaultAddr::None => {}
        }
        if k.frame0 {
            assert!(
                fatal.function.contains(&fatal.pc),
                "{}: pc {:#x} outside {} at {:#x?}",
                k.name,
                fatal.pc,
                k.function,
                fatal.function
            );
        }
    }
}

/// Load base of the crasher (a PIE): start of its mapping at offset 0.
fn load_base(pid: libc::pid_t) -> u64 {
    let exe = fs::canonicalize(CRASHER).expect("crasher path");
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    maps.lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let (range, offset, path) = (fields[0], fields[2], fields.get(5)?);
            if *path != exe.to_str()? || u64::from_str_radix(offset, 16).ok()? != 0 {
                return None;
            }
            u64::from_str_radix(range.split('-').next()?, 16).ok()
        })
        .expect("crasher mapping")
}

/// (st_value, st_size) of `name` in the ELF64 `.symtab` of `path`.
fn elf_symbol(path: &str, name: &str) -> Option<(u64, u64)> {
    let elf = fs::read(path).ok()?;
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let shoff = u64_at(0x28)? as usize;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let section = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum).find(|&i| u32_at(section(i) + 4) == Some(2))?;
    let (sym_off, sym_size) = (
        u64_at(section(symtab) + 0x18)? as usize,
        u64_at(section(symtab) + 0x20)? as usize,
    );
    let strtab = section(u32_at(section(symtab) + 0x28)? as usize);
    let str_off = u64_at(strtab + 0x18)? as usize;
    (sym_off..sym_off + sym_size).step_by(24).find_map(|sym| {
        let start = str_off + u32_at(sym)? as usize;
        let len = elf.get(start..)?.iter().position(|&b| b == 0)?;
        (&elf[start..start + len] == name.as_bytes())
            .then(|| Some((u64_at(sym + 8)?, u64_at(sym + 16)?)))?
    })
}

#[test]
fn crasher_path_finds_the_built_binary() {
    let found = coroner_crashers::crasher_path().expect("crasher path");
    assert_eq!(
        fs::canonicalize(found).expect("found path"),
        fs::canonicalize(CRASHER).expect("cargo path")
    );
}
