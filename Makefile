# emrshare — the two commands are `make demo` and `make test`; both run `make setup` first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
NODE_TOOLS := tools/node_modules/.package-lock.json
PYTEST_ARGS ?=

.PHONY: setup demo demo-all test lint format typecheck contracts check-artifacts unit integration bench clean

setup: $(STAMPS)/apt $(STAMPS)/venv $(NODE_TOOLS)

# Debian packages the tests use as oracles (ipfs_cid computes Kubo's CIDs independently).
$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@if ! command -v ipfs_cid >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian package ipfs-cid"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipfs-cid >/dev/null 2>&1 || \
	     (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipfs-cid >/dev/null)); \
	  else echo "warning: ipfs-cid is not installed and we are not root; CID oracle tests will fail"; fi; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

$(NODE_TOOLS): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

contracts: setup
	$(BIN)/python scripts/build_contracts.py

check-artifacts: setup
	$(BIN)/python scripts/build_contracts.py --check

lint: setup
	$(BIN)/ruff check src tests scripts examples benchmarks
	$(BIN)/ruff format --check src tests scripts examples benchmarks

format: setup
	$(BIN)/ruff format src tests scripts examples benchmarks
	$(BIN)/ruff check --fix src tests scripts examples benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

test: setup lint typecheck check-artifacts
	$(BIN)/pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/python scripts/demo.py

# The demo on each chain node the devnet offers (anvil, then ganache).
demo-all: setup
	$(BIN)/python scripts/demo.py --node anvil
	$(BIN)/python scripts/demo.py --node ganache

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(STAMPS) tools/node_modules .pytest_cache .mypy_cache .ruff_cache
