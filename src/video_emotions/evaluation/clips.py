"""The product's whole pipeline on labelled clips: sampler, detector, crop, classifier and summary.

A clip folder holds a ``labels.csv`` with at least the columns ``path`` (relative to the folder),
``label``, ``dataset`` and ``label_quality`` (the layout of ``shared/data/videos_dev``). Labels
are matched to our seven as class folders are (``anger`` → ``angry``, ...). Each clip is analysed
as one segment ``[0, duration)`` with :func:`~video_emotions.analysis.analyse_video`, and its
predicted label is the segment's ``dominant`` expression as the product reports it
(:func:`~video_emotions.results.segment_summary` with the configured aggregation); a clip in
which no sampled frame shows a face is predicted :data:`NO_FACE`, and one whose file is missing,
does not decode or decodes only in part is predicted :data:`FAILED`, with its reason: both are
always wrong, and the other clips are measured all the same.

Besides the dominant expression, the summary says sample by sample what the faces showed
(``neutral_share``, ``leading_expression``, ``leading_share``): a clip's label is *shown* when it
is the dominant expression or, for a label other than neutral, the leading one.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_emotions.analysis import analyse_video
from video_emotions.config import Aggregation
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.errors import InputError, NotFoundError
from video_emotions.evaluation.metrics import classification_metrics, wilson_interval
from video_emotions.results import segment_summary
from video_emotions.video.sampler import probe
from video_emotions.vision.engine import EmotionEngine
from video_emotions.vision.labels import normalise_label

LABELS_FILE = "labels.csv"
#: The prediction for a clip without any face.
NO_FACE = "none"
#: The prediction for a clip that could not be analysed (missing, or a file that does not decode).
FAILED = "failed"
#: The reason a clip failed when its file is not in the folder.
MISSING = "missing"
#: Predicted classes: our seven, then :data:`NO_FACE` and :data:`FAILED`.
PREDICTED_CLASSES = (*EMOTIONS, NO_FACE, FAILED)
#: A neutral clip whose leading expression has at least this share of the samples with a face is
#: counted in ``neutral_false_lead``: the summary shows an expression the label says is not there.
FALSE_LEAD_SHARE = 0.25
#: ``label_quality`` values of labels that are the dataset's own (the others are weaker).
DATASET_QUALITIES = frozenset({"dataset", "dataset-page"})
_COLUMNS = ("path", "label", "dataset", "label_quality")


@dataclass(frozen=True)
class Clip:
    """A labelled clip; ``name`` is its path as ``labels.csv`` gives it, relative to the folder."""

    name: str
    path: Path
    label: str
    dataset: str
    label_quality: str


@dataclass(frozen=True)
class ClipOutcome:
    """What the pipeline made of one clip; ``seconds`` is the wall time of its analysis."""

    clip: Clip
    predicted: str
    samples: int
    samples_with_face: int
    #: Sampled frames with a face whose most probable expression is the clip's label.
    frames_correct: int
    seconds: float
    #: The segment's combined percentages as the summary reports them (None without a face):
    #: how far the right answer was from the predicted one.
    mean: dict[str, float] | None
    #: The summary's sample-by-sample shares (None without a face; see the module).
    neutral_share: float | None = None
    leading_expression: str | None = None
    leading_share: float | None = None
    #: Why the clip could not be analysed (predicted :data:`FAILED`); None when it was.
    error: str | None = None

    @property
    def shown(self) -> bool:
        """Whether the clip's label is its dominant expression or, not neutral, its leading one."""
        leads = self.clip.label != "neutral" and self.leading_expression == self.clip.label
        return self.predicted == self.clip.label or leads

    @property
    def neutral_false_lead(self) -> bool:
        """A neutral clip whose leading expression has :data:`FALSE_LEAD_SHARE` or more of the samples
        with a face."""
        share = self.leading_share
        return self.clip.label == "neutral" and share is not None and share >= FALSE_LEAD_SHARE


def load_clips(folder: Path) -> list[Clip]:
    """The clips listed in ``folder/labels.csv``; InputError for a missing file or column, or a
    label that is not one of our seven (a missing clip fails when it is run: :func:`run_clip`)."""
    folder = Path(folder)
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise InputError(f"{folder}: no {LABELS_FILE}")
    with labels.open(newline="") as file:
        rows = list(csv.DictReader(file))
    missing = [column for column in _COLUMNS if rows and column not in rows[0]]
    if not rows or missing:
        raise InputError(f"{labels}: needs rows with the columns {', '.join(_COLUMNS)} (missing {missing})")
    clips = []
    for row in rows:
        label = normalise_label(row["label"])
        if label is None:
            raise InputError(f"{labels}: label {row['label']!r} of {row['path']} is not one of {EMOTIONS}")
        clips.append(Clip(row["path"], folder / row["path"], label, row["dataset"], row["label_quality"]))
    return clips


