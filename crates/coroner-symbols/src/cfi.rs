//! The stack unwinder for `coroner dbg`: from one thread's registers and a
//! way to read the target's memory (a live process, a minidump, an ELF
//! core), the chain of frames with every register that can be recovered.
//!
//! Owns: evaluating DWARF CFI (`.eh_frame` through `.eh_frame_hdr`'s search
//! table, else a sorted FDE index; then `.debug_frame`) with gimli, including
//! DWARF expressions for the CFA and for register rules; stepping through
//! the kernel's signal frame at glibc's `__restore_rt`; and a frame-pointer
//! fallback where a module has no CFI for the pc. Must not: panic on
//! garbage registers, memory or CFI; loop (the stack pointer must rise from
//! frame to frame, except across a signal frame, and `max_frames` bounds
//! the walk); read anything but through [`FrameMemory`].
//!
//! x86-64 only: the register numbering (DWARF, System V psABI figure 3.36),
//! the callee-saved set (rbx, rbp, r12–r15), the `rt_sigframe` layout and
//! the `__restore_rt` code are those of x86-64 Linux.
//!
//! Windows and Linux differ here. CDB unwinds x64 with the `.pdata`/`.xdata`
//! tables of each image and, at a fault, shows the exception dispatcher's
//! frames (`KiUserExceptionDispatcher`) between the handler and the faulting
//! function. Linux has DWARF CFI in `.eh_frame` instead, and a signal
//! handler returns through glibc's `__restore_rt`, which the kernel placed as
//! the handler's return address above a `struct rt_sigframe`. We show that
//! trampoline as its own frame (as CDB shows the dispatcher) and take the
//! interrupted frame's registers from the `ucontext_t` in the signal frame,
//! marked [`FrameTrust::SignalFrame`]: all of them are exact, and its pc is
//! the interrupted instruction rather than a return address.

use crate::image::{CfiSections, FdeIndex, ModuleImage};
use coroner_types::UserRegs;
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, DebugFrame, EhFrame, EhFrameHdr, Encoding, EndianSlice,
    EvaluationResult, FrameDescriptionEntry, LittleEndian, Location, Register, RegisterRule,
    UnwindContext, UnwindExpression, UnwindSection, Value,
};
use std::sync::OnceLock;

/// Registers the unwinder tracks: DWARF numbers 0–16 of x86-64.
pub const X86_64_REGS: usize = 17;

/// DWARF register numbers of x86-64 (psABI figure 3.36). 16 is the return
/// address column; in [`UnwindRegs`] it holds the frame's rip.
pub mod reg {
    pub const RAX: u16 = 0;
    pub const RDX: u16 = 1;
    pub const RCX: u16 = 2;
    pub const RBX: u16 = 3;
    pub const RSI: u16 = 4;
    pub const RDI: u16 = 5;
    pub const RBP: u16 = 6;
    pub const RSP: u16 = 7;
    pub const R8: u16 = 8;
    pub const R9: u16 = 9;
    pub const R10: u16 = 10;
    pub const R11: u16 = 11;
    pub const R12: u16 = 12;
    pub const R13: u16 = 13;
    pub const R14: u16 = 14;
    pub const R15: u16 = 15;
    pub const RIP: u16 = 16;
    /// The registers a callee must preserve (System V x86-64).
    pub const CALLEE_SAVED: [u16; 6] = [RBX, RBP, R12, R13, R14, R15];
}

/// Names of the registers, by DWARF number.
pub const REG_NAMES: [&str; X86_64_REGS] = [
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip",
];

/// A frame's registers by DWARF number; `None` where the value is unknown
/// (a caller-saved register above frame 0, or one whose save slot could not
/// be read).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UnwindRegs {
    pub values: [Option<u64>; X86_64_REGS],
}

macro_rules! named_regs {
    ($($get:ident $set:ident $num:expr;)*) => {
        $(
            pub fn $get(&self) -> Option<u64> {
                self.get($num)
            }
            pub fn $set(&mut self, value: Option<u64>) {
                self.set($num, value)
            }
        )*
    };
}

impl UnwindRegs {
    /// The register with DWARF number `reg` (`None` past 16).
    pub fn get(&self, reg: u16) -> Option<u64> {
        self.values.get(usize::from(reg)).copied().flatten()
    }

    /// Sets register `reg`; numbers past 16 are ignored.
    pub fn set(&mut self, reg: u16, value: Option<u64>) {
        if let Some(slot) = self.values.get_mut(usize::from(reg)) {
            *slot = value;
        }
    }

    /// The register called `name` (`rax`, …, `r15`, `rip`).
    pub fn by_name(&self, name: &str) -> Option<u64> {
        let i = REG_NAMES.iter().position(|&n| n == name)?;
        self.values.get(i).copied().flatten()
    }

    named_regs! {
        rax set_rax reg::RAX;
        rdx set_rdx reg::RDX;
        rcx set_rcx reg::RCX;
        rbx set_rbx reg::RBX;
        rsi set_rsi reg::RSI;
        rdi set_rdi reg::RDI;
        rbp set_rbp reg::RBP;
        rsp set_rsp reg::RSP;
        r8 set_r8 reg::R8;
        r9 set_r9 reg::R9;
        r10 set_r10 reg::R10;
        r11 set_r11 reg::R11;
        r12 set_r12 reg::R12;
        r13 set_r13 reg::R13;
        r14 set_r14 reg::R14;
        r15 set_r15 reg::R15;
        rip set_rip reg::RIP;
    }
}

