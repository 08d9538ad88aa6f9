#!/usr/bin/env bash
# Kernel-tier benchmark (issue 5): crash-to-dump-complete for a process of
# SIZE MiB when
#   (a) the kernel writes a plain core file itself (core_pattern = a path),
#   (b) coroner's pipe handler writes a mini dump + the store row,
#   (c) coroner's pipe handler writes a mini dump + the ELF core + the row,
#   (d) a pipe helper that only copies stdin to a file (cat), the floor of
#       any pipe helper;
#   (e) coroner's coredump-socket server (`@@`, `coroner handler --serve`):
#       mini dump + row;
# then a storm of STORM small crashes through the pipe handler and through
# the socket server: crashes handled per second and the collecting
# process's peak memory (from its log lines), with the default rate limit
# (floods are counted, not dumped; the socket server rejects them before
# the kernel writes anything) and with it off.
#
# Crash-to-complete = from `kill -SEGV` to the crashed process being reaped:
# with core_pipe_limit > 0 the kernel reaps it only after the handler exits.
# Median of RUNS runs. Needs root; saves and restores kernel.core_pattern
# and core_pipe_limit on every exit path.
#
# usage: sudo bench/kernel.sh [RUNS] [SIZE_MIB] [STORM]   (defaults: 3 1024 200)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SIZE=${2:-1024}
STORM=${3:-200}
[ "$(id -u)" -eq 0 ] || { echo "bench/kernel.sh needs root (it sets kernel.core_pattern)" >&2; exit 1; }

cargo build --release -q -p coroner-cli -p coroner-crashers
OUT=$(mktemp -d /tmp/ckb.XXXXXX) # short: core_pattern holds 127 bytes
chmod 755 "$OUT"
cp target/release/coroner "$OUT/coroner"
CORONER=$OUT/coroner
CRASHER=$PWD/target/release/crasher
SAVED_PATTERN=$(cat /proc/sys/kernel/core_pattern)
SAVED_LIMIT=$(cat /proc/sys/kernel/core_pipe_limit)
SERVER=
restore() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
    echo "$SAVED_PATTERN" > /proc/sys/kernel/core_pattern
    echo "$SAVED_LIMIT" > /proc/sys/kernel/core_pipe_limit
    rm -rf "$OUT"
}
trap restore EXIT
echo 16 > /proc/sys/kernel/core_pipe_limit

config() { # TYPES RATE_BURST
    cat > "$OUT/c.toml" <<EOF
[localdumps]
folder = "$OUT/dumps"
type = $1
[kernel]
state_dir = "$OUT/state"
keep_free = 0
rate_burst = $2
rate_global_burst = $2
EOF
    chmod 600 "$OUT/c.toml"
}
now() { date +%s%N; }

