//! CDB MASM-style expressions: parsing into an [`Expr`] tree and evaluating
//! it against an [`ExprContext`] (registers, symbols, memory), plus the
//! x86-64 register name table ([`register_index`]) and the `?` output
//! ([`format_evaluate`]).
//!
//! Owns: the grammar (numbers in the current radix with `0x`/`0n`/`0t`/`0y`
//! prefixes and backtick separators, `@reg`, `$pseudo`, `module!symbol`,
//! `poi`/`by`/`wo`/`dwo`/`qwo`/`hi`/`low`/`not`, the MASM binary operators
//! and keywords) and the arithmetic (64-bit, wrapping; division by zero is an
//! error).
//!
//! Must not: read a target or a symbol table itself (that is the context's
//! job), print anything, or panic on any input. Nesting is capped at
//! [`MAX_DEPTH`] so that neither parsing, evaluation nor dropping a tree can
//! exhaust the stack.
//!
//! Radix: a bare `1f` or `deadbeef` means different things in radix 16 and
//! radix 10 (in radix 10 `deadbeef` is a symbol). The radix is a session
//! setting that can change after a command is parsed (a breakpoint command
//! string is parsed once and run later), so the parser keeps digit text
//! ([`Number`], [`Expr::Name`]) and [`Expr::eval`] resolves it with the radix
//! in force at evaluation time. Prefixed numbers (`0x10`) are checked at
//! parse time because their radix is fixed.
//!
//! Bare names follow CDB's documented order: a name that is a valid number in
//! the current radix is that number; a general-purpose register name (`rax`,
//! `eax`, `al`, `rip`, ...) is that register; anything else is looked up as a
//! symbol and, failing that, as one of the less common registers (segment
//! registers, segment bases, flag bits). `@name` always means a register and
//! `!name` always means a symbol. `cf`, `af` and `df` are hex numbers unless
//! written `@cf`, as in CDB.
//!
//! Windows and Linux differ in the register file only: the names are those
//! of the kernel's x86-64 `user_regs_struct` (`coroner_types::regs`), so
//! `fs_base`/`gs_base`/`orig_rax` are registers here, and `$ip`/`$sp`/`$csp`
//! are aliases of `rip`/`rsp`. Every other `$name` pseudo-register is passed
//! to the context with its `$`.

use std::fmt;
use thiserror::Error;

/// Deepest nesting of parentheses, unary operators and binary operands that
/// the parser accepts.
pub const MAX_DEPTH: usize = 100;

/// Radix used when the session has not changed it (CDB's `n` default).
pub const DEFAULT_RADIX: u32 = 16;

/// What an expression needs from the debugger to be evaluated.
pub trait ExprContext {
    /// A 64-bit register by its `user_regs_struct` name (`rax`, `eflags`,
    /// `fs_base`, ...) or a pseudo-register with its `$` (`$exr`, `$t0`).
    /// Sub-registers are never asked for: [`Expr::eval`] extracts them.
    fn register(&self, name: &str) -> Option<u64>;
    /// A symbol's address: `module!name` or a bare `name`.
    fn symbol(&self, name: &str) -> Option<u64>;
    /// `size` (1, 2, 4 or 8) bytes at `addr`, little-endian, zero-extended.
    fn read_memory(&self, addr: u64, size: usize) -> Option<u64>;
}

/// Errors of parsing or evaluating an expression; each names the text or
/// value it concerns.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ExprError {
    #[error("empty expression")]
    Empty,
    #[error("expected {expected} at offset {offset}, found `{found}`")]
    Unexpected {
        found: String,
        offset: usize,
        expected: &'static str,
    },
    #[error("expected {expected} at the end of `{text}`")]
    UnexpectedEnd {
        text: String,
        expected: &'static str,
    },
    #[error("unexpected character `{ch}` at offset {offset}")]
    BadChar { ch: char, offset: usize },
    #[error("missing `)` for the `(` at offset {offset}")]
    UnclosedParen { offset: usize },
    #[error("`{text}` is not a number in radix {radix}")]
    BadNumber { text: String, radix: u32 },
    #[error("`{text}` does not fit in 64 bits")]
    Overflow { text: String },
    #[error("expression nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("radix {radix} is not supported (2, 8, 10 or 16)")]
    BadRadix { radix: u32 },
    #[error("`{name}` is not a number in radix {radix}, a register or a known symbol")]
    UnknownName { name: String, radix: u32 },
    #[error("symbol `{name}` not found")]
    SymbolNotFound { name: String },
    #[error("register `{name}` is not available")]
    RegisterUnavailable { name: String },
    #[error("memory access error: cannot read {size} bytes at {addr:016x}")]
    MemoryRead { addr: u64, size: usize },
    #[error("division by zero in `{expr}`")]
    DivideByZero { expr: String },
}

/// A number as typed. `radix` is `Some` when a prefix fixed it; otherwise the
/// digits are read in the radix given to [`Expr::eval`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// The token as typed, prefix and backticks included.
    pub text: String,
    /// Digits only (no prefix, no backticks).
    pub digits: String,
    /// Radix fixed by a `0x`/`0n`/`0t`/`0y` prefix.
    pub radix: Option<u32>,
}

impl Number {
    /// Parses a token that starts with a decimal digit.
    fn from_token(text: &str) -> Result<Number, ExprError> {
        let bytes = text.as_bytes();
        let prefix = match (bytes.first(), bytes.get(1)) {
            (Some(b'0'), Some(p)) => match p.to_ascii_lowercase() {
                b'x' => Some(16),
                b'n' => Some(10),
                b't' => Some(8),
                b'y' => Some(2),
                _ => None,
            },
            _ => None,
        };
        let body = if prefix.is_some() {
            text.get(2..).unwrap_or("")
        } else {
            text
        };
        let digits: String = body.chars().filter(|c| *c != '`').collect();
        let n = Number {
            text: text.to_string(),
            digits,
            radix: prefix,
        };
        if let Some(radix) = prefix {
            n.value(radix)?;
        } else if n.digits.is_empty() || !n.digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ExprError::BadNumber {
                text: text.to_string(),
                radix: DEFAULT_RADIX,
            });
        }
        Ok(n)
    }

    /// The value, reading unprefixed digits in `radix`.
    pub fn value(&self, radix: u32) -> Result<u64, ExprError> {
        let radix = self.radix.unwrap_or(radix);
        match digits_value(&self.digits, radix) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(ExprError::Overflow {
                text: self.text.clone(),
            }),
            None => Err(ExprError::BadNumber {
                text: self.text.clone(),
                radix,
            }),
        }
    }
}

