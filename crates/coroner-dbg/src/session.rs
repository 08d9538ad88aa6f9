//! A debugging session: one target, the event filters, the command loop.
//!
//! Owns: deciding what each live event means (the filters' break and
//! handling status, first and second chance, `-c`/`-c2` commands), the
//! prompt `<process>:<thread>>`, symbols and stack walks for the commands,
//! and how the session ends (`q` kills, `qd` detaches, JIT event).
//!
//! Must not: print anywhere but its output sink, or end with the target
//! stopped or carrying a breakpoint byte (every exit path goes through
//! `Live::detach` or `Live::kill`).

use crate::disasm::{disassemble, fmt_addr};
use crate::expr::{parse_expr, Expr};
use crate::filters::{
    BreakStatus, EventKind, ExceptionEvent, ExceptionHint, ExceptionMatch, Filters, Handling,
};
use crate::format;
use crate::live::{BpSet, Event, Live, LiveError, Stream, ThrowKind};
use crate::target::{DumpTarget, ExceptionInfo, Module, Target, TargetError, TargetKind};
use coroner_symbols::cfi::{self, FrameMemory, UnwindRegs, UnwoundFrame};
use coroner_symbols::image::ModuleImage;
use coroner_symbols::SymbolOptions;
use coroner_types::{Pid, SigInfo, Tid, UserRegs};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

/// What the session runs on.
pub enum TargetBox {
    Live(Box<Live>),
    Dump(Box<DumpTarget>),
    /// The live target ended (exited, detached, killed).
    None,
}

impl TargetBox {
    pub fn as_target(&self) -> Option<&dyn Target> {
        match self {
            TargetBox::Live(l) => Some(l.as_ref()),
            TargetBox::Dump(d) => Some(d.as_ref()),
            TargetBox::None => None,
        }
    }
}

/// How the session ended, for the exit status and the JIT report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// `q`/`qq`/`.kill`: the target was terminated (a JIT crash is then
    /// not reported, as on Windows).
    Killed,
    /// `qd`/`.detach`: the target runs on (a JIT crash goes on to the
    /// report step).
    Detached,
    /// `.abandon`: left stopped for another debugger.
    Abandoned,
    /// The target exited.
    TargetExited,
    /// The commands ran out (end of input) on a dump target.
    EndOfInput,
}

/// Settings from the command line and Tools.ini.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// `-c`: commands run at the first prompt.
    pub initial_commands: Option<String>,
    /// `-g`: do not stop at the initial breakpoint.
    pub skip_initial_break: bool,
    /// `-pd`: `q` detaches instead of killing.
    pub detach_on_quit: bool,
    /// `-e FD`: the AeDebug event to signal once attached.
    pub event_fd: Option<i32>,
    pub symbols: SymbolOptions,
    /// Print the prompt (interactive).
    pub echo_prompt: bool,
    /// `-pv`: inspect only; execution commands are refused and the session
    /// ends by detaching.
    pub noninvasive: bool,
}

/// The pending exception at a break (for `gh`/`gn` and `.exr -1`).
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub tid: Tid,
    pub signo: i32,
    pub second_chance: bool,
    pub fatal: bool,
    pub m: ExceptionMatch,
    /// A breakpoint stop (`gn` refused, `gN` needed).
    pub breakpoint: bool,
    /// For an assertion (`asrt`): where it is, the key of `ahb`/`ahi`.
    pub assert_site: Option<u64>,
}

/// One session.
pub struct Session<'o> {
    pub(crate) target: TargetBox,
    pub(crate) out: &'o mut dyn Write,
    pub filters: Filters,
    pub(crate) asserts: crate::filters::AssertOverrides,
    pub radix: u32,
    pub(crate) opts: SessionOptions,
    /// Current thread.
    pub(crate) tid: Option<Tid>,
    /// `.ecxr`/`.cxr` register context override.
    pub(crate) context: Option<UserRegs>,
    pub(crate) images: RefCell<HashMap<(u64, String), ModuleImage>>,
    pub(crate) last_event: Option<String>,
    pub(crate) pending: Option<Pending>,
    pub(crate) end: Option<SessionEnd>,
    /// Thread whose stop the last event was (for `~` `#`).
    pub(crate) event_tid: Option<Tid>,
    /// The first fatal signal of a JIT session is its second chance: its
    /// first chance was the in-process handler, before we attached.
    pub(crate) jit_second_chance_next: bool,
    pub(crate) initial_commands_done: bool,
    pub(crate) child_debugging: bool,
    /// End of input detaches instead of killing (JIT sessions).
    pub(crate) eof_detaches: bool,
    /// The throw and panic entry points the engine has breakpoints on:
    /// those whose filter (`eh`, `rp`) wants their first chance.
    throws_watched: BTreeSet<ThrowKind>,
}

/// Memory of a target for the unwinder.
struct Mem<'a>(&'a dyn Target);

impl FrameMemory for Mem<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.0.read_u64(addr)
    }
}

impl<'o> Session<'o> {
    pub fn new(target: TargetBox, out: &'o mut dyn Write, opts: SessionOptions) -> Session<'o> {
        let jit = opts.event_fd.is_some();
        let mut s = Session {
            target,
            out,
            filters: Filters::new(),
            asserts: Default::default(),
            radix: 16,
            opts,
            tid: None,
            context: None,
            images: RefCell::new(HashMap::new()),
            last_event: None,
            pending: None,
            end: None,
            event_tid: None,
            jit_second_chance_next: jit,
            initial_commands_done: false,
            child_debugging: false,
            eof_detaches: false,
            throws_watched: BTreeSet::new(),
        };
        if let Some(t) = s.target.as_target() {
            s.tid = t
                .exception()
                .map(|e| e.tid)
                .or_else(|| t.threads().first().map(|t| t.tid));
            if let Some(e) = t.exception() {
                // A dump opens at its exception, like CDB's `-z`.
                s.event_tid = Some(e.tid);
                s.last_event = Some(format!(
                    "{:x}.{:x}: {} - code {:08x} ({})",
                    t.pid(),
                    e.tid.0,
                    s.filters
                        .exception(&ExceptionEvent::from_siginfo(
                            &e.siginfo,
                            t.pid() as i32,
                            ExceptionHint::None
                        ))
                        .text,
                    e.siginfo.signo(),
                    format::signal_words(&e.siginfo)
                ));
            }
        }
        s
    }

    /// Make end of input detach (`qd`) rather than kill (`q`).
    pub fn set_end_of_input_detaches(&mut self, on: bool) {
        self.eof_detaches = on;
    }

    /// How the session ended, once it has.
    pub fn end(&self) -> Option<SessionEnd> {
        self.end
    }

    /// The target's last exception (a live target's last signal stop that
    /// was not ignored; a dump's exception), kept after the session ends.
    pub fn exception(&self) -> Option<ExceptionInfo> {
        self.target()?.exception()
    }

    pub(crate) fn say(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = self.out.write_all(b"\n");
        }
        let _ = self.out.flush();
    }

    pub(crate) fn target(&self) -> Option<&dyn Target> {
        self.target.as_target()
    }

