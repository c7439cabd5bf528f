# Entry points. Every target sets up what it needs on a fresh machine.
#   make            the main job: builds the book (_build/html/index.html)
#   make test       every CPU test, in the oldest and the newest supported environment
#                   (kernel branches through the Pallas interpreter on a representative subset)
#   make bench-cpu  the CPU benchmark against dense, BCOO and brainstate/brainevent
#   make bench-coba the COBA network: eventlib, brainstate/brainevent and Brian 2 on one CPU core
#   make test-gpu   the operator tests compiled for a CUDA GPU (GPU_PYTHON: a Python with jax[cuda])
#   make test-notebooks-gpu  every notebook on the GPU, each chapter timed next to its CPU time
#   make bench      python -m eventlib.bench on whatever device GPU_PYTHON's jax uses

SHELL := /bin/bash
PY_oldest := $(shell tools/find-python 3.11)
PY_newest := $(shell tools/find-python 3.12)
PYTEST_ARGS ?=
# Parallel test processes (pytest-xdist) for the library suite: JAX compiles on one thread, so two
# processes keep both cores of a small machine busy. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: all demo test test-oldest test-newest test-peer-baseline lint bench-cpu bench-coba test-gpu test-notebooks-gpu bench clean
.PRECIOUS: .venv-%/ready

all: book

