# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    build the Kidal–Gao risk map and print the scored alternatives
#   make test   lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= out/kidal_gao_risk.html

.PHONY: run test lint browser check-python clean

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
	$(BIN)/ruff check src tests data/geo benchmarks docs/make_cli_md.py
	$(BIN)/ruff format --check src tests data/geo benchmarks docs/make_cli_md.py
	$(BIN)/mypy

# Headless Chromium for the browser tests (tests/test_browser.py) and poppler-utils
# (pdfinfo, pdftoppm, pdftotext) for the PDF briefing tests: Debian's packages,
# installed when missing and we are root (CI); otherwise say how to get them.
CHROMIUM ?= /usr/bin/chromium
PDFTOPPM ?= /usr/bin/pdftoppm
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(PDFTOPPM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium poppler-utils; \
	else \
		echo "Chromium or poppler-utils is missing: 'sudo apt-get install chromium poppler-utils'" \
			"(browser and PDF tests skip without them)"; \
	fi

test: $(STAMP) lint browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
