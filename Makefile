# Gerbang — the two commands of the README, and the checks CI runs.
#   make demo   build and run the whole stack locally with the example PKS, with a tour
#   make test   every test in the workspace, end-to-end ones included
#   make lint   rustfmt and clippy, as CI runs them
#   make bench  throughput, latency and configuration-size figures (loadtest/README.md)
#   make deb    the Debian package target/debian/gerbang_<version>-1_<arch>.deb (deploy/README.md)

SHELL := /bin/bash
CARGO ?= cargo

# System packages the build and the tests need, as "command:debian-package".
# cmake builds libz-ng (pingora's compression); redis-server is started by the quota tests
# (their own instance on a free port, never a system service); promtool (Debian's
# prometheus) checks monitoring/ and the metrics end-to-end test runs a real Prometheus;
# chromium and its driver run the Web Portal browser test (tests/e2e/portal_browser.rs);
# setpriv (util-linux, always on Debian) starts the children of the demo, the tests and the
# bench so that they die with their parent (gateway/supervise); cvc5 is the SMT solver that
# proves the invariants of policies/invariants/ (gerbang policy verify, gerbang check, every
# reload that changes the rules; docs/policies.md).
SYSTEM_DEPS := cmake:cmake redis-server:redis-server redis-sentinel:redis-sentinel promtool:prometheus python3:python3 chromium:chromium chromedriver:chromium-driver setpriv:util-linux cvc5:cvc5 haproxy:haproxy
# The package test (deploy/package-test.sh): dpkg-shlibdeps for cargo-deb, systemd-analyze
# to verify and score the units (systemd need not be running), ip and curl to run the
# services in a network namespace, strace to hold them to their system-call filter, openssl
# for the postinst's temporary certificate.
SYSTEM_DEPS += dpkg-shlibdeps:dpkg-dev systemd-analyze:systemd ip:iproute2 curl:curl strace:strace openssl:openssl

# cargo-deb builds the Debian package; installed (a few minutes of compiling) when missing.
CARGO_DEB_VERSION := 3.8.0

.PHONY: demo test lint deps cargo-deb deb

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

# Both build the binaries with the features `cargo test` resolves (naming a test target
# makes cargo resolve them with the dev-dependencies; `cargo build --bins` alone resolves
# fewer and rebuilds about a hundred crates), so either command reuses the other's build.
BUILD_BINS := $(CARGO) build --workspace --bins

cargo-deb:
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked --version $(CARGO_DEB_VERSION)

demo: deps
	$(BUILD_BINS) --test cli
	./target/debug/gerbang demo --config config/gerbang.toml

test: deps cargo-deb
	bash monitoring/check.sh
	# The binaries the e2e tests start, with the features `cargo test` resolves (so built once).
	$(BUILD_BINS) --tests
	# Those binaries as a Debian package, installed into a fresh root, run as its units run them.
	CARGO="$(CARGO)" bash deploy/package-test.sh
	$(CARGO) test --workspace --all-targets --no-fail-fast

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The Debian package, from release binaries: target/debian/gerbang_<version>-1_<arch>.deb.
deb: deps cargo-deb
	$(CARGO) build --release --bins -p gerbang-cli -p gerbang-sam
	$(CARGO) deb -p gerbang-cli --no-build

## The SAM sidecar with the national fleet of card readers (59,194 synthetic SAMs in 4,644
## PKS files): start and reload time, memory, validation latency under load (docs/capacity.md).
.PHONY: sam-fleet
sam-fleet: deps
	$(CARGO) build --release -p gerbang-sam --bin gerbang-sam --example fleet
	target/release/examples/fleet $(FLEET_ARGS)

## Benchmark: Gerbang against nginx and the DWH simulator on loopback; installs nginx when
## missing, builds the release binaries, writes loadtest/out/<timestamp>.md.
.PHONY: bench
bench: deps
	CARGO="$(CARGO)" bash loadtest/bench.sh
