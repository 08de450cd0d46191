"""DeepFace's files, made offline: OpenCV's cascades from their pinned wheel, and emotion weights
saved from DeepFace's own emotion architecture (untrained: a loading test, not an accuracy figure)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from video_emotions.config import default_model_dir
from video_emotions.vision.deepface_engine import import_deepface, install_cascades
from video_emotions.vision.modelfiles import ModelCache


def make_deepface_home(home: Path) -> Path:
    """Put the cascades and ``facial_expression_model_weights.h5`` under ``home/.deepface/weights``."""
    weights = home / ".deepface" / "weights"
    install_cascades(ModelCache(Path(os.environ.get("VE_MODEL_DIR", default_model_dir()))), weights)
    import_deepface()
    from deepface.models.demography.tf import Emotion

    # DeepFace's own builder, with its download and weight loading taken out: the bare architecture.
    with (
        mock.patch.object(Emotion.weight_utils, "download_weights_if_necessary", return_value=""),
        mock.patch.object(Emotion.weight_utils, "load_model_weights", side_effect=lambda model, **_: model),
    ):
        model = Emotion.load_model()
    target = weights / "facial_expression_model_weights.h5"
    model.save_weights(str(target))
    return target
