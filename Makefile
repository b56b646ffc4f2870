# The two quick-start commands are `make demo` and `make test`; both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-data
DEMO_EVENTS ?= 1000000
DEMO_SMTP_PORT ?= 8025
DEMO_PORT ?= 8000
DEMO_WRITE_KEY ?= demo-write-key
# 1: keep serve running after the demo data is sent (Ctrl-C stops it); 0: stop at once
DEMO_STAY ?= 1
export CARTPULSE_HOME ?= $(CURDIR)/cartpulse-home

.PHONY: help install demo test lint typecheck unit bench clean chromium screenshots test-spark-long

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cartpulse needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install cartpulse with its dev tools

demo: $(STAMP) ## generate demo data, run `cartpulse serve` with a local SMTP sink, send the data to it live
	@test -f $(DEMO_DIR)/.complete || { $(BIN)/cartpulse generate --out $(DEMO_DIR) --events $(DEMO_EVENTS) --days 7 && touch $(DEMO_DIR)/.complete; }
	$(BIN)/cartpulse customers import $(DEMO_DIR)/customers.csv
	@set -e; \
	export CARTPULSE_SMTP__PORT=$(DEMO_SMTP_PORT) CARTPULSE_COLLECTOR__WRITE_KEYS=$(DEMO_WRITE_KEY); \
	$(BIN)/cartpulse mail-sink --port $(DEMO_SMTP_PORT) & sink=$$!; \
	$(BIN)/cartpulse serve --port $(DEMO_PORT) & serve=$$!; \
	trap 'kill -TERM $$serve 2>/dev/null; wait $$serve; kill $$sink 2>/dev/null' EXIT INT TERM; \
	sleep 2; \
	if [ ! -f $(CARTPULSE_HOME)/state/demo-sent ]; then \
	  $(BIN)/cartpulse replay $(DEMO_DIR)/events.csv.gz --to http://127.0.0.1:$(DEMO_PORT) --write-key $(DEMO_WRITE_KEY) && touch $(CARTPULSE_HOME)/state/demo-sent; \
	fi; \
	sleep 3; \
	$(BIN)/cartpulse query "SELECT count(*) AS abandoned_carts, round(sum(cart_value), 2) AS value_left_in_carts, round(avg(item_count), 2) AS avg_items FROM abandoned_carts"; \
	$(BIN)/cartpulse query "SELECT status, coalesce(reason, '') AS reason, count(*) AS carts FROM retarget_messages GROUP BY ALL ORDER BY carts DESC"; \
	$(BIN)/cartpulse query "SELECT product_id, purchases, round(revenue, 2) AS revenue FROM product_sales_total ORDER BY revenue DESC LIMIT 5"; \
	$(BIN)/cartpulse query "SELECT reason, sum(rows) AS rows FROM dq_counts GROUP BY 1 ORDER BY 2 DESC"; \
	echo; \
	echo "cartpulse serve is running: dashboard at http://127.0.0.1:$(DEMO_PORT)/live (password in $(CARTPULSE_HOME)/state/dashboard.password)"; \
	echo "API docs /docs and metrics /metrics take that login or the admin token: curl -H \"Authorization: Bearer \$$(cat $(CARTPULSE_HOME)/state/admin.token)\" http://127.0.0.1:$(DEMO_PORT)/metrics"; \
	echo "Send more events: $(BIN)/cartpulse replay FILE --to http://127.0.0.1:$(DEMO_PORT) --write-key $(DEMO_WRITE_KEY)"; \
	echo "Emails land in $(CARTPULSE_HOME)/mail/new. Query: $(BIN)/cartpulse query \"SELECT * FROM abandoned_carts LIMIT 5\""; \
	if [ "$(DEMO_STAY)" = "1" ]; then echo "Press Ctrl-C to stop (events are drained and committed)."; wait $$serve; fi

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser build).
chromium: ## install /usr/bin/chromium for the browser tests (as root; they skip without it)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: /usr/bin/chromium is missing and this is not root: the browser tests will be skipped (sudo apt-get install chromium)"; fi

unit: $(STAMP) chromium ## run the test suite only
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

test: lint typecheck unit ## lint, type-check and run every test

test-spark-long: $(STAMP) ## Spark kill + restart, and parity in local-cluster[2,1,1024] (slow, not in `make test`)
	CARTPULSE_SPARK_LONG_TESTS=1 $(BIN)/pytest -q tests/integration/test_spark_processes.py

screenshots: $(STAMP) chromium ## run the browser tests and replace the README's screenshots in docs/img/
	CARTPULSE_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/e2e/test_dashboard_browser.py

bench: $(STAMP) ## run the benchmarks (see docs/benchmarks.md)
	$(BIN)/cartpulse bench

clean: ## remove .venv, demo data and the default home
	rm -rf $(VENV) $(DEMO_DIR) cartpulse-home .mypy_cache .ruff_cache .pytest_cache
