#!/usr/bin/env python3
"""Checks and extracts the PromQL of Gerbang's monitoring files (standard library only).

    queries.py check-dashboard            structural checks of grafana/dashboards/gerbang.json
    queries.py check-alert-tests          every alert in alerts.yml has a firing and a
                                          non-firing case in alerts_test*.yml
    queries.py list [--rate-interval 1m] [--range 1h] [--pengguna '.*']
                                          every dashboard query, variables substituted, as
                                          JSON lines {"panel", "title", "ref", "expr"}; the
                                          `pengguna` variable's own query is listed as PromQL
    queries.py promtool-test DIR          writes DIR/dashboard_queries.yml (one rule per query:
                                          fires when the query returns nothing) and
                                          DIR/dashboard_test.yml (synthetic traffic from
                                          testdata/traffic.yml: nothing may fire; no traffic:
                                          every rule must fire), for `promtool test rules`

    queries.py live --prometheus URL [--rate-interval 10s] [--alerts]
                                          runs every dashboard query against a running
                                          Prometheus and reports the ones that return nothing
                                          (exit 1); with --alerts also every alert expression
                                          Prometheus loaded (GET /api/v1/rules), which return
                                          data only while their condition holds

Exit status 1 with one line per problem when a check fails. check.sh runs all but `live`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "dashboards" / "gerbang.json"
DATASOURCES = HERE / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
ALERTS = HERE / "alerts.yml"
# 30-day alerts are tested apart, evaluated hourly (see the file's header).
ALERT_TESTS = (HERE / "alerts_test.yml", HERE / "alerts_test_30d.yml")
TRAFFIC = HERE / "testdata" / "traffic.yml"

# Grafana's own variables the dashboard may use; anything else must be a template variable.
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


class Problems(list):
    """Problems found, reported together so one run shows all of them."""

    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


def provisioned_datasource_uid() -> str:
    """The uid the datasource provisioning file gives Prometheus (a plain `uid:` line)."""
    match = re.search(r"^\s+uid:\s*['\"]?([\w-]+)", DATASOURCES.read_text(), re.MULTILINE)
    if not match:
        sys.exit(f"{DATASOURCES}: no `uid:` for the Prometheus datasource")
    return match.group(1)


def load_dashboard() -> dict:
    try:
        return json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as err:
        sys.exit(f"{DASHBOARD}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}")


def query_panels(dashboard: dict) -> list[dict]:
    """Panels that query Prometheus: every panel except rows."""
    return [p for p in dashboard.get("panels", []) if p.get("type") != "row"]


def variables(dashboard: dict) -> dict[str, dict]:
    return {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(var: dict) -> str | None:
    query = var.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    return query


def check_dashboard() -> Problems:
    problems = Problems()
    dashboard = load_dashboard()
    uid = provisioned_datasource_uid()
    where = DASHBOARD.name

    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dashboard:
            problems.add(where, f"missing top-level `{key}`")
    defined = variables(dashboard)

    for name, var in defined.items():
        at = f"{where}: variable ${name}"
        ds = var.get("datasource") or {}
        if var.get("type") == "query" and ds.get("uid") != uid:
            problems.add(at, f"datasource uid {ds.get('uid')!r}, provisioning defines {uid!r}")
        if var.get("type") == "query" and not LABEL_VALUES.match(variable_query(var) or ""):
            problems.add(at, "query is not label_values(<selector>, <label>)")
        if var.get("multi") or var.get("includeAll"):
            if var.get("allValue") != ".*":
                problems.add(at, 'includeAll/multi needs allValue ".*" so "All" is a regex')

    ids = set()
    for panel in dashboard.get("panels", []):
        at = f"{where}: panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.add(at, "duplicate panel id")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in "xywh"):
            problems.add(at, "gridPos needs integer x, y, w, h")
        elif grid["x"] + grid["w"] > 24:
            problems.add(at, "gridPos wider than the 24-column grid")
        if not panel.get("title"):
            problems.add(at, "no title")
        if panel.get("type") == "row":
            # Nested (collapsed) rows would hide panels from `list` and the e2e test.
            if panel.get("panels"):
                problems.add(at, "row holds panels; keep rows open so all panels are top-level")
            continue

        ds = panel.get("datasource") or {}
        if ds.get("type") != "prometheus" or ds.get("uid") != uid:
            problems.add(at, f"datasource {ds!r}, want prometheus uid {uid!r}")
        targets = panel.get("targets") or []
        if not targets:
            problems.add(at, "no targets")
        refs = set()
        for target in targets:
            ref = target.get("refId")
            tat = f"{at} target {ref}"
            if not ref or ref in refs:
                problems.add(tat, "missing or duplicate refId")
            refs.add(ref)
            tds = target.get("datasource")
            if tds is not None and tds.get("uid") != uid:
                problems.add(tat, f"datasource uid {tds.get('uid')!r}, want {uid!r}")
            expr = target.get("expr", "")
            if not expr.strip():
                problems.add(tat, "empty expr")
            for name in VARIABLE.findall(expr):
                if name not in defined and name not in BUILTIN_VARIABLES:
                    problems.add(tat, f"uses ${name}, which is neither a template nor a built-in variable")
            for name in defined:
                # A multi-value or "All" selection is a regex: it must be matched with =~.
                if re.search(rf'\w+\s*(=|!=)\s*"\$\{{?{name}\b', expr):
                    problems.add(tat, f"${name} must be matched with =~ (it can be a regex)")
    if not query_panels(dashboard):
        problems.add(where, "no query panels")
    return problems


def substitute(expr: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), expr)


def list_queries(rate_interval: str, range_: str, pengguna: str) -> list[dict]:
    dashboard = load_dashboard()
    values = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": range_}
    for name in variables(dashboard):
        values[name] = pengguna if name == "pengguna" else ".*"
    out = []
    for name, var in variables(dashboard).items():
        match = LABEL_VALUES.match(variable_query(var) or "")
        if match:
            selector, label = match.groups()
            out.append({"panel": 0, "title": f"variable ${name}", "ref": name,
                        "expr": f"group by ({label}) ({substitute(selector, values)})"})
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            out.append({"panel": panel.get("id"), "title": panel.get("title"),
                        "ref": target.get("refId"),
                        "expr": substitute(target.get("expr", ""), values)})
    return out


def promtool_test(directory: Path) -> None:
    """Writes a rule file and a promtool test proving each dashboard query returns data."""
    queries = list_queries("5m", "1h", ".*")
    rules = [{
        "alert": "DashboardQueryEmpty",
        # `vector(1) and on () (q)` is non-empty exactly when q is, whatever q's labels, so
        # absent() of it fires exactly when the query returns nothing.
        "expr": f"absent(vector(1) and on () ({q['expr']}))",
        "labels": {"query": f"{q['panel']}/{q['ref']}", "title": q["title"]},
    } for q in queries]
    directory.mkdir(parents=True, exist_ok=True)
    # JSON is YAML, so no YAML library is needed to write promtool's files.
    (directory / "dashboard_queries.yml").write_text(
        json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]}, indent=1,
                   ensure_ascii=False))

    traffic = TRAFFIC.read_text()
    if not re.search(r"^input_series:", traffic, re.MULTILINE):
        sys.exit(f"{TRAFFIC}: expected a top-level `input_series:` list")
    traffic = "\n".join("    " + line if line.strip() else "" for line in traffic.splitlines())
    every = [{"exp_labels": r["labels"]} for r in rules]
    test = "\n".join([
        "rule_files: [dashboard_queries.yml]",
        "evaluation_interval: 1m",
        "tests:",
        "  - name: every dashboard query returns data under synthetic traffic",
        "    interval: 1m",
        traffic,
        "    alert_rule_test:",
        "      - {eval_time: 10m, alertname: DashboardQueryEmpty, exp_alerts: []}",
        "  - name: control, no traffic, so every query is empty and its rule fires",
        "    interval: 1m",
        "    input_series: []",
        "    alert_rule_test:",
        "      - eval_time: 10m",
        "        alertname: DashboardQueryEmpty",
        "        exp_alerts: " + json.dumps(every, ensure_ascii=False),
        "",
    ])
    (directory / "dashboard_test.yml").write_text(test)
    print(f"{len(queries)} queries")


def prometheus_get(base: str, path: str, params: dict[str, str] | None = None) -> dict:
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.loads(answer.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def live(base: str, rate_interval: str, range_: str, alerts: bool) -> int:
    """Queries a running Prometheus; prints one line per query; 1 if any returned nothing."""
    checks = [(f"panel {q['panel']}/{q['ref']} {q['title']}", q["expr"])
              for q in list_queries(rate_interval, range_, ".*")]
    if alerts:
        for group in prometheus_get(base, "/api/v1/rules", {"type": "alert"})["groups"]:
            for rule in group["rules"]:
                checks.append((f"alert {rule['name']}", rule["query"]))
    empty = 0
    for name, expr in checks:
        try:
            result = prometheus_get(base, "/api/v1/query", {"query": expr})["result"]
        except (OSError, RuntimeError) as err:
            print(f"ERROR  {name}: {err}")
            empty += 1
            continue
        status = f"ok {len(result):3}" if result else "EMPTY "
        print(f"{status}  {name}")
        if not result:
            empty += 1
    print(f"{len(checks) - empty} of {len(checks)} queries returned data")
    return 1 if empty else 0


def check_alert_tests() -> Problems:
    """Reads the files as text: alert names, and per `alertname:` whether the case
    expects alerts (`exp_alerts:` followed by entries) or none (`exp_alerts: []`)."""
    problems = Problems()
    alerts = re.findall(r"^\s*- alert:\s*(\w+)", ALERTS.read_text(), re.MULTILINE)
    fires: dict[str, int] = {}
    silent: dict[str, int] = {}
    for tests in ALERT_TESTS:
        current = None
        for line in tests.read_text().splitlines():
            match = re.match(r"\s*alertname:\s*(\w+)", line)
            if match:
                current = match.group(1)
                continue
            match = re.match(r"\s*exp_alerts:\s*(.*)$", line)
            if match and current:
                bucket = silent if match.group(1).strip() == "[]" else fires
                bucket[current] = bucket.get(current, 0) + 1
                current = None
    where = "alerts_test*.yml"
    for name in alerts:
        if not fires.get(name):
            problems.add(where, f"{name} has no case where it fires")
        if not silent.get(name):
            problems.add(where, f"{name} has no case where it must not fire")
    for name in sorted(set(fires) | set(silent)):
        if name not in alerts:
            problems.add(where, f"tests {name}, which alerts.yml does not define")
    print(f"{len(alerts)} alerts, each with a firing and a non-firing case"
          if not problems else f"{len(alerts)} alerts")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-dashboard")
    sub.add_parser("check-alert-tests")
    listing = sub.add_parser("list")
    listing.add_argument("--rate-interval", default="1m",
                         help="value for $__rate_interval (≥ 4 × scrape interval)")
    listing.add_argument("--range", default="1h", help="value for $__range")
    listing.add_argument("--pengguna", default=".*", help='value for $pengguna ("All" = .*)')
    generate = sub.add_parser("promtool-test")
    generate.add_argument("directory", type=Path)
    running = sub.add_parser("live")
    running.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    running.add_argument("--rate-interval", default="1m",
                         help="value for $__rate_interval (≥ 4 × scrape interval)")
    running.add_argument("--range", default="1h", help="value for $__range")
    running.add_argument("--alerts", action="store_true",
                         help="also require every loaded alert expression to return data")
    args = parser.parse_args()

    if args.command == "live":
        return live(args.prometheus, args.rate_interval, args.range, args.alerts)

    if args.command == "list":
        for query in list_queries(args.rate_interval, args.range, args.pengguna):
            print(json.dumps(query, ensure_ascii=False))
        return 0
    if args.command == "promtool-test":
        promtool_test(args.directory)
        return 0
    problems = check_dashboard() if args.command == "check-dashboard" else check_alert_tests()
    if args.command == "check-dashboard" and not problems:
        dashboard = load_dashboard()
        targets = sum(len(p["targets"]) for p in query_panels(dashboard))
        print(f"{len(query_panels(dashboard))} panels, {targets} queries, datasource "
              f"{provisioned_datasource_uid()}, variables {', '.join(variables(dashboard))}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
