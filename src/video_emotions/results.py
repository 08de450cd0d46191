"""Result formats: the legacy per-segment JSON the Interviewz front end reads, and our summaries."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from video_emotions.config import Aggregation
from video_emotions.domain import EMOTIONS, NO_FACE_KEY, Face, FrameResult, SegmentResult

NO_FACE_VALUE: dict[str, float] = {NO_FACE_KEY: 0.0}

#: ``trimmed_mean`` leaves out this share of a segment's frames at each end, class by class.
TRIM_SHARE = 0.2
# ``log_mean``: probabilities are floored here before the logarithm (a softmax can round to 0).
_LOG_FLOOR = 1e-6


def frame_key(index: int, time: float) -> str:
    """``frame_00003_12.480_seconds``: the frame's index inside its segment and its time."""
    return f"frame_{index:05d}_{time:.3f}_seconds"


def percentages(probabilities: dict[str, float]) -> dict[str, float]:
    """Probabilities as percentages with 3 decimals in descending order; when rounding takes
    their sum over 100, scaled down to exactly 100.000, still with 3 decimals.

    The rescale works in thousandths of a percent: each value is scaled and rounded down, and
    the thousandths still missing go to the largest remainders, so the sum is exactly 100.
    """
    thousandths = [round(float(probabilities[label]) * 100_000) for label in EMOTIONS]
    total = sum(thousandths)
    if total > 100_000:
        scaled = [divmod(value * 100_000, total) for value in thousandths]
        thousandths = [quotient for quotient, _ in scaled]
        missing = 100_000 - sum(thousandths)
        for i in sorted(range(len(scaled)), key=lambda i: scaled[i][1], reverse=True)[:missing]:
            thousandths[i] += 1
    values = {label: value / 1000 for label, value in zip(EMOTIONS, thousandths, strict=True)}
    return dict(sorted(values.items(), key=lambda item: item[1], reverse=True))


def legacy_frame(frame: FrameResult) -> dict[str, float]:
    probabilities = frame.estimate.probabilities
    return dict(NO_FACE_VALUE) if probabilities is None else percentages(probabilities)


def legacy_segment(result: SegmentResult) -> dict[str, dict[str, float]]:
    """The ``results.video_emotions`` document of one segment, exactly as the front end expects."""
    return {frame_key(f.index, f.time): legacy_frame(f) for f in result.frames}


