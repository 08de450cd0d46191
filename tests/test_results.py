import csv
import io
import json

import numpy as np

from video_emotions.domain import (
    EMOTIONS,
    NO_FACE_KEY,
    Face,
    FrameEstimate,
    FrameResult,
    Segment,
    SegmentResult,
)
from video_emotions.results import (
    expression_words,
    frame_details,
    frame_key,
    legacy_segment,
    percentages,
    segment_summary,
    segments_csv,
)

FACE = Face(10, 20, 30, 40, 0.9)


def estimate(**probabilities: float) -> FrameEstimate:
    full = {label: 0.0 for label in EMOTIONS} | probabilities
    return FrameEstimate(face=FACE, faces_found=1, probabilities=full)


NO_FACE = FrameEstimate(face=None, faces_found=0, probabilities=None)


def test_frame_key_has_five_digit_index_and_millisecond_time() -> None:
    assert frame_key(0, 12.0) == "frame_00000_12.000_seconds"
    assert frame_key(123, 3.14159) == "frame_00123_3.142_seconds"


def thousandths(values: dict[str, float]) -> int:
    """A frame's percentages added up in whole thousandths, once each is checked to have at most
    three decimals (so the sum is exact, not a float's)."""
    for label, value in values.items():
        assert round(value, 3) == value, f"{label}: {value!r} has more than three decimals"
    return sum(round(value * 1000) for value in values.values())


def test_percentages_descend_and_never_exceed_100() -> None:
    # Rounded to 3 decimals these add up to 100.002: scaled down to exactly 100.000.
    probabilities = {label: 0.0 for label in EMOTIONS} | {"happy": 0.500006, "sad": 0.300006, "fear": 0.2}
    values = percentages(probabilities)
    assert list(values)[:3] == ["happy", "sad", "fear"]
    assert set(values) == set(EMOTIONS)
    assert thousandths(values) == 100_000
    assert values == {e: 0.0 for e in EMOTIONS} | {"happy": 50.0, "sad": 30.0, "fear": 20.0}


def test_every_percentage_has_three_decimals_and_no_frame_sums_over_100() -> None:
    # Softmax outputs of all kinds: many round to more than 100 and are scaled down.
    rng = np.random.default_rng(19)
    logits = rng.normal(scale=rng.uniform(0.1, 6.0, size=(2000, 1)), size=(2000, len(EMOTIONS)))
    rows = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frames = [
        FrameResult(i, i / 10, estimate(**dict(zip(EMOTIONS, row, strict=True))))
        for i, row in enumerate(rows)
    ]
    result = SegmentResult(Segment(1, 0.0, 200.0), frames)
    over = sum(sum(round(p * 100, 3) for p in row) > 100 for row in rows)
    assert over > 200, "too few frames that need the rescale"
    legacy = list(legacy_segment(result).values())
    details = [frame["emotions"] for frame in frame_details(result)]
    reader = csv.DictReader(io.StringIO(segments_csv([result])))
    from_csv = [{e: float(row[e]) for e in EMOTIONS} for row in reader]
    assert details == legacy and from_csv == legacy
    for values, row in zip(legacy, rows, strict=True):
        total = thousandths(values)
        assert total <= 100_000
        if sum(round(p * 100, 3) for p in row) > 100:
            assert total == 100_000
        assert list(values.values()) == sorted(values.values(), reverse=True)


def test_legacy_segment_marks_frames_without_face_exactly() -> None:
    result = SegmentResult(
        Segment(7, 12.0, 14.0),
        [FrameResult(0, 12.0, estimate(happy=0.8, neutral=0.2)), FrameResult(1, 13.0, NO_FACE)],
    )
    document = legacy_segment(result)
    assert list(document) == ["frame_00000_12.000_seconds", "frame_00001_13.000_seconds"]
    assert document["frame_00001_13.000_seconds"] == {NO_FACE_KEY: 0.0}
    first = document["frame_00000_12.000_seconds"]
    assert list(first)[:2] == ["happy", "neutral"]
    assert abs(first["happy"] - 80.0) < 1e-6


