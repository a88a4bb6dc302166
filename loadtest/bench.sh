#!/usr/bin/env bash
# make bench: install what is missing (nginx), build the release binaries, and run the
# benchmark driver (`loadgen bench`), which starts dwh-sim, nginx and Gerbang on loopback,
# measures them, stops them, prints a markdown report and writes it to loadtest/out/.
# Extra arguments go to `loadgen bench` (see `loadgen bench --help`), e.g.
#   loadtest/bench.sh --rounds 1 --duration 5 --skip-scale
# Everything stops by itself: the driver bounds every wait, and this script gives it at
# most BENCH_TIMEOUT seconds (default 1500), then ends what it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
nginx_bin="$(command -v nginx || true)"
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  if [ "$SUDO" = none ]; then
    echo "error: nginx is missing and this is not root; apt-get install nginx" >&2
    exit 1
  fi
  echo "installing nginx (Debian package; only its binary is used, the system service is left alone)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi

echo "building release binaries (gerbang, dwh-sim, loadgen)"
${CARGO:-cargo} build --release -p gerbang-cli -p gerbang-dwh-sim -p gerbang-loadgen --bins

target_dir="${CARGO_TARGET_DIR:-target}"
pids="$(mktemp -t gerbang-bench-pids.XXXXXX)"
cleanup() {
  # Whatever the driver started and did not stop (it died or timed out): by pid only,
  # and only if the pid still names one of our programs.
  local pid comm left=""
  while read -r pid; do
    comm="$(ps -o comm= -p "$pid" 2>/dev/null || true)"
    case "$comm" in
      dwh-sim|gerbang|nginx|loadgen|redis-server|pingora-bare|hyper-bare) kill -TERM "$pid" 2>/dev/null || true; left="$left $pid" ;;
    esac
  done <"$pids"
  if [ -n "$left" ]; then
    sleep 2
    for pid in $left; do
      comm="$(ps -o comm= -p "$pid" 2>/dev/null || true)"
      case "$comm" in dwh-sim|gerbang|nginx|loadgen|redis-server|pingora-bare|hyper-bare) kill -KILL "$pid" 2>/dev/null || true ;; esac
    done
  fi
  rm -f "$pids"
}
trap cleanup EXIT

timeout --signal=TERM --kill-after=10 "${BENCH_TIMEOUT:-1500}" \
  "$target_dir/release/loadgen" bench \
  --bin-dir "$target_dir/release" \
  --out-dir loadtest/out \
  --nginx "$nginx_bin" \
  --pid-file "$pids" \
  --command "make bench${*:+ (loadtest/bench.sh $*)}" \
  "$@"