impl From<&UserRegs> for UnwindRegs {
    /// Every general register of a thread (ptrace, `NT_PRSTATUS`).
    fn from(u: &UserRegs) -> UnwindRegs {
        UnwindRegs {
            values: [
                u.rax, u.rdx, u.rcx, u.rbx, u.rsi, u.rdi, u.rbp, u.rsp, u.r8, u.r9, u.r10, u.r11,
                u.r12, u.r13, u.r14, u.r15, u.rip,
            ]
            .map(Some),
        }
    }
}

/// The target's memory, as the unwinder needs it.
pub trait FrameMemory {
    /// The little-endian 8 bytes at `addr`, or `None` if any is unreadable.
    fn read_u64(&self, addr: u64) -> Option<u64>;
}

impl<F: Fn(u64) -> Option<u64>> FrameMemory for F {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self(addr)
    }
}

/// How a frame's registers were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameTrust {
    /// Frame 0: the thread's own registers.
    Context,
    /// DWARF CFI of the callee.
    Cfi,
    /// The `ucontext_t` of a signal frame: the interrupted registers, all
    /// exact; the pc is the interrupted instruction.
    SignalFrame,
    /// The callee's frame-pointer chain (`[rbp]`, `[rbp+8]`); only rip,
    /// rsp and rbp are known.
    FramePointer,
}

impl FrameTrust {
    /// `context`, `cfi`, `signal frame`, `frame pointer`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FrameTrust::Context => "context",
            FrameTrust::Cfi => "cfi",
            FrameTrust::SignalFrame => "signal frame",
            FrameTrust::FramePointer => "frame pointer",
        }
    }
}

/// One frame of a stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwoundFrame {
    /// The instruction pointer: exact for frame 0 and signal frames, a
    /// return address for the others.
    pub pc: u64,
    /// This frame's canonical frame address (the caller's rsp), when the
    /// next frame was found; for the `__restore_rt` frame, the address of
    /// the `ucontext_t`.
    pub cfa: Option<u64>,
    pub regs: UnwindRegs,
    pub trust: FrameTrust,
}

impl UnwoundFrame {
    /// The address to look up symbols, lines and CFI with: `pc` when it is
    /// exact, else `pc - 1` (inside the call instruction, not after it, so
    /// that a call at the very end of a function names that function).
    pub fn lookup_pc(&self) -> u64 {
        match self.trust {
            FrameTrust::Context | FrameTrust::SignalFrame => self.pc,
            FrameTrust::Cfi | FrameTrust::FramePointer => self.pc.wrapping_sub(1),
        }
    }
}

/// Why the walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwindStop {
    /// The CFI marks the return address undefined (thread and process entry
    /// points do), or the return address or saved frame pointer chain ends
    /// in 0.
    EndOfStack,
    /// `max_frames` frames were produced.
    MaxFrames,
    /// The start registers have no rip.
    NoContext,
    /// The caller's stack pointer would not be above the callee's.
    NoProgress { pc: u64, sp: Option<u64> },
    /// No CFI for this pc and no usable frame pointer.
    NoUnwindInfo { pc: u64 },
    /// The CFI for this pc could not be evaluated (bad rule, unknown
    /// register, unreadable CFA).
    BadCfi { pc: u64 },
    /// A value the walk needed could not be read.
    Unreadable { addr: u64 },
}

/// The frames and why the walk stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwind {
    pub frames: Vec<UnwoundFrame>,
    pub stop: UnwindStop,
}

/// `mov $15, %rax; syscall` (`rt_sigreturn`): glibc's `__restore_rt`.
const RESTORE_RT: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// Offset of `uc_mcontext.gregs` in `ucontext_t`: `uc_flags` (8),
/// `uc_link` (8), `uc_stack` (24).
const UC_GREGS: u64 = 40;

/// `gregs[i]` (glibc `REG_R8` … `REG_RIP`) → DWARF register number.
const GREGS_TO_DWARF: [u16; 17] = [
    reg::R8,
    reg::R9,
    reg::R10,
    reg::R11,
    reg::R12,
    reg::R13,
    reg::R14,
    reg::R15,
    reg::RDI,
    reg::RSI,
    reg::RBP,
    reg::RBX,
    reg::RDX,
    reg::RAX,
    reg::RCX,
    reg::RSP,
    reg::RIP,
];

/// Bound on DWARF expression steps (a garbage expression may loop).
const MAX_EXPR_STEPS: u32 = 10_000;

/// Walks the stack from `start` (frame 0) through the modules in `images`;
/// at most `max_frames` frames.
pub fn unwind(
    images: &[ModuleImage],
    mem: &dyn FrameMemory,
    start: UnwindRegs,
    max_frames: usize,
) -> Vec<UnwoundFrame> {
    unwind_traced(images, mem, start, max_frames).frames
}

/// [`unwind`], also telling why the walk stopped.
pub fn unwind_traced(
    images: &[ModuleImage],
    mem: &dyn FrameMemory,
    start: UnwindRegs,
    max_frames: usize,
) -> Unwind {
    let mut frames = Vec::new();
    let Some(pc) = start.rip() else {
        return Unwind {
            frames,
            stop: UnwindStop::NoContext,
        };
    };
    if max_frames == 0 {
        return Unwind {
            frames,
            stop: UnwindStop::MaxFrames,
        };
    }
    let mut ctx: Box<UnwindContext<usize>> = Box::new(UnwindContext::new());
    let mut cur = UnwoundFrame {
        pc,
        cfa: None,
        regs: start,
        trust: FrameTrust::Context,
    };
    loop {
        if frames.len() + 1 >= max_frames {
            frames.push(cur);
            return Unwind {
                frames,
                stop: UnwindStop::MaxFrames,
            };
        }
        match step(images, mem, &cur, &mut ctx) {
            Ok((cfa, caller)) => {
                cur.cfa = Some(cfa);
                frames.push(cur);
                cur = caller;
            }
            Err(stop) => {
                frames.push(cur);
                return Unwind { frames, stop };
            }
        }
    }
}

