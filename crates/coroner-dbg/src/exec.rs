//! Running parsed commands against the session's target, with CDB's output.
//!
//! Owns: one function per command family, the expression context
//! (registers, symbols, memory), and the prompt loop.
//!
//! Must not: let an execution command touch a dump (it says a dump cannot
//! run), or let a command error end the session (errors are printed and
//! the prompt comes back).

use crate::command::{
    parse_line, AssertCommand, BpIds, Command, DisplayKind, Disposition, DumpCommand, DumpKind,
    ExrTarget, GoKind, QuitKind, Range, RegArg, StackKind, SxVerbRaw, ThreadSel,
};
use crate::disasm::{disassemble, fmt_addr, is_call};
use crate::expr::{format_evaluate, register_index, Expr, ExprContext};
use crate::filters::{AssertAction, SxCommand, SxVerb};
use crate::format;
use crate::live::BpAction as LiveBp;
use crate::session::{frame_regs, kind_name, Session, SessionEnd, TargetBox};
use crate::target::{Target as _, TargetKind};
use crate::wildcard::Pattern;
use coroner_dump::{DumpFormat, DumpLevel, DumpOptions, NoProgress};
use coroner_types::{CrashContext, SigInfo, ThreadRegs, Tid, UserRegs};
use std::fmt::Write as _;
use std::path::PathBuf;

/// What the session does after a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Stay at the prompt.
    Stay,
    /// The target was resumed: wait for its next event.
    Go,
    /// The session is over.
    Ended,
}

/// Where commands come from.
pub trait LineSource {
    /// The next line, or `None` at end of input. `prompt` is shown first
    /// when interactive.
    fn next_line(&mut self, prompt: &str) -> Option<String>;
}

/// Lines from any reader (stdin when it is not a terminal, a `-cf` file).
pub struct ReaderLines<R: std::io::BufRead>(pub R);

impl<R: std::io::BufRead> LineSource for ReaderLines<R> {
    fn next_line(&mut self, _prompt: &str) -> Option<String> {
        let mut s = String::new();
        match self.0.read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

const DEFAULT_FRAMES: usize = 256;

impl ExprContext for Session<'_> {
    fn register(&self, name: &str) -> Option<u64> {
        let regs = self.current_regs().ok()?;
        let name = name.trim_start_matches('@').to_ascii_lowercase();
        match name.as_str() {
            "$ip" => return Some(regs.rip),
            "$sp" | "$csp" => return Some(regs.rsp),
            "$exentry" => return None,
            // The return address of the current function (`g @$ra`).
            "$ra" => return self.walk(&regs, 2).get(1).map(|f| f.pc),
            _ => {}
        }
        let r = register_index(&name)?;
        let words = regs.to_words();
        Some(r.extract(*words.get(r.word)?))
    }
    fn symbol(&self, name: &str) -> Option<u64> {
        self.resolve_symbol(name)
    }
    fn read_memory(&self, addr: u64, size: usize) -> Option<u64> {
        let t = self.target()?;
        let mut b = [0u8; 8];
        let size = size.min(8);
        (t.read(addr, &mut b[..size]) == size).then(|| u64::from_le_bytes(b))
    }
}

impl Session<'_> {
    fn eval(&self, e: &Expr) -> Result<u64, String> {
        e.eval(self, self.radix)
            .map_err(|err| format!("{err} in '{e}'"))
    }

    /// An execution command: a live target in an invasive session.
    fn need_execution(&self, what: &str) -> Result<(), String> {
        if self.opts.noninvasive && matches!(self.target, TargetBox::Live(_)) {
            return Err(format!(
                "a noninvasive session (-pv) cannot {what}: the target only stays stopped for inspection; use .detach or q"
            ));
        }
        self.need_live(what)
    }

    fn need_live(&self, what: &str) -> Result<(), String> {
        match &self.target {
            TargetBox::Live(_) => Ok(()),
            t => Err(format!(
                "a {} cannot {what}: there is no process to run",
                kind_name(t)
            )),
        }
    }

    /// Parse and run one line. Errors are printed.
    pub fn execute_line(&mut self, line: &str) -> Flow {
        let cmds = match parse_line(line) {
            Ok(c) => c,
            Err(crate::command::CommandError::Empty) => return Flow::Stay,
            Err(e) => {
                self.say(&format!("{e}"));
                return Flow::Stay;
            }
        };
        for cmd in cmds {
            match self.execute(&cmd) {
                Ok(Flow::Stay) => {}
                Ok(other) => return other,
                Err(msg) => {
                    self.say(&msg);
                    // CDB stops a command line at the first failing command.
                    return Flow::Stay;
                }
            }
        }
        Flow::Stay
    }

