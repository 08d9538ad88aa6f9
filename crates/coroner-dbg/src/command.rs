//! The CDB command language as data: a line is split on `;` into commands
//! ([`split_commands`]) and each is parsed into a typed [`Command`]
//! ([`parse_command`], [`parse_line`]) with errors that name the command, the
//! offending token and what was expected.
//!
//! Owns: command names and argument syntax (execution `g gh gn gN p t q qq
//! qd`, session `.detach .abandon .kill .childdbg`, event inspection
//! `.lastevent .exr .ecxr .cxr .jdinfo`, `.dump` options, the `sx` family as
//! raw text, `ah*`, stacks `k*`, `r`, threads `~`, `lm`, memory `d*`, `u`,
//! breakpoints `bp bu bl bc bd be`, `x`, `?`, `.echo`, `ln`, `|`, `.help`,
//! comments `*` and `$$`). Addresses and counts are kept as [`Expr`] trees
//! and evaluated later, in the radix of that moment.
//!
//! Must not: run anything, touch a target, or interpret `sx` arguments (the
//! filters module owns those; here they stay raw text). Never panics on any
//! input.
//!
//! Linux mapping of `.dump` file names: CDB options start with `/`, and so do
//! absolute Linux paths. A word that starts with `/` and has no other `/` is
//! an option (and must be a known one); a word with a second `/`
//! (`/tmp/x.dmp`) is the file name. A quoted word is never an option, so a
//! file directly under `/` is written `"/x.dmp"`.

use crate::expr::{parse_expr, parse_expr_prefix, register_index, Expr, ExprError};
use thiserror::Error;

/// Most break addresses `g` accepts (CDB's limit).
pub const MAX_BREAK_ADDRESSES: usize = 10;

/// Errors of parsing one command; each names the command it concerns.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("unknown command `{command}`")]
    Unknown { command: String },
    #[error("{command}: missing {expected}")]
    MissingArgument {
        command: String,
        expected: &'static str,
    },
    #[error("{command}: unexpected `{token}`, expected {expected}")]
    UnexpectedArgument {
        command: String,
        token: String,
        expected: &'static str,
    },
    #[error("{command}: bad expression `{text}`")]
    BadExpression {
        command: String,
        text: String,
        #[source]
        source: ExprError,
    },
    #[error("{command}: unknown option `{option}`, expected {expected}")]
    BadOption {
        command: String,
        option: String,
        expected: &'static str,
    },
    #[error("{command}: `{token}` is not {expected}")]
    BadNumber {
        command: String,
        token: String,
        expected: &'static str,
    },
    #[error("{command}: missing closing `\"` in `{text}`")]
    UnterminatedQuote { command: String, text: String },
    #[error("{command}: more than {max} break addresses")]
    TooManyBreakAddresses { command: String, max: usize },
    #[error("{command}: `{register}` is not a register")]
    UnknownRegister { command: String, register: String },
    #[error("{command}: `{first}` conflicts with `{second}`")]
    Conflict {
        command: String,
        first: String,
        second: String,
    },
    #[error("{command}: {why}")]
    Unsupported { command: String, why: &'static str },
}

/// `g`, `gh`, `gn`, `gN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoKind {
    /// `g`: the filter's handling status decides.
    Go,
    /// `gh`: exception handled.
    Handled,
    /// `gn`: exception not handled (refused at a breakpoint).
    NotHandled,
    /// `gN`: not handled, also at a breakpoint.
    NotHandledBreakpoint,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuitKind {
    /// `q`: end the session; the target is killed unless `-pd`.
    Quit,
    /// `qq`: as `q` (no remote sessions here).
    QuitAll,
    /// `qd`: detach and exit.
    Detach,
}

/// How `.detach` / `.abandon` continue a pending event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Disposition {
    /// `/h` (default): as handled.
    #[default]
    Handled,
    /// `/n`: as not handled.
    NotHandled,
}

/// `.exr` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExrTarget {
    /// `.exr -1`: the most recent exception.
    Last,
    /// `.exr ADDR`: an exception record in target memory.
    At(Expr),
}

/// The `sx` verbs; the arguments stay raw text for the filters module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SxVerbRaw {
    /// `sxe`
    E,
    /// `sxd`
    D,
    /// `sxn`
    N,
    /// `sxi`
    I,
    /// `sx-`
    Minus,
    /// `sx`
    List,
    /// `sxr`
    Reset,
}

/// `ah*` assertion handling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssertCommand {
    /// `ah`
    List,
    /// `ahb [addr]`
    Break(Option<Expr>),
    /// `ahi [addr]`
    Ignore(Option<Expr>),
    /// `ahd [addr]`
    Delete(Option<Expr>),
    /// `ahc`
    Clear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// `k`
    K,
    /// `kb`: first three arguments.
    Kb,
    /// `kn`: frame numbers.
    Kn,
    /// `kp`: full parameters.
    Kp,
    /// `kv`: FPO / calling convention details.
    Kv,
}

/// One item of `r`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegArg {
    /// `r rax`: show it. Canonical lowercase name, or `$pseudo`.
    Show(String),
    /// `r rax=EXPR`: set it.
    Set(String, Expr),
}

/// A thread selector after `~`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadSel {
    /// `~*`, or `~` alone when listing.
    All,
    /// `~.`
    Current,
    /// `~#`: the thread of the last event.
    Event,
    /// `~N`: debugger thread number (decimal).
    Index(u32),
    /// `~~[tid]`: by system thread id.
    Tid(Expr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayKind {
    /// `db`: bytes + ASCII.
    Db,
    /// `dw`: words.
    Dw,
    /// `dd`: dwords.
    Dd,
    /// `dq`: qwords.
    Dq,
    /// `dp`: pointers.
    Dp,
    /// `da`: ASCII string.
    Da,
    /// `du`: UTF-16 string.
    Du,
    /// `dps`: pointers with symbols.
    Dps,
    /// `dds`: dwords with symbols.
    Dds,
    /// `dqs`: qwords with symbols.
    Dqs,
}

/// `L count` / `L?count` / an end address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// `L count`; `force` for `L?` (no size sanity limit).
    Count { count: Expr, force: bool },
    /// `start end`
    End(Expr),
}

/// `bc` / `bd` / `be` breakpoint ids (decimal, as `bl` prints them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BpIds {
    /// `*`
    All,
    /// Inclusive ranges; `3` is `(3, 3)`.
    List(Vec<(u32, u32)>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BpAction {
    Clear,
    Disable,
    Enable,
}

/// `.dump` minidump content letters (`/m[letters]`), §8 and §13.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MiniOptions {
    /// `f`: all readable memory.
    pub full_memory: bool,
    /// `F`: memory-info stream (maps).
    pub full_memory_info: bool,
    /// `h`: handle (fd) data.
    pub handles: bool,
    /// `u`: unloaded modules.
    pub unloaded_modules: bool,
    /// `t`: thread times.
    pub thread_info: bool,
    /// `i`: memory around pointers on stacks.
    pub indirect_memory: bool,
    /// `p`: auxv, environ, cmdline, TLS base (PEB/TEB analogue).
    pub process_thread_data: bool,
    /// `w`: private writable anonymous mappings.
    pub private_rw_memory: bool,
    /// `d`: writable file-backed segments.
    pub data_segments: bool,
    /// `c`: executable segments.
    pub code_segments: bool,
    /// `r`: zero stack bytes not needed to unwind.
    pub filter_memory: bool,
    /// `R`: basenames only for module paths.
    pub filter_module_paths: bool,
    /// `y`: AVX / xstate.
    pub avx: bool,
    /// `A`: skip unreadable memory instead of failing.
    pub ignore_inaccessible: bool,
}

