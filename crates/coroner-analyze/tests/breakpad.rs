//! A minidump written by someone else: `minidump-writer`, the Rust rewrite
//! of Breakpad's Linux writer, dumps a live crasher; our analyzer must read
//! it: every thread, modules with build-ids, symbolized frames.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn breakpad_format_dump_of_a_live_process() {
    let crasher = coroner_crashers::crasher_path().expect("crasher");
    let mut child = Command::new(crasher)
        .args(["live", "8", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = coroner_crashers::parse_ready_line(&line).expect("ready line");
    let pid = ready.pid as i32;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("breakpad.dmp");
    {
        let mut file = std::fs::File::create(&path).unwrap();
        minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid)
            .write(&mut file)
            .expect("minidump-writer dump");
    }
    drop(child.stdin.take());
    assert!(
        child.wait().unwrap().success(),
        "the process runs on after the dump"
    );

    let report = coroner_analyze::analyze_path(&path, &Default::default()).expect("analyze");
    assert_eq!(report.dump.format, "minidump");
    assert_eq!(report.threads.len(), 3, "main + 2 workers");
    let exc = report.exception.as_ref().expect("exception stream");
    assert!(
        exc.dump_requested,
        "Breakpad's DUMP_REQUESTED code is recognised"
    );
    let crasher_module = report
        .modules
        .iter()
        .find(|m| m.name == "crasher")
        .expect("crasher module");
    assert!(crasher_module.build_id.is_some());
    let all: Vec<&str> = report
        .threads
        .iter()
        .flat_map(|t| t.frames.iter())
        .filter_map(|f| f.function.as_deref())
        .collect();
    assert!(all.contains(&"live_main_wait"), "{all:?}");
    assert!(all.contains(&"live_worker_park"), "{all:?}");
}
