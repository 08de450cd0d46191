from video_emotions.domain import (
    EMOTIONS,
    NO_FACE_KEY,
    Face,
    FrameEstimate,
    FrameResult,
    Segment,
    SegmentResult,
)
from video_emotions.results import frame_key, legacy_segment, percentages, segment_summary, segments_csv

FACE = Face(10, 20, 30, 40, 0.9)


def estimate(**probabilities: float) -> FrameEstimate:
    full = {label: 0.0 for label in EMOTIONS} | probabilities
    return FrameEstimate(face=FACE, faces_found=1, probabilities=full)


NO_FACE = FrameEstimate(face=None, faces_found=0, probabilities=None)


def test_frame_key_has_five_digit_index_and_millisecond_time() -> None:
    assert frame_key(0, 12.0) == "frame_00000_12.000_seconds"
    assert frame_key(123, 3.14159) == "frame_00123_3.142_seconds"


def test_percentages_descend_and_never_exceed_100() -> None:
    # Rounded to 3 decimals these add up to 100.002: scaled down to 100.
    probabilities = {label: 0.0 for label in EMOTIONS} | {"happy": 0.500006, "sad": 0.300006, "fear": 0.2}
    values = percentages(probabilities)
    assert list(values)[:3] == ["happy", "sad", "fear"]
    assert set(values) == set(EMOTIONS)
    assert abs(sum(values.values()) - 100.0) < 1e-9
    assert values["happy"] < 50.0


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
