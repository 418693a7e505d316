# Developer entry points. SecantusDB (the local MongoDB-wire test server, GPL-2.0) is installed
# on demand into its own .venv-secantus by devtools/secantus.py, never into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Runs a command with MONGO_URL set: yours if exported, else a throw-away SecantusDB.
WITH_SERVER := $(PY) -m devtools.secantus run --
PYTEST_ARGS ?=
# Every extra, so the suite covers summaries, Motor and the CLI; dev tools come from the
# `dev` dependency group in pyproject.toml (not an extra: it is not published).
EXTRAS := summaries,motor,cli,encryption

.PHONY: $(VENV) lint test demo bench serve clean

# `make .venv`: (re)install only when pyproject.toml is newer than the stamp.
$(VENV): $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "$(PYTHON) is missing or older than 3.10; use make PYTHON=python3.X ..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet 'pip>=25.1'  # dependency groups (--group) need pip 25.1
	$(PY) -m pip install -e '.[$(EXTRAS)]' --group dev
	touch $@

lint: $(VENV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(WITH_SERVER) $(PY) -m pytest $(PYTEST_ARGS)

demo: $(VENV)
	$(WITH_SERVER) $(PY) examples/demo.py

bench: $(VENV)
	$(WITH_SERVER) $(PY) benchmarks/run.py

# A server by hand: make serve SERVE_ARGS='--port 27017 --storage-path .secantus-data'
serve: $(VENV)
	$(PY) -m devtools.secantus serve $(SERVE_ARGS)

clean:
	rm -rf $(VENV) .venv-secantus .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
