"""Measuring an expression classifier on a labelled face set: its figures and its speed.

Which classifiers exist and how they load is :mod:`video_emotions.vision.classifier_registry`'s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from video_emotions.domain import EMOTIONS
from video_emotions.evaluation.faces import FaceSet
from video_emotions.evaluation.metrics import classification_metrics, probability_metrics
from video_emotions.vision.classifier_registry import FaceClassifier

#: Faces per ONNX Runtime call when classifying the whole set (one call of thousands is slower).
EVAL_BATCH = 64
#: Timed calls at batch 1 and at batch 32.
TIMING_REPEATS = {1: 300, 32: 30}


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


def speed(classifier: FaceClassifier, images: np.ndarray) -> dict[str, float]:
    """``ms_per_face_b1`` and ``ms_per_face_b32``: median ms per face at each batch of
    :data:`TIMING_REPEATS`, on ``images``."""
    return {
        f"ms_per_face_b{batch}": median_ms_per_face(classifier.probabilities, images, batch, repeats)
        for batch, repeats in TIMING_REPEATS.items()
    }


def evaluate(
    classifier: FaceClassifier, faces: FaceSet, timing: dict[str, float] | None = None
) -> dict[str, object]:
    """The figures of one classifier on ``faces``, JSON-ready: the fields of
    :class:`~video_emotions.evaluation.metrics.ClassificationMetrics` and
    :class:`~video_emotions.evaluation.metrics.ProbabilityMetrics`, the model file, and its
    :func:`speed` (``timing`` when given, as speed does not depend on the set; else timed here)."""
    probabilities = np.concatenate(
        [
            classifier.probabilities(faces.images[start : start + EVAL_BATCH])
            for start in range(0, len(faces), EVAL_BATCH)
        ]
    )
    metrics = classification_metrics(faces.labels, probabilities.argmax(axis=1), EMOTIONS)
    calibration = probability_metrics(faces.labels, probabilities, EMOTIONS, votes=faces.votes)
    inner = classifier.classifier
    return {
        "model": classifier.name,
        "model_file": str(inner.path),
        "model_sha256": inner.sha256,
        "input_size": inner.input_size,
        "flip_average": inner.flip_average,
        "dataset": faces.name,
        "left_out": faces.left_out,
        **metrics.as_dict(),
        **calibration.as_dict(),
        **(timing if timing is not None else speed(classifier, faces.images)),
        "threads": 1,
    }