def run_clip(clip: Clip, engine: EmotionEngine, *, interval: float, aggregation: Aggregation) -> ClipOutcome:
    """Analyse ``clip`` as one segment the way the service does and read its summary; a clip whose
    file is missing or does not decode (in whole or in part) is :data:`FAILED`, with the reason."""
    start = time.perf_counter()
    try:
        if not clip.path.is_file():
            raise NotFoundError(MISSING)
        (result,) = analyse_video(
            clip.path, [Segment(1, 0.0, probe(clip.path).duration)], engine, interval=interval
        )
        if result.decoded_until is not None:  # a labelled clip counts whole or not at all
            raise InputError(
                f"{clip.path.name} stops decoding at {result.decoded_until:.3f} s: {result.uncovered_reason}"
            )
    except (InputError, NotFoundError) as exc:
        return ClipOutcome(clip, FAILED, 0, 0, 0, time.perf_counter() - start, None, error=str(exc))
    seconds = time.perf_counter() - start
    summary = segment_summary(result, aggregation)
    frames = [f.estimate.probabilities for f in result.frames if f.estimate.probabilities is not None]
    return ClipOutcome(
        clip=clip,
        predicted=summary["dominant"] or NO_FACE,
        samples=summary["frames"],
        samples_with_face=summary["frames_with_face"],
        frames_correct=sum(max(p, key=p.__getitem__) == clip.label for p in frames),
        seconds=seconds,
        mean=summary["mean"],
        neutral_share=summary["neutral_share"],
        leading_expression=summary["leading_expression"],
        leading_share=summary["leading_share"],
    )


def group_figures(outcomes: Sequence[ClipOutcome]) -> dict[str, Any]:
    """Clip accuracy (Wilson 95%), macro-F1 over our seven, per-class recall, the confusion matrix
    (rows: true, of our seven; columns: :data:`PREDICTED_CLASSES`), the clips that failed, the
    clips whose label is ``shown`` and the neutral ones with a false lead (see
    :class:`ClipOutcome`), the share of samples with a face, frame accuracy (Wilson 95%) and ms
    per sample of the clips analysed, JSON-ready."""
    metrics = classification_metrics(
        [EMOTIONS.index(o.clip.label) for o in outcomes],
        [PREDICTED_CLASSES.index(o.predicted) for o in outcomes],
        PREDICTED_CLASSES,
    )
    # "none" and "failed" are never true labels: leave their F1 (always 0) out of the macro average.
    f1 = [value for name, value in metrics.per_class_f1.items() if name in EMOTIONS and value is not None]
    samples = sum(o.samples for o in outcomes)
    with_face = sum(o.samples_with_face for o in outcomes)
    frames_correct = sum(o.frames_correct for o in outcomes)
    seconds = sum(o.seconds for o in outcomes if o.error is None)
    return {
        "clips": metrics.count,
        "correct": metrics.correct,
        "accuracy": metrics.accuracy,
        "accuracy_ci95": list(metrics.accuracy_ci95),
        "macro_f1": sum(f1) / len(f1) if f1 else 0.0,
        "per_class_recall": {emotion: metrics.per_class_recall[emotion] for emotion in EMOTIONS},
        "predicted_classes": list(PREDICTED_CLASSES),
        "confusion": [list(row) for row in metrics.confusion[: len(EMOTIONS)]],
        "failed": sum(o.error is not None for o in outcomes),
        "shown": sum(o.shown for o in outcomes),
        "neutral_false_lead": sum(o.neutral_false_lead for o in outcomes),
        "samples": samples,
        "samples_with_face": with_face,
        "face_share": with_face / samples if samples else 0.0,
        "frames_correct": frames_correct,
        "frame_accuracy": frames_correct / with_face if with_face else 0.0,
        "frame_accuracy_ci95": list(wilson_interval(frames_correct, with_face)),
        "ms_per_sample": 1000.0 * seconds / samples if samples else 0.0,
    }


def clips_report(outcomes: Sequence[ClipOutcome]) -> dict[str, Any]:
    """:func:`group_figures` overall, per ``dataset``, and for the clips with the datasets' own labels,
    plus one row per clip (with the segment's combined percentages, ``mean``)."""
    datasets = sorted({o.clip.dataset for o in outcomes})
    own_labels = [o for o in outcomes if o.clip.label_quality in DATASET_QUALITIES]
    return {
        "overall": group_figures(outcomes),
        "by_dataset": {
            name: group_figures([o for o in outcomes if o.clip.dataset == name]) for name in datasets
        },
        "dataset_labels": group_figures(own_labels) if own_labels else None,
        "per_clip": [
            {
                "path": o.clip.name,
                "label": o.clip.label,
                "predicted": o.predicted,
                "dataset": o.clip.dataset,
                "label_quality": o.clip.label_quality,
                "samples": o.samples,
                "samples_with_face": o.samples_with_face,
                "frames_correct": o.frames_correct,
                "mean": o.mean,
                "neutral_share": o.neutral_share,
                "leading_expression": o.leading_expression,
                "leading_share": o.leading_share,
                "error": o.error,
            }
            for o in outcomes
        ],
    }


def evaluate_clips(
    clips: Sequence[Clip],
    engine: EmotionEngine,
    *,
    interval: float,
    aggregation: Aggregation,
    progress: Callable[[ClipOutcome], None] | None = None,
) -> dict[str, Any]:
    """Run the pipeline on every clip and report (see :func:`clips_report`)."""
    outcomes = []
    for clip in clips:
        outcomes.append(run_clip(clip, engine, interval=interval, aggregation=aggregation))
        if progress is not None:
            progress(outcomes[-1])
    return clips_report(outcomes)
