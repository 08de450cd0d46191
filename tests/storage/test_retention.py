"""Retention and erasure (``retention.py``), on the embedded default (SQLite and a folder) and on
PostgreSQL with the Interviewz DDL and an S3 server (moto's); ``DELETE /v1/interviews/{id}`` and the
service's own sweep through the live service.

The tests look for themselves: every ``ve_*`` table is queried for the interview and its jobs, and the
bucket is listed with the storage's own means (the folder walked, S3's ListObjectsV2 through boto3).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import func, insert, or_, select, update

from tests.service import RunningService, run_service
from tests.storage.conftest import create_bucket, production_env, upgraded_database
from video_emotions.config import Settings
from video_emotions.context import ServiceContext
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.errors import InputError, NotFoundError
from video_emotions.retention import RUN_LOG, erase_interview, sweep
from video_emotions.storage import schema
from video_emotions.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore, log_key, video_key
from video_emotions.storage.db import ChunkPlan, Database, SegmentWrite, utcnow

TIMEOUT = 120
DAYS = 30
#: The segments every seeded interview has (seconds): two of the candidate, one of the interviewer.
SEGMENTS = [Segment(0, 0.0, 2.0, speaker=0), Segment(0, 2.0, 3.0, speaker=1), Segment(0, 3.0, 4.6, speaker=0)]
#: The append-only audit log keeps its entries (what was done, by whom): not interview data of ours.
KEPT_TABLES = {"ve_audit"}


# Places: the embedded default, and production (PostgreSQL + S3) -------------------------------------


@pytest.fixture(params=["embedded", "production"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ServiceContext]]:
    """Factory: a context on this test's database and bucket, with these settings besides."""
    made: list[ServiceContext] = []
    base: dict[str, Any] = {"data_dir": tmp_path}
    if request.param == "production":
        url = request.getfixturevalue("pg_database")()
        database = Database(url)
        database.upgrade()
        database.dispose()
        endpoint = request.getfixturevalue("s3_server")
        base |= {
            "database_url": url,
            "storage_url": f"s3://{create_bucket(endpoint)}",
            "s3_endpoint_url": endpoint,
            "s3_region": "us-east-1",
        }

    def make(**settings: Any) -> ServiceContext:
        made.append(ServiceContext.from_settings(Settings(**(base | settings))))
        return made[-1]

    yield make
    for ctx in made:
        ctx.db.dispose()