def test_summary_averages_frames_with_a_face_only() -> None:
    result = SegmentResult(
        Segment(1, 0.0, 3.0),
        [
            FrameResult(0, 0.0, estimate(happy=1.0)),
            FrameResult(1, 1.0, estimate(sad=1.0)),
            FrameResult(2, 2.0, estimate(happy=1.0)),
            FrameResult(3, 3.0, NO_FACE),
        ],
    )
    summary = segment_summary(result)
    assert summary["frames"] == 4
    assert summary["frames_with_face"] == 3
    assert summary["usable_share"] == 0.75
    assert summary["dominant"] == "happy"
    assert abs(summary["mean"]["happy"] - 66.667) < 0.01


def test_summary_of_a_segment_without_any_face() -> None:
    summary = segment_summary(SegmentResult(Segment(1, 0.0, 1.0), [FrameResult(0, 0.0, NO_FACE)]))
    assert summary["usable_share"] == 0
    assert summary["dominant"] is None
    assert summary["mean"] is None


def test_csv_has_a_row_per_frame() -> None:
    result = SegmentResult(
        Segment(5, 0.0, 1.0), [FrameResult(0, 0.0, estimate(fear=1.0)), FrameResult(1, 1.0, NO_FACE)]
    )
    lines = segments_csv([result]).strip().splitlines()
    assert lines[0].split(",") == ["segment_id", "index", "time", "faces", *EMOTIONS]
    assert lines[1].split(",")[:4] == ["5", "0", "0.000", "1"]
    assert lines[1].split(",")[4 + EMOTIONS.index("fear")] == "100.0"
    assert lines[2].split(",")[4:] == [""] * 7


def test_aggregations_combine_frames_as_named() -> None:
    small, large = Face(0, 0, 10, 10, 0.6), Face(0, 0, 30, 10, 0.9)
    frames = [
        FrameResult(0, 0.0, FrameEstimate(small, 1, {e: 0.0 for e in EMOTIONS} | {"sad": 0.9, "happy": 0.1})),
        FrameResult(1, 1.0, FrameEstimate(large, 1, {e: 0.0 for e in EMOTIONS} | {"sad": 0.2, "happy": 0.8})),
        FrameResult(2, 2.0, NO_FACE),
    ]
    result = SegmentResult(Segment(1, 0.0, 3.0), frames)

    def summary(aggregation: str) -> dict:
        return segment_summary(result, aggregation)["mean"]

    assert summary("mean")["sad"] == 55.0 and segment_summary(result)["dominant"] == "sad"
    assert summary("score_weighted")["happy"] == round(100 * (0.6 * 0.1 + 0.9 * 0.8) / 1.5, 3)
    assert summary("size_weighted")["happy"] == round(100 * (100 * 0.1 + 300 * 0.8) / 400, 3)
    # Geometric means, scaled to add up to 1: sqrt(0.18) against sqrt(0.08) for sad.
    assert summary("log_mean")["sad"] == round(100 * 0.18**0.5 / (0.18**0.5 + 0.08**0.5), 3)
    # Two frames: nothing to trim, the plain mean.
    assert summary("trimmed_mean") == summary("mean")
    assert segment_summary(result, "size_weighted")["dominant"] == "happy"
    assert segment_summary(result, "log_mean")["frames_with_face"] == 2


def test_trimmed_mean_drops_the_extremes_class_by_class() -> None:
    values = [0.9, 0.5, 0.4, 0.45, 0.0]
    frames = [FrameResult(i, float(i), estimate(sad=v, neutral=1 - v)) for i, v in enumerate(values)]
    means = segment_summary(SegmentResult(Segment(1, 0.0, 5.0), frames), "trimmed_mean")["mean"]
    # One frame of five cut at each end: sad (0.4 + 0.45 + 0.5) / 3, neutral (0.5 + 0.55 + 0.6) / 3.
    assert means["sad"] == round(100 * 0.45 / (0.45 + 0.55), 3)


