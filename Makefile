# Thin wrappers: every target sets up .venv first (once; again only when pyproject.toml changes).
# Set-up also fetches the widget manager the HTML export inlines (seqrep/offline.py: pinned,
# integrity-checked, with npm), so shared notebooks render their widgets with no network;
# without npm it says why and the HTML shows widgets as their static images and text.
PYTHON ?= python3
VENV ?= .venv
# An unpinned torch on Linux pulls a multi-GB CUDA build; 2.13.0 is a CPU wheel here.
TORCH ?= torch==2.13.0
PARAMS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.seqrep-installed

.PHONY: setup notebooks test lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "seqrep needs Python 3.10+, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,bench]" "$(TORCH)"  # torch again: torchvision (timm) must not replace it
	-$(BIN)/python -m seqrep.offline
	touch $@

notebooks: setup
	$(BIN)/seqrep run-notebooks $(foreach p,$(PARAMS),-p $(p))

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/jupyter lab notebooks/

bench: setup
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf executed .pytest_cache .ruff_cache
