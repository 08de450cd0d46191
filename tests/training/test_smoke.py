"""The training recipe end to end, a few batches on a few hundred synthetic faces.

PyTorch is never installed in the service's environment: the recipe runs as a subprocess of
``.venv-heavy/bin/python`` (``make heavy-env`` builds it; ``make test`` depends on that).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import REPO
from video_emotions.domain import EMOTIONS
from video_emotions.evaluation.faces import FERPLUS_VOTE_CLASSES
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.mini_xception import model_metadata


def write_faces(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        images=rng.integers(0, 256, size=(count, 48, 48), dtype=np.uint8),
        labels=rng.integers(0, len(EMOTIONS), size=count),
    )
    return path


def train(python: Path, tmp_path: Path, *extra: str, out: str = "run") -> subprocess.CompletedProcess[str]:
    command = [
        str(python),
        str(REPO / "training" / "train.py"),
        "--out",
        str(tmp_path / out),
        "--train",
        str(tmp_path / "train.npz"),
        "--test",
        str(tmp_path / "test.npz"),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--max-batches",
        "2",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_train_export_and_resume(train_python: Path, tmp_path: Path) -> None:
    write_faces(tmp_path / "train.npz", 300, seed=0)
    write_faces(tmp_path / "test.npz", 50, seed=1)
    done = train(train_python, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 2/2" in done.stdout

    run = tmp_path / "run"
    onnx_path = run / "model.onnx"
    faces = np.random.default_rng(2).normal(size=(5, 1, 48, 48)).astype(np.float32)
    (probabilities,) = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": faces}
    )
    assert probabilities.shape == (5, len(EMOTIONS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model_metadata(onnx_path)["labels"] == ",".join(EMOTIONS)
    crops = np.zeros((3, 48, 48), np.uint8)
    assert EmotionClassifier(onnx_path, input_size=48, flip_average=True).classify(crops).shape == (3, 7)
    card = (run / "MODEL_CARD.md").read_text()
    assert "FER2013" in card and "flip-averaged" in card and "Licence" in card

    exported = onnx_path.read_bytes()
    again = train(train_python, tmp_path, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed after epoch 2" in again.stdout and "epoch 1/2" not in again.stdout
    assert onnx_path.read_bytes() == exported
    refused = train(train_python, tmp_path, "--resume", "--lr", "0.05")
    assert refused.returncode != 0 and "trained with other lr" in refused.stderr


@pytest.mark.slow
def test_teacher_nets_and_distillation(train_python: Path, tmp_path: Path) -> None:
    write_faces(tmp_path / "train.npz", 300, seed=0)
    write_faces(tmp_path / "test.npz", 50, seed=1)
    teacher = train(train_python, tmp_path, "--net", "vgg", "--no-report", out="vgg")
    assert teacher.returncode == 0, teacher.stderr[-3000:]
    vgg = tmp_path / "vgg"
    # --no-report: exported and logged, but no card (its figures need the service's environment).
    assert (vgg / "history.json").is_file() and not (vgg / "MODEL_CARD.md").exists()
    faces = np.zeros((2, 48, 48), np.uint8)
    assert EmotionClassifier(vgg / "model.onnx", input_size=48).classify(faces).shape == (2, 7)

    student = train(
        train_python, tmp_path, "--teacher", str(vgg), "--teacher", "mini-xception", out="student"
    )
    assert student.returncode == 0, student.stderr[-3000:]
    card = (tmp_path / "student" / "MODEL_CARD.md").read_text()
    assert "distilled from vgg, mini-xception (T 4.0, weight 0.5)" in card
    assert "Net `student`" in card

    missing = train(train_python, tmp_path, "--teacher", str(tmp_path / "student" / "nothing"), out="other")
    assert missing.returncode != 0 and "unknown classifier" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = train(train_python, tmp_path, "--teacher", str(empty), out="other")
    assert refused.returncode != 0 and "no checkpoint.pt" in refused.stderr


@pytest.mark.slow
def test_targets_mixed_with_ferplus_votes(train_python: Path, tmp_path: Path) -> None:
    write_faces(tmp_path / "train.npz", 300, seed=0)
    write_faces(tmp_path / "test.npz", 50, seed=1)
    refused = train(train_python, tmp_path, "--vote-weight", "0.6", "--no-report")
    assert refused.returncode != 0 and "no ferplus_votes array" in refused.stderr

    with np.load(tmp_path / "train.npz") as data:
        arrays = dict(data)
    votes = np.random.default_rng(5).multinomial(10, [0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0, 0, 0], 300)
    votes[:10] = 0  # faces FER+ does not have: their label alone
    np.savez(
        tmp_path / "train.npz",
        **arrays,
        ferplus_votes=votes.astype(np.uint8),
        vote_classes=np.array(FERPLUS_VOTE_CLASSES),
    )
    done = train(train_python, tmp_path, "--vote-weight", "0.6")
    assert done.returncode == 0, done.stderr[-3000:]
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "targets 0.6 x FER+'s vote distribution" in card
    again = train(train_python, tmp_path, "--resume", "--vote-weight", "0.3")
    assert again.returncode != 0 and "trained with other vote_weight" in again.stderr