/// The caller of `cur` and `cur`'s CFA.
fn step(
    images: &[ModuleImage],
    mem: &dyn FrameMemory,
    cur: &UnwoundFrame,
    ctx: &mut UnwindContext<usize>,
) -> Result<(u64, UnwoundFrame), UnwindStop> {
    if is_sigreturn(images, mem, cur.pc) {
        return signal_frame(mem, &cur.regs);
    }
    let lookup = cur.lookup_pc();
    let mut cfi_stop = None;
    if let Some(img) = images.iter().find(|i| i.contains(lookup)) {
        match cfi_caller(img, lookup, &cur.regs, mem, ctx) {
            Ok(Some(c)) => return checked_cfi_caller(cur, c),
            Ok(None) => {}
            Err(stop) => cfi_stop = Some(stop),
        }
    }
    match frame_pointer(cur, mem) {
        Some(r) => r,
        None => Err(cfi_stop.unwrap_or(UnwindStop::NoUnwindInfo { pc: cur.pc })),
    }
}

struct CfiCaller {
    cfa: u64,
    regs: UnwindRegs,
    /// The FDE has the `S` augmentation (a signal trampoline).
    signal: bool,
}

fn checked_cfi_caller(cur: &UnwoundFrame, c: CfiCaller) -> Result<(u64, UnwoundFrame), UnwindStop> {
    let pc = match c.regs.rip() {
        Some(0) | None => return Err(UnwindStop::EndOfStack),
        Some(pc) => pc,
    };
    let sp = c.regs.rsp();
    if !c.signal {
        let rises = match (cur.regs.rsp(), sp) {
            (Some(old), Some(new)) => new > old,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !rises {
            return Err(UnwindStop::NoProgress { pc, sp });
        }
    }
    Ok((
        c.cfa,
        UnwoundFrame {
            pc,
            cfa: None,
            regs: c.regs,
            trust: if c.signal {
                FrameTrust::SignalFrame
            } else {
                FrameTrust::Cfi
            },
        },
    ))
}

/// `pc` is glibc's `__restore_rt`: by the code in memory, else by the
/// symbol, else by the code in the module's file.
fn is_sigreturn(images: &[ModuleImage], mem: &dyn FrameMemory, pc: u64) -> bool {
    let from_mem = mem
        .read_u64(pc)
        .zip(pc.checked_add(1).and_then(|a| mem.read_u64(a)));
    if let Some((lo, hi)) = from_mem {
        let mut code = [0u8; 9];
        code[..8].copy_from_slice(&lo.to_le_bytes());
        code[8] = hi.to_le_bytes()[7];
        if code == RESTORE_RT {
            return true;
        }
    }
    let Some(img) = images.iter().find(|i| i.contains(pc)) else {
        return false;
    };
    if img
        .symbol_at(pc)
        .is_some_and(|s| s.address == pc && s.raw_name == "__restore_rt")
    {
        return true;
    }
    from_mem.is_none() && img.code_bytes(pc, RESTORE_RT.len()) == Some(&RESTORE_RT[..])
}

/// The interrupted frame under a `__restore_rt` frame: every register from
/// the `ucontext_t` at the trampoline's rsp (the kernel's `rt_sigframe`
/// with its `pretcode` already popped by the handler's `ret`).
fn signal_frame(
    mem: &dyn FrameMemory,
    regs: &UnwindRegs,
) -> Result<(u64, UnwoundFrame), UnwindStop> {
    let uc = regs.rsp().ok_or(UnwindStop::NoUnwindInfo {
        pc: regs.rip().unwrap_or(0),
    })?;
    let gregs = uc
        .checked_add(UC_GREGS)
        .ok_or(UnwindStop::Unreadable { addr: uc })?;
    let mut caller = UnwindRegs::default();
    for (i, &dw) in GREGS_TO_DWARF.iter().enumerate() {
        let addr = gregs.checked_add(8 * i as u64);
        caller.set(dw, addr.and_then(|a| mem.read_u64(a)));
    }
    let slot = |i: u64| gregs.wrapping_add(8 * i);
    let pc = caller
        .rip()
        .ok_or(UnwindStop::Unreadable { addr: slot(16) })?;
    caller
        .rsp()
        .ok_or(UnwindStop::Unreadable { addr: slot(15) })?;
    Ok((
        uc,
        UnwoundFrame {
            pc,
            cfa: None,
            regs: caller,
            trust: FrameTrust::SignalFrame,
        },
    ))
}

/// The caller by the frame-pointer chain, when rbp looks like a frame
/// pointer: non-zero, 8-aligned, at or above rsp (so the chain rises).
/// `None` when it does not apply.
fn frame_pointer(
    cur: &UnwoundFrame,
    mem: &dyn FrameMemory,
) -> Option<Result<(u64, UnwoundFrame), UnwindStop>> {
    let rbp = cur.regs.rbp()?;
    if rbp == 0 || !rbp.is_multiple_of(8) {
        return None;
    }
    if cur.regs.rsp().is_some_and(|sp| rbp < sp) {
        return None;
    }
    let cfa = rbp.checked_add(16)?;
    let saved_rbp = mem.read_u64(rbp)?;
    let ra = mem.read_u64(rbp + 8)?;
    if ra == 0 {
        return Some(Err(UnwindStop::EndOfStack));
    }
    let mut regs = UnwindRegs::default();
    regs.set_rip(Some(ra));
    regs.set_rsp(Some(cfa));
    regs.set_rbp(Some(saved_rbp));
    Some(Ok((
        cfa,
        UnwoundFrame {
            pc: ra,
            cfa: None,
            regs,
            trust: FrameTrust::FramePointer,
        },
    )))
}

type Slice<'a> = EndianSlice<'a, LittleEndian>;

fn bases(cfi: &CfiSections) -> BaseAddresses {
    let mut b = BaseAddresses::default();
    if let Some(h) = &cfi.eh_frame_hdr {
        b = b.set_eh_frame_hdr(h.svma);
    }
    if let Some(e) = &cfi.eh_frame {
        b = b.set_eh_frame(e.svma);
    }
    if let Some(t) = cfi.text_svma {
        b = b.set_text(t);
    }
    if let Some(g) = cfi.got_svma {
        b = b.set_got(g);
    }
    b
}

/// The caller by the module's CFI; `Ok(None)` when it has none for `pc`.
fn cfi_caller(
    img: &ModuleImage,
    pc: u64,
    regs: &UnwindRegs,
    mem: &dyn FrameMemory,
    ctx: &mut UnwindContext<usize>,
) -> Result<Option<CfiCaller>, UnwindStop> {
    let Some(svma) = img.to_svma(pc) else {
        return Ok(None);
    };
    let cfi = img.cfi();
    let bases = bases(cfi);
    let env = Env {
        regs,
        mem,
        bias: img.bias(),
        pc,
    };
    if let Some(eh) = &cfi.eh_frame {
        let mut section = EhFrame::new(&eh.data, LittleEndian);
        section.set_address_size(8);
        let hdr = cfi
            .eh_frame_hdr
            .as_ref()
            .and_then(|h| EhFrameHdr::new(&h.data, LittleEndian).parse(&bases, 8).ok());
        let fde = match hdr.as_ref().and_then(|h| h.table()) {
            Some(table) => table
                .fde_for_address(&section, &bases, svma, EhFrame::cie_from_offset)
                .ok(),
            None => indexed_fde(&section, &bases, &cfi.eh_frame_index, svma),
        };
        if let Some(fde) = fde {
            return apply_fde(&section, &bases, &fde, svma, &env, ctx).map(Some);
        }
    }
    if let Some(df) = &cfi.debug_frame {
        let mut section = DebugFrame::new(&df.data, LittleEndian);
        section.set_address_size(8);
        if let Some(fde) = indexed_fde(&section, &bases, &cfi.debug_frame_index, svma) {
            return apply_fde(&section, &bases, &fde, svma, &env, ctx).map(Some);
        }
    }
    Ok(None)
}

/// The FDE covering `svma`, through an index built on first use.
fn indexed_fde<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    index: &OnceLock<FdeIndex>,
    svma: u64,
) -> Option<FrameDescriptionEntry<Slice<'a>>> {
    let idx = index.get_or_init(|| build_index(section, bases));
    let i = idx.partition_point(|e| e.0 <= svma).checked_sub(1)?;
    let &(start, len, offset) = idx.get(i)?;
    if svma >= start.saturating_add(len) {
        return None;
    }
    let fde = section
        .fde_from_offset(bases, S::Offset::from(offset), S::cie_from_offset)
        .ok()?;
    fde.contains(svma).then_some(fde)
}

