//! The plain data of the report store: what a report is, how it is asked
//! for, and what the policy operations (rate limit, retention, delete)
//! return. Owns the dump-file-name rule. Must not do I/O.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::StoreError;

/// The store's id of a report (SQLite rowid; never reused after a delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ReportId(pub i64);

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for ReportId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<ReportId, Self::Err> {
        s.trim().parse().map(ReportId)
    }
}

/// Which part of coroner caught the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// The `core_pattern` helper (postmortem, process already dying).
    Kernel,
    /// The in-process runtime (`libcoroner`), process still alive.
    Runtime,
    /// `coroner dump PID` or `.dump` in the debugger.
    OnDemand,
}

impl Tier {
    /// The stored (and printed) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Kernel => "kernel",
            Tier::Runtime => "runtime",
            Tier::OnDemand => "on-demand",
        }
    }

    /// Inverse of [`Tier::as_str`].
    pub fn parse(s: &str) -> Option<Tier> {
        [Tier::Kernel, Tier::Runtime, Tier::OnDemand]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// What the AeDebug (JIT) debugger did with the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JitOutcome {
    /// No debugger was launched.
    None,
    /// The debugger ran and exited without signalling the event.
    Launched,
    /// The debugger signalled the event (attached; second chance follows).
    Resumed,
    /// The debugger session ended with `q` (process killed, not reported).
    Quit,
    /// The debugger detached with `qd`.
    Detached,
    /// The debugger did not answer in time.
    TimedOut,
    /// `auto = 0` and the user did not say yes on the terminal (or there
    /// was none).
    Declined,
    /// The executable is in `[aedebug] exclude`.
    Excluded,
    /// The debugger could not be started (the runtime could not spawn it;
    /// a program that fails to exec is `launched` and exits 127).
    Failed,
}

impl JitOutcome {
    /// The stored (and printed) spelling; also what the crash runtime
    /// passes to `coroner dump -j` as `--jit-outcome=`. Stable: rows keep
    /// it, so a spelling is never changed or reused.
    pub fn as_str(self) -> &'static str {
        match self {
            JitOutcome::None => "none",
            JitOutcome::Launched => "launched",
            JitOutcome::Resumed => "resumed",
            JitOutcome::Quit => "quit",
            JitOutcome::Detached => "detached",
            JitOutcome::TimedOut => "timed-out",
            JitOutcome::Declined => "declined",
            JitOutcome::Excluded => "excluded",
            JitOutcome::Failed => "failed",
        }
    }

    /// Inverse of [`JitOutcome::as_str`].
    pub fn parse(s: &str) -> Option<JitOutcome> {
        [
            JitOutcome::None,
            JitOutcome::Launched,
            JitOutcome::Resumed,
            JitOutcome::Quit,
            JitOutcome::Detached,
            JitOutcome::TimedOut,
            JitOutcome::Declined,
            JitOutcome::Excluded,
            JitOutcome::Failed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One dump file of a report: a plain file in the store's folder, named
/// by file name only (see [`check_dump_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DumpFile {
    pub name: String,
    /// `"minidump"`, `"core"` or `"core.zst"`; stored as given.
    pub format: String,
    /// Minidump level (`mini`, `mini-plus`, `full`) when there is one.
    pub level: Option<String>,
    pub bytes: u64,
    pub truncated: bool,
}

/// A report as the writer hands it in. Every string may be hostile: it is
/// stored as given and never interpreted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewReport {
    /// Seconds since the epoch.
    pub time: i64,
    pub time_nsec: u32,
    pub tier: Tier,
    pub host: String,
    pub boot_id: String,
    /// Full executable path as the kernel gave it (lossy UTF-8).
    pub exe: String,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub cwd: Option<String>,
    pub pid: u32,
    pub tid: u32,
    /// `/proc/PID/stat` field 22 (start time in clock ticks since boot).
    pub start_time: u64,
    pub uid: u32,
    pub gid: u32,
    pub signal: i32,
    pub si_code: i32,
    pub fault_addr: Option<u64>,
    pub cgroup: Option<String>,
    pub unit: Option<String>,
    /// The pid namespace id when the process was not in the initial one.
    pub container: Option<String>,
    pub dumpable: Option<u8>,
    /// setuid / `AT_SECURE` and the like: the dump is not for the user.
    pub sensitive: bool,
    pub jit: JitOutcome,
    /// False for a `q` debugger session, as Windows does.
    pub reported: bool,
    pub signature: Option<String>,
    pub bucket: Option<String>,
    pub analysis_json: Option<String>,
    pub dumps: Vec<DumpFile>,
    pub truncated: bool,
    /// Reports of this executable suppressed by the rate limit since the
    /// previous recorded one.
    pub suppressed_before: u64,
    /// Soft errors and log lines gathered while writing the report.
    pub notes: Vec<String>,
}

