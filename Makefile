# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The heavy extras (TensorFlow for deepface, PyTorch for ultralytics): their own environment, so the
# service's stays light. `make test` runs the tests marked heavy with it.
HEAVY_VENV ?= .venv-heavy
HEAVY_STAMP := $(HEAVY_VENV)/.installed-stamp

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
	$(BIN)/ruff check src tests benchmarks training
	$(BIN)/ruff format --check src tests benchmarks training

test: models lint heavy-env
	$(BIN)/pytest -m "not heavy"
	$(HEAVY_VENV)/bin/pytest -m heavy

bench: models
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_sampler.py

bench-interview: models
	$(BIN)/python benchmarks/bench_interview.py --minutes 60

.PHONY: eval train train-env heavy-env

eval: models
	$(BIN)/video-emotions eval ../shared/data/fer2013/public_test.npz

.PHONY: eval-clips
# The whole pipeline on the labelled dev clips (read from ../shared, never copied here): the default
# pipeline, then the same with every other registered classifier (docs/accuracy.md).
eval-clips: models
	$(BIN)/video-emotions eval-clips ../shared/data/videos_dev --all-classifiers

# Training runs in the heavy environment (PyTorch); tests/training runs the recipe with its python.
train-env: heavy-env

# The CPU recipe (docs/training.md): the student distilled from mini-Xception, 18 epochs,
# 35 to 60 min on 2 CPU cores as the machine is busy or not; resumes.
train: train-env models
	nice -n 19 $(HEAVY_VENV)/bin/python training/train.py --out training/runs/cpu --resume \
		--epochs 18 --teacher mini-xception

# The distillation recipe of docs/training.md, for a GPU: two teachers, then the student distilled
# from both (on a 2-core CPU it would take days). TRAIN_PYTHON is any Python with torch and numpy.
TRAIN_PYTHON ?= $(HEAVY_VENV)/bin/python
FACES := training/data
TRAIN := $(TRAIN_PYTHON) training/train.py --train $(FACES)/train.npz --test $(FACES)/public_test.npz --resume

.PHONY: pack-faces train-distilled distilled-card
# FER2013 packed to travel to a GPU machine with the checkout (training/data is git-ignored).
$(FACES)/%.npz.xz: ../shared/data/fer2013/%.npz
	$(BIN)/python training/pack_faces.py $< $@
$(FACES)/%.npz: $(FACES)/%.npz.xz
	$(TRAIN_PYTHON) training/pack_faces.py $< $@

pack-faces: $(FACES)/train.npz.xz $(FACES)/public_test.npz.xz

DISTILLED := $(TRAIN) --net student --epochs 150 --out training/runs/student \
	--teacher training/runs/vgg --teacher training/runs/resnet18

train-distilled: $(FACES)/train.npz $(FACES)/public_test.npz
	PYTHONPATH=src $(TRAIN) --net vgg --epochs 330 --out training/runs/vgg --no-report
	PYTHONPATH=src $(TRAIN) --net resnet18 --epochs 260 --out training/runs/resnet18 --no-report
	PYTHONPATH=src $(DISTILLED) --no-report

# Back on this machine, with training/runs/student brought back: export again and write the card.
distilled-card: heavy-env $(FACES)/train.npz $(FACES)/public_test.npz
	$(DISTILLED)

$(HEAVY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(HEAVY_VENV)
	$(HEAVY_VENV)/bin/python -m pip install --quiet -e ".[dev,deepface,yolo,train]"
	touch $(HEAVY_STAMP)

# A few GB (pip's cache under ~/.cache/pip makes a rebuild cheap): see the README for its build time.
heavy-env: $(HEAVY_STAMP)

clean:
	rm -rf $(VENV) $(HEAVY_VENV) .pytest_cache .ruff_cache
