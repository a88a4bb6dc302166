#!/usr/bin/env bash
# Checks everything in monitoring/ without a running gateway; called by `make test`.
#   1 promtool check config   prometheus.yml (and the rule file it names)
#   2 promtool check rules    alerts.yml
#   3 promtool test rules     alerts_test.yml and alerts_test_30d.yml (the 30-day alerts,
#                             evaluated hourly): every alert fires in one case and stays
#                             silent in another (queries.py check-alert-tests makes sure)
#   4 dashboard JSON          parses; every panel has the provisioned Prometheus datasource
#                             and targets; variables resolve; $pengguna matched with =~
#   5 dashboard queries       every panel query parses as PromQL and returns data over the
#                             synthetic traffic in testdata/traffic.yml, and returns nothing
#                             without traffic (so the check itself can fail)
#   6 provisioning            the Grafana provisioning files name the dashboard's datasource
# Needs promtool (Debian package `prometheus`) and python3 (standard library only).
# Exits non-zero on the first failing step; prints what it checked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v promtool >/dev/null 2>&1; then
  echo "error: promtool not found; install it with: apt-get install prometheus" >&2
  echo "       (then stop and disable the prometheus service the package may start)" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 not found" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "promtool check config prometheus.yml ($(promtool --version 2>&1 | head -n1))"
promtool check config prometheus.yml

step "promtool check rules alerts.yml"
promtool check rules alerts.yml

step "promtool test rules alerts_test.yml alerts_test_30d.yml"
python3 queries.py check-alert-tests
promtool test rules alerts_test.yml alerts_test_30d.yml

step "dashboard JSON: grafana/dashboards/gerbang.json"
python3 -m json.tool grafana/dashboards/gerbang.json >/dev/null
echo "  valid JSON"
python3 queries.py check-dashboard

step "dashboard queries against synthetic traffic (testdata/traffic.yml)"
python3 queries.py promtool-test "$work"
promtool check rules "$work/dashboard_queries.yml"
promtool test rules "$work/dashboard_test.yml"

step "Grafana provisioning files"
uid="$(sed -n 's/^ *uid: *\([A-Za-z0-9_-]*\).*/\1/p' grafana/provisioning/datasources/prometheus.yml | head -n1)"
if ! grep -q "\"uid\": \"$uid\"" grafana/dashboards/gerbang.json; then
  echo "error: the dashboard does not use datasource uid '$uid' from datasources/prometheus.yml" >&2
  exit 1
fi
for key in apiVersion providers 'type: file' 'path:'; do
  if ! grep -q "$key" grafana/provisioning/dashboards/gerbang.yml; then
    echo "error: grafana/provisioning/dashboards/gerbang.yml has no '$key'" >&2
    exit 1
  fi
done
echo "  datasource uid $uid; dashboard provider of type file"

printf '\nmonitoring: all checks passed\n'
