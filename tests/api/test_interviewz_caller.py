"""The service as Interviewz's middleware really calls it: aiohttp with its defaults, query only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.media import face_video
from tests.service import RunningService, run_service
from tests.test_results import thousandths
from video_emotions.domain import EMOTIONS, NO_FACE_KEY, Segment

CANDIDATE = [Segment(0, 0.0, 2.0), Segment(0, 4.0, 6.0)]
INTERVIEWER = Segment(0, 2.0, 4.0, speaker=1)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(
        tmp_path_factory.mktemp("caller"),
        VE_MODEL_ALIASES="deepface=default,yolo=default",
        VE_WORKERS="2",
        VE_INTERVAL="0.5",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("short") / "v.mp4", 7.0, blank_from=5.0)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Five minutes at 2 fps: with VE_INTERVAL=0.5 every frame is a sample, a few seconds of work.
    return face_video(tmp_path_factory.mktemp("long") / "v.mp4", 300.0, fps=2)


def ingest(service: RunningService, interview: int, video: Path, segments: list[Segment]) -> None:
    service.ctx.db.ingest(session_id=7, interview_id=interview, segments=segments)
    service.ctx.blobs.put(f"7/{interview}/raw/raw.mp4", video)


async def middleware_call(
    service: RunningService, interview: int, model_type: str, **client: object
) -> tuple[int, str]:
    """What Interviewz's middleware does: aiohttp defaults (300 s total), POST with query only."""
    async with aiohttp.ClientSession(**client) as session:
        url = f"{service.url}/analyse_video?session_id=7&interview_id={interview}&model_type={model_type}"
        async with session.post(url) as response:
            return response.status, await response.text()


def app_averages(video_emotions: dict[str, dict[str, float]]) -> dict[str, float]:
    """How the app reads a segment: each label averaged over frames, a no-face frame counting zero."""
    frames = list(video_emotions.values())
    return {label: sum(frame.get(label, 0.0) for frame in frames) / len(frames) for label in EMOTIONS}


@pytest.mark.parametrize(("interview", "model_type"), [(1, "deepface"), (2, "yolo"), (3, "default")])
def test_the_apps_model_types_are_served(
    service: RunningService, short_video: Path, interview: int, model_type: str
) -> None:
    ingest(service, interview, short_video, [CANDIDATE[0], INTERVIEWER, CANDIDATE[1]])
    status, body = asyncio.run(middleware_call(service, interview, model_type))
    assert status == 200 and body == '{"status":"ok"}'
    rows = service.ctx.db.results_rows(interview)
    assert [r["video_emotions"] for r in rows if r["speaker"] == 1] == [None]
    first, second = (r["video_emotions"] for r in rows if r["speaker"] == 0)
    for document in (first, second):
        for values in document.values():
            assert set(values) in (set(EMOTIONS), {NO_FACE_KEY})
            assert all(0.0 <= v <= 100.0 for v in values.values())
    assert all(set(values) == set(EMOTIONS) for values in first.values())
    # The second segment runs into the blank part (no face from 5 s): marker frames count as zero.
    markers = [v for v in second.values() if v == {NO_FACE_KEY: 0.0}]
    assert 0 < len(markers) < len(second)
    averages = app_averages(second)
    assert abs(sum(averages.values()) - 100.0 * (len(second) - len(markers)) / len(second)) < 0.5
    job = service.ctx.db.jobs_for_interview(interview)[-1]
    assert (job.model_type, job.engine, job.status) == (model_type, "default", "succeeded")
    assert len(job.model_sha256) == 64
    # The operator's alias wins over the fallback to the default: the job says which one served.
    alias = f"model_type {model_type!r} is served by engine 'default' (VE_MODEL_ALIASES)"
    assert job.note == (None if model_type == "default" else alias)


