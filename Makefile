# Outboard: a thin wrapper over cargo and the docker CLI.
#
#   make demo             bring up a daemon if none answers, install the four plugins, show them work
#   make test             fmt, clippy, unit tests, then end-to-end tests against a private dockerd
#   make plugin-install   build and (re)install all four managed plugins into $DOCKER_HOST
#
# Names, tag and host paths are variables: make plugin-install PLUGIN_PREFIX=acme TAG=v1

PLUGIN_PREFIX ?= outboard
TAG           ?= latest
PLUGINS       ?= volume network ipam authz overlay
DOCKER        ?= docker
# Host directories behind the plugins' "state" mounts (and the authz policy/audit mounts).
STATE_ROOT    ?= /var/lib/outboard
POLICY_DIR    ?= /etc/outboard
AUDIT_DIR     ?= /var/log/outboard
# Where `make plugin-install` puts the `outboard` host command (PREFIX/bin/outboard).
PREFIX        ?= /usr/local

TARGET        := x86_64-unknown-linux-gnu
RELEASE_DIR   := target/$(TARGET)/release
# Where `make rootfs` assembles the plugin directories; parallel test passes each use their own.
BUILD_DIR     ?= target/plugins
export CARGO_TERM_COLOR ?= never

.PHONY: all build rootfs plugin-create plugin-enable plugin-install plugin-uninstall cli-install \
        test unit e2e lint deny deny-advisories cargo-deny fmt demo bench soak clean fuzz fuzz-smoke

all: build

## build: static release binaries (the rootfs holds just the binary)
# All four binaries are always built together: building a subset would unify dependency
# features differently and recompile them (minutes); an up-to-date build is a no-op.
build:
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target $(TARGET) \
	  -p volume-driver -p network-driver -p ipam-driver -p authz-plugin -p outboard-cli --bins

## rootfs: one managed-plugin directory per plugin: config.json + rootfs/ (binary + empty dirs)
rootfs: build
	@set -e; for p in $(PLUGINS); do \
	  d=$(BUILD_DIR)/$$p; rm -rf $$d; \
	  mkdir -p $$d/rootfs/bin $$d/rootfs/state $$d/rootfs/run/docker/plugins $$d/rootfs/tmp \
	           $$d/rootfs/proc $$d/rootfs/sys $$d/rootfs/dev $$d/rootfs/etc; \
	  for extra in $$(sed -n 's/.*"destination": "\(.*\)".*/\1/p; s/.*"propagatedMount": "\(.*\)".*/\1/p' deploy/$$p/config.json); do \
	    mkdir -p $$d/rootfs$$extra; done; \
	  cp $(RELEASE_DIR)/outboard-$$p $$d/rootfs/bin/; \
	  cp deploy/$$p/config.json $$d/config.json; \
	  echo "rootfs $$p: $$(du -sh $$d/rootfs | cut -f1)"; \
	done

## plugin-create: create the plugins (disabled) from the rootfs dirs, replacing older installs
plugin-create: rootfs
	@set -e; for p in $(PLUGINS); do \
	  n=$(PLUGIN_PREFIX)-$$p:$(TAG); \
	  if $(DOCKER) plugin inspect $$n >/dev/null 2>&1; then \
	    echo "replacing $$n"; $(DOCKER) plugin rm -f $$n >/dev/null; fi; \
	  $(DOCKER) plugin create $$n $(BUILD_DIR)/$$p >/dev/null; \
	  mkdir -p $(STATE_ROOT)/$$p; \
	  $(DOCKER) plugin set $$n state.source=$(STATE_ROOT)/$$p; \
	  if grep -q '"name": "data"' deploy/$$p/config.json; then \
	    mkdir -p $(STATE_ROOT)/$$p-data; $(DOCKER) plugin set $$n data.source=$(STATE_ROOT)/$$p-data; fi; \
	  if [ $$p = authz ]; then \
	    mkdir -p $(POLICY_DIR) $(AUDIT_DIR); \
	    if [ ! -e $(POLICY_DIR)/policy.toml ]; then \
	      cp deploy/authz/policy.example.toml $(POLICY_DIR)/policy.toml; \
	      echo "installed example policy at $(POLICY_DIR)/policy.toml"; fi; \
	    $(DOCKER) plugin set $$n policy.source=$(POLICY_DIR) audit.source=$(AUDIT_DIR) \
	      SELF_NAME=$(PLUGIN_PREFIX)-authz:$(TAG),$(PLUGIN_PREFIX)-authz,$$($(DOCKER) plugin inspect -f '{{.Id}}' $$n); \
	  fi; \
	  echo "created $$n"; \
	done