impl MiniOptions {
    /// Letters after `/m` (case-sensitive); the first unknown letter is the
    /// error.
    pub fn from_letters(letters: &str) -> Result<MiniOptions, char> {
        let mut m = MiniOptions::default();
        for c in letters.chars() {
            match c {
                'f' => m.full_memory = true,
                'F' => m.full_memory_info = true,
                'h' => m.handles = true,
                'u' => m.unloaded_modules = true,
                't' => m.thread_info = true,
                'i' => m.indirect_memory = true,
                'p' => m.process_thread_data = true,
                'w' => m.private_rw_memory = true,
                'd' => m.data_segments = true,
                'c' => m.code_segments = true,
                'r' => m.filter_memory = true,
                'R' => m.filter_module_paths = true,
                'y' => m.avx = true,
                'a' | 'A' => {
                    m.full_memory = true;
                    m.full_memory_info = true;
                    m.handles = true;
                    m.unloaded_modules = true;
                    m.thread_info = true;
                    if c == 'A' {
                        m.ignore_inaccessible = true;
                    }
                }
                other => return Err(other),
            }
        }
        Ok(m)
    }

    /// The `MINIDUMP_TYPE` bits of §8 (0 = MiniDumpNormal).
    pub fn minidump_type(&self) -> u32 {
        [
            (self.data_segments, 0x1),
            (self.full_memory, 0x2),
            (self.handles, 0x4),
            (self.filter_memory, 0x8),
            (self.unloaded_modules, 0x20),
            (self.indirect_memory, 0x40),
            (self.filter_module_paths, 0x80),
            (self.process_thread_data, 0x100),
            (self.private_rw_memory, 0x200),
            (self.full_memory_info, 0x800),
            (self.thread_info, 0x1000),
            (self.code_segments, 0x2000),
            (self.ignore_inaccessible, 0x20000),
            (self.avx, 0x20_0000),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpKind {
    /// `/m[letters]` (the default): a minidump.
    Mini(MiniOptions),
    /// `/f[y]`: an ELF core; `avx` for `/fy`.
    Full { avx: bool },
}

/// `.dump [options] FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpCommand {
    pub kind: DumpKind,
    /// `/o`
    pub overwrite: bool,
    /// `/u`
    pub unique: bool,
    /// `/c COMMENT`
    pub comment: Option<String>,
    /// `/j ADDR`: a `JIT_DEBUG_INFO` block.
    pub jit_info: Option<Expr>,
    pub file: String,
}

/// One parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `g`/`gh`/`gn`/`gN [= start] [break ...]`.
    Go {
        kind: GoKind,
        start: Option<Expr>,
        breaks: Vec<Expr>,
    },
    /// `p [= start] [count]`
    Step {
        start: Option<Expr>,
        count: Option<Expr>,
    },
    /// `t [= start] [count]`
    Trace {
        start: Option<Expr>,
        count: Option<Expr>,
    },
    Quit(QuitKind),
    /// `.detach [/h|/n]`
    Detach(Disposition),
    /// `.abandon [/h|/n]`
    Abandon(Disposition),
    /// `.kill`
    Kill,
    /// `.childdbg [0|1]`; `None` shows the setting.
    ChildDbg(Option<bool>),
    /// `.lastevent`
    LastEvent,
    /// `.exr ADDR|-1`
    Exr(ExrTarget),
    /// `.ecxr` / `.excr`
    Ecxr,
    /// `.cxr [ADDR]`; `None` resets the context.
    Cxr(Option<Expr>),
    /// `.jdinfo ADDR`
    JdInfo(Expr),
    Dump(DumpCommand),
    /// `sx`, `sxe/sxd/sxn/sxi/sx- ...`, `sxr`: `rest` is the trimmed,
    /// unparsed argument text (empty for `sx` and `sxr`).
    Sx {
        verb: SxVerbRaw,
        rest: String,
    },
    Assert(AssertCommand),
    /// `k`, `kb`, `kn`, `kp`, `kv [frames]`
    Stack {
        kind: StackKind,
        frames: Option<Expr>,
    },
    /// `r` (empty: all), `r rax, rbx`, `r rax=1, rbx=2`.
    Registers(Vec<RegArg>),
    /// `~`, `~N`, `~*`, `~.`, `~#`: list.
    ThreadList(ThreadSel),
    /// `~Ns`
    ThreadSwitch(ThreadSel),
    /// `~N cmd`, `~* cmd`: run `cmd` with that thread current.
    ThreadApply {
        threads: ThreadSel,
        command: Box<Command>,
    },
    /// `|`
    ProcessStatus,
    /// `lm [v] [m PATTERN]`
    Modules {
        verbose: bool,
        pattern: Option<String>,
    },
    /// `db/dw/dd/dq/dp/da/du/dps/dds/dqs [ADDR] [range]`
    Display {
        kind: DisplayKind,
        addr: Option<Expr>,
        range: Option<Range>,
    },
    /// `u [ADDR] [range]`
    Unassemble {
        addr: Option<Expr>,
        range: Option<Range>,
    },
    /// `bp[ID] [ADDR] ["cmds"]`, `bu[ID] module!sym ["cmds"]`.
    Breakpoint {
        deferred: bool,
        id: Option<u32>,
        location: Option<Expr>,
        commands: Option<String>,
    },
    /// `bl`
    BreakpointList,
    /// `bc` / `bd` / `be ids`
    BreakpointEdit {
        action: BpAction,
        ids: BpIds,
    },
    /// `x module!pattern`
    Examine {
        pattern: String,
    },
    /// `? EXPR`
    Evaluate(Expr),
    /// `.echo TEXT`
    Echo(String),
    /// `ln [ADDR]`
    ListNear(Option<Expr>),
    /// `.help`, `?` alone, `.dump /?` (topic `.dump`).
    Help {
        topic: Option<String>,
    },
    /// `* ...` (to the end of the line) or `$$ ...` (to the next `;`).
    Comment(String),
}

/// Splits a command line on `;` outside double quotes (`\"` inside quotes
/// does not end them). Pieces are trimmed; empty ones are dropped. A piece
/// that starts with `*` is a comment running to the end of the line, `;`
/// included, as in CDB.
pub fn split_commands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' && !in_quotes && cur.trim().is_empty() {
            cur.push(c);
            cur.extend(chars.by_ref());
            break;
        }
        match c {
            '"' => {
                in_quotes = !in_quotes;
                cur.push(c);
            }
            '\\' if in_quotes => {
                cur.push(c);
                if let Some(&n) = chars.peek() {
                    if n == '"' || n == '\\' {
                        cur.push(n);
                        chars.next();
                    }
                }
            }
            ';' if !in_quotes => {
                push_piece(&mut out, &cur);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    push_piece(&mut out, &cur);
    out
}

fn push_piece(out: &mut Vec<String>, piece: &str) {
    let t = piece.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
}

/// Splits and parses a whole line; the first bad command is the error.
pub fn parse_line(line: &str) -> Result<Vec<Command>, CommandError> {
    split_commands(line)
        .iter()
        .map(|c| parse_command(c))
        .collect()
}

/// Parses one command (no top-level `;`).
pub fn parse_command(text: &str) -> Result<Command, CommandError> {
    let text = text.trim();
    let Some(first) = text.chars().next() else {
        return Err(CommandError::Empty);
    };
    let after_first = text.get(first.len_utf8()..).unwrap_or("");
    match first {
        '*' => return Ok(Command::Comment(after_first.trim().to_string())),
        '$' if after_first.starts_with('$') => {
            return Ok(Command::Comment(
                after_first.get(1..).unwrap_or("").trim().to_string(),
            ))
        }
        '~' => return parse_thread(after_first),
        '|' => {
            let mut a = Args::new("|", after_first);
            a.end("nothing (process selectors are not supported)")?;
            return Ok(Command::ProcessStatus);
        }
        '?' => {
            if after_first.starts_with('?') {
                return Err(CommandError::Unsupported {
                    command: "??".into(),
                    why: "C++ expressions are not supported; use `?` (MASM)",
                });
            }
            let rest = after_first.trim();
            if rest.is_empty() {
                return Ok(Command::Help { topic: None });
            }
            return parse_expr(rest).map(Command::Evaluate).map_err(|source| {
                CommandError::BadExpression {
                    command: "?".into(),
                    text: rest.to_string(),
                    source,
                }
            });
        }
        _ => {}
    }
    let name_len = if first == '.' {
        1 + after_first
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count()
    } else {
        text.bytes().take_while(|b| b.is_ascii_alphabetic()).count()
    };
    let mut name = text.get(..name_len).unwrap_or("");
    let mut rest = text.get(name_len..).unwrap_or("");
    if name.eq_ignore_ascii_case("sx") && rest.starts_with('-') {
        name = text.get(..3).unwrap_or(name);
        rest = text.get(3..).unwrap_or("");
    }
    if name.is_empty() || name == "." {
        let word = text.split_whitespace().next().unwrap_or(text);
        return Err(CommandError::Unknown {
            command: word.to_string(),
        });
    }
    let lower = name.to_ascii_lowercase();
    let mut a = Args::new(name, rest);
    let cmd = match lower.as_str() {
        "g" | "gh" | "gn" => {
            let kind = match lower.as_str() {
                "g" => GoKind::Go,
                "gh" => GoKind::Handled,
                _ if name == "gN" => GoKind::NotHandledBreakpoint,
                _ => GoKind::NotHandled,
            };
            let start = a.start_address()?;
            let mut breaks = Vec::new();
            while !a.at_end() {
                if breaks.len() == MAX_BREAK_ADDRESSES {
                    return Err(CommandError::TooManyBreakAddresses {
                        command: name.to_string(),
                        max: MAX_BREAK_ADDRESSES,
                    });
                }
                breaks.push(a.expr()?);
            }
            Command::Go {
                kind,
                start,
                breaks,
            }
        }
        "p" | "t" => {
            let start = a.start_address()?;
            let count = a.opt_expr()?;
            a.end("nothing after the count")?;
            if lower == "p" {
                Command::Step { start, count }
            } else {
                Command::Trace { start, count }
            }
        }
        "q" | "qq" | "qd" => {
            a.end("no arguments")?;
            Command::Quit(match lower.as_str() {
                "q" => QuitKind::Quit,
                "qq" => QuitKind::QuitAll,
                _ => QuitKind::Detach,
            })
        }
        ".detach" => Command::Detach(a.disposition()?),
        ".abandon" => Command::Abandon(a.disposition()?),
        ".kill" => a.end("no arguments").map(|_| Command::Kill)?,
        ".childdbg" => {
            let v = match a.word() {
                None => None,
                Some("0") => Some(false),
                Some("1") => Some(true),
                Some(other) => return Err(a.unexpected(other, "0 or 1")),
            };
            a.end("nothing after 0 or 1")?;
            Command::ChildDbg(v)
        }
        ".lastevent" => a.end("no arguments").map(|_| Command::LastEvent)?,
        ".exr" => {
            if a.rest().trim() == "-1" {
                Command::Exr(ExrTarget::Last)
            } else {
                let e = a.required_expr("an exception record address or -1")?;
                a.end("nothing after the address")?;
                Command::Exr(ExrTarget::At(e))
            }
        }
        ".ecxr" | ".excr" => a.end("no arguments").map(|_| Command::Ecxr)?,
        ".cxr" => {
            let e = a.opt_expr()?;
            a.end("nothing after the address")?;
            Command::Cxr(e)
        }
        ".jdinfo" => {
            let e = a.required_expr("a JIT_DEBUG_INFO address")?;
            a.end("nothing after the address")?;
            Command::JdInfo(e)
        }
        ".dump" => parse_dump(&mut a)?,
        ".echo" => Command::Echo(unquote_whole(a.rest().trim())),
        ".help" => a
            .end("no arguments")
            .map(|_| Command::Help { topic: None })?,
        "sx" | "sxe" | "sxd" | "sxn" | "sxi" | "sx-" | "sxr" => {
            let verb = match lower.as_str() {
                "sx" => SxVerbRaw::List,
                "sxe" => SxVerbRaw::E,
                "sxd" => SxVerbRaw::D,
                "sxn" => SxVerbRaw::N,
                "sxi" => SxVerbRaw::I,
                "sx-" => SxVerbRaw::Minus,
                _ => SxVerbRaw::Reset,
            };
            if matches!(verb, SxVerbRaw::List | SxVerbRaw::Reset) {
                a.end("no arguments")?;
            }
            Command::Sx {
                verb,
                rest: a.rest().trim().to_string(),
            }
        }
        "ah" => a
            .end("no arguments")
            .map(|_| Command::Assert(AssertCommand::List))?,
        "ahc" => a
            .end("no arguments")
            .map(|_| Command::Assert(AssertCommand::Clear))?,
        "ahb" | "ahi" | "ahd" => {
            let e = a.opt_expr()?;
            a.end("nothing after the address")?;
            Command::Assert(match lower.as_str() {
                "ahb" => AssertCommand::Break(e),
                "ahi" => AssertCommand::Ignore(e),
                _ => AssertCommand::Delete(e),
            })
        }
        "k" | "kb" | "kn" | "kp" | "kv" => {
            let kind = match lower.as_str() {
                "k" => StackKind::K,
                "kb" => StackKind::Kb,
                "kn" => StackKind::Kn,
                "kp" => StackKind::Kp,
                _ => StackKind::Kv,
            };
            let frames = a.opt_expr()?;
            a.end("nothing after the frame count")?;
            Command::Stack { kind, frames }
        }
        "r" => parse_registers(&mut a)?,
        "lm" | "lmv" | "lmm" | "lmvm" => parse_lm(&lower, &mut a)?,
        "db" | "dw" | "dd" | "dq" | "dp" | "da" | "du" | "dps" | "dds" | "dqs" => {
            let kind = match lower.as_str() {
                "db" => DisplayKind::Db,
                "dw" => DisplayKind::Dw,
                "dd" => DisplayKind::Dd,
                "dq" => DisplayKind::Dq,
                "dp" => DisplayKind::Dp,
                "da" => DisplayKind::Da,
                "du" => DisplayKind::Du,
                "dps" => DisplayKind::Dps,
                "dds" => DisplayKind::Dds,
                _ => DisplayKind::Dqs,
            };
            let (addr, range) = a.address_range()?;
            Command::Display { kind, addr, range }
        }
        "u" => {
            let (addr, range) = a.address_range()?;
            Command::Unassemble { addr, range }
        }
        "bp" | "bu" => {
            let deferred = lower == "bu";
            let id = a.attached_decimal("a breakpoint id")?;
            let location = if a.at_end() || a.peek_char() == Some('"') {
                None
            } else {
                Some(a.expr()?)
            };
            if deferred && location.is_none() {
                return Err(a.missing("a `module!symbol` location"));
            }
            let commands = a.quoted()?;
            a.end("a quoted command string")?;
            Command::Breakpoint {
                deferred,
                id,
                location,
                commands,
            }
        }
        "bl" => a.end("no arguments").map(|_| Command::BreakpointList)?,
        "bc" | "bd" | "be" => {
            let action = match lower.as_str() {
                "bc" => BpAction::Clear,
                "bd" => BpAction::Disable,
                _ => BpAction::Enable,
            };
            Command::BreakpointEdit {
                action,
                ids: a.bp_ids()?,
            }
        }
        "x" => {
            let pattern = a.rest().trim();
            if pattern.is_empty() {
                return Err(a.missing("a `module!pattern`"));
            }
            Command::Examine {
                pattern: pattern.to_string(),
            }
        }
        "ln" => {
            let e = a.opt_expr()?;
            a.end("nothing after the address")?;
            Command::ListNear(e)
        }
        _ => {
            let word = text.split_whitespace().next().unwrap_or(text);
            return Err(CommandError::Unknown {
                command: word.to_string(),
            });
        }
    };
    Ok(cmd)
}

/// `~` commands; `rest` is the text after `~`.
fn parse_thread(rest: &str) -> Result<Command, CommandError> {
    let mut a = Args::new("~", rest);
    let sel = match rest.chars().next() {
        None => ThreadSel::All,
        Some(c) if c.is_whitespace() => ThreadSel::All,
        Some('*') => {
            a.bump(1);
            ThreadSel::All
        }
        Some('.') => {
            a.bump(1);
            ThreadSel::Current
        }
        Some('#') => {
            a.bump(1);
            ThreadSel::Event
        }
        Some('~') => {
            a.bump(1);
            if a.peek_char() != Some('[') {
                return Err(a.missing("`[tid]` after `~~`"));
            }
            a.bump(1);
            let inner_len = a.rest().find(']').ok_or_else(|| a.missing("`]`"))?;
            let inner = a.rest().get(..inner_len).unwrap_or("");
            let tid = parse_expr(inner).map_err(|source| CommandError::BadExpression {
                command: "~~".into(),
                text: inner.to_string(),
                source,
            })?;
            a.bump(inner_len + 1);
            ThreadSel::Tid(tid)
        }
        Some(c) if c.is_ascii_digit() => {
            let digits: String = a.rest().chars().take_while(char::is_ascii_digit).collect();
            a.bump(digits.len());
            ThreadSel::Index(digits.parse().map_err(|_| CommandError::BadNumber {
                command: "~".into(),
                token: digits.clone(),
                expected: "a decimal thread number",
            })?)
        }
        _ => {
            let tok = a.rest().split_whitespace().next().unwrap_or("").to_string();
            return Err(a.unexpected(&tok, "a thread: *, ., #, a number or ~[tid]"));
        }
    };
    let tail = a.rest().trim();
    if tail.is_empty() {
        return Ok(Command::ThreadList(sel));
    }
    if tail.eq_ignore_ascii_case("s") {
        if sel == ThreadSel::All {
            return Err(a.unexpected("s", "one thread to switch to, not `*`"));
        }
        return Ok(Command::ThreadSwitch(sel));
    }
    if ["f", "u", "n", "m"]
        .iter()
        .any(|s| tail.eq_ignore_ascii_case(s))
    {
        return Err(CommandError::Unsupported {
            command: format!("~{tail}"),
            why: "freezing and suspending threads is not supported",
        });
    }
    if tail.starts_with('~') {
        return Err(a.unexpected(tail, "a command (thread prefixes do not nest)"));
    }
    Ok(Command::ThreadApply {
        threads: sel,
        command: Box::new(parse_command(tail)?),
    })
}

fn parse_registers(a: &mut Args<'_>) -> Result<Command, CommandError> {
    let text = a.rest().trim();
    if text.is_empty() {
        return Ok(Command::Registers(Vec::new()));
    }
    let mut out = Vec::new();
    for piece in text.split(',') {
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (piece.trim(), None),
        };
        if name.is_empty() {
            return Err(a.missing("a register name"));
        }
        let bare = name.strip_prefix('@').unwrap_or(name);
        let canonical = if let Some(r) = register_index(bare) {
            r.name.to_string()
        } else if bare.len() > 1
            && bare.starts_with('$')
            && bare
                .bytes()
                .skip(1)
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            bare.to_ascii_lowercase()
        } else {
            return Err(CommandError::UnknownRegister {
                command: "r".into(),
                register: name.to_string(),
            });
        };
        match value {
            None => out.push(RegArg::Show(canonical)),
            Some(v) => {
                let e = parse_expr(v).map_err(|source| CommandError::BadExpression {
                    command: "r".into(),
                    text: v.to_string(),
                    source,
                })?;
                out.push(RegArg::Set(canonical, e));
            }
        }
    }
    Ok(Command::Registers(out))
}

