//! CDB's String Wildcard Syntax (spec §4), used by the `ld`, `ud`, `cpr`,
//! `epr` and `out` event-filter arguments.
//!
//! Owns: parsing a pattern into a small list of atoms with repetition marks,
//! and matching it, anchored at both ends, against a string (exactly or ASCII
//! case-insensitively). Matching simulates an NFA over the pattern positions,
//! so it costs O(pattern × text) whatever the input; there is no backtracking
//! to blow up on `*a*a*a*…`.
//!
//! Must not: know anything about modules, paths or filters (callers decide
//! what text to match and whether case matters), or panic on any input.
//!
//! Syntax, as documented, plus the choices we had to make where the
//! documentation is silent:
//!
//! | Token | Meaning |
//! |---|---|
//! | `*` | zero or more characters |
//! | `?` | exactly one character |
//! | `[list]` | one character from the list; `a-z` ranges allowed (`Prog[er-t7]am`) |
//! | `#` | zero or more of the preceding atom (a character, `?` or a `[...]` class) |
//! | `+` | one or more of the preceding atom |
//! | `\` | makes the next `#`, `?`, `[`, `]`, `*`, `+` literal |
//!
//! Choices: `#`/`+` with nothing before them is an error; `#`/`+` after a
//! repeated atom combine the way regular expressions do (`a+#` = `a#`,
//! `a++` = `a+`, `*#` = `*`). `\\` is one literal backslash (an addition:
//! Linux patterns may need it); `\` before any other character is a literal
//! backslash followed by that character (Windows paths keep working); a
//! trailing lone `\` is an error. Inside `[...]`, `\` escapes the next
//! character too. A literal `-` cannot be expressed inside a list (as
//! documented), so a list that starts or ends with `-`, an inverted range and
//! an empty list are errors. `!` and `^` are ordinary characters (negated
//! classes are undocumented). An unmatched `]` is an error.

use std::fmt;

/// Why a pattern could not be parsed. Each variant carries the pattern text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WildcardError {
    #[error("wildcard pattern `{pattern}`: `[` at offset {offset} has no closing `]`")]
    UnclosedBracket { pattern: String, offset: usize },
    #[error("wildcard pattern `{pattern}`: `]` at offset {offset} has no opening `[`")]
    UnmatchedBracket { pattern: String, offset: usize },
    #[error("wildcard pattern `{pattern}`: empty `[]` list at offset {offset}")]
    EmptyList { pattern: String, offset: usize },
    #[error("wildcard pattern `{pattern}`: bad range `{from}-{to}` in a `[...]` list")]
    BadRange {
        pattern: String,
        from: String,
        to: String,
    },
    #[error("wildcard pattern `{pattern}`: `{token}` at offset {offset} has no preceding element to repeat")]
    NothingToRepeat {
        pattern: String,
        token: char,
        offset: usize,
    },
    #[error("wildcard pattern `{pattern}`: trailing `\\` escapes nothing")]
    TrailingEscape { pattern: String },
}

/// One single-character matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// A literal character.
    Char(char),
    /// `?`: any one character.
    Any,
    /// `[...]`: inclusive ranges; a single character is a range of one.
    Class(Vec<(char, char)>),
}

impl Atom {
    fn matches(&self, c: char, fold: bool) -> bool {
        match self {
            Atom::Any => true,
            Atom::Char(p) => {
                if fold {
                    p.eq_ignore_ascii_case(&c)
                } else {
                    *p == c
                }
            }
            Atom::Class(ranges) => {
                let in_class = |x: char| ranges.iter().any(|&(lo, hi)| lo <= x && x <= hi);
                if fold {
                    in_class(c)
                        || in_class(c.to_ascii_lowercase())
                        || in_class(c.to_ascii_uppercase())
                } else {
                    in_class(c)
                }
            }
        }
    }
}

/// An atom and whether it may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Elem {
    atom: Atom,
    /// `false`: exactly once; `true`: zero or more times. One-or-more is
    /// compiled as the atom once followed by the atom zero-or-more times.
    star: bool,
    /// This starred element is the tail of `x+` (the element before it is
    /// the mandatory `x`).
    plus_tail: bool,
}

/// A parsed wildcard pattern. Cheap to clone; keeps its source text.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    elems: Vec<Elem>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Characters that `\` turns into literals (plus `\` itself, our addition).
fn is_escapable(c: char) -> bool {
    matches!(c, '#' | '?' | '[' | ']' | '*' | '+' | '\\')
}