def stored_keys(blobs: BlobStore, prefix: str = "") -> list[str]:
    """The bucket's keys under ``prefix``, as the storage itself lists them (not through ``list``)."""
    if isinstance(blobs, LocalBlobStore):
        found = []
        for folder, _dirs, files in os.walk(blobs.folder):
            found += [(Path(folder) / name).relative_to(blobs.folder).as_posix() for name in files]
        return sorted(key for key in found if key.startswith(prefix))
    assert isinstance(blobs, S3BlobStore)
    client = boto3.client("s3", endpoint_url=blobs.client.meta.endpoint_url)
    listed = client.list_objects_v2(Bucket=blobs.bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def rows_of(db: Database, interview_id: int, job_ids: list[str]) -> dict[str, int]:
    """Rows of ours that name the interview or one of its jobs, per ``ve_*`` table (every one of them
    but the audit log: a table that named neither would fail here, so a new one is not missed)."""
    counts = {}
    with db.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if not table.name.startswith("ve_") or table.name in KEPT_TABLES:
                continue
            where = []
            if "interview_id" in table.c:
                where.append(table.c.interview_id == interview_id)
            if "job_id" in table.c:
                where.append(table.c.job_id.in_(job_ids))
            if table is schema.jobs:
                where.append(table.c.id.in_(job_ids))
            assert where, f"{table.name} names neither an interview nor a job: how is it erased?"
            query = select(func.count()).select_from(table).where(or_(*where))
            counts[table.name] = conn.execute(query).scalar_one()
    return counts


def application_rows(db: Database, interview_id: int) -> tuple[bool | None, list[Any]]:
    """The interview's ``video_ok`` and its ``results`` rows' ``video_emotions``."""
    interview = db.interview(interview_id)
    assert interview is not None
    return interview["video_ok"], [row["video_emotions"] for row in db.results_rows(interview_id)]


# Seeding an analysed interview as a run leaves it -------------------------------------------------


@dataclass
class Seeded:
    interview_id: int
    job_id: str
    result_ids: list[int]
    log: str
    video: str


def frame(time_s: float) -> dict[str, Any]:
    emotions = dict.fromkeys(EMOTIONS, 0.0) | {"happy": 100.0}
    return {
        "index": 0,
        "time": time_s,
        "faces": 1,
        "box": [10.0, 20.0, 30.0, 40.0],
        "score": 0.9,
        "emotions": emotions,
    }


def seed(
    ctx: ServiceContext, session_id: int, interview_id: int, *, run_start_days_ago: float = 0.0
) -> Seeded:
    """An interview as an analysis leaves it: video and run log in storage, its results written, a
    job with its chunk (results and log lines kept), attempt and webhook delivery, and its facts."""
    ids = ctx.db.ingest(session_id=session_id, interview_id=interview_id, segments=SEGMENTS)
    candidates = [ids[0], ids[2]]
    video = video_key(session_id, interview_id, ctx.settings.video_filename)
    ctx.blobs.put(video, b"not really a video")
    job_id, created = ctx.db.create_job(
        session_id=session_id,
        interview_id=interview_id,
        model_type="default",
        active_key=f"{interview_id}/default/1",
        chunks=[ChunkPlan(candidates, 6)],
        interval=1.0,
        callback_url="https://hooks.example.com/interviewz",
    )
    assert created
    attempt = ctx.db.start_attempt(job_id, 0, "test@host:1", max_attempts=3)
    writes = [
        SegmentWrite(
            result_id=result_id,
            start_ms=segment.start * 1000,
            end_ms=segment.end * 1000,
            video_emotions={"frame_00000_0.000_seconds": frame(segment.start)["emotions"]},
            summary={"frames": 1, "frames_with_face": 1, "usable_share": 1.0, "dominant": "happy"},
            frames=[frame(segment.start)],
        )
        for result_id, segment in zip(candidates, (SEGMENTS[0], SEGMENTS[2]), strict=True)
    ]
    ctx.db.store_chunk(job_id, 0, result=[asdict(w) for w in writes], log="a run's lines\n", stages={})
    log = log_key(session_id, interview_id, utcnow() - timedelta(days=run_start_days_ago))
    ctx.blobs.put(log, b"the run log")
    assert ctx.db.write_results(
        job_id=job_id,
        interview_id=interview_id,
        engine="default",
        model_file=None,
        model_sha256=None,
        segments=writes,
        attempt_id=attempt.id,
        log_key=log,
    )
    ctx.db.record_delivery(job_id, webhook_id=f"msg_{job_id}", attempt=1, status_code=204, error=None)
    with ctx.db.engine.begin() as conn:
        conn.execute(insert(schema.interview_facts).values(interview_id=interview_id, updated_at=utcnow()))
    return Seeded(interview_id, job_id, candidates, log, video)


def backdate(db: Database, interview_id: int, days: float) -> None:
    """Make the interview's results and jobs ``days`` old."""
    then = utcnow() - timedelta(days=days)
    with db.engine.begin() as conn:
        conn.execute(
            update(schema.segment_results)
            .where(schema.segment_results.c.interview_id == interview_id)
            .values(written_at=then)
        )
        conn.execute(
            update(schema.jobs)
            .where(schema.jobs.c.interview_id == interview_id)
            .values(created_at=then, started_at=then, finished_at=then)
        )


# The listing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_list_gives_the_objects_under_a_prefix(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "local":
        store: BlobStore = LocalBlobStore(tmp_path, "interviews")
    else:
        endpoint = request.getfixturevalue("s3_server")
        store = S3BlobStore(create_bucket(endpoint), endpoint_url=endpoint)
    keys = ["1/1/logs/videoLog_2026_01_02_03.04.05", "1/1/raw/raw.mp4", "1/10/raw/raw.mp4", "2/3/raw/raw.mp4"]
    for key in keys:
        store.put(key, key.encode())
    before = utcnow() - timedelta(minutes=5)
    assert [info.key for info in store.list("")] == keys
    assert [info.key for info in store.list("1/1/")] == keys[:2]
    assert [info.key for info in store.list("1/1")] == keys[:3]  # a prefix, not a folder
    assert [info.key for info in store.list("1/1/logs/videoLog_")] == keys[:1]
    assert store.list("9/") == []
    info = store.list("2/")[0]
    assert info.size == len(keys[3]) and before < info.modified <= utcnow() + timedelta(minutes=5)
    with pytest.raises(InputError):
        store.list("../")
    if isinstance(store, LocalBlobStore):
        (store.folder / "2" / "3" / "raw" / "raw.mp4.part").write_bytes(b"being written")
        assert [info.key for info in store.list("2/")] == ["2/3/raw/raw.mp4"]
        (store.folder / "2" / "3" / "raw" / "raw.mp4.part").unlink()
        store.delete("2/3/raw/raw.mp4")
        assert not (store.folder / "2").exists(), "a delete leaves no empty folder behind"
        store.put("2/3/raw/raw.mp4", b"again")
        assert store.get("2/3/raw/raw.mp4") == b"again"


# Erasure --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delete_videos", [False, True], ids=["app-owns-videos", "we-own-videos"])
def test_erasure_leaves_nothing_of_the_interview(
    place: Callable[..., ServiceContext], delete_videos: bool
) -> None:
    ctx = place(delete_videos=delete_videos)
    erased, other = seed(ctx, 1, 1), seed(ctx, 1, 2)
    assert rows_of(ctx.db, 1, [erased.job_id]) == {
        "ve_jobs": 1,
        "ve_job_chunks": 1,
        "ve_job_attempts": 1,
        "ve_webhook_deliveries": 1,
        "ve_segment_results": 2,
        "ve_interview_facts": 1,
    }
    assert application_rows(ctx.db, 1)[0] is True

    report = erase_interview(ctx, 1)

    assert all(count == 0 for count in rows_of(ctx.db, 1, [erased.job_id]).values())
    video_ok, emotions = application_rows(ctx.db, 1)
    assert video_ok is False and emotions == [None, None, None], "the application's rows stay, cleared"
    assert stored_keys(ctx.blobs, "1/1/") == ([] if delete_videos else [erased.video])
    answer = report.as_dict()
    assert answer["interview_id"] == 1 and answer["session_id"] == 1 and answer["complete"] is True
    assert answer["rows"] == {
        "ve_webhook_deliveries": 1,
        "ve_job_attempts": 1,
        "ve_job_chunks": 1,
        "ve_jobs": 1,
        "ve_segment_results": 2,
        "ve_interview_facts": 1,
    }
    assert answer["cleared"] == {"results.video_emotions": 2, "interviews.video_ok": 1}
    assert answer["objects"] == [erased.log, *([erased.video] if delete_videos else [])]
    assert [item["key"] for item in answer["left"]] == ([] if delete_videos else [erased.video])
    assert answer["cancelled_jobs"] == [] and answer["errors"] == []

    # The other interview is as it was.
    assert rows_of(ctx.db, 2, [other.job_id])["ve_segment_results"] == 2
    assert stored_keys(ctx.blobs, "1/2/") == sorted([other.log, other.video])
    assert application_rows(ctx.db, 2)[0] is True

    again = erase_interview(ctx, 1).as_dict()
    assert not any(again["rows"].values()) and not any(again["cleared"].values()) and again["objects"] == []
    with pytest.raises(NotFoundError):
        erase_interview(ctx, 99)


def test_erasure_cancels_a_job_that_is_queued(place: Callable[..., ServiceContext]) -> None:
    ctx = place()
    seeded = seed(ctx, 1, 1)
    queued, _ = ctx.db.create_job(
        session_id=1,
        interview_id=1,
        model_type="default",
        active_key="1/default/2",
        chunks=[ChunkPlan(seeded.result_ids, 6)],
        interval=2.0,
    )
    report = erase_interview(ctx, 1)
    assert report.cancelled_jobs == [queued]
    assert all(count == 0 for count in rows_of(ctx.db, 1, [seeded.job_id, queued]).values())
    assert report.rows["ve_jobs"] == 2 and report.rows["ve_job_chunks"] == 2


class FailingDeletes:
    """A store whose first ``failures`` deletes fail as an unreachable one's do."""

    def __init__(self, store: BlobStore, failures: int) -> None:
        self.store, self.failures = store, failures

    def delete(self, key: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("storage does not answer")
        self.store.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_storage_failure_is_reported_and_a_second_erasure_finishes(
    place: Callable[..., ServiceContext],
) -> None:
    ctx = place()
    seeded = seed(ctx, 1, 1)
    store = ctx.blobs
    ctx.blobs = FailingDeletes(store, failures=1)  # type: ignore[assignment]

    first = erase_interview(ctx, 1)
    assert not first.complete and first.errors == [{"key": seeded.log, "error": "storage does not answer"}]
    assert first.rows["ve_jobs"] == 1, "the rows went all the same"
    assert seeded.log in stored_keys(store)

    second = erase_interview(ctx, 1)
    assert second.complete and second.objects == [seeded.log]
    assert stored_keys(store, "1/1/") == [seeded.video]


# The retention sweep ----------------------------------------------------------------------------------


def frames_of(db: Database, interview_id: int) -> list[list[Any]]:
    return [row["frames"] for row in db.segment_results(interview_id)]


def chunk_results(db: Database, job_id: str) -> list[Any]:
    return [(chunk["result"], chunk["log"]) for chunk in db.chunks(job_id)]


def test_the_sweep_removes_what_is_older_than_the_limit_and_keeps_what_is_newer(
    place: Callable[..., ServiceContext],
) -> None:
    ctx = place(retention_days=DAYS, delete_videos=True)
    old = seed(ctx, 1, 1, run_start_days_ago=DAYS + 10)
    new = seed(ctx, 1, 2, run_start_days_ago=DAYS - 1)
    backdate(ctx.db, 1, DAYS + 10)
    backdate(ctx.db, 2, DAYS - 1)
    if isinstance(ctx.blobs, LocalBlobStore):  # S3 keeps its own upload times: the second sweep ages them
        then = time.time() - (DAYS + 10) * 86400
        os.utime(ctx.blobs.folder / old.video, (then, then))
    now = utcnow()
    summaries = [row["summary"] for row in ctx.db.segment_results(1)]

    dry = sweep(ctx, now=now, dry_run=True)
    assert (dry.frames_cleared, dry.chunk_results_cleared, dry.run_logs) == (2, 1, [old.log])
    assert frames_of(ctx.db, 1) == [[frame(0.0)], [frame(3.0)]] and old.log in stored_keys(ctx.blobs)

    report = sweep(ctx, now=now)

    assert report.frames_cleared == 2 and report.chunk_results_cleared == 1 and report.errors == []
    assert report.run_logs == [old.log]
    local = isinstance(ctx.blobs, LocalBlobStore)
    assert report.videos == ([old.video] if local else [])
    # Older: per-frame detail, chunk results and lines, the run log (and its record's key) gone.
    assert frames_of(ctx.db, 1) == [[], []]
    assert [row["summary"] for row in ctx.db.segment_results(1)] == summaries, "summaries stay"
    assert chunk_results(ctx.db, old.job_id) == [(None, None)]
    assert stored_keys(ctx.blobs, "1/1/") == ([] if local else [old.video])
    job = ctx.db.job(old.job_id)
    assert job is not None and job.log_key is None
    # The application's column stays: its rows live as long as the application keeps them.
    assert application_rows(ctx.db, 1) == (
        True,
        [
            {"frame_00000_0.000_seconds": frame(0.0)["emotions"]},
            None,
            {"frame_00000_0.000_seconds": frame(3.0)["emotions"]},
        ],
    )
    # Newer: all kept.
    assert frames_of(ctx.db, 2) == [[frame(0.0)], [frame(3.0)]]
    assert chunk_results(ctx.db, new.job_id)[0][0] is not None
    assert stored_keys(ctx.blobs, "1/2/") == sorted([new.log, new.video])
    assert sweep(ctx, now=now).frames_cleared == 0, "a second sweep finds nothing more"

    # A month on, the newer interview is older too (and S3's videos); but a video stays while a job of
    # its interview is queued.
    later = now + timedelta(days=DAYS + 1)
    ctx.db.create_job(
        session_id=1,
        interview_id=2,
        model_type="default",
        active_key="2/default/1",
        chunks=[ChunkPlan(new.result_ids, 6)],
        interval=1.0,
    )
    report = sweep(ctx, now=later)
    assert (report.frames_cleared, report.run_logs) == (2, [new.log])
    assert report.videos == ([] if local else [old.video])
    assert stored_keys(ctx.blobs, "1/") == [new.video]


def test_the_sweep_leaves_the_applications_videos_and_needs_a_period(tmp_path: Path) -> None:
    ctx = ServiceContext.from_settings(Settings(data_dir=tmp_path, retention_days=DAYS))
    seeded = seed(ctx, 1, 1, run_start_days_ago=DAYS + 1)
    backdate(ctx.db, 1, DAYS + 1)
    then = time.time() - (DAYS + 1) * 86400
    os.utime(ctx.blobs.folder / seeded.video, (then, then))  # type: ignore[attr-defined]
    report = sweep(ctx)
    assert report.run_logs == [seeded.log] and report.videos == []
    assert stored_keys(ctx.blobs) == [seeded.video]
    assert RUN_LOG.fullmatch(seeded.log) and not RUN_LOG.fullmatch(seeded.log + ".part")
    with pytest.raises(InputError, match="VE_RETENTION_DAYS"):
        sweep(ServiceContext.from_settings(Settings(data_dir=tmp_path)))
    ctx.db.dispose()


# The live service -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "production"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, woman2_mp4: Path
) -> Iterator[RunningService]:
    """The service (embedded, or on PostgreSQL and S3) sweeping every 2 s (VE_RETENTION_DAYS=30), with
    woman2.mp4 as interviews 1 and 2 of session 1."""
    data = tmp_path_factory.mktemp("retention")
    env = {"VE_RETENTION_DAYS": str(DAYS), "VE_RETENTION_SWEEP_HOURS": str(2 / 3600)}
    if request.param == "production":
        endpoint = request.getfixturevalue("s3_server")
        url = upgraded_database(request.getfixturevalue("pg_database"), data)
        env |= production_env(url, endpoint, create_bucket(endpoint))
    with run_service(data, **env) as running:
        running.ingest_walkthrough(woman2_mp4, 1, 1, 2)
        yield running


def analyse(service: RunningService, interview_id: int) -> str:
    response = httpx.post(
        f"{service.url}/analyse_video",
        params={"session_id": 1, "interview_id": interview_id, "model_type": "default"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.headers["X-Job-Id"]


@pytest.mark.slow
def test_delete_erases_the_interview_through_the_service(service: RunningService) -> None:
    job_id = analyse(service, 1)
    ctx = service.ctx
    assert stored_keys(ctx.blobs, "1/1/logs/"), "the run left its log"

    response = httpx.delete(f"{service.url}/v1/interviews/1", timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["complete"] is True and answer["interview_id"] == 1
    assert answer["rows"]["ve_jobs"] == 1 and answer["rows"]["ve_segment_results"] == 2
    assert answer["cleared"] == {"results.video_emotions": 2, "interviews.video_ok": 1}
    assert [key for key in answer["objects"] if RUN_LOG.fullmatch(key)] == answer["objects"] != []
    assert answer["left"][0]["key"] == "1/1/raw/raw.mp4"
    assert all(count == 0 for count in rows_of(ctx.db, 1, [job_id]).values())
    assert application_rows(ctx.db, 1) == (False, [None, None, None])
    assert stored_keys(ctx.blobs, "1/1/") == ["1/1/raw/raw.mp4"], "only the application's video is left"
    record = httpx.get(f"{service.url}/v1/interviews/1", timeout=TIMEOUT).json()
    assert record["state"] == "not_analysed" and record["video_ok"] is False
    emotions = httpx.get(f"{service.url}/v1/interviews/1/emotions", timeout=TIMEOUT).json()
    assert emotions["segments"] == []
    assert httpx.get(f"{service.url}/v1/analyses/{job_id}", timeout=TIMEOUT).status_code == 404

    again = httpx.delete(f"{service.url}/v1/interviews/1", timeout=TIMEOUT)
    assert again.status_code == 200 and again.json()["objects"] == []
    assert httpx.delete(f"{service.url}/v1/interviews/99", timeout=TIMEOUT).status_code == 404
    assert httpx.delete(f"{service.url}/v1/interviews/0", timeout=TIMEOUT).status_code == 422
    # Analysed again, it is as if it had never been erased.
    analyse(service, 1)
    assert application_rows(ctx.db, 1)[0] is True


@pytest.mark.slow
def test_the_service_sweeps_on_its_schedule(service: RunningService) -> None:
    job_id = analyse(service, 2)
    ctx = service.ctx
    assert all(frames for frames in frames_of(ctx.db, 2))
    backdate(ctx.db, 2, DAYS + 1)
    deadline = time.monotonic() + 30
    while any(frames_of(ctx.db, 2)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert frames_of(ctx.db, 2) == [[], []], service.log.read_text()[-3000:]
    assert chunk_results(ctx.db, job_id) == [(None, None)]
    assert "retention sweep (30 days" in service.log.read_text()
    document = httpx.get(f"{service.url}/v1/interviews/2/emotions?frames=true", timeout=TIMEOUT).json()
    assert [segment["frames"] for segment in document["segments"]] == [[], []]
    assert all(segment["summary"]["frames"] == 3 for segment in document["segments"])

    dry = service.cli("retention", "sweep", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    erased = service.cli("erase", "2", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert '"ve_jobs": 1' in erased.stdout
    assert stored_keys(ctx.blobs, "1/2/") == ["1/2/raw/raw.mp4"]


@pytest.mark.slow
def test_delete_stops_a_running_analysis_and_nothing_comes_after_it(service: RunningService) -> None:
    """Every frame of interview 1 (about 140 samples): the erasure meets the job running, cancels it,
    waits for its run to stop, and then nothing of it is written any more."""
    response = httpx.post(
        f"{service.url}/v1/analyses",
        json={"session_id": 1, "interview_id": 1, "model_type": "default", "interval": 0.001, "force": True},
        timeout=TIMEOUT,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    state = "queued"
    while state == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
        state = httpx.get(f"{service.url}/v1/analyses/{job_id}", timeout=TIMEOUT).json()["state"]
    assert state == "running"

    answer = httpx.delete(f"{service.url}/v1/interviews/1", timeout=TIMEOUT).json()

    assert answer["cancelled_jobs"] == [job_id] and answer["complete"] is True
    time.sleep(2)  # a run that had not stopped would have written its log, or its progress, by now
    ctx = service.ctx
    assert all(count == 0 for count in rows_of(ctx.db, 1, [job_id]).values())
    assert stored_keys(ctx.blobs, "1/1/") == ["1/1/raw/raw.mp4"]
    assert application_rows(ctx.db, 1) == (False, [None, None, None])
    assert "Traceback" not in service.log.read_text()
