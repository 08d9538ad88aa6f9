//! The human report: header (exe, pid, signal line, `.exr`-style line),
//! crashing thread first, other threads, modules, signature and bucket.

use crate::report::{FrameReport, Report, ThreadReport};
use std::fmt::Write;

fn frame_line(out: &mut String, f: &FrameReport) {
    let _ = write!(
        out,
        "  #{:<3} {:#018x} {}",
        f.index,
        f.address,
        f.location()
    );
    if let Some(file) = &f.file {
        match f.line {
            Some(l) => {
                let _ = write!(out, " [{file}:{l}]");
            }
            None => {
                let _ = write!(out, " [{file}]");
            }
        }
    }
    if f.inline {
        out.push_str(" (inline)");
    } else {
        let _ = write!(out, " ({})", f.trust);
    }
    out.push('\n');
}

fn thread_block(out: &mut String, t: &ThreadReport) {
    let _ = write!(out, "Thread {}", t.tid);
    if let Some(n) = &t.name {
        let _ = write!(out, " \"{n}\"");
    }
    if t.crashing {
        out.push_str(" (crashing)");
    }
    out.push('\n');
    if t.frames.is_empty() || t.unwind != "ok" {
        let _ = writeln!(out, "  ({})", t.unwind);
    }
    for f in &t.frames {
        frame_line(out, f);
    }
    out.push('\n');
}

/// Render a report as text.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Dump:       {} ({})", r.dump.path, r.dump.format);
    let _ = writeln!(
        out,
        "Process:    {} pid {}",
        r.process.exe.as_deref().unwrap_or("(unknown)"),
        r.process
            .pid
            .map_or_else(|| "?".to_string(), |p| p.to_string())
    );
    match &r.exception {
        Some(e) => {
            let _ = writeln!(out, "Exception:  {}", e.summary);
            if let Some(d) = &e.description {
                let _ = writeln!(out, "            {d}");
            }
        }
        None => {
            let _ = writeln!(out, "Exception:  (none recorded)");
        }
    }
    if let Some(t) = &r.crashing_thread {
        let _ = write!(out, "Thread:     {}", t.tid);
        if let Some(n) = &t.name {
            let _ = write!(out, " \"{n}\"");
        }
        out.push('\n');
    }
    if let Some(f) = r
        .threads
        .first()
        .filter(|t| t.crashing)
        .and_then(|t| t.frames.first())
    {
        let _ = writeln!(out, "Faulting:   {}", f.location());
    }
    out.push('\n');
    for t in &r.threads {
        thread_block(&mut out, t);
    }
    let _ = writeln!(out, "Modules:");
    for m in &r.modules {
        let _ = writeln!(
            out,
            "  {:#018x}-{:#018x} {:<24} {:<10} {} {}",
            m.base,
            m.end,
            m.name,
            m.symbols,
            m.build_id.as_deref().unwrap_or("-"),
            m.path
        );
        if let Some(d) = &m.debug_file {
            let _ = writeln!(out, "      debug file {d}");
        }
        for refusal in &m.refusals {
            let _ = writeln!(out, "      {refusal}");
        }
    }
    out.push('\n');
    let _ = writeln!(out, "Signature:  {}", r.signature.text);
    let _ = writeln!(out, "Bucket:     {}", r.signature.bucket);
    if !r.soft_errors.is_empty() {
        let _ = writeln!(out, "\nSoft errors:");
        for e in &r.soft_errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}