    /// Run one command.
    pub fn execute(&mut self, cmd: &Command) -> Result<Flow, String> {
        match cmd {
            Command::Comment(_) => Ok(Flow::Stay),
            Command::Echo(t) => {
                self.say(t);
                Ok(Flow::Stay)
            }
            Command::Help { .. } => {
                self.say(HELP);
                Ok(Flow::Stay)
            }
            Command::Evaluate(e) => {
                let v = self.eval(e)?;
                self.say(&format_evaluate(v));
                Ok(Flow::Stay)
            }
            Command::Go {
                kind,
                start,
                breaks,
            } => self.go(*kind, start.as_ref(), breaks),
            Command::Step { start, count } => self.step(true, start.as_ref(), count.as_ref()),
            Command::Trace { start, count } => self.step(false, start.as_ref(), count.as_ref()),
            Command::Quit(k) => self.quit(*k),
            Command::Detach(d) => self.detach(*d, false),
            Command::Abandon(d) => self.detach(*d, true),
            Command::Kill => {
                self.need_live("be killed")?;
                self.finish(SessionEnd::Killed);
                Ok(Flow::Ended)
            }
            Command::ChildDbg(on) => {
                self.need_execution("debug child processes")?;
                if let Some(on) = on {
                    self.child_debugging = *on;
                    if let Some(l) = self.live() {
                        l.debug_children = *on;
                    }
                }
                let msg = if self.child_debugging {
                    "Processes created by the current process will be debugged"
                } else {
                    "Processes created by the current process will not be debugged"
                };
                self.say(msg);
                Ok(Flow::Stay)
            }
            Command::LastEvent => {
                let text = match &self.last_event {
                    Some(e) => format!("Last event: {e}"),
                    None => "Last event: <none>".to_string(),
                };
                self.say(&text);
                Ok(Flow::Stay)
            }
            Command::Exr(t) => self.exr(t),
            Command::Ecxr => {
                let e = self
                    .target()
                    .and_then(|t| t.exception())
                    .ok_or("Unable to get exception context, no exception in the current event")?;
                self.context = Some(e.regs);
                self.tid = Some(e.tid);
                self.show_regs_and_instruction()?;
                Ok(Flow::Stay)
            }
            Command::Cxr(None) => {
                self.context = None;
                Ok(Flow::Stay)
            }
            Command::Cxr(Some(addr)) => {
                let a = self.eval(addr)?;
                let regs = self.read_ucontext(a)?;
                self.context = Some(regs);
                self.show_regs_and_instruction()?;
                Ok(Flow::Stay)
            }
            Command::JdInfo(addr) => {
                let a = self.eval(addr)?;
                self.jdinfo(a)?;
                Ok(Flow::Stay)
            }
            Command::Dump(d) => {
                self.dump(d)?;
                Ok(Flow::Stay)
            }
            Command::Sx { verb, rest } => {
                self.sx(*verb, rest)?;
                Ok(Flow::Stay)
            }
            Command::Assert(a) => {
                self.assert_cmd(a)?;
                Ok(Flow::Stay)
            }
            Command::Stack { kind, frames } => {
                let n = match frames {
                    Some(e) => self.eval(e)? as usize,
                    None => DEFAULT_FRAMES,
                };
                self.stack(*kind, n)?;
                Ok(Flow::Stay)
            }
            Command::Registers(args) => {
                self.registers(args)?;
                Ok(Flow::Stay)
            }
            Command::ThreadList(sel) => {
                let text = self.thread_list(sel)?;
                self.say(&text);
                Ok(Flow::Stay)
            }
            Command::ThreadSwitch(sel) => {
                let tid = self.select_thread(sel)?;
                self.tid = Some(tid);
                self.context = None;
                self.show_regs_and_instruction()?;
                Ok(Flow::Stay)
            }
            Command::ThreadApply { threads, command } => {
                let tids: Vec<Tid> = match threads {
                    ThreadSel::All => self
                        .target()
                        .map(|t| t.threads().iter().map(|t| t.tid).collect())
                        .unwrap_or_default(),
                    sel => vec![self.select_thread(sel)?],
                };
                let saved = (self.tid, self.context);
                for tid in tids {
                    self.tid = Some(tid);
                    self.context = None;
                    let line =
                        self.thread_list(&ThreadSel::Index(self.thread_index_of(tid) as u32))?;
                    self.say(&format!("\n{line}"));
                    if let Err(e) = self.execute(command) {
                        self.say(&e);
                    }
                }
                (self.tid, self.context) = saved;
                Ok(Flow::Stay)
            }
            Command::ProcessStatus => {
                let t = self.target().ok_or("no target")?;
                let how = match t.kind() {
                    TargetKind::Live => "",
                    TargetKind::Minidump | TargetKind::Core => "\tdump",
                };
                let exe = t.exe();
                let text = format!(".  0\tid: {:x}{how}\tname: {exe}", t.pid());
                self.say(&text);
                Ok(Flow::Stay)
            }
            Command::Modules { verbose, pattern } => {
                self.modules(*verbose, pattern.as_deref())?;
                Ok(Flow::Stay)
            }
            Command::Display { kind, addr, range } => {
                self.display(*kind, addr.as_ref(), range.as_ref())?;
                Ok(Flow::Stay)
            }
            Command::Unassemble { addr, range } => {
                self.unassemble(addr.as_ref(), range.as_ref())?;
                Ok(Flow::Stay)
            }
            Command::Breakpoint {
                deferred,
                id,
                location,
                commands,
            } => {
                self.need_execution("have breakpoints")?;
                let loc = location
                    .as_ref()
                    .ok_or("bp needs an address or module!symbol")?;
                self.set_breakpoint(*deferred, *id, loc, commands.clone())?;
                Ok(Flow::Stay)
            }
            Command::BreakpointList => {
                let text = self.breakpoint_list();
                if !text.is_empty() {
                    self.say(&text);
                }
                Ok(Flow::Stay)
            }
            Command::BreakpointEdit { action, ids } => {
                self.need_execution("have breakpoints")?;
                let l = self.live().ok_or("no live target")?;
                let all: Vec<u32> = l.breakpoints.iter().map(|b| b.id).collect();
                let chosen: Vec<u32> = match ids {
                    BpIds::All => all,
                    BpIds::List(r) => all
                        .into_iter()
                        .filter(|id| r.iter().any(|(a, b)| a <= id && id <= b))
                        .collect(),
                };
                let act = match action {
                    crate::command::BpAction::Clear => LiveBp::Clear,
                    crate::command::BpAction::Disable => LiveBp::Disable,
                    crate::command::BpAction::Enable => LiveBp::Enable,
                };
                for id in chosen {
                    l.change_breakpoint(id, act).map_err(|e| e.to_string())?;
                }
                Ok(Flow::Stay)
            }
            Command::Examine { pattern } => {
                self.examine(pattern)?;
                Ok(Flow::Stay)
            }
            Command::ListNear(addr) => {
                let a = match addr {
                    Some(e) => self.eval(e)?,
                    None => self.current_regs().map_err(|e| e.to_string())?.rip,
                };
                let text = format!("({})   {}", fmt_addr(a), self.symbolize(a));
                self.say(&text);
                Ok(Flow::Stay)
            }
        }
    }

