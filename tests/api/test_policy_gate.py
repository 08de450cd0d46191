"""The policy gate through the live service with VE_POLICY_FILE: a prohibited context refused with 451
and the rule's reason (nothing written, a failed job on the record), an allowed one analysed, consent
required until PUT /v1/interviews/{id}/facts records it; the facts API; the start-up log with and
without a policy; a wrong policy file stopping `serve`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.media import face_video
from tests.service import RunningService, run_service, service_env

TIMEOUT = 120
FINAL = ("succeeded", "failed", "cancelled")
EU_REASON = "EU AI Act Art. 5(1)(f): emotion recognition in the workplace"
POLICY = f"""
[[rule]]
context = "hiring"
region = "EU"
action = "prohibit"
reason = "{EU_REASON}"

[[rule]]
context = "coaching"
region = "*"
action = "require_consent"
reason = "practice interviews need the candidate's consent"
"""


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_video(tmp_path_factory.mktemp("videos") / "face.mp4", 2.0)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    data = tmp_path_factory.mktemp("policy")
    policy = data / "policy.toml"
    policy.write_text(POLICY)
    with run_service(data, VE_POLICY_FILE=str(policy)) as running:
        yield running


def ingest(service: RunningService, video: Path, interview: int, *facts: str) -> None:
    done = service.cli("ingest", str(video), "--session", "1", "--interview", str(interview), *facts)
    assert done.returncode == 0, done.stderr


def written(service: RunningService, interview_id: int) -> tuple[Any, ...]:
    """What an analysis writes: the interview's row (video_ok), its results rows, our segment results."""
    db = service.ctx.db
    return (db.interview(interview_id), db.results_rows(interview_id), db.segment_results(interview_id))


def analyse(service: RunningService, interview_id: int) -> httpx.Response:
    params = {"session_id": 1, "interview_id": interview_id, "model_type": "default"}
    return httpx.post(f"{service.url}/analyse_video", params=params, timeout=TIMEOUT)


