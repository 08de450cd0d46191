# The two commands of the README: `make run` and `make test`. Everything else is set up on the way.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The heavy extras (TensorFlow for deepface, PyTorch for ultralytics): their own environment, so the
# service's stays light. `make test` runs the tests marked heavy with it.
HEAVY_VENV ?= .venv-heavy
HEAVY_STAMP := $(HEAVY_VENV)/.installed-stamp

.PHONY: install models run test lint bench bench-moving bench-throughput bench-parts bench-interview clean

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

# The table (benchmarks/results.json): its inputs are built once under ~/.cache/video-emotions/bench;
# the seed's engine runs in the heavy environment. Then the job system's throughput; the exit status
# is the table's (1: a target missed).
bench: models heavy-env
	$(BIN)/python benchmarks/bench.py; status=$$?; $(BIN)/python benchmarks/bench_throughput.py && exit $$status

# The reference interview moving all along (the shared script's repeats one frame two thirds of the
# time): benchmarks/results_moving.json. FOOTAGE=moving for bench-interview does the same there.
bench-moving: models heavy-env
	$(BIN)/python benchmarks/bench.py --footage moving --inputs 10min_720p --out benchmarks/results_moving.json

bench-throughput: models
	$(BIN)/python benchmarks/bench_throughput.py

bench-parts: models
	$(BIN)/python benchmarks/bench_detector.py
	$(BIN)/python benchmarks/bench_sampler.py

bench-interview: models
	$(BIN)/python benchmarks/bench_interview.py --minutes 60 --footage $(or $(FOOTAGE),shared)

.PHONY: eval train train-env heavy-env

eval: models
	$(BIN)/video-emotions eval ../shared/data/fer2013/public_test.npz ../shared/data/ferplus/valid.npz

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

# The FER+ recipe (docs/training.md): fer's mini-Xception's last two blocks fine-tuned on FER+'s votes
# mixed with what it read itself, then calibrated; about 10 minutes on 2 CPU cores; resumes. The
# variant that did best on both yardsticks (docs/accuracy.md), not the default: it loses dev clips.
FERPLUS_RECIPE := --last-blocks 2 --epochs 3 --vote-weight 0.6 --anchor teacher
.PHONY: train-ferplus
train-ferplus: train-env models
	nice -n 19 $(HEAVY_VENV)/bin/python training/finetune_ferplus.py --out training/runs/ferplus --resume \
		$(FERPLUS_RECIPE)

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

# FER2013 Training with FER+'s votes joined to its faces (training/ferplus_join.py), packed the same way.
$(FACES)/train_votes.npz.xz: ../shared/data/fer2013/train.npz ../shared/data/ferplus/train.npz
	$(BIN)/python training/ferplus_join.py $^ $(FACES)/joined_votes.npz
	$(BIN)/python training/pack_faces.py $(FACES)/joined_votes.npz $@
	rm $(FACES)/joined_votes.npz

pack-faces: $(FACES)/train.npz.xz $(FACES)/public_test.npz.xz $(FACES)/train_votes.npz.xz

DISTILLED := $(TRAIN) --net student --epochs 150 --out training/runs/student \
	--teacher training/runs/vgg --teacher training/runs/resnet18

train-distilled: $(FACES)/train.npz $(FACES)/public_test.npz
	PYTHONPATH=src $(TRAIN) --net vgg --epochs 330 --out training/runs/vgg --no-report
	PYTHONPATH=src $(TRAIN) --net resnet18 --epochs 260 --out training/runs/resnet18 --no-report
	PYTHONPATH=src $(DISTILLED) --no-report

# Back on this machine, with training/runs/student brought back: export again and write the card.
distilled-card: heavy-env $(FACES)/train.npz $(FACES)/public_test.npz
	$(DISTILLED)

# The same GPU recipe on FER+'s votes mixed with FER2013's labels (VOTE_WEIGHT of the votes), as
# issue 13 asks of a GPU: teachers, then the student. Carry train_votes.npz.xz and public_test.npz.xz.
.PHONY: train-distilled-ferplus distilled-ferplus-card
VOTE_WEIGHT ?= 0.6
VOTED := $(TRAIN_PYTHON) training/train.py --train $(FACES)/train_votes.npz --test $(FACES)/public_test.npz \
	--resume --vote-weight $(VOTE_WEIGHT)
DISTILLED_FERPLUS := $(VOTED) --net student --epochs 150 --out training/runs/student-ferplus \
	--teacher training/runs/vgg-ferplus --teacher training/runs/resnet18-ferplus

train-distilled-ferplus: $(FACES)/train_votes.npz $(FACES)/public_test.npz
	PYTHONPATH=src $(VOTED) --net vgg --epochs 330 --out training/runs/vgg-ferplus --no-report
	PYTHONPATH=src $(VOTED) --net resnet18 --epochs 260 --out training/runs/resnet18-ferplus --no-report
	PYTHONPATH=src $(DISTILLED_FERPLUS) --no-report

distilled-ferplus-card: heavy-env $(FACES)/train_votes.npz $(FACES)/public_test.npz
	$(DISTILLED_FERPLUS)

$(HEAVY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(HEAVY_VENV)
	$(HEAVY_VENV)/bin/python -m pip install --quiet -e ".[dev,deepface,yolo,train]"
	touch $(HEAVY_STAMP)

# A few GB (pip's cache under ~/.cache/pip makes a rebuild cheap): see the README for its build time.
heavy-env: $(HEAVY_STAMP)

clean:
	rm -rf $(VENV) $(HEAVY_VENV) .pytest_cache .ruff_cache
