"""Shared fixtures: where the shared data lives, and the model files the tests need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from video_emotions.vision.modelfiles import ModelCache

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VE_SHARED_DIR", REPO.parent / "shared"))
VIDEOS = SHARED / "data" / "videos"
FER2013 = SHARED / "data" / "fer2013"
FERPLUS = SHARED / "data" / "ferplus"


def require_shared(path: Path) -> Path:
    """Skip when the shared data is absent, unless REQUIRE_SERVICES=1 (CI), where it must be there."""
    if not path.exists():
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{path} is missing: CI needs ../shared beside the clone")
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def woman2_mp4() -> Path:
    return require_shared(VIDEOS / "woman2.mp4")


@pytest.fixture(scope="session")
def test_mp4() -> Path:
    return require_shared(VIDEOS / "test.mp4")


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    """The user's model cache (``VE_MODEL_DIR`` or ``~/.cache/video-emotions/models``)."""
    from video_emotions.config import default_model_dir

    return ModelCache(Path(os.environ.get("VE_MODEL_DIR", default_model_dir())))