# crash_once: start a SIZE MiB target, SIGSEGV it, print ms to reaped.
crash_once() {
    coproc TARGET { ulimit -c unlimited; exec "$CRASHER" live "$SIZE" 1; }
    local pid=$TARGET_PID ready rest
    read -r ready rest <&"${TARGET[0]}"
    [ "$ready" = ready ] || { echo "target did not start" >&2; exit 1; }
    local t0 t1
    t0=$(now)
    kill -SEGV "$pid"
    wait "$pid" 2>/dev/null || true
    t1=$(now)
    echo $(( (t1 - t0) / 1000000 ))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RESULT
run_case() { # NAME SETUP...
    local name=$1; shift
    local times=()
    for i in $(seq 0 "$RUNS"); do
        rm -rf "$OUT/dumps" "$OUT"/core.* "$OUT/cat.out"
        "$@"
        sync; echo 1 > /proc/sys/vm/drop_caches
        local ms
        ms=$(crash_once)
        [ "$i" -eq 0 ] && continue # warm-up
        times+=("$ms")
    done
    RESULT[$name]=$(printf '%s\n' "${times[@]}" | median)
    printf '%-34s %8s ms   files of the last run:\n' "$name" "${RESULT[$name]}"
    (ls -l "$OUT"/dumps/* "$OUT"/core.* "$OUT"/cat.out 2>/dev/null || true) | awk '{printf "      %12d  %s\n", $5, $NF}'
}

set_kernel_file() { echo "$OUT/core.%p" > /proc/sys/kernel/core_pattern; }
set_handler() { config "$1" 0; "$CORONER" install --system --config "$OUT/c.toml" >/dev/null; }
start_server() {
    stop_server
    "$CORONER" handler --serve --config "$OUT/c.toml" --socket "$OUT/s" 2>>"$OUT/serve.log" &
    SERVER=$!
    for _ in $(seq 500); do grep -q "listening on" "$OUT/serve.log" 2>/dev/null && break; sleep 0.01; done
}
stop_server() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    SERVER=
    rm -f "$OUT/s" "$OUT/serve.log"
}
set_socket() {
    config "$1" 0
    start_server
    "$CORONER" install --system --config "$OUT/c.toml" --socket="$OUT/s" >/dev/null
}
set_cat() {
    cat > "$OUT/cat.sh" <<EOF
#!/bin/sh
exec cat > $OUT/cat.out
EOF
    chmod 755 "$OUT/cat.sh"
    echo "|$OUT/cat.sh" > /proc/sys/kernel/core_pattern
}

echo "kernel tier: crash of a ${SIZE} MiB process, median of $RUNS (kernel $(uname -r))"
run_case "(a) kernel writes a core file" set_kernel_file
run_case "(d) pipe helper: cat > file" set_cat
run_case "(b) coroner handler: mini + row" set_handler '"mini"'
"$CORONER" uninstall --system --config "$OUT/c.toml" >/dev/null
run_case "(c) coroner handler: mini+core+row" set_handler '["mini", "core"]'
"$CORONER" uninstall --system --config "$OUT/c.toml" >/dev/null
has_requests() { [ "$(printf '%s\n' "$(uname -r)" 6.17 | sort -V | head -1)" = 6.17 ]; }
if has_requests; then
    run_case "(e) socket server: mini + row" set_socket '"mini"'
    "$CORONER" uninstall --system --config "$OUT/c.toml" >/dev/null
    stop_server
else
    echo "(e) socket server: skipped, kernel $(uname -r) has no @@ request mode (6.17+)"
fi
a=${RESULT["(a) kernel writes a core file"]}
for k in "(b) coroner handler: mini + row" "(c) coroner handler: mini+core+row" "(d) pipe helper: cat > file" "(e) socket server: mini + row"; do
    [ -n "${RESULT[$k]:-}" ] || continue
    awk -v n="$k" -v x="${RESULT[$k]}" -v a="$a" 'BEGIN {printf "  %-34s %.2fx the kernel core write\n", n, x / a}'
done

storm() { # LABEL RATE_BURST [socket]
    rm -rf "$OUT/dumps"
    config '"mini"' "$2"
    if [ "${3:-}" = socket ]; then
        start_server
        "$CORONER" install --system --config "$OUT/c.toml" --socket="$OUT/s" >/dev/null
    else
        "$CORONER" install --system --config "$OUT/c.toml" >/dev/null
    fi
    dmesg -C
    local t0 t1
    t0=$(now)
    { for _ in $(seq "$STORM"); do "$CRASHER" segv-null >/dev/null 2>&1 || true; done; } 2>/dev/null
    t1=$(now)
    "$CORONER" uninstall --system --config "$OUT/c.toml" >/dev/null
    stop_server
    local rows peak
    rows=$( ("$CORONER" reports list --folder "$OUT/dumps" 2>/dev/null || true) | wc -l)
    peak=$( (dmesg | sed -n 's/.*peak memory \([0-9]*\) KiB.*/\1/p' || true) | sort -n | tail -1)
    awk -v n="$1" -v c="$STORM" -v ns=$((t1 - t0)) -v rows="$rows" -v peak="${peak:-?}" \
        'BEGIN {printf "storm %-28s %d crashes in %.2f s = %.1f crashes/s; %d reports kept ([localdumps] count = 10 per executable); handler peak memory %s KiB\n", n, c, ns/1e9, c/(ns/1e9), rows, peak}'
}
storm "pipe (rate limit 10/min)" 10
storm "pipe (no rate limit)" 0
if has_requests; then
    storm "socket (rate limit 10/min)" 10 socket
    storm "socket (no rate limit)" 0 socket
fi
