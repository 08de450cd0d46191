"""The analysis with several decoders at once gives what one decoder gives, and reports progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import face_video
from video_emotions.analysis import analyse_video
from video_emotions.config import get_settings
from video_emotions.domain import Segment
from video_emotions.vision.registry import ModelRegistry

SEGMENTS = [
    Segment(7, 0.0, 2.3),
    Segment(3, 2.0, 4.1),  # overlaps the one before
    Segment(9, 5.2, 5.3),
    Segment(1, 6.0, 9.5),
    Segment(4, 9.8, 12.0),  # ends beyond the video: its last frame closes it
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("analysis") / "face.mp4", 11.0, blank_from=5.0)


def test_several_decoders_give_what_one_gives(video: Path) -> None:
    engine = ModelRegistry(get_settings()).load("default")
    runs = {}
    for decoders in (1, 2, 3):
        reports: list[tuple[int, int, int]] = []
        results = analyse_video(
            video,
            SEGMENTS,
            engine,
            interval=1.0,
            decoders=decoders,
            progress=lambda *report, into=reports: into.append(report),
        )
        runs[decoders] = [
            (r.segment.id, [(f.index, f.time, f.estimate.face, f.estimate.probabilities) for f in r.frames])
            for r in results
        ]
        samples = sum(len(r.frames) for r in results)
        assert reports[-1] == (samples, samples, len(SEGMENTS))
        assert [done for done, *_ in reports] == sorted(done for done, *_ in reports)
        assert all(0 <= finished <= len(SEGMENTS) for *_, finished in reports)
    assert runs[2] == runs[1] and runs[3] == runs[1]
    by_id = dict(runs[1])
    assert [segment_id for segment_id, _ in runs[1]] == [s.id for s in SEGMENTS]  # the order given
    assert [t for _, t, *_ in by_id[4]] == pytest.approx([9.8, 10.8, 10.9])
    assert all(face is not None for _, _, face, _ in by_id[7])
    assert all(face is None for _, _, face, _ in by_id[1])  # no face from 5 s on
