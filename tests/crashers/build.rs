//! Compiles the C and C++ crash functions (`csrc/`) with debug info and frame
//! pointers and links them into the `crasher` binary only: the library target
//! (the table other crates' tests use) stays pure Rust with no native deps.

use std::env;
use std::path::PathBuf;

/// Flags every C/C++ part gets: debug info, frame pointers, warnings on.
fn base(build: &mut cc::Build) -> &mut cc::Build {
    build
        .debug(true)
        .flag("-fno-omit-frame-pointer")
        .flag("-Wall")
        .flag("-Wextra")
        // Never let a distribution default or CFLAGS strip the checks the
        // crash kinds rely on.
        .flag("-UNDEBUG")
        // Only the bin links these, by explicit path (see below).
        .cargo_metadata(false)
        .cargo_warnings(true)
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for src in ["csrc/crash_c.c", "csrc/crash_ssp.c", "csrc/crash_cxx.cpp"] {
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    // `assert(0)`.
    base(&mut cc::Build::new())
        .file("csrc/crash_c.c")
        .compile("coroner_crash_c");
    // `__stack_chk_fail`: its own translation unit so that only this code is
    // built with the canary on every function.
    base(&mut cc::Build::new())
        .file("csrc/crash_ssp.c")
        .flag("-fstack-protector-all")
        .flag("-U_FORTIFY_SOURCE")
        .compile("coroner_crash_ssp");
    // `std::terminate`.
    base(&mut cc::Build::new())
        .cpp(true)
        .flag("-std=c++17")
        .file("csrc/crash_cxx.cpp")
        .compile("coroner_crash_cxx");

    for lib in ["coroner_crash_c", "coroner_crash_ssp", "coroner_crash_cxx"] {
        let archive = out.join(format!("lib{lib}.a"));
        println!("cargo:rustc-link-arg-bins={}", archive.display());
    }
    println!("cargo:rustc-link-arg-bins=-lstdc++");
}
