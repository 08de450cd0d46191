# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install models run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/video-emotions models pull

run: models
	$(BIN)/video-emotions serve

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: models lint
	$(BIN)/pytest

bench: models
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_sampler.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