fn parse_lm(name: &str, a: &mut Args<'_>) -> Result<Command, CommandError> {
    let letters = name.get(2..).unwrap_or("");
    let mut verbose = letters.contains('v');
    let mut pattern = None;
    if letters.contains('m') {
        pattern = Some(
            a.word()
                .ok_or_else(|| a.missing("a module pattern after `m`"))?
                .to_string(),
        );
    }
    while let Some(w) = a.word() {
        match w {
            "v" => verbose = true,
            "m" if pattern.is_none() => {
                pattern = Some(
                    a.word()
                        .ok_or_else(|| a.missing("a module pattern after `m`"))?
                        .to_string(),
                )
            }
            other => {
                return Err(CommandError::BadOption {
                    command: "lm".into(),
                    option: other.to_string(),
                    expected: "`v` or `m PATTERN`",
                })
            }
        }
    }
    Ok(Command::Modules { verbose, pattern })
}

const DUMP_OPTIONS: &str = "/o, /u, /c COMMENT, /j ADDR, /f, /fy or /m[fFhutipwdcrRyaA]";

fn parse_dump(a: &mut Args<'_>) -> Result<Command, CommandError> {
    let words = split_words(a.rest()).map_err(|text| CommandError::UnterminatedQuote {
        command: ".dump".into(),
        text,
    })?;
    let mut kind: Option<(DumpKind, String)> = None;
    let mut overwrite = false;
    let mut unique = false;
    let mut comment = None;
    let mut jit_info = None;
    let mut file = None;
    let mut it = words.into_iter();
    let bad_option = |option: &str| CommandError::BadOption {
        command: ".dump".into(),
        option: option.to_string(),
        expected: DUMP_OPTIONS,
    };
    while let Some(w) = it.next() {
        let is_option =
            !w.quoted && w.text.starts_with('/') && !w.text.get(1..).unwrap_or("").contains('/');
        if !is_option {
            if let Some(extra) = it.next() {
                return Err(a.unexpected(&extra.text, "nothing after the file name"));
            }
            file = Some(w.text);
            break;
        }
        let opt = w.text.as_str();
        let mut set_kind = |k: DumpKind| match &kind {
            Some((_, first)) => Err(CommandError::Conflict {
                command: ".dump".into(),
                first: first.clone(),
                second: opt.to_string(),
            }),
            None => {
                kind = Some((k, opt.to_string()));
                Ok(())
            }
        };
        match opt {
            "/o" => overwrite = true,
            "/u" => unique = true,
            "/f" => set_kind(DumpKind::Full { avx: false })?,
            "/fy" => set_kind(DumpKind::Full { avx: true })?,
            "/c" => {
                let c = it.next().ok_or_else(|| a.missing("a comment after /c"))?;
                comment = Some(c.text);
            }
            "/j" => {
                let addr = it
                    .next()
                    .ok_or_else(|| a.missing("a JIT_DEBUG_INFO address after /j"))?;
                jit_info =
                    Some(
                        parse_expr(&addr.text).map_err(|source| CommandError::BadExpression {
                            command: ".dump".into(),
                            text: addr.text.clone(),
                            source,
                        })?,
                    );
            }
            "/?" => {
                return Ok(Command::Help {
                    topic: Some(".dump".into()),
                })
            }
            "/a" | "/b" | "/ba" | "/k" | "/ka" | "/xc" | "/xr" | "/xp" | "/xt" => {
                return Err(CommandError::Unsupported {
                    command: format!(".dump {opt}"),
                    why: "this Windows option has no Linux mapping",
                })
            }
            _ => match opt.strip_prefix("/m") {
                Some(letters) => {
                    let m = MiniOptions::from_letters(letters).map_err(|_| bad_option(opt))?;
                    set_kind(DumpKind::Mini(m))?
                }
                None => return Err(bad_option(opt)),
            },
        }
    }
    let file = file.ok_or_else(|| a.missing("a dump file name"))?;
    Ok(Command::Dump(DumpCommand {
        kind: kind.map_or(DumpKind::Mini(MiniOptions::default()), |(k, _)| k),
        overwrite,
        unique,
        comment,
        jit_info,
        file,
    }))
}

