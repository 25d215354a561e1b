# The README's two commands: `make run` and `make test`. Both create .venv and
# install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
TESTDEPS := $(VENV)/.test-installed

.PHONY: run test bench install clean

$(RUNTIME): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .  # the `mgs` command in .venv/bin
	touch $@

$(TESTDEPS): $(RUNTIME) requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

install: $(TESTDEPS)

run: $(RUNTIME)
	$(PY) -m services.embedded

test: $(TESTDEPS)
	$(PY) -m pytest

bench: $(TESTDEPS)
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) var *.egg-info