/// True when `text` contains an unescaped wildcard token (`*`, `?`, `[`,
/// `#`, `+`), i.e. it is a pattern rather than an exact name. Used by the
/// `ud` rule (an exact name is resolved to an address at once).
pub fn has_wildcards(text: &str) -> bool {
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' if it.peek().is_some_and(|&n| is_escapable(n)) => {
                it.next();
            }
            '*' | '?' | '[' | '#' | '+' => return true,
            _ => {}
        }
    }
    false
}

impl Pattern {
    /// Parse `text` in String Wildcard Syntax.
    pub fn parse(text: &str) -> Result<Pattern, WildcardError> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut elems: Vec<Elem> = Vec::new();
        // Whether the last element may take a `#`/`+` (false at the start).
        let mut have_atom = false;
        let mut i = 0;
        while let Some(&(off, c)) = chars.get(i) {
            i += 1;
            match c {
                '*' => {
                    elems.push(Elem {
                        atom: Atom::Any,
                        star: true,
                        plus_tail: false,
                    });
                    have_atom = true;
                }
                '?' => {
                    elems.push(Elem {
                        atom: Atom::Any,
                        star: false,
                        plus_tail: false,
                    });
                    have_atom = true;
                }
                '#' | '+' => {
                    if !have_atom {
                        return Err(WildcardError::NothingToRepeat {
                            pattern: text.to_string(),
                            token: c,
                            offset: off,
                        });
                    }
                    repeat_last(&mut elems, c == '+');
                }
                '[' => {
                    let (class, next) = parse_class(text, &chars, i, off)?;
                    i = next;
                    elems.push(Elem {
                        atom: class,
                        star: false,
                        plus_tail: false,
                    });
                    have_atom = true;
                }
                ']' => {
                    return Err(WildcardError::UnmatchedBracket {
                        pattern: text.to_string(),
                        offset: off,
                    })
                }
                '\\' => {
                    let lit = match chars.get(i) {
                        None => {
                            return Err(WildcardError::TrailingEscape {
                                pattern: text.to_string(),
                            })
                        }
                        Some(&(_, n)) if is_escapable(n) => {
                            i += 1;
                            n
                        }
                        Some(_) => '\\',
                    };
                    elems.push(Elem {
                        atom: Atom::Char(lit),
                        star: false,
                        plus_tail: false,
                    });
                    have_atom = true;
                }
                _ => {
                    elems.push(Elem {
                        atom: Atom::Char(c),
                        star: false,
                        plus_tail: false,
                    });
                    have_atom = true;
                }
            }
        }
        Ok(Pattern {
            source: text.to_string(),
            elems,
        })
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whole-string, case-sensitive match.
    pub fn matches(&self, s: &str) -> bool {
        self.run(s, false)
    }

    /// Whole-string match ignoring ASCII case (the `out` rule, and module
    /// and process names, see `filters`).
    pub fn matches_ci(&self, s: &str) -> bool {
        self.run(s, true)
    }

    /// NFA simulation. State `k` means "the first `k` elements have been
    /// matched"; a starred element can be skipped (epsilon to `k + 1`) or
    /// consume a character and stay at `k`.
    fn run(&self, s: &str, fold: bool) -> bool {
        let n = self.elems.len();
        let mut cur = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        cur[0] = true;
        self.close(&mut cur);
        for c in s.chars() {
            next.iter_mut().for_each(|b| *b = false);
            let mut any = false;
            for (k, elem) in self.elems.iter().enumerate() {
                if !cur[k] || !elem.atom.matches(c, fold) {
                    continue;
                }
                if elem.star {
                    next[k] = true;
                } else {
                    next[k + 1] = true;
                }
                any = true;
            }
            if !any {
                return false;
            }
            self.close(&mut next);
            std::mem::swap(&mut cur, &mut next);
        }
        cur[n]
    }

    /// Epsilon closure: a live starred element also makes the next state live.
    fn close(&self, states: &mut [bool]) {
        for (k, elem) in self.elems.iter().enumerate() {
            if elem.star && states[k] {
                states[k + 1] = true;
            }
        }
    }
}