    fn live_ref(&self) -> Option<&Live> {
        match &self.target {
            TargetBox::Live(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn live(&mut self) -> Option<&mut Live> {
        match &mut self.target {
            TargetBox::Live(l) => Some(l),
            _ => None,
        }
    }

    /// `0:000>`: process index and thread index.
    pub fn prompt(&self) -> String {
        let Some(t) = self.target() else {
            return "NoTarget>".to_string();
        };
        let idx = self
            .tid
            .and_then(|tid| t.threads().iter().position(|th| th.tid == tid))
            .unwrap_or(0);
        let pidx = match &self.target {
            TargetBox::Live(l) => l
                .process_ids()
                .iter()
                .position(|p| *p == l.current)
                .unwrap_or(0),
            _ => 0,
        };
        format!("{pidx}:{idx:03}> ")
    }

    // ----- symbols ---------------------------------------------------------

    /// Run `f` with the symbol image of the module containing `addr`.
    pub(crate) fn with_image<R>(&self, addr: u64, f: impl FnOnce(&ModuleImage) -> R) -> Option<R> {
        let t = self.target()?;
        let m = t.modules().into_iter().find(|m| m.contains(addr))?;
        self.with_module_image(&m, f)
    }

    pub(crate) fn with_module_image<R>(
        &self,
        m: &Module,
        f: impl FnOnce(&ModuleImage) -> R,
    ) -> Option<R> {
        let key = (m.base, m.path.clone());
        let mut cache = self.images.borrow_mut();
        let img = cache.entry(key).or_insert_with(|| {
            // The vDSO has no file: its symbols (`__vdso_clock_gettime`)
            // come from its image in the target's memory.
            if let Some(img) = self.vdso_image(m) {
                return img;
            }
            ModuleImage::load(
                &self.opts.symbols,
                &m.path,
                m.base,
                m.end - m.base,
                m.build_id.as_deref(),
            )
        });
        Some(f(img))
    }

    /// The vDSO's image read from the target, when `m` is the vDSO (a
    /// module with no path, named as `target` names it: `linux-vdso.so.1`,
    /// `linux-gate.so.1`, or a recorded `linux-gate.so`/`[vdso]`) and its
    /// pages are readable (live targets, cores and full dumps).
    fn vdso_image(&self, m: &Module) -> Option<ModuleImage> {
        /// The vDSO is two pages; never read more than this for it.
        const VDSO_MAX: u64 = 1 << 20;
        let name = m.path.as_str();
        let vdso = !name.contains('/')
            && (name.starts_with("linux-vdso")
                || name.starts_with("linux-gate")
                || coroner_symbols::vdso::is_vdso(name));
        let size = m.end.checked_sub(m.base)?;
        if !vdso || size == 0 || size > VDSO_MAX {
            return None;
        }
        let t = self.target()?;
        let mut data = vec![0u8; size as usize];
        if t.read(m.base, &mut data) != data.len() {
            return None;
        }
        Some(ModuleImage::from_bytes(name, m.base, size, data))
    }

    /// Every module's image, loaded (for unwinding).
    fn all_images(&self) -> Vec<ModuleImage> {
        let Some(t) = self.target() else {
            return Vec::new();
        };
        let mods = t.modules();
        mods.iter()
            .filter_map(|m| self.with_module_image(m, |i| i.clone()))
            .collect()
    }

    /// `module!function+0xoff`, `module+0xoff`, or the bare address.
    pub fn symbolize(&self, addr: u64) -> String {
        let Some(t) = self.target() else {
            return format!("{addr:x}");
        };
        let Some(m) = t.modules().into_iter().find(|m| m.contains(addr)) else {
            return fmt_addr(addr);
        };
        self.with_module_image(&m, |img| {
            let name = img.name();
            match img.symbol_at(addr) {
                Some(sym) if addr >= sym.address => {
                    let off = addr - sym.address;
                    if off == 0 {
                        format!("{name}!{}", sym.name)
                    } else {
                        format!("{name}!{}+0x{off:x}", sym.name)
                    }
                }
                _ => format!("{name}+0x{:x}", addr - m.base),
            }
        })
        .unwrap_or_else(|| fmt_addr(addr))
    }

    /// The symbol only when one is known (for `dps` and branch targets).
    pub(crate) fn symbol_name(&self, addr: u64) -> Option<String> {
        let t = self.target()?;
        let m = t.modules().into_iter().find(|m| m.contains(addr))?;
        self.with_module_image(&m, |img| {
            let sym = img.symbol_at(addr)?;
            let off = addr.checked_sub(sym.address)?;
            Some(if off == 0 {
                format!("{}!{}", img.name(), sym.name)
            } else {
                format!("{}!{}+0x{off:x}", img.name(), sym.name)
            })
        })
        .flatten()
    }

    /// Resolve `module!name` or a bare `name` to an address.
    pub fn resolve_symbol(&self, text: &str) -> Option<u64> {
        let t = self.target()?;
        let mods = t.modules();
        let (module, name) = match text.split_once('!') {
            Some((m, n)) => (Some(m), n),
            None => (None, text),
        };
        for m in &mods {
            // The image's name is its file's: skip the others unread.
            if module.is_some_and(|want| {
                !coroner_symbols::image::module_name(&m.path).eq_ignore_ascii_case(want)
            }) {
                continue;
            }
            let found = self.with_module_image(m, |img| {
                if module.is_some_and(|want| !img.name().eq_ignore_ascii_case(want)) {
                    return None;
                }
                if name.is_empty() {
                    return Some(img.base());
                }
                img.lookup(name).first().map(|h| h.address)
            });
            if let Some(Some(a)) = found {
                return Some(a);
            }
        }
        None
    }

    // ----- registers and stacks ---------------------------------------------

    /// Registers of the current thread (or the `.ecxr`/`.cxr` context).
    pub(crate) fn current_regs(&self) -> Result<UserRegs, TargetError> {
        if let Some(c) = self.context {
            return Ok(c);
        }
        let t = self.target().ok_or(TargetError::NotLive {
            kind: "session without a target",
            what: "show registers",
        })?;
        let tid = self.tid.ok_or(TargetError::NoThread { tid: 0 })?;
        t.regs(tid)
    }

    /// The signal whose handler a thread of the target is running: the
    /// thread, and the `siginfo_t` the kernel put in the signal frame on
    /// its stack. A JIT session attaches while the crashing thread waits in
    /// the runtime's handler, before the fault repeats: this is that fault.
    /// A thread handling a crash signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
    /// SIGABRT, SIGTRAP, SIGSYS) wins over one handling any other signal.
    pub fn signal_being_handled(&self) -> Option<(Tid, SigInfo)> {
        /// The kernel's `struct ucontext` on x86-64 (`uc_flags`, `uc_link`,
        /// `uc_stack` 24, `uc_mcontext` 256, `uc_sigmask` 8): the
        /// `rt_sigframe` holds the `siginfo_t` right after it.
        const KERNEL_UCONTEXT_SIZE: u64 = 304;
        let t = self.target()?;
        let mut found = None;
        for th in t.threads() {
            let Ok(regs) = t.regs(th.tid) else { continue };
            let frames = self.walk(&regs, 64);
            let uc = frames
                .windows(2)
                .find(|w| w[1].trust == cfi::FrameTrust::SignalFrame)
                .and_then(|w| w[0].cfa);
            let Some(uc) = uc else { continue };
            let mut b = [0u8; 128];
            if t.read(uc.wrapping_add(KERNEL_UCONTEXT_SIZE), &mut b) != b.len() {
                continue;
            }
            let si = SigInfo::from_bytes(&b);
            let crash = matches!(
                si.signo(),
                libc::SIGSEGV
                    | libc::SIGBUS
                    | libc::SIGILL
                    | libc::SIGFPE
                    | libc::SIGABRT
                    | libc::SIGTRAP
                    | libc::SIGSYS
            );
            if crash {
                return Some((th.tid, si));
            }
            found = found.or(Some((th.tid, si)));
        }
        found
    }

    /// Walk the stack from `regs`.
    pub fn walk(&self, regs: &UserRegs, max: usize) -> Vec<UnwoundFrame> {
        let Some(t) = self.target() else {
            return Vec::new();
        };
        let images = self.all_images();
        cfi::unwind(&images, &Mem(t), unwind_regs(regs), max)
    }

    /// The current instruction line: `module!sym+0x14:` then the
    /// disassembly of one instruction.
    pub(crate) fn current_instruction(&self, pc: u64) -> String {
        let mut s = format!("{}:\n", self.symbolize(pc));
        if let Some(t) = self.target() {
            let mut code = [0u8; 16];
            let n = t.read(pc, &mut code);
            let lines = disassemble(&code[..n], pc, 1, &|a| self.symbol_name(a));
            match lines.first() {
                Some(l) => s.push_str(&l.render()),
                None => s.push_str(&format!("{} ??", fmt_addr(pc))),
            }
        }
        s
    }

    // ----- live events ----------------------------------------------------

    /// Run the live target until an event breaks in (returns true) or the
    /// session ends (returns false).
    pub fn run_until_break(&mut self) -> Result<bool, LiveError> {
        // Usually done when the target was resumed (`continue_pending`);
        // a step resumes it without that.
        self.watch_throws();
        loop {
            let ev = match self.live() {
                Some(l) => match l.wait_event() {
                    Ok(e) => e,
                    Err(LiveError::Gone) => {
                        self.target_gone();
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                },
                None => return Ok(false),
            };
            // What the program wrote before it stopped comes first, as
            // on Windows, where OutputDebugString is an event of its own
            // in order. A line the `out` filter breaks on leaves the stop
            // queued behind it.
            if self.shows(&ev) {
                let mut lines = self
                    .live()
                    .map(|l| l.sync_output())
                    .unwrap_or_default()
                    .into_iter();
                let mut broke = false;
                for line in lines.by_ref() {
                    if self.handle_event(line)? {
                        broke = true;
                        break;
                    }
                }
                if broke {
                    // The stop, and the lines before it not shown yet,
                    // wait their turn.
                    let rest: Vec<Event> = lines.collect();
                    if let Some(l) = self.live() {
                        l.requeue(ev);
                        for line in rest.into_iter().rev() {
                            l.requeue(line);
                        }
                        l.end_run();
                    }
                    return Ok(true);
                }
            }
            if self.handle_event(ev)? {
                // Whatever the run was for (a step, `g ADDR`) ends here.
                if let Some(l) = self.live() {
                    l.end_run();
                }
                return Ok(true);
            }
            if self.end.is_some() {
                return Ok(false);
            }
        }
    }

    /// Whether handling `ev` may show anything: a stop other than a signal
    /// that is ignored with no commands (the hot path of a program that
    /// takes many signals, which prints nothing and must stay cheap).
    fn shows(&self, ev: &Event) -> bool {
        match ev {
            Event::Output { .. } | Event::ProcessExited { .. } => false,
            Event::Signal { pid, tid, signo }
                if !matches!(*signo, libc::SIGSEGV | libc::SIGABRT) =>
            {
                let m = self.filters.exception_by_signal(*signo).unwrap_or_else(|| {
                    let si = self.live_ref().map_or_else(
                        || SigInfo::new_sent(*signo, 0, 0, 0),
                        |l| l.siginfo(*tid, *signo),
                    );
                    self.filters.exception(&ExceptionEvent::from_siginfo(
                        &si,
                        pid.0,
                        ExceptionHint::None,
                    ))
                });
                !quiet(&m) || self.jit_second_chance_next
            }
            _ => true,
        }
    }

    fn target_gone(&mut self) {
        // `ah` settings belong to the process (spec §5.6).
        self.asserts.clear();
        self.target = TargetBox::None;
        self.end.get_or_insert(SessionEnd::TargetExited);
    }

    /// Decide on one event: print what the filters say, run automatic
    /// commands, resume or break. Returns true at a break.
    fn handle_event(&mut self, ev: Event) -> Result<bool, LiveError> {
        match ev {
            Event::Output { line, stream, .. } => {
                // The program's own output passes through unchanged; an
                // `out` filter may also stop on it.
                match stream {
                    Stream::Stdout => self.say(&line),
                    Stream::Stderr => {
                        let _ = writeln!(std::io::stderr(), "{line}");
                    }
                }
                let m = self.filters.event(EventKind::Output, Some(&line), None);
                if m.break_status == BreakStatus::Break {
                    if let Some(l) = self.live() {
                        l.stop_all()?;
                    }
                    self.last_event = Some(format!("Debuggee output: {line}"));
                    self.tid = self.live().and_then(|l| l.stopped_tids().first().copied());
                    return Ok(true);
                }
                Ok(false)
            }
            Event::InitialBreakpoint { pid, tid } => {
                if let Some(fd) = self.opts.event_fd.take() {
                    // The AeDebug event: every thread is attached and
                    // stopped; the crashed program may go on once we run it.
                    if let Err(e) = coroner_sys::signal::signal_event_fd(fd) {
                        self.say(&format!("cannot signal the event fd {fd}: {e}"));
                    }
                }
                let m = self.filters.event(EventKind::InitialBreakpoint, None, None);
                let text = format!(
                    "({:x}.{:x}): Break instruction exception - code 80000003 (first chance)",
                    pid.0, tid.0
                );
                let status = if self.opts.skip_initial_break && m.break_status == BreakStatus::Break
                {
                    BreakStatus::Output
                } else {
                    m.break_status
                };
                let broke = self.event_stop(tid, text, status, m.cmd1.clone())?;
                if broke {
                    // A breakpoint exception, as CDB's initial break is:
                    // `gn` is refused there, `gN` passes the SIGTRAP on
                    // (spec §5.2).
                    self.pending = Some(self.breakpoint_pending(tid));
                }
                Ok(broke)
            }
            Event::ModuleLoaded { pid, tid, module } => {
                self.resolve_deferred_breakpoints(pid);
                for kind in self.throws_watched.clone() {
                    self.watch_throws_in(pid, &module, kind);
                }
                let name = module.file_name().to_string();
                let m = self
                    .filters
                    .event(EventKind::LoadModule, Some(&name), Some(module.base));
                let text = format!(
                    "ModLoad: {} {}   {}",
                    fmt_addr(module.base),
                    fmt_addr(module.end),
                    module.path
                );
                // `.lastevent` names it as CDB does: `pid.tid: Load module
                // PATH at BASE` (the printed line has no pid.tid).
                let last = format!(
                    "{:x}.{:x}: Load module {} at {}",
                    pid.0,
                    tid.0,
                    module.path,
                    fmt_addr(module.base)
                );
                self.event_stop_as(tid, text, last, m.break_status, m.cmd1.clone())
            }
            Event::ModuleUnloaded { pid, tid, module } => {
                let name = module.file_name().to_string();
                let m = self
                    .filters
                    .event(EventKind::UnloadModule, Some(&name), Some(module.base));
                let text = format!("Unload module {} at {}", module.path, fmt_addr(module.base));
                let last = format!("{:x}.{:x}: {text}", pid.0, tid.0);
                self.event_stop_as(tid, text, last, m.break_status, m.cmd1.clone())
            }
            Event::ThreadCreated { pid, tid, parent } => {
                let m = self.filters.event(EventKind::CreateThread, None, None);
                let text = format!(
                    "({:x}.{:x}): Create thread {}:{:x}",
                    pid.0,
                    tid.0,
                    self.thread_index(tid),
                    tid.0
                );
                let broke = self.event_stop(tid, text, m.break_status, m.cmd1.clone())?;
                // The creator is the thread stopped at the clone event:
                // unless the session broke in, it runs on too.
                if !broke {
                    if let Some(l) = self.live() {
                        l.resume_thread(parent, 0)?;
                    }
                }
                Ok(broke)
            }
            Event::ThreadExited { pid, tid, code } => {
                let m = self.filters.event(EventKind::ExitThread, None, None);
                let text = format!(
                    "({:x}.{:x}): Exit thread {}:{:x}, code {:x}",
                    pid.0,
                    tid.0,
                    self.thread_index(tid),
                    tid.0,
                    code
                );
                self.event_stop(tid, text, m.break_status, m.cmd1.clone())
            }
            Event::ProcessCreated { pid, name, .. } => {
                // A child that ran execve: its new image's modules.
                for kind in self.throws_watched.clone() {
                    let modules = self
                        .live_ref()
                        .map(|l| l.process_modules(pid))
                        .unwrap_or_default();
                    for m in &modules {
                        self.watch_throws_in(pid, m, kind);
                    }
                }
                let m = self
                    .filters
                    .event(EventKind::CreateProcess, Some(&name), None);
                let text = format!("({:x}.{:x}): Create process {name}", pid.0, pid.0);
                if let Some(l) = self.live() {
                    l.current = pid;
                }
                self.event_stop(Tid(pid.0), text, m.break_status, m.cmd1.clone())
            }
            Event::ProcessExiting { pid, tid, code } => {
                let name = self
                    .target()
                    .map(|t| t.exe())
                    .map(|e| e.rsplit('/').next().unwrap_or("").to_string())
                    .unwrap_or_default();
                let m = self
                    .filters
                    .event(EventKind::ExitProcess, Some(&name), None);
                let status = decode_exit(code);
                let text = format!(
                    "({:x}.{:x}): Exit process {}:{:x}, {status}",
                    pid.0,
                    tid.0,
                    self.process_index(pid),
                    pid.0
                );
                self.event_stop(tid, text, m.break_status, m.cmd1.clone())
            }
            Event::ProcessExited { pid, .. } => {
                if let Some(l) = self.live() {
                    l.reap(pid);
                    if !l.alive() {
                        self.target_gone();
                    }
                }
                Ok(false)
            }
            Event::StepDone { pid, tid } => {
                self.tid = Some(tid);
                self.event_tid = Some(tid);
                self.context = None;
                self.show_context();
                self.last_event = Some(format!(
                    "{:x}.{:x}: Single step exception - code 80000004 (first chance)",
                    pid.0, tid.0
                ));
                Ok(true)
            }
            Event::GoAddressHit { pid, tid } => {
                // CDB shows a reached `g` address as the stop it is, with
                // no "Breakpoint hit" line.
                self.break_in(tid)?;
                self.pending = Some(self.breakpoint_pending(tid));
                self.show_context();
                self.last_event = Some(format!(
                    "{:x}.{:x}: Break instruction exception - code 80000003 (first chance)",
                    pid.0, tid.0
                ));
                Ok(true)
            }
            Event::Breakpoint { pid, tid, id } => {
                self.break_in(tid)?;
                self.pending = Some(self.breakpoint_pending(tid));
                self.say(&format!("Breakpoint {id} hit"));
                self.show_context();
                self.last_event = Some(format!(
                    "{:x}.{:x}: Break instruction exception - code 80000003 (first chance)",
                    pid.0, tid.0
                ));
                let cmd = self.live().and_then(|l| {
                    l.breakpoints
                        .iter()
                        .find(|b| b.id == id)
                        .and_then(|b| b.command.clone())
                });
                if let Some(cmd) = cmd {
                    return self.run_auto_commands(&cmd);
                }
                Ok(true)
            }
            Event::Signal { pid, tid, signo } => self.handle_signal(pid, tid, signo),
            Event::Throw { pid, tid, kind } => self.handle_throw(pid, tid, kind),
        }
    }

    /// The pending "exception" of a stop at one of our breakpoints.
    fn breakpoint_pending(&self, tid: Tid) -> Pending {
        Pending {
            tid,
            signo: libc::SIGTRAP,
            second_chance: false,
            fatal: false,
            m: self.filters.exception(&ExceptionEvent {
                signo: libc::SIGTRAP,
                code: 0x80,
                sent_by_self: false,
                hint: ExceptionHint::Breakpoint,
            }),
            breakpoint: true,
            assert_site: None,
        }
    }

    fn thread_index(&self, tid: Tid) -> usize {
        self.target()
            .and_then(|t| t.threads().iter().position(|th| th.tid == tid))
            .unwrap_or(0)
    }

    fn process_index(&self, pid: Pid) -> usize {
        match &self.target {
            TargetBox::Live(l) => l.process_ids().iter().position(|p| *p == pid).unwrap_or(0),
            _ => 0,
        }
    }

    /// A non-exception event: print it unless ignored, run Cmd1, break if
    /// asked. Returns true at a break.
    fn event_stop(
        &mut self,
        tid: Tid,
        text: String,
        status: BreakStatus,
        cmd1: Option<String>,
    ) -> Result<bool, LiveError> {
        let last = last_event_text(&text);
        self.event_stop_as(tid, text, last, status, cmd1)
    }

    /// [`Self::event_stop`] with the `.lastevent` text given.
    fn event_stop_as(
        &mut self,
        tid: Tid,
        text: String,
        last: String,
        status: BreakStatus,
        cmd1: Option<String>,
    ) -> Result<bool, LiveError> {
        let brk = status == BreakStatus::Break;
        if status != BreakStatus::Ignore {
            self.say(&text);
        }
        self.last_event = Some(last);
        if let Some(c) = cmd1 {
            self.break_in(tid)?;
            return self.run_auto_commands(&c);
        }
        if brk {
            self.break_in(tid)?;
            self.pending = None;
            return Ok(true);
        }
        if let Some(l) = self.live() {
            l.resume_thread(tid, 0)?;
        }
        Ok(false)
    }

    /// Stop every thread and make `tid`, the event's thread, current.
    fn break_in(&mut self, tid: Tid) -> Result<(), LiveError> {
        if let Some(l) = self.live() {
            l.stop_all()?;
        }
        self.tid = Some(tid);
        self.event_tid = Some(tid);
        self.context = None;
        Ok(())
    }

    /// `.lastevent`'s text from an event line: `(pid.tid): text` becomes
    /// `pid.tid: text`.
    fn set_last_event(&mut self, line: &str) {
        self.last_event = Some(last_event_text(line));
    }

    /// The register block and current instruction of the current thread
    /// (or saved context), as `r` prints them.
    pub(crate) fn context_text(&self) -> Result<String, TargetError> {
        let r = self.current_regs()?;
        Ok(format!(
            "{}{}",
            format::registers(&r),
            self.current_instruction(r.rip)
        ))
    }

    /// Print [`Self::context_text`] if the registers can be read.
    fn show_context(&mut self) {
        if let Ok(text) = self.context_text() {
            self.say(&text);
        }
    }

    fn handle_signal(&mut self, pid: Pid, tid: Tid, signo: i32) -> Result<bool, LiveError> {
        // A signal whose filter its number alone names, ignored with no
        // commands: pass it on (or not, by the handling status) without
        // reading anything of the thread. The hot path of a program that
        // takes many signals.
        if let Some(m) = self.filters.exception_by_signal(signo) {
            if quiet(&m) && !self.jit_second_chance_next {
                return self.pass_quietly(tid, signo, &m);
            }
        }
        let si = self.live_ref().map_or_else(
            || SigInfo::new_sent(signo, 0, 0, 0),
            |l| l.siginfo(tid, signo),
        );
        // One read of the registers serves the hint, the exception record
        // and the display (the live target keeps them for this stop). Only
        // a SIGSEGV or SIGABRT needs them to be classified: other signals
        // that are ignored never read them (the hot path below).
        let read_regs = |s: &Self| s.target().and_then(|t| t.regs(tid).ok());
        let regs = matches!(si.signo(), libc::SIGSEGV | libc::SIGABRT)
            .then(|| read_regs(self))
            .flatten();
        // An abort's stack, walked once: it tells an assertion from a
        // stack-protector abort, and where the assertion is (for `ah`).
        let frames = match (si.signo(), regs.as_ref()) {
            (libc::SIGABRT, Some(r)) => self.walk(r, 32),
            _ => Vec::new(),
        };
        let hint = self.hint_for(regs.as_ref(), &si, &frames);
        let ev = ExceptionEvent::from_siginfo(&si, pid.0, hint);
        let mut m = self.filters.exception(&ev);
        // `ahb`/`ahi` at this assertion win over `sx* asrt` (spec §5.6).
        let assert_site = (m.code == "asrt")
            .then(|| self.assert_site(&frames))
            .flatten();
        if let Some(site) = assert_site {
            self.asserts.adjust(&mut m, site);
        }
        // `sxi` with no commands: nothing to print, run or decide, whether
        // this is the first or the second chance. Pass the signal on (or
        // not, by the handling status) at once: the hot path of a program
        // that takes many signals.
        if quiet(&m) && !self.jit_second_chance_next {
            return self.pass_quietly(tid, si.signo(), &m);
        }
        let fatal = self.live().is_some_and(|l| l.would_kill(pid, &si));
        let second = fatal && std::mem::take(&mut self.jit_second_chance_next);
        let regs = regs.or_else(|| read_regs(self));
        if let Some(l) = self.live() {
            l.last_exception = Some(ExceptionInfo {
                tid,
                siginfo: si,
                regs: regs.unwrap_or_default(),
                second_chance: Some(second),
            });
        }
        let pending = Pending {
            tid,
            signo: si.signo(),
            second_chance: second,
            fatal,
            m: m.clone(),
            breakpoint: false,
            assert_site,
        };
        if second {
            return self.second_chance(pid, pending, &si);
        }
        let line = self.exception_line(pid, tid, &m, &si, false);
        self.first_chance(&line, pending)
    }

    /// Report the first chance of `pending` (its event line `line`) by its
    /// filter: print it unless ignored; break in (`sxe`), or run its
    /// first-chance commands, or continue by the filter's handling status
    /// (which may go on to the second chance). Returns true at a break.
    fn first_chance(&mut self, line: &str, pending: Pending) -> Result<bool, LiveError> {
        let m = pending.m.clone();
        let tid = pending.tid;
        if m.break_status != BreakStatus::Ignore {
            self.say(line);
        }
        self.set_last_event(line);
        self.pending = Some(pending);
        if m.break_status == BreakStatus::Break {
            self.break_in(tid)?;
            self.say("First chance exceptions are reported before any exception handling.\nThis exception may be expected and handled.");
            self.show_context();
            if let Some(c) = m.cmd1 {
                return self.run_auto_commands(&c);
            }
            return Ok(true);
        }
        if let Some(c) = m.cmd1 {
            self.break_in(tid)?;
            return self.run_auto_commands(&c);
        }
        self.continue_pending(None)
    }

    /// `bp[ID] LOCATION ["cmds"]` and `bu[ID] …` (spec §5.1; the
    /// command's parser gives `deferred` for `bu`). With an id, that
    /// breakpoint is redefined if it exists (`breakpoint N redefined`, as
    /// CDB says when a `bp` names an existing breakpoint), else made with
    /// that id; a `bp` at the address of an existing one redefines it too.
    /// A `module!symbol` that does not resolve (its module not loaded yet)
    /// is kept and resolved at each module load: silently for `bu`, with
    /// CDB's `Bp expression '…' could not be resolved, adding deferred bp`
    /// for `bp`. A `bu` is resolved again after its module unloads and
    /// loads again.
    pub fn set_breakpoint(
        &mut self,
        deferred: bool,
        id: Option<u32>,
        location: &Expr,
        commands: Option<String>,
    ) -> Result<BpSet, String> {
        let spec = location.to_string();
        let address = match location.eval(self, self.radix) {
            Ok(a) => Some(a),
            Err(_) if spec.contains('!') => None,
            Err(e) => return Err(format!("{e} in '{location}'")),
        };
        if address.is_none() && !deferred {
            self.say(&format!(
                "Bp expression '{spec}' could not be resolved, adding deferred bp"
            ));
        }
        let l = self.live().ok_or("no live target")?;
        let done = l
            .set_breakpoint(id, address, spec, commands, deferred)
            .map_err(|e| e.to_string())?;
        if let BpSet::Redefined(n) = done {
            self.say(&format!("breakpoint {n} redefined"));
        }
        Ok(done)
    }

    /// At a module load in the process breakpoints belong to: place each
    /// deferred breakpoint whose `module!symbol` resolves now. (The load
    /// is reported before the module's initialisers run.)
    fn resolve_deferred_breakpoints(&mut self, pid: Pid) {
        let todo = match self.live_ref() {
            Some(l) if l.process_ids().first() == Some(&pid) => l.unresolved_breakpoints(),
            _ => return,
        };
        for (id, spec) in todo {
            let Ok(expr) = parse_expr(&spec) else {
                continue;
            };
            let Ok(address) = expr.eval(self, self.radix) else {
                continue;
            };
            if let Some(l) = self.live() {
                // Not writable there: it stays unresolved.
                let _ = l.resolve_breakpoint(id, address);
            }
        }
    }

    /// The first chance of a C++ throw (`eh`) or a Rust panic (`rp`): the
    /// engine's breakpoint on `__cxa_throw` or `rust_panic` was hit. It is
    /// reported as CDB reports a C++ exception (`C++ EH exception - code
    /// e06d7363 (first chance)`), through the filter's break status and
    /// commands. There is no signal to deliver: `g`, `gh` and `gn` all let
    /// the throw go on. Its second chance is the `SIGABRT` of
    /// `std::terminate` (or of a panic that cannot unwind).
    fn handle_throw(&mut self, pid: Pid, tid: Tid, kind: ThrowKind) -> Result<bool, LiveError> {
        let m = self.filters.exception(&throw_event(kind));
        if quiet(&m) {
            // Turned off since the breakpoint was set.
            if let Some(l) = self.live() {
                l.resume_thread(tid, 0)?;
            }
            return Ok(false);
        }
        let regs = self.target().and_then(|t| t.regs(tid).ok());
        const SI_KERNEL: i32 = 0x80;
        if let Some(l) = self.live() {
            l.last_exception = Some(ExceptionInfo {
                tid,
                siginfo: SigInfo::new_fault(libc::SIGTRAP, SI_KERNEL, regs.map_or(0, |r| r.rip)),
                regs: regs.unwrap_or_default(),
                second_chance: Some(false),
            });
        }
        let line = format!(
            "({:x}.{:x}): {} - code {:08x} (first chance)",
            pid.0, tid.0, m.text, m.windows_code
        );
        let pending = Pending {
            tid,
            // Nothing to deliver, whatever the handling status.
            signo: 0,
            second_chance: false,
            fatal: false,
            m,
            breakpoint: false,
            assert_site: None,
        };
        self.first_chance(&line, pending)
    }

    /// Whether the filter of `kind` wants its first chance: anything but
    /// `sxi` without a first-chance command. The default (second-chance
    /// break, `sxd`) prints a line at each first chance and goes on, as
    /// CDB does for every C++ throw; `sxi` sets no breakpoint at all, so a
    /// program that throws a lot costs nothing then.
    fn throw_wanted(&self, kind: ThrowKind) -> bool {
        let m = self.filters.exception(&throw_event(kind));
        m.break_status != BreakStatus::Ignore || m.cmd1.is_some()
    }

    /// Make the engine's throw and panic breakpoints match the `eh`/`rp`
    /// filters: set in every loaded module of every process when a filter
    /// starts to want them, taken out when it stops. (Modules loaded later
    /// get theirs at their load event.)
    fn watch_throws(&mut self) {
        for kind in [ThrowKind::Cxx, ThrowKind::RustPanic] {
            let want = self.throw_wanted(kind);
            if want == self.throws_watched.contains(&kind) {
                continue;
            }
            let Some(l) = self.live_ref() else {
                return;
            };
            if want {
                let all: Vec<(Pid, Vec<Module>)> = l
                    .process_ids()
                    .into_iter()
                    .map(|pid| (pid, l.process_modules(pid)))
                    .collect();
                for (pid, modules) in all {
                    for m in &modules {
                        self.watch_throws_in(pid, m, kind);
                    }
                }
                self.throws_watched.insert(kind);
            } else {
                if let Some(l) = self.live() {
                    l.remove_throw_breakpoints(kind);
                }
                self.throws_watched.remove(&kind);
            }
        }
    }

    /// Set the breakpoints of `kind` on the entry points module `m` of
    /// process `pid` defines (none in most modules).
    fn watch_throws_in(&mut self, pid: Pid, m: &Module, kind: ThrowKind) {
        let names: &[&str] = match kind {
            ThrowKind::Cxx => &["__cxa_throw"],
            // std's unmangled `rust_panic` (older toolchains), or the same
            // function in the `__rustc` namespace (v0 mangling).
            ThrowKind::RustPanic => &["rust_panic", "__rustc::rust_panic"],
        };
        let addrs: Vec<u64> = self
            .with_module_image(m, |img| {
                names
                    .iter()
                    .flat_map(|n| img.lookup(n))
                    .map(|h| h.address)
                    .filter(|a| m.contains(*a))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(l) = self.live() {
            for a in addrs {
                // A module that cannot take one (memory not writable) is
                // skipped: the others still report.
                let _ = l.add_throw_breakpoint(pid, a, kind);
            }
        }
    }

    /// Resume `tid` from a signal its filter ignores with no commands:
    /// with the signal, unless the filter says handled.
    fn pass_quietly(
        &mut self,
        tid: Tid,
        signo: i32,
        m: &ExceptionMatch,
    ) -> Result<bool, LiveError> {
        let sig = if m.handling == Handling::Handled {
            0
        } else {
            signo
        };
        if let Some(l) = self.live() {
            l.resume_thread(tid, sig)?;
        }
        Ok(false)
    }

    /// Report the second chance of the pending exception.
    fn second_chance(
        &mut self,
        pid: Pid,
        pending: Pending,
        si: &SigInfo,
    ) -> Result<bool, LiveError> {
        let m = pending.m.clone();
        let tid = pending.tid;
        let line = self.exception_line(pid, tid, &m, si, true);
        let brk = matches!(
            m.break_status,
            BreakStatus::Break | BreakStatus::SecondChance
        );
        if m.break_status != BreakStatus::Ignore {
            self.say(&line);
        }
        self.set_last_event(&line);
        let mut p = pending;
        p.second_chance = true;
        self.pending = Some(p);
        if brk || m.cmd2.is_some() {
            self.break_in(tid)?;
        }
        if brk {
            self.show_context();
        }
        if let Some(c) = m.cmd2.clone() {
            return self.run_auto_commands(&c);
        }
        if brk {
            return Ok(true);
        }
        self.continue_pending(None)
    }

    /// Resume after the pending exception. `handled`: `Some(true)` for
    /// `gh`, `Some(false)` for `gn`, `None` for `g` (the filter's handling
    /// status). A not-handled fatal first chance goes on to the second
    /// chance instead of running. Returns true if that broke in.
    pub(crate) fn continue_pending(&mut self, handled: Option<bool>) -> Result<bool, LiveError> {
        // An `sxe eh` typed at this break takes effect before the target
        // runs.
        self.watch_throws();
        let Some(p) = self.pending.take() else {
            if let Some(l) = self.live() {
                l.resume_all(None, 0)?;
            }
            return Ok(false);
        };
        if p.breakpoint && handled == Some(false) {
            return self.pass_breakpoint_on(p);
        }
        let handled = handled.unwrap_or(p.m.handling == Handling::Handled || p.breakpoint);
        if !handled && p.fatal && !p.second_chance && !p.breakpoint {
            let si = self
                .live()
                .and_then(|l| l.last_exception.as_ref().map(|e| e.siginfo))
                .unwrap_or_else(|| SigInfo::new_sent(p.signo, 0, 0, 0));
            let pid = self.live().map(|l| l.current).unwrap_or(Pid(0));
            return self.second_chance(pid, p, &si);
        }
        let sig = if handled || p.breakpoint { 0 } else { p.signo };
        self.context = None;
        if let Some(l) = self.live() {
            l.resume_all(Some(p.tid), sig)?;
        }
        Ok(false)
    }

    /// `gN` at a breakpoint (spec §5.2): the program gets the SIGTRAP
    /// the `int3` raised, as if no debugger had set it. Without a SIGTRAP
    /// handler that ends the process, so that is its second chance,
    /// reported before anything is delivered; a `gn` there lets it die.
    fn pass_breakpoint_on(&mut self, p: Pending) -> Result<bool, LiveError> {
        const SI_KERNEL: i32 = 0x80;
        let si = SigInfo::new_fault(libc::SIGTRAP, SI_KERNEL, 0);
        let pid = self.live().map(|l| l.current).unwrap_or(Pid(0));
        let fatal = self.live().is_some_and(|l| l.would_kill(pid, &si));
        let regs = self
            .target()
            .and_then(|t| t.regs(p.tid).ok())
            .unwrap_or_default();
        if let Some(l) = self.live() {
            l.last_exception = Some(ExceptionInfo {
                tid: p.tid,
                siginfo: si,
                regs,
                second_chance: Some(fatal),
            });
        }
        let passed = Pending {
            signo: libc::SIGTRAP,
            fatal,
            breakpoint: false,
            ..p
        };
        if fatal {
            return self.second_chance(pid, passed, &si);
        }
        self.context = None;
        if let Some(l) = self.live() {
            l.resume_all(Some(passed.tid), libc::SIGTRAP)?;
        }
        Ok(false)
    }

    fn exception_line(
        &self,
        pid: Pid,
        tid: Tid,
        m: &ExceptionMatch,
        si: &SigInfo,
        second: bool,
    ) -> String {
        format!(
            "({:x}.{:x}): {} - code {:08x} ({}) ({})",
            pid.0,
            tid.0,
            m.text,
            si.signo(),
            format::signal_words(si),
            if second {
                "!!! second chance !!!"
            } else {
                "first chance"
            }
        )
    }

    /// What the stack says about an abort (assert, stack protector) or a
    /// stack overflow.
    fn hint_for(
        &self,
        regs: Option<&UserRegs>,
        si: &SigInfo,
        frames: &[UnwoundFrame],
    ) -> ExceptionHint {
        let Some(r) = regs else {
            return ExceptionHint::None;
        };
        if si.signo() == libc::SIGSEGV {
            // A fault within a page below the stack pointer, outside any
            // mapping: the guard gap of a stack.
            if let Some(addr) = si.fault_address() {
                if addr <= r.rsp.saturating_add(4096) && r.rsp.saturating_sub(addr) < 1 << 20 {
                    return ExceptionHint::StackOverflow;
                }
            }
        }
        if si.signo() == libc::SIGABRT {
            for f in frames {
                let name = self.symbolize(f.pc);
                if name.contains("__stack_chk_fail") || name.contains("__fortify_fail") {
                    return ExceptionHint::StackCheckFailure;
                }
                if name.contains("__assert_fail") {
                    return ExceptionHint::AssertFailure;
                }
            }
        }
        ExceptionHint::None
    }

    /// Where an assertion is, as `ahb`/`ahi` name it (spec §13.2: the
    /// caller found by unwinding out of `abort`/`__assert_fail`): the
    /// return address in the first frame outside the module the signal
    /// was raised in (libc's `raise`, `abort` and `__assert_fail` are one
    /// module). Matching names instead would depend on libc's symbols,
    /// which a stripped libc does not have for its internal frames.
    fn assert_site(&self, frames: &[UnwoundFrame]) -> Option<u64> {
        let t = self.target()?;
        let modules = t.modules();
        let module_of = |pc: u64| modules.iter().position(|m| m.contains(pc));
        let top = module_of(frames.first()?.pc);
        frames
            .iter()
            .skip(1)
            .find(|f| module_of(f.pc) != top)
            .map(|f| f.pc)
    }

    /// Run an automatic command string (`-c`, `-c2`, `bp "…"`); if it ends
    /// with `g`/`gh`/`gn` the target runs on. Returns true if the session
    /// should prompt (stays broken in).
    pub(crate) fn run_auto_commands(&mut self, cmds: &str) -> Result<bool, LiveError> {
        let flow = self.execute_line(cmds);
        // The commands may have changed `eh`/`rp` before the target runs on.
        self.watch_throws();
        Ok(match flow {
            crate::exec::Flow::Stay => true,
            crate::exec::Flow::Go => false,
            crate::exec::Flow::Ended => false,
        })
    }
}

/// What the filters see of a throw or panic: the `int3` that reported it,
/// with the hint that names `eh` or `rp`.
fn throw_event(kind: ThrowKind) -> ExceptionEvent {
    ExceptionEvent {
        signo: libc::SIGTRAP,
        code: 0x80,
        sent_by_self: false,
        hint: match kind {
            ThrowKind::Cxx => ExceptionHint::CxxThrow,
            ThrowKind::RustPanic => ExceptionHint::RustPanic,
        },
    }
}

/// An exception filter that neither prints nor runs anything: `sxi` with
/// no commands.
fn quiet(m: &ExceptionMatch) -> bool {
    m.break_status == BreakStatus::Ignore && m.cmd1.is_none() && m.cmd2.is_none()
}

/// `.lastevent`'s text from an event line: `(pid.tid): text` becomes
/// `pid.tid: text`.
fn last_event_text(line: &str) -> String {
    line.trim_start_matches('(').replacen("):", ":", 1)
}

/// `code 0` / `signal 11 (SIGSEGV)` from a `PTRACE_EVENT_EXIT` status.
fn decode_exit(status: i32) -> String {
    if status & 0x7f == 0 {
        format!("code {:x}", (status >> 8) & 0xff)
    } else {
        let sig = status & 0x7f;
        format!(
            "killed by signal {sig} ({})",
            coroner_types::signal_name(sig).unwrap_or("?")
        )
    }
}

/// The unwinder's register set from a thread's registers.
pub(crate) fn unwind_regs(r: &UserRegs) -> UnwindRegs {
    let mut u = UnwindRegs::default();
    let vals = [
        r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip,
    ];
    for (i, v) in vals.iter().enumerate() {
        u.values[i] = Some(*v);
    }
    u
}

/// The thread registers of an unwound frame (unknown ones are 0).
pub(crate) fn frame_regs(f: &UnwoundFrame, base: &UserRegs) -> UserRegs {
    let v = |i: usize| f.regs.values[i].unwrap_or(0);
    UserRegs {
        rax: v(0),
        rdx: v(1),
        rcx: v(2),
        rbx: v(3),
        rsi: v(4),
        rdi: v(5),
        rbp: v(6),
        rsp: f.regs.values[7].or(f.cfa).unwrap_or(0),
        r8: v(8),
        r9: v(9),
        r10: v(10),
        r11: v(11),
        r12: v(12),
        r13: v(13),
        r14: v(14),
        r15: v(15),
        rip: f.pc,
        ..*base
    }
}

/// Which kind of target a session has, for messages.
pub(crate) fn kind_name(t: &TargetBox) -> &'static str {
    match t {
        TargetBox::Live(_) => TargetKind::Live.describe(),
        TargetBox::Dump(d) => d.kind().describe(),
        TargetBox::None => "ended target",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Flow;
    use std::ffi::OsString;

    /// A session on `live`, at its initial breakpoint, writing to `out`.
    fn at_initial_break(live: Live, out: &mut Vec<u8>) -> Session<'_> {
        let mut s = Session::new(
            TargetBox::Live(Box::new(live)),
            out,
            SessionOptions::default(),
        );
        assert!(s.run_until_break().unwrap(), "initial breakpoint");
        s
    }

    fn launch(args: &[&str]) -> Live {
        let mut cmd = vec![coroner_crashers::crasher_path()
            .expect("crasher binary")
            .into_os_string()];
        cmd.extend(args.iter().map(OsString::from));
        Live::launch(&cmd, true).expect("launch the crasher under ptrace")
    }

    /// The vDSO's symbols come from its image in the target's memory.
    #[test]
    fn vdso_symbols_are_read_from_the_target() {
        let mut out = Vec::new();
        let mut s = at_initial_break(launch(&["exit", "0"]), &mut out);
        let vdso = s
            .target()
            .unwrap()
            .modules()
            .into_iter()
            .find(|m| m.path.starts_with("linux-vdso"))
            .expect("the vDSO is listed");
        let named = s
            .with_module_image(&vdso, |img| {
                img.symbols()
                    .iter()
                    .find(|sym| sym.name.ends_with("clock_gettime"))
                    .map(|sym| sym.address)
            })
            .flatten()
            .expect("clock_gettime in the vDSO's symbols");
        assert!(vdso.contains(named), "{named:#x} in {vdso:?}");
        assert!(
            s.symbolize(named).contains("clock_gettime"),
            "{}",
            s.symbolize(named)
        );
        assert_eq!(s.execute_line("q"), Flow::Ended);
    }

    fn register_reads(s: &Session) -> u64 {
        match &s.target {
            TargetBox::Live(l) => l.kernel_register_reads(),
            _ => panic!("not a live target"),
        }
    }

    /// Two regressions on one live session. (Live sessions in parallel
    /// tests do not mix: each waits only for its own thread's tracees.)
    ///
    /// - A SIGSEGV that breaks read the faulting thread's registers from
    ///   the kernel three times (for the stack-overflow hint, the
    ///   exception record and the register display); one stop, one read.
    /// - What the program wrote came through a reader thread and was shown
    ///   whenever that thread got to it: often after the events that
    ///   followed it, and not at all when the session ended at the exit
    ///   break. Lines written before a stop now come before it.
    #[test]
    fn one_register_read_per_stop_and_output_before_the_stop() {
        let mut out = Vec::new();
        let mut s = at_initial_break(launch(&["recover"]), &mut out);
        assert_eq!(s.execute_line("g"), Flow::Go);
        let before = register_reads(&s);
        assert!(s.run_until_break().unwrap(), "the first SIGSEGV breaks");
        assert_eq!(register_reads(&s) - before, 1);
        // `r` and `.exr -1` at the same stop read nothing more.
        s.execute_line("r; .exr -1");
        assert_eq!(register_reads(&s) - before, 1);
        s.execute_line("sxd av");
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "the exit breaks");
        assert_eq!(s.execute_line("q"), Flow::Ended);
        drop(s);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Access violation - code 0000000b (SIGSEGV SEGV_MAPERR) (first chance)"),
            "{text}"
        );
        assert!(text.contains("crasher!crash_recover_fault"), "{text}");
        assert!(text.contains("ExceptionCode: 0000000b (SIGSEGV)"), "{text}");
        let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what}\n{text}"));
        assert!(at("crashing recover") < at("Access violation"), "{text}");
        assert!(at("recovered 3") < at("Exit process"), "{text}");
    }

    fn live_of<'a>(s: &'a Session) -> &'a Live {
        match &s.target {
            TargetBox::Live(l) => l,
            _ => panic!("not a live target"),
        }
    }

