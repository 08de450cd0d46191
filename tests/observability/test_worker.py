"""A real Celery worker (Redis broker, the embedded database and storage shared with the service) with
VE_LOG_FORMAT=json and ``--metrics-port``: Celery's own lines are JSON too, the chunk's lines carry
the job id, and the worker's metrics (its prefork child's, through PROMETHEUS_MULTIPROC_DIR) show the
analysis while the API's show the jobs by state and none of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.jobs.conftest import redis_url, run_worker
from tests.observability.test_service import analyse_walkthrough, families, value
from tests.service import free_port, run_service, service_env

__all__ = ["redis_url"]


def test_a_json_worker_with_metrics(tmp_path: Path, redis_url: str, woman2_mp4: Path) -> None:
    data_dir = tmp_path / "data"
    celery = {"VE_EXECUTOR": "celery", "VE_BROKER_URL": redis_url, "VE_QUEUE": f"ve-obs-{free_port()}"}
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_4194999.db").write_bytes(b"")  # an earlier run's: cleared at start
    port = free_port()
    with run_service(data_dir, VE_LOG_FORMAT="json", **celery) as service:
        env = service_env(data_dir, VE_LOG_FORMAT="json", PROMETHEUS_MULTIPROC_DIR=str(multiproc), **celery)
        with run_worker(
            env, "obs1", log_dir=tmp_path / "logs", options=["--metrics-port", str(port)]
        ) as worker:
            assert not (multiproc / "counter_4194999.db").exists()
            job_id = analyse_walkthrough(service, woman2_mp4).headers["X-Job-Id"]
            worker_metrics = families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            api_metrics = families(httpx.get(f"{service.url}/metrics", timeout=10).text)
        log = worker.log_text()

    # The analysis ran in the worker's pool child: its values reach the worker's port.
    samples = worker_metrics["video_emotions_samples_analysed"]
    assert value(samples, "video_emotions_samples_analysed_total") >= 6
    stages = worker_metrics["video_emotions_stage_seconds"]
    for stage in ("download", "analyse", "write"):
        assert value(stages, "video_emotions_stage_seconds_count", stage=stage) >= 1, stage
    model = worker_metrics["video_emotions_model_seconds"]
    assert value(model, "video_emotions_model_seconds_count", engine="default") >= 1
    # The API: jobs by state from the database and its HTTP latency; no analysis of its own.
    assert value(api_metrics["video_emotions_jobs"], "video_emotions_jobs", state="succeeded") == 1
    assert value(api_metrics["video_emotions_samples_analysed"], "video_emotions_samples_analysed_total") == 0
    http = api_metrics["video_emotions_http_request_seconds"]
    assert value(http, "video_emotions_http_request_seconds_count", route="/analyse_video", status="200") == 1

    lines = [json.loads(line) for line in log.splitlines()]  # every line, Celery's included
    by_logger = {line["logger"] for line in lines}
    assert "celery.apps.worker" in by_logger, by_logger  # "celery@obs1 ready."
    assert any(line["message"] == "celery@obs1 ready." for line in lines)
    assert any("Task video_emotions.run_chunk" in line["message"] for line in lines)
    runner = [line for line in lines if line["logger"] == "video_emotions.jobs.runner"]
    assert any(line["message"].startswith("wrote 2 segments") for line in runner)
    assert all((line.get("job_id"), line.get("chunk")) == (job_id, 0) for line in runner)
    assert any(line["logger"] == "video_emotions.observability.metrics" for line in lines)


def test_without_the_multiprocess_folder_the_worker_says_what_its_metrics_miss(
    tmp_path: Path, redis_url: str
) -> None:
    env = service_env(
        tmp_path, VE_LOG_FORMAT="json", VE_EXECUTOR="celery", VE_BROKER_URL=redis_url, VE_QUEUE="ve-obs-none"
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    with run_worker(env, "obs2", log_dir=tmp_path / "logs", options=["--metrics-port", str(port)]) as worker:
        found = families(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    # This main process's own values only (no chunk runs here with a prefork pool).
    assert value(found["video_emotions_samples_analysed"], "video_emotions_samples_analysed_total") == 0
    assert "process_cpu_seconds" in found
    lines = worker.log_text().splitlines()
    warnings = [json.loads(line) for line in lines if "PROMETHEUS_MULTIPROC_DIR" in line]
    assert warnings and warnings[0]["level"] == "WARNING"
