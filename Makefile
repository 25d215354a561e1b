# The README's two commands: `make run` and `make test`. Both create .venv and
# install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
TESTDEPS := $(VENV)/.test-installed

.PHONY: run test test-compose bench install clean delete-data

$(RUNTIME): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .  # the project (editable), its pinned requirements.txt, `mgs` in .venv/bin
	touch $@

$(TESTDEPS): $(RUNTIME) requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(TESTDEPS)

run: $(RUNTIME)
	$(PY) -m services.embedded

# Three pytest-xdist workers on this machine's two cores: the tests that start service processes
# mostly wait, in two groups on two of them, while the third runs the CPU-bound tests (tests/conftest.py).
# TEST_WORKERS=0 runs the suite in one process. Python caches bytecode here even where the environment
# says not to (PYTHONDONTWRITEBYTECODE): without the cache every API, worker and CLI process the tests
# start compiles the project anew, and each xdist worker rewrites the asserts of every plugin anew.
TEST_WORKERS ?= 3
test: export PYTHONDONTWRITEBYTECODE =
test: $(TESTDEPS)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The docker-compose stack run for real (root: installs and starts a Docker engine; tests/compose/).
test-compose: $(TESTDEPS)
	MGS_COMPOSE_TEST=1 $(PY) -m pytest tests/compose

bench: $(TESTDEPS)
	$(PY) benchmarks/engine.py

# Build products only: the venv, packaging metadata, caches. Job data (var/) is never touched here.
clean:
	rm -rf $(VENV) *.egg-info build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

# Deletes the embedded default's data: every job, its history and artifacts, and the broker's queue.
delete-data:
	rm -rf var