impl NewReport {
    /// A report of `tier` at `time` (seconds since the epoch) with every
    /// other field empty, zero or absent, `jit` none and `reported` true;
    /// writers fill in what they know with struct update syntax.
    pub fn new(tier: Tier, time: i64) -> NewReport {
        NewReport {
            time,
            time_nsec: 0,
            tier,
            host: String::new(),
            boot_id: String::new(),
            exe: String::new(),
            comm: String::new(),
            cmdline: Vec::new(),
            cwd: None,
            pid: 0,
            tid: 0,
            start_time: 0,
            uid: 0,
            gid: 0,
            signal: 0,
            si_code: 0,
            fault_addr: None,
            cgroup: None,
            unit: None,
            container: None,
            dumpable: None,
            sensitive: false,
            jit: JitOutcome::None,
            reported: true,
            signature: None,
            bucket: None,
            analysis_json: None,
            dumps: Vec::new(),
            truncated: false,
            suppressed_before: 0,
            notes: Vec::new(),
        }
    }
}

/// A stored report: its id and the [`NewReport`] it was stored from (its
/// fields read through `Deref`: `report.exe`). Serialized flat, the id
/// first, as one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub id: ReportId,
    #[serde(flatten)]
    pub report: NewReport,
}

impl std::ops::Deref for Report {
    type Target = NewReport;
    fn deref(&self) -> &NewReport {
        &self.report
    }
}

impl std::ops::DerefMut for Report {
    fn deref_mut(&mut self) -> &mut NewReport {
        &mut self.report
    }
}

impl Report {
    /// The report without its id (to copy it into another store, or to
    /// compare it with what was inserted).
    pub fn to_new(&self) -> NewReport {
        self.report.clone()
    }

    /// The last `/`-separated part of `exe` (all of it when there is none).
    pub fn exe_basename(&self) -> &str {
        basename(&self.exe)
    }
}

/// The last `/`-separated part of a path string.
pub(crate) fn basename(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// Which reports `list` and `buckets` return. Every field left `None`
/// matches everything. Values are compared as data, never as patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Matches the full exe path, its basename, or `comm`.
    pub exe: Option<String>,
    pub signal: Option<i32>,
    /// Reports at or after this time (epoch seconds).
    pub since: Option<i64>,
    /// Bucket prefix.
    pub bucket: Option<String>,
    pub tier: Option<Tier>,
    /// At most this many rows (reports for `list`, buckets for `buckets`).
    pub limit: Option<usize>,
}

/// One row of the grouped view: reports sharing a bucket (or, for reports
/// not analysed yet, sharing an executable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BucketSummary {
    pub bucket: Option<String>,
    /// Signature of the newest report of the group.
    pub signature: Option<String>,
    /// Executable of the newest report of the group.
    pub exe: String,
    pub count: u64,
    pub first_time: i64,
    pub last_time: i64,
    pub newest: ReportId,
}

/// Rate limits, checked before any dump is written. A burst of 0 means
/// unlimited; an interval of 0 turns rate limiting off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub interval_secs: u64,
    /// Reports per executable per interval.
    pub per_exe_burst: u32,
    /// Reports of all executables together per interval.
    pub global_burst: u32,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            interval_secs: 60,
            per_exe_burst: 10,
            global_burst: 100,
        }
    }
}