/// `None` if `digits` is empty or has a digit outside `radix`;
/// `Some(Err(()))` on overflow.
fn digits_value(digits: &str, radix: u32) -> Option<Result<u64, ()>> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(radix)?;
        match v
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    Some(if overflow { Err(()) } else { Ok(v) })
}

/// Memory widths of the dereference operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemWidth {
    /// `by`: 1 byte.
    Byte,
    /// `wo`: 2 bytes.
    Word,
    /// `dwo`: 4 bytes.
    Dword,
    /// `qwo`: 8 bytes.
    Qword,
    /// `poi`: a pointer (8 bytes on x86-64).
    Pointer,
}

impl MemWidth {
    pub fn size(self) -> usize {
        match self {
            MemWidth::Byte => 1,
            MemWidth::Word => 2,
            MemWidth::Dword => 4,
            MemWidth::Qword | MemWidth::Pointer => 8,
        }
    }

    fn keyword(self) -> &'static str {
        match self {
            MemWidth::Byte => "by",
            MemWidth::Word => "wo",
            MemWidth::Dword => "dwo",
            MemWidth::Qword => "qwo",
            MemWidth::Pointer => "poi",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x` (two's complement).
    Neg,
    /// `+x`.
    Plus,
    /// `~x` (bitwise complement).
    Complement,
    /// `not x`: 1 if x is zero, else 0.
    Not,
    /// `hi x`: bits 16..32.
    Hi,
    /// `low x`: bits 0..16.
    Low,
    /// `poi(x)`, `by(x)`, ...: read memory at x.
    Read(MemWidth),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Shl,
    /// `>>`: logical shift.
    Shr,
    /// `>>>`: arithmetic shift.
    Sar,
    /// `=` or `==`.
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Xor,
    Or,
}

impl BinaryOp {
    /// Precedence level, 0 binding loosest (CDB's MASM order: `or`, `xor`,
    /// `and`, comparisons, shifts, `+ -`, `* / mod`).
    fn level(self) -> usize {
        match self {
            BinaryOp::Or => 0,
            BinaryOp::Xor => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Gt
            | BinaryOp::Le
            | BinaryOp::Ge => 3,
            BinaryOp::Shl | BinaryOp::Shr | BinaryOp::Sar => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 6,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::Sar => ">>>",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Gt => ">",
            BinaryOp::Le => "<=",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&",
            BinaryOp::Xor => "^",
            BinaryOp::Or => "|",
        }
    }

    fn from_token(tok: &Tok) -> Option<BinaryOp> {
        match tok {
            Tok::Op(s) => Some(match *s {
                "*" => BinaryOp::Mul,
                "/" => BinaryOp::Div,
                "%" => BinaryOp::Mod,
                "+" => BinaryOp::Add,
                "-" => BinaryOp::Sub,
                "<<" => BinaryOp::Shl,
                ">>" => BinaryOp::Shr,
                ">>>" => BinaryOp::Sar,
                "=" | "==" => BinaryOp::Eq,
                "!=" => BinaryOp::Ne,
                "<" => BinaryOp::Lt,
                ">" => BinaryOp::Gt,
                "<=" => BinaryOp::Le,
                ">=" => BinaryOp::Ge,
                "&" => BinaryOp::And,
                "^" => BinaryOp::Xor,
                "|" => BinaryOp::Or,
                _ => return None,
            }),
            Tok::Word(w) => {
                let w = w.to_ascii_lowercase();
                Some(match w.as_str() {
                    "and" => BinaryOp::And,
                    "or" => BinaryOp::Or,
                    "xor" => BinaryOp::Xor,
                    "mod" => BinaryOp::Mod,
                    _ => return None,
                })
            }
            _ => None,
        }
    }
}

/// Number of binary precedence levels (see [`BinaryOp::level`]).
const LEVELS: usize = 7;

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A token starting with a digit.
    Number(Number),
    /// `@name` (stored without `@`) or `$pseudo` (stored with `$`).
    Register(String),
    /// `module!name`, or `!name` (stored without the leading `!`).
    Symbol(String),
    /// A bare word: number in the current radix, register or symbol.
    Name(String),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => f.write_str(&n.text),
            Expr::Register(r) if r.starts_with('$') => f.write_str(r),
            Expr::Register(r) => write!(f, "@{r}"),
            Expr::Symbol(s) if s.contains('!') => f.write_str(s),
            Expr::Symbol(s) => write!(f, "!{s}"),
            Expr::Name(n) => f.write_str(n),
            Expr::Unary(op, e) => match op {
                UnaryOp::Neg => write!(f, "-{e}"),
                UnaryOp::Plus => write!(f, "+{e}"),
                UnaryOp::Complement => write!(f, "~{e}"),
                UnaryOp::Not => write!(f, "not({e})"),
                UnaryOp::Hi => write!(f, "hi({e})"),
                UnaryOp::Low => write!(f, "low({e})"),
                UnaryOp::Read(w) => write!(f, "{}({e})", w.keyword()),
            },
            Expr::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
        }
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Num(Number),
    Word(String),
    Reg(String),
    Sym(String),
    LParen,
    RParen,
    Op(&'static str),
}

const OPERATORS: [&str; 19] = [
    ">>>", "<<", ">>", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "&", "|", "^", "~", "=",
    "<", ">",
];

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The next token at or after `pos`: `(token, start, end)`, `None` at the end.
fn lex(src: &str, pos: usize) -> Result<Option<(Tok, usize, usize)>, ExprError> {
    let b = src.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut start = pos;
    while at(start).is_some_and(|c| c.is_ascii_whitespace()) {
        start += 1;
    }
    let Some(c) = at(start) else {
        return Ok(None);
    };
    let slice = |s: usize, e: usize| src.get(s..e).unwrap_or("").to_string();
    let bad = |offset: usize| ExprError::BadChar {
        ch: src
            .get(offset..)
            .and_then(|s| s.chars().next())
            .unwrap_or('?'),
        offset,
    };
    let mut end = start + 1;
    let tok = match c {
        b'(' => Tok::LParen,
        b')' => Tok::RParen,
        b'0'..=b'9' => {
            while at(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'`') {
                end += 1;
            }
            Tok::Num(Number::from_token(&slice(start, end))?)
        }
        b'@' | b'$' => {
            // `@rax`, `@$ip`, `$ip`.
            let name_start = if c == b'@' && at(end) == Some(b'$') {
                end + 1
            } else {
                end
            };
            end = name_start;
            while at(end).is_some_and(is_word_char) {
                end += 1;
            }
            if end == name_start {
                return Err(bad(start));
            }
            Tok::Reg(slice(start + usize::from(c == b'@'), end))
        }
        b'!' if at(end).is_some_and(is_word_start) => {
            end = word_end(b, end);
            Tok::Sym(slice(start + 1, end))
        }
        c if is_word_start(c) => {
            end = word_end(b, end);
            Tok::Word(slice(start, end))
        }
        _ => {
            let rest = src.get(start..).unwrap_or("");
            match OPERATORS.iter().find(|op| rest.starts_with(**op)) {
                Some(op) => {
                    end = start + op.len();
                    Tok::Op(op)
                }
                None => return Err(bad(start)),
            }
        }
    };
    Ok(Some((tok, start, end)))
}

