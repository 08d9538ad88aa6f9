//! Printable text from hostile strings, and the human renderings of a
//! report (`reports list` rows, `reports show` header). Owns the escaping
//! rule every printed store value goes through. Must not do I/O and must
//! not decide what is printed where (that is the CLI's job).

use std::fmt::Write as _;

use coroner_types::signal::{si_code_name, signal_label};
use coroner_types::time::UtcTime;

use crate::model::Report;

/// Make any string safe to print on one line of a terminal: C0 controls,
/// newlines and DEL become `\xNN`, a backslash becomes `\\`, and C1
/// controls, line/paragraph separators and bidirectional overrides (which
/// a terminal or an editor would act on) become `\u{XXXX}`. Everything else
/// is kept, so ordinary non-ASCII names stay readable.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_format_hazard(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Invisible characters that reorder or break lines when displayed.
fn is_format_hazard(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `YYYY-MM-DD HH:MM:SSZ` for an epoch time; the raw number for a time
/// before the epoch (which no real crash has).
pub fn format_time(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => {
            let t = UtcTime::from_epoch(s);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
                t.year, t.month, t.day, t.hour, t.minute, t.second
            )
        }
        Err(_) => format!("@{secs}"),
    }
}

/// The first `n` characters of `s` (never splits a character).
fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The dump kinds of a report: `minidump(full),core.zst`, or `-`.
fn dump_kinds(r: &Report) -> String {
    if r.dumps.is_empty() {
        return "-".into();
    }
    let kinds: Vec<String> = r
        .dumps
        .iter()
        .map(|d| match &d.level {
            Some(l) => format!("{}({})", d.format, l),
            None => d.format.clone(),
        })
        .collect();
    escape(&kinds.join(","))
}

/// One line for `reports list`: id, time, signal, exe basename, pid,
/// bucket prefix, dump kinds, and a flood counter when there was one.
pub fn render_row(r: &Report) -> String {
    let bucket = r.bucket.as_deref().map_or("-", |b| prefix(b, 16));
    let mut line = format!(
        "{:>6}  {}  {:<9} {:<20} pid {:<7} {:<16}  {}",
        r.id,
        format_time(r.time),
        signal_label(r.signal),
        escape(r.exe_basename()),
        r.pid,
        escape(bucket),
        dump_kinds(r),
    );
    if r.suppressed_before > 0 {
        let _ = write!(line, "  (+{} suppressed)", r.suppressed_before);
    }
    line
}

