"""POST /analyse_video end to end on the embedded default, against the service as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from tests.media import face_video
from tests.service import RunningService, run_service, write_walkthrough_segments
from video_emotions.domain import EMOTIONS, NO_FACE_KEY, Segment
from video_emotions.results import frame_key
from video_emotions.video.sampler import plan_sample_times

TIMEOUT = 120


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(tmp_path_factory.mktemp("service")) as running:
        yield running


def snapshot(service: RunningService, interview_id: int) -> tuple[object, ...]:
    return (service.ctx.db.interview(interview_id), service.ctx.db.results_rows(interview_id))


def post(service: RunningService, **params: object) -> httpx.Response:
    return httpx.post(f"{service.url}/analyse_video", params=params, timeout=TIMEOUT)


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = None
        times = []
        for frame in container.decode(stream):
            first = frame.time if first is None else first
            times.append(frame.time - first)
    return times


def test_health(service: RunningService) -> None:
    assert httpx.get(f"{service.url}/health").json() == {"status": "ok"}


def test_walkthrough_on_woman2(service: RunningService, woman2_mp4: Path, tmp_path: Path) -> None:
    segments = write_walkthrough_segments(tmp_path / "segments.json")
    done = service.cli(
        "ingest", str(woman2_mp4), "--session", "1", "--interview", "1", "--segments", str(segments)
    )
    assert done.returncode == 0, done.stderr
    # A second interview from the same file: the database gives its rows fresh ids.
    again = service.cli(
        "ingest", str(woman2_mp4), "--session", "1", "--interview", "2", "--segments", str(segments)
    )
    assert again.returncode == 0, again.stderr
    first_ids = {row["id"] for row in service.ctx.db.results_rows(1)}
    assert len(first_ids) == 3 and first_ids.isdisjoint(row["id"] for row in service.ctx.db.results_rows(2))

    response = post(service, session_id=1, interview_id=1, model_type="default")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}

    rows = service.ctx.db.results_rows(1)
    candidate = [r for r in rows if r["speaker"] == 0]
    interviewer = [r for r in rows if r["speaker"] == 1]
    assert interviewer[0]["video_emotions"] is None
    times = frame_times(woman2_mp4)
    for row in candidate:
        segment = Segment(row["id"], row["start"] / 1000, row["end"] / 1000)
        expected = [frame_key(i, t) for i, t in enumerate(plan_sample_times(times, segment, 1.0))]
        assert list(row["video_emotions"]) == expected
    assert next(iter(candidate[0]["video_emotions"])) == "frame_00000_0.000_seconds"
    assert len(candidate[0]["video_emotions"]) == 3 and len(candidate[1]["video_emotions"]) == 3
    for row in candidate:
        for values in row["video_emotions"].values():
            assert set(values) == set(EMOTIONS), values
            assert abs(sum(values.values()) - 100.0) <= 0.5
            assert list(values.values()) == sorted(values.values(), reverse=True)
    assert service.ctx.db.interview(1)["video_ok"] is True
    logs = list((service.ctx.settings.data_dir / "storage" / "interviews" / "1" / "1" / "logs").iterdir())
    assert len(logs) == 1 and logs[0].name.startswith("videoLog_")
    assert "wrote 2 segments" in logs[0].read_text()

    emotions = httpx.get(f"{service.url}/v1/interviews/1/emotions", params={"frames": True}).json()
    assert emotions["video_ok"] is True
    assert [s["summary"]["frames"] for s in emotions["segments"]] == [3, 3]
    assert emotions["segments"][0]["engine"] == "default"
    assert emotions["segments"][0]["frames"][0]["faces"] >= 1
    assert emotions["segments_without_face"] == []


def _ingest(
    service: RunningService, session: int, interview: int, video: Path | bytes | None, segments: list[Segment]
) -> None:
    ctx = service.ctx
    ctx.db.ingest(session_id=session, interview_id=interview, segments=segments)
    if video is not None:
        ctx.blobs.put(f"{session}/{interview}/raw/raw.mp4", video)


def test_segment_without_any_face_keeps_the_legacy_marker(service: RunningService, tmp_path: Path) -> None:
    video = face_video(tmp_path / "v.mp4", 4.0, blank_from=2.0)
    _ingest(service, 2, 20, video, [Segment(0, 0.0, 1.5), Segment(0, 2.5, 3.5)])
    assert post(service, session_id=2, interview_id=20, model_type="default").status_code == 200
    rows = service.ctx.db.results_rows(20)
    assert all(v != {NO_FACE_KEY: 0.0} for v in rows[0]["video_emotions"].values())
    assert list(rows[1]["video_emotions"].values()) == [{NO_FACE_KEY: 0.0}] * 2
    emotions = httpx.get(f"{service.url}/v1/interviews/20/emotions").json()
    assert emotions["segments_without_face"] == [rows[1]["id"]]
    assert emotions["segments"][1]["summary"]["usable_share"] == 0
    assert emotions["segments"][1]["summary"]["dominant"] is None


@pytest.fixture(scope="module")
def good_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("videos") / "face.mp4", 3.0)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"session_id": 3, "interview_id": 30, "model_type": "nope"}, 422, "unknown model_type 'nope'"),
        (
            {"session_id": 0, "interview_id": 30, "model_type": "default"},
            422,
            "session_id: Input should be greater than 0",
        ),
        ({"session_id": "abc", "interview_id": 30}, 422, "session_id: Input should be a valid integer"),
        (
            {"session_id": 3, "interview_id": 999, "model_type": "default"},
            404,
            "interview 999 does not exist",
        ),
        ({"session_id": 4, "interview_id": 30, "model_type": "default"}, 404, "session 4 does not exist"),
        ({"session_id": 6, "interview_id": 30, "model_type": "default"}, 404, "belongs to session 3, not 6"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    service: RunningService, good_video: Path, params: dict[str, object], status: int, message: str
) -> None:
    if service.ctx.db.interview(30) is None:
        _ingest(service, 3, 30, good_video, [Segment(0, 0.0, 1.0)])
        _ingest(service, 6, 31, good_video, [Segment(0, 0.0, 1.0)])
    before = snapshot(service, 30)
    response = post(service, **params)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert snapshot(service, 30) == before


@pytest.mark.parametrize(
    ("case", "segments", "status", "message"),
    [
        ("missing video", [Segment(0, 0.0, 1.0)], 404, "no video for interview"),
        ("not a video", [Segment(0, 0.0, 1.0)], 422, "does not decode"),
        (
            "no candidate segments",
            [Segment(0, 0.0, 1.0, speaker=1)],
            422,
            "no candidate (speaker 0) segments",
        ),
        ("end before start", [Segment(0, 0.0, 1.0), Segment(0, 2.0, 1.5)], 422, "0 <= start < end"),
        (
            "start after the end",
            [Segment(0, 0.0, 1.0), Segment(0, 10.0, 11.0)],
            422,
            "at or after the end of the video (3.000 s)",
        ),
    ],
)
def test_bad_data_fails_with_a_reason_and_writes_nothing(
    service: RunningService,
    good_video: Path,
    tmp_path: Path,
    case: str,
    segments: list[Segment],
    status: int,
    message: str,
) -> None:
    interview = 100 + [
        "missing video",
        "not a video",
        "no candidate segments",
        "end before start",
        "start after the end",
    ].index(case)
    video: Path | bytes | None = good_video
    if case == "missing video":
        video = None
    elif case == "not a video":
        video = b"this is not a video at all" * 100
    _ingest(service, 5, interview, video, segments)
    before = snapshot(service, interview)
    response = post(service, session_id=5, interview_id=interview, model_type="default")
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert message in detail, response.json()
    assert str(service.ctx.settings.data_dir.resolve()) not in detail  # no server path in an answer
    assert snapshot(service, interview) == before
    # Refused before it ran or failed while running: a failed job on the record, with its run log.
    (job,) = service.ctx.db.jobs_for_interview(interview)
    assert (job.status, job.error) == ("failed", detail)
    assert job.log_key is not None and detail in service.ctx.blobs.get(job.log_key).decode()
