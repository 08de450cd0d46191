"""POST /analyse_video as in production: the service (a subprocess) on PostgreSQL with the
Interviewz schema, the videos and run logs in an S3 server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import boto3
import httpx
import numpy as np
import psycopg
import pytest
from boto3.s3.transfer import TransferConfig

from tests.media import face_video
from tests.service import RunningService, run_service, write_walkthrough_segments
from tests.storage.conftest import create_bucket, libpq_dsn, production_env, upgraded_database
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.storage.blobs import video_key

TIMEOUT = 120


@pytest.fixture(scope="module")
def service(
    pg_database: Callable[..., str], s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    data_dir = tmp_path_factory.mktemp("production")
    url = upgraded_database(pg_database, data_dir)
    with run_service(data_dir, **production_env(url, s3_server, create_bucket(s3_server))) as running:
        yield running


def sql(service: RunningService, query: str, *params: object) -> list[tuple[object, ...]]:
    """Rows straight from PostgreSQL, as the Interviewz application would read them."""
    with psycopg.connect(libpq_dsn(service.env["VE_DATABASE_URL"])) as conn:
        return conn.execute(query, params).fetchall()


def s3_objects(service: RunningService, prefix: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=service.env["VE_S3_ENDPOINT_URL"])
    bucket = service.env["VE_STORAGE_URL"].removeprefix("s3://")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def post(service: RunningService, session_id: int, interview_id: int) -> httpx.Response:
    return httpx.post(
        f"{service.url}/analyse_video",
        params={"session_id": session_id, "interview_id": interview_id, "model_type": "default"},
        timeout=TIMEOUT,
    )


def test_analyse_video_writes_results_to_postgres_and_the_log_to_s3(
    service: RunningService, woman2_mp4: Path, tmp_path: Path
) -> None:
    segments = write_walkthrough_segments(tmp_path / "segments.json")
    done = service.cli(
        "ingest", str(woman2_mp4), "--session", "1", "--interview", "1", "--segments", str(segments)
    )
    assert done.returncode == 0, done.stderr
    assert set(s3_objects(service, "1/1/raw/")) == {"1/1/raw/raw.mp4"}

    response = post(service, 1, 1)
    assert response.status_code == 200, response.text

    rows = sql(service, "SELECT speaker, video_emotions FROM results WHERE interview_id = 1 ORDER BY start")
    assert [speaker for speaker, _ in rows] == [0, 1, 0]
    assert rows[1][1] is None
    for _, emotions in (rows[0], rows[2]):
        assert isinstance(emotions, dict) and len(emotions) == 3
        assert next(iter(emotions)).startswith("frame_00000_")
        for values in emotions.values():
            # jsonb keeps its own key order, so the labels are checked as a set.
            assert set(values) == set(EMOTIONS) and abs(sum(values.values()) - 100.0) <= 0.5
    assert sql(service, "SELECT video_ok FROM interviews WHERE id = 1") == [(True,)]
    assert sql(service, "SELECT count(*) FROM ve_segment_results WHERE interview_id = 1") == [(2,)]

    logs = s3_objects(service, "1/1/logs/")
    assert len(logs) == 1 and next(iter(logs)).startswith("1/1/logs/videoLog_")
    assert "wrote 2 segments" in next(iter(logs.values())).decode()


def blocked_writers(admin: psycopg.Connection) -> list[int]:
    """Backends of our database waiting on a lock in the middle of ``UPDATE results``."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE results%%'"
    ).fetchall()
    return [pid for (pid,) in rows]


def test_a_connection_killed_mid_write_leaves_nothing_half_written(
    service: RunningService, tmp_path: Path
) -> None:
    """The test holds the last segment's row, so the service's write transaction stops there with
    the earlier segments updated but not committed; then its backend is terminated.

    Once: the write is retried and everything is written exactly once. On every attempt of the
    write in every run of the job (VE_MAX_ATTEMPTS): the job fails with each run's cause, nothing
    is written; the next job writes all segments.
    """
    ctx = service.ctx
    ids = ctx.db.ingest(
        session_id=2,
        interview_id=20,
        segments=[Segment(0, 0.0, 0.8), Segment(0, 1.0, 1.8), Segment(0, 2.0, 2.8)],
    )
    ctx.blobs.put(video_key(2, 20, "raw.mp4"), face_video(tmp_path / "face.mp4", 3.0))
    dsn = libpq_dsn(service.env["VE_DATABASE_URL"])

    def written() -> list[tuple[object, ...]]:
        return sql(service, "SELECT id FROM results WHERE interview_id = 20 AND video_emotions IS NOT NULL")

    def run_while_killing(times: int | None) -> tuple[httpx.Response, int]:
        """POST while the last row is held; terminate the blocked writer ``times`` times (None:
        every time) and release the row after that."""
        killed: set[int] = set()
        with (
            psycopg.connect(dsn) as holder,
            psycopg.connect(dsn, autocommit=True) as admin,
            ThreadPoolExecutor(1) as pool,
        ):
            holder.execute("SELECT id FROM results WHERE id = %s FOR UPDATE", (ids[-1],))
            request: Future[httpx.Response] = pool.submit(post, service, 2, 20)
            while not request.done() and (times is None or len(killed) < times):
                for pid in set(blocked_writers(admin)) - killed:
                    # Mid-write: the writer holds the rows of the segments it already updated.
                    taken = admin.execute(
                        "SELECT id FROM results WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED", (ids[:-1],)
                    ).fetchall()
                    assert taken == []
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed.add(pid)
                time.sleep(0.05)
            holder.rollback()
            return request.result(timeout=TIMEOUT), len(killed)

    response, killed = run_while_killing(None)
    runs = ctx.settings.max_attempts
    assert killed == 3 * runs
    assert response.status_code == 503  # the database is unavailable: try again later
    cause = response.json()["detail"]
    assert cause.startswith(f"{runs} attempts of chunk 0 failed: attempt 1 on local@")
    assert cause.count("failed after 3 attempts") == runs
    assert "terminating connection due to administrator command" in cause
    assert written() == []
    assert sql(service, "SELECT video_ok FROM interviews WHERE id = 20") == [(False,)]
    assert ctx.db.segment_results(20) == []
    failed = ctx.db.jobs_for_interview(20)[-1]
    assert failed.status == "failed" and failed.error == cause
    log = s3_objects(service, "2/20/logs/")
    assert any(
        "FAILED" in text.decode() and "administrator command" in text.decode() for text in log.values()
    )

    response, killed = run_while_killing(1)
    assert killed == 1 and response.status_code == 200, response.text
    assert sorted(row[0] for row in written()) == sorted(ids)
    done = ctx.db.jobs_for_interview(20)[-1]
    assert done.status == "succeeded"
    stored = ctx.db.segment_results(20)
    assert sorted(row["result_id"] for row in stored) == sorted(ids)
    assert {row["job_id"] for row in stored} == {done.id}
    assert "transient database fault" in service.log.read_text()

    assert post(service, 2, 20).status_code == 200
    assert len(ctx.db.segment_results(20)) == 3
    assert sql(service, "SELECT video_ok FROM interviews WHERE id = 20") == [(True,)]


