"""Classification figures from true labels and predictions: nothing here knows about faces or models.

Labels are class indices ``0 .. len(classes) - 1``; ``classes`` only names them in the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for ``z`` = 1.96); ``(0, 1)`` when ``total`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is honest for small counts.
    """
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ClassificationMetrics:
    """Top-1 figures of one set of predictions.

    ``confusion[i][j]`` counts items of true class ``i`` predicted as ``j``. A class's recall is
    ``None`` when no item has it as true label. Macro-F1 averages the F1 of the classes that occur
    as a true label or as a prediction (a class absent from both has no F1; one predicted but never
    true counts with F1 0).
    """

    classes: tuple[str, ...]
    count: int
    correct: int
    accuracy: float
    accuracy_ci95: tuple[float, float]
    macro_f1: float
    per_class_recall: dict[str, float | None]
    per_class_f1: dict[str, float | None]
    confusion: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "count": self.count,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci95),
            "macro_f1": self.macro_f1,
            "per_class_recall": self.per_class_recall,
            "per_class_f1": self.per_class_f1,
            "classes": list(self.classes),
            "confusion": [list(row) for row in self.confusion],
        }


def classification_metrics(
    truth: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy (with its Wilson 95% interval), macro-F1, per-class recall and F1, confusion matrix."""
    truth = np.asarray(truth, dtype=np.int64).ravel()
    predicted = np.asarray(predicted, dtype=np.int64).ravel()
    k = len(classes)
    if truth.shape != predicted.shape:
        raise ValueError(f"{truth.size} labels but {predicted.size} predictions")
    for name, values in (("labels", truth), ("predictions", predicted)):
        if values.size and (values.min() < 0 or values.max() >= k):
            raise ValueError(f"{name} must lie in 0..{k - 1}, got {values.min()}..{values.max()}")
    confusion = np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion)
    true_counts = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    recall: dict[str, float | None] = {}
    f1: dict[str, float | None] = {}
    for index, name in enumerate(classes):
        recall[name] = float(hits[index] / true_counts[index]) if true_counts[index] else None
        seen = true_counts[index] + predicted_counts[index]
        f1[name] = float(2 * hits[index] / seen) if seen else None
    scored = [value for value in f1.values() if value is not None]
    correct = int(hits.sum())
    return ClassificationMetrics(
        classes=tuple(classes),
        count=int(truth.size),
        correct=correct,
        accuracy=correct / truth.size if truth.size else 0.0,
        accuracy_ci95=wilson_interval(correct, int(truth.size)),
        macro_f1=float(np.mean(scored)) if scored else 0.0,
        per_class_recall=recall,
        per_class_f1=f1,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )
