"""One contract, every engine: the same frames give the same shape of result.

Per frame a FrameEstimate; the seven labels with probabilities in [0, 1] summing to 1 when a
face was classified; face and probabilities both None when not. The light environment runs
the engines the base install has; the heavy one (``make test``) runs the DeepFace and ``.pt`` ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.models.endpoints import LOOPBACK, predict_url
from video_emotions.config import Settings
from video_emotions.domain import EMOTIONS, FrameEstimate
from video_emotions.vision.engine import EmotionEngine
from video_emotions.vision.registry import ModelRegistry

#: setup → (model_type, whether a frame without a face still gets probabilities)
SETUPS = {
    "default": ("default", False),
    "yolo_local-onnx": ("yolo_local", False),
    "yolo_local-onnx-whole-frame": ("yolo_local", True),
    "yolo_cloud": ("yolo_cloud", False),
    "yolo_local-pt": ("yolo_local", False),
    "deepface": ("deepface", False),
}
HEAVY = {"yolo_local-pt", "deepface"}


def settings_for(setup: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Settings:
    if setup == "yolo_local-onnx":
        return Settings(yolo_model_path=request.getfixturevalue("tiny_yolo"))
    if setup == "yolo_local-onnx-whole-frame":
        return Settings(yolo_model_path=request.getfixturevalue("tiny_yolo"), yolo_crop_face=False)
    if setup == "yolo_cloud":
        return Settings(remote_url=predict_url(request.getfixturevalue("predictor")), outbound_allow=LOOPBACK)
    if setup == "yolo_local-pt":
        return Settings(yolo_model_path=request.getfixturevalue("yolo_pt"))
    if setup == "deepface":
        monkeypatch.setenv("DEEPFACE_HOME", str(request.getfixturevalue("deepface_home")))
    return Settings()


@pytest.mark.parametrize(
    "setup", [pytest.param(name, marks=[pytest.mark.heavy] if name in HEAVY else []) for name in SETUPS]
)
def test_every_engine_gives_the_same_shape_of_result(
    setup: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, frames: list[np.ndarray]
) -> None:
    model_type, whole_frame = SETUPS[setup]
    engine: EmotionEngine = ModelRegistry(settings_for(setup, request, monkeypatch)).load(model_type)
    assert engine.name == model_type and engine.model_file
    estimates = engine.estimate(frames)
    assert engine.estimate([]) == []
    assert len(estimates) == len(frames) and all(isinstance(e, FrameEstimate) for e in estimates)
    for estimate in estimates:
        assert (estimate.face is None) == (estimate.probabilities is None)
        assert estimate.faces_found >= (estimate.face is not None)
        if estimate.probabilities is not None:
            assert list(estimate.probabilities) == list(EMOTIONS)
            assert all(0.0 <= p <= 1.0 for p in estimate.probabilities.values())
            assert sum(estimate.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    face, blank, small = estimates
    assert face.face is not None and small.face is not None
    assert (blank.face is not None) == whole_frame
