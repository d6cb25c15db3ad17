# Every target creates .venv (if missing) and installs the package into it, with the exact
# versions of constraints.txt (setup.py declares ranges; constraints.txt pins what we test).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Python writes the bytecode of what it imports, whatever the caller's environment says. With
# PYTHONDONTWRITEBYTECODE set (many container images set it), and the install's --no-compile
# below, nothing would ever be cached: every test worker, notebook kernel and test subprocess
# would compile TensorFlow's sources again on import (`import tensorflow`: 13.5 s without
# bytecode, 7.1 s with it, measured beside a training).
unexport PYTHONDONTWRITEBYTECODE
# Test processes (pytest-xdist); a test file stays on one worker so module fixtures build once.
TEST_WORKERS ?= 2
# The operator tests, run again under the oneDNN setting that is not the machine's default.
ONEDNN_TESTS ?= tests/layers tests/quadtree
# Left out of that second pass: what does not run a kernel differently under oneDNN (config and
# .keras round trips, TFLite/ONNX conversion, SavedModel export: served under the other setting
# by tests/export/test_saved_model.py), the long overfit runs (their steps are the fit-step
# tests' steps), and the tests marked `onednn_neutral` (integer and NumPy arithmetic, the
# portable export paths, tests that set both settings themselves): 327 of the 480 tests.
ONEDNN_DESELECT ?= not overfit and not save_load and not export_tfsmlayer and not tflite and not onnx and not config_round_trip
ONEDNN_MARKERS ?= not onednn_neutral
# The wheel smoke check runs on the newest supported Python (pyenv's, else python3.13 on PATH).
SMOKE_PYTHON ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.13*/bin/python3.13) python3.13)
DOCS_DIR ?= site

# pytest exits 5 when it collected no test: say so and fail instead of passing silently.
run_pytest = $(PY) -m pytest $(1); status=$$?; if [ $$status -eq 5 ]; then echo "make $@: pytest collected no tests in $(2)" >&2; exit 1; fi; exit $$status

.PHONY: install demo test test-onednn-other notebooks wheel-smoke docs bench lint

install: $(STAMP)

$(STAMP): setup.py pyproject.toml $(CONSTRAINTS)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# tensorflow-cpu and tensorflow install the same `tensorflow` package: keep only `tensorflow`.
	if $(PY) -m pip show --quiet tensorflow-cpu >/dev/null 2>&1; then \
		$(PY) -m pip uninstall --quiet --yes tensorflow-cpu tensorflow; fi
	@# --no-compile: Python compiles what is imported, when first imported, instead of all of
	@# TensorFlow at install time (7 s less per TensorFlow install, measured).
	$(PY) -m pip install --quiet --no-compile -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/structconv demo

test: $(STAMP)
	@$(call run_pytest,-q -n $(TEST_WORKERS) --dist loadfile tests,tests)

# TF_ENABLE_ONEDNN_OPTS=0 or 1, whichever the machine does not use by default (oneDNN is on by
# default only on x86 CPUs with AVX-512).
test-onednn-other: $(STAMP)
	@default=$$(env -u TF_ENABLE_ONEDNN_OPTS $(PY) -c 'from keras_structconv._internals import onednn_enabled; print(int(onednn_enabled()))' 2>/dev/null | tail -n 1); \
	case "$$default" in 0) other=1 ;; 1) other=0 ;; \
		*) echo "make $@: could not read the default oneDNN setting (got '$$default')" >&2; exit 1 ;; esac; \
	echo "oneDNN default on this machine: $$default; running $(ONEDNN_TESTS) with TF_ENABLE_ONEDNN_OPTS=$$other"; \
	export TF_ENABLE_ONEDNN_OPTS=$$other; \
	$(call run_pytest,-q -n $(TEST_WORKERS) --dist loadfile $(ONEDNN_TESTS) -k "$(ONEDNN_DESELECT)" -m "$(ONEDNN_MARKERS)",$(ONEDNN_TESTS))

# The notebooks, executed (also part of `make test`).
notebooks: $(STAMP)
	@test -f tests/test_notebooks.py || { echo "make $@: tests/test_notebooks.py is missing" >&2; exit 1; }
	@$(call run_pytest,-q -n 0 tests/test_notebooks.py,tests/test_notebooks.py)

# Build the sdist and wheel, install the wheel into a fresh venv outside the tree, smoke-check it.
wheel-smoke: $(STAMP)
	tools/wheel_smoke.sh "$(SMOKE_PYTHON)" "$(PY)"

# API reference from the docstrings (pdoc), written to $(DOCS_DIR)/; warnings fail the build.
docs: $(STAMP)
	$(PY) tools/build_docs.py --output $(DOCS_DIR)

bench: $(STAMP)
	$(PY) -m benchmarks.run --all

lint: $(STAMP)
	@# colab/_cells/ are notebook sources (Markdown as comments, a template): not linted as Python.
	$(VENV)/bin/ruff check keras_structconv tests benchmarks zoo tools setup.py colab/_build.py
