"""Fixtures of the model-type tests: frames, YOLO files, a service answering ``/v1/predict``.

Tests marked ``heavy`` need the ``[deepface]`` and ``[yolo]`` extras, which live in ``.venv-heavy``
(``make heavy-env``; ``make test`` runs them there). Elsewhere they are skipped, except under
REQUIRE_SERVICES=1 (CI), where a missing extra fails them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.media import face_frame
from tests.models.yolo_files import tiny_onnx
from tests.service import RunningService, run_service

HEAVY_MODULES = ("deepface", "ultralytics", "tensorflow", "torch")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [name for name in HEAVY_MODULES if importlib.util.find_spec(name) is None]
    if not missing or os.environ.get("REQUIRE_SERVICES") == "1":
        return
    skip = pytest.mark.skip(reason=f"needs the heavy extras ({', '.join(missing)} missing): make heavy-env")
    for item in items:
        if item.get_closest_marker("heavy"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    """The same frames for every engine: a face, no face (plain grey), a smaller face."""
    return [face_frame(), np.full((360, 640, 3), 128, dtype=np.uint8), face_frame(320, 240)]


@pytest.fixture(scope="session")
def tiny_yolo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny YOLO-style classification export (see tests.models.yolo_files), dynamic batch."""
    return tiny_onnx(tmp_path_factory.mktemp("yolo") / "tiny.onnx")


@pytest.fixture(scope="session")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A second instance of our service, whose ``POST /v1/predict`` serves the default engine."""
    with run_service(tmp_path_factory.mktemp("predictor"), VE_WORKERS="2") as running:
        yield running


@pytest.fixture(scope="session")
def yolo_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real YOLO11n-cls checkpoint for our seven classes, built by ultralytics (heavy)."""
    from tests.models.yolo_files import yolo11n_cls

    return yolo11n_cls(tmp_path_factory.mktemp("yolo-pt") / "emotions-cls.pt")


@pytest.fixture(scope="session")
def deepface_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DEEPFACE_HOME with OpenCV's cascades and emotion weights built for DeepFace's architecture
    (heavy). The weights are DeepFace's own initialisation: for loading tests, not accuracy."""
    from tests.models.deepface_files import make_deepface_home

    home = tmp_path_factory.mktemp("deepface-home")
    make_deepface_home(home)
    return home
