#!/usr/bin/env bash
# JIT tier benchmark:
#  1. fault -> debugger running: a C program stamps CLOCK_MONOTONIC and
#     writes to NULL under the preloaded runtime; the configured "debugger"
#     stamps CLOCK_MONOTONIC first thing in main. Median of N crashes.
#  2. the cost the runtime adds to starting a process that does not crash:
#     `true` with and without LD_PRELOAD=libcoroner.so, interleaved (the
#     order rotates from round to round: the later starts of a round run a
#     little slower), many runs: with no configuration file, and with a
#     typical one (a debugger and [localdumps] without a dumper: what
#     `install --jit --system` users have), read through its compiled plan
#     (written beside it by the first start); and that configuration with
#     its plan deleted before every start, so each one compiles the plan and
#     writes it again (the first start after an edit).
# usage: bench/jit.sh [CRASHES] [STARTS]     (defaults 50, 2000)
#   CORONER_BENCH_LIB=/path/libcoroner.so also measures that build (e.g. a
#   copy of an older one), in the same rounds: each round starts `true`
#   plain, with this build and with that one, in an order that rotates
#   from round to round, so the two figures are comparable.
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
cp target/release/libcoroner.so "$W/libcoroner.so"
LIB=$W/libcoroner.so
# The library has no TOML parser: a missing or stale plan is compiled by the
# coroner of its installation, which for this copy is the one beside it.
ln -s "$PWD/target/release/coroner" "$W/coroner"
BEFORE=
if [ -n "${CORONER_BENCH_LIB:-}" ]; then
    mkdir "$W/before"
    cp "$CORONER_BENCH_LIB" "$W/before/libcoroner.so"
    ln -s "$PWD/target/release/coroner" "$W/before/coroner"
    BEFORE=$W/before/libcoroner.so
fi

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

python3 - "$W" "$LIB" "$CRASHES" "$STARTS" "$BEFORE" <<'PY'
import os, shutil, statistics as st, subprocess, sys, time
w, lib, crashes, starts, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
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

plain = dict(os.environ)
for k in ("LD_PRELOAD", "CORONER_CONFIG", "CORONER_RUN_FD"):
    plain.pop(k, None)
# Each library reads its own copy of the configuration: builds with
# different plan formats would otherwise rewrite each other's plan.
libs = [("libcoroner", lib)] + ([("before", before)] if before else [])
typical = {}
for name, _ in libs:
    typical[name] = f"{w}/typical-{name}.toml"
    shutil.copy(f"{w}/typical.toml", typical[name])
def one(e, before_start=None):
    if before_start:
        before_start()
    t = time.perf_counter_ns()
    subprocess.run(["/bin/true"], env=e)
    return time.perf_counter_ns() - t
def no_plan(name):
    def f():
        try: os.unlink(typical[name] + ".plan")
        except FileNotFoundError: pass
    return f
for label, config, delete, n in (
    ("no configuration file", False, False, starts),
    ("typical configuration", True, False, starts),
    ("typical configuration, plan deleted before each start", True, True, max(starts // 4, 1)),
):
    variants = [("plain", plain, None)]
    for name, path in libs:
        e = dict(plain, LD_PRELOAD=path)
        if config:
            e["CORONER_CONFIG"] = typical[name]
        variants.append((name, e, no_plan(name) if delete else None))
    times = {v[0]: [] for v in variants}
    for i in range(n):
        k = i % len(variants)
        for name, e, pre in variants[k:] + variants[:k]:
            times[name].append(one(e, pre))
    parts = [f"plain {st.median(times['plain']) / 1e3:.1f} us"]
    for name, _ in libs:
        diffs = [(y - x) / 1e3 for x, y in zip(times["plain"], times[name])]
        parts.append(f"{name} {st.median(times[name]) / 1e3:.1f} us, added median {st.median(diffs):.1f} us")
    print(f"start of /bin/true, {label}: " + "; ".join(parts) + f" (n={n}, rounds in rotating order)")
PY
