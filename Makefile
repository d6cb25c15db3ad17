# Every target creates .venv (if missing) and installs the package into it.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Test processes (pytest-xdist); a test file stays on one worker so module fixtures build once.
TEST_WORKERS ?= 2

.PHONY: install demo test bench lint

install: $(STAMP)

$(STAMP): setup.py pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/structconv demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

bench: $(STAMP)
	$(PY) -m benchmarks.run --all

lint: $(STAMP)
	$(VENV)/bin/ruff check keras_structconv tests benchmarks zoo
