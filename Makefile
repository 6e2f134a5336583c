# emrshare — the two commands are `make demo` and `make test`; both run `make setup` first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
NODE_TOOLS := tools/node_modules/.package-lock.json
# Every run lists its 40 slowest tests and runs in two workers (pytest-xdist, one test file
# per worker at a time): CI must stay under 40 minutes (docs/development.md).
PYTEST_ARGS ?= --durations=40 -n 2 --dist loadfile

.PHONY: setup demo demo-all test test-all test-web3-8 lint format typecheck contracts check-artifacts unit integration bench bench-all flame clean

setup: $(STAMPS)/apt $(STAMPS)/venv $(NODE_TOOLS)

# Debian packages the tests use: ipfs_cid computes Kubo's CIDs independently (an oracle);
# chromium and its chromedriver run the portal's browser tests (tests/integration/portal).
APT_PACKAGES := ipfs-cid chromium chromium-driver
$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@if ! command -v ipfs_cid >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages $(APT_PACKAGES)"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null 2>&1 || \
	     (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null)); \
	  else echo "warning: $(APT_PACKAGES) are not all installed and we are not root; CID oracle and browser tests will fail"; fi; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# A second venv with web3 8 (everything else pinned as in constraints.txt): `make test` runs
# the web3-facing slice below on it after the main suite (docs/development.md, "web3 7 and 8").
VENV8 := .venv-web3-8
$(STAMPS)/venv-web3-8: pyproject.toml constraints-web3-8.txt
	@mkdir -p $(STAMPS)
	@test -x $(VENV8)/bin/python || $(PY) -m venv $(VENV8)
	$(VENV8)/bin/python -m pip install -q --disable-pip-version-check -c constraints-web3-8.txt -e '.[dev]'
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

# The default run leaves out the tests marked `slow` (the demo and a devnet restart on
# ganache, a 100 MB file, the native-solc build) and runs forge's invariants 64 times each
# rather than 256: CI's 40-minute budget. `make test-all` runs everything in full.
test: setup lint typecheck check-artifacts
	EMRSHARE_FORGE_RUNS=64 $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-web3-8

test-all: setup lint typecheck check-artifacts
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-web3-8

# The chain layer on anvil (the main suite runs it on ganache too: the node's behaviour does
# not depend on the client's web3; forge's Solidity invariants use no web3), the
# in-process py-evm chain, real proxy processes, and the roles end to end (py-evm, anvil).
WEB3_8_TESTS := tests/unit/chain tests/unit/test_local_evm.py tests/unit/proxy/test_in_process.py \
  tests/integration/chain --deselect tests/integration/chain/test_forge_invariants.py \
  tests/integration/proxy/test_threshold_read.py::test_happy_path_opens_entries \
  tests/integration/proxy/test_threshold_read.py::test_sync_reads_reuse_a_passed_transport \
  tests/integration/proxy/test_policy_checks.py tests/integration/proxy/test_reorg.py \
  tests/integration/proxy/test_restart_and_audit.py tests/integration/proxy/test_serve_cli.py \
  tests/integration/roles/test_scenario.py::test_demo_scenario_through_the_library \
  tests/integration/roles/test_lifecycle.py::test_provider_writes_after_close

test-web3-8: $(STAMPS)/apt $(STAMPS)/venv-web3-8 $(NODE_TOOLS)
	$(VENV8)/bin/python -c 'import web3; assert web3.__version__.startswith("8."), web3.__version__'
	$(VENV8)/bin/pytest -p no:cacheprovider -n 2 --dist loadfile -k "not ganache" $(WEB3_8_TESTS)

demo: setup
	$(BIN)/python scripts/demo.py

# Every scene (emergency, prescriptions, research study too) on each chain node the devnet
# offers (anvil, then ganache); `make demo` runs the core scene only, under 90 s.
demo-all: setup
	$(BIN)/python scripts/demo.py --all --node anvil
	$(BIN)/python scripts/demo.py --all --node ganache

# Issue #19's goals in one table, every benchmark with small parameters (under 10 minutes;
# benchmarks/README.md). `make bench-all` runs each benchmark with its own defaults.
bench: setup
	$(BIN)/python benchmarks/summary.py

bench-all: setup
	@for b in benchmarks/*.py; do [ "$$b" = benchmarks/summary.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(VENV8) $(STAMPS) tools/node_modules .pytest_cache .mypy_cache .ruff_cache

# docs/performance.md's flame graphs (py-spy, sampling this process and its sealing
# workers during each phase only) into benchmarks/results/.
flame: setup
	$(BIN)/python benchmarks/flame.py
