# LogOps: every entry point a user or CI needs. `make test` and `make demo` set up
# everything themselves on a fresh Debian machine and are safe to run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEBS   := syslog-ng-core redis-server shellcheck chromium prometheus prometheus-alertmanager docker-compose
# Run apt and npm through sudo only when not already root.
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps test test-fast lint proto buf-lint native-check demo up down auth-smoke \
  bench soak mutation mutation-c dashboards clean

help:
	@echo "make demo   - start both gateways on free ports, push signed batches through the Auth Gateway, run the default"
	@echo "              scenario (~30 s) with its verify account and report, stop Ingest and see a batch spooled then"
	@echo "              delivered once; show what was stored (LOGOPS_SCENARIO_SCALE=0.2 for a shorter scenario)"
	@echo "make up     - run both gateways in the background (Auth 8081/50052 -> Ingest 8080/50051), wait until ready;"
	@echo "              pid and log in data/run/, throwaway keys in data/run/keys/ (UP_ARGS='--keys-file F' for yours)"
	@echo "make down   - stop what make up started (safe when nothing runs)"
	@echo "make auth-smoke - signed, bad secret, old timestamp, replay, burst: expected vs actual (starts make up if needed)"
	@echo "make scenario-NAME - run scenarios/NAME.yaml against the gateways of make up (started if needed); run folder in"
	@echo "              data/runs/ (SCENARIO_ARGS='--short' for the short version)"
	@echo "make scenarios - the short version of every shipped scenario, one after the other; fails if one fails"
	@echo "make obs-up - Prometheus + Alertmanager (+ Loki, Grafana, log shipping with Docker): compose when a Docker"
	@echo "              engine answers, else Debian's binaries in the background (data/run/obs/); OBS_ARGS='--rules-scale 30'"
	@echo "              runs the rules 30x faster, as make scenario-NAME does for scenarios that expect alerts"
	@echo "make obs-down - stop what make obs-up started (safe when nothing runs)"
	@echo "make test   - install what is needed, lint the schema and run the whole test suite"
	@echo "make bench  - throughput and latency: Ingest and its syslog listener beside syslog-ng, Auth -> Ingest, hostile clients"
	@echo "make soak   - ten minutes of constant load: does the gateway's memory stay flat?"
	@echo "make mutation - mutation testing of the gateway's core modules: score per module and survivors"
	@echo "make mutation-c - hand-made mutants of the C hot path against its differential tests"
	@echo "make lint   - ruff and mypy"
	@echo "make proto  - regenerate the Python code from proto/"
	@echo "make dashboards - regenerate the Grafana dashboards' JSON from observability/grafana/*.py"

