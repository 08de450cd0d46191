"""The audit log through the live service with two API keys: each analysis, read, frame, upload,
facts change and erasure leaves one row naming its key; ``GET /v1/audit`` filters them and the CLI
exports them as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service import RunningService, run_service, write_walkthrough_segments
from video_emotions.api.auth import hash_key, new_key
from video_emotions.audit import COLUMNS, cli_actor

CI_KEY, OPS_KEY = new_key(), new_key()
TIMEOUT = 120.0
FINAL = ("succeeded", "failed", "cancelled")


def key(which: str) -> dict[str, str]:
    return {"X-API-Key": CI_KEY if which == "ci" else OPS_KEY}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, woman2_mp4: Path) -> Iterator[RunningService]:
    data = tmp_path_factory.mktemp("audit")
    with run_service(data, VE_API_KEYS=f"ci:{hash_key(CI_KEY)},ops:{hash_key(OPS_KEY)}") as running:
        segments = write_walkthrough_segments(data / "segments.json")
        done = running.cli(
            "ingest", str(woman2_mp4), "--session", "1", "--interview", "1", "--segments", str(segments)
        )
        assert done.returncode == 0, done.stderr
        yield running


def last_id(service: RunningService) -> int:
    rows = service.ctx.db.audit_entries(limit=None)[0]
    return rows[-1]["id"] if rows else 0


def rows_after(service: RunningService, mark: int) -> list[dict[str, Any]]:
    return service.ctx.db.audit_entries(after_id=mark, limit=None)[0]


def one_row(service: RunningService, mark: int) -> dict[str, Any]:
    rows = rows_after(service, mark)
    assert len(rows) == 1, rows
    return rows[0]


def wait_for(service: RunningService, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        job = httpx.get(f"{service.url}/v1/analyses/{job_id}", headers=key("ci"), timeout=30).json()
        if job["state"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


@pytest.fixture(scope="module")
def analysed(service: RunningService) -> str:
    """Interview 1 analysed through ``/v1/analyses`` with the ci key; its job."""
    queued = httpx.post(
        f"{service.url}/v1/analyses",
        json={"session_id": 1, "interview_id": 1, "model_type": "default", "interval": 1.0},
        headers=key("ci"),
        timeout=TIMEOUT,
    )
    assert queued.status_code == 202, queued.text
    assert wait_for(service, queued.json()["id"])["state"] == "succeeded"
    return queued.json()["id"]


def test_the_cli_ingest_leaves_a_row_of_its_user(service: RunningService) -> None:
    [row] = service.ctx.db.audit_entries(action="interview_uploaded", interview_id=1)[0]
    assert (row["actor"], row["outcome"], row["client"]) == (cli_actor(), "ok", None)
    assert row["parameters"] == {"session_id": 1, "facts": [], "command": "ingest"}


def test_an_analysis_leaves_one_row_with_its_key_model_engine_and_parameters(
    service: RunningService, analysed: str
) -> None:
    [row] = [
        r for r in service.ctx.db.audit_entries(action="analysis_requested")[0] if r["job_id"] == analysed
    ]
    assert (row["actor"], row["interview_id"], row["model_type"], row["engine"]) == (
        "ci",
        1,
        "default",
        "default",
    )
    assert row["parameters"] == {"session_id": 1, "interval": 1.0, "force": False}
    assert (row["outcome"], row["client"]) == ("202", "127.0.0.1")

    mark = last_id(service)
    answer = httpx.post(
        f"{service.url}/analyse_video",
        params={"session_id": 1, "interview_id": 1, "model_type": "deepface", "force": "true"},
        headers=key("ops"),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["job_id"]) == (
        "ops",
        "analysis_requested",
        answer.headers["x-job-id"],
    )
    # The model asked for, and the engine that ran it (deepface is not installed here).
    assert (row["model_type"], row["engine"], row["outcome"]) == ("deepface", "default", "200")
    assert row["parameters"] == {"session_id": 1, "interval": service.settings.interval, "force": True}


def test_a_refused_analysis_leaves_a_row_without_a_job(service: RunningService) -> None:
    mark = last_id(service)
    answer = httpx.post(
        f"{service.url}/v1/analyses",
        json={"session_id": 1, "interview_id": 999},
        headers=key("ops"),
        timeout=30,
    )
    assert answer.status_code == 404
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["job_id"]) == (
        "ops",
        "analysis_refused",
        999,
        None,
    )
    assert (row["model_type"], row["engine"], row["outcome"]) == (service.settings.default_model, None, "404")


def test_reads_of_results_and_frames_leave_a_row_each(service: RunningService, analysed: str) -> None:
    mark = last_id(service)
    csv_answer = httpx.get(
        f"{service.url}/v1/interviews/1/emotions", params={"format": "csv"}, headers=key("ops"), timeout=30
    )
    assert csv_answer.status_code == 200
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        "ops",
        "results_read",
        1,
        "200",
    )
    assert row["parameters"] == {"format": "csv"}

    mark = row["id"]
    assert httpx.get(
        f"{service.url}/v1/interviews/1/frames/1.001.jpg", headers=key("ci"), timeout=30
    ).is_success
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        "ci",
        "frame_read",
        1,
        "200",
    )
    assert row["parameters"] == {"time": "1.001"}

    mark = row["id"]
    assert (
        httpx.get(f"{service.url}/v1/interviews/1/frames/99.jpg", headers=key("ci"), timeout=30).status_code
        == 422
    )
    assert one_row(service, mark)["outcome"] == "422"


def test_reads_that_hold_no_results_and_refused_keys_leave_none(service: RunningService) -> None:
    mark = last_id(service)
    assert httpx.get(f"{service.url}/v1/interviews/1", headers=key("ci"), timeout=30).is_success
    assert httpx.get(f"{service.url}/v1/models", headers=key("ci"), timeout=30).is_success
    refused = httpx.get(f"{service.url}/v1/interviews/1/emotions", headers={"X-API-Key": "wrong"}, timeout=30)
    assert refused.status_code == 401
    assert rows_after(service, mark) == []


def test_an_upload_facts_and_the_erasure_leave_a_row_each_and_the_erasure_keeps_them(
    service: RunningService, woman2_mp4: Path
) -> None:
    mark = last_id(service)
    uploaded = httpx.post(
        f"{service.url}/v1/interviews",
        files={"video": ("interview.mp4", woman2_mp4.read_bytes(), "video/mp4")},
        headers=key("ci"),
        timeout=TIMEOUT,
    )
    assert uploaded.status_code == 201, uploaded.text
    interview = uploaded.json()["interview_id"]
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        "ci",
        "interview_uploaded",
        interview,
        "201",
    )
    assert row["parameters"]["bytes"] > woman2_mp4.stat().st_size

    mark = row["id"]
    facts = httpx.put(
        f"{service.url}/v1/interviews/{interview}/facts",
        json={"consent": True, "recorded_by": "Jane Doe"},
        headers=key("ops"),
        timeout=30,
    )
    assert facts.status_code == 200, facts.text
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        "ops",
        "facts_changed",
        interview,
        "200",
    )
    assert row["parameters"] == {"fields": ["consent", "recorded_by"], "consent": True}  # no name

    mark = row["id"]
    erased = httpx.delete(f"{service.url}/v1/interviews/{interview}", headers=key("ops"), timeout=TIMEOUT)
    assert erased.status_code == 200, erased.text
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        "ops",
        "interview_erased",
        interview,
        "200",
    )
    kept = service.ctx.db.audit_entries(interview_id=interview)[0]
    assert [r["action"] for r in kept] == ["interview_uploaded", "facts_changed", "interview_erased"]


def test_get_audit_filters_pages_and_is_recorded_itself(service: RunningService, analysed: str) -> None:
    url = f"{service.url}/v1/audit"
    everything = httpx.get(url, params={"limit": 1000}, headers=key("ci"), timeout=30).json()
    ids = [item["id"] for item in everything["items"]]
    assert ids == sorted(ids) and everything["total"] == len(ids) and everything["next"] is None
    first = everything["items"][0]
    assert first["at"].endswith("+00:00")

    reads = httpx.get(url, params={"actor": "ops", "action": "results_read"}, headers=key("ci"), timeout=30)
    assert reads.status_code == 200
    assert reads.json()["items"] and {(i["actor"], i["action"]) for i in reads.json()["items"]} == {
        ("ops", "results_read")
    }
    one = httpx.get(url, params={"interview_id": 1, "limit": 1}, headers=key("ci"), timeout=30).json()
    assert one["total"] > 1 and len(one["items"]) == 1 and one["items"][0]["interview_id"] == 1
    second = httpx.get(one["next"], headers=key("ci"), timeout=30).json()
    assert second["items"][0]["id"] > one["items"][0]["id"] and second["offset"] == 1

    def page(**filters: str) -> list[int]:
        answer = httpx.get(url, params={"limit": 1000, **filters}, headers=key("ci"), timeout=30)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    at = datetime.fromisoformat(first["at"])
    east = timezone(timedelta(hours=2))  # the same moment written as the time 2 hours east of UTC
    assert page(until=(at - timedelta(seconds=1)).isoformat()) == []
    assert page(until=at.astimezone(east).isoformat())[0] == first["id"]
    assert first["id"] not in page(since=(at + timedelta(microseconds=1)).astimezone(east).isoformat())
    assert page(since=at.replace(tzinfo=None).isoformat())[0] == first["id"]  # no offset: UTC
    assert page(since=(at + timedelta(days=1)).date().isoformat()) == []

    for bad in ({"since": "yesterday"}, {"action": "everything"}, {"actor": "a b"}, {"limit": 0}):
        assert httpx.get(url, params=bad, headers=key("ci"), timeout=30).status_code == 422, bad

    mark = last_id(service)
    httpx.get(url, params={"actor": "ops", "limit": 5}, headers=key("ops"), timeout=30)
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["outcome"]) == ("ops", "audit_read", "200")
    assert row["parameters"] == {"actor": "ops", "limit": "5"}


def test_the_cli_exports_csv_and_json_and_is_recorded(
    service: RunningService, analysed: str, tmp_path: Path
) -> None:
    entries = service.ctx.db.audit_entries(limit=None)[0]
    out = tmp_path / "audit.csv"
    done = service.cli("audit", "export", "--since", "2000-01-01", "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    parsed = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(parsed[0]) == COLUMNS
    assert [int(r["id"]) for r in parsed] == [e["id"] for e in entries]
    requested = next(r for r in parsed if r["job_id"] == analysed and r["action"] == "analysis_requested")
    assert (requested["actor"], requested["model_type"], requested["engine"], requested["outcome"]) == (
        "ci",
        "default",
        "default",
        "202",
    )
    assert json.loads(requested["parameters"]) == {"session_id": 1, "interval": 1.0, "force": False}
    [exported] = rows_after(service, entries[-1]["id"])
    assert (exported["actor"], exported["action"], exported["outcome"]) == (cli_actor(), "audit_read", "ok")
    assert exported["parameters"]["rows"] == len(entries) and exported["parameters"]["format"] == "csv"

    done = service.cli("audit", "export", "--since", "2000-01-01T00:00:00+01:00", "--format", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [item["id"] for item in listed] == [e["id"] for e in entries] + [exported["id"]]
    assert listed[-1]["action"] == "audit_read" and listed[-1]["at"].endswith("+00:00")

    only = service.cli(
        "audit",
        "export",
        "--since",
        "2000-01-01",
        "--action",
        "frame_read",
        "--actor",
        "ci",
        "--format",
        "json",
    )
    assert {(i["actor"], i["action"]) for i in json.loads(only.stdout)} == {("ci", "frame_read")}
    none = service.cli("audit", "export", "--since", "2000-01-01", "--until", "2000-01-02")
    assert (none.returncode, none.stdout) == (0, ",".join(COLUMNS) + "\n")
    bad = service.cli("audit", "export", "--since", "soon")
    assert bad.returncode == 2 and "--since 'soon' is not an ISO 8601 date or time" in bad.stderr


def test_the_cli_report_and_erase_leave_a_row_of_their_user(
    service: RunningService, analysed: str, woman2_mp4: Path, tmp_path: Path
) -> None:
    mark = last_id(service)
    done = service.cli("report", "1", "--out", str(tmp_path / "report.html"))
    assert done.returncode == 0, done.stderr
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        cli_actor(),
        "export_read",
        1,
        "ok",
    )
    assert row["parameters"] == {"format": "html", "command": "report"}

    done = service.cli("ingest", str(woman2_mp4), "--session", "1", "--interview", "77", "--consent")
    assert done.returncode == 0, done.stderr
    mark = one_row(service, row["id"])["id"]
    done = service.cli("erase", "77", "--yes")
    assert done.returncode == 0, done.stderr
    row = one_row(service, mark)
    assert (row["actor"], row["action"], row["interview_id"], row["outcome"]) == (
        cli_actor(),
        "interview_erased",
        77,
        "ok",
    )
    missing = service.cli("erase", "78", "--yes")
    assert missing.returncode != 0
    assert one_row(service, row["id"])["outcome"] == "error"
