"""deepface with the DeepFace library installed (the heavy environment).

No emotion weights can be had offline (DeepFace fetches them from GitHub): without them the model
is unavailable and says where the file goes. With a weights file built for DeepFace's emotion
architecture (its own builder, untrained), the whole engine runs: a loading test, not an accuracy
figure.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.media import face_video
from tests.service import run_service
from video_emotions.config import Settings
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.deepface_engine import install_cascades
from video_emotions.vision.modelfiles import ModelCache
from video_emotions.vision.registry import ModelRegistry

pytestmark = pytest.mark.heavy


def test_without_its_files_deepface_is_unavailable_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: ModelCache
) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    weights = tmp_path / ".deepface" / "weights"
    registry = ModelRegistry(Settings(strict_models=True))
    with pytest.raises(
        ModelUnavailableError, match=r"haarcascade_frontalface_default\.xml and haarcascade_eye"
    ):
        registry.check("deepface")
    install_cascades(model_cache, weights)
    with pytest.raises(ModelUnavailableError) as missing:
        registry.check("deepface")
    assert f"emotion weights {weights / 'facial_expression_model_weights.h5'} are missing" in str(
        missing.value
    )
    assert "never lets it" in str(missing.value)
    assert sorted(p.name for p in weights.iterdir()) == [
        "haarcascade_eye.xml",
        "haarcascade_frontalface_default.xml",
    ]
    status = {s.name: s for s in registry.statuses()}["deepface"]
    assert not status.available and "facial_expression_model_weights.h5" in status.reason
    other = ModelRegistry(Settings(deepface_detector="retinaface", strict_models=True))
    with pytest.raises(ModelUnavailableError, match="retinaface: DeepFace downloads that detector's weights"):
        other.check("deepface")


def test_the_service_runs_deepface_once_its_files_are_there(tmp_path: Path, deepface_home: Path) -> None:
    empty = tmp_path / "empty-home"
    with run_service(tmp_path / "first", DEEPFACE_HOME=str(empty)) as service:
        listed = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models").json()["models"]}
        assert (
            not listed["deepface"]["available"]
            and "run `video-emotions models pull --deepface`" in (listed["deepface"]["reason"])
        )
    video = face_video(tmp_path / "face.mp4", 2.5)
    with run_service(tmp_path / "second", DEEPFACE_HOME=str(deepface_home)) as service:
        listed = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models").json()["models"]}
        assert listed["deepface"]["available"] and listed["deepface"]["served_by"] == "deepface"
        service.ctx.db.ingest(session_id=4, interview_id=40, segments=[Segment(0, 0.0, 2.0)])
        service.ctx.blobs.put("4/40/raw/raw.mp4", video)
        answer = httpx.post(
            f"{service.url}/analyse_video",
            params={"session_id": 4, "interview_id": 40, "model_type": "deepface"},
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
        (job,) = service.ctx.db.jobs_for_interview(40)
        assert (job.engine, job.model_file) == ("deepface", "facial_expression_model_weights.h5")
        (row,) = service.ctx.db.results_rows(40)
        assert all(set(frame) == set(EMOTIONS) for frame in row["video_emotions"].values())
    # Nothing was downloaded beside the files it was given.
    assert sorted(os.listdir(deepface_home / ".deepface" / "weights")) == [
        "facial_expression_model_weights.h5",
        "haarcascade_eye.xml",
        "haarcascade_frontalface_default.xml",
    ]
