# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The training environment (PyTorch, the [train] extra): never the service's.
TRAIN_VENV ?= .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.installed-stamp

.PHONY: install models run test lint bench bench-interview clean

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

test: models lint train-env
	$(BIN)/pytest

bench: models
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_sampler.py

bench-interview: models
	$(BIN)/python benchmarks/bench_interview.py --minutes 60

.PHONY: eval train train-env

eval: models
	$(BIN)/video-emotions eval ../shared/data/fer2013/public_test.npz

$(TRAIN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet -e ".[train]"
	touch $(TRAIN_STAMP)

# Used by `make test` too: tests/training runs the recipe with $(TRAIN_VENV)/bin/python.
train-env: $(TRAIN_STAMP)

# The full recipe on FER2013: 18 epochs, 20 to 80 min on 2 CPU cores as the machine is busy or not; resumes.
train: train-env
	nice -n 19 $(TRAIN_VENV)/bin/python training/train.py --out training/runs/full --resume

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