/// The multi-line header of `reports show`: every field, one per line,
/// each value escaped.
pub fn render_report(r: &Report) -> String {
    fn opt(v: &Option<String>) -> String {
        v.as_deref().map_or_else(|| "-".into(), escape)
    }
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<18}{v}");
    };
    line("report:", r.id.to_string());
    line(
        "time:",
        format!("{} (+{} ns)", format_time(r.time), r.time_nsec),
    );
    line("tier:", r.tier.as_str().into());
    line("host:", escape(&r.host));
    line("boot id:", escape(&r.boot_id));
    line("executable:", escape(&r.exe));
    line("comm:", escape(&r.comm));
    let args: Vec<String> = r
        .cmdline
        .iter()
        .map(|a| format!("\"{}\"", escape(a)))
        .collect();
    line("command line:", args.join(" "));
    line("cwd:", opt(&r.cwd));
    line("pid / tid:", format!("{} / {}", r.pid, r.tid));
    line("start time:", r.start_time.to_string());
    line("uid / gid:", format!("{} / {}", r.uid, r.gid));
    let code =
        si_code_name(r.signal, r.si_code).map_or_else(|| r.si_code.to_string(), str::to_string);
    line(
        "signal:",
        format!("{} ({}), code {}", signal_label(r.signal), r.signal, code),
    );
    line(
        "fault address:",
        r.fault_addr
            .map_or_else(|| "-".into(), |a| format!("{a:#018x}")),
    );
    line("cgroup:", opt(&r.cgroup));
    line("unit:", opt(&r.unit));
    line("container:", opt(&r.container));
    line(
        "dumpable:",
        r.dumpable.map_or_else(|| "-".into(), |d| d.to_string()),
    );
    line("sensitive:", yes_no(r.sensitive));
    line("jit debugger:", r.jit.as_str().into());
    line("reported:", yes_no(r.reported));
    line("signature:", opt(&r.signature));
    line("bucket:", opt(&r.bucket));
    line(
        "analysis:",
        if r.analysis_json.is_some() {
            "stored"
        } else {
            "-"
        }
        .into(),
    );
    line("truncated:", yes_no(r.truncated));
    line("suppressed before:", r.suppressed_before.to_string());
    if r.dumps.is_empty() {
        line("dump files:", "-".into());
    }
    for d in &r.dumps {
        let level = d.level.as_deref().map(|l| format!(" {}", escape(l)));
        line(
            "dump file:",
            format!(
                "{} ({}{}, {} bytes{})",
                escape(&d.name),
                escape(&d.format),
                level.unwrap_or_default(),
                d.bytes,
                if d.truncated { ", truncated" } else { "" }
            ),
        );
    }
    for n in &r.notes {
        line("note:", escape(n));
    }
    s
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{report_from, sample};
    use crate::ReportId;

    #[test]
    fn escape_keeps_one_line() {
        assert_eq!(escape("a\nb"), "a\\x0ab");
        assert_eq!(escape("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape("a/b"), "a/b");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("del\x7f"), "del\\x7f");
        assert_eq!(escape("\u{9b}2J"), "\\u{009b}2J");
        assert_eq!(escape("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(escape("x\u{2028}y"), "x\\u{2028}y");
        assert_eq!(escape("grüße"), "grüße");
        for s in ["\n", "\r\n", "\x1b[31m", "a/b", "\u{85}"] {
            let e = escape(s);
            assert!(!e.chars().any(|c| c.is_control()), "{s:?} -> {e:?}");
        }
    }

    #[test]
    fn escape_is_unambiguous_for_backslash_sequences() {
        // A literal "\x0a" must not print like an escaped newline.
        assert_ne!(escape("\\x0a"), escape("\n"));
    }

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(format_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_time(-5), "@-5");
    }

    #[test]
    fn row_has_the_listed_parts_on_one_line() {
        let mut n = sample("/opt/app/my\nserver", 1_700_000_000);
        n.bucket = Some("0123456789abcdef0123456789".into());
        n.suppressed_before = 3;
        let r = report_from(ReportId(12), n);
        let row = render_row(&r);
        assert!(!row.contains('\n'), "{row}");
        assert!(
            row.trim_start().starts_with("12  2023-11-14 22:13:20Z"),
            "{row}"
        );
        assert!(row.contains("SIGSEGV"), "{row}");
        assert!(row.contains("my\\x0aserver"), "{row}");
        assert!(row.contains("pid 4242"), "{row}");
        assert!(row.contains("0123456789abcdef "), "{row}");
        assert!(!row.contains("0123456789abcdef0"), "{row}");
        assert!(row.contains("minidump(mini),core.zst"), "{row}");
        assert!(row.contains("(+3 suppressed)"), "{row}");
    }

    #[test]
    fn show_escapes_every_field() {
        let mut n = sample("/bin/x", 1_700_000_000);
        n.cmdline = vec!["x".into(), "--evil\n\x1b]0;pwned\x07".into()];
        n.notes = vec!["line1\nline2".into()];
        n.host = "h\rost".into();
        let r = report_from(ReportId(1), n);
        let text = render_report(&r);
        // One line per field: the hostile newlines did not add lines.
        assert!(!text.contains('\x1b') && !text.contains('\r') && !text.contains('\x07'));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines
            .iter()
            .any(|l| l.starts_with("host:") && l.contains("h\\x0dost")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("note:") && l.ends_with("line1\\x0aline2")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("signal:") && l.contains("SEGV_MAPERR")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("fault address:") && l.contains("0x0000000000000010")));
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("dump file:")).count(),
            2
        );
        assert_eq!(lines.iter().filter(|l| l.starts_with("note:")).count(), 1);
    }
}