GIB = 1 << 30


def big_video(path: Path, min_bytes: int) -> float:
    """A valid H.264 video of at least ``min_bytes``: a 2 s clip of noise encoded losslessly (about
    1.7 MB a frame), stream-copied back to back. Returns its duration in seconds."""
    rng = np.random.default_rng(0)
    clip = path.with_name("clip.mp4")
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.gop_size = 10
        stream.options = {"preset": "ultrafast", "qp": "0", "bf": "0"}
        for _ in range(20):
            image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(clip)) as source, av.open(str(path), "w") as out:
        packets = [p for p in source.demux(source.streams.video[0]) if p.dts is not None]
        length = sum(p.duration for p in packets)
        copy = out.add_stream_from_template(source.streams.video[0])
        repeats = -(-min_bytes // clip.stat().st_size)
        for repeat in range(repeats):
            for packet in packets:
                moved = av.Packet(bytes(packet))
                moved.pts, moved.dts = packet.pts + repeat * length, packet.dts + repeat * length
                moved.duration, moved.time_base = packet.duration, packet.time_base
                moved.is_keyframe = packet.is_keyframe
                moved.stream = copy
                out.mux(moved)
        seconds = float(repeats * length * packets[0].time_base)
    clip.unlink()
    return seconds


@pytest.mark.slow
def test_a_1_gib_video_is_streamed_through_a_temporary_file_in_bounded_memory(
    pg_database: Callable[..., str], s3_server: str, tmp_path: Path
) -> None:
    video = tmp_path / "big.mp4"
    seconds = big_video(video, GIB)
    assert video.stat().st_size >= GIB
    bucket = create_bucket(s3_server)
    client = boto3.client("s3", endpoint_url=s3_server)
    parts = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20)
    client.upload_file(str(video), bucket, video_key(7, 70, "raw.mp4"), Config=parts)
    head = client.head_object(Bucket=bucket, Key=video_key(7, 70, "raw.mp4"))
    assert "-" in head["ETag"], "a multipart upload (its ETag ends in -PARTS)"
    video.unlink()

    url = upgraded_database(pg_database, tmp_path)
    temp = tmp_path / "service-tmp"
    temp.mkdir()
    env = production_env(
        url,
        s3_server,
        bucket,
        TMPDIR=str(temp),
        # One streamed GET: moto reads the whole object for each ranged GET of a parallel download.
        VE_S3_PART_SIZE_MB="4096",
    )
    with run_service(tmp_path / "data", **env) as running:
        near_end = seconds - 3.0
        running.ctx.db.ingest(
            session_id=7,
            interview_id=70,
            segments=[Segment(0, 0.5, 2.5), Segment(0, near_end, near_end + 2.0)],
        )
        largest_copy = 0
        with ThreadPoolExecutor(1) as pool:
            request = pool.submit(post, running, 7, 70)
            while not request.done():
                sizes = [f.stat().st_size for f in temp.glob("video-emotions-*") if f.exists()]
                largest_copy = max([largest_copy, *sizes])
                time.sleep(0.05)
            response = request.result()
        assert response.status_code == 200, response.text
        peak = running.peak_rss_mb()
        print(f"service peak RSS {peak:.0f} MiB for a {head['ContentLength'] / GIB:.2f} GiB video")
        assert peak < 500
        assert largest_copy == head["ContentLength"], "the video was copied to a temporary file"
        assert list(temp.glob("video-emotions-*")) == [], "and the copy is gone"
        rows = running.ctx.db.results_rows(70)
        last_times = [float(key.split("_")[2]) for key in rows[1]["video_emotions"]]
        assert min(last_times) >= near_end - 0.1 and max(last_times) <= near_end + 2.1
        assert (
            rows[0]["video_emotions"]
            and min(float(k.split("_")[2]) for k in rows[0]["video_emotions"]) >= 0.4
        )
