# Gerbang — the two commands of the README, and the checks CI runs.
#   make demo   build and run the whole stack locally with the example PKS, with a tour
#   make test   every test in the workspace, end-to-end ones included
#   make lint   rustfmt and clippy, as CI runs them
#   make bench  throughput, latency and configuration-size figures (loadtest/README.md)

SHELL := /bin/bash
CARGO ?= cargo

# System packages the build and the tests need, as "command:debian-package".
# cmake builds libz-ng (pingora's compression); redis-server is started by the quota tests
# (their own instance on a free port, never a system service); promtool (Debian's
# prometheus) checks monitoring/ and the metrics end-to-end test runs a real Prometheus;
# chromium and its driver run the Web Portal browser test (tests/e2e/portal_browser.rs);
# cvc5 is the SMT solver that proves the invariants of policies/invariants/ (gerbang policy
# verify, gerbang check, every reload that changes the rules; docs/policies.md).
SYSTEM_DEPS := cmake:cmake redis-server:redis-server promtool:prometheus python3:python3 chromium:chromium chromedriver:chromium-driver cvc5:cvc5

.PHONY: demo test lint deps

## Install missing system packages (Debian), when run as root or with sudo.
deps:
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; \
	  else echo "error: missing$$missing and not root; install them with apt-get" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: deps
	$(CARGO) build --bins
	./target/debug/gerbang demo --config config/gerbang.toml

test: deps
	bash monitoring/check.sh
	# The binaries the e2e tests start, with the features `cargo test` resolves (so built once).
	$(CARGO) build --workspace --bins --tests
	$(CARGO) test --workspace --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmark: Gerbang against nginx and the DWH simulator on loopback; installs nginx when
## missing, builds the release binaries, writes loadtest/out/<timestamp>.md.
.PHONY: bench
bench: deps
	CARGO="$(CARGO)" bash loadtest/bench.sh
