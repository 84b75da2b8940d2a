# Two entry points; both create .venv on first use and reuse it afterwards.
#   make demo   reproduce the introduction figure of Toy Models of Superposition
#   make test   run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# One stamp per install, named by pyproject's checksum: an edited pyproject reinstalls.
CORE   := $(VENV)/.installed-core-$(SUM)
TESTS  := $(VENV)/.installed-test-$(SUM)

.PHONY: demo test bench clean

$(CORE): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@rm -f $(VENV)/.installed-core-* && touch $@

# The tests also need PyTorch (real tensors handed to the metrics) and Ray (the sweep backend).
$(TESTS): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	@rm -f $(VENV)/.installed-test-* && touch $@

demo: $(CORE)
	$(BIN)/toylab reproduce intro

# Test files run in two worker processes (pytest-xdist, a file's tests on one worker): much of
# the suite is tracing and compiling, one core each, so two workers use both cores of a small
# machine (measured on 2 cores: 8.2 min against 13.8 min in one process).
test: $(TESTS)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(TESTS)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/bench_tms.py
	$(BIN)/python benchmarks/bench_scurve.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_sae.py
	$(BIN)/python benchmarks/bench_env.py
	$(BIN)/python benchmarks/bench_whole.py

clean:
	rm -rf $(VENV) runs
