//! Live: dump a running `crasher live` child at every level with
//! `dump_live`, read each dump back with the `minidump` crate, and check the
//! child runs on afterwards.

use coroner_crashers::{crasher_path, parse_ready_line, LIVE_MARKER};
use coroner_dump::{dump_live, DumpError, DumpLevel, DumpOptions, NoProgress};
use coroner_proc::procfs;
use coroner_types::Pid;
use minidump::{
    Minidump, MinidumpMemory64List, MinidumpMemoryList, MinidumpModuleList, MinidumpThreadList,
    Module,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Child {
    child: std::process::Child,
    pid: Pid,
    marker: u64,
}

impl Drop for Child {
    fn drop(&mut self) {
        // EOF on stdin ends the crasher; then reap it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn spawn_live(mib: usize, threads: usize) -> Child {
    let mut child = Command::new(crasher_path().expect("crasher binary"))
        .args(["live", &mib.to_string(), &threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crasher");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = parse_ready_line(&line).unwrap_or_else(|| panic!("not a ready line: {line:?}"));
    assert_eq!(ready.threads, Some(threads));
    Child {
        child,
        pid: Pid(ready.pid as i32),
        marker: ready.marker.unwrap(),
    }
}

fn running(pid: Pid) -> bool {
    procfs::list_tasks(pid)
        .unwrap()
        .into_iter()
        .all(|t| !matches!(procfs::task_state(pid, t).unwrap(), 't' | 'T'))
}

#[test]
fn dump_live_child_at_every_level() {
    let c = spawn_live(8, 3);
    let tasks = procfs::list_tasks(c.pid).unwrap().len();
    assert_eq!(tasks, 4);
    let dir = tempfile::tempdir().unwrap();
    for level in [DumpLevel::Mini, DumpLevel::MiniPlus, DumpLevel::Full] {
        let dest = dir.path().join(format!("{level}.dmp"));
        let opts = DumpOptions {
            level,
            ..DumpOptions::default()
        };
        let stats = dump_live(c.pid, &dest, false, &opts, &NoProgress).unwrap();
        assert!(running(c.pid), "{level}: child left stopped");
        assert_eq!(stats.threads, tasks);
        assert!(stats.modules >= 2, "{level}: {} modules", stats.modules);

        assert!(
            !stats
                .soft_errors
                .iter()
                .any(|e| e.contains("LinuxDsoDebug")),
            "{level}: {:?}",
            stats.soft_errors
        );
        let dump = Minidump::read_path(&dest).unwrap();
        let modules = dump.get_stream::<MinidumpModuleList>().unwrap();
        assert!(modules
            .iter()
            .any(|m| m.code_file().ends_with("crasher") && m.code_identifier().is_some()));
        assert!(modules.iter().any(|m| m.code_file() == "linux-gate.so"));
        assert!(dump.get_raw_stream(0x4767_000A).is_ok(), "LinuxDsoDebug");
        let threads = dump.get_stream::<MinidumpThreadList>().unwrap();
        assert_eq!(threads.threads.len(), tasks);
        assert_eq!(threads.threads[0].raw.thread_id, c.pid.0 as u32);
        let memory = dump.get_memory().unwrap();
        for t in &threads.threads {
            assert!(
                t.stack_memory(&memory).is_some(),
                "{level}: no stack for {}",
                t.raw.thread_id
            );
        }
        let marker = memory
            .memory_at_address(c.marker)
            .and_then(|m| m.get_memory_at_address::<u64>(c.marker));
        match level {
            DumpLevel::Mini => {
                assert!(dump.get_stream::<MinidumpMemoryList>().is_ok());
                assert_eq!(marker, None);
            }
            _ => {
                assert!(dump.get_stream::<MinidumpMemory64List>().is_ok());
                assert_eq!(marker, Some(LIVE_MARKER), "{level}");
            }
        }
        // Refuses to replace without overwrite; replaces with it.
        assert!(matches!(
            dump_live(c.pid, &dest, false, &opts, &NoProgress),
            Err(DumpError::Exists { .. })
        ));
    }
    let dest = dir.path().join("mini.dmp");
    dump_live(c.pid, &dest, true, &DumpOptions::default(), &NoProgress).unwrap();
    assert!(running(c.pid));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn dump_live_missing_process_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.dmp");
    // Pid beyond pid_max: never exists.
    let err = dump_live(
        Pid(i32::MAX),
        &dest,
        false,
        &DumpOptions::default(),
        &NoProgress,
    );
    assert!(matches!(err, Err(DumpError::Proc { .. })), "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
