//! Links libgcc's unwinder into libcoroner.so statically instead of
//! depending on `libgcc_s.so.1`, as `gcc -static-libgcc` does.
//!
//! Why: the library is preloaded into every process, and loading
//! `libgcc_s.so.1` costs each of them one more object and its constructor,
//! which runs CPUID (slow under a hypervisor): 90 to 120 µs per process
//! start on our KVM machine (docs/benchmarks.md), against a budget of 100.
//! Rust's std names `-lgcc_s` itself, so the usual
//! `-static-libgcc` has no effect; instead this script puts gcc's
//! `libgcc_eh.a` under the name `libgcc_s.a` in a directory searched before
//! the system's, where the linker takes it for `-lgcc_s`. Its symbols stay
//! local to the library (the cdylib exports only the C API and the
//! interposers).
//!
//! Anything unexpected (no gcc, another target, no `libgcc_eh.a`) leaves
//! the ordinary dynamic link, with a warning.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let bits32 = match target.as_str() {
        "x86_64-unknown-linux-gnu" => false,
        "i686-unknown-linux-gnu" => true,
        _ => return,
    };
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut ask = Command::new(&cc);
    if bits32 {
        ask.arg("-m32");
    }
    let found = ask
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(libgcc_eh) = found else {
        println!("cargo:warning=libgcc_eh.a not found: libcoroner.so links libgcc_s.so.1 (slower process start)");
        return;
    };
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("static-libgcc");
    std::fs::create_dir_all(&dir).expect("creating OUT_DIR/static-libgcc");
    let link = dir.join("libgcc_s.a");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libgcc_eh, &link).expect("linking libgcc_s.a to libgcc_eh.a");
    println!("cargo:rustc-link-search=native={}", dir.display());
}
