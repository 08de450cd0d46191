from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import StatementError

from video_emotions.domain import Segment
from video_emotions.storage.db import Database, SegmentWrite


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'nested' / 've.db'}")
    database.create_tables(interviewz=True)
    yield database
    database.dispose()


SEGMENTS = [
    Segment(0, 5.0, 7.5, speaker=0),
    Segment(0, 1.0, 2.0, speaker=1),
    Segment(0, 0.5, 3.0, speaker=0),
]


def test_interviewz_tables_have_the_contract_columns(db: Database) -> None:
    columns = {
        t: {c["name"] for c in inspect(db.engine).get_columns(t)}
        for t in ("sessions", "interviews", "results")
    }
    assert columns["sessions"] == {"id", "name", "user_id"}
    assert {
        "id",
        "session_id",
        "video_ok",
        "first_name",
        "last_name",
        "email",
        "raw_file_ok",
        "diarization_ok",
        "audio_ok",
        "text_ok",
        "speaker_validation_ok",
        "inference_ok",
    } <= columns["interviews"]
    assert columns["results"] == {
        "id",
        "interview_id",
        "start",
        "end",
        "speaker",
        "part",
        "text",
        "user_id",
        "audio_emotions",
        "text_emotions",
        "video_emotions",
    }


def test_candidate_segments_are_speaker_0_in_time_order_in_seconds(db: Database) -> None:
    ids = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    assert len(ids) == 3
    segments = db.candidate_segments(9)
    assert [(s.start, s.end) for s in segments] == [(0.5, 3.0), (5.0, 7.5)]
    assert [s.id for s in segments] == [ids[2], ids[0]]
    rows = db.results_rows(9)
    assert {row["start"] for row in rows} == {500.0, 1000.0, 5000.0}
    assert all(row["video_emotions"] is None for row in rows)
    assert db.interview(9)["video_ok"] is False
    assert db.session_exists(3) and not db.session_exists(4)


def test_ingesting_an_existing_interview_fails_and_adds_nothing(db: Database) -> None:
    db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    with pytest.raises(Exception, match=r"(?i)unique|constraint"):
        db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    assert len(db.results_rows(9)) == 3


def _write(result_id: int, emotions: object) -> SegmentWrite:
    return SegmentWrite(result_id, 0.0, 1000.0, emotions, {"frames_with_face": 1}, [])  # type: ignore[arg-type]


def test_write_results_is_all_or_nothing(db: Database) -> None:
    first, _, second = db.ingest(session_id=3, interview_id=9, segments=SEGMENTS)
    job = db.create_job(session_id=3, interview_id=9, model_type="default")
    good = {"frame_00000_0.000_seconds": {"happy": 100.0}}
    with pytest.raises(StatementError, match="not JSON serializable"):
        db.write_results(
            job_id=job,
            interview_id=9,
            engine="default",
            model_sha256="x",
            segments=[_write(first, good), _write(second, {"not json": {1, 2}})],
        )
    assert all(row["video_emotions"] is None for row in db.results_rows(9))
    assert db.interview(9)["video_ok"] is False
    assert db.segment_results(9) == []
    assert db.job(job).status == "queued"

    db.write_results(
        job_id=job,
        interview_id=9,
        engine="default",
        model_sha256="x",
        segments=[_write(first, good), _write(second, good)],
    )
    written = {row["id"]: row["video_emotions"] for row in db.results_rows(9)}
    assert written[first] == good and written[second] == good
    assert db.interview(9)["video_ok"] is True
    assert db.job(job).status == "done"
    assert [row["result_id"] for row in db.segment_results(9)] == [first, second]