/// End of a word: letters, digits, `_`, `.`, backticks, `module!name`,
/// C++ `::` and gdb's `@plt` suffix of a PLT stub (`crasher!memcpy@plt`;
/// `@` is no MASM operator, so the suffix cannot mean anything else).
fn word_end(b: &[u8], mut end: usize) -> usize {
    loop {
        match b.get(end).copied() {
            Some(c) if is_word_char(c) || c == b'.' || c == b'`' => end += 1,
            Some(b'!') if b.get(end + 1).is_some_and(|c| is_word_char(*c)) => end += 1,
            Some(b':') if b.get(end + 1) == Some(&b':') => end += 2,
            Some(b'@')
                if b.get(end + 1..end + 4) == Some(b"plt")
                    && !b.get(end + 4).is_some_and(|c| is_word_char(*c)) =>
            {
                end += 4
            }
            _ => return end,
        }
    }
}

// ---------------------------------------------------------------------------
// Parser

const OPERAND: &str = "a number, register, symbol, unary operator or `(`";

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    nest: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<Option<(Tok, usize, usize)>, ExprError> {
        lex(self.src, self.pos)
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.nest += 1;
        if self.nest > MAX_DEPTH {
            return Err(ExprError::TooDeep { limit: MAX_DEPTH });
        }
        Ok(())
    }

    /// One precedence level; returns the tree and its depth.
    fn binary(&mut self, level: usize) -> Result<(Expr, usize), ExprError> {
        if level >= LEVELS {
            return self.unary();
        }
        let (mut lhs, mut depth) = self.binary(level + 1)?;
        // A token that cannot be lexed or is not an operator of this level
        // ends the operand list (commands rely on this to find the end of an
        // address in `dd rsp L10`).
        while let Ok(Some((tok, _, end))) = self.peek() {
            let Some(op) = BinaryOp::from_token(&tok).filter(|op| op.level() == level) else {
                break;
            };
            self.pos = end;
            let (rhs, rdepth) = self.binary(level + 1)?;
            depth = depth.max(rdepth) + 1;
            if depth > MAX_DEPTH {
                return Err(ExprError::TooDeep { limit: MAX_DEPTH });
            }
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok((lhs, depth))
    }

    fn unary(&mut self) -> Result<(Expr, usize), ExprError> {
        let Some((tok, start, end)) = self.peek()? else {
            return Err(ExprError::UnexpectedEnd {
                text: self.src.to_string(),
                expected: OPERAND,
            });
        };
        let op = match &tok {
            Tok::Op("-") => Some(UnaryOp::Neg),
            Tok::Op("+") => Some(UnaryOp::Plus),
            Tok::Op("~") => Some(UnaryOp::Complement),
            Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
                "not" => Some(UnaryOp::Not),
                "hi" => Some(UnaryOp::Hi),
                "low" => Some(UnaryOp::Low),
                "by" => Some(UnaryOp::Read(MemWidth::Byte)),
                "wo" => Some(UnaryOp::Read(MemWidth::Word)),
                "dwo" => Some(UnaryOp::Read(MemWidth::Dword)),
                "qwo" => Some(UnaryOp::Read(MemWidth::Qword)),
                "poi" => Some(UnaryOp::Read(MemWidth::Pointer)),
                _ => None,
            },
            _ => None,
        };
        if let Some(op) = op {
            self.pos = end;
            self.enter()?;
            let (e, depth) = self.unary()?;
            self.nest -= 1;
            if depth + 1 > MAX_DEPTH {
                return Err(ExprError::TooDeep { limit: MAX_DEPTH });
            }
            return Ok((Expr::Unary(op, Box::new(e)), depth + 1));
        }
        self.primary(tok, start, end)
    }

    fn primary(&mut self, tok: Tok, start: usize, end: usize) -> Result<(Expr, usize), ExprError> {
        let found = || self.src.get(start..end).unwrap_or("").to_string();
        let e = match tok {
            Tok::Num(n) => Expr::Number(n),
            Tok::Reg(r) => Expr::Register(r),
            Tok::Sym(s) => Expr::Symbol(s),
            Tok::Word(w) => {
                if BinaryOp::from_token(&Tok::Word(w.clone())).is_some() {
                    return Err(ExprError::Unexpected {
                        found: w,
                        offset: start,
                        expected: OPERAND,
                    });
                }
                if w.contains('!') {
                    Expr::Symbol(w)
                } else {
                    Expr::Name(w)
                }
            }
            Tok::LParen => {
                self.pos = end;
                self.enter()?;
                let (e, depth) = self.binary(0)?;
                match self.peek()? {
                    Some((Tok::RParen, _, close)) => self.pos = close,
                    None => return Err(ExprError::UnclosedParen { offset: start }),
                    Some((_, s, e)) => {
                        return Err(ExprError::Unexpected {
                            found: self.src.get(s..e).unwrap_or("").to_string(),
                            offset: s,
                            expected: "`)` or an operator",
                        })
                    }
                }
                self.nest -= 1;
                return Ok((e, depth));
            }
            Tok::RParen | Tok::Op(_) => {
                return Err(ExprError::Unexpected {
                    found: found(),
                    offset: start,
                    expected: OPERAND,
                })
            }
        };
        self.pos = end;
        Ok((e, 1))
    }
}

