# evalhub — `make run` serves the demo at http://127.0.0.1:5000, `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000
# The stamp is newer than pyproject.toml once `pip install -e ".[dev]"` has succeeded.
STAMP  := $(VENV)/.evalhub-installed

.PHONY: help venv run worker test clean

help:
	@echo "make run     create .venv if needed, migrate, load the demo data, start the worker and serve http://$(HOST):$(PORT)"
	@echo "make test    run the tests on SQLite, and at the same time on PostgreSQL when EVALHUB_TEST_DATABASE_URL is set"
	@echo "make worker  run the background-job worker (huey) in the foreground"
	@echo "make venv    create .venv and install evalhub with its dev dependencies"
	@echo "make clean   remove .venv and caches (the instance/ folder with your data is kept)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $@

# Local `make run` serves plain http, so session cookies must not be marked Secure.
run: export EVALHUB_COOKIE_SECURE ?= 0

# The worker and the web server both run in the background of one shell that waits for the server; whatever
# ends it (Ctrl-C, a TERM to make, the server exiting) runs the EXIT trap, which stops both.
run: venv
	$(FLASK) db upgrade
	$(FLASK) evalhub demo
	@worker=""; web=""; \
	stop() { trap - EXIT INT TERM; for p in $$web $$worker; do kill "$$p" 2>/dev/null; done; wait 2>/dev/null; }; \
	trap stop EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(BIN)/huey_consumer evalhub.tasks.huey -w 1 & worker=$$!; \
	$(FLASK) run --host $(HOST) --port $(PORT) & web=$$!; \
	echo "evalhub: http://$(HOST):$(PORT) (web pid $$web, worker pid $$worker) — demo accounts in README.md, password evalhub-demo; Ctrl-C stops both"; \
	wait $$web

worker: venv
	$(BIN)/huey_consumer evalhub.tasks.huey -w 1

# Both runs always happen; the target fails if either failed (pytest's exit 5, "no tests ran", too). On success
# pytest's own summary line is the last line printed, as CI expects.
test: venv
	@# With a PostgreSQL URL, both databases run at once (one per core), each in its own temporary folder;
	@# the PostgreSQL run's output is printed when it ends. The state-machine property test explores 60 call
	@# sequences on SQLite and 30 on PostgreSQL (its rules do not depend on the database; PostgreSQL's run is the
	@# longer of the two), unless EVALHUB_PROPERTY_SEQUENCES says otherwise. The SQLite run is the shorter, and
	@# runs at a lower priority (nice): when both want both cores, PostgreSQL's run goes first. The tests that reach
	@# no database, and the browser tests, run in the SQLite run only (tests/conftest.py, EVALHUB_DATABASE_TESTS_ONLY).
	@status=0; pg_url="$${EVALHUB_TEST_DATABASE_URL:-}"; mkdir -p test-results; \
	if [ -z "$$pg_url" ]; then echo "== EVALHUB_TEST_DATABASE_URL is not set: tests run on SQLite only"; fi; \
	if [ -n "$$pg_url" ]; then \
		echo "== evalhub tests on PostgreSQL, in parallel: $$(sed -E 's#(//[^:@/]*):[^@/]*@#\1:***@#' <<< "$$pg_url")"; \
		EVALHUB_PROPERTY_SEQUENCES=$${EVALHUB_PROPERTY_SEQUENCES:-30} EVALHUB_DATABASE_TESTS_ONLY=1 \
		$(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=test-results/tmp-postgresql \
			> test-results/postgresql.log 2>&1 & pg_pid=$$!; \
	fi; \
	echo "== evalhub tests on SQLite (temporary file database)"; \
	$$([ -n "$$pg_url" ] && echo nice -n 10) env -u EVALHUB_TEST_DATABASE_URL $(BIN)/python -m pytest -q -p no:cacheprovider --basetemp=test-results/tmp-sqlite \
		|| status=1; \
	if [ -n "$$pg_url" ]; then \
		wait $$pg_pid || status=1; \
		echo "== evalhub tests on PostgreSQL: output"; cat test-results/postgresql.log; \
	fi; \
	if [ $$status -ne 0 ]; then echo "== make test: FAILED (see the runs above)"; fi; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info test-results
	find . -path ./instance -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