def wait(service: RunningService, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        job = httpx.get(f"{service.url}/v1/analyses/{job_id}", timeout=10).json()
        if job["state"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_the_start_up_log_names_the_policy(service: RunningService) -> None:
    assert f"policy {service.settings.policy_file}: 2 rules" in service.log.read_text()


def test_a_prohibited_context_is_refused_with_the_reason_and_nothing_written(
    service: RunningService, video: Path
) -> None:
    ingest(service, video, 1, "--context", "hiring", "--region", "EU")
    before = written(service, 1)
    response = analyse(service, 1)
    assert response.status_code == 451, response.text
    body = response.json()
    assert EU_REASON in body["detail"] and "policy rule 1" in body["detail"]
    assert (body["rule"], body["action"], body["reason"]) == (1, "prohibit", EU_REASON)
    # The same for /v1/analyses, which queues nothing either.
    queued = httpx.post(
        f"{service.url}/v1/analyses", json={"session_id": 1, "interview_id": 1}, timeout=TIMEOUT
    )
    assert queued.status_code == 451 and queued.json()["rule"] == 1
    assert written(service, 1) == before
    assert before[0]["video_ok"] is False and before[2] == []
    # Both refusals are on the record, as failed jobs with their run logs.
    jobs = service.ctx.db.jobs_for_interview(1)
    assert {job.id for job in jobs} == {body["job_id"], queued.json()["job_id"]}
    assert all(job.status == "failed" and job.error_kind == "policy" for job in jobs)
    record = httpx.get(f"{service.url}/v1/analyses/{body['job_id']}").json()
    assert record["state"] == "failed" and record["error"]["kind"] == "policy"
    assert EU_REASON in record["error"]["message"]
    assert record["log_key"] and EU_REASON in service.ctx.blobs.get(record["log_key"]).decode()
    listed = httpx.get(f"{service.url}/v1/interviews/1").json()
    assert listed["state"] == "failed" and EU_REASON in listed["error"]


def test_an_allowed_context_is_analysed(service: RunningService, video: Path) -> None:
    ingest(service, video, 2, "--context", "hiring", "--region", "US")
    response = analyse(service, 2)
    assert response.status_code == 200, response.text
    assert service.ctx.db.interview(2)["video_ok"] is True


def test_consent_is_required_until_it_is_recorded(service: RunningService, video: Path) -> None:
    with video.open("rb") as file:
        uploaded = httpx.post(
            f"{service.url}/v1/interviews",
            files={"video": ("face.mp4", file, "video/mp4")},
            data={"interview_id": "3", "context": "coaching", "region": "US"},
            timeout=TIMEOUT,
        )
    assert uploaded.status_code == 201, uploaded.text
    facts = httpx.get(f"{service.url}/v1/interviews/3/facts").json()
    assert (facts["context"], facts["region"], facts["consent"]) == ("coaching", "US", None)
    refused = httpx.post(
        f"{service.url}/v1/analyses", json={"session_id": 1, "interview_id": 3}, timeout=TIMEOUT
    )
    assert refused.status_code == 451, refused.text
    detail = refused.json()["detail"]
    assert "requires the candidate's recorded consent" in detail
    assert (
        "set it with PUT /v1/interviews/3/facts" in detail and refused.json()["action"] == "require_consent"
    )
    assert service.ctx.db.segment_results(3) == []

    # Refused consent refuses too.
    put = httpx.put(f"{service.url}/v1/interviews/3/facts", json={"consent": False})
    assert put.status_code == 200 and put.json()["consent"] is False
    again = httpx.post(f"{service.url}/v1/analyses", json={"session_id": 1, "interview_id": 3})
    assert again.status_code == 451 and "recorded as refused" in again.json()["detail"]

    put = httpx.put(
        f"{service.url}/v1/interviews/3/facts",
        json={"consent": True, "consent_by": "recruiter 12", "notice": "We analyse facial expressions."},
    )
    assert put.status_code == 200, put.text
    facts = put.json()
    assert facts["consent"] is True and facts["consent_by"] == "recruiter 12" and facts["consent_at"]
    assert facts["context"] == "coaching"  # a partial update keeps the rest
    accepted = httpx.post(f"{service.url}/v1/analyses", json={"session_id": 1, "interview_id": 3})
    assert accepted.status_code == 202, accepted.text
    assert wait(service, accepted.json()["id"])["state"] == "succeeded"


def test_the_facts_api(service: RunningService, video: Path) -> None:
    ingest(
        service,
        video,
        4,
        "--context",
        "research",
        "--purpose",
        "a study",
        "--recorded-by",
        "lab 3",
        "--recorded-at",
        "2026-12-01T10:00:00+01:00",
        "--notice",
        "You are recorded.",
        "--consent",
    )
    url = f"{service.url}/v1/interviews/4/facts"
    facts = httpx.get(url).json()
    assert facts["interview_id"] == 4 and facts["context"] == "research" and facts["region"] is None
    assert (facts["purpose"], facts["recorded_by"], facts["notice"]) == (
        "a study",
        "lab 3",
        "You are recorded.",
    )
    assert facts["recorded_at"] == "2026-12-01T09:00:00+00:00"
    assert facts["consent"] is True and facts["consent_at"] and facts["updated_at"]

    put = httpx.put(url, json={"region": "EU", "purpose": None, "recorded_at": "2026-12-02T08:30:00Z"})
    assert put.status_code == 200, put.text
    changed = put.json()
    assert (changed["region"], changed["purpose"], changed["context"]) == ("EU", None, "research")
    assert changed["recorded_at"] == "2026-12-02T08:30:00+00:00"
    assert httpx.get(url).json() == changed
    assert httpx.put(url, json={}).json() == changed  # nothing to set: nothing changes

    for bad in ({"context": "*"}, {"region": "E U"}, {"consent": "yes"}, {"colour": "red"}):
        response = httpx.put(url, json=bad)
        assert response.status_code == 422, (bad, response.text)
    late = httpx.put(url, json={"consent_at": "0001-01-01T00:00:00+01:00"})
    assert late.status_code == 422 and "outside the times UTC can hold" in late.json()["detail"]
    assert httpx.get(url).json() == changed

    for method in ("GET", "PUT"):
        missing = httpx.request(method, f"{service.url}/v1/interviews/999/facts", json={"consent": True})
        assert missing.status_code == 404 and missing.json() == {"detail": "interview 999 does not exist"}
    # An interview with none recorded: every fact null.
    ingest(service, video, 5)
    assert set(httpx.get(f"{service.url}/v1/interviews/5/facts").json().values()) == {5, None}


def test_ingest_and_upload_refuse_bad_facts_and_store_nothing(service: RunningService, video: Path) -> None:
    done = service.cli("ingest", str(video), "--session", "1", "--interview", "6", "--region", "E U")
    assert done.returncode == 2 and "region 'E U' is not a name" in done.stderr
    assert service.ctx.db.interview(6) is None and not service.ctx.blobs.exists("1/6/raw/raw.mp4")
    with video.open("rb") as file:
        uploaded = httpx.post(
            f"{service.url}/v1/interviews",
            files={"video": ("face.mp4", file, "video/mp4")},
            data={"interview_id": "6", "context": "*"},
            timeout=TIMEOUT,
        )
    assert uploaded.status_code == 422 and "context '*' is not a name" in uploaded.json()["detail"]
    assert service.ctx.db.interview(6) is None and not service.ctx.blobs.exists("1/6/raw/raw.mp4")


def test_without_a_policy_file_the_start_up_log_says_so(tmp_path: Path, video: Path) -> None:
    with run_service(tmp_path / "open") as running:
        assert "no policy is set (VE_POLICY_FILE)" in running.log.read_text()
        ingest(running, video, 1, "--context", "hiring", "--region", "EU")
        assert analyse(running, 1).status_code == 200  # as today: nothing is refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\ncontext = "hiring"\nregion = "EU"\naction = "forbid"\nreason = "r"\n', "action 'forbid'"),
        ('[[rule]]\ncontext = "hiring"\nregion = "EU"\naction = "prohibit"\n', "rule 1: no 'reason'"),
    ],
)
def test_a_wrong_policy_file_stops_serve_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(text)
    env = service_env(tmp_path, VE_POLICY_FILE=str(policy), VE_PORT="1")
    done = subprocess.run(
        [sys.executable, "-m", "video_emotions", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split())
