"""Schemathesis against the live service's own OpenAPI document: every operation, generated valid
and invalid requests, no 5xx and every answer as the document declares it (status, content type,
body schema).

The service runs on the embedded default with woman2.mp4 ingested as interview 1 of session 1, so
the generated ids that are 1 reach a real interview (and start real, short analyses). Hypothesis is
derandomized, without an example database, so every run sends the same requests. Each operation
gets a Hypothesis test of its own from ``APIOperation.as_strategy`` (``schemathesis.pytest.
from_fixture`` fails on pytest 9, whose nodes have no ``_nodeid``), and every failure is reported.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.service import RunningService, run_service, write_walkthrough_segments

#: Generated requests per operation and mode (valid, invalid) at most; one without parameters takes fewer.
MAX_EXAMPLES = 150
#: Requests the whole run must send.
MIN_REQUESTS = 1000
#: Seconds one request may take: /analyse_video answers once its analysis is written.
REQUEST_TIMEOUT = 120
#: The operations on a job id, run once more for each job the run made (the last cancels it, or
#: answers 409 once it has ended).
JOB_OPERATIONS = ("GET /v1/analyses/{job_id}", "GET /v1/jobs/{job_id}", "DELETE /v1/analyses/{job_id}")
#: The operations that erase an interview (interview 1 and its jobs, which the others reach): fuzzed last.
ERASING = ("DELETE /v1/interviews/{interview_id}",)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, woman2_mp4: Path) -> Iterator[RunningService]:
    data = tmp_path_factory.mktemp("fuzz")
    with run_service(data) as running:
        segments = write_walkthrough_segments(data / "segments.json")
        done = running.cli(
            "ingest", str(woman2_mp4), "--session", "1", "--interview", "1", "--segments", str(segments)
        )
        assert done.returncode == 0, done.stderr
        yield running


def fuzz(
    operation: APIOperation, mode: GenerationMode, base_url: str, answers: Counter[tuple[str, int]]
) -> None:
    """Up to MAX_EXAMPLES requests of ``mode`` to ``operation``, each checked (``answers`` counts them
    by operation and status); raises on a failure."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=REQUEST_TIMEOUT)
        answers[operation.label, response.status_code] += 1

    run()


@pytest.mark.slow
def test_every_operation_answers_as_documented(service: RunningService) -> None:
    """No 5xx, and status, content type and body as the document declares them, for at least
    MIN_REQUESTS generated requests over every operation of the live service's document."""
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    answers: Counter[tuple[str, int]] = Counter()
    failures: dict[str, str] = {}
    started = time.monotonic()

    def fuzz_each(chosen: list[APIOperation]) -> None:
        for operation in chosen:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, mode, service.url, answers)
                except Unsatisfiable:
                    # No invalid request exists (no parameters, or a path any string fits).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (Exception, FailureGroup) as exc:  # every operation runs: report all failures
                    failures[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {exc}"

    # Erasing interview 1 takes its jobs with it: those operations run last, after the job ids'.
    fuzz_each([operation for operation in operations if operation.label not in ERASING])
    # Generated UUIDs name no job: each job the run made, through every operation on a job id.
    by_label = {operation.label: operation for operation in operations}
    for job in httpx.get(f"{service.url}/v1/analyses", params={"limit": 200}, timeout=30).json()["items"]:
        for label in JOB_OPERATIONS:
            try:
                case = by_label[label].Case(path_parameters={"job_id": job["id"]})
                response = case.call_and_validate(
                    base_url=service.url, checks=CHECKS, timeout=REQUEST_TIMEOUT
                )
                answers[label, response.status_code] += 1
            except (Exception, FailureGroup) as exc:
                failures[f"{label} (job {job['id']})"] = f"{type(exc).__name__}: {exc}"
    fuzz_each([operation for operation in operations if operation.label in ERASING])
    elapsed = time.monotonic() - started
    sent = Counter[str]()
    for (label, _status), count in answers.items():
        sent[label] += count
    print(f"\nfuzz: {sum(sent.values())} requests in {elapsed:.0f} s")
    for (label, status), count in sorted(answers.items()):
        print(f"  {label}: {status} x {count}")
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert set(sent) == {operation.label for operation in operations}
    assert sum(sent.values()) >= MIN_REQUESTS, sent
    # Some generated requests reached the interview and ran (or joined) real analyses.
    assert answers["POST /analyse_video", 200] and answers["POST /v1/analyses", 202], answers
    assert answers["GET /v1/analyses/{job_id}", 200] and answers["GET /v1/jobs/{job_id}", 200], answers
    assert answers["DELETE /v1/interviews/{interview_id}", 200], answers  # it erased interview 1