    /// The byte at `addr` as the process holds it (our `int3` included).
    fn raw_byte(s: &Session, addr: u64) -> u8 {
        let mut b = [0u8; 1];
        let n = live_of(s).memory().read(addr, &mut b).unwrap();
        assert_eq!(n, 1, "{addr:#x} is readable");
        b[0]
    }

    /// `eh` under `sxi` costs nothing: no breakpoint is set. `sxe eh` sets
    /// one on `__cxa_throw` (libstdc++'s), which `bl`'s list does not
    /// hold and which reports the throw as CDB's first chance; `sxi eh`
    /// takes it out again, the original byte back.
    #[test]
    fn the_eh_breakpoint_is_there_only_while_its_filter_wants_it() {
        // sxi: the throw goes by unseen, to std::terminate's abort.
        let mut out = Vec::new();
        let mut s = at_initial_break(launch(&["cxx-terminate"]), &mut out);
        let pid = live_of(&s).current;
        s.execute_line("sxi eh");
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "the abort breaks");
        assert!(live_of(&s)
            .throw_breakpoints(pid, ThrowKind::Cxx)
            .is_empty());
        assert_eq!(s.execute_line("q"), Flow::Ended);
        drop(s);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(!text.contains("C++ EH exception"), "{text}");
        assert!(text.contains("Assertion failure - code 00000006"), "{text}");

