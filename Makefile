# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    build the Kidal–Gao risk map and print the scored alternatives
#   make test   lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= out/kidal_gao_risk.html

.PHONY: run test lint check-python clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "convoyrisk needs Python 3.11 or newer: set PYTHON=python3.11 (or newer)")'

$(STAMP): pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/convoyrisk map --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests data/geo benchmarks
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
