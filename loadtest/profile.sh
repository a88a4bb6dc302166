#!/usr/bin/env bash
# Profiles the gateway under the bench's load: the bench's configuration (20 PKS, 200 User
# IDs, decision log on), `loadgen run` closed loop with 64 connections for 14 s, and of that
# `perf record` for 8 s then `strace -c -f` for 3 s of the gateway's process.
# Needs the release binaries (`make bench` builds them), perf and strace. Loopback only.
# Usage: loadtest/profile.sh [OUTDIR]   (then: perf report -i OUTDIR/perf.data)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-loadtest/out/profile}
SIM_PORT=19080 GW_PORT=18443
. loadtest/stack.sh
run() { $B/loadgen run --name gerbang --target 127.0.0.1:$GW_PORT --users "$OUT/conf/users.tsv" --niks "$OUT/niks.txt" "$@"; }
run --duration 3 > /dev/null   # first logins (argon2) out of the way
run --duration 14 > "$OUT/run.json" &
LOAD=$!
sleep 2
perf record -F 499 --call-graph dwarf -p $GW -o "$OUT/perf.data" -- sleep 8 2> /dev/null
strace -c -f -p $GW -o "$OUT/strace.txt" &
STRACE=$!
sleep 3
kill -INT $STRACE; wait $STRACE || true
wait $LOAD
cat "$OUT/run.json"
echo "perf: perf report -i $OUT/perf.data; syscalls: $OUT/strace.txt"
