//! Test helper (built by `cargo test`): a stand-in AeDebug debugger and
//! LocalDumps dumper that reads the JIT block out of the crashing process
//! and writes what it found as one `key=value` line. The siginfo and
//! ucontext are decoded for the block's machine: x86-64 (62) or i386 (3).
//!
//! - debugger: `jit_probe OUT [signal] PID EVENT ADDR` — writes OUT; with
//!   `signal`, also signals the event (as a debugger that attached would);
//! - dumper: `jit_probe dump --jit-outcome=O --jit-reason=R [--jit-note=M]
//!   -accepteula LEVEL... -j FOLDER PID EVENT ADDR` — writes
//!   `FOLDER/probe-dump.txt`: `outcome=O reason=R levels=LEVEL,...` first.

use coroner_types::jit::LinuxJitDebugInfo;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

fn probe(pid: &str, event: &str, addr: &str) -> String {
    let mem = File::open(format!("/proc/{pid}/mem")).expect("open mem");
    let at = u64::from_str_radix(addr, 16).expect("hex address");
    let mut raw = [0u8; 40];
    mem.read_exact_at(&mut raw, at).expect("read block");
    let block = LinuxJitDebugInfo::parse(&raw).expect("valid block");
    let mut si = [0u8; 24];
    mem.read_exact_at(&mut si, block.siginfo)
        .expect("read siginfo");
    let word = |i: usize| i32::from_ne_bytes(si[i * 4..i * 4 + 4].try_into().unwrap());
    let (si_addr, pc) = if block.machine == 3 {
        // i386: si_addr is the 32-bit word at 12; uc_mcontext.gregs starts
        // at 20 in ucontext_t, and REG_EIP is 14.
        let mut eip = [0u8; 4];
        mem.read_exact_at(&mut eip, block.ucontext + 20 + 14 * 4)
            .expect("read ucontext");
        (
            u64::from(word(3) as u32),
            u64::from(u32::from_ne_bytes(eip)),
        )
    } else {
        // x86-64: si_addr at 16; uc_mcontext.gregs[REG_RIP] sits at offset
        // 40 + 16 * 8 in ucontext_t.
        let mut rip = [0u8; 8];
        mem.read_exact_at(&mut rip, block.ucontext + 40 + 16 * 8)
            .expect("read ucontext");
        (
            u64::from_ne_bytes(si[16..24].try_into().unwrap()),
            u64::from_ne_bytes(rip),
        )
    };
    let fd_target = std::fs::read_link(format!("/proc/self/fd/{event}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "missing".into());
    format!(
        "pid={pid} event={event} eventfd={} block_digits={} size={} machine={} tid={} version={} pc={:#x} signo={} code={} si_addr={si_addr:#x} ucontext_pc={pc:#x}\n",
        fd_target == "anon_inode:[eventfd]",
        addr.len(),
        block.size,
        block.machine,
        block.tid,
        block.version,
        block.exception_address,
        word(0),
        word(2),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dump") {
        let j = args.iter().position(|a| a == "-j").expect("-j");
        let [folder, pid, event, addr] = &args[j + 1..] else {
            panic!("dump -j FOLDER PID EVENT ADDR, got {args:?}")
        };
        let word = |key: &str| {
            args[1..j]
                .iter()
                .find_map(|a| a.strip_prefix(key))
                .unwrap_or("-")
        };
        let levels: Vec<&str> = args[1..j]
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with("--jit-") && *a != "-accepteula")
            .collect();
        let line = format!(
            "outcome={} reason={} levels={} {}",
            word("--jit-outcome="),
            word("--jit-reason="),
            levels.join(","),
            probe(pid, event, addr)
        );
        std::fs::write(format!("{folder}/probe-dump.txt"), line).expect("write");
        return;
    }
    let (out, signal, rest) = match args.as_slice() {
        [out, s, rest @ ..] if s == "signal" => (out, true, rest),
        [out, rest @ ..] => (out, false, rest),
        _ => panic!("usage"),
    };
    let [pid, event, addr] = rest else {
        panic!("OUT [signal] PID EVENT ADDR, got {args:?}")
    };
    let line = probe(pid, event, addr);
    File::create(out)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .expect("write");
    if signal {
        let fd: i32 = event.parse().expect("event fd");
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to the inherited eventfd.
        let n = unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
        assert_eq!(n, 8, "signalling the event");
    }
}
