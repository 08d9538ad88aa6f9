//! The AeDebug installers and the preload installer through the real CLI:
//! install → uninstall leaves the files byte-for-byte as before; twice is
//! sensible; someone else's change in between is not clobbered.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn coroner_ok(args: &[&str], config: &Path) -> String {
    let out = Command::new(coroner())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ORIGINAL: &str = "# site policy\n[aedebug]\ndebugger = \"gdb -p %ld\"  # ours\nauto = 0\n\n[localdumps]\nfolder = \"/var/crash\"\n";

#[test]
fn dbg_iae_then_dump_u_restores_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coroner.toml");
    std::fs::write(&cfg, ORIGINAL).unwrap();
    let msg = coroner_ok(&["dbg", "-iae"], &cfg);
    assert!(msg.contains("Set to:"), "{msg}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(" dbg -p %ld -e %ld -g\""), "{text}");
    assert!(text.contains("auto = 1"), "{text}");
    // Installing again keeps the original backup.
    let msg = coroner_ok(&["dbg", "-iaec", "-c .jdinfo"], &cfg);
    assert!(msg.contains("already installed"), "{msg}");
    assert!(std::fs::read_to_string(&cfg)
        .unwrap()
        .contains("-g -c .jdinfo\""));
    coroner_ok(&["dump", "-u"], &cfg);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), ORIGINAL);
    let msg = coroner_ok(&["dump", "-u"], &cfg);
    assert!(msg.contains("nothing to uninstall"), "{msg}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), ORIGINAL);
}

#[test]
fn dump_i_on_a_missing_file_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coroner.toml");
    coroner_ok(&["dump", "-i", dir.path().to_str().unwrap(), "-ma"], &cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(" dump -accepteula -ma -j "), "{text}");
    assert!(text.contains("%ld %ld %p"), "{text}");
    coroner_ok(&["dump", "-u"], &cfg);
    assert!(
        !cfg.exists(),
        "a file that did not exist does not exist again"
    );
}

#[test]
fn uninstall_leaves_someone_elses_debugger_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coroner.toml");
    std::fs::write(&cfg, ORIGINAL).unwrap();
    coroner_ok(&["dbg", "-I"], &cfg);
    coroner_ok(&["config", "set", "aedebug.debugger", "lldb -p %ld"], &cfg);
    let msg = coroner_ok(&["dump", "-u"], &cfg);
    assert!(
        msg.to_lowercase().contains("changed") || msg.contains("left"),
        "{msg}"
    );
    assert!(std::fs::read_to_string(&cfg)
        .unwrap()
        .contains("lldb -p %ld"));
}

#[test]
fn preload_install_and_uninstall_on_a_scratch_file() {
    let dir = tempfile::tempdir().unwrap();
    let preload = dir.path().join("ld.so.preload");
    let before = "/usr/lib/other/libkeep.so\n";
    std::fs::write(&preload, before).unwrap();
    let lib = dir.path().join("libcoroner.so");
    std::fs::copy(crasher().with_file_name("libcoroner.so"), &lib).expect("libcoroner.so built");
    let run = |verb: &str| {
        let out = Command::new(coroner())
            .args([verb, "--jit", "--system", "--preload-file"])
            .arg(&preload)
            .arg("--library")
            .arg(&lib)
            .output()
            .unwrap();
        assert!(out.status.success(), "{verb}: {out:?}");
    };
    run("install");
    run("install");
    let text = std::fs::read_to_string(&preload).unwrap();
    assert_eq!(text.matches("libcoroner.so").count(), 1, "{text}");
    assert!(text.contains("libkeep.so"));
    run("uninstall");
    assert_eq!(std::fs::read_to_string(&preload).unwrap(), before);
    // A relative library path is refused.
    let out = Command::new(coroner())
        .args(["install", "--jit", "--system", "--preload-file"])
        .arg(&preload)
        .args(["--library", "libcoroner.so"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&preload).unwrap(), before);
}