/// Parses a whole expression; anything left over is an error.
pub fn parse_expr(text: &str) -> Result<Expr, ExprError> {
    let (e, used) = parse_expr_prefix(text)?;
    match lex(text, used)? {
        None => Ok(e),
        Some((_, s, end)) => Err(ExprError::Unexpected {
            found: text.get(s..end).unwrap_or("").to_string(),
            offset: s,
            expected: "an operator or the end of the expression",
        }),
    }
}

/// Parses the longest expression at the start of `text` and returns it with
/// the number of bytes used (up to the end of its last token). Commands use
/// this the way CDB does: `dd rsp+8 L4` stops before `L4`, `g 401000 401010`
/// yields two addresses.
pub fn parse_expr_prefix(text: &str) -> Result<(Expr, usize), ExprError> {
    if text.trim().is_empty() {
        return Err(ExprError::Empty);
    }
    let mut p = Parser {
        src: text,
        pos: 0,
        nest: 0,
    };
    let (e, _) = p.binary(0)?;
    Ok((e, p.pos))
}

// ---------------------------------------------------------------------------
// Evaluation

fn check_radix(radix: u32) -> Result<(), ExprError> {
    match radix {
        2 | 8 | 10 | 16 => Ok(()),
        _ => Err(ExprError::BadRadix { radix }),
    }
}

fn read_register(ctx: &dyn ExprContext, name: &str) -> Result<u64, ExprError> {
    let unavailable = || ExprError::RegisterUnavailable {
        name: name.to_string(),
    };
    if let Some(r) = register_index(name) {
        return ctx
            .register(r.full)
            .map(|v| r.extract(v))
            .ok_or_else(unavailable);
    }
    let alias = match name.to_ascii_lowercase().as_str() {
        "$ip" => Some("rip"),
        "$sp" | "$csp" => Some("rsp"),
        _ => None,
    };
    ctx.register(alias.unwrap_or(name)).ok_or_else(unavailable)
}

impl Expr {
    /// Evaluates with unprefixed numbers read in `radix` (2, 8, 10 or 16).
    pub fn eval(&self, ctx: &dyn ExprContext, radix: u32) -> Result<u64, ExprError> {
        check_radix(radix)?;
        self.eval_in(ctx, radix)
    }

    fn eval_in(&self, ctx: &dyn ExprContext, radix: u32) -> Result<u64, ExprError> {
        match self {
            Expr::Number(n) => n.value(radix),
            Expr::Register(name) => read_register(ctx, name),
            Expr::Symbol(name) => ctx
                .symbol(name)
                .ok_or_else(|| ExprError::SymbolNotFound { name: name.clone() }),
            Expr::Name(name) => {
                let digits: String = name.chars().filter(|c| *c != '`').collect();
                match digits_value(&digits, radix) {
                    Some(Ok(v)) => return Ok(v),
                    Some(Err(())) => return Err(ExprError::Overflow { text: name.clone() }),
                    None => {}
                }
                let reg = register_index(name);
                if let Some(r) = reg.filter(|r| r.kind == RegKind::General) {
                    return read_register(ctx, r.name);
                }
                if let Some(v) = ctx.symbol(name) {
                    return Ok(v);
                }
                match reg {
                    Some(r) => read_register(ctx, r.name),
                    None => Err(ExprError::UnknownName {
                        name: name.clone(),
                        radix,
                    }),
                }
            }
            Expr::Unary(op, e) => {
                let v = e.eval_in(ctx, radix)?;
                Ok(match op {
                    UnaryOp::Neg => v.wrapping_neg(),
                    UnaryOp::Plus => v,
                    UnaryOp::Complement => !v,
                    UnaryOp::Not => u64::from(v == 0),
                    UnaryOp::Hi => (v >> 16) & 0xffff,
                    UnaryOp::Low => v & 0xffff,
                    UnaryOp::Read(w) => {
                        let size = w.size();
                        let m = ctx
                            .read_memory(v, size)
                            .ok_or(ExprError::MemoryRead { addr: v, size })?;
                        if size >= 8 {
                            m
                        } else {
                            m & ((1u64 << (size * 8)) - 1)
                        }
                    }
                })
            }
            Expr::Binary(op, l, r) => {
                let a = l.eval_in(ctx, radix)?;
                let b = r.eval_in(ctx, radix)?;
                let zero = || ExprError::DivideByZero {
                    expr: self.to_string(),
                };
                Ok(match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Sub => a.wrapping_sub(b),
                    BinaryOp::Mul => a.wrapping_mul(b),
                    BinaryOp::Div => a.checked_div(b).ok_or_else(zero)?,
                    BinaryOp::Mod => a.checked_rem(b).ok_or_else(zero)?,
                    BinaryOp::Shl => a.checked_shl(shift_amount(b)).unwrap_or(0),
                    BinaryOp::Shr => a.checked_shr(shift_amount(b)).unwrap_or(0),
                    BinaryOp::Sar => ((a as i64) >> shift_amount(b).min(63)) as u64,
                    BinaryOp::Eq => u64::from(a == b),
                    BinaryOp::Ne => u64::from(a != b),
                    BinaryOp::Lt => u64::from(a < b),
                    BinaryOp::Gt => u64::from(a > b),
                    BinaryOp::Le => u64::from(a <= b),
                    BinaryOp::Ge => u64::from(a >= b),
                    BinaryOp::And => a & b,
                    BinaryOp::Xor => a ^ b,
                    BinaryOp::Or => a | b,
                })
            }
        }
    }
}

