//! Tools.ini (spec §10): the `[CDB]` and `[NTSD]` sections of
//! `$INIT/tools.ini`, read at start-up.
//!
//! Owns: finding the file and turning its text into [`ToolsIni`] settings,
//! with a warning (and its line number) for anything it does not understand.
//!
//! Must not: fail (a bad line is a warning, never an error: the debugger must
//! start anyway), apply the settings itself (the front end feeds `sx` to
//! [`crate::filters::Filters::set_break`] and maps the flags to `-o`, `-g`,
//! `-G`, `-cf`), or read anything but the one file.
//!
//! Format: section headers `[Name]` (case-insensitive; only `CDB` and `NTSD`
//! are read — Tools.ini is shared with other tools, so other sections are
//! skipped silently; `KD` is a kernel debugger's section and is skipped
//! too); lines starting with `;` are comments; keyword and value are
//! separated by whitespace or `:` (`sxe: 3c`, `VerboseOutput:true`);
//! keywords are case-insensitive; a flag is false only for the literal
//! `FALSE`. Entries apply in file order, so a later one wins.
//!
//! Windows and Linux differ here only in the numbers: an `sxe:`/`sxd:`
//! number is decimal unless it has `0x` (unlike the `sx` command, whose
//! radix is 16), and on Linux it is a signal number. We rewrite a decimal
//! number to `0n<n>` so that `Filters::set_break`, which parses in the
//! current radix, reads it the same way.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::filters::BreakStatus;

/// Settings read from Tools.ini.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolsIni {
    /// `sxe:`/`sxd:` entries in file order, codes ready for
    /// `Filters::set_break` (decimal numbers rewritten as `0n<n>`).
    pub sx: Vec<(BreakStatus, String)>,
    /// `DebugChildren` (as `-o`).
    pub debug_children: Option<bool>,
    /// `StopFirst` (stop at the initial breakpoint; false is like `-g`).
    pub stop_first: Option<bool>,
    /// `StopOnProcessExit` (false is like `-G`).
    pub stop_on_process_exit: Option<bool>,
    /// `IniFile` (as `-cf`).
    pub ini_file: Option<String>,
    /// One line per problem, `line N: ...`.
    pub warnings: Vec<String>,
}

/// Documented keywords we accept and ignore (no Linux meaning yet).
const IGNORED: &[&str] = &[
    "lazyload",
    "setdll",
    "verboseoutput",
    "lines",
    "srcopt",
    "srcpath",
    "debugoutput",
    "enable_unicode",
    "force_radix_output",
    "col_mode",
    "col",
];

/// `$u0` .. `$u9`.
fn is_user_alias(kw: &str) -> bool {
    kw.len() == 3 && kw.starts_with("$u") && kw.as_bytes().get(2).is_some_and(u8::is_ascii_digit)
}

/// Split `keyword[ws|:]value`.
fn split_entry(line: &str) -> (&str, &str) {
    match line.find(|c: char| c == ':' || c.is_whitespace()) {
        None => (line, ""),
        Some(pos) => {
            let (kw, rest) = line.split_at(pos);
            let rest = rest.trim_start();
            let rest = rest.strip_prefix(':').unwrap_or(rest).trim();
            (kw, rest)
        }
    }
}

/// Tools.ini numbers are decimal unless `0x`: give `set_break` an explicit
/// `0n` for decimal ones; everything else passes through.
fn sx_code(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        format!("0n{value}")
    } else {
        value.to_string()
    }
}

/// Parse Tools.ini text. Never fails; see [`ToolsIni::warnings`].
pub fn parse_tools_ini(text: &str) -> ToolsIni {
    let mut ini = ToolsIni::default();
    // The current section's name while it is one we read.
    let mut section: Option<String> = None;
    for (idx, raw) in text.lines().enumerate() {
        let n = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[') {
            let Some((name, _)) = head.split_once(']') else {
                ini.warnings.push(format!(
                    "line {n}: section header `{line}` has no closing `]`"
                ));
                section = None;
                continue;
            };
            let name = name.trim();
            section = (name.eq_ignore_ascii_case("CDB") || name.eq_ignore_ascii_case("NTSD"))
                .then(|| name.to_string());
            continue;
        }
        let Some(sect) = &section else {
            continue;
        };
        let (kw, value) = split_entry(line);
        let key = kw.to_ascii_lowercase();
        let flag = || Some(value != "FALSE");
        match key.as_str() {
            "sxe" | "sxd" => {
                if value.is_empty() {
                    ini.warnings
                        .push(format!("line {n}: `{kw}` needs an event or exception code"));
                    continue;
                }
                let status = if key == "sxe" {
                    BreakStatus::Break
                } else {
                    BreakStatus::SecondChance
                };
                ini.sx.push((status, sx_code(value)));
            }
            "debugchildren" => ini.debug_children = flag(),
            "stopfirst" => ini.stop_first = flag(),
            "stoponprocessexit" => ini.stop_on_process_exit = flag(),
            "inifile" => {
                if value.is_empty() {
                    ini.warnings
                        .push(format!("line {n}: `{kw}` needs a file name"));
                } else {
                    ini.ini_file = Some(value.to_string());
                }
            }
            k if IGNORED.contains(&k) || is_user_alias(k) => {}
            _ => ini
                .warnings
                .push(format!("line {n}: unknown keyword `{kw}` in [{sect}]")),
        }
    }
    ini
}