/// A whitespace-separated word; `quoted` if it was in double quotes.
struct Word {
    text: String,
    quoted: bool,
}

/// Splits on whitespace with double quotes (and `\"` inside them); the
/// error is the text from the unterminated quote on.
fn split_words(text: &str) -> Result<Vec<Word>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let (inner, used) = read_quoted(rest).ok_or_else(|| rest.to_string())?;
            out.push(Word {
                text: inner,
                quoted: true,
            });
            rest = rest.get(used..).unwrap_or("");
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(Word {
                text: rest.get(..end).unwrap_or("").to_string(),
                quoted: false,
            });
            rest = rest.get(end..).unwrap_or("");
        }
        rest = rest.trim_start();
    }
    Ok(out)
}

/// `text` starts with `"`: the unescaped contents and the bytes used
/// (closing quote included), or `None` if the quote is not closed.
fn read_quoted(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, n @ ('"' | '\\'))) => out.push(n),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => return None,
            },
            _ => out.push(c),
        }
    }
    None
}

/// `"text"` as a whole becomes `text`; anything else is kept.
fn unquote_whole(text: &str) -> String {
    if text.starts_with('"') {
        if let Some((inner, used)) = read_quoted(text) {
            if used == text.len() {
                return inner;
            }
        }
    }
    text.to_string()
}

