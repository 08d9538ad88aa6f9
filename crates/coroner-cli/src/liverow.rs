//! The report-store row of a crash the live tier handles (the runtime's
//! LocalDumps step, `coroner dump -j`, and a JIT debugger session that ends
//! with `q`): what `/proc/PID` says about the still-live process, read while
//! it is there, plus the exception when one is known.
//!
//! Must not: decide the JIT outcome or the dumps (the callers know them),
//! or run as anyone but the crashing user (it reads the user's own process).

use coroner_store::{NewReport, Tier};
use coroner_types::{Pid, SigInfo, Tid};

/// A row for `pid` as it is now, timed now, with the exception's thread,
/// signal, si_code and fault address (the main thread and none of the
/// others when `None`).
pub fn live_process_row(pid: Pid, exception: Option<(Tid, &SigInfo)>, tier: Tier) -> NewReport {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let status = coroner_proc::procfs::read_status(pid).ok();
    let exe = coroner_proc::procfs::exe_path(pid)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let cmdline = coroner_proc::procfs::read_proc_file(pid, "cmdline")
        .map(|c| {
            c.split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(lossy)
                .collect()
        })
        .unwrap_or_default();
    let start_time = coroner_proc::procfs::read_proc_file(pid, "stat")
        .ok()
        .and_then(|s| coroner_proc::procfs::parse_stat(&s).ok())
        .map_or(0, |(_, t)| t);
    let comm = coroner_proc::procfs::comm(pid)
        .map(|c| lossy(&c))
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut row = NewReport {
        time_nsec: now.subsec_nanos(),
        host,
        boot_id: coroner_proc::procfs::boot_id(),
        exe,
        comm,
        cmdline,
        cwd: std::fs::read_link(format!("/proc/{}/cwd", pid.0))
            .ok()
            .map(|p| p.display().to_string()),
        pid: pid.0 as u32,
        tid: pid.0 as u32,
        start_time,
        uid: status.as_ref().map_or(0, |s| s.uid[0]),
        gid: status.as_ref().map_or(0, |s| s.gid[0]),
        ..NewReport::new(tier, now.as_secs() as i64)
    };
    if let Some((tid, si)) = exception {
        set_exception(&mut row, tid, si);
    }
    row
}

/// The exception's thread, signal, si_code and fault address in `row`.
pub fn set_exception(row: &mut NewReport, tid: Tid, si: &SigInfo) {
    row.tid = tid.0 as u32;
    row.signal = si.signo();
    row.si_code = si.code();
    row.fault_addr = si.fault_address();
}