# The editable install also compiles the C hot path in place (services/ingest/_native.c).
$(STAMP): pyproject.toml services/ingest/_native.c $(wildcard services/ingest/csrc/*.c)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# Debian packages and npm's buf; skipped when already present.
system-deps:
	@command -v loggen >/dev/null && command -v syslog-ng >/dev/null && command -v redis-server >/dev/null \
	  && command -v shellcheck >/dev/null && command -v chromium >/dev/null && command -v promtool >/dev/null \
	  && command -v prometheus-alertmanager >/dev/null && command -v docker-compose >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBS) >/dev/null; }
	@command -v buf >/dev/null || $(SUDO) npm install -g --silent @bufbuild/buf >/dev/null

buf-lint: system-deps
	buf lint

# One command generates the committed Python code; tests/unit/test_generated.py runs it
# into a temporary folder and fails on any difference.
PROTO_OUT ?= proto/gen
proto: $(STAMP)
	mkdir -p $(PROTO_OUT)/logops/v1
	$(PY) -m grpc_tools.protoc -I proto --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
	  --grpc_python_out=$(PROTO_OUT) $$(cd proto && find logops -name '*.proto' | sort)
	touch $(PROTO_OUT)/logops/__init__.py $(PROTO_OUT)/logops/v1/__init__.py

test: install system-deps buf-lint lint native-check
	$(PY) -m pytest -q

# The extension is optional for users (no compiler: the pure-Python path runs), not for
# the tests, which compare both paths.
native-check: install
	@$(PY) -c "import services.ingest._native" || \
	  { echo "the C extension did not build: see the output of pip install -e ."; exit 1; }

# The C-path tests (and the IdTable's) against the extension built with AddressSanitizer
# and UBSan into a temporary folder, which goes first on services.ingest's path: the
# in-place build is left alone. Python itself is not instrumented: libasan is preloaded,
# PYTHONMALLOC=malloc lets ASan see the PyMem buffers, leaks are not checked (Python
# leaks at exit), and pytest captures sys.stderr only, so a report reaches the terminal.
# Any report stops the run with a failure. Not part of `make test`: 30-50 s on 2 cores.
.PHONY: sanitize
SANITIZE_CFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -O1 -g -Wall
SANITIZE_TESTS := tests/unit/ingest/test_native_*.py tests/unit/ingest/test_batch_index.py tests/unit/auth/test_native_topb_hop.py
sanitize: install
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	inc=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	ext=$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
	gcc -shared -fPIC $(SANITIZE_CFLAGS) -I"$$inc" services/ingest/_native.c -o "$$tmp/_native$$ext"; \
	LD_PRELOAD=$$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	$(PY) -c 'import sys, pytest, services.ingest as pkg; pkg.__path__.insert(0, sys.argv[1]); \
	from services.ingest import _native; assert _native.__file__.startswith(sys.argv[1]); \
	sys.exit(pytest.main(sys.argv[2:]))' "$$tmp" -q -p no:cacheprovider --capture=sys $(SANITIZE_TESTS)

test-fast: install
	$(PY) -m pytest -q -m 'not slow'

lint: install
	$(VENV)/bin/ruff check services emitters clients tests observability
	$(VENV)/bin/mypy
	$(PY) -m observability.grafana.build --check

# The Grafana dashboards' JSON, generated from their Python source (observability/grafana/);
# `make lint` fails when the committed JSON differs from what the source gives.
dashboards: install
	$(PY) -m observability.grafana.build

demo: install
	$(PY) -m services.demo

# `logops up` in the background; services/background.py holds the logic (pid, log, readiness).
UP_ARGS ?=
up: install
	@$(PY) -m services.background start -- $(UP_ARGS)

down:
	@if [ -x $(PY) ]; then $(PY) -m services.background stop; else echo "LogOps is not running."; fi

# SMOKE_ARGS='--key-id K --secret-file F' when make up runs with your own keys.
SMOKE_ARGS ?=
auth-smoke: install
	@$(PY) -m services.background start -- $(UP_ARGS)
	$(PY) -m services.smoke $(SMOKE_ARGS)

# Scenarios (docs/scenarios.md) against the gateways of `make up`, which is started when it
# does not run. `make scenarios` runs the short version (--short: durations x 0.2, or
# LOGOPS_SCENARIO_SCALE) of each and fails when one of them does. A scenario that expects
# alerts (outage, auth-abuse) also needs Prometheus and Alertmanager: `make obs-up` is
# started first with the rules sped up 30x (SCENARIO_OBS_ARGS), so that alerts paced for
# production fire within a run of seconds. The runner serves its metrics on 9108, where
# Prometheus scrapes it (observability/prometheus/targets/).
SCENARIO_NAMES := $(basename $(notdir $(wildcard scenarios/*.yaml)))
SCENARIO_ARGS ?=
SCENARIO_OBS_ARGS ?= --mode local --rules-scale 30
SCENARIO_METRICS_PORT ?= 9108
SCENARIO_TARGETS := $(addprefix scenario-,$(SCENARIO_NAMES))
expects_alerts = grep -qE '^[[:space:]]*-[[:space:]]*\{?[[:space:]]*alert:' scenarios/$(1).yaml
.PHONY: scenarios $(SCENARIO_TARGETS)
$(SCENARIO_TARGETS): scenario-%: install
	@$(PY) -m services.background start -- $(UP_ARGS)
	@if $(call expects_alerts,$*); then $(PY) -m services.obs_stack up $(SCENARIO_OBS_ARGS); fi
	$(PY) -m services.cli scenario run scenarios/$*.yaml --metrics-port $(SCENARIO_METRICS_PORT) $(SCENARIO_ARGS)

scenarios: install
	@$(PY) -m services.background start -- $(UP_ARGS)
	@$(PY) -m services.obs_stack up $(SCENARIO_OBS_ARGS)
	@failed=""; for name in $(SCENARIO_NAMES); do \
	  echo "== scenario $$name (short)"; \
	  $(PY) -m services.cli scenario run scenarios/$$name.yaml --short \
	    --metrics-port $(SCENARIO_METRICS_PORT) $(SCENARIO_ARGS) || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "scenarios that failed:$$failed"; exit 1; fi; echo "every scenario held"

# The observability stack (docs/observability.md): compose when a Docker engine answers, else
# Debian's Prometheus and Alertmanager in the background with the same configuration (pids,
# logs and data in data/run/obs/). OBS_ARGS='--rules-scale 30' runs the rules 30x faster.
.PHONY: obs-up obs-down obs-status
OBS_ARGS ?=
obs-up: install
	@$(PY) -m services.obs_stack up $(OBS_ARGS)

obs-down:
	@if [ -x $(PY) ]; then $(PY) -m services.obs_stack down; else echo "The observability stack is not running."; fi

obs-status: install
	@$(PY) -m services.obs_stack status

bench: install system-deps
	$(PY) -m tests.bench.ingest_bench
	$(PY) -m tests.bench.emit_bench
	$(PY) -m tests.bench.syslog_bench
	$(PY) -m tests.bench.verify_bench
	$(PY) -m tests.bench.formats_bench
	$(PY) -m tests.bench.rate_bench

# Ten minutes of constant load on one gateway, RSS sampled every 5 s.
soak: install system-deps
	$(PY) -m tests.bench.ingest_bench --soak-only --soak 600

# Mutation testing (mutmut, configured in pyproject.toml) of the core modules on the
# Python path, from scratch; MUTANTS='services.ingest.sink.*' re-checks only those mutants
# and keeps the other results. The work copy is mutants/ (ignored by git), where
# `mutmut show NAME` and `mutmut browse` work afterwards. Prints the score per module and
# the surviving mutants (docs/testing.md). Not part of `make test`: about three hours here.
MUTANTS ?=
mutation: install
	@[ -n "$(MUTANTS)" ] || rm -rf mutants; mkdir -p mutants
	@start=$$SECONDS; echo "mutmut run: the log goes to mutants/run.log"; \
	$(VENV)/bin/mutmut run $(MUTANTS) > mutants/run.log 2>&1 || { tail -40 mutants/run.log; exit 1; }; \
	$(PY) -m tests.mutation.report; \
	echo "took $$(( (SECONDS - start) / 60 )) min $$(( (SECONDS - start) % 60 )) s"

# Hand-made mutants of the C hot path against the differential suites (tests/mutation/c_mutants.py).
mutation-c: install
	$(PY) -m tests.mutation.c_mutants $(MUTANTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info services/ingest/_native*.so
