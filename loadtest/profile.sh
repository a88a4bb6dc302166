#!/usr/bin/env bash
# Profiles the gateway under the bench's load: the bench's configuration (20 PKS, 200 User
# IDs, decision log on), `loadgen run` closed loop with 64 connections for 14 s, and of that
# `perf record` for 8 s then `strace -c -f` for 3 s of the gateway's process.
# Needs the release binaries (`make bench` builds them), perf and strace. Loopback only.
# Usage: loadtest/profile.sh [OUTDIR]   (then: perf report -i OUTDIR/perf.data)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-loadtest/out/profile}
rm -rf "$OUT" && mkdir -p "$OUT"
B=target/release
SIM_PORT=19080 GW_PORT=18443
$B/dwh-sim --listen 127.0.0.1:$SIM_PORT --people 100000 --seed 7 > "$OUT/sim.out" 2> "$OUT/sim.err" &
SIM=$!
trap 'kill $SIM ${GW:-} 2>/dev/null || true' EXIT
sleep 1
$B/loadgen gen-config --pks 20 --users 200 --dir "$OUT/conf" --upstream 127.0.0.1:$SIM_PORT \
  --listen 127.0.0.1:$GW_PORT --policy-dir "$PWD/policies" > /dev/null
curl -s "http://127.0.0.1:$SIM_PORT/__sim/sample?kind=alive&n=1000" |
  python3 -c 'import json,sys; print("\n".join(str(n) for n in json.load(sys.stdin)["nik"]))' > "$OUT/niks.txt"
RUST_LOG=info $B/gerbang serve --config "$OUT/conf/gerbang.toml" 2> "$OUT/gerbang.err" &
GW=$!
sleep 2
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
