"""yolo_local with real YOLO files: a YOLO11n-cls that ultralytics builds from its yaml (``.pt``),
its ONNX export by ``video-emotions models export-yolo``, and that export run without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.models.yolo_files import YOLO_NAMES, yolo11n_cls
from video_emotions.config import Settings
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.registry import ModelRegistry
from video_emotions.vision.yolo import prepare

pytestmark = pytest.mark.heavy

LIGHT_PYTHON = REPO / ".venv" / "bin" / "python"

#: Run by the light environment's Python: our ONNX engine, and nothing of torch imported.
ONNX_WITHOUT_TORCH = """
import json, sys
import numpy as np
from tests.media import face_frame
from video_emotions.config import Settings
from video_emotions.vision.registry import ModelRegistry

engine = ModelRegistry(Settings(yolo_model_path=sys.argv[1])).load("yolo_local")
frames = [face_frame(), np.full((360, 640, 3), 128, np.uint8)]
print(json.dumps({
    "probabilities": [e.probabilities for e in engine.estimate(frames)],
    "torch": sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "ultralytics")),
}))
"""


@pytest.fixture(scope="module")
def exported(yolo_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("export") / "emotions-cls.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "video_emotions", "models", "export-yolo", str(yolo_pt), str(target)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr and "warning" not in done.stderr
    return target


def test_the_export_carries_the_names_and_a_dynamic_batch(exported: Path) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["task"] == "classify" and metadata["names"] == str(dict(enumerate(YOLO_NAMES)))
    assert not isinstance(session.get_inputs()[0].shape[0], int)


def test_pt_and_onnx_give_the_same_estimates(yolo_pt: Path, exported: Path, frames: list[np.ndarray]) -> None:
    by_pt = ModelRegistry(Settings(yolo_model_path=yolo_pt)).load("yolo_local").estimate(frames)
    by_onnx = ModelRegistry(Settings(yolo_model_path=exported)).load("yolo_local").estimate(frames)
    assert [e.face for e in by_pt] == [e.face for e in by_onnx]
    for pt, onnx in zip(by_pt, by_onnx, strict=True):
        assert (pt.probabilities is None) == (onnx.probabilities is None)
        if pt.probabilities is not None:
            assert list(pt.probabilities.values()) == pytest.approx(
                list(onnx.probabilities.values()), abs=1e-4
            )


@pytest.mark.parametrize("shape", [(64, 64), (90, 70), (70, 130), (20, 33), (300, 200)])
def test_the_onnx_preparation_is_ultralytics_own(shape: tuple[int, int]) -> None:
    from PIL import Image
    from ultralytics.data.augment import classify_transforms

    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    theirs = classify_transforms(64)(Image.fromarray(image)).numpy()
    np.testing.assert_allclose(prepare([image], 64)[0], theirs, atol=1e-6)


def test_the_onnx_export_runs_where_there_is_no_torch(
    yolo_pt: Path, exported: Path, frames: list[np.ndarray]
) -> None:
    if not LIGHT_PYTHON.is_file():
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{LIGHT_PYTHON} is missing: `make test` builds it")
        pytest.skip(f"{LIGHT_PYTHON} is missing")
    done = subprocess.run(
        [str(LIGHT_PYTHON), "-c", ONNX_WITHOUT_TORCH, str(exported)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["torch"] == []
    by_pt = ModelRegistry(Settings(yolo_model_path=yolo_pt)).load("yolo_local").estimate(frames[:2])
    assert answer["probabilities"][1] is None and by_pt[1].probabilities is None
    assert list(answer["probabilities"][0].values()) == pytest.approx(
        list(by_pt[0].probabilities.values()), abs=1e-4
    )


def test_a_pt_model_whose_classes_cannot_be_mapped_is_refused_with_its_names(tmp_path: Path) -> None:
    names = ["cat", "dog", "bird", "fish", "cow", "hen", "pig"]
    registry = ModelRegistry(Settings(yolo_model_path=yolo11n_cls(tmp_path / "animals.pt", names)))
    status = {s.name: s for s in registry.statuses()}["yolo_local"]
    assert not status.available and f"classes {names} do not map" in status.reason
    with pytest.raises(ModelUnavailableError, match="do not map onto angry"):
        registry.load("yolo_local")