/// Apply `#` (`one_or_more == false`) or `+` to the last element.
fn repeat_last(elems: &mut Vec<Elem>, one_or_more: bool) {
    let Some(last) = elems.last_mut() else {
        return;
    };
    if last.star {
        // `x##`, `x#+`, `*#` and `x++` change nothing; `x+#` is `x#`, so the
        // mandatory copy in front of the tail goes.
        if last.plus_tail && !one_or_more {
            last.plus_tail = false;
            let tail = elems.len() - 1;
            elems.remove(tail - 1);
        }
        return;
    }
    if one_or_more {
        let copy = Elem {
            atom: last.atom.clone(),
            star: true,
            plus_tail: true,
        };
        elems.push(copy);
    } else {
        last.star = true;
    }
}

/// Parse a `[...]` list whose `[` was at byte `open_off`; `i` indexes the
/// first character after it. Returns the class and the index after `]`.
fn parse_class(
    text: &str,
    chars: &[(usize, char)],
    mut i: usize,
    open_off: usize,
) -> Result<(Atom, usize), WildcardError> {
    // Collect the list's characters (escapes resolved), remembering which
    // `-` were unescaped range operators.
    let mut items: Vec<(char, bool)> = Vec::new();
    loop {
        let Some(&(_, c)) = chars.get(i) else {
            return Err(WildcardError::UnclosedBracket {
                pattern: text.to_string(),
                offset: open_off,
            });
        };
        i += 1;
        match c {
            ']' => break,
            '\\' => match chars.get(i) {
                Some(&(_, n)) => {
                    i += 1;
                    items.push((n, false));
                }
                None => {
                    return Err(WildcardError::UnclosedBracket {
                        pattern: text.to_string(),
                        offset: open_off,
                    })
                }
            },
            '-' => items.push(('-', true)),
            _ => items.push((c, false)),
        }
    }
    if items.is_empty() {
        return Err(WildcardError::EmptyList {
            pattern: text.to_string(),
            offset: open_off,
        });
    }
    let mut ranges = Vec::new();
    let mut k = 0;
    while let Some(&(lo, lo_is_dash)) = items.get(k) {
        let bad = |from: &str, to: &str| WildcardError::BadRange {
            pattern: text.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        };
        if lo_is_dash {
            // A `-` with nothing before it.
            let to = items
                .get(k + 1)
                .map(|x| x.0.to_string())
                .unwrap_or_default();
            return Err(bad("", &to));
        }
        match items.get(k + 1) {
            Some(&(_, true)) => {
                let Some(&(hi, hi_is_dash)) = items.get(k + 2) else {
                    return Err(bad(&lo.to_string(), ""));
                };
                if hi_is_dash || hi < lo {
                    return Err(bad(&lo.to_string(), &hi.to_string()));
                }
                ranges.push((lo, hi));
                k += 3;
            }
            _ => {
                ranges.push((lo, lo));
                k += 1;
            }
        }
    }
    Ok((Atom::Class(ranges), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn star_and_question() {
        let pat = p("kernel*");
        assert!(pat.matches("kernel32"));
        assert!(pat.matches("kernel"));
        assert!(!pat.matches("xkernel"));
        let pat = p("a?c");
        assert!(pat.matches("abc"));
        assert!(!pat.matches("ac"));
        assert!(!pat.matches("abbc"));
        assert!(p("*").matches(""));
        assert!(p("").matches(""));
        assert!(!p("").matches("a"));
    }

    #[test]
    fn spec_list_example() {
        let pat = p("Prog[er-t7]am");
        for ok in ["Progeam", "Program", "Progsam", "Progtam", "Prog7am"] {
            assert!(pat.matches(ok), "{ok}");
        }
        for bad in ["Progaam", "Progam", "Progrram", "Progu7am", "Prog-am"] {
            assert!(!pat.matches(bad), "{bad}");
        }
    }

    #[test]
    fn spec_hash_examples() {
        let pat = p("Lo#p");
        for ok in ["Lp", "Lop", "Loop", "Looooop"] {
            assert!(pat.matches(ok), "{ok}");
        }
        assert!(!pat.matches("Lap"));
        let pat = p("m[ia]#n");
        for ok in ["mn", "min", "man", "maan", "main", "mian", "miiaan"] {
            assert!(pat.matches(ok), "{ok}");
        }
        assert!(!pat.matches("mon"));
    }

    #[test]
    fn spec_plus_examples() {
        let pat = p("Lo+p");
        assert!(!pat.matches("Lp"));
        assert!(pat.matches("Lop"));
        assert!(pat.matches("Loooop"));
        let pat = p("a?+b");
        assert!(!pat.matches("ab"));
        assert!(pat.matches("axb"));
        assert!(pat.matches("axyzb"));
        assert!(!pat.matches("axyz"));
    }

    #[test]
    fn escapes() {
        let pat = p(r"a\*b");
        assert!(pat.matches("a*b"));
        assert!(!pat.matches("axb"));
        assert!(p(r"\[x\]").matches("[x]"));
        assert!(p(r"c\+\+").matches("c++"));
        assert!(p(r"x\#").matches("x#"));
        assert!(p(r"x\?").matches("x?"));
        assert!(!p(r"x\?").matches("xy"));
        // `\\` is one backslash; `\` before an ordinary char stays literal.
        assert!(p(r"a\\b").matches(r"a\b"));
        assert!(p(r"C:\dir\x").matches(r"C:\dir\x"));
        assert!(!has_wildcards(r"a\*b"));
        assert!(has_wildcards("a*b"));
        assert!(has_wildcards("lib[cm]"));
        assert!(has_wildcards("Lo#p"));
        assert!(has_wildcards("c++"));
        assert!(!has_wildcards("kernel32"));
        assert!(!has_wildcards(r"libstdc\+\+.so"));
    }

    #[test]
    fn dash_outside_brackets_is_literal() {
        assert!(p("ld-linux-*").matches("ld-linux-x86-64.so.2"));
    }

    #[test]
    fn case_folding() {
        let pat = p("*ERROR*");
        assert!(!pat.matches("an error here"));
        assert!(pat.matches_ci("an error here"));
        assert!(p("[A-C]x").matches_ci("bX"));
        assert!(p("[a-c]x").matches_ci("BX"));
        assert!(!p("[a-c]x").matches_ci("dx"));
    }

    #[test]
    fn repeated_quantifiers_combine() {
        assert!(p("a+#").matches(""));
        assert!(p("a#+").matches(""));
        assert!(!p("a++").matches(""));
        assert!(p("a++").matches("aaa"));
        assert!(p("*#x").matches("yyx"));
    }

    #[test]
    fn unicode_is_one_character() {
        assert!(p("?").matches("é"));
        assert!(p("[à-ü]").matches("é"));
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            Pattern::parse("ab[cd"),
            Err(WildcardError::UnclosedBracket { offset: 2, .. })
        ));
        assert!(matches!(
            Pattern::parse(r"[a\"),
            Err(WildcardError::UnclosedBracket { .. })
        ));
        assert!(matches!(
            Pattern::parse("#ab"),
            Err(WildcardError::NothingToRepeat {
                token: '#',
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            Pattern::parse("+"),
            Err(WildcardError::NothingToRepeat { token: '+', .. })
        ));
        assert!(matches!(
            Pattern::parse(r"abc\"),
            Err(WildcardError::TrailingEscape { .. })
        ));
        assert!(matches!(
            Pattern::parse("a]"),
            Err(WildcardError::UnmatchedBracket { offset: 1, .. })
        ));
        assert!(matches!(
            Pattern::parse("[]"),
            Err(WildcardError::EmptyList { .. })
        ));
        assert!(matches!(
            Pattern::parse("[z-a]"),
            Err(WildcardError::BadRange { .. })
        ));
        assert!(matches!(
            Pattern::parse("[a-]"),
            Err(WildcardError::BadRange { .. })
        ));
        assert!(matches!(
            Pattern::parse("[-a]"),
            Err(WildcardError::BadRange { .. })
        ));
        let e = Pattern::parse("x[").unwrap_err().to_string();
        assert!(e.contains("`x[`"), "{e}");
    }

    #[test]
    fn no_exponential_blowup() {
        let pat = p(&"*a".repeat(30));
        let text = "a".repeat(29) + &"b".repeat(5000);
        assert!(!pat.matches(&text));
        let pat = p(&"a#".repeat(40));
        assert!(!pat.matches(&("a".repeat(3000) + "b")));
        assert!(pat.matches(&"a".repeat(3000)));
    }

    #[test]
    fn display_keeps_source() {
        let pat = p("lib[cm]*");
        assert_eq!(pat.to_string(), "lib[cm]*");
        assert_eq!(pat.as_str(), "lib[cm]*");
    }

    #[test]
    fn never_panics_on_junk() {
        for s in [
            "[", "]", "\\", "[\\", "[-", "[a-", "#", "+", "*+", "?#", "[]]", "\\\\\\", "[-]",
            "[a-b-c]", "é[", "[é-a]",
        ] {
            let _ = Pattern::parse(s).map(|p| p.matches_ci("abc"));
        }
    }
}