/// A cursor over one command's argument text.
struct Args<'a> {
    command: &'a str,
    text: &'a str,
    pos: usize,
}

impl<'a> Args<'a> {
    fn new(command: &'a str, text: &'a str) -> Args<'a> {
        Args {
            command,
            text,
            pos: 0,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn bump(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.text.len());
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.bump(r.len() - r.trim_start().len());
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.rest().is_empty()
    }

    fn peek_char(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    /// The next whitespace-delimited word.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let r = self.rest();
        if r.is_empty() {
            return None;
        }
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        self.bump(end);
        r.get(..end)
    }

    fn missing(&self, expected: &'static str) -> CommandError {
        CommandError::MissingArgument {
            command: self.command.to_string(),
            expected,
        }
    }

    fn unexpected(&self, token: &str, expected: &'static str) -> CommandError {
        CommandError::UnexpectedArgument {
            command: self.command.to_string(),
            token: token.to_string(),
            expected,
        }
    }

    /// Error if anything but whitespace is left.
    fn end(&mut self, expected: &'static str) -> Result<(), CommandError> {
        self.skip_ws();
        match self.rest().split_whitespace().next() {
            None => Ok(()),
            Some(tok) => Err(self.unexpected(tok, expected)),
        }
    }

    /// The longest expression here.
    fn expr(&mut self) -> Result<Expr, CommandError> {
        self.skip_ws();
        let text = self.rest();
        match parse_expr_prefix(text) {
            Ok((e, used)) => {
                self.bump(used);
                Ok(e)
            }
            Err(source) => Err(CommandError::BadExpression {
                command: self.command.to_string(),
                text: text.trim().to_string(),
                source,
            }),
        }
    }

    fn required_expr(&mut self, expected: &'static str) -> Result<Expr, CommandError> {
        if self.at_end() {
            return Err(self.missing(expected));
        }
        self.expr()
    }

    fn opt_expr(&mut self) -> Result<Option<Expr>, CommandError> {
        if self.at_end() {
            return Ok(None);
        }
        self.expr().map(Some)
    }

    /// `= start` of `g` / `p` / `t`.
    fn start_address(&mut self) -> Result<Option<Expr>, CommandError> {
        if self.peek_char() != Some('=') {
            return Ok(None);
        }
        self.bump(1);
        self.required_expr("a start address after `=`").map(Some)
    }

    /// `/h` or `/n` (also `-h`, `-n`) of `.detach` / `.abandon`.
    fn disposition(&mut self) -> Result<Disposition, CommandError> {
        let d = match self.word() {
            None => Disposition::Handled,
            Some("/h" | "-h") => Disposition::Handled,
            Some("/n" | "-n") => Disposition::NotHandled,
            Some(other) => {
                return Err(CommandError::BadOption {
                    command: self.command.to_string(),
                    option: other.to_string(),
                    expected: "/h or /n",
                })
            }
        };
        self.end("nothing after /h or /n")?;
        Ok(d)
    }

    /// Decimal digits glued to the command name (`bp1`).
    fn attached_decimal(&mut self, expected: &'static str) -> Result<Option<u32>, CommandError> {
        let digits: String = self
            .rest()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if digits.is_empty() {
            return Ok(None);
        }
        self.bump(digits.len());
        digits
            .parse()
            .map(Some)
            .map_err(|_| CommandError::BadNumber {
                command: self.command.to_string(),
                token: digits,
                expected,
            })
    }

    /// A double-quoted string, if one starts here.
    fn quoted(&mut self) -> Result<Option<String>, CommandError> {
        if self.peek_char() != Some('"') {
            return Ok(None);
        }
        let r = self.rest();
        let (inner, used) = read_quoted(r).ok_or_else(|| CommandError::UnterminatedQuote {
            command: self.command.to_string(),
            text: r.to_string(),
        })?;
        self.bump(used);
        Ok(Some(inner))
    }

