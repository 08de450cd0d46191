"""Classification figures from true labels, predictions and probabilities: nothing here knows about
faces or models.

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
    ``None`` when no item has it as true label, its precision ``None`` when no item is predicted
    as it. Macro-F1 averages the F1 of the classes that occur
    as a true label or as a prediction (a class absent from both has no F1; one predicted but never
    true counts with F1 0).
    """

    classes: tuple[str, ...]
    count: int
    correct: int
    accuracy: float
    accuracy_ci95: tuple[float, float]
    macro_f1: float
    per_class_precision: dict[str, float | None]
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
            "per_class_precision": self.per_class_precision,
            "per_class_recall": self.per_class_recall,
            "per_class_f1": self.per_class_f1,
            "classes": list(self.classes),
            "confusion": [list(row) for row in self.confusion],
        }


def classification_metrics(
    truth: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy (with its Wilson 95% interval), macro-F1, per-class precision, recall and F1,
    confusion matrix."""
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
    precision: dict[str, float | None] = {}
    recall: dict[str, float | None] = {}
    f1: dict[str, float | None] = {}
    for index, name in enumerate(classes):
        precision[name] = float(hits[index] / predicted_counts[index]) if predicted_counts[index] else None
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
        per_class_precision=precision,
        per_class_recall=recall,
        per_class_f1=f1,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


#: Equal-width confidence bins of the calibration errors.
CALIBRATION_BINS = 15
#: Probabilities are floored here before the logarithm of the vote cross-entropy.
_LOG_FLOOR = 1e-7


def _calibration_gap(values: np.ndarray, outcomes: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """``sum_b (n_b / N) |mean value_b - mean outcome_b|`` over ``bins`` equal-width bins of
    ``values`` in [0, 1] (bin ``b`` holds ``(b/bins, (b+1)/bins]``, the first also 0); 0 when empty.

    With the top probability as value and "the top class is right" as outcome this is the
    expected calibration error; with one class's probability and "the label is that class", that
    class's calibration error.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    outcomes = np.asarray(outcomes, dtype=np.float64).ravel()
    if values.size == 0:
        return 0.0
    which = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], values, side="left")
    # (n_b / N) |mean value_b - mean outcome_b| = |sum over bin b of (value - outcome)| / N
    gaps = np.abs(np.bincount(which, weights=values - outcomes, minlength=bins))
    return float(gaps.sum() / values.size)


@dataclass(frozen=True)
class ProbabilityMetrics:
    """Figures of the probabilities themselves, not only of the top class.

    ``ece``: top-label expected calibration error (:data:`CALIBRATION_BINS` bins, weighted by
    bin count). ``per_class_ece``: each class's calibration error (its probability against the
    share of items of that class, binned the same way). With votes (each item's annotators'
    distribution over the classes): ``vote_cross_entropy``, the mean over items of
    ``-sum_k votes_k log max(p_k, 1e-7)`` in nats, and ``majority_probability``, the mean
    probability given to the label (the votes' majority); both ``None`` without votes or items.
    """

    ece: float
    per_class_ece: dict[str, float]
    vote_cross_entropy: float | None
    majority_probability: float | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        return {
            "ece": self.ece,
            "per_class_ece": self.per_class_ece,
            "vote_cross_entropy": self.vote_cross_entropy,
            "majority_probability": self.majority_probability,
        }


def probability_metrics(
    truth: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    votes: np.ndarray | None = None,
    bins: int = CALIBRATION_BINS,
) -> ProbabilityMetrics:
    """Calibration of ``(N, K)`` probabilities against labels, and their fit to ``(N, K)`` vote
    distributions (rows summing to 1) when given."""
    truth = np.asarray(truth, dtype=np.int64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = len(classes)
    if probabilities.shape != (truth.size, k):
        raise ValueError(f"probabilities must be ({truth.size}, {k}), got {probabilities.shape}")
    if votes is not None and np.shape(votes) != probabilities.shape:
        raise ValueError(f"votes must be {probabilities.shape}, got {np.shape(votes)}")
    ece = _calibration_gap(probabilities.max(axis=1), probabilities.argmax(axis=1) == truth, bins)
    per_class = {
        name: _calibration_gap(probabilities[:, index], truth == index, bins)
        for index, name in enumerate(classes)
    }
    cross_entropy = majority = None
    if votes is not None and truth.size:
        logs = np.log(np.maximum(probabilities, _LOG_FLOOR))
        cross_entropy = float(-(np.asarray(votes, dtype=np.float64) * logs).sum(axis=1).mean())
        majority = float(probabilities[np.arange(truth.size), truth].mean())
    return ProbabilityMetrics(ece, per_class, cross_entropy, majority)
