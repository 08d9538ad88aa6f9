//! The AeDebug `debugger` command-line template (spec §11.2, §13.1).
//!
//! Windows passes the `Debugger` string through a printf-style call with
//! exactly three arguments in fixed order: the pid (`%ld`), the event handle
//! (`%ld`), the address of the `JIT_DEBUG_INFO` block (`%p`). We do the same
//! with our own formatter and never a shell:
//!
//! 1. the string is split shell-style into argv words first (POSIX rules as
//!    the `shlex` crate implements them: blanks separate, `'…'` literal,
//!    `"…"` with `\"`, `\\`, `\$`, `` \` `` escapes, `\x` outside quotes,
//!    `#` at the start of a word begins a comment);
//! 2. each word is scanned printf-style: `%ld`, `%p` and `%%` are the only
//!    conversions. printf consumes its arguments positionally, so the first
//!    `%ld` always gets the pid, the second the event, and a `%p` the third
//!    argument: a `%p` before two `%ld`s would print the pid or the event as a
//!    pointer. The accepted sequences are therefore exactly none, `%ld`,
//!    `%ld %ld` and `%ld %ld %p` (counted across all words); anything else is
//!    an error naming the column.
//!
//! Expansion: `%ld` is decimal; `%p` is lower-case hex without `0x`,
//! zero-padded to the pointer width of this build (16 digits on 64-bit, like
//! Windows' `00000000003E0000`), so `0x%p` reads `0x00000000003e0000`.
//!
//! The crash runtime must not allocate at crash time: it takes
//! [`DebuggerTemplate::words`] at start-up, sizes one buffer per word with
//! [`DebuggerTemplate::word_capacity`], and fills them in the signal handler
//! with [`DebuggerTemplate::write_word`], which neither allocates nor locks.

use crate::error::TemplateError;
use serde::{Serialize, Serializer};

/// Hex digits `%p` expands to: the pointer width of this build.
pub const POINTER_HEX_DIGITS: usize = 2 * core::mem::size_of::<usize>();

/// One piece of an argv word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (`%%` already turned into `%`).
    Lit(String),
    /// The first `%ld`: the crashing process's pid, in decimal.
    Pid,
    /// The second `%ld`: the event (an inherited fd on Linux), in decimal.
    Event,
    /// `%p`: the JIT block address, [`POINTER_HEX_DIGITS`] lower-case hex
    /// digits without `0x`.
    JitAddr,
}

impl Piece {
    /// The most bytes this piece can expand to.
    pub fn max_len(&self) -> usize {
        match self {
            Piece::Lit(s) => s.len(),
            Piece::Pid => 10,   // u32::MAX
            Piece::Event => 20, // i64::MIN
            Piece::JitAddr => POINTER_HEX_DIGITS.max(16),
        }
    }
}

/// A parsed, validated `debugger` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebuggerTemplate {
    source: String,
    words: Vec<Vec<Piece>>,
}