/// Find and parse `tools.ini` in the directory named by `INIT` (pass
/// `std::env::var_os("INIT")`). The name is matched case-insensitively
/// (`TOOLS.INI` from a Windows habit works). `None` when `INIT` is unset or
/// empty or there is no such file; a file that cannot be read gives
/// settings with only a warning.
pub fn load_tools_ini(env_init: Option<&OsStr>) -> Option<(PathBuf, ToolsIni)> {
    let dir = PathBuf::from(env_init.filter(|d| !d.is_empty())?);
    let exact = dir.join("tools.ini");
    let path = if exact.is_file() {
        exact
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("tools.ini"))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.into_iter().next()?
    };
    let ini = match std::fs::read(&path) {
        Ok(bytes) => parse_tools_ini(&String::from_utf8_lossy(&bytes)),
        Err(e) => ToolsIni {
            warnings: vec![format!("cannot read {}: {e}", path.display())],
            ..ToolsIni::default()
        },
    };
    Some((path, ini))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Filters;

    #[test]
    fn spec_example() {
        let ini =
            parse_tools_ini("[NTSD]\nsxe: 3c\nsxe: cc\n$u0: VeryLongName\nVerboseOutput:true\n");
        assert_eq!(
            ini.sx,
            vec![
                (BreakStatus::Break, "3c".to_string()),
                (BreakStatus::Break, "cc".to_string())
            ]
        );
        assert!(ini.warnings.is_empty(), "{:?}", ini.warnings);
        let mut f = Filters::new();
        for (st, code) in &ini.sx {
            f.set_break(code, *st, 16).unwrap();
        }
    }

    #[test]
    fn sections_keywords_and_separators() {
        let text = "\
; comment
[nmake]
sxe: av
[cdb]
SXD av
sxe:ld:libm*
sxe:10
sxd: 0x0b
sxe: *
DebugChildren
STOPFIRST: FALSE
stoponprocessexit false
IniFile: my.ini
[KD]
DebugChildren: FALSE
";
        let ini = parse_tools_ini(text);
        assert_eq!(
            ini.sx,
            vec![
                (BreakStatus::SecondChance, "av".to_string()),
                (BreakStatus::Break, "ld:libm*".to_string()),
                (BreakStatus::Break, "0n10".to_string()),
                (BreakStatus::SecondChance, "0x0b".to_string()),
                (BreakStatus::Break, "*".to_string()),
            ]
        );
        // Only the literal FALSE is false; a bare flag is true.
        assert_eq!(ini.debug_children, Some(true));
        assert_eq!(ini.stop_first, Some(false));
        assert_eq!(ini.stop_on_process_exit, Some(true));
        assert_eq!(ini.ini_file.as_deref(), Some("my.ini"));
        assert!(ini.warnings.is_empty(), "{:?}", ini.warnings);
        // Every entry is usable by the filters; `10` is decimal (SIGUSR1).
        let mut f = Filters::new();
        for (st, code) in &ini.sx {
            f.set_break(code, *st, 16).unwrap();
        }
        assert!(f
            .listing()
            .contains("   a - SIGUSR1 - break - not handled\n"));
        assert!(f.listing().contains("   b - SIGSEGV - second-chance break"));
    }

    #[test]
    fn warnings_carry_line_numbers() {
        let text = "[CDB]\nFrobnicate: 1\nsxe:\n[NTSD\nBogus: 2\n[NTSD]\nInifile\n";
        let ini = parse_tools_ini(text);
        assert_eq!(
            ini.warnings,
            vec![
                "line 2: unknown keyword `Frobnicate` in [CDB]".to_string(),
                "line 3: `sxe` needs an event or exception code".to_string(),
                "line 4: section header `[NTSD` has no closing `]`".to_string(),
                "line 7: `Inifile` needs a file name".to_string(),
            ]
        );
        assert!(ini.sx.is_empty());
    }

    #[test]
    fn later_entries_win_and_sections_merge() {
        let ini = parse_tools_ini("[CDB]\nDebugChildren: FALSE\n[NTSD]\nDebugChildren: yes\r\n");
        assert_eq!(ini.debug_children, Some(true));
        // `false` in lower case is not the literal FALSE.
        assert_eq!(
            parse_tools_ini("[CDB]\nStopFirst false").stop_first,
            Some(true)
        );
    }

    #[test]
    fn junk_never_panics() {
        for text in [
            "[",
            "]",
            "[]",
            ":",
            "[CDB]\n:",
            "[CDB]\n:::",
            "[CDB]\n\u{0}é:é",
            "[CDB]\n$u",
        ] {
            let _ = parse_tools_ini(text);
        }
        let ini = parse_tools_ini("[CDB]\n$u\n$u10: x\n$u9: y\n");
        assert_eq!(ini.warnings.len(), 2, "{:?}", ini.warnings);
    }

    #[test]
    fn load_from_init_dir() {
        assert!(load_tools_ini(None).is_none());
        assert!(load_tools_ini(Some(OsStr::new(""))).is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(load_tools_ini(Some(dir.path().as_os_str())).is_none());
        std::fs::write(dir.path().join("TOOLS.INI"), "[CDB]\nsxe: 3c\n").unwrap();
        let (path, ini) = load_tools_ini(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("TOOLS.INI"));
        assert_eq!(ini.sx, vec![(BreakStatus::Break, "3c".to_string())]);
        // The exact lower-case name is preferred.
        std::fs::write(dir.path().join("tools.ini"), "[CDB]\nsxd: av\n").unwrap();
        let (path, ini) = load_tools_ini(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("tools.ini"));
        assert_eq!(ini.sx, vec![(BreakStatus::SecondChance, "av".to_string())]);
        // Invalid UTF-8 is read lossily.
        std::fs::write(dir.path().join("tools.ini"), b"[CDB]\nsxe: \xff\n").unwrap();
        let (_, ini) = load_tools_ini(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(ini.sx.len(), 1);
    }
}
