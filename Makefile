# Entry points. Every target sets up what it needs on a fresh machine.
#   make            the main job (today: the event-versus-dense demo; the book once it lands)
#   make test       every CPU test, in the oldest and the newest supported environment
#   make bench-cpu  the CPU benchmark against dense, BCOO and brainstate/brainevent

SHELL := /bin/bash
PY_oldest := $(shell tools/find-python 3.11)
PY_newest := $(shell tools/find-python 3.12)
PYTEST_ARGS ?=

.PHONY: all demo test test-oldest test-newest lint bench-cpu clean
.PRECIOUS: .venv-%/ready

all: demo

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

lint: .venv-newest/ready
	.venv-newest/bin/ruff check eventlib tests benchmarks
	.venv-newest/bin/ruff format --check eventlib tests benchmarks

# Explicit rules: make skips pattern rules for .PHONY targets.
test-oldest: .venv-oldest/ready
	.venv-oldest/bin/python -m pytest $(PYTEST_ARGS)

test-newest: .venv-newest/ready
	.venv-newest/bin/python -m pytest $(PYTEST_ARGS)

test: lint test-oldest test-newest

bench-cpu: .venv-newest/ready
	.venv-newest/bin/python benchmarks/cpu_core.py --out benchmarks/results/cpu_core.json

clean:
	rm -rf .venv-oldest .venv-newest .pytest_cache .hypothesis
