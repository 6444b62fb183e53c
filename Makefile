# govshare — make help lists the targets.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
DATA_DIR ?= data
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help venv run test lint typecheck bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
	$(UV) sync --frozen
	@touch $@

venv: .venv/.synced ## Create .venv with the locked dependencies

run: venv ## Start the hub on http://127.0.0.1:8000 with demo departments and data
	GOVSHARE_DEMO=true .venv/bin/govshare serve --data-dir $(DATA_DIR) --port $(PORT)

test: venv ## Run the whole test suite (SQLite, PostgreSQL, browser)
	.venv/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: venv ## ruff and the duplicate finder's view of style
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck: venv ## mypy on src/
	.venv/bin/mypy src

bench: venv ## Catalog search benchmark (100,000 entries)
	.venv/bin/python bench/catalog_search.py --rows 100000

clean: ## Remove the virtualenv and local data
	rm -rf .venv data
