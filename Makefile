# Loom: two commands on a fresh machine.
#   make up     install everything, start NATS, Postgres and every service (detached)
#   make test   install what is missing, run every test
# Everything lives in one virtualenv, .venv, for the whole repo.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.loom-setup
PACKAGES := libs/protos libs/common services/inference services/tools services/rag services/orchestrator services/gateway
PYPROJECTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
PROTOS := $(shell find protos -name '*.proto')
# llama-cpp-python builds from source (~5-9 min on 2 cores) for the building CPU (-march=native),
# so its wheel must never reach another CPU: it is built once per CPU flags + CMAKE_ARGS + version
# into a folder of its own and installed from there, never through pip's shared wheel cache.
# LLAVA_BUILD builds llama.cpp's multimodal library (mtmd, for vision). See docs/inference.md.
export CMAKE_ARGS ?= -DLLAVA_BUILD=ON
LLAMA_CPP := llama-cpp-python==$(shell sed -n 's/^ *"llama-cpp-python==\([0-9.]*\)",$$/\1/p' services/inference/pyproject.toml)
LLAMA_KEY := $(shell { grep -m1 '^flags' /proc/cpuinfo; echo '$(CMAKE_ARGS) $(LLAMA_CPP)'; } | sha256sum | cut -c1-16)
LLAMA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/loom/llama-wheels/$(LLAMA_KEY)
# Extra pytest arguments (e.g. PYTEST_ARGS="-x -k gateway"). No re-runs: a test must pass on its
# first try on any machine and under load; each run ends with its ten slowest tests, the time
# budget's early warning (make test < 25 min, make test-fast < 5 min on 2 cores).
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest --durations=10

.PHONY: setup up down status test test-fast proto lint bench clean help console test-console chromium kubectl redis h2load wheelhouse derived-models

help:
	@echo "make up | down | status | test | test-fast | lint | proto | bench | setup | clean"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip wheel setuptools

# Each package is installed editable with its optional `test` extra (SDKs the tests drive).
# Re-run set-up whenever a package's dependencies or a contract change.
$(STAMP): $(PY) $(PYPROJECTS) requirements-dev.txt $(PROTOS) scripts/gen_protos.sh
	$(PIP) install -q -r requirements-dev.txt
	PY=$(PY) bash scripts/gen_protos.sh
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
	  $(PIP) wheel --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "$(LLAMA_CPP)"
	$(PIP) install --find-links $(LLAMA_WHEELS) $(foreach p,$(PACKAGES),-e "$(p)[test]")
	@touch $(STAMP)

setup: $(STAMP) console derived-models

# Models derived once from the bundled MiniLM (ONNX int8 and the model2vec static table; see
# docs/rag.md), kept in ~/.cache/loom/derived-models; a service builds them on first use otherwise.
derived-models: $(STAMP)
	$(PY) -m loom_inference.backends.minilm_derived --ensure-all

# The web console (services/console): `npm ci` when the lockfile changes, `vite build` when a
# source changes; server.mjs serves the build on :3000 under `make up`.
CONSOLE := services/console
CONSOLE_SRC := $(shell find $(CONSOLE)/src $(CONSOLE)/index.html $(CONSOLE)/vite.config.ts $(CONSOLE)/tsconfig.json -type f 2>/dev/null)
$(CONSOLE)/node_modules/.package-lock.json: $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund
$(CONSOLE)/dist/index.html: $(CONSOLE)/node_modules/.package-lock.json $(CONSOLE_SRC)
	cd $(CONSOLE) && npm run build
console: $(CONSOLE)/dist/index.html

# The console's unit tests (vitest) and the browser tests' Chromium: Debian's package, driven by
# Playwright through executable_path (Playwright's own browser download cannot work here).
test-console: console
	cd $(CONSOLE) && npm test
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; } \
	  || sudo apt-get install -y -q chromium
# Debian's kubectl (client 1.32, Kustomize 5.5): tests/test_deploy_validate.py renders the overlays.
kubectl:
	@command -v kubectl >/dev/null || { apt-get update -q && apt-get install -y -q kubectl; } \
	  || sudo apt-get install -y -q kubectl

# Debian's h2load (nghttp2-client) and wrk: bench/gateway.py's load generators (h2load: HTTP/1.1
# and HTTP/2 per server; wrk: the non-LLM rate, pinned apart from the gateway).
h2load:
	@command -v h2load >/dev/null || { apt-get update -q && apt-get install -y -q nghttp2-client; } \
	  || sudo apt-get install -y -q nghttp2-client
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; } \
	  || sudo apt-get install -y -q wrk

# Debian's redis-server (and redis-cli): the gateway's Redis tests run it, alone and as a cluster;
# they skip, saying why, only where apt cannot install it.
redis:
	@command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; } \
	  || sudo apt-get install -y -q redis-server || echo "redis-server not installed: its tests will skip" >&2

# The engine on its own (docs/inference.md, "Install"): wheels of loom-protos, loom-common and
# loom-inference (the first two are on no index) plus this CPU's llama.cpp wheel, so that
# `pip install --find-links $(WHEELHOUSE) loom-inference` gives a working `llm-engine`.
WHEELHOUSE ?= dist/wheelhouse
wheelhouse: $(PY)
	test -d libs/protos/src/loom || PY=$(PY) bash scripts/gen_protos.sh
	rm -f $(WHEELHOUSE)/loom_*.whl
	$(PIP) wheel -q --no-deps -w $(WHEELHOUSE) ./libs/protos ./libs/common ./services/inference
	cp -f $(LLAMA_WHEELS)/llama_cpp_python-*.whl $(WHEELHOUSE)/ 2>/dev/null || true

proto: $(PY)
	$(PIP) install -q grpcio-tools
	PY=$(PY) bash scripts/gen_protos.sh

up: setup
	$(VENV)/bin/loom-stack up

down:
	@if [ -x $(VENV)/bin/loom-stack ]; then $(VENV)/bin/loom-stack down; fi

status:
	$(VENV)/bin/loom-stack status

# pytest's exit 5 (nothing collected: a marker or -k that matches no test) fails too, with a hint.
test: setup chromium kubectl redis test-console
	$(PYTEST) $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no test (exit 5): check PYTEST_ARGS" >&2; exit $$rc; }

# Everything but the tests marked slow (real model, many processes).
test-fast: setup kubectl redis
	$(PYTEST) -m "not slow" $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no test (exit 5): check PYTEST_ARGS" >&2; exit $$rc; }

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: setup h2load
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean: down
	rm -rf .loom