/// Shift counts of 64 or more shift everything out (`>>>` fills with the
/// sign); the count saturates into u32 so `checked_sh*` sees it as too big.
fn shift_amount(b: u64) -> u32 {
    u32::try_from(b).unwrap_or(u32::MAX)
}

/// CDB's `?` output: `Evaluate expression: 4660 = 00000000`00001234`
/// (decimal as signed 64-bit, then hex with a backtick).
pub fn format_evaluate(value: u64) -> String {
    format!(
        "Evaluate expression: {} = {}",
        value as i64,
        format_backtick(value)
    )
}

/// A 64-bit value as CDB prints addresses: `00007ff7`91d81014`.
pub fn format_backtick(value: u64) -> String {
    format!("{:08x}`{:08x}", value >> 32, value & 0xffff_ffff)
}

// ---------------------------------------------------------------------------
// Registers

/// `user_regs_struct` word order (coroner_types::regs::UserRegs::to_words).
const USER_REGS_ORDER: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// Which family a register name belongs to; decides how a bare name is
/// resolved (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegKind {
    /// General-purpose registers, `rip` and their sub-registers.
    General,
    /// `eflags` / `efl` / `rflags`.
    Flags,
    /// A single flag or field of eflags (`zf`, `iopl`, ...).
    FlagBit,
    /// Segment selectors `cs ss ds es fs gs`.
    Segment,
    /// `fs_base`, `gs_base`, `orig_rax`.
    Other,
}

/// A register name resolved to bits of one `user_regs_struct` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegRef {
    /// The name as CDB prints it (lowercase), e.g. `eax`, `efl`.
    pub name: &'static str,
    /// The 64-bit register it lives in, by `user_regs_struct` field name.
    pub full: &'static str,
    /// Index of `full` in `UserRegs::to_words()`.
    pub word: usize,
    /// Lowest bit.
    pub shift: u32,
    /// Width in bits.
    pub bits: u32,
    pub kind: RegKind,
}

