"""Ingest: every bad ingest says what to fix, and leaves nothing behind (no rows, no video)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.media import face_video
from video_emotions.config import Settings
from video_emotions.context import ServiceContext
from video_emotions.domain import Segment
from video_emotions.errors import ConflictError, InputError
from video_emotions.ingest import ingest_interview
from video_emotions.storage.blobs import video_key


@pytest.fixture
def ctx(tmp_path: Path) -> ServiceContext:
    return ServiceContext.from_settings(Settings(data_dir=tmp_path / "data"))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("video") / "face.mp4", 2.0)


def stored(ctx: ServiceContext, interview: int) -> bool:
    return ctx.blobs.exists(video_key(1, interview, ctx.settings.video_filename))


def test_ids_in_use_are_refused_before_anything_is_stored(ctx: ServiceContext, video: Path) -> None:
    first = ingest_interview(ctx, video, session_id=1, interview_id=1, segments=[Segment(7, 0.0, 1.0)])
    assert first.result_ids == [7] and stored(ctx, 1)
    with pytest.raises(ConflictError, match=r"segment ids already in use in results: 7 \(interview 1\)"):
        ingest_interview(ctx, video, session_id=1, interview_id=2, segments=[Segment(7, 0.0, 1.0)])
    assert ctx.db.interview(2) is None and not stored(ctx, 2)
    with pytest.raises(ConflictError, match="interview 1 already exists"):
        ingest_interview(ctx, video, session_id=1, interview_id=1)
    assert [row["id"] for row in ctx.db.results_rows(1)] == [7]


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([Segment(3, 0.0, 1.0), Segment(3, 1.0, 2.0)], r"segment ids must be unique; repeated: \[3\]"),
        ([Segment(0, 1.0, 1.0)], "needs 0 <= start < end, got 1000 to 1000 ms"),
        ([Segment(2**63, 0.0, 1.0)], "ids must be positive integers"),
        ([], "no segments"),
    ],
)
def test_bad_segments_are_refused(
    ctx: ServiceContext, video: Path, segments: list[Segment], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ingest_interview(ctx, video, session_id=1, interview_id=3, segments=segments)
    assert ctx.db.interview(3) is None and not stored(ctx, 3)


def test_a_file_that_is_no_video_is_refused(ctx: ServiceContext, tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(random.Random(0).randbytes(20_000))
    with pytest.raises(InputError, match=r"noise\.mp4 does not decode as video") as refused:
        ingest_interview(ctx, noise, session_id=1, interview_id=4)
    assert str(tmp_path) not in str(refused.value)  # no server path in the message
    assert ctx.db.interview(4) is None and not stored(ctx, 4)


def test_the_video_is_removed_when_the_database_refuses_the_rows(ctx: ServiceContext, video: Path) -> None:
    with ctx.db.engine.begin() as conn:  # the database refuses new results rows
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON results BEGIN SELECT RAISE(ABORT, 'refused'); END")
        )
    with pytest.raises(ConflictError, match="nothing was written"):
        ingest_interview(ctx, video, session_id=1, interview_id=5)
    assert ctx.db.interview(5) is None and not stored(ctx, 5)


def test_the_cli_prints_the_reason_not_a_traceback(
    ctx: ServiceContext, video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from video_emotions.cli import app
    from video_emotions.config import get_settings

    ingest_interview(ctx, video, session_id=1, interview_id=1, segments=[Segment(7, 0.0, 1.0)])
    segments = tmp_path / "segments.json"
    segments.write_text('[{"id": 7, "start": 0, "end": 1000}]')
    monkeypatch.setenv("VE_DATA_DIR", str(ctx.settings.data_dir))
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(
            app, ["ingest", str(video), "--session", "1", "--interview", "2", "--segments", str(segments)]
        )
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 2
    assert "segment ids already in use in results: 7 (interview 1)" in " ".join(done.output.split())
    assert "Traceback" not in done.output and "IntegrityError" not in done.output
    assert not stored(ctx, 2)
