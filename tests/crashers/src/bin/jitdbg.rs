//! A stand-in postmortem debugger for the JIT tests: started by the crash
//! runtime from the AeDebug template `jitdbg OUT MODE %ld %ld %p`, it
//! records its arguments, reads the JIT_DEBUG_INFO block and the siginfo it
//! points to through /proc/PID/mem (parsing them itself, independently of
//! coroner's types; a 32-bit target's siginfo by the i386 layout when the
//! block's machine is 3), appends one line to OUT, then:
//! - `signal`: signals the event (the crash then repeats and kills the
//!   process),
//! - `exit`: exits without signalling (the runtime goes on to LocalDumps),
//! - `hang`: never returns (the runtime's timeout must end it).
//!
//! Line: `jitdbg argc=<n> pid=<pid> event=<fd> block=<text> size=<n>
//! machine=<n> tid=<n> version=<n> exc=<hex> signo=<n> code=<n>
//! si_addr=<hex> event_is_fd=<0|1>`

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: jitdbg OUT signal|exit|hang PID EVENT BLOCK_HEX");
        std::process::exit(2);
    }
    let (out, mode) = (&args[1], args[2].as_str());
    let pid: u32 = args[3].parse().expect("pid");
    let event: i32 = args[4].parse().expect("event");
    let block_text = args[5].trim_start_matches("0x");
    let block = u64::from_str_radix(block_text, 16).expect("hex block address");
    let mut line = format!(
        "jitdbg argc={} pid={pid} event={event} block={} ",
        args.len() - 1,
        args[5]
    );
    match File::open(format!("/proc/{pid}/mem")) {
        Ok(mem) => {
            let mut b = [0u8; 40];
            match mem.read_exact_at(&mut b, block) {
                Ok(()) => {
                    let si_ptr = u64_at(&b, 24);
                    // A 32-bit (i386, machine 3) siginfo has si_addr as the
                    // 32-bit word at 12; x86-64's is the 64-bit word at 16.
                    let i386 = u32_at(&b, 4) == 3;
                    line += &format!(
                        "size={} machine={} tid={} version={} exc={:#x} ",
                        u32_at(&b, 0),
                        u32_at(&b, 4),
                        u32_at(&b, 8),
                        u32_at(&b, 12),
                        u64_at(&b, 16)
                    );
                    let mut si = [0u8; 128];
                    if mem.read_exact_at(&mut si, si_ptr).is_ok() {
                        line += &format!(
                            "signo={} code={} si_addr={:#x} ",
                            u32_at(&si, 0) as i32,
                            u32_at(&si, 8) as i32,
                            if i386 {
                                u64::from(u32_at(&si, 12))
                            } else {
                                u64_at(&si, 16)
                            }
                        );
                    } else {
                        line += "siginfo=unreadable ";
                    }
                }
                Err(e) => line += &format!("block=unreadable({e}) "),
            }
        }
        Err(e) => line += &format!("mem=unopenable({e}) "),
    }
    let is_fd = std::fs::read_link(format!("/proc/self/fd/{event}"))
        .map(|t| t.to_string_lossy().contains("eventfd"))
        .unwrap_or(false);
    line += &format!("event_is_fd={}\n", is_fd as u8);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("open OUT");
    f.write_all(line.as_bytes()).expect("write OUT");
    drop(f);
    match mode {
        "signal" => {
            // SAFETY: `event` is the eventfd the runtime handed us as that
            // descriptor number; we take ownership and close it when done.
            let ev = unsafe { File::from_raw_fd(event) };
            (&ev)
                .write_all(&1u64.to_ne_bytes())
                .expect("signal the event");
        }
        "exit" => {}
        "hang" => loop {
            std::thread::park();
        },
        other => {
            eprintln!("jitdbg: unknown mode {other}");
            std::process::exit(2);
        }
    }
}
