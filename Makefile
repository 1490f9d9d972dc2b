# `make demo` and `make test` do all set-up on a fresh machine: they create .venv
# with Python 3.10 (lava-nc 0.10.0 imports on no other version) and install the project
# with NEST, PyNN, Brian 2 and sPyNNaker (the PyNN target's tests run them) and model-signing.
PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= out/demo

# `make test-core PYTHON=python3.12`: the suite that needs no Lava, on another interpreter, in
# its own environment (numpy 2 where the dependencies allow it). pyenv pins this folder to 3.10
# (.python-version); naming all its versions lets PYTHON be any installed one.
CORE_VENV = .venv-core-$(notdir $(PYTHON))
PYENV_ALL = $(shell pyenv versions --bare 2>/dev/null | paste -sd: -)

.PHONY: demo test test-core bench docs lint typecheck clean

# Set-up reports on stderr, so that `make bench > bench.json` holds the JSON alone even on a fresh machine.
$(INSTALLED): pyproject.toml Makefile
	@echo "setting up $(VENV) (Python 3.10, the project, NEST, sPyNNaker and the test tools) ..." >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet -e '.[dev,docs,nest,brian2,spinnaker,lava,sign]' >&2
	@$(BIN)/python -m pip install --quiet --no-deps lava-dl==0.6.0 >&2
	@touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/delaydeploy demo -o $(DEMO_DIR)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q --durations=15 tests hardware_tests

$(CORE_VENV)/.installed: pyproject.toml Makefile
	@echo "setting up $(CORE_VENV) ($(PYTHON), the project without Lava) ..." >&2
	@test -x $(CORE_VENV)/bin/python || PYENV_VERSION=$(PYENV_ALL) $(PYTHON) -m venv $(CORE_VENV) >&2
	@$(CORE_VENV)/bin/python -m pip install --quiet --upgrade pip >&2
	@$(CORE_VENV)/bin/python -m pip install --quiet -e '.[dev,nest,brian2,spinnaker,sign]' >&2
	@touch $@

test-core: $(CORE_VENV)/.installed
	$(CORE_VENV)/bin/python -m pytest -q tests hardware_tests

bench: $(INSTALLED)
	@$(BIN)/python -m benchmarks

# The documentation site, warnings as errors; the tutorials in docs/tutorials/ run on every build.
docs: $(INSTALLED)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

lint: $(INSTALLED) typecheck
	$(BIN)/ruff check .

# mypy reads packages from folders, and delaydeploy.exporters is the repository's exporters/
# folder only once installed: it checks a tree of links laid out as the wheel installs them.
TYPECHECK := build/typecheck
typecheck: $(INSTALLED)
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/delaydeploy
	@for entry in delaydeploy/*; do ln -s "$(CURDIR)/$$entry" $(TYPECHECK)/delaydeploy/; done
	@ln -s "$(CURDIR)/exporters" $(TYPECHECK)/delaydeploy/exporters
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p delaydeploy

clean:
	rm -rf $(VENV) .venv-core-* out .pytest_cache .hypothesis build docs/_build docs/generated
