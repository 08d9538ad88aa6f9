//! `coroner dump PID` on a live 256 MiB, 8-thread process at every level,
//! read back with the `minidump` crate; the process is left as it was found;
//! bad targets get clear errors and leave no file.

mod common;

use common::*;
use coroner_crashers::{live_page_word, LIVE_MARKER, LIVE_PAGE};
use minidump::{
    Minidump, MinidumpMemory64List, MinidumpMemoryList, MinidumpThreadList, UnifiedMemoryList,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn dump(args: &[&str], pid: i32, path: &std::path::Path) -> std::process::Output {
    let out = Command::new(coroner())
        .arg("dump")
        .args(args)
        .arg(pid.to_string())
        .arg(path)
        .output()
        .unwrap();
    out
}

fn read_u64(mem: &UnifiedMemoryList, addr: u64) -> Option<u64> {
    let region = mem.memory_at_address(addr)?;
    region.get_memory_at_address::<u64>(addr)
}

#[test]
fn levels_round_trip_and_leave_the_process_running() {
    let live = Live::start(256, 8);
    let dir = tempfile::tempdir().unwrap();
    let tasks = live.task_count();
    assert_eq!(tasks, 9);
    let mut sizes = Vec::new();
    for (flag, full_memory) in [("-mm", false), ("-mp", true), ("-ma", true)] {
        let path = dir.path().join(format!("x{flag}.dmp"));
        let out = dump(&["-q", flag], live.pid, &path);
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(live.state(), 't', "{flag}: process left traced-stopped");
        assert_ne!(live.state(), 'T', "{flag}: process left stopped");
        let md = Minidump::read_path(&path).unwrap();
        let threads: MinidumpThreadList = md.get_stream().unwrap();
        assert_eq!(threads.threads.len(), tasks, "{flag}: thread count");
        let mem = if full_memory {
            let m: MinidumpMemory64List = md.get_stream().expect("Memory64List");
            UnifiedMemoryList::Memory64(m)
        } else {
            let m: MinidumpMemoryList = md.get_stream().expect("MemoryList");
            UnifiedMemoryList::Memory(m)
        };
        for t in &threads.threads {
            assert!(
                t.stack_memory(&mem).is_some(),
                "{flag}: no stack memory for thread {}",
                t.raw.thread_id
            );
        }
        let marker = read_u64(&mem, live.marker);
        if full_memory {
            assert_eq!(marker, Some(LIVE_MARKER), "{flag}: heap marker");
            let page = 200 * 1024 * 1024 / LIVE_PAGE;
            let addr = live.marker + (page * LIVE_PAGE) as u64 + 8;
            assert_eq!(
                read_u64(&mem, addr),
                Some(live_page_word(page)),
                "{flag}: heap page"
            );
        } else {
            assert_eq!(marker, None, "{flag}: a mini dump holds no heap");
        }
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    assert!(
        sizes[0] < sizes[1] && sizes[1] <= sizes[2],
        "sizes grow by level: {sizes:?}"
    );
    assert!(sizes[2] > 256 << 20);
    live.finish();
}

#[test]
fn a_stopped_process_stays_stopped() {
    let live = Live::start(8, 2);
    let dir = tempfile::tempdir().unwrap();
    let pid = live.pid;
    assert!(Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // The group stop is visible once every thread is in state T.
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .all(|t| {
                let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap();
                stat[stat.rfind(')').unwrap() + 2..].starts_with('T')
            })
    };
    let t0 = std::time::Instant::now();
    while !stopped() {
        assert!(
            t0.elapsed().as_secs() < 10,
            "SIGSTOP did not stop the process"
        );
        std::thread::yield_now();
    }
    let out = dump(&["-q", "--format", "core"], pid, &dir.path().join("s.core"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // After the detach each thread is woken to re-enter the group-stop the
    // kernel reinstated, so it passes briefly through `R` before `T`; a
    // process the dump resumed would never get back to `T` on its own.
    let t1 = std::time::Instant::now();
    while !stopped() {
        assert!(
            t1.elapsed().as_secs() < 10,
            "the dump resumed a stopped process"
        );
        std::thread::yield_now();
    }
    assert!(Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    live.finish();
}

#[test]
fn folder_gets_unique_names_and_never_overwrites() {
    let live = Live::start(8, 1);
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = dump(&["-q"], live.pid, dir.path());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let prefix = format!("crasher_{}_", live.pid);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&prefix) && n.ends_with(".dmp")),
        "{names:?}"
    );
    // An existing FILE is refused without -o, replaced with it.
    let file = dir.path().join(&names[0]);
    let before = std::fs::metadata(&file).unwrap().len();
    std::fs::write(&file, b"precious").unwrap();
    let out = dump(&["-q"], live.pid, &file);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    let out = dump(&["-q", "-o"], live.pid, &file);
    assert!(out.status.success());
    assert!(std::fs::metadata(&file).unwrap().len() >= before / 2);
    live.finish();
}

#[test]
fn bad_targets_are_named_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A pid that does not exist.
    let out = dump(&["-q"], 999_999_999, &dir.path().join("a.dmp"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("999999999") && err.contains("does not exist"),
        "{err}"
    );
    // Usage errors exit 2 and name the bad value.
    let out = Command::new(coroner())
        .args(["dump", "-mm", "-ma", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(coroner())
        .args(["dump", "pid1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pid1"));
    // A missing folder.
    let out = dump(
        &["-q"],
        std::process::id() as i32,
        &dir.path().join("no/such/"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn an_already_traced_process_is_refused_not_dumped_empty() {
    let live = Live::start(8, 2);
    let dir = tempfile::tempdir().unwrap();
    // Another tracer: `coroner dump -e PID` watches it; its stderr line
    // says when it has attached.
    let mut watcher = Command::new(coroner())
        .args(["dump", "-e", &live.pid.to_string()])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(watcher.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("watching process"), "{line}");
    let out = dump(&["-q"], live.pid, &dir.path().join("t.dmp"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already traced"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no dump written"
    );
    // The watcher dies; the kernel detaches it; the target runs on.
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    live.finish();
}