/// What [`crate::Store::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Admission {
    /// Write the report; put `suppressed_before` into it.
    Record { suppressed_before: u64 },
    /// Write nothing; this executable's flood has reached `suppressed`.
    Suppress { suppressed: u64 },
}

/// Retention (WER `DumpCount`, systemd `MaxUse` / `KeepFree`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Reports kept per executable; 0 = unlimited.
    pub count_per_exe: u32,
    /// Per-executable counts over `count_per_exe`, by basename
    /// (`[localdumps.apps.NAME] count`); 0 = unlimited.
    pub count_for: std::collections::BTreeMap<String, u32>,
    /// Upper bound on the bytes of all dump files in the folder.
    pub max_use: Option<u64>,
    /// Bytes that must stay free on the folder's file system.
    pub keep_free: Option<u64>,
}

/// What one [`crate::Store::gc`] run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcOutcome {
    pub reports_removed: usize,
    pub files_removed: usize,
    pub bytes_freed: u64,
    /// What could not be done (files left, limits that could not be met).
    pub problems: Vec<String>,
}

/// What [`crate::Store::delete`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub id: Option<ReportId>,
    /// Names of the dump files unlinked.
    pub files: Vec<String>,
    /// Bytes of the regular files among them.
    pub bytes: u64,
    /// Files left in place and why (a directory, still used by another
    /// report, an unlink error). The row is gone regardless.
    pub problems: Vec<String>,
}

/// Accept a dump file name only if it is one plain, visible name inside
/// the folder: not empty, no `/`, no NUL, not `.`/`..`, not starting with
/// `.` (the store's own files and temporary files start with a dot or are
/// `reports.db*`, which is refused too).
pub fn check_dump_name(name: &str) -> Result<(), StoreError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains('\0') {
        "contains NUL"
    } else if name == "." || name == ".." {
        "is a directory reference"
    } else if name.starts_with('.') {
        "starts with '.'"
    } else if name.starts_with(crate::DB_NAME) {
        "is the report database"
    } else {
        return Ok(());
    };
    Err(StoreError::BadName {
        name: name.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accepted_and_refused() {
        for ok in ["core.1234.zst", "myapp-240101-120000.dmp", "a b", "ü\u{1b}"] {
            assert!(check_dump_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a/b",
            "/etc/passwd",
            "a\0b",
            ".",
            "..",
            ".hidden",
            "reports.db",
            "reports.db-wal",
        ] {
            match check_dump_name(bad) {
                Err(StoreError::BadName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        for t in [Tier::Kernel, Tier::Runtime, Tier::OnDemand] {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
        }
        for j in [
            JitOutcome::None,
            JitOutcome::Launched,
            JitOutcome::Resumed,
            JitOutcome::Quit,
            JitOutcome::Detached,
            JitOutcome::TimedOut,
            JitOutcome::Declined,
            JitOutcome::Excluded,
            JitOutcome::Failed,
        ] {
            assert_eq!(JitOutcome::parse(j.as_str()), Some(j));
        }
        assert_eq!(Tier::parse("Kernel"), None);
        assert_eq!(
            serde_json::to_string(&Tier::OnDemand).unwrap(),
            "\"on-demand\""
        );
        assert_eq!(
            serde_json::to_string(&JitOutcome::TimedOut).unwrap(),
            "\"timed-out\""
        );
    }

    #[test]
    fn report_id_prints_and_parses_as_a_plain_number() {
        assert_eq!(ReportId(42).to_string(), "42");
        assert_eq!("42".parse::<ReportId>().unwrap(), ReportId(42));
        assert!("x".parse::<ReportId>().is_err());
        assert_eq!(serde_json::to_string(&ReportId(7)).unwrap(), "7");
    }

    #[test]
    fn basename_of_paths() {
        assert_eq!(basename("/usr/bin/cat"), "cat");
        assert_eq!(basename("cat"), "cat");
        assert_eq!(basename("/usr/bin/"), "");
    }

    #[test]
    fn default_rate_limits() {
        let d = RateLimits::default();
        assert_eq!(
            (d.interval_secs, d.per_exe_burst, d.global_burst),
            (60, 10, 100)
        );
    }
}
