"""The PNG timeline: ``video-emotions analyse VIDEO --plot FILE.png`` and :func:`plot_timeline`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.test_cli import run
from video_emotions.domain import EMOTIONS
from video_emotions.reports.colors import EMOTION_COLORS, NO_FACE_COLOR, colors_script
from video_emotions.reports.plot import plot_timeline, timeline_segments

#: Two candidate segments of woman2.mp4 with a gap between them, and one of the interviewer.
SEGMENTS = [
    {"start": 0, "end": 4000, "speaker": 0},
    {"start": 4000, "end": 6000, "speaker": 1},
    {"start": 6000, "end": 9000, "speaker": 0},
]


def rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])


def pixels_near(image: np.ndarray, color: str, tolerance: int = 6) -> int:
    """How many pixels of an (H, W, 3) image lie within ``tolerance`` of ``color`` in every channel."""
    return int((np.abs(image.astype(int) - rgb(color)).max(axis=2) <= tolerance).sum())


def test_the_seven_colours_are_distinct_and_in_emotions_order() -> None:
    assert tuple(EMOTION_COLORS) == EMOTIONS
    assert len({c.lower() for c in EMOTION_COLORS.values()}) == 7
    assert NO_FACE_COLOR.lower() not in {c.lower() for c in EMOTION_COLORS.values()}
    script = colors_script()
    assert script.startswith("window.VE_COLORS = {") and "</" not in script
    assert (
        json.loads(script.splitlines()[0].removeprefix("window.VE_COLORS = ").rstrip(";")) == EMOTION_COLORS
    )


def test_analyse_plot_writes_the_timeline_png(woman2_mp4: Path, tmp_path: Path) -> None:
    (tmp_path / "segments.json").write_text(json.dumps(SEGMENTS))
    done = run(
        tmp_path,
        "analyse",
        str(woman2_mp4),
        "--segments",
        "segments.json",
        "--plot",
        "timeline.png",
        "--out",
        "r.json",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote timeline.png" in done.stderr
    # The JSON is written as before, beside the plot.
    document = json.loads((tmp_path / "r.json").read_text())
    assert [s["start_ms"] for s in document["segments"]] == [0.0, 6000.0]
    assert all("summary" in s and "video_emotions" in s for s in document["segments"])

    with Image.open(tmp_path / "timeline.png") as png:
        assert png.format == "PNG" and png.size == (1000, 450)
        image = np.asarray(png.convert("RGB"))
    assert (image.min(axis=2) < 250).mean() > 0.3  # far from blank: the areas fill most of the plot
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    for label, color in EMOTION_COLORS.items():
        assert pixels_near(image, color) >= 30, label  # each expression's colour: its area or legend
    # The time axis spans the segments and the gap between them (white there).
    gap = image[100:350, 470:560]
    assert (gap.min(axis=2) > 240).mean() > 0.9


def test_plot_marks_samples_without_a_face(tmp_path: Path) -> None:
    happy = {label: (100.0 if label == "happy" else 0.0) for label in EMOTIONS}
    frames = [
        {"index": i, "time": float(i), "faces": int(i != 2), "box": None, "score": None, "emotions": happy}
        for i in range(5)
    ]
    frames[2]["emotions"] = None
    document = {"segments": [{"result_id": 7, "start_ms": 0.0, "end_ms": 4000.0, "frames": frames}]}
    (segment,) = timeline_segments(document)
    assert segment.id == 7 and [e is None for _, e in segment.samples] == [False, False, True, False, False]

    with_marker = plot_timeline(document, tmp_path / "a.png")
    frames[2]["emotions"] = happy
    without = plot_timeline(document, tmp_path / "b.png")
    black = [
        pixels_near(np.asarray(Image.open(p).convert("RGB")), NO_FACE_COLOR, 40)
        for p in (with_marker, without)
    ]
    assert black[0] > black[1] + 20


def test_legacy_document_and_frames_give_the_same_samples(tmp_path: Path) -> None:
    legacy = {
        "frame_00000_0.000_seconds": {"happy": 60.0, "neutral": 40.0},
        "frame_00001_1.001_seconds": {"No face detected": 0.0},
    }
    (segment,) = timeline_segments(
        {"segments": [{"id": 1, "start_ms": 0, "end_ms": 1500, "video_emotions": legacy}]}
    )
    assert segment.samples == [(0.0, {"happy": 60.0, "neutral": 40.0}), (1.001, None)]
    assert segment.start == 0.0 and segment.end == 1.5


def test_plot_into_a_missing_folder_fails_clearly(woman2_mp4: Path, tmp_path: Path) -> None:
    (tmp_path / "segments.json").write_text(json.dumps(SEGMENTS[:1]))
    done = run(tmp_path, "analyse", str(woman2_mp4), "--segments", "segments.json", "--plot", "no/such/x.png")
    assert done.returncode == 2
    assert "--plot no/such/x.png" in done.stderr
