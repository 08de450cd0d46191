"""/v1/analyses on the embedded executor (a thread pool in the service), through the live service:
equal requests meeting in one job, progress, cancellation, a crash picked up at the next start, the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs.conftest import LONG_VIDEO_MINUTES, ingest, long_face_video
from tests.media import face_video
from tests.service import RunningService, run_service

#: Seconds any wait in these tests may take before it counts as a failure.
DEADLINE_S = 120.0
#: How often a test polls a job's record.
POLL_S = 0.1
#: The 4-minute video: seconds of it the tests ingest as segments (candidate 12 s, interviewer 4 s).
LONG_SECONDS = 240.0
#: Seconds of speech of ``dense_video`` for runs that only need to be under way a while.
HALF_SECONDS = 120.0
#: Seconds between samples: on ``dense_video`` every frame, a run long enough to watch (some 1800
#: samples, several seconds here); and a quicker run (180 samples).
SLOW_INTERVAL = 0.1
QUICK_INTERVAL = 1.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """One service on the defaults (one worker, no webhook secret) for the tests that can share it."""
    with run_service(tmp_path_factory.mktemp("local-jobs")) as running:
        yield running


@pytest.fixture(scope="module")
def dense_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``long_video`` at 10 frames a second: at ``SLOW_INTERVAL`` a run that lasts long enough to watch."""
    path = tmp_path_factory.mktemp("dense-video") / "dense.mp4"
    return long_face_video(path, LONG_VIDEO_MINUTES, fps=round(1 / SLOW_INTERVAL))


def submit(service: RunningService, **body: Any) -> httpx.Response:
    """POST /v1/analyses with ``body`` as JSON."""
    return httpx.post(f"{service.url}/v1/analyses", json=body, timeout=30)


def document(service: RunningService, job_id: str) -> dict[str, Any]:
    """GET /v1/analyses/ID, which must answer 200."""
    response = httpx.get(f"{service.url}/v1/analyses/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(
    service: RunningService,
    job_id: str,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = DEADLINE_S,
) -> dict[str, Any]:
    """Poll the job until ``condition`` holds for its record; fail with the record after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        record = document(service, job_id)
        if condition(record):
            return record
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not {what} within {timeout:g} s: {record}\n{service.log.read_text()}")
        time.sleep(POLL_S)


def settled(record: dict[str, Any]) -> bool:
    """Whether the job has ended (succeeded, failed or cancelled) and its run has closed its attempt.

    A job that succeeded or failed reads so only with its attempt closed; a cancelled one reads
    so at once, and its running attempt closes at the run's next batch.
    """
    ended = record["state"] not in ("queued", "running")
    return ended and all(attempt["outcome"] != "running" for attempt in record["attempts"])


def wait_ended(service: RunningService, job_id: str) -> dict[str, Any]:
    """The job's record once it has ended and settled (``settled``)."""
    return wait_for(service, job_id, settled, "ended")


def assert_nothing_written(service: RunningService, interview: int) -> None:
    """No result of any segment of the interview, and the interview not marked analysed."""
    rows = service.ctx.db.results_rows(interview)
    assert rows and all(row["video_emotions"] is None for row in rows)
    assert not service.ctx.db.interview(interview)["video_ok"]
    assert service.ctx.db.segment_results(interview) == []


def assert_all_written(service: RunningService, interview: int) -> None:
    """Every candidate segment has results, and the interview is marked analysed."""
    rows = service.ctx.db.results_rows(interview)
    candidate = [row for row in rows if row["speaker"] == 0]
    assert candidate and all(row["video_emotions"] for row in candidate)
    assert all(row["video_emotions"] is None for row in rows if row["speaker"] != 0)
    assert service.ctx.db.interview(interview)["video_ok"] is True
    stored = service.ctx.db.segment_results(interview)
    assert sorted(s["result_id"] for s in stored) == sorted(row["id"] for row in candidate)


# Equal requests ------------------------------------------------------------------------------