def aggregate(probabilities: np.ndarray, faces: Sequence[Face], method: Aggregation = "mean") -> np.ndarray:
    """One probability vector over :data:`EMOTIONS` for a segment, from its frames' ``(N, 7)``
    probabilities and the faces they were read from (``N`` >= 1).

    ``mean`` averages the probabilities; ``log_mean`` their logarithms (a geometric mean: one
    confident frame weighs less against many that disagree); ``trimmed_mean`` drops, class by
    class, the highest and lowest :data:`TRIM_SHARE` of the frames; ``score_weighted`` and
    ``size_weighted`` weight each frame by its detector score or face area. Vectors that do not
    add up to 1 by construction (log and trimmed means) are scaled to.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if method == "mean":
        return probabilities.mean(axis=0)
    if method == "score_weighted":
        return np.average(probabilities, axis=0, weights=[face.score for face in faces])
    if method == "size_weighted":
        return np.average(probabilities, axis=0, weights=[face.area for face in faces])
    if method == "log_mean":
        combined = np.exp(np.log(np.maximum(probabilities, _LOG_FLOOR)).mean(axis=0))
    elif method == "trimmed_mean":
        cut = int(TRIM_SHARE * len(probabilities))
        combined = np.sort(probabilities, axis=0)[cut : len(probabilities) - cut].mean(axis=0)
    else:
        raise ValueError(f"unknown aggregation {method!r}")
    return combined / combined.sum()


def face_shares(probabilities: np.ndarray) -> dict[str, Any]:
    """What the faces showed sample by sample, from their ``(N, 7)`` probabilities (``N`` >= 1).

    A mean over mostly neutral faces stays neutral even when a clear smile runs through part of
    the segment; counting each sample's most probable expression says both. ``neutral_share`` is
    the share of samples read as neutral; ``leading_expression`` the most frequent other one (a tie
    goes to the higher mean probability, then to :data:`EMOTIONS` order), ``None`` when every
    sample is neutral; ``leading_share`` its share of the samples.
    """
    samples = len(probabilities)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=len(EMOTIONS))
    means = probabilities.mean(axis=0)
    neutral = EMOTIONS.index("neutral")
    shown = [i for i in range(len(EMOTIONS)) if i != neutral and counts[i] > 0]
    leading = max(shown, key=lambda i: (counts[i], means[i])) if shown else None
    return {
        "neutral_share": round(int(counts[neutral]) / samples, 4),
        "leading_expression": None if leading is None else EMOTIONS[leading],
        "leading_share": None if leading is None else round(int(counts[leading]) / samples, 4),
    }


def segment_summary(result: SegmentResult, aggregation: Aggregation = "mean") -> dict[str, Any]:
    """The frames with a face combined as ``aggregation`` says (see :func:`aggregate`), as
    percentages (``mean``), the dominant expression, the usable share, and sample by sample
    what the faces showed (see :func:`face_shares`, whatever ``aggregation`` is).

    ``usable_share`` is the share of sampled frames where a face was found; a segment without
    any face has ``usable_share`` 0, no means, and ``None`` for ``dominant`` and the shares.
    """
    with_face = [f.estimate for f in result.frames if f.estimate.probabilities is not None]
    frames = len(result.frames)
    means: dict[str, float] | None = None
    dominant: str | None = None
    shares: dict[str, Any] = {"neutral_share": None, "leading_expression": None, "leading_share": None}
    if with_face:
        probabilities = np.array([[e.probabilities[label] for label in EMOTIONS] for e in with_face])
        faces = [e.face for e in with_face]
        combined = aggregate(probabilities, faces, aggregation)
        means = {
            label: round(100.0 * float(value), 3) for label, value in zip(EMOTIONS, combined, strict=True)
        }
        means = dict(sorted(means.items(), key=lambda item: item[1], reverse=True))
        dominant = next(iter(means))
        shares = face_shares(probabilities)
    return {
        "frames": frames,
        "frames_with_face": len(with_face),
        "usable_share": round(len(with_face) / frames, 4) if frames else 0.0,
        "dominant": dominant,
        **shares,
        "mean": means,
    }


def expression_words(summary: dict[str, Any]) -> str:
    """The run log's words for a summary: ``dominant neutral, neutral 70%, leading happy 30%``,
    ``dominant neutral, neutral 100%, no expression but neutral``, or ``dominant None`` (no face)."""
    words = f"dominant {summary['dominant']}"
    if summary["neutral_share"] is None:
        return words
    words += f", neutral {summary['neutral_share']:.0%}"
    if summary["leading_expression"] is None:
        return f"{words}, no expression but neutral"
    return f"{words}, leading {summary['leading_expression']} {summary['leading_share']:.0%}"


def frame_details(result: SegmentResult) -> list[dict[str, Any]]:
    """Per-frame detail for our own tables and API: face box, detector score, number of faces."""
    details = []
    for frame in result.frames:
        face = frame.estimate.face
        details.append(
            {
                "index": frame.index,
                "time": round(frame.time, 3),
                "faces": frame.estimate.faces_found,
                "box": None
                if face is None
                else [round(face.x, 1), round(face.y, 1), round(face.width, 1), round(face.height, 1)],
                "score": None if face is None else round(face.score, 4),
                "emotions": legacy_frame(frame) if face is not None else None,
            }
        )
    return details


def _emotion_cells(values: dict[str, float] | None) -> list[Any]:
    """The seven percentages in :data:`EMOTIONS` order; empty cells for a frame without a face."""
    return ["" if values is None else values[e] for e in EMOTIONS]


def segments_csv(results: list[SegmentResult]) -> str:
    """One row per sampled frame: segment, index, time, faces, then the seven percentages (as in
    the legacy JSON)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["segment_id", "index", "time", "faces", *EMOTIONS])
    for result in results:
        for frame in result.frames:
            probabilities = frame.estimate.probabilities
            row: list[Any] = [result.segment.id, frame.index, f"{frame.time:.3f}", frame.estimate.faces_found]
            row += _emotion_cells(None if probabilities is None else percentages(probabilities))
            writer.writerow(row)
    return out.getvalue()


#: The columns of :func:`frames_csv`: the frame's segment, time, face box and score, percentages.
FRAME_COLUMNS: tuple[str, ...] = (
    "interview_id",
    "segment_id",
    "segment_start_ms",
    "segment_end_ms",
    "time_s",
    "face_found",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "detector_score",
    *EMOTIONS,
)


def _plain(value: float) -> float | int:
    """A whole number of milliseconds without its ``.0``."""
    return int(value) if float(value).is_integer() else value


def frames_csv(interview_id: int, segments: Sequence[dict[str, Any]]) -> str:
    """One row per sampled frame of an interview's stored segments (``result_id``, ``start_ms``,
    ``end_ms`` and the frames of :func:`frame_details`): the columns of :data:`FRAME_COLUMNS`,
    ``face_found`` ``true`` or ``false``, empty cells where a frame has no face."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FRAME_COLUMNS)
    for segment in segments:
        bounds = [segment["result_id"], _plain(segment["start_ms"]), _plain(segment["end_ms"])]
        for frame in segment["frames"]:
            box = frame["box"]
            found = [
                f"{frame['time']:.3f}",
                "false" if box is None else "true",
                *(["", "", "", ""] if box is None else box),
                "" if frame["score"] is None else frame["score"],
            ]
            writer.writerow([interview_id, *bounds, *found, *_emotion_cells(frame["emotions"])])
    return out.getvalue()
