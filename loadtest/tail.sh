#!/usr/bin/env bash
# Where the added p99 at half load goes. The bench's configuration (20 PKS, 200 User IDs,
# decision log on) at a fixed open-loop rate, first straight to dwh-sim, then through the
# gateway. For the gateway run it records:
#   - the gateway's own request and upstream time histograms (its /metrics, before/after);
#   - per process, CPU time and time spent runnable but waiting for a core
#     (/proc/<pid>/task/*/schedstat, before/after), for the gateway, dwh-sim and loadgen.
# Needs the release binaries (`make bench` builds them). Loopback only; bounded in time.
# Usage: loadtest/tail.sh [RATE] [OUTDIR]   (RATE: requests/s, default 6400)
# With PERF=1, also `perf record` of the gateway for 5 s of its run (OUTDIR/perf.data).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-6400}
OUT=${2:-loadtest/out/tail}
SIM_PORT=19180 GW_PORT=18543 ADMIN_PORT=19200
EXTRA_CONFIG="$(printf '[admin]\naddress = "127.0.0.1:%s"' $ADMIN_PORT)"
. loadtest/stack.sh
run() { $B/loadgen run --users "$OUT/conf/users.tsv" --niks "$OUT/niks.txt" "$@"; }
# Every User ID's first login (argon2) out of the way.
run --name warm --target 127.0.0.1:$GW_PORT --duration 4 > /dev/null

# Sum over a process's threads of schedstat: on-CPU ns, runnable-but-waiting ns, slices.
sched() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{r+=$1; w+=$2; n+=$3} END {printf "%.0f %.0f %.0f\n", r, w, n}'; }

run --name direct --target 127.0.0.1:$SIM_PORT --rate "$RATE" --duration 10 > "$OUT/direct.json"

curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" > "$OUT/metrics.before"
run --name gerbang --target 127.0.0.1:$GW_PORT --rate "$RATE" --duration 10 > "$OUT/gerbang.json" &
LOAD=$!
sleep 2
LG=$(pgrep -n -f "loadgen run --users $OUT/conf/users.tsv") || LG=""
{ echo "gerbang $(sched $GW)"; echo "dwh-sim $(sched $SIM)"; [ -n "$LG" ] && echo "loadgen $(sched "$LG")"; } > "$OUT/sched.before"
T0=$(date +%s%N)
if [ "${PERF:-0}" = 1 ]; then
  perf record -F 999 -g -p $GW -o "$OUT/perf.data" -- sleep 5 2> /dev/null
else
  sleep 6
fi
T1=$(date +%s%N)
{ echo "gerbang $(sched $GW)"; echo "dwh-sim $(sched $SIM)"; [ -n "$LG" ] && echo "loadgen $(sched "$LG")"; } > "$OUT/sched.after"
wait $LOAD
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" > "$OUT/metrics.after"

python3 - "$OUT" "$T0" "$T1" <<'EOF'
import json, sys
out, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wall = (t1 - t0) / 1e9
d = json.load(open(f"{out}/direct.json"))
g = json.load(open(f"{out}/gerbang.json"))
print(f"rate asked {g['rate_rps']}/s; answered/s direct {d['throughput_rps']:.0f}, gerbang {g['throughput_rps']:.0f}; errors direct {d['errors']}, gerbang {g['errors']}")
for k in ("p50_us", "p99_us", "p999_us"):
    print(f"{k:8} direct {d[k]:>8} us  gerbang {g[k]:>8} us  added {g[k] - d[k]:>8} us")

def hist(path, name):
    buckets = {}
    for line in open(path):
        if line.startswith(name + "_bucket"):
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + float(value)
    return buckets

for name in ("gerbang_request_duration_seconds", "gerbang_upstream_duration_seconds"):
    b0, b1 = hist(f"{out}/metrics.before", name), hist(f"{out}/metrics.after", name)
    diff = {le: b1[le] - b0.get(le, 0) for le in b1}
    total = diff.get("+Inf", 0)
    if not total:
        continue
    les = sorted((float(le) if le != "+Inf" else float("inf"), n) for le, n in diff.items())
    p99 = next(le for le, n in les if n >= 0.99 * total)
    p50 = next(le for le, n in les if n >= 0.50 * total)
    print(f"{name}: {total:.0f} requests; p50 <= {p50 * 1e3:g} ms, p99 <= {p99 * 1e3:g} ms (bucket bounds)")

def sched(path):
    return {l.split()[0]: list(map(int, l.split()[1:])) for l in open(path) if l.strip()}
s0, s1 = sched(f"{out}/sched.before"), sched(f"{out}/sched.after")
print(f"over {wall:.1f} s of the gateway run (2 cores = {2 * wall:.1f} core-s):")
for p in s1:
    run_ns, wait_ns, n = (a - b for a, b in zip(s1[p], s0.get(p, [0, 0, 0])))
    print(f"  {p:8} on CPU {run_ns / 1e9:5.2f} s ({run_ns / 1e9 / wall:4.0%} of a core), "
          f"runnable but waiting {wait_ns / 1e9:5.2f} s, {n} slices, "
          f"mean wait per slice {wait_ns / max(n, 1) / 1e3:6.1f} us")
EOF