@pytest.fixture(scope="module")
def unconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The service as it starts out of the box: no setting at all."""
    with run_service(tmp_path_factory.mktemp("unconfigured")) as running:
        yield running


DEEPFACE_NOTE = 'deepface unavailable: needs the [deepface] extra (pip install "video-emotions[deepface]")'


def test_out_of_the_box_the_apps_names_are_served_by_the_default_and_say_so(
    unconfigured: RunningService, short_video: Path
) -> None:
    service = unconfigured
    ingest(service, 40, short_video, [CANDIDATE[0], INTERVIEWER, CANDIDATE[1]])
    ingest(service, 41, short_video, [CANDIDATE[0]])
    # The app's default, then its toggle on the same interview: the default ran for the first,
    # so the second is answered from what it wrote.
    assert asyncio.run(middleware_call(service, 40, "deepface")) == (200, '{"status":"ok"}')
    assert asyncio.run(middleware_call(service, 40, "yolo")) == (200, '{"status":"ok"}')
    assert asyncio.run(middleware_call(service, 41, "yolo")) == (200, '{"status":"ok"}')

    (deepface,) = service.ctx.db.jobs_for_interview(40)
    (yolo,) = service.ctx.db.jobs_for_interview(41)
    for job, name, needs in (
        (deepface, "deepface", "[deepface] extra"),
        (yolo, "yolo", "VE_YOLO_MODEL_PATH"),
    ):
        record = httpx.get(f"{service.url}/v1/jobs/{job.id}").json()
        assert (record["model_type"], record["engine"], record["status"]) == (name, "default", "done")
        assert record["note"].startswith(f"{name} unavailable: ") and needs in record["note"]
        assert record["note"].endswith("; served by default")
        log = service.ctx.blobs.get(job.log_key).decode()
        assert record["note"] in log and "engine default, model file" in log
    assert deepface.note == f"{DEEPFACE_NOTE}; served by default"
    assert "yolo_cloud: needs VE_REMOTE_URL" in yolo.note

    for interview in (40, 41):
        assert service.ctx.db.interview(interview)["video_ok"] is True
        candidate = [r["video_emotions"] for r in service.ctx.db.results_rows(interview) if r["speaker"] == 0]
        assert candidate and all(document for document in candidate)

    listed = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models").json()["models"]}
    assert (listed["deepface"]["served_by"], listed["deepface"]["note"]) == ("default", deepface.note)
    assert (listed["yolo"]["served_by"], listed["yolo"]["note"]) == ("default", yolo.note)
    (line,) = [line for line in service.log.read_text().splitlines() if "the app's model types:" in line]
    assert line.endswith(f"deepface -> default ({deepface.note}); yolo -> default ({yolo.note})")


def test_the_api_and_the_results_rows_give_three_decimals_and_no_frame_over_100(
    unconfigured: RunningService, woman2_mp4: Path
) -> None:
    ingest(unconfigured, 42, woman2_mp4, [Segment(0, 0.0, 15.0)])
    assert asyncio.run(middleware_call(unconfigured, 42, "deepface"))[0] == 200
    (row,) = unconfigured.ctx.db.results_rows(42)
    emotions = httpx.get(f"{unconfigured.url}/v1/interviews/42/emotions", params={"frames": True}).json()
    (segment,) = emotions["segments"]
    assert segment["video_emotions"] == row["video_emotions"]
    frames = [f["emotions"] for f in segment["frames"]]
    assert frames == list(row["video_emotions"].values()) and len(frames) == 16
    for values in frames:
        assert thousandths(values) <= 100_000
    thousandths(segment["summary"]["mean"])  # three decimals there too


def test_with_strict_models_the_apps_names_answer_422_naming_what_is_missing(
    tmp_path: Path, short_video: Path
) -> None:
    with run_service(tmp_path, VE_STRICT_MODELS="true") as service:
        ingest(service, 50, short_video, [CANDIDATE[0]])
        for model_type, needs in (
            ("deepface", ["[deepface] extra"]),
            ("yolo", ["VE_REMOTE_URL", "VE_YOLO_MODEL_PATH"]),
        ):
            status, body = asyncio.run(middleware_call(service, 50, model_type))
            detail = json.loads(body)["detail"]
            assert status == 422 and f"model_type {model_type!r} is not available" in detail
            assert all(need in detail for need in needs), detail
        assert service.ctx.db.jobs_for_interview(50) == []
        assert [r["video_emotions"] for r in service.ctx.db.results_rows(50)] == [None]
        assert service.ctx.db.interview(50)["video_ok"] is False
        listed = {m["name"]: m for m in httpx.get(f"{service.url}/v1/models").json()["models"]}
        assert listed["deepface"]["served_by"] is None


def test_a_caller_that_gives_up_still_gets_its_results_written_once(
    service: RunningService, long_video: Path
) -> None:
    ingest(service, 10, long_video, [Segment(0, 0.0, 290.0)])
    with pytest.raises(TimeoutError):
        asyncio.run(middleware_call(service, 10, "default", timeout=aiohttp.ClientTimeout(total=1)))
    deadline = time.monotonic() + 120
    while not service.ctx.db.jobs_for_interview(10)[0].log_key:  # the log is the run's last act
        assert time.monotonic() < deadline, "the analysis did not finish after the caller left"
        time.sleep(0.2)
    (job,) = service.ctx.db.jobs_for_interview(10)
    assert job.status == "succeeded" and job.caller_left_at is not None
    assert service.ctx.db.interview(10)["video_ok"] is True
    (row,) = service.ctx.db.results_rows(10)
    assert len(row["video_emotions"]) == 581  # every frame from 0 to 289.5 s, plus the closing one
    log = service.ctx.blobs.get(job.log_key).decode()
    assert "the caller left" in log


def test_concurrent_calls_share_one_analysis_and_health_stays_fast(
    service: RunningService, long_video: Path
) -> None:
    ingest(service, 20, long_video, [Segment(0, 0.0, 200.0)])
    ingest(service, 21, long_video, [Segment(0, 50.0, 250.0)])

    async def scenario() -> tuple[list[tuple[int, str]], list[float]]:
        calls = [
            asyncio.create_task(middleware_call(service, 20, "default")),
            asyncio.create_task(middleware_call(service, 20, "default")),
            asyncio.create_task(middleware_call(service, 21, "default")),
        ]
        latencies = []
        async with httpx.AsyncClient() as client:
            while not all(call.done() for call in calls):
                started = time.perf_counter()
                assert (await client.get(f"{service.url}/health")).status_code == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.1)
        return [call.result() for call in calls], latencies

    answers, latencies = asyncio.run(scenario())
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len(service.ctx.db.jobs_for_interview(20)) == 1
    assert len(latencies) >= 5, "the analyses finished too fast to measure /health beside them"
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1
    assert latencies[-1] < 0.5


def test_an_analysed_interview_answers_from_what_is_stored_unless_forced(
    service: RunningService, short_video: Path
) -> None:
    ingest(service, 30, short_video, [CANDIDATE[0]])
    assert asyncio.run(middleware_call(service, 30, "default"))[0] == 200
    stored = service.ctx.db.results_rows(30)
    assert asyncio.run(middleware_call(service, 30, "deepface"))[0] == 200  # deepface=default here
    assert len(service.ctx.db.jobs_for_interview(30)) == 1
    assert service.ctx.db.results_rows(30) == stored
    response = httpx.post(
        f"{service.url}/analyse_video",
        params={"session_id": 7, "interview_id": 30, "model_type": "default", "force": "true"},
        timeout=60,
    )
    assert response.status_code == 200
    assert len(service.ctx.db.jobs_for_interview(30)) == 2
