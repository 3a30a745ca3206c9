# The two commands that do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first (the CPU wheel), then everything else constrained to it.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,fed]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pocketear.demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check pocketear tests benchmarks examples
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check pocketear tests benchmarks examples

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
