"""The live service with VE_LOG_FORMAT=json: every line of its log is a JSON object, the lines of a
run carry its job id, and /metrics shows jobs, samples, stages, inference and HTTP latency (by route
template). With the text format its lines stay as they were."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service import RunningService, run_service, write_walkthrough_segments

TIMEOUT = 120


def analyse_walkthrough(service: RunningService, woman2_mp4: Path) -> httpx.Response:
    """Ingest woman2.mp4 with the README walk-through's segments, then POST /analyse_video."""
    segments = write_walkthrough_segments(service.log.parent / "segments.json")
    done = service.cli(
        "ingest", str(woman2_mp4), "--session", "1", "--interview", "1", "--segments", str(segments)
    )
    assert done.returncode == 0, done.stderr
    params = {"session_id": 1, "interview_id": 1, "model_type": "default"}
    response = httpx.post(f"{service.url}/analyse_video", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory, woman2_mp4: Path) -> Iterator[dict[str, Any]]:
    """The JSON service after one walk-through run and a few more requests: its log (read after it
    stopped), its /metrics page and the run's job id."""
    with run_service(tmp_path_factory.mktemp("json-service"), VE_LOG_FORMAT="json") as service:
        job_id = analyse_walkthrough(service, woman2_mp4).headers["X-Job-Id"]
        # Routes with ids in their paths, and one that matches nothing.
        assert httpx.get(f"{service.url}/v1/analyses/{job_id}").status_code == 200
        assert httpx.get(f"{service.url}/v1/jobs/{job_id}").status_code == 200
        assert httpx.get(f"{service.url}/v1/interviews/1/emotions").status_code == 200
        assert httpx.get(f"{service.url}/no/such/{job_id}").status_code == 404
        metrics = httpx.get(f"{service.url}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        openapi = httpx.get(f"{service.url}/openapi.json").json()
    yield {"job_id": job_id, "log": service.log.read_text(), "metrics": metrics.text, "openapi": openapi}


def test_every_line_of_the_log_is_a_json_object(json_run: dict[str, Any]) -> None:
    lines = json_run["log"].splitlines()
    assert len(lines) > 10
    for line in lines:
        document = json.loads(line)
        assert {"time", "level", "logger", "message"} <= document.keys(), line
        assert document["time"].endswith("Z")
    loggers = {json.loads(line)["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "video_emotions.jobs.runner"} <= loggers


def test_the_lines_of_the_run_carry_its_job_id(json_run: dict[str, Any]) -> None:
    job_id = json_run["job_id"]
    lines = [json.loads(line) for line in json_run["log"].splitlines()]
    runner = [line for line in lines if line["logger"] == "video_emotions.jobs.runner"]
    assert runner and all((line.get("job_id"), line.get("chunk")) == (job_id, 0) for line in runner)
    messages = [line["message"] for line in runner]
    assert any(m.startswith("chunk 0, attempt 1") for m in messages)
    assert any(m.startswith("wrote 2 segments") for m in messages)
    # A line that names the job belongs to it (access log lines name paths, not jobs).
    for line in lines:
        if job_id in line["message"] and line["logger"] != "uvicorn.access":
            assert line.get("job_id") == job_id, line
    access = [line["message"] for line in lines if line["logger"] == "uvicorn.access"]
    assert any('"POST /analyse_video?session_id=1&interview_id=1&model_type=default' in m for m in access)


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Any, name: str, **labels: str) -> float:
    matches = [s.value for s in family.samples if s.name == name and labels.items() <= s.labels.items()]
    assert matches, f"no {name} {labels} in {family.samples}"
    return sum(matches)


def test_metrics_show_jobs_samples_stages_inference_and_http(json_run: dict[str, Any]) -> None:
    found = families(json_run["metrics"])
    assert value(found["video_emotions_jobs"], "video_emotions_jobs", state="succeeded") >= 1
    assert value(found["video_emotions_jobs"], "video_emotions_jobs", state="failed") == 0
    samples = found["video_emotions_samples_analysed"]
    assert value(samples, "video_emotions_samples_analysed_total") >= 6  # 3 + 3 in the walk-through
    stages = found["video_emotions_stage_seconds"]
    for stage in ("download", "analyse", "write"):
        assert value(stages, "video_emotions_stage_seconds_count", stage=stage) >= 1, stage
    model = found["video_emotions_model_seconds"]
    assert value(model, "video_emotions_model_seconds_count", engine="default") >= 1
    assert value(model, "video_emotions_model_seconds_sum", engine="default") > 0
    http = found["video_emotions_http_request_seconds"]
    count = "video_emotions_http_request_seconds_count"
    assert value(http, count, method="POST", route="/analyse_video", status="200") == 1
    assert value(http, count, method="GET", route="/v1/analyses/{job_id}", status="200") == 1
    assert value(http, count, method="GET", route="/v1/jobs/{job_id}", status="200") == 1
    assert value(http, count, method="GET", route="unmatched", status="404") == 1
    routes = {s.labels["route"] for s in http.samples}
    assert not any(json_run["job_id"] in route or "/1/" in route or "/no/such" in route for route in routes)


def test_metrics_are_not_in_the_openapi_schema(json_run: dict[str, Any]) -> None:
    assert "/metrics" not in json_run["openapi"]["paths"]


TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) [\w.]+: ")


def test_the_text_format_prints_plain_lines(tmp_path: Path, woman2_mp4: Path) -> None:
    with run_service(tmp_path / "text-service") as service:
        analyse_walkthrough(service, woman2_mp4)
    lines = service.log.read_text().splitlines()
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    wrote = "video_emotions.jobs.runner: wrote 2 segments"
    assert any(TEXT_LINE.match(line) and wrote in line for line in lines)
    # uvicorn's own format, as before.
    access = re.compile(r'^INFO: +127\.0\.0\.1:\d+ - "POST /analyse_video\?.* 200 OK$')
    assert any(access.match(line) for line in lines)