# One virtual environment per supported stack, rebuilt when its pins change.
.venv-%/ready: pyproject.toml requirements/%.txt
	@test -n "$(PY_$*)" || { echo "Python for the '$*' environment not found"; exit 1; }
	rm -rf .venv-$*
	$(PY_$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -r requirements/$*.txt -e '.[test]' -c requirements/$*.txt
	touch $@

demo: .venv-newest/ready
	.venv-newest/bin/python -m eventlib.demo

# Notebook code is checked too (79 columns: notebooks/ruff.toml), and the notebook tool.
lint: .venv-newest/ready
	.venv-newest/bin/ruff check eventlib tests benchmarks
	.venv-newest/bin/ruff format --check eventlib tests benchmarks
	.venv-newest/bin/ruff check notebooks tools
	.venv-newest/bin/ruff format --check tools

# Explicit rules: make skips pattern rules for .PHONY targets.
# tests/notebooks and tests/book need the docs environment: test-notebooks and test-book run them.
LIBRARY_ONLY := --ignore=tests/notebooks --ignore=tests/book
# The CPU suites spend most of their time compiling small programs that then run for microseconds:
# XLA's CPU backend compiles them with LLVM's cheaper passes (about a quarter less CPU time for the
# suite; results are checked against float64 references either way). Set TEST_XLA_FLAGS= to test
# the default optimisation level, as users' programs are compiled.
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=0
test-oldest: .venv-oldest/ready
	XLA_FLAGS="$(TEST_XLA_FLAGS) $(XLA_FLAGS)" .venv-oldest/bin/python -m pytest -n $(PYTEST_WORKERS) $(LIBRARY_ONLY) $(PYTEST_ARGS)

test-newest: .venv-newest/ready
	XLA_FLAGS="$(TEST_XLA_FLAGS) $(XLA_FLAGS)" .venv-newest/bin/python -m pytest -n $(PYTEST_WORKERS) $(LIBRARY_ONLY) $(PYTEST_ARGS)

test: lint test-oldest test-newest

# tests/peer (part of test-oldest and test-newest) runs brainstate's own layer tests against eventlib's
# classes. This runs them against brainstate's own classes: the baseline behind FAILS_ON_BRAINSTATE
# in tests/peer/conftest.py.
test-peer-baseline: .venv-oldest/ready .venv-newest/ready
	EVENTLIB_PEER_PATCH=0 .venv-oldest/bin/python -m pytest tests/peer $(PYTEST_ARGS)
	EVENTLIB_PEER_PATCH=0 .venv-newest/bin/python -m pytest tests/peer $(PYTEST_ARGS)

bench-cpu: .venv-newest/ready
	.venv-newest/bin/python benchmarks/cpu_core.py --out benchmarks/results/cpu_core.json

# Brian 2 needs none of eventlib's stack: an environment of its own.
.venv-brian/ready: requirements/brian.txt
	@test -n "$(PY_newest)" || { echo "Python 3.12 for the 'brian' environment not found"; exit 1; }
	rm -rf .venv-brian
	$(PY_newest) -m venv .venv-brian
	.venv-brian/bin/python -m pip install --quiet -r requirements/brian.txt
	touch $@

bench-coba: .venv-newest/ready .venv-brian/ready
	.venv-newest/bin/python benchmarks/coba.py --sizes 4000 40000 --durations 10 1 --cores 1 --neurons-only \
	  --brian --brian-runtime --brian-python .venv-brian/bin/python --out benchmarks/results/coba_cpu.json

# On a machine with an NVIDIA GPU of compute capability >= 8.0, with a Python whose jax has CUDA
# (for example `pip install -U "jax[cuda12]"`) and eventlib's dependencies installed.
GPU_PYTHON ?= python3
test-gpu:
	@$(GPU_PYTHON) -c "import sys, eventlib; sys.exit(eventlib.which_path() != 'kernel')" || \
	  { echo "test-gpu: $(GPU_PYTHON)'s jax sees no CUDA GPU of compute capability >= 8.0"; exit 1; }
	$(GPU_PYTHON) -m pytest $(LIBRARY_ONLY) $(PYTEST_ARGS)

# Every notebook executed on GPU_PYTHON's GPU (nbclient, or its cells as a script where Jupyter is
# missing), each chapter's time recorded next to its CPU time (the `cpu` column, from
# `tools/gpu_notebooks.py --column cpu` on the CPU) in benchmarks/results/notebooks_gpu.json/.md;
# chapter 05 also with path='event' forced (a GPU without the kernels: T4, V100).
test-notebooks-gpu:
	@$(GPU_PYTHON) -c "import sys, jax; sys.exit(jax.default_backend() != 'gpu')" || \
	  { echo "test-notebooks-gpu: $(GPU_PYTHON)'s jax sees no GPU"; exit 1; }
	$(GPU_PYTHON) tools/gpu_notebooks.py --column gpu
	$(GPU_PYTHON) tools/gpu_notebooks.py --column gpu_path_event --default-path event 05_training_a_snn

bench:
	$(GPU_PYTHON) -m eventlib.bench --out benchmarks/results/bench.json

clean:
	rm -rf .venv-oldest .venv-newest .venv-brian .pytest_cache .hypothesis

# --- The book (Jupyter Book 1.x) and its check in a real browser ---------------------------
# .venv-docs: the newest stack plus requirements/docs.txt (notebooks and book).
.venv-docs/ready: pyproject.toml requirements/newest.txt requirements/docs.txt
	@test -n "$(PY_newest)" || { echo "Python 3.12 for the 'docs' environment not found"; exit 1; }
	rm -rf .venv-docs
	$(PY_newest) -m venv .venv-docs
	.venv-docs/bin/python -m pip install --quiet --upgrade pip
	.venv-docs/bin/python -m pip install --quiet -r requirements/newest.txt -r requirements/docs.txt -e '.[test]' -c requirements/newest.txt
	touch $@

# MathJax 3 served from the site itself (no CDN): npm's package, copied to _build/mathjax/,
# which _config.yml lists in html_static_path. 24 MB, so installed here rather than committed.
MATHJAX_VERSION := 3.2.2
MATHJAX_STAMP := _build/mathjax-npm/mathjax-$(MATHJAX_VERSION).stamp
BOOK_FLAGS := --warningiserror --nitpick --keep-going

$(MATHJAX_STAMP):
	rm -rf _build/mathjax-npm _build/mathjax
	mkdir -p _build/mathjax-npm _build/mathjax
	npm install --no-save --no-audit --no-fund --loglevel=error --prefix _build/mathjax-npm mathjax@$(MATHJAX_VERSION)
	cp -r _build/mathjax-npm/node_modules/mathjax/es5 _build/mathjax/mathjax
	touch $@

book: .venv-docs/ready $(MATHJAX_STAMP)
	.venv-docs/bin/jupyter-book build . $(BOOK_FLAGS)
	@echo "Open $(CURDIR)/_build/html/index.html"

# Every built page in headless Chromium (Debian's /usr/bin/chromium; .ci/run installs it).
test-book: book
	EVENTLIB_BOOK_REQUIRED=1 .venv-docs/bin/python -m pytest tests/book $(PYTEST_ARGS)

clean: clean-book
clean-book:
	rm -rf _build .venv-docs
.PHONY: book test-book clean-book

# --- The notebooks: re-execution, student copies, checks ------------------------------------
# make notebooks        re-execute every notebook in place (after a library change), then commit
# make student          copies without solutions, outputs cleared, in _build/student/
# make test-notebooks   generated cells in sync with _config.yml, the notebook rules
#                       (tests/notebooks), then nbval: every notebook re-run and its outputs
#                       compared exactly (strict, not --nbval-lax), timings masked by the sanitize file.
# --nbval-current-env runs the kernels on .venv-docs' own Python, so the checked-out eventlib is the
# one tested. pyproject's pytest settings need no override here: filterwarnings=error applies to
# the pytest process (nbval raises no warning with these option names), not to the kernels.
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg

notebooks: .venv-docs/ready
	.venv-docs/bin/python tools/notebooks.py execute

student: .venv-docs/ready
	.venv-docs/bin/python tools/notebooks.py student _build/student

test-notebooks: .venv-docs/ready
	.venv-docs/bin/python tools/notebooks.py sync --check
	.venv-docs/bin/python -m pytest tests/notebooks $(PYTEST_ARGS)
	.venv-docs/bin/python -m pytest $(NBVAL_FLAGS) notebooks/

test: test-notebooks
.PHONY: notebooks student test-notebooks

# The book's check runs after the notebooks it renders: lint, unit tests, nbval, book + browser.
test: test-book
