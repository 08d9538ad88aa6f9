//! Dump file names: `<exe>_<pid>_<YYMMDD_HHMMSS>.dmp` in a folder, made
//! safe from hostile executable names and never colliding with an existing
//! file.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Keep `[A-Za-z0-9._+-]`, replace anything else (path separators, control
/// characters, spaces, non-UTF-8) with `_`; never empty, never `.`/`..`,
/// at most 64 bytes.
pub fn sanitize_component(raw: &[u8]) -> String {
    let mut s: String = raw
        .iter()
        .take(64)
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'+' | b'-' => b as char,
            _ => '_',
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = format!("process{}", s.replace('.', "_"));
    }
    s
}

/// `YYMMDD_HHMMSS` in UTC for seconds since the epoch.
pub fn yymmdd_hhmmss(epoch_secs: u64) -> String {
    let t = coroner_types::time::UtcTime::from_epoch(epoch_secs);
    format!(
        "{:02}{:02}{:02}_{:02}{:02}{:02}",
        t.year.rem_euclid(100),
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second
    )
}

pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A name in `folder` for a dump of `exe`/`pid` that does not exist yet:
/// `<exe>_<pid>_<stamp>.<ext>`, then `_1`, `_2`... on collision.
pub fn unique_in_folder(folder: &Path, exe: &[u8], pid: i32, epoch: u64, ext: &str) -> PathBuf {
    let base = format!(
        "{}_{}_{}",
        sanitize_component(exe),
        pid,
        yymmdd_hhmmss(epoch)
    );
    let mut candidate = folder.join(format!("{base}.{ext}"));
    let mut n = 1;
    while candidate.symlink_metadata().is_ok() {
        candidate = folder.join(format!("{base}_{n}.{ext}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(yymmdd_hhmmss(0), "700101_000000");
        // 2026-11-21 06:27:17 UTC
        assert_eq!(yymmdd_hhmmss(1_795_242_437), "261121_062717");
        // 2000-02-29 23:59:59 (leap day)
        assert_eq!(yymmdd_hhmmss(951_868_799), "000229_235959");
    }

    #[test]
    fn hostile_names_are_tamed() {
        assert_eq!(sanitize_component(b"../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitize_component(b"a\nb\x1bc d"), "a_b_c_d");
        assert_eq!(sanitize_component(b".."), "process__");
        assert_eq!(sanitize_component(b""), "process");
        assert_eq!(sanitize_component(&[0xff, b'x']), "_x");
        assert_eq!(sanitize_component(&[b'a'; 200]).len(), 64);
    }

    #[test]
    fn never_collides() {
        let d = tempfile::tempdir().unwrap();
        let a = unique_in_folder(d.path(), b"prog", 5, 0, "dmp");
        assert_eq!(a.file_name().unwrap(), "prog_5_700101_000000.dmp");
        std::fs::write(&a, b"x").unwrap();
        let b = unique_in_folder(d.path(), b"prog", 5, 0, "dmp");
        assert_eq!(b.file_name().unwrap(), "prog_5_700101_000000_1.dmp");
    }
}
