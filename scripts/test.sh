#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the tools, builds, runs every
# test including the interop (gdb, lldb, minidump-stackwalk) and slow ones.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
# Interop tests fail (rather than skip) when a tool is missing.
export CORONER_REQUIRE_INTEROP=1
cargo build --workspace --all-targets --release
cargo test --workspace --release --no-fail-fast -- --include-ignored
