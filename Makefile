# The two quick-start commands are `make demo` and `make test`; both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-data
DEMO_EVENTS ?= 1000000
DEMO_SMTP_PORT ?= 8025
export CARTPULSE_HOME ?= $(CURDIR)/cartpulse-home

.PHONY: help install demo test lint typecheck unit bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cartpulse needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install cartpulse with its dev tools

demo: $(STAMP) ## generate demo data, replay it through the pipeline, email abandoned carts to a local SMTP sink
	$(BIN)/cartpulse generate --out $(DEMO_DIR) --events $(DEMO_EVENTS) --days 7
	@set -e; \
	$(BIN)/cartpulse mail-sink --port $(DEMO_SMTP_PORT) & sink=$$!; \
	trap 'kill $$sink 2>/dev/null' EXIT; sleep 1; \
	$(BIN)/cartpulse replay $(DEMO_DIR)/events.csv.gz --customers $(DEMO_DIR)/customers.csv; \
	CARTPULSE_SMTP__PORT=$(DEMO_SMTP_PORT) $(BIN)/cartpulse outbox send
	$(BIN)/cartpulse query "SELECT event_date, count(*) AS events, count(DISTINCT user_id) AS visitors, round(sum(price) FILTER (WHERE event_type = 'purchase'), 2) AS revenue FROM events GROUP BY 1 ORDER BY 1"
	$(BIN)/cartpulse query "SELECT count(*) AS abandoned_carts, round(sum(cart_value), 2) AS value_left_in_carts, round(avg(item_count), 2) AS avg_items FROM abandoned_carts"
	$(BIN)/cartpulse query "SELECT status, coalesce(reason, '') AS reason, count(*) AS carts FROM retarget_messages GROUP BY ALL ORDER BY carts DESC"
	$(BIN)/cartpulse query "SELECT product_id, purchases, round(revenue, 2) AS revenue FROM product_sales_total ORDER BY revenue DESC LIMIT 5"
	$(BIN)/cartpulse query "SELECT reason, sum(rows) AS rows FROM dq_counts GROUP BY 1 ORDER BY 2 DESC"
	@echo "Home: $(CARTPULSE_HOME) — emails sent to the local sink are in $(CARTPULSE_HOME)/mail/new"
	@echo "Try: $(BIN)/cartpulse outbox list --status sent"

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

unit: $(STAMP) ## run the test suite only
	$(BIN)/pytest -q -n 2 --dist loadfile

test: lint typecheck unit ## lint, type-check and run every test

bench: $(STAMP) ## run the benchmarks (see docs/benchmarks.md)
	$(BIN)/cartpulse bench

clean: ## remove .venv, demo data and the default home
	rm -rf $(VENV) $(DEMO_DIR) cartpulse-home .mypy_cache .ruff_cache .pytest_cache
