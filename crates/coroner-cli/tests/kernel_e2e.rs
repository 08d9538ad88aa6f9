//! The kernel tier for real: `coroner install --system` sets the host's
//! `kernel.core_pattern`, an unmodified dynamic and a static program crash,
//! the kernel runs `coroner handler`, and the store rows and dumps are
//! checked (gdb reads the core, lldb the minidump); `coroner uninstall
//! --system` then restores `core_pattern` byte for byte.
//!
//! This is the one test that touches global state. It is alone in its test
//! binary (cargo runs test binaries one after another), saves
//! `core_pattern` and `core_pipe_limit` first and puts them back on every
//! exit path (a guard's `Drop`, which also runs when an assertion fails).
//! It needs root; elsewhere it says so and passes.

mod common;

use common::sysctl::{run, trim_nl, Restore, PATTERN, PIPE_LIMIT};
use common::{coroner, crasher, tool};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A static C program that writes through a null pointer in `crash_here`.
fn static_crasher(dir: &Path) -> PathBuf {
    let src = dir.join("static_crash.c");
    std::fs::write(
        &src,
        "__attribute__((noinline)) void crash_here(volatile int *p) { *p = 42; }\n\
         int main(void) { crash_here((volatile int *)0); return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("static_crash");
    run(Command::new("gcc")
        .args(["-static", "-g", "-O0", "-o"])
        .arg(&exe)
        .arg(&src));
    exe
}

#[test]
fn installed_handler_collects_real_crashes_and_uninstall_restores_core_pattern() {
    if coroner_sys::uids().1 != 0 {
        eprintln!("SKIP: the kernel-tier end-to-end test needs root (it sets kernel.core_pattern)");
        return;
    }
    let saved = Restore::save();
    let t = tempfile::tempdir().unwrap();
    // The kernel runs the handler as root: it must live where only root can
    // replace it, so install a copy into the (root-owned, 0700) temp dir.
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let handler = bin.join("coroner");
    std::fs::copy(coroner(), &handler).unwrap();
    let folder = t.path().join("dumps");
    let config = t.path().join("coroner.toml");
    std::fs::write(
        &config,
        format!(
            "[localdumps]\nfolder = \"{}\"\ntype = [\"mini\", \"core\"]\n[kernel]\nstate_dir = \"{}\"\nkeep_free = 0\n",
            folder.display(),
            t.path().join("state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = run(Command::new(&handler)
        .args(["install", "--system", "--config"])
        .arg(&config));
    let pattern = std::fs::read(PATTERN).unwrap();
    let expected = format!(
        "|{} handler --config={}",
        handler.display(),
        config.display()
    );
    assert!(
        pattern.starts_with(expected.as_bytes()),
        "{}\n{}",
        String::from_utf8_lossy(&pattern),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(trim_nl(&std::fs::read(PIPE_LIMIT).unwrap()), b"0");

    // An unmodified dynamic program and a static one crash.
    let static_exe = static_crasher(t.path());
    let mut crashed = Vec::new();
    for (exe, args, function) in [
        (crasher(), vec!["segv-null"], "crash_segv_null"),
        (static_exe.clone(), vec![], "crash_here"),
    ] {
        let st = Command::new(&exe).args(&args).status().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGSEGV), "{exe:?}");
        // With core_pipe_limit set the kernel waits for the handler before
        // the crashed process is reaped: its row is there now.
        assert!(st.core_dumped(), "{exe:?}: the kernel reports no core");
        crashed.push((exe, function));
    }

    // A container-like process: a private mount namespace where its binary
    // sits on a tmpfs the host never sees (the host's directory is empty).
    // The analysis finds it through /proc/PID/root.
    let ctr = t.path().join("ctr");
    std::fs::create_dir(&ctr).unwrap();
    let in_ctr = ctr.join("crasher");
    let unshared = tool("unshare")
        && Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if unshared {
        let script = format!(
            "mount -t tmpfs none {0} && cp {1} {0}/crasher && exec {0}/crasher segv-null",
            ctr.display(),
            crasher().display()
        );
        let st = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .status()
            .unwrap();
        assert_eq!(st.signal(), Some(libc::SIGSEGV), "container crash");
        assert!(
            !in_ctr.exists(),
            "the host must not see the container's binary"
        );
    }

    let store = coroner_store::Store::open(&folder).unwrap();
    let rows = store.list(&coroner_store::Filter::default()).unwrap();
    assert_eq!(rows.len(), 2 + usize::from(unshared), "{rows:#?}");
    if unshared {
        let r = rows
            .iter()
            .find(|r| Path::new(&r.exe) == in_ctr)
            .unwrap_or_else(|| panic!("no row for the container crash: {rows:#?}"));
        assert!(
            r.signature
                .as_deref()
                .unwrap_or("")
                .contains("crash_segv_null"),
            "symbolized through the container's root: {:?}",
            r.signature
        );
    }
    for (exe, function) in &crashed {
        let r = rows
            .iter()
            .find(|r| Path::new(&r.exe) == exe.as_path())
            .unwrap_or_else(|| panic!("no row for {exe:?}: {rows:#?}"));
        assert_eq!((r.signal, r.si_code), (libc::SIGSEGV, 1), "SEGV_MAPERR");
        assert_eq!(r.fault_addr, Some(0));
        assert_eq!(r.tier, coroner_store::Tier::Kernel);
        assert!(
            r.signature.as_deref().unwrap_or("").contains(function),
            "{:?}",
            r.signature
        );
        let core = r.dumps.iter().find(|d| d.format == "core").unwrap();
        let dmp = r.dumps.iter().find(|d| d.format == "minidump").unwrap();
        let core = folder.join(&core.name);
        let dmp = folder.join(&dmp.name);
        if tool("gdb") {
            let out = run(Command::new("gdb")
                .args(["-batch", "-nx", "-ex", "bt"])
                .arg(exe)
                .arg(&core));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(function), "gdb bt:\n{text}");
        }
        if tool("lldb") {
            let out = run(Command::new("lldb")
                .args(["--batch", "--no-lldbinit", "-c"])
                .arg(&dmp)
                .args(["-o", "bt"]));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("SIGSEGV") || text.contains("signal"),
                "lldb:\n{text}"
            );
        }
        let dump = minidump::Minidump::read_path(&dmp).unwrap();
        let exc: minidump::MinidumpException = dump.get_stream().unwrap();
        assert_eq!(
            exc.raw.exception_record.exception_code,
            libc::SIGSEGV as u32
        );
    }

    saved.check_uninstall_restores(&handler, &config);
}
