"""A recording cut short (its index lists more frames than the file holds) is analysed as far as it
decodes: what lies past the last frame that decodes is reported, everything before it written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.media import face_video, faststart_copy
from tests.service import RunningService, run_service
from video_emotions.video.sampler import probe

TIMEOUT = 120


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(tmp_path_factory.mktemp("truncated")) as running:
        yield running


def cut_recording(folder: Path) -> Path:
    """Six seconds of a face with the index first, cut at 40% of its bytes: it decodes to about 2 s."""
    whole = faststart_copy(face_video(folder / "long.mp4", 6.0), folder / "whole.mp4").read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(whole[: int(0.4 * len(whole))])
    return cut


def test_a_recording_cut_short_is_written_up_to_where_it_decodes(
    service: RunningService, tmp_path: Path
) -> None:
    cut = cut_recording(tmp_path)
    assert probe(cut).duration == pytest.approx(6.0, abs=0.2)  # the header still says 6 s
    segments = tmp_path / "segments.json"
    # Wholly before the cut, across it, wholly after it (but before the end the header declares).
    segments.write_text(
        json.dumps([{"start": 0, "end": 1000}, {"start": 1000, "end": 4000}, {"start": 4500, "end": 5500}])
    )
    done = service.cli("ingest", str(cut), "--session", "1", "--interview", "1", "--segments", str(segments))
    assert done.returncode == 0, done.stderr

    response = httpx.post(
        f"{service.url}/analyse_video", params={"session_id": 1, "interview_id": 1}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    rows = service.ctx.db.results_rows(1)
    before, across, after = (row["video_emotions"] for row in rows)
    assert before and across and after is None
    assert service.ctx.db.interview(1)["video_ok"] is True

    job = service.ctx.db.job(response.headers["x-job-id"])
    assert job is not None and job.status == "succeeded"
    warnings = job.warnings or []
    assert [(w["segment_id"], w["segment_analysed"]) for w in warnings] == [
        (rows[1]["id"], True),
        (rows[2]["id"], False),
    ]
    until = warnings[0]["decoded_until_s"]
    assert 1.0 < until < 4.0 and all(w["decoded_until_s"] == until for w in warnings)
    # The segment across the cut is closed by the last frame that decodes, and says what it missed.
    last_key = list(across)[-1]
    assert last_key.endswith(f"_{until:.3f}_seconds")
    assert warnings[0]["samples_not_analysed"] >= 1 and warnings[1]["samples_not_analysed"] >= 1
    assert all("stops decoding" in w["message"] for w in warnings)

    view = httpx.get(f"{service.url}/v1/interviews/1/emotions", timeout=30).json()
    assert view["warnings"] == warnings
    assert [s["result_id"] for s in view["segments"]] == [rows[0]["id"], rows[1]["id"]]
    record = httpx.get(f"{service.url}/v1/analyses/{job.id}", timeout=30).json()
    assert record["warnings"] == warnings
    log = service.ctx.blobs.get(job.log_key).decode()
    assert log.count("WARNING: segment") == 2 and "not wholly analysed" in log


def test_a_recording_of_which_no_segment_decodes_fails_with_the_reason(
    service: RunningService, tmp_path: Path
) -> None:
    cut = cut_recording(tmp_path)
    segments = tmp_path / "segments.json"
    segments.write_text(json.dumps([{"start": 4500, "end": 5500}]))
    done = service.cli("ingest", str(cut), "--session", "1", "--interview", "2", "--segments", str(segments))
    assert done.returncode == 0, done.stderr
    response = httpx.post(
        f"{service.url}/analyse_video", params={"session_id": 1, "interview_id": 2}, timeout=TIMEOUT
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("none of the candidate segments decodes: segment ")
    assert "lies after" in detail and "where the video stops decoding" in detail
    assert all(row["video_emotions"] is None for row in service.ctx.db.results_rows(2))
    assert service.ctx.db.interview(2)["video_ok"] is False