## plugin-enable: enable the plugins
plugin-enable:
	@set -e; for p in $(PLUGINS); do \
	  n=$(PLUGIN_PREFIX)-$$p:$(TAG); \
	  $(DOCKER) plugin enable $$n >/dev/null; echo "enabled $$n"; \
	done

## cli-install: the `outboard` host command into PREFIX/bin
cli-install: build
	install -D -m 0755 $(RELEASE_DIR)/outboard $(DESTDIR)$(PREFIX)/bin/outboard
	@echo "installed $(DESTDIR)$(PREFIX)/bin/outboard"

## plugin-install: build, rootfs, create, enable (re-runnable), and the `outboard` command
plugin-install: plugin-create plugin-enable cli-install
	@$(DOCKER) plugin ls

## plugin-uninstall: disable and remove the plugins (state directories on the host are kept)
plugin-uninstall:
	@for p in $(PLUGINS); do \
	  n=$(PLUGIN_PREFIX)-$$p:$(TAG); \
	  if $(DOCKER) plugin inspect $$n >/dev/null 2>&1; then \
	    $(DOCKER) plugin rm -f $$n >/dev/null && echo "removed $$n"; fi; \
	done

## fmt / lint
fmt:
	cargo fmt --all

lint: deny
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

## deny: licenses, bans and sources of every dependency (deny.toml); installs cargo-deny if
## missing. Advisories need the RustSec database from GitHub: `make deny-advisories` where reachable.
deny: cargo-deny
	cargo deny check licenses bans sources

deny-advisories: cargo-deny
	cargo deny check advisories

cargo-deny:
	@command -v cargo-deny >/dev/null || cargo install --locked cargo-deny

## unit: unit, router and socket tests (no daemon needed)
unit:
	cargo test --workspace --locked

## e2e: end-to-end tests against private daemons, every test on each of E2E_DOCKERDS: 20.10
## (Debian 12's docker.io, installed if missing) and 26.1 (Debian 13's, fetched into
## target/dockerd-26, never installed). The passes run at the same time, the second in its own
## network namespace (tests/e2e/all.sh); E2E_SERIAL=1 runs them one after another.
## One daemon: make e2e E2E_DOCKERDS=26.1
E2E_DOCKERDS  ?= 20.10 26.1
e2e: rootfs
	bash tests/e2e/all.sh $(E2E_DOCKERDS)

## test: everything CI runs
test: lint unit fuzz-smoke e2e

## demo: the main job, visibly
demo: rootfs
	bash tests/e2e/demo.sh

## soak: chaos soak against a private dockerd with all four plugins (SOAK_MINUTES, SOAK_SEED,
## SOAK_FAULTS; see tests/soak/soak.sh). CI runs a 3-minute version (tests/e2e/test_soak.sh).
SOAK_MINUTES  ?= 30
soak: rootfs
	flock -o /tmp/outboard-e2e.lock env SOAK_MINUTES=$(SOAK_MINUTES) bash tests/soak/soak.sh

## bench: side-by-side benchmarks against the built-in drivers
bench: rootfs
	bash bench/run.sh

## fuzz: libFuzzer on the authz decoder, router and policy compiler (needs nightly + cargo-fuzz),
## FUZZ_SECONDS per target, seeded from the attack corpus; crashes land in target/fuzz/artifacts/
FUZZ_SECONDS  ?= 300
FUZZ_TARGETS  ?= authz_request body route policy_compile
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz (and rustup toolchain install nightly)"; exit 1; }
	python3 authz-plugin/fuzz/seeds.py target/fuzz/seeds
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/fuzz/corpus/$$t target/fuzz/artifacts/$$t; \
	  echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
	  (cd authz-plugin/fuzz && cargo +nightly fuzz run -s none --target-dir ../../target/fuzz-build $$t \
	    ../../target/fuzz/corpus/$$t ../../target/fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=../../target/fuzz/artifacts/$$t/); \
	done

## fuzz-smoke: the bounded CI run (15 s per target; skipped, saying so, without nightly/cargo-fuzz)
fuzz-smoke:
	@if command -v cargo-fuzz >/dev/null && cargo +nightly --version >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15; \
	else echo "fuzz-smoke SKIPPED: no nightly toolchain or cargo-fuzz"; fi

clean:
	cargo clean
