#!/usr/bin/env bash
# The main job, end to end: build coroner, crash a real program under it,
# write the dump at the moment of the crash, and analyze it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p coroner-cli -p coroner-crashers
out=$(mktemp -d "${TMPDIR:-/tmp}/coroner-demo.XXXXXX")
echo "## 1. crash: crasher segv-null, watched by coroner (dump on unhandled signal)"
set +e
target/release/coroner dump -e -x "$out" target/release/crasher segv-null
status=$?
set -e
echo "(the program exited with status $status, as without coroner: 128 + SIGSEGV = 139)"
dump=$(ls "$out"/*.dmp)
echo
echo "## 2. analysis of $dump"
target/release/coroner analyze "$dump"
echo
echo "## 3. a live dump of a running process (-ma) and its analysis"
coproc LIVE { target/release/crasher live 64 4 ; }
read -r _ pid _ <&"${LIVE[0]}"
target/release/coroner dump -ma "$pid" "$out"
target/release/coroner analyze "$(ls -t "$out"/crasher_"$pid"_*.dmp | head -1)" | head -30
kill "$pid"
echo
echo "dumps are in $out"