    fn thread_index_of(&self, tid: Tid) -> usize {
        self.target()
            .and_then(|t| t.threads().iter().position(|th| th.tid == tid))
            .unwrap_or(0)
    }

    fn show_regs_and_instruction(&mut self) -> Result<(), String> {
        let text = self.context_text().map_err(|e| e.to_string())?;
        self.say(&text);
        Ok(())
    }

    // ----- execution ------------------------------------------------------

    fn go(&mut self, kind: GoKind, start: Option<&Expr>, breaks: &[Expr]) -> Result<Flow, String> {
        self.need_execution("run")?;
        if kind == GoKind::NotHandled && self.pending.as_ref().is_some_and(|p| p.breakpoint) {
            return Err("^ gn is not allowed at a breakpoint: passing SIGTRAP on would kill the target; use gN".into());
        }
        if let Some(s) = start {
            let pc = self.eval(s)?;
            self.set_pc(pc)?;
        }
        // Break addresses are one-shot: not listed by `bl`, gone at the
        // next break (whatever it is).
        for b in breaks {
            let a = self.eval(b)?;
            self.live()
                .ok_or("no live target")?
                .add_go_address(a)
                .map_err(|e| e.to_string())?;
        }
        let handled = match kind {
            GoKind::Go => None,
            GoKind::Handled => Some(true),
            GoKind::NotHandled | GoKind::NotHandledBreakpoint => Some(false),
        };
        match self.continue_pending(handled) {
            Ok(true) => Ok(Flow::Stay),
            Ok(false) => Ok(Flow::Go),
            Err(e) => Err(e.to_string()),
        }
    }

    fn set_pc(&mut self, pc: u64) -> Result<(), String> {
        let tid = self.tid.ok_or("no current thread")?;
        let mut r = self
            .target()
            .ok_or("no target")?
            .regs(tid)
            .map_err(|e| e.to_string())?;
        r.rip = pc;
        self.live()
            .ok_or("no live target")?
            .set_regs(tid, &r)
            .map_err(|e| e.to_string())
    }

