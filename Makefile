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

clean:
	rm -rf $(VENV) instance mailbox .pytest_cache