    /// Does a CDB range (`L count`, `L?count`) start here? `L` followed by a
    /// letter is a word (a symbol such as `Len`), not a range.
    fn at_range(&mut self) -> bool {
        self.skip_ws();
        let mut it = self.rest().chars();
        matches!(it.next(), Some('L' | 'l'))
            && !it
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '!')
    }

    /// `[ADDR] [L count | L?count | END]` of `d*` and `u`.
    fn address_range(&mut self) -> Result<(Option<Expr>, Option<Range>), CommandError> {
        let addr = if self.at_end() || self.at_range() {
            None
        } else {
            Some(self.expr()?)
        };
        let range = if self.at_end() {
            None
        } else if self.at_range() {
            self.bump(1);
            let force = self.rest().starts_with('?');
            if force {
                self.bump(1);
            }
            let count = self.required_expr("a count after `L`")?;
            Some(Range::Count { count, force })
        } else {
            Some(Range::End(self.expr()?))
        };
        self.end("nothing after the range")?;
        Ok((addr, range))
    }

    /// `*` or decimal ids: `1`, `1,3`, `1 3`, `2-5`.
    fn bp_ids(&mut self) -> Result<BpIds, CommandError> {
        let text = self.rest().trim();
        if text.is_empty() {
            return Err(self.missing("breakpoint ids or `*`"));
        }
        if text == "*" {
            return Ok(BpIds::All);
        }
        let bad = |token: &str| CommandError::BadNumber {
            command: self.command.to_string(),
            token: token.to_string(),
            expected: "a decimal breakpoint id, a range N-M or `*`",
        };
        let mut out = Vec::new();
        for token in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            let (lo, hi) = token.split_once('-').unwrap_or((token, token));
            let lo: u32 = lo.parse().map_err(|_| bad(token))?;
            let hi: u32 = hi.parse().map_err(|_| bad(token))?;
            if hi < lo {
                return Err(bad(token));
            }
            out.push((lo, hi));
        }
        Ok(BpIds::List(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Command {
        match parse_command(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn err(text: &str) -> CommandError {
        match parse_command(text) {
            Ok(c) => panic!("{text}: parsed as {c:?}"),
            Err(e) => e,
        }
    }

    fn ex(text: &str) -> Expr {
        parse_expr(text).unwrap()
    }

    #[test]
    fn split_respects_quotes_and_comments() {
        assert_eq!(
            split_commands(r#"sxe -c "r rax; g" av; g"#),
            vec![r#"sxe -c "r rax; g" av"#, "g"]
        );
        assert_eq!(split_commands(" r ;; k ; "), vec!["r", "k"]);
        assert_eq!(
            split_commands(r#"bp main ".echo \"a;b\"; g"; bl"#),
            vec![r#"bp main ".echo \"a;b\"; g""#, "bl"]
        );
        assert_eq!(
            split_commands("r; * comment; with g; k"),
            vec!["r", "* comment; with g; k"]
        );
        assert_eq!(split_commands("$$ note; k"), vec!["$$ note", "k"]);
        assert!(split_commands("  ").is_empty());
        assert_eq!(split_commands(".echo \"open;"), vec![".echo \"open;"]);
    }

    #[test]
    fn parse_line_splits_and_parses() {
        assert_eq!(
            parse_line(".lastevent; .exr -1; .ecxr; kb; g"),
            Ok(vec![
                Command::LastEvent,
                Command::Exr(ExrTarget::Last),
                Command::Ecxr,
                Command::Stack {
                    kind: StackKind::Kb,
                    frames: None
                },
                Command::Go {
                    kind: GoKind::Go,
                    start: None,
                    breaks: vec![]
                },
            ])
        );
        assert_eq!(
            parse_line("r; bogus; g"),
            Err(CommandError::Unknown {
                command: "bogus".into()
            })
        );
        assert_eq!(parse_line(""), Ok(vec![]));
    }

    #[test]
    fn go_family() {
        assert_eq!(
            one("g"),
            Command::Go {
                kind: GoKind::Go,
                start: None,
                breaks: vec![]
            }
        );
        assert_eq!(
            one("gh"),
            Command::Go {
                kind: GoKind::Handled,
                start: None,
                breaks: vec![]
            }
        );
        assert_eq!(
            one("gn"),
            Command::Go {
                kind: GoKind::NotHandled,
                start: None,
                breaks: vec![]
            }
        );
        assert_eq!(
            one("gN"),
            Command::Go {
                kind: GoKind::NotHandledBreakpoint,
                start: None,
                breaks: vec![]
            }
        );
        assert_eq!(
            one("g = 401000 crasher!main rip+4"),
            Command::Go {
                kind: GoKind::Go,
                start: Some(ex("401000")),
                breaks: vec![ex("crasher!main"), ex("rip+4")]
            }
        );
        assert_eq!(
            one("gh =@rip"),
            Command::Go {
                kind: GoKind::Handled,
                start: Some(ex("@rip")),
                breaks: vec![]
            }
        );
        let many = format!("g {}", ["1"; 11].join(" "));
        assert_eq!(
            err(&many),
            CommandError::TooManyBreakAddresses {
                command: "g".into(),
                max: 10
            }
        );
        assert_eq!(
            err("g ="),
            CommandError::MissingArgument {
                command: "g".into(),
                expected: "a start address after `=`"
            }
        );
        assert!(matches!(err("g 1 +"), CommandError::BadExpression { .. }));
    }

    #[test]
    fn step_trace_quit() {
        assert_eq!(
            one("p"),
            Command::Step {
                start: None,
                count: None
            }
        );
        assert_eq!(
            one("t 5"),
            Command::Trace {
                start: None,
                count: Some(ex("5"))
            }
        );
        assert_eq!(
            one("p = rip 2"),
            Command::Step {
                start: Some(ex("rip")),
                count: Some(ex("2"))
            }
        );
        assert_eq!(one("q"), Command::Quit(QuitKind::Quit));
        assert_eq!(one("qq"), Command::Quit(QuitKind::QuitAll));
        assert_eq!(one("QD"), Command::Quit(QuitKind::Detach));
        assert_eq!(
            err("q now"),
            CommandError::UnexpectedArgument {
                command: "q".into(),
                token: "now".into(),
                expected: "no arguments"
            }
        );
        assert!(matches!(
            err("t 1 2"),
            CommandError::UnexpectedArgument { .. }
        ));
    }

    #[test]
    fn session_commands() {
        assert_eq!(one(".detach"), Command::Detach(Disposition::Handled));
        assert_eq!(one(".detach /n"), Command::Detach(Disposition::NotHandled));
        assert_eq!(one(".detach /h"), Command::Detach(Disposition::Handled));
        assert_eq!(
            one(".abandon /n"),
            Command::Abandon(Disposition::NotHandled)
        );
        assert_eq!(
            err(".abandon /x"),
            CommandError::BadOption {
                command: ".abandon".into(),
                option: "/x".into(),
                expected: "/h or /n"
            }
        );
        assert_eq!(one(".kill"), Command::Kill);
        assert_eq!(one(".childdbg"), Command::ChildDbg(None));
        assert_eq!(one(".childdbg 1"), Command::ChildDbg(Some(true)));
        assert_eq!(one(".childdbg 0"), Command::ChildDbg(Some(false)));
        assert_eq!(
            err(".childdbg 2"),
            CommandError::UnexpectedArgument {
                command: ".childdbg".into(),
                token: "2".into(),
                expected: "0 or 1"
            }
        );
    }

    #[test]
    fn event_inspection() {
        assert_eq!(one(".lastevent"), Command::LastEvent);
        assert_eq!(one(".exr -1"), Command::Exr(ExrTarget::Last));
        assert_eq!(
            one(".exr 00000000`003e0028"),
            Command::Exr(ExrTarget::At(ex("00000000`003e0028")))
        );
        assert_eq!(
            err(".exr"),
            CommandError::MissingArgument {
                command: ".exr".into(),
                expected: "an exception record address or -1"
            }
        );
        assert_eq!(one(".ecxr"), Command::Ecxr);
        assert_eq!(one(".excr"), Command::Ecxr);
        assert_eq!(one(".cxr"), Command::Cxr(None));
        assert_eq!(one(".cxr 0x1000"), Command::Cxr(Some(ex("0x1000"))));
        assert_eq!(
            one(".jdinfo 0x00000000003E0000"),
            Command::JdInfo(ex("0x00000000003E0000"))
        );
        assert!(matches!(
            err(".jdinfo"),
            CommandError::MissingArgument { .. }
        ));
    }

    #[test]
    fn dump_options() {
        let d = |text: &str| match one(text) {
            Command::Dump(d) => d,
            other => panic!("{other:?}"),
        };
        let plain = d(".dump /tmp/a.dmp");
        assert_eq!(plain.kind, DumpKind::Mini(MiniOptions::default()));
        assert_eq!(plain.file, "/tmp/a.dmp");
        assert!(!plain.overwrite && !plain.unique);

        let ma = d(".dump /ma /o /u /tmp/a.dmp");
        let DumpKind::Mini(m) = ma.kind else {
            panic!("{ma:?}")
        };
        assert!(m.full_memory && m.full_memory_info && m.handles);
        assert!(m.unloaded_modules && m.thread_info && !m.ignore_inaccessible);
        assert_eq!(m.minidump_type(), 0x2 | 0x800 | 0x4 | 0x20 | 0x1000);
        assert!(ma.overwrite && ma.unique);

        let big_a = d(".dump /mA out.dmp");
        assert_eq!(
            big_a.kind,
            DumpKind::Mini(
                MiniOptions::from_letters("fFhut")
                    .map(|mut m| {
                        m.ignore_inaccessible = true;
                        m
                    })
                    .unwrap()
            )
        );
        let mp = d(".dump /mp x.dmp");
        assert_eq!(
            mp.kind,
            DumpKind::Mini(MiniOptions {
                process_thread_data: true,
                ..MiniOptions::default()
            })
        );
        let letters = d(".dump /mhuRy x.dmp");
        let DumpKind::Mini(m) = letters.kind else {
            panic!()
        };
        assert_eq!(m.minidump_type(), 0x4 | 0x20 | 0x80 | 0x20_0000);

        assert_eq!(d(".dump /f core").kind, DumpKind::Full { avx: false });
        assert_eq!(d(".dump /fy core").kind, DumpKind::Full { avx: true });

        let c = d(r#".dump /c "first crash" /j 0x3e0000 /tmp/d/x.dmp"#);
        assert_eq!(c.comment.as_deref(), Some("first crash"));
        assert_eq!(c.jit_info, Some(ex("0x3e0000")));
        assert_eq!(c.file, "/tmp/d/x.dmp");
        assert_eq!(d(".dump /c word x.dmp").comment.as_deref(), Some("word"));
        assert_eq!(d(r#".dump "my file.dmp""#).file, "my file.dmp".to_string());

        assert_eq!(
            err(".dump /mz x.dmp"),
            CommandError::BadOption {
                command: ".dump".into(),
                option: "/mz".into(),
                expected: DUMP_OPTIONS
            }
        );
        assert!(matches!(
            err(".dump /q x.dmp"),
            CommandError::BadOption { .. }
        ));
        assert_eq!(
            err(".dump /ma /f x"),
            CommandError::Conflict {
                command: ".dump".into(),
                first: "/ma".into(),
                second: "/f".into()
            }
        );
        assert!(matches!(
            err(".dump /o"),
            CommandError::MissingArgument { .. }
        ));
        assert!(matches!(
            err(".dump /j"),
            CommandError::MissingArgument { .. }
        ));
        assert!(matches!(
            err(".dump /j zz( x"),
            CommandError::BadExpression { .. }
        ));
        assert!(matches!(
            err(".dump a.dmp b.dmp"),
            CommandError::UnexpectedArgument { .. }
        ));
        assert!(matches!(
            err(".dump /xc a.dmp"),
            CommandError::Unsupported { .. }
        ));
        assert!(matches!(
            err(r#".dump /c "open x"#),
            CommandError::UnterminatedQuote { .. }
        ));
        assert_eq!(
            one(".dump /?"),
            Command::Help {
                topic: Some(".dump".into())
            }
        );
    }

    #[test]
    fn sx_family_keeps_raw_text() {
        assert_eq!(
            one("sx"),
            Command::Sx {
                verb: SxVerbRaw::List,
                rest: String::new()
            }
        );
        assert_eq!(
            one(r#"sxe -c "r rax; g" av"#),
            Command::Sx {
                verb: SxVerbRaw::E,
                rest: r#"-c "r rax; g" av"#.into()
            }
        );
        assert_eq!(
            one("sxd  c0000374 "),
            Command::Sx {
                verb: SxVerbRaw::D,
                rest: "c0000374".into()
            }
        );
        assert_eq!(
            one("sxn ld"),
            Command::Sx {
                verb: SxVerbRaw::N,
                rest: "ld".into()
            }
        );
        assert_eq!(
            one("sxi *"),
            Command::Sx {
                verb: SxVerbRaw::I,
                rest: "*".into()
            }
        );
        assert_eq!(
            one(r#"sx- -c"kb" av"#),
            Command::Sx {
                verb: SxVerbRaw::Minus,
                rest: r#"-c"kb" av"#.into()
            }
        );
        assert_eq!(
            one("sxr"),
            Command::Sx {
                verb: SxVerbRaw::Reset,
                rest: String::new()
            }
        );
        assert!(matches!(
            err("sxr av"),
            CommandError::UnexpectedArgument { .. }
        ));
        assert!(matches!(
            err("sx av"),
            CommandError::UnexpectedArgument { .. }
        ));
    }

    #[test]
    fn assertion_handling() {
        assert_eq!(one("ah"), Command::Assert(AssertCommand::List));
        assert_eq!(one("ahc"), Command::Assert(AssertCommand::Clear));
        assert_eq!(one("ahb"), Command::Assert(AssertCommand::Break(None)));
        assert_eq!(
            one("ahi 401000"),
            Command::Assert(AssertCommand::Ignore(Some(ex("401000"))))
        );
        assert_eq!(
            one("ahd rip"),
            Command::Assert(AssertCommand::Delete(Some(ex("rip"))))
        );
    }

    #[test]
    fn stacks() {
        for (text, kind) in [
            ("k", StackKind::K),
            ("kb", StackKind::Kb),
            ("kn", StackKind::Kn),
            ("kp", StackKind::Kp),
            ("kv", StackKind::Kv),
        ] {
            assert_eq!(one(text), Command::Stack { kind, frames: None });
        }
        assert_eq!(
            one("kn 20"),
            Command::Stack {
                kind: StackKind::Kn,
                frames: Some(ex("20"))
            }
        );
        assert_eq!(
            one("kb0n5"),
            Command::Stack {
                kind: StackKind::Kb,
                frames: Some(ex("0n5"))
            }
        );
        assert_eq!(
            err("kx"),
            CommandError::Unknown {
                command: "kx".into()
            }
        );
    }

    #[test]
    fn registers() {
        assert_eq!(one("r"), Command::Registers(vec![]));
        assert_eq!(
            one("r rax"),
            Command::Registers(vec![RegArg::Show("rax".into())])
        );
        assert_eq!(
            one("r RAX, @ebx,efl"),
            Command::Registers(vec![
                RegArg::Show("rax".into()),
                RegArg::Show("ebx".into()),
                RegArg::Show("efl".into()),
            ])
        );
        assert_eq!(
            one("r rax=poi(rsp+8), zf = 0, $t0=1"),
            Command::Registers(vec![
                RegArg::Set("rax".into(), ex("poi(rsp+8)")),
                RegArg::Set("zf".into(), ex("0")),
                RegArg::Set("$t0".into(), ex("1")),
            ])
        );
        assert_eq!(
            err("r xmm0"),
            CommandError::UnknownRegister {
                command: "r".into(),
                register: "xmm0".into()
            }
        );
        assert!(matches!(err("r rax="), CommandError::BadExpression { .. }));
        assert!(matches!(
            err("r rax,"),
            CommandError::MissingArgument { .. }
        ));
    }

    #[test]
    fn threads() {
        assert_eq!(one("~"), Command::ThreadList(ThreadSel::All));
        assert_eq!(one("~*"), Command::ThreadList(ThreadSel::All));
        assert_eq!(one("~3"), Command::ThreadList(ThreadSel::Index(3)));
        assert_eq!(one("~3s"), Command::ThreadSwitch(ThreadSel::Index(3)));
        assert_eq!(one("~12 s"), Command::ThreadSwitch(ThreadSel::Index(12)));
        assert_eq!(one("~#s"), Command::ThreadSwitch(ThreadSel::Event));
        assert_eq!(one("~."), Command::ThreadList(ThreadSel::Current));
        assert_eq!(
            one("~~[15c8]s"),
            Command::ThreadSwitch(ThreadSel::Tid(ex("15c8")))
        );
        assert_eq!(
            one("~* k"),
            Command::ThreadApply {
                threads: ThreadSel::All,
                command: Box::new(Command::Stack {
                    kind: StackKind::K,
                    frames: None
                })
            }
        );
        assert_eq!(
            one("~2 r rip"),
            Command::ThreadApply {
                threads: ThreadSel::Index(2),
                command: Box::new(Command::Registers(vec![RegArg::Show("rip".into())]))
            }
        );
        assert!(matches!(
            err("~*s"),
            CommandError::UnexpectedArgument { .. }
        ));
        assert!(matches!(err("~1f"), CommandError::Unsupported { .. }));
        assert!(matches!(
            err("~99999999999s"),
            CommandError::BadNumber { .. }
        ));
        assert!(matches!(err("~x"), CommandError::UnexpectedArgument { .. }));
        assert!(matches!(
            err("~1 ~2 k"),
            CommandError::UnexpectedArgument { .. }
        ));
        assert!(matches!(
            err("~~[15c8"),
            CommandError::MissingArgument { .. }
        ));
    }

    #[test]
    fn modules_and_process() {
        assert_eq!(
            one("lm"),
            Command::Modules {
                verbose: false,
                pattern: None
            }
        );
        assert_eq!(
            one("lm m libc*"),
            Command::Modules {
                verbose: false,
                pattern: Some("libc*".into())
            }
        );
        assert_eq!(
            one("lmvm crasher"),
            Command::Modules {
                verbose: true,
                pattern: Some("crasher".into())
            }
        );
        assert_eq!(
            one("lm v"),
            Command::Modules {
                verbose: true,
                pattern: None
            }
        );
        assert!(matches!(err("lm m"), CommandError::MissingArgument { .. }));
        assert!(matches!(err("lm q"), CommandError::BadOption { .. }));
        assert_eq!(one("|"), Command::ProcessStatus);
        assert!(matches!(
            err("|1s"),
            CommandError::UnexpectedArgument { .. }
        ));
    }

    #[test]
    fn memory_display() {
        assert_eq!(
            one("dd"),
            Command::Display {
                kind: DisplayKind::Dd,
                addr: None,
                range: None
            }
        );
        assert_eq!(
            one("dq rsp L10"),
            Command::Display {
                kind: DisplayKind::Dq,
                addr: Some(ex("rsp")),
                range: Some(Range::Count {
                    count: ex("10"),
                    force: false
                })
            }
        );
        assert_eq!(
            one("db @rsp+8 l 0n20"),
            Command::Display {
                kind: DisplayKind::Db,
                addr: Some(ex("@rsp+8")),
                range: Some(Range::Count {
                    count: ex("0n20"),
                    force: false
                })
            }
        );
        assert_eq!(
            one("da 1000 L?100000"),
            Command::Display {
                kind: DisplayKind::Da,
                addr: Some(ex("1000")),
                range: Some(Range::Count {
                    count: ex("100000"),
                    force: true
                })
            }
        );
        assert_eq!(
            one("dp L4"),
            Command::Display {
                kind: DisplayKind::Dp,
                addr: None,
                range: Some(Range::Count {
                    count: ex("4"),
                    force: false
                })
            }
        );
        assert_eq!(
            one("dps rsp rsp+40"),
            Command::Display {
                kind: DisplayKind::Dps,
                addr: Some(ex("rsp")),
                range: Some(Range::End(ex("rsp+40")))
            }
        );
        // `Len` is a symbol, not a range.
        assert_eq!(
            one("dd Len"),
            Command::Display {
                kind: DisplayKind::Dd,
                addr: Some(ex("Len")),
                range: None
            }
        );
        assert_eq!(
            one("u"),
            Command::Unassemble {
                addr: None,
                range: None
            }
        );
        assert_eq!(
            one("u rip L8"),
            Command::Unassemble {
                addr: Some(ex("rip")),
                range: Some(Range::Count {
                    count: ex("8"),
                    force: false
                })
            }
        );
        assert!(matches!(
            err("dd rsp L"),
            CommandError::MissingArgument { .. }
        ));
        assert!(matches!(
            err("dd rsp L4 junk"),
            CommandError::UnexpectedArgument { .. }
        ));
    }

    #[test]
    fn breakpoints() {
        assert_eq!(
            one(r#"bp crasher!main "r rax; g""#),
            Command::Breakpoint {
                deferred: false,
                id: None,
                location: Some(ex("crasher!main")),
                commands: Some("r rax; g".into())
            }
        );
        assert_eq!(
            one("bp 401000"),
            Command::Breakpoint {
                deferred: false,
                id: None,
                location: Some(ex("401000")),
                commands: None
            }
        );
        assert_eq!(
            one("bp3 rip+4"),
            Command::Breakpoint {
                deferred: false,
                id: Some(3),
                location: Some(ex("rip+4")),
                commands: None
            }
        );
        assert_eq!(
            one("bu libfoo!init"),
            Command::Breakpoint {
                deferred: true,
                id: None,
                location: Some(ex("libfoo!init")),
                commands: None
            }
        );
        assert_eq!(
            one(r#"bp main ".echo \"hit\"""#),
            Command::Breakpoint {
                deferred: false,
                id: None,
                location: Some(ex("main")),
                commands: Some(r#".echo "hit""#.into())
            }
        );
        assert!(matches!(err("bu"), CommandError::MissingArgument { .. }));
        assert!(matches!(
            err(r#"bp main "g"#),
            CommandError::UnterminatedQuote { .. }
        ));
        assert_eq!(one("bl"), Command::BreakpointList);
        assert_eq!(
            one("bc *"),
            Command::BreakpointEdit {
                action: BpAction::Clear,
                ids: BpIds::All
            }
        );
        assert_eq!(
            one("bd 1,3"),
            Command::BreakpointEdit {
                action: BpAction::Disable,
                ids: BpIds::List(vec![(1, 1), (3, 3)])
            }
        );
        assert_eq!(
            one("be 2-4 7"),
            Command::BreakpointEdit {
                action: BpAction::Enable,
                ids: BpIds::List(vec![(2, 4), (7, 7)])
            }
        );
        assert_eq!(
            err("bc x"),
            CommandError::BadNumber {
                command: "bc".into(),
                token: "x".into(),
                expected: "a decimal breakpoint id, a range N-M or `*`"
            }
        );
        assert!(matches!(err("bc 4-2"), CommandError::BadNumber { .. }));
        assert!(matches!(err("bc"), CommandError::MissingArgument { .. }));
    }

    #[test]
    fn misc_commands() {
        assert_eq!(
            one("x crasher!crash_*"),
            Command::Examine {
                pattern: "crasher!crash_*".into()
            }
        );
        assert!(matches!(err("x"), CommandError::MissingArgument { .. }));
        assert_eq!(one("? 1+2"), Command::Evaluate(ex("1+2")));
        assert_eq!(one("?poi(rsp)"), Command::Evaluate(ex("poi(rsp)")));
        assert_eq!(one("?"), Command::Help { topic: None });
        assert_eq!(one(".help"), Command::Help { topic: None });
        assert!(matches!(err("? 1 +"), CommandError::BadExpression { .. }));
        assert!(matches!(err("?? x"), CommandError::Unsupported { .. }));
        assert_eq!(
            one(".echo hello world"),
            Command::Echo("hello world".into())
        );
        assert_eq!(one(r#".echo "a;b""#), Command::Echo("a;b".into()));
        assert_eq!(one(".echo"), Command::Echo(String::new()));
        assert_eq!(one("ln rip"), Command::ListNear(Some(ex("rip"))));
        assert_eq!(one("ln"), Command::ListNear(None));
        assert_eq!(
            one("* all; of this"),
            Command::Comment("all; of this".into())
        );
        assert_eq!(one("$$ note"), Command::Comment("note".into()));
    }

    #[test]
    fn unknown_and_empty() {
        assert_eq!(parse_command("  "), Err(CommandError::Empty));
        assert_eq!(
            err("frobnicate 1"),
            CommandError::Unknown {
                command: "frobnicate".into()
            }
        );
        assert_eq!(
            err("#1"),
            CommandError::Unknown {
                command: "#1".into()
            }
        );
        assert_eq!(
            err(". x"),
            CommandError::Unknown {
                command: ".".into()
            }
        );
        assert_eq!(
            err(".nosuch"),
            CommandError::Unknown {
                command: ".nosuch".into()
            }
        );
    }

    #[test]
    fn error_messages_name_token_and_expectation() {
        assert_eq!(
            err("kb 1 2").to_string(),
            "kb: unexpected `2`, expected nothing after the frame count"
        );
        assert_eq!(
            err(".dump /mz x").to_string(),
            format!(".dump: unknown option `/mz`, expected {DUMP_OPTIONS}")
        );
        assert_eq!(err("zz").to_string(), "unknown command `zz`");
        let e = err("dd (rsp");
        assert_eq!(e.to_string(), "dd: bad expression `(rsp`");
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(
            source.as_deref(),
            Some("missing `)` for the `(` at offset 0")
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "~",
            "~~",
            "~~[",
            "~~[]",
            "\"",
            "g \"",
            "bp \"",
            ".dump \"",
            "r =",
            "r ,",
            "dd L?",
            "lmvm",
            "sx-",
            "$",
            "$$",
            "é",
            "gé",
            ".é",
            "~é",
            "bp99999999999 1",
            "r @",
            "r $",
            "dd é",
            "?é",
            ".echo \"",
            "u L",
            "bc -",
            "bc 1-",
            "g = = =",
        ] {
            let _ = parse_command(text);
            let _ = parse_line(text);
        }
    }
}