    fn step(
        &mut self,
        over: bool,
        start: Option<&Expr>,
        count: Option<&Expr>,
    ) -> Result<Flow, String> {
        self.need_execution("step")?;
        if let Some(s) = start {
            let pc = self.eval(s)?;
            self.set_pc(pc)?;
        }
        let n = match count {
            Some(c) => self.eval(c)?.max(1),
            None => 1,
        };
        for i in 0..n {
            let tid = self.tid.ok_or("no current thread")?;
            // Stepping from an exception: the exception counts as handled.
            self.pending = None;
            let pc = self.current_regs().map_err(|e| e.to_string())?.rip;
            let mut code = [0u8; 16];
            let len = self.target().map(|t| t.read(pc, &mut code)).unwrap_or(0);
            let call_len = if over {
                is_call(&code[..len], pc)
            } else {
                None
            };
            let l = self.live().ok_or("no live target")?;
            let r = match call_len {
                Some(n) => l.step_over_call(tid, pc + n as u64, 0),
                None => l.single_step(tid, 0),
            };
            r.map_err(|e| e.to_string())?;
            if i + 1 < n {
                match self.run_until_break() {
                    Ok(true) => {}
                    Ok(false) => return Ok(Flow::Ended),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(Flow::Go)
    }

    fn quit(&mut self, k: QuitKind) -> Result<Flow, String> {
        match (k, &self.target) {
            (_, TargetBox::Dump(_)) | (_, TargetBox::None) => {
                self.end.get_or_insert(SessionEnd::EndOfInput);
                Ok(Flow::Ended)
            }
            (QuitKind::Detach, _) => self.detach(Disposition::Handled, false),
            (_, TargetBox::Live(_)) if self.opts.detach_on_quit => {
                self.detach(Disposition::Handled, false)
            }
            _ => {
                self.finish(SessionEnd::Killed);
                Ok(Flow::Ended)
            }
        }
    }

    fn detach(&mut self, d: Disposition, abandon: bool) -> Result<Flow, String> {
        if !matches!(self.target, TargetBox::Live(_)) {
            self.end.get_or_insert(SessionEnd::EndOfInput);
            self.target = TargetBox::None;
            return Ok(Flow::Ended);
        }
        let pending = self.pending.take();
        let (tid, sig) = match (&pending, d) {
            (Some(p), Disposition::NotHandled) if !p.breakpoint => (Some(p.tid), p.signo),
            (Some(p), _) => (Some(p.tid), 0),
            (None, _) => (None, 0),
        };
        if let TargetBox::Live(l) = std::mem::replace(&mut self.target, TargetBox::None) {
            l.detach(tid, sig, abandon).map_err(|e| e.to_string())?;
        }
        self.end = Some(if abandon {
            SessionEnd::Abandoned
        } else {
            SessionEnd::Detached
        });
        Ok(Flow::Ended)
    }

    /// End the session killing a live target.
    pub(crate) fn finish(&mut self, end: SessionEnd) {
        if let TargetBox::Live(l) = std::mem::replace(&mut self.target, TargetBox::None) {
            let _ = l.kill();
        }
        self.end.get_or_insert(end);
    }

    // ----- exceptions -------------------------------------------------------

    fn exr(&mut self, t: &ExrTarget) -> Result<Flow, String> {
        let (si, pc) = match t {
            ExrTarget::Last => {
                let e = self
                    .target()
                    .and_then(|t| t.exception())
                    .ok_or("no exception recorded for the last event")?;
                (e.siginfo, e.regs.rip)
            }
            ExrTarget::At(addr) => {
                let a = self.eval(addr)?;
                let si = self.read_siginfo(a)?;
                (si, si.fault_address().unwrap_or(0))
            }
        };
        let text = self.exr_text(&si, pc);
        self.say(&text);
        Ok(Flow::Stay)
    }

    fn exr_text(&self, si: &SigInfo, pc: u64) -> String {
        let sym = self.symbol_name(pc);
        let access = self.access_kind(si, pc);
        format::exception_record(si, pc, sym.as_deref(), access)
    }

    /// Read, write or execute, from the faulting instruction.
    fn access_kind(&self, si: &SigInfo, pc: u64) -> Option<&'static str> {
        let addr = si.fault_address()?;
        if addr == pc {
            return Some("execute");
        }
        let t = self.target()?;
        let mut code = [0u8; 16];
        let n = t.read(pc, &mut code);
        format::memory_access(&code[..n], pc)
    }

    fn read_siginfo(&self, addr: u64) -> Result<SigInfo, String> {
        let t = self.target().ok_or("no target")?;
        let mut b = [0u8; 128];
        if t.read(addr, &mut b) != 128 {
            return Err(format!("Cannot read the siginfo_t at {}", fmt_addr(addr)));
        }
        Ok(SigInfo::from_bytes(&b))
    }

    /// The general registers of the `ucontext_t` at `addr` (`.cxr`).
    fn read_ucontext(&self, addr: u64) -> Result<UserRegs, String> {
        let t = self.target().ok_or("no target")?;
        coroner_dump::jit::context_from_ucontext(t.memory(), addr)
            .map(|r| r.gp)
            .map_err(|e| e.to_string())
    }

    /// `.jdinfo ADDR`: the JIT block's thread, exception record and
    /// context, then make that context current.
    fn jdinfo(&mut self, addr: u64) -> Result<(), String> {
        let t = self.target().ok_or("no target")?;
        let info =
            coroner_dump::jit::read_jit_block(t.memory(), addr).map_err(|e| e.to_string())?;
        let tid = Tid(info.tid as i32);
        let si = self.read_siginfo(info.siginfo)?;
        let ctx = self.read_ucontext(info.ucontext)?;
        let idx = self.thread_index_of(tid);
        let mut out = format!("----- Exception occurred on thread {idx}:{:x}\n", tid.0);
        if let Ok(now) = t.regs(tid) {
            out.push_str(&self.current_instruction(now.rip));
            out.push('\n');
        }
        out.push_str(&format!(
            "\n----- Exception record at {}:\n",
            fmt_addr(info.siginfo)
        ));
        out.push_str(&self.exr_text(&si, ctx.rip));
        out.push_str(&format!(
            "\n----- Context record at {}:\n",
            fmt_addr(info.ucontext)
        ));
        out.push_str(&format::registers(&ctx));
        out.push_str(&self.current_instruction(ctx.rip));
        self.say(&out);
        self.tid = Some(tid);
        self.context = Some(ctx);
        Ok(())
    }

    // ----- .dump ------------------------------------------------------------

    fn dump(&mut self, d: &DumpCommand) -> Result<(), String> {
        let (format, level, label) = match d.kind {
            DumpKind::Full { .. } => (
                DumpFormat::ElfCore,
                DumpLevel::Full,
                "full user dump (ELF core)",
            ),
            DumpKind::Mini(m) if m.full_memory => {
                (DumpFormat::Minidump, DumpLevel::Full, "mini user dump")
            }
            DumpKind::Mini(m) if m.private_rw_memory || m.data_segments => {
                (DumpFormat::Minidump, DumpLevel::MiniPlus, "mini user dump")
            }
            DumpKind::Mini(_) => (DumpFormat::Minidump, DumpLevel::Mini, "mini user dump"),
        };
        if matches!(self.target, TargetBox::Dump(_)) {
            return self.dump_from_dump(d, format, level, label);
        }
        self.need_live("be dumped by .dump")?;
        let mut path = PathBuf::from(&d.file);
        let pid = self.target().map(|t| t.pid()).unwrap_or(0);
        if d.unique {
            path = unique_name(&path, pid);
        }
        let jit_addr = match &d.jit_info {
            Some(e) => Some(self.eval(e)?),
            None => None,
        };
        let last = self.target().and_then(|t| t.exception());
        let l = self.live().ok_or("no live target")?;
        l.stop_all().map_err(|e| e.to_string())?;
        l.remove_all_breakpoints();
        let att = l.adopt_for_dump();
        let crash = match jit_addr {
            Some(a) => Some(
                coroner_dump::crash_context_from_jit_block(att.memory(), a)
                    .map_err(|e| e.to_string())?,
            ),
            None => last.map(|e| CrashContext {
                tid: e.tid,
                siginfo: e.siginfo,
                regs: ThreadRegs {
                    gp: e.regs,
                    fp: None,
                    xstate: None,
                },
            }),
        };
        let opts = DumpOptions {
            level,
            format,
            comment: d.comment.clone(),
            crash,
            durable: true,
        };
        let msg = format!("Creating {} - {label}", path.display());
        let result = coroner_dump::dump_attached(&att, &path, d.overwrite, &opts, &NoProgress);
        let reinsert = self.live().map(|l| l.reinsert_breakpoints());
        self.say(&msg);
        match result {
            Ok(_) => self.say("Dump successfully written"),
            Err(e) => return Err(format!("Dump creation failed: {e:#}")),
        }
        if let Some(Err(e)) = reinsert {
            return Err(e.to_string());
        }
        Ok(())
    }

    /// `.dump` on a dump target: a new dump written from the old one (spec
    /// §8). From an ELF core, any level (memory the core lacks is missing
    /// from the new dump too, as a soft error). A minidump holds only its
    /// level's memory: at its own level the new minidump is a copy of it
    /// (every stream it has); at a smaller level, or as an ELF core, it is
    /// written anew from a full minidump's streams and memory.
    fn dump_from_dump(
        &mut self,
        d: &DumpCommand,
        format: DumpFormat,
        level: DumpLevel,
        label: &str,
    ) -> Result<(), String> {
        let jit_addr = match &d.jit_info {
            Some(e) => Some(self.eval(e)?),
            None => None,
        };
        let TargetBox::Dump(t) = &self.target else {
            return Err("no dump target".into());
        };
        let mut path = PathBuf::from(&d.file);
        if d.unique {
            path = unique_name(&path, t.pid());
        }
        let have = t.level();
        let from_minidump = t.kind() == TargetKind::Minidump;
        let copy = from_minidump && format == DumpFormat::Minidump && level == have;
        if from_minidump && !copy && have != DumpLevel::Full {
            let want = match format {
                DumpFormat::ElfCore => "an ELF core".to_string(),
                DumpFormat::Minidump => format!("a {level} minidump"),
            };
            return Err(format!(
                "cannot write {want} from this {have} minidump: it lacks the memory. A minidump \
                 is written again at its own level (a copy: {}) or, from a full one, at any level",
                level_option(have)
            ));
        }
        if copy && (d.comment.is_some() || jit_addr.is_some()) {
            return Err(format!(
                "/c and /j write a new dump; at its own level ({}) a minidump is copied as it is",
                level_option(have)
            ));
        }
        let result = if copy {
            let src = t.path().to_path_buf();
            coroner_dump::output::write_published(&path, d.overwrite, true, |out| {
                copy_dump(&src, out)
            })
        } else {
            let rec = t.recorded().map_err(|e| e.to_string())?;
            let crash = match jit_addr {
                Some(a) => Some(
                    coroner_dump::crash_context_from_jit_block(rec.memory, a)
                        .map_err(|e| e.to_string())?,
                ),
                // A core whose signal names a thread it has no registers
                // for: no exception (as `coroner analyze` converts it).
                None => rec.crash.filter(|c| {
                    rec.snapshot
                        .threads
                        .iter()
                        .any(|th| th.tid == c.tid && th.regs.is_some())
                }),
            };
            let opts = DumpOptions {
                level,
                format,
                comment: d.comment.clone(),
                crash,
                durable: true,
            };
            coroner_dump::output::write_published(&path, d.overwrite, true, |out| {
                coroner_dump::write_dump(out, &rec.snapshot, rec.memory, &opts, &NoProgress)
            })
        };
        self.say(&format!("Creating {} - {label}", path.display()));
        match result {
            Ok(_) => {
                self.say("Dump successfully written");
                Ok(())
            }
            Err(e) => Err(format!("Dump creation failed: {e:#}")),
        }
    }

    // ----- filters ------------------------------------------------------------

    fn sx(&mut self, verb: SxVerbRaw, rest: &str) -> Result<(), String> {
        let v = match verb {
            SxVerbRaw::List => {
                let text = self.filters.listing();
                self.say(&text);
                return Ok(());
            }
            SxVerbRaw::Reset => {
                self.filters.reset();
                return Ok(());
            }
            SxVerbRaw::E => SxVerb::E,
            SxVerbRaw::D => SxVerb::D,
            SxVerbRaw::N => SxVerb::N,
            SxVerbRaw::I => SxVerb::I,
            SxVerbRaw::Minus => SxVerb::Minus,
        };
        let cmd = SxCommand::parse(v, rest).map_err(|e| e.to_string())?;
        let modules = self.target().map(|t| t.modules()).unwrap_or_default();
        self.filters
            .apply_with(&cmd, self.radix, &|name: &str| {
                modules
                    .iter()
                    .find(|m| {
                        let f = m.file_name();
                        f.eq_ignore_ascii_case(name)
                            || f.split('.')
                                .next()
                                .is_some_and(|s| s.eq_ignore_ascii_case(name))
                    })
                    .map(|m| m.base)
            })
            .map_err(|e| e.to_string())
    }

    fn assert_cmd(&mut self, a: &AssertCommand) -> Result<(), String> {
        // The default address is the current assertion's (at an `asrt`
        // stop the pc is inside libc's abort, the assertion is the caller
        // it unwinds to), else the current pc.
        let site = self.pending.as_ref().and_then(|p| p.assert_site);
        let pc = || match site {
            Some(a) => Ok(a),
            None => self
                .current_regs()
                .map(|r| r.rip)
                .map_err(|e| e.to_string()),
        };
        match a {
            AssertCommand::List => {
                let text = self.asserts.listing();
                self.say(&text);
            }
            AssertCommand::Break(addr)
            | AssertCommand::Ignore(addr)
            | AssertCommand::Delete(addr) => {
                let at = match addr {
                    Some(e) => self.eval(e)?,
                    None => pc()?,
                };
                match a {
                    AssertCommand::Break(_) => self.asserts.set(at, AssertAction::Break),
                    AssertCommand::Ignore(_) => self.asserts.set(at, AssertAction::Ignore),
                    _ => {
                        self.asserts.delete(at);
                    }
                }
            }
            AssertCommand::Clear => self.asserts.clear(),
        }
        Ok(())
    }

    // ----- inspection -------------------------------------------------------

    fn stack(&mut self, kind: StackKind, max: usize) -> Result<(), String> {
        let regs = self.current_regs().map_err(|e| e.to_string())?;
        let frames = self.walk(&regs, max.max(1));
        let mut s = String::new();
        if self.context.is_some() {
            s.push_str("  *** Stack trace for last set context - .thread/.cxr resets it\n");
        }
        let numbered = matches!(kind, StackKind::Kn | StackKind::Kv | StackKind::Kp);
        let args = matches!(kind, StackKind::Kb | StackKind::Kv);
        if numbered {
            s.push_str(" # ");
        }
        if args {
            s.push_str("Child-SP          RetAddr               : Args to Child                                                           : Call Site\n");
        } else {
            s.push_str("Child-SP          RetAddr               Call Site\n");
        }
        let t = self.target().ok_or("no target")?;
        for (i, f) in frames.iter().enumerate() {
            let r = frame_regs(f, &regs);
            let ret = frames.get(i + 1).map(|n| n.pc).unwrap_or(0);
            if numbered {
                let _ = write!(s, "{i:02x} ");
            }
            let _ = write!(s, "{} {}     ", fmt_addr(r.rsp), fmt_addr(ret));
            if args {
                let words: Vec<String> = (0..4)
                    .map(|k| fmt_addr(t.read_u64(r.rsp.wrapping_add(8 + 8 * k)).unwrap_or(0)))
                    .collect();
                let _ = write!(s, ": {} : ", words.join(" "));
            }
            // A caller's pc is a return address: look up the call itself.
            let lookup = if i == 0 || f.trust == coroner_symbols::cfi::FrameTrust::SignalFrame {
                f.pc
            } else {
                f.pc.wrapping_sub(1)
            };
            let mut site = self.symbolize(f.pc);
            if let Some(Some((file, line))) = self.with_image(lookup, |img| img.line_at(lookup)) {
                let _ = write!(site, " [{file} @ {line}]");
            }
            s.push_str(&site);
            s.push('\n');
        }
        self.say(&s);
        Ok(())
    }

    fn registers(&mut self, args: &[RegArg]) -> Result<(), String> {
        if args.is_empty() {
            return self.show_regs_and_instruction();
        }
        for a in args {
            match a {
                RegArg::Show(name) => {
                    let v = self
                        .register(name)
                        .ok_or_else(|| format!("Bad register error at '{name}'"))?;
                    let width = register_index(name)
                        .map(|r| r.bits.div_ceil(4) as usize)
                        .unwrap_or(16);
                    self.say(&format!("{name}={v:0width$x}"));
                }
                RegArg::Set(name, e) => {
                    self.need_execution("change registers")?;
                    if self.context.is_some() {
                        return Err("registers of a saved context (.cxr/.ecxr) cannot be changed; use .cxr to reset".into());
                    }
                    let v = self.eval(e)?;
                    let r = register_index(name)
                        .ok_or_else(|| format!("Bad register error at '{name}'"))?;
                    let tid = self.tid.ok_or("no current thread")?;
                    let regs = self
                        .target()
                        .ok_or("no target")?
                        .regs(tid)
                        .map_err(|e| e.to_string())?;
                    let mut words = regs.to_words();
                    let slot = words
                        .get_mut(r.word)
                        .ok_or_else(|| format!("register {name} cannot be set"))?;
                    *slot = r.insert(*slot, v);
                    let new = UserRegs::from_words(&words);
                    self.live()
                        .ok_or("no live target")?
                        .set_regs(tid, &new)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    fn select_thread(&self, sel: &ThreadSel) -> Result<Tid, String> {
        let t = self.target().ok_or("no target")?;
        let threads = t.threads();
        match sel {
            ThreadSel::Index(i) => threads
                .get(*i as usize)
                .map(|t| t.tid)
                .ok_or_else(|| format!("Illegal thread error: there is no thread {i}")),
            ThreadSel::Current | ThreadSel::All => {
                self.tid.ok_or_else(|| "no current thread".to_string())
            }
            ThreadSel::Event => self.event_tid.ok_or_else(|| "no event thread".to_string()),
            ThreadSel::Tid(e) => {
                let v = self.eval(e)? as i32;
                threads
                    .iter()
                    .find(|t| t.tid.0 == v)
                    .map(|t| t.tid)
                    .ok_or_else(|| format!("Illegal thread error: no thread with id {v:x}"))
            }
        }
    }

    fn thread_list(&self, sel: &ThreadSel) -> Result<String, String> {
        let t = self.target().ok_or("no target")?;
        let pid = t.pid();
        let threads = t.threads();
        let only = match sel {
            ThreadSel::All => None,
            other => Some(self.select_thread(other)?),
        };
        let mut s = String::new();
        for (i, th) in threads.iter().enumerate() {
            if only.is_some_and(|o| o != th.tid) {
                continue;
            }
            let mark = if Some(th.tid) == self.tid {
                '.'
            } else if Some(th.tid) == self.event_tid {
                '#'
            } else {
                ' '
            };
            let _ = writeln!(
                s,
                "{mark}{i:3}  Id: {:x}.{:x} Suspend: 0 Unfrozen \"{}\"",
                pid, th.tid.0, th.name
            );
        }
        Ok(s.trim_end().to_string())
    }

    fn modules(&mut self, verbose: bool, pattern: Option<&str>) -> Result<(), String> {
        let t = self.target().ok_or("no target")?;
        let pat = match pattern {
            Some(p) => Some(Pattern::parse(p).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut s = String::from("start             end                 module name\n");
        for m in t.modules() {
            let (name, status) = self
                .with_module_image(&m, |img| (img.name(), img.status().as_str().to_string()))
                .unwrap_or_default();
            if pat.as_ref().is_some_and(|p| !p.matches_ci(&name)) {
                continue;
            }
            let _ = writeln!(
                s,
                "{} {}   {name:<16} ({status})",
                fmt_addr(m.base),
                fmt_addr(m.end)
            );
            if verbose {
                let _ = writeln!(s, "    Image path: {}", m.path);
                let _ = writeln!(
                    s,
                    "    Build id:   {}",
                    m.build_id.as_deref().unwrap_or("(none)")
                );
            }
        }
        self.say(&s);
        Ok(())
    }

    fn range_count(
        &self,
        range: Option<&Range>,
        start: u64,
        unit: u64,
        default: u64,
    ) -> Result<u64, String> {
        match range {
            None => Ok(default),
            Some(Range::Count { count, force }) => {
                let n = self.eval(count)?;
                if !force && n.saturating_mul(unit) > 512 * 1024 * 1024 {
                    return Err(format!(
                        "Range error: {n:#x} items is too large; use L? to force"
                    ));
                }
                Ok(n)
            }
            Some(Range::End(e)) => {
                let end = self.eval(e)?;
                Ok(end.saturating_sub(start).div_ceil(unit))
            }
        }
    }

    fn display(
        &mut self,
        kind: DisplayKind,
        addr: Option<&Expr>,
        range: Option<&Range>,
    ) -> Result<(), String> {
        let start = match addr {
            Some(e) => self.eval(e)?,
            None => self.current_regs().map_err(|e| e.to_string())?.rsp,
        };
        let t = self.target().ok_or("no target")?;
        let (unit, default) = display_unit(kind);
        let count = self.range_count(range, start, unit, default)?;
        let len = (count * unit) as usize;
        let mut buf = vec![0u8; len];
        let n = t.read(start, &mut buf);
        if n == 0 {
            return Err(format!("{}  ????????????????", fmt_addr(start)));
        }
        buf.truncate(n - n % unit as usize);
        let text = match display_numbers(kind, start, &buf) {
            Some(text) => text,
            None if matches!(kind, DisplayKind::Da | DisplayKind::Du) => {
                let text: String = if kind == DisplayKind::Da {
                    buf.iter()
                        .take_while(|b| **b != 0)
                        .map(|&b| {
                            if b.is_ascii_graphic() || b == b' ' {
                                b as char
                            } else {
                                '.'
                            }
                        })
                        .collect()
                } else {
                    let units: Vec<u16> = buf
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .take_while(|u| *u != 0)
                        .collect();
                    String::from_utf16_lossy(&units)
                };
                format!("{}  \"{text}\"\n", fmt_addr(start))
            }
            None => {
                // dps, dqs, dds: each value with its symbol.
                let mut s = String::new();
                let w = unit as usize;
                for (i, c) in buf.chunks_exact(w).enumerate() {
                    let mut b = [0u8; 8];
                    b[..w].copy_from_slice(c);
                    let v = u64::from_le_bytes(b);
                    let a = start + (i * w) as u64;
                    let sym = self.symbol_name(v).unwrap_or_default();
                    let val = if w == 8 {
                        fmt_addr(v)
                    } else {
                        format!("{v:08x}")
                    };
                    let _ = writeln!(s, "{}  {val} {sym}", fmt_addr(a));
                }
                s
            }
        };
        self.say(text.trim_end());
        Ok(())
    }

    fn unassemble(&mut self, addr: Option<&Expr>, range: Option<&Range>) -> Result<(), String> {
        let start = match addr {
            Some(e) => self.eval(e)?,
            None => self.current_regs().map_err(|e| e.to_string())?.rip,
        };
        let count = match range {
            None => 8,
            Some(Range::Count { count, .. }) => self.eval(count)?.min(4096) as usize,
            Some(Range::End(e)) => {
                let end = self.eval(e)?;
                (end.saturating_sub(start) as usize).min(4096 * 15)
            }
        };
        let t = self.target().ok_or("no target")?;
        let mut code = vec![0u8; (count * 15).min(65536)];
        let n = t.read(start, &mut code);
        code.truncate(n);
        let lines = disassemble(&code, start, count, &|a| self.symbol_name(a));
        let mut s = String::new();
        let mut last_fn: Option<String> = None;
        for l in &lines {
            let here = self.symbolize(l.address);
            let func = here.split('+').next().unwrap_or("").to_string();
            if last_fn.as_deref() != Some(func.as_str()) {
                let _ = writeln!(s, "{here}:");
                last_fn = Some(func);
            }
            s.push_str(&l.render());
            s.push('\n');
        }
        if lines.is_empty() {
            let _ = writeln!(s, "{} ??", fmt_addr(start));
        }
        self.say(s.trim_end());
        Ok(())
    }

    fn breakpoint_list(&mut self) -> String {
        let bps = match self.live() {
            Some(l) => l.breakpoints.clone(),
            None => return String::new(),
        };
        let mut s = String::new();
        for b in bps {
            let e = if b.enabled { 'e' } else { 'd' };
            // CDB lists a breakpoint whose module is not loaded with `u`
            // and its expression in place of the address.
            let _ = if b.unresolved {
                writeln!(
                    s,
                    "{:2} {e}u                     0001 (0001)  0:**** ({})",
                    b.id, b.spec
                )
            } else {
                writeln!(
                    s,
                    "{:2} {e} {}     0001 (0001)  0:**** {}",
                    b.id,
                    fmt_addr(b.address),
                    self.symbolize(b.address)
                )
            };
        }
        s.trim_end().to_string()
    }

    fn examine(&mut self, pattern: &str) -> Result<(), String> {
        let (mpat, spat) = pattern.split_once('!').ok_or("x needs module!pattern")?;
        let mp = Pattern::parse(mpat).map_err(|e| e.to_string())?;
        let sp = Pattern::parse(spat).map_err(|e| e.to_string())?;
        let t = self.target().ok_or("no target")?;
        let mut s = String::new();
        for m in t.modules() {
            self.with_module_image(&m, |img| {
                if !mp.matches_ci(&img.name()) {
                    return;
                }
                for sym in img.symbols() {
                    if sp.matches(&sym.name) || sp.matches(&sym.raw_name) {
                        let _ =
                            writeln!(s, "{} {}!{}", fmt_addr(sym.address), img.name(), sym.name);
                    }
                }
            });
        }
        self.say(s.trim_end());
        Ok(())
    }

    // ----- the loop -----------------------------------------------------------

    /// Run the session: for a live target, run to the first break; then
    /// read commands until the session ends or input runs out.
    pub fn interact(&mut self, input: &mut dyn LineSource) {
        let mut flow = if matches!(self.target, TargetBox::Live(_)) {
            Flow::Go
        } else {
            Flow::Stay
        };
        loop {
            if flow == Flow::Go {
                match self.run_until_break() {
                    Ok(true) => {}
                    Ok(false) => {
                        if self.end.is_some() && !matches!(self.end, Some(SessionEnd::TargetExited))
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        self.say(&format!("error: {e}"));
                        self.finish(SessionEnd::Killed);
                        return;
                    }
                }
            }
            if self.end.is_some() && !matches!(self.end, Some(SessionEnd::TargetExited)) {
                return;
            }
            if !self.initial_commands_done {
                self.initial_commands_done = true;
                if let Some(c) = self.opts.initial_commands.clone() {
                    self.say(&format!("Processing initial command '{c}'"));
                    flow = self.execute_line(&c);
                    if flow == Flow::Ended {
                        return;
                    }
                    continue;
                }
            }
            let prompt = self.prompt();
            let Some(line) = input.next_line(&prompt) else {
                // End of input is `q`, as in CDB (`qd` in a JIT session).
                let k = if self.eof_detaches {
                    QuitKind::Detach
                } else {
                    QuitKind::Quit
                };
                let _ = self.quit(k);
                self.end.get_or_insert(SessionEnd::EndOfInput);
                return;
            };
            if self.opts.echo_prompt {
                self.say(&format!("{prompt}{line}"));
            }
            flow = self.execute_line(&line);
            if flow == Flow::Ended {
                return;
            }
            if flow == Flow::Go && !matches!(self.target, TargetBox::Live(_)) {
                flow = Flow::Stay;
            }
        }
    }
}

/// The unit size of a `d*` command and its default count.
fn display_unit(kind: DisplayKind) -> (u64, u64) {
    match kind {
        DisplayKind::Db | DisplayKind::Da => (1, 0x80),
        DisplayKind::Dw | DisplayKind::Du => (2, 0x40),
        DisplayKind::Dd | DisplayKind::Dds => (4, 0x20),
        DisplayKind::Dq | DisplayKind::Dp => (8, 0x10),
        DisplayKind::Dps | DisplayKind::Dqs => (8, 0x10),
    }
}

/// `db`, `dw`, `dd`, `dq`, `dp`: the lines for `data` read at `addr`;
/// `None` for the string and symbol kinds.
fn display_numbers(kind: DisplayKind, addr: u64, data: &[u8]) -> Option<String> {
    match kind {
        DisplayKind::Db => Some(format::bytes_lines(addr, data)),
        DisplayKind::Dw | DisplayKind::Dd | DisplayKind::Dq | DisplayKind::Dp => {
            let (unit, _) = display_unit(kind);
            Some(format::numbers_lines(addr, data, unit as usize))
        }
        _ => None,
    }
}

/// The `.dump` option for a minidump level.
fn level_option(level: DumpLevel) -> &'static str {
    match level {
        DumpLevel::Mini => "/m",
        DumpLevel::MiniPlus => "/mw",
        DumpLevel::Full => "/ma",
    }
}

/// Copy the dump file `src` into `out` (a minidump written again at its own
/// level).
fn copy_dump(
    src: &std::path::Path,
    out: &mut std::fs::File,
) -> Result<coroner_dump::DumpStats, coroner_dump::DumpError> {
    let failed = |source| coroner_dump::DumpError::File {
        what: "copy the minidump",
        path: src.to_path_buf(),
        source,
    };
    let mut from = std::fs::File::open(src).map_err(failed)?;
    let bytes = std::io::copy(&mut from, out).map_err(failed)?;
    Ok(coroner_dump::DumpStats {
        bytes_written: bytes,
        ..Default::default()
    })
}

/// `/u`: `<stem>_<pid>_<YYYYMMDD-HHMMSS>.<ext>` (UTC), as spec §13.5.
fn unique_name(path: &std::path::Path, pid: u32) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = coroner_types::time::UtcTime::from_epoch(secs);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let name = format!(
        "{stem}_{pid}_{:04}{:02}{:02}-{:02}{:02}{:02}{ext}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    path.with_file_name(name)
}

const HELP: &str =
    "Execution: g gh gn gN p t q qd qq .detach [/h|/n] .abandon .kill .childdbg [0|1]
Events:    sx sxe sxd sxn sxi sx- sxr [-c \"cmd\"] [-c2 \"cmd\"] [-h] CODE   ah ahb ahi ahd ahc
Exception: .lastevent .exr ADDR|-1 .ecxr .cxr [ADDR] .jdinfo ADDR
Dumps:     .dump [/m[letters]|/ma|/mp|/f] [/o] [/u] [/c TEXT] [/j ADDR] FILE
Inspect:   k kb kn kp kv [N]  r [reg[=expr]]  ~ ~Ns ~* CMD  |  lm [v] [m PAT]
           db dw dd dq dp da du dps ADDR [L N]  u [ADDR] [L N]  x mod!pat  ln ADDR  ? EXPR
Breaks:    bp ADDR|mod!sym [\"cmds\"] bu bl bc bd be";

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `dw` printed dwords (it shared `dd`'s formatter).
    #[test]
    fn dw_prints_words() {
        let data: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            display_numbers(DisplayKind::Dw, 0x1000, &data).unwrap(),
            "00000000`00001000  0100 0302 0504 0706 0908 0b0a 0d0c 0f0e\n"
        );
        assert_eq!(
            display_numbers(DisplayKind::Dd, 0x1000, &data).unwrap(),
            "00000000`00001000  03020100 07060504 0b0a0908 0f0e0d0c\n"
        );
        assert_eq!(
            display_numbers(DisplayKind::Dq, 0x1000, &data).unwrap(),
            "00000000`00001000  07060504`03020100 0f0e0d0c`0b0a0908\n"
        );
        assert_eq!(display_unit(DisplayKind::Dw), (2, 0x40));
        assert!(display_numbers(DisplayKind::Da, 0x1000, &data).is_none());
    }

    #[test]
    fn unique_names_carry_pid_and_utc_time() {
        let p = unique_name(std::path::Path::new("dir/AeDebug.dmp"), 42);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("AeDebug_42_") && name.ends_with(".dmp"),
            "{name}"
        );
        assert_eq!(p.parent().unwrap(), std::path::Path::new("dir"));
    }
}
