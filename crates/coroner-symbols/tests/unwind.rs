//! Unwinding real, stopped processes with [`coroner_symbols::unwind`]: the
//! crasher's `live` threads (deep Rust recursion, std thread start, the
//! main thread's named wait), and a small C program stopped inside a signal
//! handler, built three ways (CFI in `.eh_frame`, CFI only in
//! `.debug_frame`, no CFI but frame pointers) so that each path of the
//! unwinder carries the walk from the handler, through `__restore_rt`, into
//! the interrupted function and out to `main`. An ELF core of each stopped
//! process must unwind to exactly the same frames as the live process (the
//! core holds stacks but not the trampoline's code, which then comes from
//! libc's file).

use coroner_dump::corefile::CoreFile;
use coroner_dump::{dump_attached, DumpFormat, DumpOptions, NoProgress};
use coroner_proc::procfs::read_maps;
use coroner_proc::{Attached, MemorySource};
use coroner_symbols::cfi::reg;
use coroner_symbols::{
    unwind_traced, FrameMemory, FrameTrust, ModuleImage, SymbolOptions, UnwindRegs, UnwindStop,
    UnwoundFrame,
};
use coroner_types::{Mapping, Pid, Tid};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

struct Mem<'a>(&'a dyn MemorySource);

impl FrameMemory for Mem<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.0.read_exact(addr, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

/// Every file-backed module of a mapping list (base = start of its
/// offset-0 mapping, end = end of its last mapping), and the vDSO from
/// memory when it is there.
fn load_images(maps: &[Mapping], mem: &dyn MemorySource) -> Vec<ModuleImage> {
    let mut ranges: BTreeMap<String, (Option<u64>, u64)> = BTreeMap::new();
    let mut images = Vec::new();
    for m in maps {
        let name = String::from_utf8_lossy(&m.name).into_owned();
        if name == "[vdso]" {
            let mut data = vec![0u8; (m.end - m.start) as usize];
            if mem.read_exact(m.start, &mut data).is_ok() {
                images.push(ModuleImage::from_bytes(
                    &name,
                    m.start,
                    m.end - m.start,
                    data,
                ));
            }
            continue;
        }
        if !name.starts_with('/') {
            continue;
        }
        let e = ranges.entry(name).or_insert((None, 0));
        if m.offset == 0 && e.0.is_none() {
            e.0 = Some(m.start);
        }
        e.1 = e.1.max(m.end);
    }
    let opts = SymbolOptions::default();
    for (name, (base, end)) in ranges {
        let Some(base) = base else { continue };
        images.push(ModuleImage::load(&opts, &name, base, end - base, None));
    }
    images
}

fn live_images(att: &Attached) -> Vec<ModuleImage> {
    load_images(&read_maps(att.pid()).expect("maps"), att.memory())
}

/// Writes an ELF core of the stopped process (default "mini" level:
/// stacks and the code around each thread's pc), reads it back and unwinds
/// each thread of `live` from the core's registers and memory: the frames
/// must be the same.
///
/// `not_dumped`: addresses the core must not hold (so that what the
/// unwinder needs there comes from the module files).
fn assert_core_unwinds_the_same(
    att: &Attached,
    live: &BTreeMap<Tid, Vec<UnwoundFrame>>,
    not_dumped: &[u64],
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core");
    let opts = DumpOptions {
        format: DumpFormat::ElfCore,
        ..DumpOptions::default()
    };
    dump_attached(att, &path, false, &opts, &NoProgress).expect("write core");
    let core = CoreFile::open(&path).expect("open core");
    let snap = core.snapshot();
    let images = load_images(&snap.mappings, &core);
    for &addr in not_dumped {
        let mut b = [0u8; 1];
        assert!(
            core.read_exact(addr, &mut b).is_err(),
            "{addr:#x} is in the core"
        );
    }
    for (tid, frames) in live {
        let t = snap
            .threads
            .iter()
            .find(|t| t.tid == *tid)
            .expect("thread in core");
        let regs = t.regs.as_ref().expect("registers in core");
        let from_core = unwind_traced(&images, &Mem(&core), UnwindRegs::from(&regs.gp), 256);
        assert_eq!(
            &from_core.frames,
            frames,
            "thread {} from the core:\n{}\nlive:\n{}",
            tid.0,
            describe(&images, &from_core.frames),
            describe(&images, frames)
        );
    }
}

/// `module!function` of a frame (`?` parts when unknown).
fn frame_name(images: &[ModuleImage], f: &UnwoundFrame) -> String {
    let pc = f.lookup_pc();
    match images.iter().find(|i| i.contains(pc)) {
        Some(img) => format!(
            "{}!{}",
            img.name(),
            img.symbol_at(pc).map(|s| s.name).unwrap_or("?".into())
        ),
        None => format!("?!{pc:#x}"),
    }
}

fn describe(images: &[ModuleImage], frames: &[UnwoundFrame]) -> String {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "{i:02} {:#014x} sp={:#x} {:<13} {}\n",
                f.pc,
                f.regs.rsp().unwrap_or(0),
                f.trust.as_str(),
                frame_name(images, f)
            )
        })
        .collect()
}

fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("child stdout");
    line
}

/// Closes the child's stdin (it exits on EOF) and reaps it.
fn finish(mut child: Child) -> std::process::ExitStatus {
    drop(child.stdin.take());
    child.wait().expect("wait")
}

#[test]
fn live_crasher_threads_unwind_through_every_frame() {
    let crasher = coroner_crashers::crasher_path().expect("crasher binary");
    let mut child = Command::new(&crasher)
        .args(["live", "1", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crasher");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let ready = coroner_crashers::parse_ready_line(&read_line(&mut out)).expect("ready line");
    let pid = Pid(ready.pid as i32);
    let att = Attached::seize(pid, Duration::from_secs(20)).expect("seize");
    let images = live_images(&att);
    let exe = images
        .iter()
        .find(|i| i.path() == Some(crasher.as_path()) || i.code_file() == crasher.to_str().unwrap())
        .expect("crasher image");
    assert_eq!(exe.name(), "crasher");
    assert!(exe.has_cfi());
    let mem = Mem(att.memory());

    let mut workers = 0;
    let mut all = BTreeMap::new();
    for &tid in att.tids() {
        let regs = att.regs(tid).expect("regs");
        let u = unwind_traced(&images, &mem, UnwindRegs::from(&regs.gp), 256);
        let names: Vec<String> = u.frames.iter().map(|f| frame_name(&images, f)).collect();
        let text = describe(&images, &u.frames);
        assert_eq!(u.stop, UnwindStop::EndOfStack, "tid {}:\n{text}", tid.0);
        all.insert(tid, u.frames.clone());
        // Every frame below 0 came from CFI, and CFI recovered every
        // callee-saved register (the `live` stacks are all readable).
        for (i, f) in u.frames.iter().enumerate().skip(1) {
            assert_eq!(f.trust, FrameTrust::Cfi, "frame {i}:\n{text}");
            for r in reg::CALLEE_SAVED {
                assert!(f.regs.get(r).is_some(), "frame {i} r{r}:\n{text}");
            }
            assert!(f.regs.rsp() > u.frames[i - 1].regs.rsp(), "{text}");
        }
        if tid == Tid(pid.0) {
            let waits = names
                .iter()
                .filter(|n| *n == "crasher!live_main_wait")
                .count();
            assert_eq!(waits, 3, "{text}");
            // `ready` is printed from inside the waits: the thread is still
            // in `say` or already reading stdin.
            assert!(
                names
                    .iter()
                    .any(|n| n == "crasher!live_main_read_stdin" || n == "crasher!crasher::say"),
                "{text}"
            );
            assert!(names.iter().any(|n| n == "crasher!main"), "{text}");
            // Versioned libc symbols show bare (`__libc_start_main@@GLIBC_2.34`).
            assert!(
                names.iter().any(|n| n == "libc!__libc_start_main"),
                "{text}"
            );
            assert!(
                names.last().is_some_and(|n| n.ends_with("!_start")),
                "{text}"
            );
            continue;
        }
        workers += 1;
        let park = names
            .iter()
            .position(|n| n == "crasher!live_worker_park")
            .unwrap_or_else(|| panic!("no live_worker_park:\n{text}"));
        let recurse = names[park + 1..]
            .iter()
            .take_while(|n| *n == "crasher!live_worker_recurse")
            .count();
        assert_eq!(recurse, coroner_crashers::LIVE_WORKER_DEPTH, "{text}");
        // One function, one frame size: every recursion step moves the stack
        // pointer by the same amount.
        let sps: Vec<u64> = u.frames[park + 1..park + 1 + recurse]
            .iter()
            .map(|f| f.regs.rsp().unwrap())
            .collect();
        let step = sps[1] - sps[0];
        assert!(sps.windows(2).all(|w| w[1] - w[0] == step), "{text}");
        assert!(step >= coroner_crashers::LIVE_FRAME_BUFFER as u64);
        let rest = &names[park + 1 + recurse..];
        assert!(
            rest.iter()
                .any(|n| n.starts_with("crasher!") && n.contains("thread")),
            "std's thread start under the recursion:\n{text}"
        );
        assert!(rest.iter().any(|n| n == "libc!start_thread"), "{text}");
        assert!(
            rest.last().is_some_and(|n| n.starts_with("libc!clone")),
            "{text}"
        );
    }
    assert_eq!(workers, 2);
    assert_core_unwinds_the_same(&att, &all, &[]);
    att.detach().expect("detach");
    assert!(finish(child).success());
}

const SIGNAL_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

volatile int in_loop;
static pthread_t main_thread;

/* Says ready from inside the handler, then blocks until stdin closes. */
static void on_usr1(int sig) {
    (void)sig;
    char c;
    static const char msg[] = "ready\n";
    if (write(1, msg, sizeof msg - 1) < 0) _exit(3);
    while (read(0, &c, 1) > 0) {}
    _exit(0);
}

/* Loads markers into the callee-saved registers and spins: the signal
   interrupts the loop, so the signal frame holds these values. */
__attribute__((noinline)) void spin(void) {
    __asm__ volatile(
        "mov $0x5b1, %%rbx\n\t"
        "mov $0x5b12, %%r12\n\t"
        "mov $0x5b13, %%r13\n\t"
        "mov $0x5b14, %%r14\n\t"
        "mov $0x5b15, %%r15\n\t"
        "movl $1, %0\n\t"
        "1: pause\n\t"
        "jmp 1b\n\t"
        : "=m"(in_loop)
        :
        : "rbx", "r12", "r13", "r14", "r15", "memory");
}

/* Calls spin with other markers in the callee-saved registers: spin saves
   them on its stack, and only its CFI can find them there. */
__attribute__((noinline)) void outer(void) {
    __asm__ volatile(
        "mov $0xa1, %%rbx\n\t"
        "mov $0xa12, %%r12\n\t"
        "mov $0xa13, %%r13\n\t"
        "mov $0xa14, %%r14\n\t"
        "mov $0xa15, %%r15\n\t"
        "call spin\n\t"
        :
        :
        : "rbx", "r12", "r13", "r14", "r15", "rax", "rcx", "rdx", "rsi", "rdi",
          "r8", "r9", "r10", "r11", "memory", "cc");
}

/* Signals the main thread once it is inside the loop. */
static void *kicker(void *arg) {
    (void)arg;
    while (!in_loop) {}
    pthread_kill(main_thread, SIGUSR1);
    return 0;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    if (sigaction(SIGUSR1, &sa, 0) != 0) return 2;
    main_thread = pthread_self();
    pthread_t t;
    if (pthread_create(&t, 0, kicker, 0) != 0) return 2;
    outer();
    return 1;
}
"#;

/// How the program's own functions are described to the unwinder.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Build {
    /// `.eh_frame` (the compiler's default).
    EhFrame,
    /// `-g` without unwind tables: CFI only in `.debug_frame`.
    DebugFrame,
    /// No CFI at all for them, frame pointers kept.
    FramePointers,
}

fn build(dir: &Path, how: Build) -> std::path::PathBuf {
    let src = dir.join("sigprog.c");
    std::fs::write(&src, SIGNAL_PROGRAM).unwrap();
    let exe = dir.join(format!("sigprog-{how:?}"));
    let mut cmd = Command::new("cc");
    cmd.args(["-O1", "-mno-red-zone", "-Wall", "-Wextra", "-pthread"]);
    match how {
        Build::EhFrame => {}
        Build::DebugFrame => {
            cmd.args([
                "-g",
                "-fno-asynchronous-unwind-tables",
                "-fno-unwind-tables",
            ]);
        }
        Build::FramePointers => {
            cmd.args([
                "-fno-asynchronous-unwind-tables",
                "-fno-unwind-tables",
                "-fno-omit-frame-pointer",
            ]);
        }
    }
    let status = cmd
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc (a C compiler) is needed for the signal-frame tests");
    assert!(status.success(), "cc failed for {how:?}");
    exe
}

/// Runs the program built `how`, waits for its handler to say ready, and
/// unwinds its main thread.
fn signal_frame_case(how: Build) {
    let dir = tempfile::tempdir().unwrap();
    let exe = build(dir.path(), how);
    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready\n");
    let pid = Pid(child.id() as i32);
    let att = Attached::seize(pid, Duration::from_secs(20)).expect("seize");
    let images = live_images(&att);
    let prog = images
        .iter()
        .find(|i| i.code_file() == exe.to_str().unwrap())
        .expect("program image");
    let has_debug_frame = {
        let data = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        object::Object::section_by_name(&file, ".debug_frame").is_some()
    };
    assert_eq!(has_debug_frame, how == Build::DebugFrame);
    let mem = Mem(att.memory());
    let regs = att.regs(Tid(pid.0)).expect("regs");
    let u = unwind_traced(&images, &mem, UnwindRegs::from(&regs.gp), 64);
    let f = &u.frames;
    let names: Vec<String> = f.iter().map(|f| frame_name(&images, f)).collect();
    let text = format!("{how:?}:\n{}", describe(&images, f));
    let prefix = format!("{}!", prog.name());

    // handler, __restore_rt, spin (the interrupted frame), outer, main.
    let handler = names
        .iter()
        .position(|n| *n == format!("{prefix}on_usr1"))
        .unwrap_or_else(|| panic!("no on_usr1 frame:\n{text}"));
    assert!(
        names[..handler].iter().all(|n| n.starts_with("libc!")),
        "{text}"
    );
    let tramp = &f[handler + 1];
    assert!(
        tramp.pc > 0 && names[handler + 1].starts_with("libc!"),
        "{text}"
    );
    let mut code = [0u8; 9];
    att.memory().read_exact(tramp.pc, &mut code).unwrap();
    assert_eq!(
        code,
        [0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05],
        "{text}"
    );

    let spin = &f[handler + 2];
    assert_eq!(names[handler + 2], format!("{prefix}spin"), "{text}");
    assert_eq!(spin.trust, FrameTrust::SignalFrame, "{text}");
    assert_eq!(spin.lookup_pc(), spin.pc);
    let r = &spin.regs;
    assert_eq!(
        [r.rbx(), r.r12(), r.r13(), r.r14(), r.r15()],
        [0x5b1, 0x5b12, 0x5b13, 0x5b14, 0x5b15].map(Some),
        "interrupted registers from the ucontext:\n{text}"
    );
    assert!(r.values.iter().all(Option::is_some), "all of them:\n{text}");

    let outer = &f[handler + 3];
    assert_eq!(names[handler + 3], format!("{prefix}outer"), "{text}");
    assert_eq!(names[handler + 4], format!("{prefix}main"), "{text}");
    let r = &outer.regs;
    match how {
        Build::EhFrame | Build::DebugFrame => {
            assert_eq!(outer.trust, FrameTrust::Cfi, "{text}");
            assert_eq!(
                [r.rbx(), r.r12(), r.r13(), r.r14(), r.r15()],
                [0xa1, 0xa12, 0xa13, 0xa14, 0xa15].map(Some),
                "callee-saved registers spin pushed:\n{text}"
            );
            assert_eq!(f[handler + 1].trust, FrameTrust::Cfi, "{text}");
        }
        Build::FramePointers => {
            assert_eq!(outer.trust, FrameTrust::FramePointer, "{text}");
            assert_eq!(f[handler + 4].trust, FrameTrust::FramePointer, "{text}");
            assert_eq!(f[handler + 1].trust, FrameTrust::FramePointer, "{text}");
        }
    }
    // Past main, libc's CFI takes over again down to _start.
    assert!(
        names[handler + 5..].iter().any(|n| n.starts_with("libc!")),
        "{text}"
    );
    assert!(
        names.last().is_some_and(|n| n.ends_with("!_start")),
        "{text}"
    );
    assert_eq!(u.stop, UnwindStop::EndOfStack, "{text}");

    let tramp_pc = f[handler + 1].pc;
    let live = BTreeMap::from([(Tid(pid.0), u.frames.clone())]);
    assert_core_unwinds_the_same(&att, &live, &[tramp_pc]);
    att.detach().expect("detach");
    assert!(finish(child).success());
}

#[test]
fn signal_frame_with_eh_frame() {
    signal_frame_case(Build::EhFrame);
}

#[test]
fn signal_frame_with_debug_frame_only() {
    signal_frame_case(Build::DebugFrame);
}

#[test]
fn signal_frame_with_frame_pointers_only() {
    signal_frame_case(Build::FramePointers);
}
