//! Test fixtures shared by the unit tests of this crate: a fully populated
//! report and its dump files on disk. Compiled only for tests; must not be
//! used by library code.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{basename, DumpFile, JitOutcome, NewReport, Report, ReportId, Tier};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A report with every field set, two dump files with unique names.
pub(crate) fn sample(exe: &str, time: i64) -> NewReport {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = basename(exe).replace('/', "_");
    NewReport {
        time,
        time_nsec: 123_456_789,
        tier: Tier::Kernel,
        host: "buildhost".into(),
        boot_id: "0f1e2d3c-boot".into(),
        exe: exe.into(),
        comm: basename(exe).chars().take(15).collect(),
        cmdline: vec![exe.into(), "--flag".into(), "arg with space".into()],
        cwd: Some("/home/u".into()),
        pid: 4242,
        tid: 4243,
        start_time: 987_654,
        uid: 1000,
        gid: 100,
        signal: 11,
        si_code: 1,
        fault_addr: Some(0x10),
        cgroup: Some("/user.slice/app.scope".into()),
        unit: Some("app.service".into()),
        container: None,
        dumpable: Some(1),
        sensitive: false,
        jit: JitOutcome::None,
        reported: true,
        signature: None,
        bucket: None,
        analysis_json: None,
        dumps: vec![
            DumpFile {
                name: format!("{base}-{time}-{n}.dmp"),
                format: "minidump".into(),
                level: Some("mini".into()),
                bytes: 100,
                truncated: false,
            },
            DumpFile {
                name: format!("{base}-{time}-{n}.core.zst"),
                format: "core.zst".into(),
                level: None,
                bytes: 200,
                truncated: false,
            },
        ],
        truncated: false,
        suppressed_before: 0,
        notes: vec!["soft error: thread 4244 unreadable".into()],
    }
}

/// The stored form of `n` under `id`.
pub(crate) fn report_from(id: ReportId, n: NewReport) -> Report {
    Report { id, report: n }
}

/// Create the dump files of `n` in `folder`, each `bytes` long.
pub(crate) fn write_dumps(folder: &Path, n: &NewReport) {
    for d in &n.dumps {
        let f = std::fs::File::create(folder.join(&d.name)).unwrap();
        f.set_len(d.bytes).unwrap();
    }
}