fn build_index<'a, S: UnwindSection<Slice<'a>>>(section: &S, bases: &BaseAddresses) -> FdeIndex {
    let mut v = Vec::new();
    let mut entries = section.entries(bases);
    loop {
        match entries.next() {
            Ok(Some(CieOrFde::Fde(partial))) => {
                if let Ok(f) = partial.parse(S::cie_from_offset) {
                    if f.len() > 0 {
                        v.push((f.initial_address(), f.len(), f.offset()));
                    }
                }
            }
            Ok(Some(CieOrFde::Cie(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    v.sort_by_key(|e| e.0);
    v
}

/// What rules are evaluated against: the callee's registers and memory.
struct Env<'r> {
    regs: &'r UnwindRegs,
    mem: &'r dyn FrameMemory,
    /// Runtime minus file addresses (for `DW_OP_addr`).
    bias: u64,
    /// The lookup pc (for errors).
    pc: u64,
}

fn apply_fde<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    bases: &BaseAddresses,
    fde: &FrameDescriptionEntry<Slice<'a>>,
    svma: u64,
    env: &Env<'_>,
    ctx: &mut UnwindContext<usize>,
) -> Result<CfiCaller, UnwindStop> {
    let bad = UnwindStop::BadCfi { pc: env.pc };
    let row = fde
        .unwind_info_for_address(section, bases, ctx, svma)
        .map_err(|_| bad.clone())?;
    let encoding = fde.cie().encoding();
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => env
            .regs
            .get(register.0)
            .and_then(|v| v.checked_add_signed(*offset)),
        CfaRule::Expression(e) => eval(section, e, encoding, env, None, None),
    }
    .ok_or(bad)?;

    let ra_reg = fde.cie().return_address_register().0;
    let mut caller = UnwindRegs::default();
    let mut ra_slot = None;
    for r in 0..X86_64_REGS as u16 {
        let value = match row.register(Register(r)) {
            None => {
                if r == reg::RSP || r == ra_reg || !reg::CALLEE_SAVED.contains(&r) {
                    None
                } else {
                    env.regs.get(r)
                }
            }
            Some(rule) => {
                if r == ra_reg {
                    if let RegisterRule::Offset(n) = rule {
                        ra_slot = cfa.checked_add_signed(n);
                    }
                }
                apply_rule(section, &rule, r, cfa, encoding, env)
            }
        };
        caller.set(r, value);
    }
    if row.register(Register(reg::RSP)).is_none() {
        caller.set_rsp(Some(cfa));
    }
    let ra = if usize::from(ra_reg) < X86_64_REGS {
        caller.get(ra_reg)
    } else {
        None
    };
    if ra.is_none() {
        if let Some(addr) = ra_slot {
            return Err(UnwindStop::Unreadable { addr });
        }
    }
    caller.set_rip(ra);
    Ok(CfiCaller {
        cfa,
        regs: caller,
        signal: fde.is_signal_trampoline(),
    })
}

fn apply_rule<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    rule: &RegisterRule<usize>,
    r: u16,
    cfa: u64,
    encoding: Encoding,
    env: &Env<'_>,
) -> Option<u64> {
    match rule {
        RegisterRule::Undefined => None,
        RegisterRule::SameValue => env.regs.get(r),
        RegisterRule::Offset(n) => env.mem.read_u64(cfa.checked_add_signed(*n)?),
        RegisterRule::ValOffset(n) => cfa.checked_add_signed(*n),
        RegisterRule::Register(other) => env.regs.get(other.0),
        RegisterRule::Expression(e) => {
            let addr = eval(section, e, encoding, env, Some(cfa), Some(cfa))?;
            env.mem.read_u64(addr)
        }
        RegisterRule::ValExpression(e) => eval(section, e, encoding, env, Some(cfa), Some(cfa)),
        RegisterRule::Constant(c) => Some(*c),
        RegisterRule::Architectural => None,
        // gimli may add rules; an unknown one recovers nothing.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Evaluates a CFI expression: `push` is the initial stack value (the CFA
/// for register rules), `cfa` answers `DW_OP_call_frame_cfa`. The result is
/// the address or value the expression leaves.
fn eval<'a, S: UnwindSection<Slice<'a>>>(
    section: &S,
    expr: &UnwindExpression<usize>,
    encoding: Encoding,
    env: &Env<'_>,
    push: Option<u64>,
    cfa: Option<u64>,
) -> Option<u64> {
    let expr = expr.get(section).ok()?;
    let mut ev = expr.evaluation(encoding);
    ev.set_max_iterations(MAX_EXPR_STEPS);
    if let Some(v) = push {
        ev.set_initial_value(v);
    }
    let mut res = ev.evaluate().ok()?;
    loop {
        res = match res {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let v = env.mem.read_u64(address)?;
                let v = if size >= 8 {
                    v
                } else {
                    v & ((1u64 << (8 * u32::from(size))) - 1)
                };
                ev.resume_with_memory(Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = env.regs.get(register.0)?;
                ev.resume_with_register(Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresRelocatedAddress(a) => ev
                .resume_with_relocated_address(a.wrapping_add(env.bias))
                .ok()?,
            EvaluationResult::RequiresCallFrameCfa => ev.resume_with_call_frame_cfa(cfa?).ok()?,
            _ => return None,
        };
    }
    match ev.as_result().first()?.location {
        Location::Address { address } => Some(address),
        Location::Value { value } => value.to_u64(!0).ok(),
        Location::Register { register } => env.regs.get(register.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::CfiSection;
    use gimli::write::{
        Address, CallFrameInstruction as I, CommonInformationEntry, EhFrame as WEhFrame, EndianVec,
        Expression as WExpr, FrameDescriptionEntry as WFde, FrameTable,
    };
    use std::collections::HashMap;

    /// Byte-addressed fake memory; unaligned reads work, anything not set
    /// is unreadable.
    #[derive(Default)]
    struct Mem(HashMap<u64, u8>);

    impl Mem {
        fn put(&mut self, addr: u64, v: u64) {
            for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                self.0.insert(addr + i as u64, b);
            }
        }
        fn put_bytes(&mut self, addr: u64, bytes: &[u8]) {
            for (i, &b) in bytes.iter().enumerate() {
                self.0.insert(addr + i as u64, b);
            }
        }
    }

    impl FrameMemory for Mem {
        fn read_u64(&self, addr: u64) -> Option<u64> {
            let mut b = [0u8; 8];
            for (i, slot) in b.iter_mut().enumerate() {
                *slot = *self.0.get(&addr.checked_add(i as u64)?)?;
            }
            Some(u64::from_le_bytes(b))
        }
    }

    fn regs(pairs: &[(u16, u64)]) -> UnwindRegs {
        let mut r = UnwindRegs::default();
        for &(n, v) in pairs {
            r.set(n, Some(v));
        }
        r
    }

    const BASE: u64 = 0x10_0000;

    fn encoding() -> Encoding {
        Encoding {
            address_size: 8,
            format: gimli::Format::Dwarf32,
            version: 1,
        }
    }

    /// A module at `BASE` (file addresses from 0) with three functions:
    /// A at 0x1000 (every kind of register rule), B at 0x2000 (CFA by
    /// expression), C at 0x3000 (return address undefined: outermost).
    fn synthetic_module() -> ModuleImage {
        let mut cie = CommonInformationEntry::new(encoding(), 1, -8, Register(reg::RIP));
        cie.add_instruction(I::Cfa(Register(reg::RSP), 8));
        cie.add_instruction(I::Offset(Register(reg::RIP), -8));
        let mut table = FrameTable::default();
        let cie = table.add_cie(cie);

        let mut a = WFde::new(Address::Constant(0x1000), 0x100);
        a.add_instruction(4, I::CfaOffset(32));
        a.add_instruction(4, I::Offset(Register(reg::RBX), -16));
        a.add_instruction(4, I::ValOffset(Register(reg::R12), -24));
        a.add_instruction(4, I::Register(Register(reg::R13), Register(reg::RAX)));
        a.add_instruction(4, I::SameValue(Register(reg::R14)));
        a.add_instruction(4, I::Undefined(Register(reg::R15)));
        let mut at_rsp = WExpr::new();
        at_rsp.op_breg(Register(reg::RSP), 0);
        a.add_instruction(4, I::Expression(Register(reg::RBP), at_rsp));
        let mut cfa_plus = WExpr::new();
        cfa_plus.op_plus_uconst(0x77);
        a.add_instruction(4, I::ValExpression(Register(reg::R9), cfa_plus));
        table.add_fde(cie, a);

        let mut b = WFde::new(Address::Constant(0x2000), 0x100);
        let mut deref = WExpr::new();
        deref.op_breg(Register(reg::RSP), 16);
        deref.op_deref();
        b.add_instruction(0, I::CfaExpression(deref));
        table.add_fde(cie, b);

        let mut c = WFde::new(Address::Constant(0x3000), 0x100);
        c.add_instruction(0, I::Undefined(Register(reg::RIP)));
        table.add_fde(cie, c);

        let mut out = WEhFrame(EndianVec::new(gimli::LittleEndian));
        table.write_eh_frame(&mut out).unwrap();
        let cfi = CfiSections {
            eh_frame: Some(CfiSection {
                svma: 0x8000,
                data: out.0.into_vec(),
            }),
            ..CfiSections::default()
        };
        ModuleImage::synthetic("/synthetic/libsynth.so.1", BASE, 0x10000, 0, cfi)
    }

    #[test]
    fn every_register_rule_and_cfa_expression() {
        let img = synthetic_module();
        assert_eq!(img.name(), "libsynth");
        let mut mem = Mem::default();
        let sp = 0x7000_8000;
        let cfa_a = sp + 32;
        mem.put(sp, 0xbebe); // rbp's slot (expression rule: [rsp])
        mem.put(cfa_a - 16, 0xb0b0); // rbx
        mem.put(cfa_a - 8, BASE + 0x2010); // return address into B
                                           // B: CFA = [rsp + 16] where rsp = cfa_a.
        let cfa_b = 0x7000_9000;
        mem.put(cfa_a + 16, cfa_b);
        mem.put(cfa_b - 8, BASE + 0x3010); // return address into C
        let start = regs(&[
            (reg::RIP, BASE + 0x1010),
            (reg::RSP, sp),
            (reg::RAX, 0xaaaa),
            (reg::RBX, 0x0b0b),
            (reg::RBP, 0x1111),
            (reg::R12, 0x1212),
            (reg::R13, 0x1313),
            (reg::R14, 0x1414),
            (reg::R15, 0x1515),
            (reg::RDI, 0xd1d1),
        ]);
        let u = unwind_traced(&[img], &mem, start, 64);
        assert_eq!(u.stop, UnwindStop::EndOfStack, "{u:#?}");
        let f = &u.frames;
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].trust, FrameTrust::Context);
        assert_eq!(f[0].cfa, Some(cfa_a));
        let r1 = &f[1].regs;
        assert_eq!(f[1].pc, BASE + 0x2010);
        assert_eq!(f[1].trust, FrameTrust::Cfi);
        assert_eq!(r1.rsp(), Some(cfa_a));
        assert_eq!(r1.rbx(), Some(0xb0b0), "Offset");
        assert_eq!(r1.r12(), Some(cfa_a - 24), "ValOffset");
        assert_eq!(r1.r13(), Some(0xaaaa), "Register");
        assert_eq!(r1.r14(), Some(0x1414), "SameValue");
        assert_eq!(r1.r15(), None, "Undefined");
        assert_eq!(r1.rbp(), Some(0xbebe), "Expression");
        assert_eq!(r1.r9(), Some(cfa_a + 0x77), "ValExpression");
        assert_eq!(r1.rax(), None, "caller-saved: unknown in the caller");
        assert_eq!(r1.rdi(), None);
        assert_eq!(f[1].cfa, Some(cfa_b), "CFA expression");
        let r2 = &f[2].regs;
        assert_eq!(f[2].pc, BASE + 0x3010);
        assert_eq!(r2.rsp(), Some(cfa_b));
        assert_eq!(r2.rbx(), Some(0xb0b0), "callee-saved default: same value");
        assert_eq!(r2.rbp(), Some(0xbebe));
        assert_eq!(f[2].cfa, None);
        assert_eq!(f[2].lookup_pc(), BASE + 0x300f);
    }

    #[test]
    fn caller_sp_must_rise() {
        let img = synthetic_module();
        let mut mem = Mem::default();
        let sp = 0x7000_8000;
        mem.put(sp + 32 - 8, BASE + 0x2010);
        // B's CFA expression gives an address below the callee's sp.
        mem.put(sp + 32 + 16, 0x1000);
        mem.put(0x1000 - 8, BASE + 0x3010);
        let start = regs(&[(reg::RIP, BASE + 0x1010), (reg::RSP, sp)]);
        let u = unwind_traced(&[img], &mem, start, 64);
        assert_eq!(u.frames.len(), 2);
        assert!(
            matches!(u.stop, UnwindStop::NoProgress { .. }),
            "{:?}",
            u.stop
        );
    }

    #[test]
    fn unreadable_return_address_falls_back_then_stops() {
        let img = synthetic_module();
        let mem = Mem::default();
        let start = regs(&[(reg::RIP, BASE + 0x1010), (reg::RSP, 0x7000_8000)]);
        let u = unwind_traced(&[img], &mem, start, 64);
        assert_eq!(u.frames.len(), 1);
        assert_eq!(
            u.stop,
            UnwindStop::Unreadable {
                addr: 0x7000_8000 + 32 - 8
            }
        );
    }

    #[test]
    fn frame_pointer_chain_without_cfi() {
        let mut mem = Mem::default();
        mem.put(0x7010, 0x7050);
        mem.put(0x7018, 0x2000);
        mem.put(0x7050, 0);
        mem.put(0x7058, 0x3000);
        let start = regs(&[(reg::RIP, 0x1000), (reg::RSP, 0x7000), (reg::RBP, 0x7010)]);
        let u = unwind_traced(&[], &mem, start, 64);
        let pcs: Vec<u64> = u.frames.iter().map(|f| f.pc).collect();
        assert_eq!(pcs, vec![0x1000, 0x2000, 0x3000]);
        assert_eq!(u.frames[1].trust, FrameTrust::FramePointer);
        assert_eq!(u.frames[1].regs.rsp(), Some(0x7020));
        assert_eq!(u.frames[1].regs.rbp(), Some(0x7050));
        assert_eq!(u.frames[1].regs.rbx(), None);
        assert_eq!(u.frames[0].cfa, Some(0x7020));
        assert_eq!(u.frames[2].regs.rbp(), Some(0));
        assert_eq!(u.stop, UnwindStop::NoUnwindInfo { pc: 0x3000 });
    }

    #[test]
    fn frame_pointer_must_be_aligned_and_rise() {
        let mut mem = Mem::default();
        mem.put(0x7010, 0x7000); // saved rbp below the frame: the chain falls
        mem.put(0x7018, 0x2000);
        let start = regs(&[(reg::RIP, 0x1000), (reg::RSP, 0x7000), (reg::RBP, 0x7010)]);
        let u = unwind_traced(&[], &mem, start, 64);
        assert_eq!(u.frames.len(), 2);
        assert_eq!(u.stop, UnwindStop::NoUnwindInfo { pc: 0x2000 });

        let start = regs(&[(reg::RIP, 0x1000), (reg::RSP, 0x7000), (reg::RBP, 0x7013)]);
        assert_eq!(unwind(&[], &mem, start, 64).len(), 1, "unaligned rbp");
        let start = regs(&[(reg::RIP, 0x1000), (reg::RSP, 0x7100), (reg::RBP, 0x7010)]);
        assert_eq!(unwind(&[], &mem, start, 64).len(), 1, "rbp below rsp");
    }

    #[test]
    fn signal_trampoline_restores_every_register() {
        let mut mem = Mem::default();
        let tramp = 0x5000;
        mem.put_bytes(tramp, &RESTORE_RT);
        let uc = 0x7000_0000;
        // gregs[i] = 0x1000 + i, except rsp/rip/rbp which must make sense.
        for i in 0..23u64 {
            mem.put(uc + 40 + 8 * i, 0x1000 + i);
        }
        mem.put(uc + 40 + 8 * 15, 0x6000_0000); // REG_RSP: the interrupted stack
        mem.put(uc + 40 + 8 * 16, 0x4444); // REG_RIP
        mem.put(uc + 40 + 8 * 10, 0x6000_0100); // REG_RBP
        mem.put(0x6000_0100, 0);
        mem.put(0x6000_0108, 0x9999);
        let start = regs(&[(reg::RIP, tramp), (reg::RSP, uc)]);
        let u = unwind_traced(&[], &mem, start, 64);
        let f = &u.frames;
        assert_eq!(f.len(), 3, "{u:#?}");
        assert_eq!(f[0].cfa, Some(uc));
        assert_eq!(f[1].trust, FrameTrust::SignalFrame);
        assert_eq!(f[1].pc, 0x4444);
        assert_eq!(f[1].lookup_pc(), 0x4444, "interrupted pc is exact");
        let r = &f[1].regs;
        let expect = [
            ("r8", 0x1000),
            ("r9", 0x1001),
            ("r10", 0x1002),
            ("r11", 0x1003),
            ("r12", 0x1004),
            ("r13", 0x1005),
            ("r14", 0x1006),
            ("r15", 0x1007),
            ("rdi", 0x1008),
            ("rsi", 0x1009),
            ("rbp", 0x6000_0100),
            ("rbx", 0x100b),
            ("rdx", 0x100c),
            ("rax", 0x100d),
            ("rcx", 0x100e),
            ("rsp", 0x6000_0000),
            ("rip", 0x4444),
        ];
        for (name, v) in expect {
            assert_eq!(r.by_name(name), Some(v), "{name}");
        }
        // The interrupted stack is below the handler's: allowed after a
        // signal frame. Then the frame pointer takes over.
        assert_eq!(f[2].pc, 0x9999);
        assert_eq!(f[2].trust, FrameTrust::FramePointer);
    }

    #[test]
    fn trampoline_found_by_file_bytes_when_memory_has_no_code() {
        // No code in memory (a minidump without code pages): the pattern is
        // not seen, so this is not a signal frame; nothing is read past it.
        let mem = Mem::default();
        let start = regs(&[(reg::RIP, 0x5000), (reg::RSP, 0x7000)]);
        let u = unwind_traced(&[], &mem, start, 8);
        assert_eq!(u.frames.len(), 1);
        assert_eq!(u.stop, UnwindStop::NoUnwindInfo { pc: 0x5000 });
    }

    #[test]
    fn limits_and_missing_context() {
        let mem = Mem::default();
        let u = unwind_traced(&[], &mem, UnwindRegs::default(), 8);
        assert_eq!(u.stop, UnwindStop::NoContext);
        assert!(u.frames.is_empty());
        let start = regs(&[(reg::RIP, 1)]);
        assert_eq!(unwind_traced(&[], &mem, start.clone(), 0).frames.len(), 0);
        let u = unwind_traced(&[], &mem, start, 1);
        assert_eq!((u.frames.len(), u.stop), (1, UnwindStop::MaxFrames));
        // A frame-pointer loop is bounded by max_frames and by the rise rule.
        let mut mem = Mem::default();
        mem.put(0x7010, 0x7010);
        mem.put(0x7018, 0x2000);
        let start = regs(&[(reg::RIP, 0x1000), (reg::RSP, 0x7000), (reg::RBP, 0x7010)]);
        assert_eq!(unwind(&[], &mem, start, 1000).len(), 2);
    }

    #[test]
    fn user_regs_map_to_dwarf_numbers() {
        let u = UserRegs {
            rax: 1,
            rdx: 2,
            rcx: 3,
            rbx: 4,
            rsi: 5,
            rdi: 6,
            rbp: 7,
            rsp: 8,
            r8: 9,
            r15: 16,
            rip: 17,
            ..UserRegs::default()
        };
        let r = UnwindRegs::from(&u);
        for (i, name) in REG_NAMES.iter().enumerate() {
            assert_eq!(r.get(i as u16), r.by_name(name));
        }
        assert_eq!(r.rax(), Some(1));
        assert_eq!(r.rdx(), Some(2));
        assert_eq!(r.rbx(), Some(4));
        assert_eq!(r.rsp(), Some(8));
        assert_eq!(r.r8(), Some(9));
        assert_eq!(r.r15(), Some(16));
        assert_eq!(r.rip(), Some(17));
        assert_eq!(r.get(17), None);
    }

    /// splitmix64: deterministic garbage.
    fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    fn own_image() -> ModuleImage {
        let exe = std::env::current_exe().unwrap();
        let want = exe.to_str().unwrap().to_string();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut base = None;
        let mut end = 0;
        for line in maps.lines().filter(|l| l.ends_with(&want)) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (s, e) = f[0].split_once('-').unwrap();
            let s = u64::from_str_radix(s, 16).unwrap();
            let e = u64::from_str_radix(e, 16).unwrap();
            if base.is_none() && u64::from_str_radix(f[2], 16).unwrap() == 0 {
                base = Some(s);
            }
            end = end.max(e);
        }
        let base = base.unwrap();
        let opts = crate::SymbolOptions {
            debug_dirs: Vec::new(),
            binary_dirs: Vec::new(),
            sysroot: None,
        };
        ModuleImage::load(&opts, &want, base, end - base, None)
    }

    #[test]
    fn garbage_registers_and_memory_never_panic() {
        let own = own_image();
        assert!(own.has_cfi());
        let mut junk_cfi = Vec::new();
        for seed in 0..4u64 {
            let data: Vec<u8> = (0..4096).map(|i| mix(seed * 10_000 + i) as u8).collect();
            let cfi = CfiSections {
                eh_frame: Some(CfiSection {
                    svma: 0x8000,
                    data: data.clone(),
                }),
                eh_frame_hdr: Some(CfiSection {
                    svma: 0x9000,
                    data: data[..64].to_vec(),
                }),
                debug_frame: Some(CfiSection { svma: 0, data }),
                text_svma: Some(0x1000),
                got_svma: None,
                ..CfiSections::default()
            };
            junk_cfi.push(ModuleImage::synthetic(
                "junk.so",
                0x4000_0000 * (seed + 1),
                0x10000,
                0,
                cfi,
            ));
        }
        let mut images = vec![own.clone(), synthetic_module()];
        images.extend(junk_cfi);
        let garbage = |a: u64| (!a.is_multiple_of(7)).then(|| mix(a));
        let small = |a: u64| Some(mix(a) % 0x10_0000);
        for round in 0..3000u64 {
            let mut start = UnwindRegs::default();
            for r in 0..X86_64_REGS as u16 {
                start.set(r, Some(mix(round * 31 + u64::from(r))));
            }
            // Aim pcs at code with CFI so that rules are really evaluated.
            let img = &images[(round % images.len() as u64) as usize];
            start.set_rip(Some(img.base() + mix(round) % img.size().max(1)));
            if round % 3 == 0 {
                start.set_rsp(Some(mix(round) % 0x10_0000));
            }
            let none = |_: u64| None::<u64>;
            for mem in [&garbage as &dyn FrameMemory, &small, &none] {
                let u = unwind_traced(&images, mem, start.clone(), 32);
                assert!(u.frames.len() <= 32);
                assert!(!u.frames.is_empty());
            }
        }
    }
}
