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

/// The plan beside `cfg` (what the runtime reads instead of the TOML), if
/// it was compiled from the file as it is now; its debugger's program.
fn fresh_plan_debugger(cfg: &Path) -> Option<Option<String>> {
    use coroner_config::plan::{plan_path, PlanView, Role, Stamp};
    let plan = std::fs::read(plan_path(cfg)).ok()?;
    let text = std::fs::read(cfg).ok()?;
    let view = PlanView::parse(&plan)?;
    view.compiled_from(&[Stamp::of(Role::Override, &text)])
        .then(|| {
            view.aedebug
                .debugger
                .and_then(|d| d.program())
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
}

/// The installers and `config set` recompile the plan, so the first
/// process after them does not parse the TOML; a file uninstalled down to
/// nothing takes its plan with it.
#[test]
fn installers_and_config_set_keep_the_plan_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("coroner.toml");
    std::fs::write(&cfg, ORIGINAL).unwrap();
    coroner_ok(&["dbg", "-I"], &cfg);
    let me = coroner().canonicalize().unwrap();
    assert_eq!(
        fresh_plan_debugger(&cfg),
        Some(Some(me.display().to_string()))
    );
    coroner_ok(&["config", "set", "aedebug.debugger", "lldb -p %ld"], &cfg);
    assert_eq!(fresh_plan_debugger(&cfg), Some(Some("lldb".into())));
    coroner_ok(&["dump", "-u"], &cfg);
    assert_eq!(fresh_plan_debugger(&cfg).map(|_| ()), Some(()));
    let missing = dir.path().join("new.toml");
    coroner_ok(&["dump", "-i", dir.path().to_str().unwrap()], &missing);
    assert!(fresh_plan_debugger(&missing).is_some());
    coroner_ok(&["dump", "-u"], &missing);
    assert!(!missing.exists());
    assert!(!coroner_config::plan::plan_path(&missing).exists());
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

/// `install --jit --system` only knew one library, so 32-bit programs
/// ignored the preload ("wrong ELF class"). A `$LIB` entry names one build
/// per class; both loaders must find theirs through it, or nothing is
/// written.
#[test]
fn preload_install_of_a_lib_token_entry_serves_both_classes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.c");
    // It needs libc, as the runtime does: the loader lists (and preloads
    // for) dynamic objects only.
    std::fs::write(
        &src,
        "#include <stdio.h>\nvoid coroner_probe(void) { puts(\"probe\"); }\n",
    )
    .unwrap();
    let cc = |out: &Path, extra: &[&str]| {
        Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
            .args(["-shared", "-fPIC", "-o"])
            .arg(out)
            .arg(&src)
            .args(extra)
            .status()
            .is_ok_and(|s| s.success())
    };
    let (l64, l32) = (dir.path().join("l64.so"), dir.path().join("l32.so"));
    assert!(cc(&l64, &[]));
    if !cc(&l32, &["-m32"]) {
        eprintln!("SKIP: a C compiler that links -m32 (gcc-multilib) is missing");
        return;
    }
    // The expansions of $LIB `coroner run` knows, each with its class's build.
    let canon = |p: &str| std::fs::canonicalize(p).ok();
    let lib_is_64 = canon("/lib64").is_some() && canon("/lib64") == canon("/lib");
    let tree = dir.path().join("tree");
    let place = |sub: &str, from: &Path| {
        std::fs::create_dir_all(tree.join(sub)).unwrap();
        std::fs::copy(from, tree.join(sub).join("libcoroner.so")).unwrap();
    };
    for sub in ["lib/x86_64-linux-gnu", "lib64"] {
        place(sub, &l64);
    }
    for sub in ["lib/i386-linux-gnu", "lib32"] {
        place(sub, &l32);
    }
    place("lib", if lib_is_64 { &l64 } else { &l32 });
    let entry = format!("{}/$LIB/libcoroner.so", tree.display());

    let preload = dir.path().join("ld.so.preload");
    let before = "/usr/lib/other/libkeep.so\n";
    std::fs::write(&preload, before).unwrap();
    let run = |verb: &str| {
        Command::new(coroner())
            .args([verb, "--jit", "--system", "--preload-file"])
            .arg(&preload)
            .args(["--library", &entry])
            .output()
            .unwrap()
    };
    let out = run("install");
    assert!(out.status.success(), "{out:?}");
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("in 32-bit ones"), "{msg}");
    assert_eq!(
        std::fs::read_to_string(&preload).unwrap(),
        format!("{before}{entry}\n")
    );
    let out = run("install");
    assert!(String::from_utf8_lossy(&out.stdout).contains("already listed"));
    assert!(run("uninstall").status.success());
    assert_eq!(std::fs::read_to_string(&preload).unwrap(), before);

    // No i686 build where the 32-bit loader looks: refused, file untouched.
    for sub in ["lib/i386-linux-gnu", "lib32", "lib"] {
        let p = tree.join(sub).join("libcoroner.so");
        if std::fs::read(&p).unwrap() == std::fs::read(&l32).unwrap() {
            std::fs::remove_file(p).unwrap();
        }
    }
    let out = run("install");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("32-bit loader"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&preload).unwrap(), before);
}
