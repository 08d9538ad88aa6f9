#!/usr/bin/env bash
# JIT tier benchmark:
#  1. fault -> debugger running: a C program stamps CLOCK_MONOTONIC and
#     writes to NULL under the preloaded runtime; the configured "debugger"
#     stamps CLOCK_MONOTONIC first thing in main. Median of N crashes.
#  2. the cost the runtime adds to starting a process that does not crash:
#     `true` with and without LD_PRELOAD=libcoroner.so, interleaved (which of
#     the two runs first alternates: the second of a pair runs a little
#     slower), many runs: with no configuration file, and with a typical one
#     (a debugger and [localdumps] without a dumper: what `install --jit
#     --system` users have), read through its compiled plan (written beside
#     it by the first start); and that configuration with its plan deleted
#     before every start, so each one parses the TOML and writes the plan
#     again (the first start after an edit).
# usage: bench/jit.sh [CRASHES] [STARTS]     (defaults 50, 2000)
#   CORONER_BENCH_LIB=/path/libcoroner.so measures that build instead (e.g. a
#   copy of an older one, for a before/after figure).
set -euo pipefail
cd "$(dirname "$0")/.."
CRASHES=${1:-50}
STARTS=${2:-2000}
cargo build --release -q -p coroner-cli -p coroner-preload
W=$(mktemp -d "${TMPDIR:-/tmp}/coroner-jitbench.XXXXXX")
trap 'rm -rf "$W"' EXIT
# The library is measured from a fresh copy: on our KVM machine the same
# bytes cost up to 25 us more per start when mapped from an older file (its
# page-cache state; we did not pin down the mechanism), which would make a
# before/after comparison a comparison of files.
cp "${CORONER_BENCH_LIB:-$PWD/target/release/libcoroner.so}" "$W/libcoroner.so"
LIB=$W/libcoroner.so

cat > "$W/fault.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec); fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
C
cat > "$W/stamp.c" <<'C'
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    FILE *f = fopen(argv[1], "w");
    fprintf(f, "%lld %s %s %s\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec, argv[2], argv[3], argv[4]);
    fclose(f);
    return 0;  /* exits without signalling: the process then dies */
}
C
gcc -O2 -o "$W/fault" "$W/fault.c"
gcc -O2 -o "$W/stamp" "$W/stamp.c"
cat > "$W/coroner.toml" <<TOML
[aedebug]
debugger = "$W/stamp $W/stamp.out %ld %ld %p"
auto = 1
TOML
cat > "$W/typical.toml" <<TOML
[aedebug]
debugger = "gdb -p %ld"
auto = 1
[localdumps]
folder = "$W/dumps"
type = "mini"
TOML

python3 - "$W" "$LIB" "$CRASHES" "$STARTS" <<'PY'
import os, statistics as st, subprocess, sys, time
w, lib, crashes, starts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = dict(os.environ, LD_PRELOAD=lib, CORONER_CONFIG=f"{w}/coroner.toml")
lat = []
for i in range(crashes + 1):
    try: os.unlink(f"{w}/stamp.out")
    except FileNotFoundError: pass
    p = subprocess.run([f"{w}/fault"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.returncode == -11, p.returncode
    t0 = int(p.stdout.split()[0])
    t1 = int(open(f"{w}/stamp.out").read().split()[0])
    if i: lat.append((t1 - t0) / 1e6)
print(f"fault -> debugger running: median {st.median(lat):.3f} ms (min {min(lat):.3f}, max {max(lat):.3f}, n={len(lat)})")

def one(e, before=None):
    if before:
        before()
    t = time.perf_counter_ns()
    subprocess.run(["/bin/true"], env=e)
    return time.perf_counter_ns() - t
plain = dict(os.environ)
for k in ("LD_PRELOAD", "CORONER_CONFIG", "CORONER_RUN_FD"):
    plain.pop(k, None)
typical = f"{w}/typical.toml"
def no_plan():
    try: os.unlink(typical + ".plan")
    except FileNotFoundError: pass
for label, pre, before, n in (
    ("no configuration file", dict(plain, LD_PRELOAD=lib), None, starts),
    ("typical configuration", dict(plain, LD_PRELOAD=lib, CORONER_CONFIG=typical), None, starts),
    ("typical configuration, plan deleted before each start", dict(plain, LD_PRELOAD=lib, CORONER_CONFIG=typical), no_plan, max(starts // 4, 1)),
):
    a, b = [], []
    for i in range(n):
        if i % 2:
            b.append(one(pre, before)); a.append(one(plain))
        else:
            a.append(one(plain)); b.append(one(pre, before))
    ma, mb = st.median(a) / 1e3, st.median(b) / 1e3
    diffs = sorted((y - x) / 1e3 for x, y in zip(a, b))
    print(f"start of /bin/true, {label}: plain {ma:.1f} us, with libcoroner {mb:.1f} us, added median {st.median(diffs):.1f} us per start (n={n}, interleaved)")
PY
