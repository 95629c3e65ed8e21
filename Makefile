# Set up and run vitiseg. Uses the active virtual environment, or creates .venv.
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.vitiseg-installed

.PHONY: setup demo test test-all lint clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: make sample photos, score them with the shipped model, print the report path.
demo: $(STAMP)
	$(BIN)/vitiseg-synth out=demo/samples n=6 seed=7 output=demo/synth-run
	$(BIN)/vitiseg-score input=demo/samples/images manifest=demo/samples/cases.csv output=demo/scores
	@echo "Report: $(CURDIR)/demo/scores/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
