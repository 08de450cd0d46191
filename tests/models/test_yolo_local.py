"""yolo_local on an ONNX export, with what the base install has (no torch)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.models.yolo_files import YOLO_NAMES, tiny_onnx, tiny_onnx_expected
from video_emotions.config import Settings
from video_emotions.domain import EMOTIONS
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.crop import crop_faces
from video_emotions.vision.registry import ModelRegistry
from video_emotions.vision.yolo import prepare


def registry(path: Path, **settings: object) -> ModelRegistry:
    return ModelRegistry(Settings(yolo_model_path=path, **settings))


def test_the_face_crop_is_classified_and_the_names_mapped(tiny_yolo: Path, frames: list[np.ndarray]) -> None:
    engine = registry(tiny_yolo).load("yolo_local")
    face, blank, small = engine.estimate(frames)
    assert (engine.name, engine.model_file) == ("yolo_local", "tiny.onnx")
    assert blank.face is None and blank.probabilities is None
    for estimate, frame in ((face, frames[0]), (small, frames[2])):
        assert estimate.face is not None and estimate.faces_found == 1
        crop = crop_faces([frame], [estimate.face], margin=engine.crop_margin, size=32, grayscale=False)
        expected = tiny_onnx_expected(prepare(list(crop), 32))[0]
        # YOLO_NAMES is in our order: class i is EMOTIONS[i].
        assert [estimate.probabilities[label] for label in EMOTIONS] == pytest.approx(expected, abs=1e-5)
    assert "torch" not in sys.modules


def test_the_whole_frame_is_classified_with_face_cropping_off(
    tiny_yolo: Path, frames: list[np.ndarray]
) -> None:
    engine = registry(tiny_yolo, yolo_crop_face=False).load("yolo_local")
    estimates = engine.estimate(frames)
    for estimate, frame in zip(estimates, frames, strict=True):
        height, width = frame.shape[:2]
        assert estimate.face is not None and (estimate.face.width, estimate.face.height) == (width, height)
        expected = tiny_onnx_expected(prepare([frame], 32))[0]
        assert [estimate.probabilities[label] for label in EMOTIONS] == pytest.approx(expected, abs=1e-5)
    assert registry(tiny_yolo, yolo_crop_face=False).identity("yolo_local").details["crop_face"] is False


def test_a_static_batch_export_takes_any_number_of_frames(tmp_path: Path, frames: list[np.ndarray]) -> None:
    dynamic = registry(tiny_onnx(tmp_path / "dynamic.onnx")).load("yolo_local").estimate(frames)
    static = registry(tiny_onnx(tmp_path / "static.onnx", batch=1)).load("yolo_local").estimate(frames)
    assert [e.probabilities for e in static] == [e.probabilities for e in dynamic]


def test_classes_in_another_order_are_mapped(tmp_path: Path, frames: list[np.ndarray]) -> None:
    order = [6, 3, 0, 5, 4, 2, 1]
    shuffled = registry(tiny_onnx(tmp_path / "s.onnx", [YOLO_NAMES[i] for i in order])).load("yolo_local")
    (estimate,) = shuffled.estimate(frames[:1])
    crop = crop_faces(frames[:1], [estimate.face], margin=shuffled.crop_margin, size=32, grayscale=False)
    scores = tiny_onnx_expected(prepare(list(crop), 32))[0]  # column j: the class named YOLO_NAMES[order[j]]
    assert [estimate.probabilities[EMOTIONS[order[j]]] for j in range(7)] == pytest.approx(scores, abs=1e-5)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "unmappable",
            "classes ['cat', 'dog', 'anger', 'disgust', 'fear', 'happiness', 'sadness'] do not map",
        ),
        ("detector", "is a YOLO detect model; yolo_local needs a classification model"),
        ("missing", "does not exist"),
        ("not a model", "ONNX Runtime cannot run it"),
        ("suffix", "expected a .onnx or .pt file"),
    ],
)
def test_files_that_cannot_serve_are_refused_truthfully(tmp_path: Path, kind: str, message: str) -> None:
    path = {
        "unmappable": lambda: tiny_onnx(tmp_path / "m.onnx", ["cat", "dog", *YOLO_NAMES[:5]]),
        "detector": lambda: tiny_onnx(tmp_path / "m.onnx", task="detect"),
        "missing": lambda: tmp_path / "none.onnx",
        "not a model": lambda: _write(tmp_path / "m.onnx", b"not an onnx file"),
        "suffix": lambda: _write(tmp_path / "m.tflite", b"x"),
    }[kind]()
    models = registry(path, strict_models=True)
    status = {s.name: s for s in models.statuses()}["yolo_local"]
    assert status.available is False and message in status.reason
    with pytest.raises(ModelUnavailableError, match="model_type 'yolo_local' is not available"):
        models.check("yolo_local")
    with pytest.raises(ModelUnavailableError, match="is not available"):
        models.load("yolo_local")


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is not None, reason="ultralytics is installed")
def test_a_pt_file_without_the_extra_says_how_to_run_it(tmp_path: Path) -> None:
    status = {s.name: s for s in registry(_write(tmp_path / "m.pt", b"x")).statuses()}["yolo_local"]
    assert not status.available and "[yolo] extra" in status.reason and "export-yolo" in status.reason


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
