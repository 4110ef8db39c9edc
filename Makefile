# The two commands a newcomer needs: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-long test-build lint clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/spikeforge run examples/digits.yaml --out $(DEMO_OUT)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-long: setup
	$(PY) -m pytest -q -m slow

test-build: setup
	$(PY) -m pytest -q -m build

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf out build .pytest_cache
