# GoBarber: `make run` starts the whole system, `make test` passes the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
export FLASK_APP := gobarber:create_app

.PHONY: install run test lint bench bench-full clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

.env:
	cp .env.example .env

run: install .env
	VENV=$(VENV) scripts/run-dev.sh

# The whole suite on PostgreSQL, then the API on the zero-setup SQLite default.
test: install
	$(VENV)/bin/pytest
	TEST_DATABASE=sqlite $(VENV)/bin/pytest tests/api tests/test_client_replays.py tests/test_migrations.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check gobarber consumers tests

# Benchmarks in their own environment (bench/.venv, bench/node_modules): peers are never
# project dependencies. `make bench` is the quick run (a few minutes), bench-full the
# issue's sizes. Results: bench/results/{results.json,table.txt,chart.png}.
BENCH_VENV := bench/.venv

$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	touch $@

bench/node_modules/.installed: bench/package.json
	cd bench && npm install --no-audit --no-fund --silent
	touch $@

bench-deps: $(BENCH_VENV)/.installed bench/node_modules/.installed
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq wrk >/dev/null); } \
		|| echo "bench: wrk not installed (not root?); web uses bench/loadgen.py instead"

bench: bench-deps
	$(BENCH_VENV)/bin/python bench/run.py

bench-full: bench-deps
	$(BENCH_VENV)/bin/python bench/run.py --full

clean:
	rm -rf $(VENV) instance mailbox .pytest_cache

# Brute force against a real gunicorn stack: what the throttles let through, what they
# cost (about a minute; bench/bruteforce.py says what it prints).
.PHONY: bench-bruteforce
bench-bruteforce: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/bruteforce.py
