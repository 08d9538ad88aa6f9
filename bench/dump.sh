#!/usr/bin/env bash
# Full-dump benchmark: coroner dump -ma vs gcore vs Debian's procdump, on the
# same live process, at 256 MiB, 1 GiB and 4 GiB, in one run; plus a mini
# dump of a 64-thread process. Prints wall, CPU, peak RSS, size and the ratio
# to gcore (median of RUNS runs, one uncounted warm-up, output removed and
# `sync` between runs).
#
# usage: bench/dump.sh [RUNS] [SIZES_MIB...]     (defaults: 3 runs; 256 1024 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(256 1024 4096)

cargo build --release -q -p coroner-cli -p coroner-crashers
CORONER=$PWD/target/release/coroner
CRASHER=$PWD/target/release/crasher
OUT=$(mktemp -d "${TMPDIR:-/tmp}/coroner-bench.XXXXXX")
trap 'kill $TPID 2>/dev/null || true; rm -rf "$OUT"' EXIT

have() { command -v "$1" >/dev/null 2>&1; }

# measure NAME OUTPUT_GLOB CMD...: prints "NAME wall cpu peak size"
measure() {
    local name=$1 glob=$2; shift 2
    rm -f $glob; sync
    local json size
    json=$(python3 bench/measure.py "$@")
    size=$(cat $glob 2>/dev/null | wc -c)
    alloc=$(du -cB1 $glob 2>/dev/null | tail -1 | cut -f1)
    echo "$name $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['wall'], d['cpu'], d['peak_mib'], d['rc'])" "$json") $size $alloc"
}

report() { python3 bench/report.py; }

for mib in "${SIZES[@]}"; do
    coproc TARGET { "$CRASHER" live "$mib" 8 ; }
    read -r ready TPID rest <&"${TARGET[0]}"
    [ "$ready" = ready ] || { echo "target did not start" >&2; exit 1; }
    echo "== $mib MiB heap, 8 threads, pid $TPID =="
    lines=""
    for i in $(seq 0 "$RUNS"); do
        r1=$(measure coroner "$OUT/c.dmp" "$CORONER" dump -q -ma -o "$TPID" "$OUT/c.dmp")
        r2=$(have gcore && measure gcore "$OUT/g.$TPID" gcore -o "$OUT/g" "$TPID" 2>/dev/null || true)
        r3=$(have procdump && measure procdump "$OUT/p_*" procdump -n 1 -o "$OUT/p" -p "$TPID" 2>/dev/null || true)
        if [ "$i" -gt 0 ]; then lines+="$r1"$'\n'"$r2"$'\n'"$r3"$'\n'; fi
        rm -f "$OUT"/*; sync
    done
    printf '%s' "$lines" | grep -v '^$' | report
    kill "$TPID" 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
done

echo "== mini dump, 64 threads =="
coproc TARGET { "$CRASHER" live 16 64 ; }
read -r ready TPID rest <&"${TARGET[0]}"
lines=""
for i in $(seq 0 $((RUNS * 3))); do
    r=$(measure coroner-mm "$OUT/m.dmp" "$CORONER" dump -q -mm -o "$TPID" "$OUT/m.dmp")
    [ "$i" -gt 0 ] && lines+="$r"$'\n'
done
printf '%s' "$lines" | report
kill "$TPID" 2>/dev/null || true