def test_equal_requests_meet_in_one_job_until_forced(service: RunningService, long_video: Path) -> None:
    """An equal request while the job is active, or after it succeeded, answers with the same job;
    ``force`` starts a new one."""
    ingest(service, long_video, 1, 10, LONG_SECONDS)
    body = {"session_id": 1, "interview_id": 10, "model_type": "default", "interval": QUICK_INTERVAL}

    first = submit(service, **body)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    assert first.headers["location"] == f"/v1/analyses/{job_id}"
    assert first.json()["state"] in ("queued", "running")

    second = submit(service, **body)
    assert second.status_code == 200, second.text
    assert second.json()["id"] == job_id
    assert second.json()["state"] in ("queued", "running")
    assert second.headers["location"] == f"/v1/analyses/{job_id}"
    assert service.ctx.db.list_jobs(interview_id=10)[1] == 1

    assert wait_ended(service, job_id)["state"] == "succeeded"
    third = submit(service, **body)
    assert third.status_code == 200, third.text
    assert third.json()["id"] == job_id
    assert third.json()["state"] == "succeeded"
    assert third.json()["progress"] == 1.0

    # Another interval is another job.
    other = submit(service, **body | {"interval": 2.0})
    assert other.status_code == 202, other.text
    assert other.json()["id"] != job_id
    assert wait_ended(service, other.json()["id"])["state"] == "succeeded"

    forced = submit(service, **body | {"force": True})
    assert forced.status_code == 202, forced.text
    assert forced.json()["id"] not in (job_id, other.json()["id"])
    assert wait_ended(service, forced.json()["id"])["state"] == "succeeded"
    assert service.ctx.db.list_jobs(interview_id=10)[1] == 3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"session_id": 2, "interview_id": 999, "model_type": "default"},
            404,
            "interview 999 does not exist",
        ),
        ({"session_id": 2, "interview_id": 20, "model_type": "nope"}, 422, "unknown model_type 'nope'"),
        ({"session_id": 5, "interview_id": 20, "model_type": "default"}, 404, "session 5 does not exist"),
        ({"session_id": 0, "interview_id": 20}, 422, "session_id: Input should be greater than 0"),
    ],
)
def test_invalid_requests_answer_as_analyse_video_does_and_queue_nothing(
    service: RunningService, long_video: Path, body: dict[str, Any], status: int, message: str
) -> None:
    """A request that cannot run is refused at once, with /analyse_video's message, and no job is made."""
    if service.ctx.db.interview(20) is None:
        ingest(service, long_video, 2, 20, 30.0)
    response = submit(service, **body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    legacy = httpx.post(f"{service.url}/analyse_video", params=body, timeout=30)
    assert legacy.status_code == status, legacy.text
    assert message in legacy.json()["detail"]
    assert service.ctx.db.list_jobs(interview_id=body["interview_id"]) == ([], 0)


def test_a_callback_url_without_a_webhook_secret_is_refused(
    service: RunningService, long_video: Path
) -> None:
    """Without VE_WEBHOOK_SECRET the service could not sign a webhook: 422, nothing queued."""
    if service.ctx.db.interview(20) is None:
        ingest(service, long_video, 2, 20, 30.0)
    response = submit(service, session_id=2, interview_id=20, callback_url="http://127.0.0.1:9/hook")
    assert response.status_code == 422, response.text
    assert "VE_WEBHOOK_SECRET" in response.json()["detail"]
    assert service.ctx.db.list_jobs(interview_id=20) == ([], 0)


# Progress and cancellation -------------------------------------------------------------------


def test_progress_rises_during_a_run(service: RunningService, dense_video: Path) -> None:
    """Polled while it runs, the job's progress and samples done rise; it ends at 1.0 with its stages."""
    ingest(service, dense_video, 3, 30, LONG_SECONDS)
    response = submit(service, session_id=3, interview_id=30, interval=SLOW_INTERVAL)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        record = document(service, job_id)
        if record["state"] not in ("queued", "running"):
            break
        seen.append(record)
        assert time.monotonic() < deadline, f"job {job_id} did not end within {DEADLINE_S:g} s: {record}"
        time.sleep(POLL_S)

    record = wait_ended(service, job_id)
    assert record["state"] == "succeeded", record
    assert record["progress"] == 1.0
    assert {"download", "analyse", "write"} <= set(record["stages"])
    assert all(seconds >= 0 for seconds in record["stages"].values())
    assert record["samples"]["done"] == record["samples"]["expected"] > 0
    assert record["segments"]["done"] == record["segments"]["total"] == 15
    assert record["error"] is None

    progress = [r["progress"] for r in seen]
    assert progress == sorted(progress), progress
    between = sorted({p for p in progress if 0 < p < 1})
    assert len(between) >= 2, f"too few progress values seen while it ran: {progress}"
    done = [r["samples"]["done"] for r in seen]
    assert done == sorted(done), done
    assert len({d for d in done if d > 0}) >= 2, done
    assert all(r["samples"]["done"] <= r["samples"]["expected"] for r in seen)
    assert all(r["state"] == "running" for r in seen if r["progress"] > 0)
    assert_all_written(service, 30)


def test_cancelling_a_running_job_stops_it_and_writes_nothing(
    service: RunningService, dense_video: Path
) -> None:
    """DELETE on a running job: it is cancelled, its run stops within seconds, no result is written;
    a second DELETE is refused because the job has ended."""
    ingest(service, dense_video, 4, 40, HALF_SECONDS)
    response = submit(service, session_id=4, interview_id=40, interval=SLOW_INTERVAL)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(service, job_id, lambda r: r["state"] == "running" and r["progress"] > 0, "under way")

    cancelled = httpx.delete(f"{service.url}/v1/analyses/{job_id}", timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["id"] == job_id
    assert cancelled.json()["state"] == "cancelled"

    record = wait_for(
        service,
        job_id,
        lambda r: r["attempts"] and r["attempts"][-1]["outcome"] != "running",
        "stopped",
        timeout=30,
    )
    assert record["state"] == "cancelled"
    assert [a["outcome"] for a in record["attempts"]] == ["cancelled"]
    assert record["progress"] < 1.0
    assert_nothing_written(service, 40)

    again = httpx.delete(f"{service.url}/v1/analyses/{job_id}", timeout=30)
    assert again.status_code == 409, again.text
    assert "cancelled" in again.json()["detail"]
    assert document(service, job_id)["state"] == "cancelled"
    missing = httpx.delete(f"{service.url}/v1/analyses/no-such-job", timeout=30)
    assert missing.status_code == 404, missing.text


def test_cancelling_a_queued_job_leaves_it_unrun(service: RunningService, long_video: Path) -> None:
    """With one worker a second interview's job waits; cancelled there, it never runs, and the
    first job still ends as it would have."""
    ingest(service, long_video, 4, 41, LONG_SECONDS)
    ingest(service, long_video, 4, 42, 60.0)
    first = submit(service, session_id=4, interview_id=41, interval=0.5)
    assert first.status_code == 202, first.text
    second = submit(service, session_id=4, interview_id=42, interval=QUICK_INTERVAL)
    assert second.status_code == 202, second.text
    first_id, second_id = first.json()["id"], second.json()["id"]
    assert second.json()["state"] == "queued"

    cancelled = httpx.delete(f"{service.url}/v1/analyses/{second_id}", timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["attempts"] == []
    # A third job, queued after the cancelled one: once it has run, the pool (one worker, first in
    # first out) has given the cancelled job its turn as well.
    third = submit(service, session_id=4, interview_id=41, interval=QUICK_INTERVAL)
    assert third.status_code == 202, third.text

    assert wait_ended(service, first_id)["state"] == "succeeded"
    assert wait_ended(service, third.json()["id"])["state"] == "succeeded"
    assert_all_written(service, 41)
    later = document(service, second_id)
    assert later["state"] == "cancelled"
    assert later["attempts"] == [] and later["attempt_count"] == 0 and later["workers"] == []
    assert later["samples"]["done"] == 0
    assert_nothing_written(service, 42)
    listed = httpx.get(f"{service.url}/v1/analyses", params={"state": "cancelled"}, timeout=30).json()
    assert second_id in [item["id"] for item in listed["items"]]


def test_a_job_shows_succeeded_only_with_its_record_complete(service: RunningService, tmp_path: Path) -> None:
    """The first record that says succeeded is the final one: the write stage timed, the log
    uploaded, the attempt closed as succeeded."""
    video = face_video(tmp_path / "short.mp4", 6.0)
    ingest(service, video, 5, 50, 6.0)
    first_seen = []
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for run in range(5):
            response = client.post(
                "/v1/analyses", json={"session_id": 5, "interview_id": 50, "force": run > 0}
            )
            assert response.status_code == 202, response.text
            deadline = time.monotonic() + DEADLINE_S
            while (record := client.get(f"/v1/analyses/{response.json()['id']}").json())["state"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, record
            wait_ended(service, record["id"])
            first_seen.append(record)
    assert [r["state"] for r in first_seen] == ["succeeded"] * 5
    incomplete = [
        {
            "stages": sorted(r["stages"]),
            "log_key": r["log_key"],
            "attempts": [a["outcome"] for a in r["attempts"]],
        }
        for r in first_seen
        if "write" not in r["stages"] or r["log_key"] is None or r["attempts"][-1]["outcome"] != "succeeded"
    ]
    assert incomplete == []


# The CLI -------------------------------------------------------------------------------------


def test_cli_shows_the_records_the_api_gives(service: RunningService, long_video: Path) -> None:
    """``jobs list --json`` and ``jobs show`` print the records GET /v1/analyses gives."""
    if not service.ctx.db.list_jobs()[1]:
        ingest(service, long_video, 6, 60, 30.0)
        wait_ended(service, submit(service, session_id=6, interview_id=60).json()["id"])

    listed = service.cli("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    cli_items = json.loads(listed.stdout)["items"]
    api = httpx.get(f"{service.url}/v1/analyses", params={"limit": 20}, timeout=30).json()
    assert json.loads(listed.stdout)["total"] == api["total"] > 0
    fields = ("id", "interview_id", "state", "progress", "workers", "attempt_count")
    assert [{k: item[k] for k in fields} for item in cli_items] == [
        {k: item[k] for k in fields} for item in api["items"]
    ]

    # Pages: ``next`` leads on from where a page ends, in the same order.
    page = httpx.get(f"{service.url}/v1/analyses", params={"limit": 2}, timeout=30).json()
    paged = [item["id"] for item in page["items"]]
    while page["next"] is not None and len(paged) < 6:
        page = httpx.get(page["next"], timeout=30).json()
        paged += [item["id"] for item in page["items"]]
    assert paged == [item["id"] for item in api["items"]][: len(paged)]
    assert len(paged) == min(6, api["total"]) or page["next"] is None

    interview = cli_items[0]["interview_id"]
    filtered = service.cli("jobs", "list", "--json", "--interview", str(interview))
    assert filtered.returncode == 0, filtered.stderr
    api_filtered = httpx.get(f"{service.url}/v1/analyses", params={"interview_id": interview}, timeout=30)
    assert [i["id"] for i in json.loads(filtered.stdout)["items"]] == [
        i["id"] for i in api_filtered.json()["items"]
    ]

    for item in api["items"][:2]:
        shown = service.cli("jobs", "show", item["id"])
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == document(service, item["id"])

    unknown = service.cli("jobs", "show", "no-such-job")
    assert unknown.returncode != 0
    assert "no-such-job does not exist" in unknown.stdout + unknown.stderr


# A crash -------------------------------------------------------------------------------------


def test_a_job_left_running_by_a_crash_is_taken_up_at_the_next_start(
    tmp_path: Path, dense_video: Path
) -> None:
    """SIGKILL the service mid-run: the next service on the same data runs the job again to its end;
    the record shows the lost attempt, then the one that succeeded."""
    data = tmp_path / "data"
    with ExitStack() as stack:
        first = stack.enter_context(run_service(data))
        ingest(first, dense_video, 7, 70, HALF_SECONDS)
        response = submit(first, session_id=7, interview_id=70, interval=SLOW_INTERVAL)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_for(first, job_id, lambda r: r["state"] == "running" and r["progress"] > 0, "under way")
        assert first.process is not None
        first.process.kill()
        first.process.wait(timeout=30)
    crashed = first.ctx.db.job(job_id)
    assert crashed is not None and crashed.status == "running"

    with run_service(data) as second:
        assert httpx.get(f"{second.url}/health", timeout=30).json() == {"status": "ok"}
        record = wait_ended(second, job_id)
        assert record["state"] == "succeeded", record
        assert [a["outcome"] for a in record["attempts"]] == ["lost", "succeeded"]
        assert record["attempts"][0]["error_kind"] == "lost"
        assert [a["number"] for a in record["attempts"]] == [1, 2]
        assert record["attempt_count"] == 2
        assert len(record["workers"]) == 2  # the killed process and the new one
        assert record["attempts"][1]["worker"].endswith(f":{second.process.pid}")
        assert record["progress"] == 1.0
        assert_all_written(second, 70)
        again = submit(second, session_id=7, interview_id=70, interval=SLOW_INTERVAL)
        assert again.status_code == 200 and again.json()["id"] == job_id