def smile_in_neutral() -> SegmentResult:
    """Seven neutral faces, three clear smiles, one sample without a face."""
    neutral = [estimate(neutral=0.8, happy=0.2)] * 7
    smiles = [estimate(happy=0.9, neutral=0.1)] * 3
    estimates = neutral[:3] + smiles + neutral[3:] + [NO_FACE]
    return SegmentResult(
        Segment(1, 0.0, 11.0), [FrameResult(i, float(i), e) for i, e in enumerate(estimates)]
    )


def test_summary_says_a_smile_ran_through_a_mostly_neutral_segment() -> None:
    summary = segment_summary(smile_in_neutral())
    # The mean (neutral 59%, happy 41%) hides the smile; the shares of the 10 faces show it.
    assert summary["dominant"] == "neutral"
    assert summary["usable_share"] == round(10 / 11, 4)
    assert summary["neutral_share"] == 0.7
    assert summary["leading_expression"] == "happy"
    assert summary["leading_share"] == 0.3
    assert expression_words(summary) == "dominant neutral, neutral 70%, leading happy 30%"


def test_summary_of_faces_that_are_all_neutral_names_no_leading_expression() -> None:
    frames = [FrameResult(i, float(i), estimate(neutral=0.6, happy=0.4)) for i in range(3)]
    summary = segment_summary(SegmentResult(Segment(1, 0.0, 3.0), frames))
    assert summary["dominant"] == "neutral"
    assert summary["neutral_share"] == 1.0
    assert summary["leading_expression"] is None
    assert summary["leading_share"] is None
    assert expression_words(summary) == "dominant neutral, neutral 100%, no expression but neutral"


def test_a_tie_between_expressions_goes_to_the_higher_mean_probability() -> None:
    # One sample each for sad and surprise: surprise's mean (0.9 + 0.3) / 3 beats sad's 0.6 / 3,
    # though sad comes first in EMOTIONS.
    estimates = [
        estimate(sad=0.6, neutral=0.4),
        estimate(surprise=0.9, neutral=0.1),
        estimate(neutral=0.7, surprise=0.3),
    ]
    frames = [FrameResult(i, float(i), e) for i, e in enumerate(estimates)]
    summary = segment_summary(SegmentResult(Segment(1, 0.0, 3.0), frames))
    assert summary["neutral_share"] == 0.3333
    assert summary["leading_expression"] == "surprise"
    assert summary["leading_share"] == 0.3333


def test_shares_of_a_segment_without_any_face_are_none() -> None:
    frames = [FrameResult(i, float(i), NO_FACE) for i in range(2)]
    summary = segment_summary(SegmentResult(Segment(1, 0.0, 2.0), frames))
    assert summary["neutral_share"] is None
    assert summary["leading_expression"] is None
    assert summary["leading_share"] is None
    assert expression_words(summary) == "dominant None"


def test_summary_keeps_its_keys_and_the_legacy_document_its_bytes() -> None:
    result = smile_in_neutral()
    summary = segment_summary(result)
    assert list(summary) == [
        "frames",
        "frames_with_face",
        "usable_share",
        "dominant",
        "neutral_share",
        "leading_expression",
        "leading_share",
        "mean",
    ]
    zeros = '"angry": 0.0, "disgust": 0.0, "fear": 0.0, "sad": 0.0, "surprise": 0.0'
    neutral = f'{{"neutral": 80.0, "happy": 20.0, {zeros}}}'
    smile = f'{{"happy": 90.0, "neutral": 10.0, {zeros}}}'
    values = [neutral] * 3 + [smile] * 3 + [neutral] * 4 + ['{"No face detected": 0.0}']
    expected = ", ".join(f'"{frame_key(i, float(i))}": {v}' for i, v in enumerate(values))
    assert json.dumps(legacy_segment(result)) == f"{{{expected}}}"