impl Serialize for DebuggerTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl std::fmt::Display for DebuggerTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl DebuggerTemplate {
    /// Parses and validates a template. An empty (or blank) string parses to
    /// a template with no words; the model treats that as "no debugger".
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut words = Vec::new();
        let mut next_arg = 0usize; // 0 = pid, 1 = event, 2 = block, 3 = none left
        for word in split_with_columns(source)? {
            words.push(scan_word(&word, &mut next_arg)?);
        }
        Ok(DebuggerTemplate {
            source: source.to_owned(),
            words,
        })
    }

    /// The template text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the template has no words (an empty `debugger` value).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The argv words, each a sequence of pieces. `words()[0]` is the program.
    pub fn words(&self) -> &[Vec<Piece>] {
        &self.words
    }

    /// The program (first word) if it is plain text.
    pub fn program(&self) -> Option<&str> {
        match self.words.first()?.as_slice() {
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Bytes needed to hold word `index` for any pid/event/address (without
    /// a terminating NUL); 0 for an index out of range.
    pub fn word_capacity(&self, index: usize) -> usize {
        self.words
            .get(index)
            .map_or(0, |w| w.iter().map(Piece::max_len).sum())
    }

    /// Expands word `index` into `buf` without allocating; returns the number
    /// of bytes written, or `None` if `index` is out of range or `buf` is
    /// shorter than needed. Safe to call from a signal handler.
    pub fn write_word(
        &self,
        index: usize,
        pid: u32,
        event: i64,
        block: u64,
        buf: &mut [u8],
    ) -> Option<usize> {
        let mut at = 0usize;
        for piece in self.words.get(index)? {
            let mut tmp = [0u8; 24];
            let bytes: &[u8] = match piece {
                Piece::Lit(s) => s.as_bytes(),
                Piece::Pid => fmt_dec(u64::from(pid), false, &mut tmp),
                Piece::Event => fmt_dec(event.unsigned_abs(), event < 0, &mut tmp),
                Piece::JitAddr => fmt_hex(block, &mut tmp),
            };
            let end = at.checked_add(bytes.len())?;
            buf.get_mut(at..end)?.copy_from_slice(bytes);
            at = end;
        }
        Some(at)
    }

    /// Expands every word (allocating; for tools and tests).
    pub fn expand(&self, pid: u32, event: i64, block: u64) -> Vec<String> {
        (0..self.words.len())
            .map(|i| {
                let mut buf = vec![0u8; self.word_capacity(i)];
                let n = self.write_word(i, pid, event, block, &mut buf).unwrap_or(0);
                buf.truncate(n);
                String::from_utf8_lossy(&buf).into_owned()
            })
            .collect()
    }
}

/// Decimal digits of `v` (with a leading `-` if `negative`) at the end of
/// `tmp`; no allocation.
fn fmt_dec(mut v: u64, negative: bool, tmp: &mut [u8; 24]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        tmp[i] = b'-';
    }
    &tmp[i..]
}

/// `block` as [`POINTER_HEX_DIGITS`] lower-case hex digits; no allocation.
/// An address wider than the build's pointers keeps all its digits.
fn fmt_hex(block: u64, tmp: &mut [u8; 24]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = if POINTER_HEX_DIGITS < 16 && block > u64::from(u32::MAX) {
        16
    } else {
        POINTER_HEX_DIGITS
    };
    for (k, slot) in tmp[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - k);
        *slot = HEX[((block >> shift) & 0xf) as usize];
    }
    &tmp[..digits]
}

/// A character of a split word with the 1-based column it came from.
type Located = (char, usize);

/// Shell-style split (the `shlex` crate's rules) keeping, for every output
/// character, the column of the source character that produced it.
fn split_with_columns(s: &str) -> Result<Vec<Vec<Located>>, TemplateError> {
    let chars: Vec<Located> = s.chars().zip(1..).collect();
    if let Some(&(_, column)) = chars.iter().find(|(c, _)| *c == '\0') {
        return Err(TemplateError::Nul { column });
    }
    let mut words = Vec::new();
    let mut i = 0usize;
    let blank = |c: char| c == ' ' || c == '\t' || c == '\n';
    while i < chars.len() {
        // Skip blanks and comments between words.
        let (c, _) = chars[i];
        if blank(c) {
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i].0 != '\n' {
                i += 1;
            }
            continue;
        }
        let mut word = Vec::new();
        while i < chars.len() {
            let (c, col) = chars[i];
            match c {
                '\'' => {
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                return Err(TemplateError::UnterminatedQuote {
                                    column: col,
                                    quote: '\'',
                                })
                            }
                            Some(&('\'', _)) => break,
                            Some(&located) => word.push(located),
                        }
                        i += 1;
                    }
                }
                '"' => {
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                return Err(TemplateError::UnterminatedQuote {
                                    column: col,
                                    quote: '"',
                                })
                            }
                            Some(&('"', _)) => break,
                            Some(&('\\', bcol)) => {
                                i += 1;
                                match chars.get(i) {
                                    None => {
                                        return Err(TemplateError::UnterminatedQuote {
                                            column: col,
                                            quote: '"',
                                        })
                                    }
                                    Some(&('\n', _)) => {}
                                    Some(&(e @ ('$' | '`' | '"' | '\\'), ecol)) => {
                                        word.push((e, ecol))
                                    }
                                    Some(&other) => {
                                        word.push(('\\', bcol));
                                        word.push(other);
                                    }
                                }
                            }
                            Some(&located) => word.push(located),
                        }
                        i += 1;
                    }
                }
                '\\' => {
                    i += 1;
                    match chars.get(i) {
                        None => return Err(TemplateError::TrailingBackslash { column: col }),
                        Some(&('\n', _)) => {}
                        Some(&located) => word.push(located),
                    }
                }
                c if blank(c) => break,
                _ => word.push((c, col)),
            }
            i += 1;
        }
        words.push(word);
    }
    Ok(words)
}