        // `sxe eh` at the initial break.
        let mut out = Vec::new();
        let mut s = at_initial_break(launch(&["cxx-terminate"]), &mut out);
        let pid = live_of(&s).current;
        s.execute_line("sxe eh");
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "the throw breaks");
        let at = live_of(&s).throw_breakpoints(pid, ThrowKind::Cxx);
        assert!(!at.is_empty());
        let pc = s.current_regs().unwrap().rip;
        assert!(
            at.contains(&pc),
            "stopped at {pc:#x}, breakpoints at {at:x?}"
        );
        assert!(
            s.symbolize(pc).ends_with("!__cxa_throw"),
            "{}",
            s.symbolize(pc)
        );
        for &a in &at {
            assert_eq!(raw_byte(&s, a), 0xcc);
        }
        assert!(live_of(&s).breakpoints.is_empty(), "not a user breakpoint");
        s.execute_line("sxi eh");
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "the abort breaks");
        assert!(live_of(&s)
            .throw_breakpoints(pid, ThrowKind::Cxx)
            .is_empty());
        for &a in &at {
            assert_ne!(raw_byte(&s, a), 0xcc, "the byte at {a:#x} is back");
        }
        assert_eq!(s.execute_line("q"), Flow::Ended);
        drop(s);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(
            text.matches("C++ EH exception - code e06d7363 (first chance)")
                .count(),
            1,
            "{text}"
        );
        let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what}\n{text}"));
        assert!(at("C++ EH exception") < at("Assertion failure"), "{text}");
    }

    /// `bu` of a module not loaded yet was refused (the symbol did not
    /// resolve) and `bp5` took the next free id instead of 5. Now the `bu`
    /// is kept, placed when `dlopen` loads libm (before its initialisers
    /// run) and unresolved again when `dlclose` unloads it; `bp5` is
    /// breakpoint 5, and naming it again (or its address) redefines it.
    #[test]
    fn bu_waits_for_its_module_and_bp_n_takes_its_id() {
        let loader = coroner_crashers::crasher_path()
            .expect("crasher binary")
            .with_file_name("dlopener");
        let cmd = [loader.into_os_string(), OsString::from("libm.so.6")];
        let mut out = Vec::new();
        let mut s = at_initial_break(Live::launch(&cmd, true).expect("launch dlopener"), &mut out);
        let expr = |t: &str| parse_expr(t).unwrap();
        let bu = s.set_breakpoint(true, None, &expr("libm!cos"), None);
        assert_eq!(bu, Ok(BpSet::New(0)));
        {
            let b = &live_of(&s).breakpoints[0];
            assert!(b.unresolved && b.deferred && b.address == 0, "{b:?}");
        }
        // bp5 on two places in turn: one breakpoint 5, at the second.
        let first = s.resolve_symbol("libc!dlopen").expect("libc!dlopen");
        let second = s.resolve_symbol("libc!dlclose").expect("libc!dlclose");
        assert_eq!(
            s.set_breakpoint(false, Some(5), &expr("libc!dlopen"), None),
            Ok(BpSet::New(5))
        );
        assert_eq!(raw_byte(&s, first), 0xcc);
        assert_eq!(
            s.set_breakpoint(false, Some(5), &expr("libc!dlclose"), None),
            Ok(BpSet::Redefined(5))
        );
        assert_ne!(raw_byte(&s, first), 0xcc, "the old place is given back");
        assert_eq!(raw_byte(&s, second), 0xcc);
        // No id: the first free one (1); at 5's address: 5 again.
        assert_eq!(
            s.set_breakpoint(false, None, &expr("libc!dlopen"), None),
            Ok(BpSet::New(1))
        );
        assert_eq!(
            s.set_breakpoint(false, None, &expr("libc!dlclose"), None),
            Ok(BpSet::Redefined(5))
        );
        s.execute_line("bc 1");
        let ids: Vec<u32> = live_of(&s).breakpoints.iter().map(|b| b.id).collect();
        assert_eq!(ids, [0, 5]);

        s.execute_line("sxe ld:libm*");
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "libm's load breaks");
        let cos = s.resolve_symbol("libm!cos").expect("libm is loaded");
        {
            let b = &live_of(&s).breakpoints[0];
            assert!(!b.unresolved && b.address == cos, "{b:?}");
        }
        assert_eq!(raw_byte(&s, cos), 0xcc);
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "a breakpoint");
        let mut rip = s.current_regs().unwrap().rip;
        if rip == cos {
            // glibc binds libm's own use of `cos` while dlopen relocates
            // it, after the load event: its resolver (`cos` is an IFUNC)
            // runs, and the `bu` is hit.
            assert_eq!(s.execute_line("g"), Flow::Go);
            assert!(s.run_until_break().unwrap(), "breakpoint 5 (dlclose)");
            rip = s.current_regs().unwrap().rip;
        }
        assert_eq!(rip, second, "{} {:?}", s.symbolize(rip), s.last_event);
        assert_eq!(s.execute_line("g"), Flow::Go);
        assert!(s.run_until_break().unwrap(), "the exit breaks");
        {
            let b = &live_of(&s).breakpoints[0];
            assert!(b.unresolved && b.address == 0, "libm went away: {b:?}");
        }
        assert_eq!(s.execute_line("q"), Flow::Ended);
        drop(s);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.contains("breakpoint 5 redefined"), "{text}");
        assert!(text.contains("Breakpoint 5 hit"), "{text}");
        assert!(text.matches("Breakpoint 0 hit").count() <= 1, "{text}");
        let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what}\n{text}"));
        assert!(at("loaded libm.so.6") < at("Breakpoint 5 hit"), "{text}");
        assert!(at("unloaded libm.so.6") < at("Exit process"), "{text}");
        assert!(!text.contains("cannot"), "{text}");
    }
}