impl RegRef {
    /// Mask of the bits, before shifting.
    pub fn mask(&self) -> u64 {
        if self.bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// This register's value out of its 64-bit register.
    pub fn extract(&self, full: u64) -> u64 {
        (full >> self.shift) & self.mask()
    }

    /// The 64-bit register with this register's bits replaced by `value`
    /// (truncated); other bits are kept. `r eax=1` therefore keeps the top
    /// half of rax: the debugger edits bits, it does not execute a `mov`.
    pub fn insert(&self, full: u64, value: u64) -> u64 {
        let m = self.mask() << self.shift;
        (full & !m) | ((value & self.mask()) << self.shift)
    }
}

/// (name, full, shift, bits, kind)
type RegRow = (&'static str, &'static str, u32, u32, RegKind);

const REGS: &[RegRow] = {
    use RegKind::*;
    &[
        ("rax", "rax", 0, 64, General),
        ("eax", "rax", 0, 32, General),
        ("ax", "rax", 0, 16, General),
        ("al", "rax", 0, 8, General),
        ("ah", "rax", 8, 8, General),
        ("rbx", "rbx", 0, 64, General),
        ("ebx", "rbx", 0, 32, General),
        ("bx", "rbx", 0, 16, General),
        ("bl", "rbx", 0, 8, General),
        ("bh", "rbx", 8, 8, General),
        ("rcx", "rcx", 0, 64, General),
        ("ecx", "rcx", 0, 32, General),
        ("cx", "rcx", 0, 16, General),
        ("cl", "rcx", 0, 8, General),
        ("ch", "rcx", 8, 8, General),
        ("rdx", "rdx", 0, 64, General),
        ("edx", "rdx", 0, 32, General),
        ("dx", "rdx", 0, 16, General),
        ("dl", "rdx", 0, 8, General),
        ("dh", "rdx", 8, 8, General),
        ("rsi", "rsi", 0, 64, General),
        ("esi", "rsi", 0, 32, General),
        ("si", "rsi", 0, 16, General),
        ("sil", "rsi", 0, 8, General),
        ("rdi", "rdi", 0, 64, General),
        ("edi", "rdi", 0, 32, General),
        ("di", "rdi", 0, 16, General),
        ("dil", "rdi", 0, 8, General),
        ("rbp", "rbp", 0, 64, General),
        ("ebp", "rbp", 0, 32, General),
        ("bp", "rbp", 0, 16, General),
        ("bpl", "rbp", 0, 8, General),
        ("rsp", "rsp", 0, 64, General),
        ("esp", "rsp", 0, 32, General),
        ("sp", "rsp", 0, 16, General),
        ("spl", "rsp", 0, 8, General),
        ("r8", "r8", 0, 64, General),
        ("r8d", "r8", 0, 32, General),
        ("r8w", "r8", 0, 16, General),
        ("r8b", "r8", 0, 8, General),
        ("r9", "r9", 0, 64, General),
        ("r9d", "r9", 0, 32, General),
        ("r9w", "r9", 0, 16, General),
        ("r9b", "r9", 0, 8, General),
        ("r10", "r10", 0, 64, General),
        ("r10d", "r10", 0, 32, General),
        ("r10w", "r10", 0, 16, General),
        ("r10b", "r10", 0, 8, General),
        ("r11", "r11", 0, 64, General),
        ("r11d", "r11", 0, 32, General),
        ("r11w", "r11", 0, 16, General),
        ("r11b", "r11", 0, 8, General),
        ("r12", "r12", 0, 64, General),
        ("r12d", "r12", 0, 32, General),
        ("r12w", "r12", 0, 16, General),
        ("r12b", "r12", 0, 8, General),
        ("r13", "r13", 0, 64, General),
        ("r13d", "r13", 0, 32, General),
        ("r13w", "r13", 0, 16, General),
        ("r13b", "r13", 0, 8, General),
        ("r14", "r14", 0, 64, General),
        ("r14d", "r14", 0, 32, General),
        ("r14w", "r14", 0, 16, General),
        ("r14b", "r14", 0, 8, General),
        ("r15", "r15", 0, 64, General),
        ("r15d", "r15", 0, 32, General),
        ("r15w", "r15", 0, 16, General),
        ("r15b", "r15", 0, 8, General),
        ("rip", "rip", 0, 64, General),
        ("eip", "rip", 0, 32, General),
        ("ip", "rip", 0, 16, General),
        ("eflags", "eflags", 0, 64, Flags),
        ("efl", "eflags", 0, 64, Flags),
        ("rflags", "eflags", 0, 64, Flags),
        ("cf", "eflags", 0, 1, FlagBit),
        ("pf", "eflags", 2, 1, FlagBit),
        ("af", "eflags", 4, 1, FlagBit),
        ("zf", "eflags", 6, 1, FlagBit),
        ("sf", "eflags", 7, 1, FlagBit),
        ("tf", "eflags", 8, 1, FlagBit),
        ("if", "eflags", 9, 1, FlagBit),
        ("df", "eflags", 10, 1, FlagBit),
        ("of", "eflags", 11, 1, FlagBit),
        ("iopl", "eflags", 12, 2, FlagBit),
        ("cs", "cs", 0, 16, Segment),
        ("ss", "ss", 0, 16, Segment),
        ("ds", "ds", 0, 16, Segment),
        ("es", "es", 0, 16, Segment),
        ("fs", "fs", 0, 16, Segment),
        ("gs", "gs", 0, 16, Segment),
        ("fs_base", "fs_base", 0, 64, Other),
        ("gs_base", "gs_base", 0, 64, Other),
        ("orig_rax", "orig_rax", 0, 64, Other),
    ]
};

/// Looks up a register name (ASCII case-insensitive, without `@`).
pub fn register_index(name: &str) -> Option<RegRef> {
    let &(name, full, shift, bits, kind) = REGS.iter().find(|r| r.0.eq_ignore_ascii_case(name))?;
    let word = USER_REGS_ORDER.iter().position(|w| *w == full)?;
    Some(RegRef {
        name,
        full,
        word,
        shift,
        bits,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coroner_types::regs::UserRegs;
    use std::collections::HashMap;

    struct Ctx {
        regs: HashMap<&'static str, u64>,
        syms: HashMap<&'static str, u64>,
    }

    impl ExprContext for Ctx {
        fn register(&self, name: &str) -> Option<u64> {
            self.regs.get(name).copied()
        }
        fn symbol(&self, name: &str) -> Option<u64> {
            self.syms.get(name).copied()
        }
        fn read_memory(&self, addr: u64, size: usize) -> Option<u64> {
            // Memory at 0x1000.. holds bytes 0x11 0x22 0x33 ...; nothing else.
            if !(0x1000..0x1100).contains(&addr) {
                return None;
            }
            let mut v = 0u64;
            for i in 0..size as u64 {
                let byte = ((addr - 0x1000 + i + 1) * 0x11) & 0xff;
                v |= byte << (8 * i);
            }
            Some(v)
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            regs: HashMap::from([
                ("rax", 0x1122_3344_5566_7788),
                ("rip", 0x401000),
                ("rsp", 0x1000),
                ("eflags", 0x246),
                ("cs", 0x33),
                ("$exr", 0xdead),
            ]),
            syms: HashMap::from([
                ("crasher!main", 0x401100),
                ("main", 0x401100),
                ("crasher!memcpy@plt", 0x402000),
                ("memcpy@plt", 0x402000),
                ("add", 0x5000),
                ("es", 0x6000),
            ]),
        }
    }

    fn ev(text: &str) -> Result<u64, ExprError> {
        parse_expr(text)?.eval(&ctx(), 16)
    }

    fn ev_radix(text: &str, radix: u32) -> Result<u64, ExprError> {
        parse_expr(text)?.eval(&ctx(), radix)
    }

    #[test]
    fn numbers_and_prefixes() {
        assert_eq!(ev("10"), Ok(0x10));
        assert_eq!(ev("0x10"), Ok(16));
        assert_eq!(ev("0n10"), Ok(10));
        assert_eq!(ev("0t17"), Ok(15));
        assert_eq!(ev("0y101"), Ok(5));
        assert_eq!(ev("0X1F"), Ok(31));
        assert_eq!(ev("ffffffff`ffffffff"), Ok(u64::MAX));
        assert_eq!(ev("00007ff7`91d81014"), Ok(0x7ff7_91d8_1014));
        assert_eq!(ev("deadbeef"), Ok(0xdead_beef));
    }

    #[test]
    fn radix_is_applied_at_eval() {
        let e = parse_expr("10").unwrap();
        assert_eq!(e.eval(&ctx(), 16), Ok(16));
        assert_eq!(e.eval(&ctx(), 10), Ok(10));
        assert_eq!(e.eval(&ctx(), 8), Ok(8));
        assert_eq!(ev_radix("0x10", 10), Ok(16));
        assert_eq!(ev_radix("0n10", 16), Ok(10));
        assert_eq!(
            ev_radix("1f", 10),
            Err(ExprError::BadNumber {
                text: "1f".into(),
                radix: 10
            })
        );
        // A bare hex word is a number in radix 16 and a symbol in radix 10.
        assert_eq!(ev_radix("add", 16), Ok(0xadd));
        assert_eq!(ev_radix("add", 10), Ok(0x5000));
        assert_eq!(
            parse_expr("1").unwrap().eval(&ctx(), 7),
            Err(ExprError::BadRadix { radix: 7 })
        );
    }

    #[test]
    fn bad_and_overflowing_numbers() {
        assert!(matches!(parse_expr("0x"), Err(ExprError::BadNumber { .. })));
        assert!(matches!(
            parse_expr("0xfg"),
            Err(ExprError::BadNumber { .. })
        ));
        assert!(matches!(
            parse_expr("0y102"),
            Err(ExprError::BadNumber { .. })
        ));
        assert_eq!(
            parse_expr("0x1`0000000000000000"),
            Err(ExprError::Overflow {
                text: "0x1`0000000000000000".into()
            })
        );
        assert!(matches!(
            ev("10000000000000000"),
            Err(ExprError::Overflow { .. })
        ));
    }

    #[test]
    fn registers_and_subregisters() {
        assert_eq!(ev("@rax"), Ok(0x1122_3344_5566_7788));
        assert_eq!(ev("rax"), Ok(0x1122_3344_5566_7788));
        assert_eq!(ev("@eax"), Ok(0x5566_7788));
        assert_eq!(ev("ax"), Ok(0x7788));
        assert_eq!(ev("al"), Ok(0x88));
        assert_eq!(ev("ah"), Ok(0x77));
        assert_eq!(ev("RIP"), Ok(0x401000));
        assert_eq!(ev("$ip"), Ok(0x401000));
        assert_eq!(ev("@$sp"), Ok(0x1000));
        assert_eq!(ev("$exr"), Ok(0xdead));
        assert_eq!(ev("@zf"), Ok(1));
        assert_eq!(ev("@cf"), Ok(0));
        assert_eq!(ev("efl"), Ok(0x246));
        // `cf` is a hex number unless written `@cf`.
        assert_eq!(ev("cf"), Ok(0xcf));
        // Less common registers lose to a symbol of the same name.
        assert_eq!(ev("es"), Ok(0x6000));
        assert_eq!(ev("@cs"), Ok(0x33));
        assert_eq!(ev("cs"), Ok(0x33));
        assert_eq!(
            ev("@rbx"),
            Err(ExprError::RegisterUnavailable { name: "rbx".into() })
        );
        assert_eq!(
            ev("$t0"),
            Err(ExprError::RegisterUnavailable { name: "$t0".into() })
        );
    }

    #[test]
    fn symbols() {
        assert_eq!(ev("crasher!main"), Ok(0x401100));
        assert_eq!(ev("crasher!main+0x14"), Ok(0x401114));
        assert_eq!(ev("main"), Ok(0x401100));
        assert_eq!(ev("!add"), Ok(0x5000));
        assert_eq!(
            ev("libc.so.6!nope"),
            Err(ExprError::SymbolNotFound {
                name: "libc.so.6!nope".into()
            })
        );
        assert_eq!(
            ev("nosuch"),
            Err(ExprError::UnknownName {
                name: "nosuch".into(),
                radix: 16
            })
        );
        assert_eq!(
            parse_expr("std::vector"),
            Ok(Expr::Name("std::vector".into()))
        );
        // PLT stubs, as gdb names them; `@` is part of nothing else.
        assert_eq!(ev("crasher!memcpy@plt+4"), Ok(0x402004));
        assert_eq!(ev("!memcpy@plt"), Ok(0x402000));
        assert!(parse_expr("memcpy@pltx").is_err());
        assert!(parse_expr("memcpy@rax").is_err());
    }

    #[test]
    fn precedence() {
        assert_eq!(ev("1+2*3"), Ok(7));
        assert_eq!(ev("(1+2)*3"), Ok(9));
        assert_eq!(ev("10-4-2"), Ok(0xa));
        assert_eq!(ev("1+1<<4"), Ok(0x20));
        assert_eq!(ev("1<<4 == 10"), Ok(1));
        assert_eq!(ev("6 | 1 ^ 3 & 5"), Ok(6));
        assert_eq!(ev("6 or 1 xor 3 and 5"), Ok(6));
        assert_eq!(ev("((6 | 1) ^ 3) & 5"), Ok(4));
        assert_eq!(ev("7 mod 4 + 1"), Ok(4));
        assert_eq!(ev("-1"), Ok(u64::MAX));
        assert_eq!(ev("-2*3"), Ok(6u64.wrapping_neg()));
        assert_eq!(ev("~0"), Ok(u64::MAX));
        assert_eq!(ev("not 0 + not 5"), Ok(1));
        assert_eq!(ev("hi 12345678"), Ok(0x1234));
        assert_eq!(ev("low(12345678)"), Ok(0x5678));
        assert_eq!(ev("3 > 2"), Ok(1));
        assert_eq!(ev("3 <= 2"), Ok(0));
        assert_eq!(ev("3 = 3"), Ok(1));
        assert_eq!(ev("3 != 3"), Ok(0));
        assert_eq!(ev("-1 >>> 4"), Ok(u64::MAX));
        assert_eq!(ev("-1 >> 3c"), Ok(0xf));
        assert_eq!(ev("1 << 40"), Ok(0));
        assert_eq!(ev("1 << 0n63"), Ok(1 << 63));
    }

    #[test]
    fn wrapping_and_division() {
        assert_eq!(ev("ffffffff`ffffffff + 2"), Ok(1));
        assert_eq!(ev("0 - 1"), Ok(u64::MAX));
        assert_eq!(ev("ffffffff`ffffffff * 2"), Ok(u64::MAX - 1));
        assert_eq!(ev("7 / 2"), Ok(3));
        assert_eq!(ev("7 % 2"), Ok(1));
        assert_eq!(
            ev("1 / (2 - 2)"),
            Err(ExprError::DivideByZero {
                expr: "(1 / (2 - 2))".into()
            })
        );
        assert!(matches!(ev("5 mod 0"), Err(ExprError::DivideByZero { .. })));
    }

    #[test]
    fn memory_reads() {
        assert_eq!(ev("poi(1000)"), Ok(0x8877_6655_4433_2211));
        assert_eq!(ev("poi(@rsp)"), Ok(0x8877_6655_4433_2211));
        assert_eq!(ev("by(1001)"), Ok(0x22));
        assert_eq!(ev("wo(1000)"), Ok(0x2211));
        assert_eq!(ev("dwo(1000)"), Ok(0x4433_2211));
        assert_eq!(ev("qwo 1000"), Ok(0x8877_6655_4433_2211));
        assert_eq!(ev("by(rsp+1)+1"), Ok(0x23));
        assert_eq!(
            ev("poi(0)"),
            Err(ExprError::MemoryRead { addr: 0, size: 8 })
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(parse_expr(""), Err(ExprError::Empty));
        assert_eq!(parse_expr("   "), Err(ExprError::Empty));
        assert_eq!(
            parse_expr("(1+2"),
            Err(ExprError::UnclosedParen { offset: 0 })
        );
        assert!(matches!(
            parse_expr("1 +"),
            Err(ExprError::UnexpectedEnd { .. })
        ));
        assert_eq!(
            parse_expr("1 2"),
            Err(ExprError::Unexpected {
                found: "2".into(),
                offset: 2,
                expected: "an operator or the end of the expression"
            })
        );
        assert_eq!(
            parse_expr("1 + #"),
            Err(ExprError::BadChar { ch: '#', offset: 4 })
        );
        assert!(matches!(
            parse_expr("* 2"),
            Err(ExprError::Unexpected { .. })
        ));
        assert!(matches!(
            parse_expr("and"),
            Err(ExprError::Unexpected { .. })
        ));
        assert!(matches!(parse_expr("@"), Err(ExprError::BadChar { .. })));
        assert!(matches!(
            parse_expr("1 + é"),
            Err(ExprError::BadChar { ch: 'é', .. })
        ));
    }

    #[test]
    fn nesting_is_capped() {
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert_eq!(
            parse_expr(&deep),
            Err(ExprError::TooDeep { limit: MAX_DEPTH })
        );
        let long = vec!["1"; 5000].join("+");
        assert_eq!(
            parse_expr(&long),
            Err(ExprError::TooDeep { limit: MAX_DEPTH })
        );
        let unary = format!("{}1", "-".repeat(5000));
        assert_eq!(
            parse_expr(&unary),
            Err(ExprError::TooDeep { limit: MAX_DEPTH })
        );
        assert_eq!(ev(&vec!["1"; 50].join("+")), Ok(50));
    }

    #[test]
    fn prefix_parsing_stops_at_non_operators() {
        let (e, used) = parse_expr_prefix("rsp+8 L10").unwrap();
        assert_eq!(used, 5);
        assert_eq!(e.to_string(), "(rsp + 8)");
        let (_, used) = parse_expr_prefix("401000 401010").unwrap();
        assert_eq!(used, 6);
        let (_, used) = parse_expr_prefix("poi(rsp) \"cmd\"").unwrap();
        assert_eq!(used, 8);
        let (_, used) = parse_expr_prefix("rax, rbx").unwrap();
        assert_eq!(used, 3);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "poi(@rsp + 8)",
            "crasher!main + 0x14",
            "-(1 * $ip)",
            "by(!add) | 1",
        ] {
            let e = parse_expr(text).unwrap();
            assert_eq!(parse_expr(&e.to_string()), Ok(e.clone()), "{text}");
        }
    }

    #[test]
    fn evaluate_output() {
        assert_eq!(
            format_evaluate(0x1234),
            "Evaluate expression: 4660 = 00000000`00001234"
        );
        assert_eq!(
            format_evaluate(u64::MAX),
            "Evaluate expression: -1 = ffffffff`ffffffff"
        );
        assert_eq!(format_backtick(0x7ff7_91d8_1014), "00007ff7`91d81014");
    }

    #[test]
    fn register_table_matches_user_regs() {
        let mut words = [0u64; 27];
        for (i, w) in words.iter_mut().enumerate() {
            *w = 0x100 + i as u64;
        }
        let regs = UserRegs::from_words(&words);
        let check = |name: &str, field: u64| {
            let r = register_index(name).unwrap();
            assert_eq!(words[r.word], field, "{name}");
        };
        check("rax", regs.rax);
        check("r15", regs.r15);
        check("rip", regs.rip);
        check("rsp", regs.rsp);
        check("efl", regs.eflags);
        check("fs_base", regs.fs_base);
        check("gs", regs.gs);
        check("orig_rax", regs.orig_rax);
        check("r9b", regs.r9);
        check("dh", regs.rdx);
        check("sil", regs.rsi);
        for row in REGS {
            assert!(register_index(row.0).is_some(), "{}", row.0);
        }
        assert_eq!(register_index("EAX").map(|r| r.name), Some("eax"));
        assert_eq!(register_index("xmm0"), None);
    }

    #[test]
    fn register_insert_extract() {
        let ah = register_index("ah").unwrap();
        assert_eq!((ah.shift, ah.bits, ah.full), (8, 8, "rax"));
        assert_eq!(ah.extract(0x1234), 0x12);
        assert_eq!(ah.insert(0xffff_1234, 0xab), 0xffff_ab34);
        let eax = register_index("eax").unwrap();
        assert_eq!(
            eax.insert(0xaaaa_bbbb_cccc_dddd, 0x1_2345_6789),
            0xaaaa_bbbb_2345_6789
        );
        let zf = register_index("zf").unwrap();
        assert_eq!(zf.insert(0x202, 1), 0x242);
        assert_eq!(zf.insert(0x246, 0), 0x206);
        let iopl = register_index("iopl").unwrap();
        assert_eq!(iopl.extract(0x3000), 3);
        let rax = register_index("rax").unwrap();
        assert_eq!(rax.insert(5, u64::MAX), u64::MAX);
    }
}
