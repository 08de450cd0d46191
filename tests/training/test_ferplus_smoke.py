"""``make train-ferplus``'s recipe end to end on a few hundred faces: fine-tune, calibrate, export, card.

The command is the one ``make -n train-ferplus`` prints, with the data, the output folder and the
length overridden (argparse keeps the last of a repeated option). The faces are built here:
FER+-layout votes and a FER2013-layout copy of the same faces, whose pixels differ by a grey
level or two as the real files' do, so the recipe's join is exercised.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import REPO
from tests.training.faces import write_pair
from video_emotions.domain import EMOTIONS
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.mini_xception import model_metadata


def make_recipe() -> list[str]:
    """The arguments ``make train-ferplus`` gives the recipe, from the script's path on."""
    printed = subprocess.run(
        ["make", "-s", "-n", "train-ferplus"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.replace("\\\n", " ")
    (line,) = [line for line in printed.splitlines() if "finetune_ferplus.py" in line]
    words = shlex.split(line)
    return words[next(i for i, word in enumerate(words) if word.endswith("finetune_ferplus.py")) :]


def finetune(python: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    train_plus, train_fer = write_pair(tmp_path, "train", 300, seed=0)
    test_plus, test_fer = write_pair(tmp_path, "test", 80, seed=1)
    command = [
        str(python),
        *make_recipe(),
        "--out",
        str(tmp_path / "run"),
        "--ferplus",
        str(train_plus),
        "--fer2013",
        str(train_fer),
        "--ferplus-test",
        str(test_plus),
        "--fer2013-test",
        str(test_fer),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--max-batches",
        "2",
        *extra,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_finetune_calibrate_export_and_card(train_python: Path, tmp_path: Path) -> None:
    done = finetune(train_python, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # Every face but the one voted "not a face" is used, each joined to its FER2013 twin.
    assert "'joined_to_fer2013': 300" in done.stdout and "'used': 299" in done.stdout
    assert "epoch 1/1" in done.stdout and "temperature" in done.stdout

    run = tmp_path / "run"
    onnx_path = run / "model.onnx"
    faces = np.random.default_rng(2).uniform(-1, 1, size=(4, 1, 64, 64)).astype(np.float32)
    (probabilities,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": faces}
    )
    assert probabilities.shape == (4, len(EMOTIONS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    metadata = model_metadata(onnx_path)
    assert metadata["labels"] == ",".join(EMOTIONS)
    assert 0.5 <= float(metadata["temperature"]) <= 3.0
    # The service's classifier takes it as it takes mini-Xception: 64x64 gray crops.
    crops = np.zeros((3, 64, 64), np.uint8)
    assert EmotionClassifier(onnx_path, input_size=64, flip_average=True).classify(crops).shape == (3, 7)

    card = (run / "MODEL_CARD.md").read_text()
    for needed in ("FER+ PublicTest (majority)", "FER2013 PublicTest", "fine-tuned", "licence", "Limits"):
        assert needed in card, needed
    assert metadata["temperature"] in card

    refused = finetune(train_python, tmp_path, "--vote-weight", "0.2")
    assert refused.returncode != 0 and "trained with other vote_weight" in refused.stderr
