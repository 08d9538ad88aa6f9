#!/usr/bin/env bash
# Installs what coroner's tests and benchmarks need on a fresh Debian machine:
# the Debian tools the interop tests drive (gdb, lldb, procdump, binutils,
# C/C++ compilers with 32-bit multilib, systemd-socket-activate), the i686
# Rust target and minidump-stackwalk from crates.io. Idempotent: skips
# what is already there.
set -euo pipefail

need_pkgs=()
for pkg in gdb lldb procdump binutils gcc g++ make procps libc6-dbg libc6-dev systemd gcc-multilib g++-multilib; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${need_pkgs[*]} (run as root to install)" >&2
        exit 1
    fi
    echo "setup: installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The i686 build of the runtime (32-bit processes, [aedebug.i386]).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx i686-unknown-linux-gnu; then
    echo "setup: adding the i686-unknown-linux-gnu Rust target"
    rustup target add i686-unknown-linux-gnu || echo "setup: could not add the i686 target; the 32-bit runtime test will say so and skip" >&2
fi

if ! command -v minidump-stackwalk >/dev/null 2>&1; then
    echo "setup: installing minidump-stackwalk (cargo install)"
    cargo install --locked --quiet minidump-stackwalk
fi