/// printf-style scan of one word; `next_arg` counts the arguments consumed
/// so far across the whole template.
fn scan_word(word: &[Located], next_arg: &mut usize) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0usize;
    while i < word.len() {
        let (c, col) = word[i];
        if c != '%' {
            lit.push(c);
            i += 1;
            continue;
        }
        let rest: String = word[i + 1..].iter().take(2).map(|(c, _)| *c).collect();
        let (piece, len) = if rest.starts_with('%') {
            lit.push('%');
            i += 2;
            continue;
        } else if rest.starts_with("ld") {
            match *next_arg {
                0 => (Piece::Pid, 3),
                1 => (Piece::Event, 3),
                2 => {
                    return Err(TemplateError::OutOfOrder {
                        column: col,
                        found: "%ld",
                        argument: "JIT block address (a pointer)",
                    })
                }
                _ => {
                    return Err(TemplateError::OutOfOrder {
                        column: col,
                        found: "%ld",
                        argument: "nothing (all three arguments are used)",
                    })
                }
            }
        } else if rest.starts_with('p') {
            match *next_arg {
                0 => {
                    return Err(TemplateError::OutOfOrder {
                        column: col,
                        found: "%p",
                        argument: "pid",
                    })
                }
                1 => {
                    return Err(TemplateError::OutOfOrder {
                        column: col,
                        found: "%p",
                        argument: "event",
                    })
                }
                2 => (Piece::JitAddr, 2),
                _ => {
                    return Err(TemplateError::OutOfOrder {
                        column: col,
                        found: "%p",
                        argument: "nothing (all three arguments are used)",
                    })
                }
            }
        } else {
            let found: String = std::iter::once('%')
                .chain(
                    word[i + 1..]
                        .iter()
                        .map(|(c, _)| *c)
                        .take_while(|c| !c.is_whitespace())
                        .take(4),
                )
                .collect();
            return Err(TemplateError::UnsupportedConversion { column: col, found });
        };
        if !lit.is_empty() {
            pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        pieces.push(piece);
        *next_arg += 1;
        i += len;
    }
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DebuggerTemplate {
        DebuggerTemplate::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn canonical_windbg_line_expands() {
        let d = t("coroner dbg -p %ld -e %ld -g");
        assert_eq!(
            d.expand(4242, 7, 0),
            ["coroner", "dbg", "-p", "4242", "-e", "7", "-g"]
        );
    }

    #[test]
    fn jit_context_line_from_the_spec() {
        let d = t("windbg -p %ld -e %ld -c \".jdinfo 0x%p\"");
        let out = d.expand(1, 2, 0x3E_0000);
        assert_eq!(out[5], "-c");
        assert_eq!(
            out[6],
            format!(".jdinfo 0x{:0w$x}", 0x3E_0000, w = POINTER_HEX_DIGITS)
        );
    }

    #[test]
    fn p_expansion_width() {
        let d = DebuggerTemplate::parse("x %ld %ld 0x%p").unwrap();
        let out = d.expand(1, 2, 0x3E_0000);
        if POINTER_HEX_DIGITS == 16 {
            assert_eq!(out[3], "0x00000000003e0000");
        } else {
            assert_eq!(out[3], "0x003e0000");
        }
    }

    #[test]
    fn accepted_conversion_sequences() {
        for s in [
            "gdb",
            "gdb -p %ld",
            "x %ld %ld",
            "x %ld %ld %p",
            "x %ld%ld%p",
        ] {
            t(s);
        }
    }

    #[test]
    fn rejected_conversion_sequences() {
        for (s, col) in [
            ("x %p", 3),
            ("x %ld %p", 7),
            ("x %ld %ld %p %ld", 14),
            ("x %ld %ld %p %p", 14),
        ] {
            let e = DebuggerTemplate::parse(s).unwrap_err();
            assert!(matches!(e, TemplateError::OutOfOrder { .. }), "{s}: {e}");
            assert_eq!(e.column(), col, "{s}: {e}");
        }
    }

    #[test]
    fn unsupported_conversions_name_their_column() {
        for (s, col) in [
            ("gdb -p %s", 8),
            ("gdb -p %d", 8),
            ("gdb %x", 5),
            ("gdb 100%", 8),
            ("gdb %lx", 5),
            ("gdb \"a b %i\"", 10),
        ] {
            let e = DebuggerTemplate::parse(s).unwrap_err();
            assert!(
                matches!(e, TemplateError::UnsupportedConversion { .. }),
                "{s}: {e}"
            );
            assert_eq!(e.column(), col, "{s}: {e}");
        }
    }

    #[test]
    fn percent_percent_is_a_literal_percent() {
        assert_eq!(t("echo 100%% %ld").expand(5, 0, 0), ["echo", "100%", "5"]);
    }

    #[test]
    fn quoting_groups_words_and_conversions_work_inside_quotes() {
        let d = t("'/opt/my tools/cdb' -p %ld -e %ld -c \".dump /j 0x%p /u dir; qd\"");
        assert_eq!(d.program(), Some("/opt/my tools/cdb"));
        let out = d.expand(10, 11, 0x1000);
        assert_eq!(out.len(), 7);
        assert!(out[6].starts_with(".dump /j 0x"));
        assert!(out[6].ends_with("1000 /u dir; qd"));
    }

    #[test]
    fn split_agrees_with_shlex() {
        for s in [
            "a b  c",
            "'a b' \"c d\" e\\ f",
            "\"x\\\"y\\\\z\\q\"",
            "a#b #comment\nc",
            "  lead\ttrail\n",
            "mix'ed'\"quo\"tes",
            "",
        ] {
            let ours: Vec<String> = split_with_columns(s)
                .unwrap()
                .into_iter()
                .map(|w| w.into_iter().map(|(c, _)| c).collect())
                .collect();
            assert_eq!(Some(ours), shlex::split(s), "{s:?}");
        }
        for s in ["'open", "\"open", "end\\"] {
            assert!(split_with_columns(s).is_err());
            assert!(shlex::split(s).is_none());
        }
    }

    #[test]
    fn unterminated_quote_column() {
        let e = DebuggerTemplate::parse("gdb 'oops").unwrap_err();
        assert_eq!(e.column(), 5);
    }

    #[test]
    fn write_word_does_not_overflow_and_reports_short_buffer() {
        let d = t("x %ld/%ld/%p");
        let cap = d.word_capacity(1);
        let mut buf = vec![0u8; cap];
        let n = d
            .write_word(1, u32::MAX, i64::MIN, u64::MAX, &mut buf)
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!(
                "{}/{}/{:0w$x}",
                u32::MAX,
                i64::MIN,
                u64::MAX as usize,
                w = POINTER_HEX_DIGITS
            )
        );
        let mut short = [0u8; 4];
        assert_eq!(d.write_word(1, 1, 1, 1, &mut short), None);
        assert_eq!(d.write_word(9, 1, 1, 1, &mut buf), None);
    }

    #[test]
    fn empty_template_has_no_words() {
        assert!(t("   ").is_empty());
        assert_eq!(t("").expand(1, 2, 3), Vec::<String>::new());
    }

    #[test]
    fn nul_is_rejected() {
        assert!(matches!(
            DebuggerTemplate::parse("a\0b"),
            Err(TemplateError::Nul { column: 2 })
        ));
    }
}
