# govshare — make help lists the targets.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
DATA_DIR ?= data
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help venv bench-venv run test lint typecheck bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Each target syncs only the dependency groups it needs, and a marker per group set
# remembers that it did (redone when pyproject.toml or uv.lock change). `make run` adds
# the runtime dependencies without removing anything (--inexact), so running between two
# test runs never uninstalls the test tools. The test environment is exact: what the
# suite passes with is what the lock says (it drops the bench group; hence the rm).
NEED_UV = command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
UV_SYNC = $(UV) sync --frozen --no-default-groups

.venv/.synced-run: pyproject.toml uv.lock
	@$(NEED_UV)
	$(UV_SYNC) --inexact
	@touch $@

.venv/.synced-dev: pyproject.toml uv.lock
	@$(NEED_UV)
	$(UV_SYNC) --group dev
	@rm -f .venv/.synced-bench
	@touch $@

.venv/.synced-bench: pyproject.toml uv.lock
	@$(NEED_UV)
	$(UV_SYNC) --group dev --group bench
	@touch $@

venv: .venv/.synced-dev ## Create .venv with the runtime and test dependencies (no bench group)

bench-venv: .venv/.synced-bench ## Add the bench group (Datasette, py-spy) to .venv for bench/*.py

run: .venv/.synced-run ## Start the hub on http://127.0.0.1:8000 with demo departments and data
	GOVSHARE_DEMO=true .venv/bin/govshare serve --data-dir $(DATA_DIR) --port $(PORT)

test: venv ## Run the whole test suite (SQLite, PostgreSQL, browser)
	.venv/bin/pytest -n 2 --dist loadgroup --durations=40 $(PYTEST_ARGS)

lint: venv ## ruff and the duplicate finder's view of style
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck: venv ## mypy on src/
	.venv/bin/mypy src

bench: .venv/.synced-bench ## Catalog search benchmark (100,000 entries); adds Datasette and py-spy
	.venv/bin/python bench/catalog_search.py --rows 100000

clean: ## Remove the virtualenv and local data
	rm -rf .venv data
