# Sourced by profile.sh and tail.sh: starts dwh-sim and a gateway on the bench's
# configuration (20 PKS, 200 User IDs, decision log on) under $OUT, on loopback.
# Needs OUT, SIM_PORT and GW_PORT; EXTRA_CONFIG, if set, is appended to gerbang.toml.
# Sets B (release binaries), SIM and GW (pids, killed on exit) and writes $OUT/niks.txt.
B=target/release
rm -rf "$OUT" && mkdir -p "$OUT"
$B/dwh-sim --listen 127.0.0.1:$SIM_PORT --people 100000 --seed 7 > "$OUT/sim.out" 2> "$OUT/sim.err" &
SIM=$!
trap 'kill $SIM ${GW:-} 2>/dev/null || true' EXIT
sleep 1
$B/loadgen gen-config --pks 20 --users 200 --dir "$OUT/conf" --upstream 127.0.0.1:$SIM_PORT \
  --listen 127.0.0.1:$GW_PORT --policy-dir "$PWD/policies" > /dev/null
if [ -n "${EXTRA_CONFIG:-}" ]; then printf '\n%s\n' "$EXTRA_CONFIG" >> "$OUT/conf/gerbang.toml"; fi
curl -s "http://127.0.0.1:$SIM_PORT/__sim/sample?kind=alive&n=1000" |
  python3 -c 'import json,sys; print("\n".join(str(n) for n in json.load(sys.stdin)["nik"]))' > "$OUT/niks.txt"
RUST_LOG=info $B/gerbang serve --config "$OUT/conf/gerbang.toml" 2> "$OUT/gerbang.err" &
GW=$!
sleep 2
