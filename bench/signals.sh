#!/usr/bin/env bash
# Debugger signal throughput and dump-to-stack time (issue: the debugger).
#  1. A program takes N handled SIGUSR1 and N handled SIGSEGV (its handler
#     steps over the faulting store). Run natively, under
#     `coroner dbg` with the filters set to ignore (sxi), and under gdb with
#     `handle ... nostop noprint pass`, in one run. Prints the load average,
#     ns per signal and the gdb/coroner ratio (higher is better for us).
#  2. Time from opening a dump of a big debug binary to a symbolized stack:
#     `coroner dbg -z` (minidump and ELF core), minidump-stackwalk (minidump)
#     and gdb (ELF core).
# usage: bench/signals.sh [N]      (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build --release -q -p coroner-cli
cargo build -q -p coroner-cli # the debug binary: a big program with full DWARF
CORONER=$PWD/target/release/coroner
W=$(mktemp -d "${TMPDIR:-/tmp}/coroner-sigbench.XXXXXX")
trap 'rm -rf "$W"' EXIT

cat > "$W/sigs.c" <<'C'
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
static volatile long hits;
static void on_usr1(int s) { (void)s; hits++; }
static void on_segv(int s, siginfo_t *si, void *uc) {
    (void)s; (void)si;
    ((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP] += 3; /* movb $1,(%rax) */
    hits++;
}
static long long now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    long n = argc > 2 ? atol(argv[2]) : 100000;
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    long long t0;
    if (strcmp(argv[1], "usr1") == 0) {
        sa.sa_handler = on_usr1; sigaction(SIGUSR1, &sa, 0);
        t0 = now();
        for (long i = 0; i < n; i++) raise(SIGUSR1);
    } else {
        sa.sa_sigaction = on_segv; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0);
        t0 = now();
        for (long i = 0; i < n; i++) __asm__ volatile("movb $1, (%%rax)" :: "a"(0L) : "memory");
    }
    long long dt = now() - t0;
    printf("RESULT %s %ld %.1f\n", argv[1], hits, (double)dt / n);
    return hits == n ? 0 : 1;
}
C
gcc -O2 -o "$W/sigs" "$W/sigs.c"

ns() { grep -o 'RESULT .*' | awk '{print $4}'; }
# The machine may be shared: say how busy it was.
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %12s %14s %12s %10s\n' kind native_ns coroner_dbg_ns gdb_ns gdb/coroner
for kind in usr1 segv; do
    code=SIGUSR1; [ "$kind" = segv ] && code=av
    gname=SIGUSR1; [ "$kind" = segv ] && gname=SIGSEGV
    native=$("$W/sigs" $kind "$N" | ns)
    ours=$("$CORONER" dbg -g -G -xi "$code" "$W/sigs" $kind "$N" </dev/null 2>&1 | ns)
    gdbns=$(gdb -q -batch -ex "handle $gname nostop noprint pass" -ex run --args "$W/sigs" $kind "$N" 2>&1 | ns)
    ratio=$(awk -v g="$gdbns" -v o="$ours" 'BEGIN{printf "%.1fx", g/o}')
    printf '%-8s %12s %14s %12s %10s\n' "$kind" "$native" "$ours" "$gdbns" "$ratio"
done

# 2. Dump of a big debug binary to a symbolized stack.
BIG=$PWD/target/debug/coroner
printf 'big binary: %s (%s MB)\n' "$BIG" "$(( $(stat -c %s "$BIG") / 1000000 ))"
# A live process of the big binary: `coroner dbg` (debug build) at its
# prompt, reading commands from a fifo we hold open.
mkfifo "$W/in"
sleep 1000 >"$W/in" &
HOLD=$!
"$BIG" dbg /bin/sleep 1000 <"$W/in" >/dev/null 2>&1 &
BIGPID=$!
for _ in $(seq 100); do pgrep -P "$BIGPID" >/dev/null && break; sleep 0.1; done
sleep 0.5
"$CORONER" dump -ma -o "$BIGPID" "$W/big.dmp" >/dev/null
"$CORONER" dump -ma --format core -o "$BIGPID" "$W/big.core" >/dev/null
kill "$HOLD" 2>/dev/null || true
wait "$BIGPID" 2>/dev/null || true
t() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
printf '%-40s %8s\n' tool ms
printf '%-40s %8s\n' "coroner dbg -z big.dmp (k)" "$(t sh -c "echo k | '$CORONER' dbg -z '$W/big.dmp'")"
printf '%-40s %8s\n' "coroner dbg -z big.core (k)" "$(t sh -c "echo k | '$CORONER' dbg -z '$W/big.core'")"
printf '%-40s %8s\n' "minidump-stackwalk big.dmp" "$(t minidump-stackwalk "$W/big.dmp")"
printf '%-40s %8s\n' "gdb -batch -ex bt big.core" "$(t gdb -q -batch -ex bt "$BIG" "$W/big.core")"
