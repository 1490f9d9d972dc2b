# `make demo` and `make test` do all set-up on a fresh machine: they create .venv
# with Python 3.10 (lava-nc 0.10.0 imports on no other version) and install the project
# with NEST, PyNN and sPyNNaker (the PyNN target's tests run them).
PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= out/demo

.PHONY: demo test bench clean

# Set-up reports on stderr, so that `make bench > bench.json` holds the JSON alone even on a fresh machine.
$(INSTALLED): pyproject.toml Makefile
	@echo "setting up $(VENV) (Python 3.10, the project, NEST, sPyNNaker and the test tools) ..." >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet -e '.[dev,nest,spinnaker]' >&2
	@$(BIN)/python -m pip install --quiet --no-deps lava-dl==0.6.0 'opencv-python-headless<4.11' ninja unittest2 >&2
	@touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/delaydeploy demo -o $(DEMO_DIR)

test: $(INSTALLED)
	$(BIN)/python -m pytest -q tests hardware_tests

bench: $(INSTALLED)
	@$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
