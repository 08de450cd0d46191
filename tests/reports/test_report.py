"""``video-emotions report INTERVIEW_ID --out report.html`` on an interview the live service analysed,
opened in headless Chromium with the network cut off."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import chromium
from tests.service import RunningService, run_service
from video_emotions.reports.report import WORDING, plotly_js, render_report, timeline_js

TIMEOUT = 120


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, woman2_mp4: Path) -> Iterator[RunningService]:
    """The service with interview 1 analysed (the README walk-through) and interview 2 only ingested."""
    data = tmp_path_factory.mktemp("service")
    with run_service(data) as running:
        running.ingest_walkthrough(woman2_mp4, 1, 1, 2)
        response = httpx.post(
            f"{running.url}/analyse_video",
            params={"session_id": 1, "interview_id": 1, "model_type": "default"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        yield running


@pytest.fixture(scope="module")
def report(service: RunningService, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = service.cli("report", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_report_refuses_an_unknown_or_unanalysed_interview(service: RunningService, tmp_path: Path) -> None:
    unknown = service.cli("report", "99", "--out", str(tmp_path / "r.html"))
    assert unknown.returncode == 2 and "interview 99 does not exist" in unknown.stderr
    pending = service.cli("report", "2", "--out", str(tmp_path / "r.html"))
    assert pending.returncode == 2 and "interview 2 has not been analysed yet" in pending.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_is_one_file_with_everything_inlined(service: RunningService, report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    stored = service.ctx.db.segment_results(1)
    assert len(stored) == 2
    assert WORDING in text.lower()
    for item in stored:
        assert item["engine"] in text and item["model_sha256"] in text and item["job_id"] in text
        assert item["model_file"] in text
    # plotly.js and timeline.js inlined as they are; nothing loaded from anywhere.
    assert plotly_js() in text and timeline_js() in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b", text, re.IGNORECASE)
    # The only URLs are inside the inlined plotly.js: its licence comments, and in its code the map
    # tiles, attribution links and SVG namespaces of features this chart never uses.
    outside = text.replace(plotly_js(), "")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", outside, re.IGNORECASE)
    assert not re.search(r"https?://", outside), re.findall(r".{40}https?://.{40}", outside)[:3]


def wait_for(driver: object, script: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)  # type: ignore[attr-defined]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_report_renders_offline_in_chromium(service: RunningService, report: Path) -> None:
    candidate = [row["id"] for row in service.ctx.db.results_rows(1) if row["speaker"] == 0]
    with chromium(offline=True) as driver:
        driver.get(report.as_uri())
        traces = wait_for(
            driver, "return document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length"
        )
        assert traces == 7  # every face found: the seven expressions, no "no face" trace
        fills = driver.execute_script(
            "return Array.from(document.querySelectorAll("
            "'.js-plotly-plot .scatterlayer .trace path.js-fill'))"
            ".filter(p => (p.getAttribute('d') || '').length > 10).length"
        )
        assert fills == 7
        names = driver.execute_script("return document.getElementById('timeline').data.map(t => t.name)")
        assert names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        colors = driver.execute_script(
            "return document.getElementById('timeline').data.map(t => t.fillcolor)"
        )
        assert colors == list(driver.execute_script("return Object.values(window.VE_COLORS)"))
        # The table has the candidate's segments, as summaryRows gives them.
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#segments tbody tr')).map(r => r.dataset.segmentId)"
        )
        assert [int(r) for r in rows] == candidate
        summary = driver.execute_script("return VideoEmotionsTimeline.summaryRows(window.VE_DATA)")
        assert [r["segment_id"] for r in summary] == candidate
        assert all(r["face_share"] == 1 and r["frames"] == 3 and r["dominant"] for r in summary)
        cells = driver.execute_script(
            "return Array.from(document.querySelectorAll('#segments tbody tr'))"
            ".map(r => r.cells[5].textContent)"
        )
        assert cells == [r["dominant"] for r in summary]
        # A click on a sample shows it.
        driver.execute_script(
            "document.getElementById('timeline').emit('plotly_click', {points: [{customdata: 0}]})"
        )
        shown = driver.find_element("id", "sample").text
        assert shown.startswith(f"segment {candidate[0]}, sample 0 at 0.000 s: angry ")
        # Nothing was fetched: no resource besides the file itself.
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_timeline_marks_samples_without_a_face(tmp_path: Path) -> None:
    happy = {
        "happy": 80.0,
        "neutral": 20.0,
        "angry": 0.0,
        "disgust": 0.0,
        "fear": 0.0,
        "sad": 0.0,
        "surprise": 0.0,
    }
    frames = [
        {"index": i, "time": t, "faces": 1, "box": [1.0, 2.0, 3.0, 4.0], "score": 0.9, "emotions": happy}
        for i, t in enumerate([0.0, 1.0, 2.0])
    ]
    late = [dict(f, time=f["time"] + 5.0) for f in frames]
    late[1] = dict(late[1], faces=0, box=None, score=None, emotions=None)
    summary = {"frames": 3, "frames_with_face": 3, "usable_share": 1.0, "dominant": "happy", "mean": happy}
    document = {
        "interview_id": 5,
        "session_id": 1,
        "segments": [
            {
                "result_id": 10,
                "start_ms": 0,
                "end_ms": 2000,
                "engine": "default",
                "job_id": "j",
                "summary": summary,
                "frames": frames,
            },
            {
                "result_id": 11,
                "start_ms": 5000,
                "end_ms": 7000,
                "engine": "default",
                "job_id": "j",
                "summary": dict(summary, frames_with_face=2, usable_share=0.6667),
                "frames": late,
            },
        ],
    }
    out = tmp_path / "report.html"
    out.write_text(render_report(document), encoding="utf-8")
    with chromium(offline=True) as driver:
        driver.get(out.as_uri())
        traces = wait_for(
            driver, "return document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length"
        )
        assert traces == 8
        last = driver.execute_script(
            "var d = document.getElementById('timeline').data; return d[d.length - 1]"
        )
        assert last["name"] == "no face" and last["x"] == [6.0] and last["y"] == [0]
        # The areas drop to 0 between the segments, and those points are no sample.
        happy_trace = driver.execute_script("return document.getElementById('timeline').data[3]")
        assert happy_trace["customdata"] == [0, 1, 2, None, None, 3, 4, 5]
        assert happy_trace["y"] == [80, 80, 80, 0, 0, 80, 0, 80]
        shapes = driver.execute_script(
            "return document.getElementById('timeline').layout.shapes.map(s => [s.x0, s.x1])"
        )
        assert shapes == [[0, 2], [5, 7]]
        driver.execute_script(
            "document.getElementById('timeline').emit('plotly_click', {points: [{customdata: 4}]})"
        )
        assert driver.find_element("id", "sample").text == "segment 11, sample 1 at 6.000 s: no face"
        driver.execute_script(
            "document.getElementById('timeline').emit('plotly_click', {points: [{customdata: null}]})"
        )
        assert driver.find_element("id", "sample").text == "segment 11, sample 1 at 6.000 s: no face"
        rows = driver.execute_script("return VideoEmotionsTimeline.summaryRows(window.VE_DATA)")
        assert [(r["segment_id"], r["face_share"], r["dominant"]) for r in rows] == [
            (10, 1.0, "happy"),
            (11, 0.6667, "happy"),
        ]
