//! The 32-bit runtime (`[aedebug.i386]`, the Wow6432Node key): libcoroner.so
//! built for i686 and preloaded into a 32-bit C program that crashes; the
//! i386 debugger is the one launched, with a 32-bit JIT block (machine 3,
//! `%p` of 8 hex digits, siginfo and ucontext in the i386 layout). The
//! 64-bit build with the same configuration launches the other debugger.
//!
//! Needs the i686 Rust target (`rustup target add i686-unknown-linux-gnu`)
//! and a C compiler that can link `-m32` (Debian: gcc-multilib); without
//! them the test passes with a SKIP line naming what is missing, or fails
//! when `CORONER_REQUIRE_I386=1`.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

const TRIPLE: &str = "i686-unknown-linux-gnu";

fn missing(what: &str) -> bool {
    if std::env::var_os("CORONER_REQUIRE_I386").is_some_and(|v| v == "1") {
        panic!("{what} is required (CORONER_REQUIRE_I386=1)");
    }
    eprintln!("SKIP: {what} is missing (scripts/setup.sh installs it)");
    true
}

fn compile(src: &Path, out: &Path, extra: &[&str]) -> bool {
    Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-O0", "-g", "-Wall", "-Wextra", "-Werror"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .is_ok_and(|s| s.success())
}

/// libcoroner.so for i686, built with the cargo running the tests.
fn library_i686() -> PathBuf {
    common::cargo_build(
        common::PRELOAD_MANIFEST,
        &["-p", "coroner-preload", "--lib", "--target", TRIPLE],
        &format!("libcoroner.so for {TRIPLE}"),
    );
    let dir = common::profile_dir().0;
    dir.parent()
        .unwrap()
        .join(TRIPLE)
        .join(dir.file_name().unwrap())
        .join("libcoroner.so")
}

/// libcoroner.so and the jit_probe example for this host, and `coroner`
/// in target/<profile>, where both builds of the library find it as their
/// plan compiler (they have no TOML parser).
fn library_host() -> (PathBuf, PathBuf) {
    common::build_coroner();
    common::cargo_build(
        common::PRELOAD_MANIFEST,
        &["-p", "coroner-preload", "--lib", "--example", "jit_probe"],
        "libcoroner.so",
    );
    let dir = common::profile_dir().0;
    (
        dir.join("libcoroner.so"),
        dir.join("examples").join("jit_probe"),
    )
}

fn fields(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `program` with `lib` preloaded, `config`, core files off and the
/// report line on fd 9; returns the output and the report's fields.
fn run(
    dir: &Path,
    lib: &Path,
    config: &Path,
    program: &Path,
) -> (Output, BTreeMap<String, String>) {
    let report = dir.join("report");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -c 0; r=$1; shift; exec \"$@\" 9>\"$r\"")
        .arg("sh")
        .arg(&report)
        .arg(program)
        .env("LD_PRELOAD", lib)
        .env("CORONER_CONFIG", config)
        .env("CORONER_RUN_FD", "9")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap();
    (out, fields(&text))
}

#[test]
fn a_32_bit_process_launches_the_i386_debugger_with_a_32_bit_block() {
    let sysroot_lib = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "target-libdir", "--target", TRIPLE])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_std = sysroot_lib
        .and_then(|d| std::fs::read_dir(d).ok())
        .is_some_and(|mut it| {
            it.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd-")))
        });
    if !has_std && missing("the i686-unknown-linux-gnu Rust target") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/null.c");
    let null32 = dir.path().join("null32");
    if !compile(&src, &null32, &["-m32"]) && missing("a C compiler that links -m32 (gcc-multilib)")
    {
        return;
    }
    let null64 = dir.path().join("null64");
    assert!(compile(&src, &null64, &[]));
    let (lib64, probe) = library_host();
    let lib32 = library_i686();

    let out64 = dir.path().join("probe64");
    let out32 = dir.path().join("probe32");
    let config = dir.path().join("coroner.toml");
    std::fs::write(
        &config,
        format!(
            "[aedebug]\ndebugger = \"'{p}' '{}' %ld %ld %p\"\n[aedebug.i386]\ndebugger = \"'{p}' '{}' %ld %ld %p\"\n",
            out64.display(),
            out32.display(),
            p = probe.display(),
        ),
    )
    .unwrap();

    let (out, rep) = run(dir.path(), &lib32, &config, &null32);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid = fields(stdout.lines().next().unwrap())["pid"].clone();
    assert!(
        !out64.exists(),
        "the 64-bit debugger was launched for a 32-bit process"
    );
    let p = fields(&std::fs::read_to_string(&out32).expect("the i386 debugger ran"));
    assert_eq!(p["pid"], pid);
    assert_eq!(p["tid"], pid);
    assert_eq!(p["machine"], "3", "EM_386");
    assert_eq!(p["size"], "40");
    assert_eq!(p["version"], "1");
    assert_eq!(p["block_digits"], "8", "%p is pointer-width: 8 hex digits");
    assert_eq!(p["eventfd"], "true");
    assert_eq!((p["signo"].as_str(), p["code"].as_str()), ("11", "1"));
    assert_eq!(p["si_addr"], "0x0");
    assert_eq!(p["pc"], p["ucontext_pc"], "block PC = ucontext EIP");
    assert!(u64::from_str_radix(p["pc"].trim_start_matches("0x"), 16).unwrap() <= u32::MAX as u64);
    assert_eq!(rep["signal"], "11");
    assert_eq!(rep["debugger"], "launched");

    // The same program and configuration, 64-bit: the other key.
    std::fs::remove_file(&out32).unwrap();
    let (out, rep) = run(dir.path(), &lib64, &config, &null64);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
    assert!(!out32.exists());
    let p = fields(&std::fs::read_to_string(&out64).expect("the 64-bit debugger ran"));
    assert_eq!(p["machine"], "62");
    assert_eq!(p["block_digits"], "16");
    assert_eq!(rep["debugger"], "launched");
}
