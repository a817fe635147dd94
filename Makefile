# GoBarber: `make run` starts the whole system, `make test` passes the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
export FLASK_APP := gobarber:create_app

.PHONY: install run demo translations screenshots test lint bench bench-full clean

# Two installs into one environment: `run` (the app and the development mail sink) for
# `make run` and `make demo`; `dev` (run's, plus the test and lint tools) for the rest.
$(VENV)/.run-installed: pyproject.toml
	@echo "run: installing GoBarber and what running it needs into $(VENV) (once; about 15 s)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@PYTHONUNBUFFERED=1 $(PY) -m pip install --disable-pip-version-check -e '.[run]' \
		| grep --line-buffered -E '^(Collecting|Successfully|ERROR)' || true
	@$(PY) -c 'import gobarber, aiosmtpd' && touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-installed

install: $(VENV)/.installed

# Written once, never overwritten: what differs from the defaults (.env.example lists
# every setting with its default), and retries within seconds, to be watched. Settings
# on the command line win over it.
.env:
	@printf '%s\n' '# Settings of this checkout that differ from the defaults; .env.example lists' \
		'# every setting. The command line wins: make run PORT=4000 serves on 4000.' \
		'APP_ENV=development' \
		'# A mail that failed is tried again after 5 s, then 10 s... (default 30 s).' \
		'MAIL_RETRY_BASE=5' > $@
	@echo "run: wrote .env (development; retries after 5 s; every other setting at its default)"

# Web, worker, reaper and the mail sink (Procfile.dev), and a Redis when none answers at
# REDIS_URL; gobarber/devstack.py says how.
run: $(VENV)/.run-installed .env
	@$(PY) -m gobarber.devstack

# A shop to try: providers, customers and bookings over the next days (flask seed).
demo: $(VENV)/.run-installed .env
	@$(VENV)/bin/flask db upgrade
	@$(VENV)/bin/flask seed

# The pages' pt-BR catalogues: each domain's .po compiled to the .mo the app reads
# (both committed; tests/web/test_language.py holds each .mo to its .po).
translations: install
	for po in gobarber/translations/*/LC_MESSAGES/*.po; do \
		$(VENV)/bin/pybabel compile -i $$po -o $${po%.po}.mo; done

# The README's pictures of the shop's pages, taken by their browser tests.
screenshots: install
	GOBARBER_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q tests/web/test_customer_pages.py \
		tests/web/test_provider_pages.py tests/web/test_profile_page.py tests/web/test_accounts_pages.py

# The whole suite on PostgreSQL, then the API on the zero-setup SQLite default.
test: install
	$(VENV)/bin/pytest
	TEST_DATABASE=sqlite $(VENV)/bin/pytest tests/api tests/test_client_replays.py tests/test_migrations.py tests/test_seed.py

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

# Everything make run, make demo and make test made, but .env: the venv, the SQLite
# database and uploads (instance/), the mailbox.
clean:
	rm -rf $(VENV) instance mailbox .pytest_cache

# Brute force against a real gunicorn stack: what the throttles let through, what they
# cost (about a minute; bench/bruteforce.py says what it prints).
.PHONY: bench-bruteforce
bench-bruteforce: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/bruteforce.py
