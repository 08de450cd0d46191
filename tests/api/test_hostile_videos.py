"""A corpus of malformed and hostile videos against the service as a subprocess, each ingested and
analysed as Interviewz's are: each ends within ``TIME_BOUND_S`` in a clear failure or a valid result,
the service stays up, and its peak resident memory stays under ``RSS_LIMIT_MB``.

Outcomes: ``refused`` (``ingest`` refuses it, exit 2, nothing kept; put in storage by other means,
the service refuses it too: a 4xx that says why), ``failed`` (ingest takes it, the analysis answers a
4xx that says why), ``analysed`` (200, every segment written), ``partial`` (200, what decodes written
and the job's warnings naming what it could not cover). The table of outcomes is printed at the end,
and written as JSON to ``$VE_HOSTILE_OUT`` when set.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.media import (
    audio_only,
    corrupt_middle,
    encode_video,
    face_frame,
    faststart_copy,
    grow_mid_stream,
    huge_dimensions,
    mp4_boxes,
    patch_fourcc,
    rotated_video,
    truncate,
    vfr_video,
    webm_video,
)
from tests.service import RunningService, run_service
from video_emotions.domain import EMOTIONS, NO_FACE_KEY, Segment
from video_emotions.storage.blobs import video_key

pytestmark = pytest.mark.slow

#: Seconds each case may take, ingest and analysis together.
TIME_BOUND_S = 60.0
#: The service's peak resident memory after the whole corpus, in MiB.
RSS_LIMIT_MB = 1024.0
#: How far one case may raise the service's peak (MiB): a video must not cost memory by its size
#: alone (loading the engine, on the first analysis, takes about 100).
CASE_RSS_GROWTH_MB = 256.0
SESSION = 1
#: The source recording's length (seconds): a face, 10 frames a second, a keyframe every second (the
#: keyframes hold most of the bytes: cuts at a few offsets land in different seconds).
SOURCE_SECONDS = 6.0
FPS = 10
#: One-second segments over the source recording (ms).
SECONDS_OF_SOURCE = [(1000 * i, 1000 * (i + 1)) for i in range(int(SOURCE_SECONDS))]
KEY = re.compile(r"^frame_(\d{5})_(\d+\.\d{3})_seconds$")


@dataclass(frozen=True)
class Sources:
    """The recording the cases are made from, with its index (moov) last and first."""

    index_last: Path
    index_first: Path


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Sources, Path], Path]
    #: The outcomes accepted (more than one where FFmpeg may reasonably take either way).
    expect: frozenset[str]
    #: What a refusal or a failure must say.
    message: str = ""
    #: Segments (ms) to ingest; None: the whole video, as ingest's default.
    segments: list[tuple[int, int]] | None = None
    #: Whether the face must be found in every sample (an intact picture of it, upright as shown).
    faces: bool = False


def _write(data: bytes) -> Callable[[Sources, Path], Path]:
    def build(_sources: Sources, target: Path) -> Path:
        target.write_bytes(data)
        return target

    return build


def _cut_before_first_frame(sources: Sources, target: Path) -> Path:
    """The index whole, then only the first 100 bytes of the media data."""
    raw = sources.index_first.read_bytes()
    offset, header, _ = mp4_boxes(raw)["/mdat"]
    target.write_bytes(raw[: offset + header + 100])
    return target


def _cut_inside_index(sources: Sources, target: Path) -> Path:
    raw = sources.index_first.read_bytes()
    offset, _, size = mp4_boxes(raw)["/moov"]
    target.write_bytes(raw[: offset + size // 2])
    return target


REFUSED = frozenset({"refused"})
NOT_VIDEO = "does not decode as video"
CASES = [
    Case("zero-bytes", _write(b""), REFUSED, NOT_VIDEO),
    Case("random-bytes-named-mp4", _write(np.random.default_rng(7).bytes(200_000)), REFUSED, NOT_VIDEO),
    Case("text-named-mp4", _write(b"name,start,end\nalice,0,1000\n" * 200), REFUSED, NOT_VIDEO),
    Case("index-last-cut-at-50%", lambda s, t: truncate(s.index_last, 0.5, t), REFUSED, NOT_VIDEO),
    Case("index-last-cut-at-90%", lambda s, t: truncate(s.index_last, 0.9, t), REFUSED, NOT_VIDEO),
    Case("index-first-cut-inside-the-index", _cut_inside_index, REFUSED, NOT_VIDEO),
    Case("index-first-cut-before-the-first-frame", _cut_before_first_frame, REFUSED, NOT_VIDEO),
    *(
        Case(
            f"index-first-cut-at-{percent}%",
            lambda s, t, p=percent: truncate(s.index_first, p / 100, t),
            frozenset({"partial"}),
            segments=SECONDS_OF_SOURCE,
        )
        for percent in (40, 55, 90)
    ),
    Case(
        "declares-16000x16000-frames",
        lambda s, t: huge_dimensions(s.index_last, t, width=16000, height=16000),
        REFUSED,
        "declares 16000x16000 frames",
    ),
    Case(
        "frames-grow-to-8192x8192-mid-stream",
        lambda s, t: grow_mid_stream(s.index_last, t, width=8192, height=8192),
        frozenset({"partial"}),
        segments=SECONDS_OF_SOURCE,
    ),
    Case("audio-only", lambda _s, t: audio_only(t, 3.0), REFUSED, "no video stream"),
    Case(
        "variable-frame-rate",
        lambda _s, t: vfr_video(t, [0.033, 0.034, 0.033, 0.1, 0.033, 0.4, 0.033, 0.066], repeat=5),
        frozenset({"analysed"}),
        faces=True,
    ),
    # Stored sideways, shown upright (a phone held upright): analysed as shown.
    Case("rotated-90-degrees", lambda _s, t: rotated_video(t, 3.0), frozenset({"analysed"}), faces=True),
    Case("one-frame", lambda _s, t: encode_video(t, [face_frame()]), frozenset({"analysed"}), faces=True),
    Case(
        "4kb-of-noise-in-the-middle-gop",
        lambda s, t: corrupt_middle(s.index_last, t, size=4096),
        frozenset({"analysed", "partial"}),
        segments=SECONDS_OF_SOURCE,
    ),
    Case(
        "16kb-of-noise-in-the-middle-gop",
        lambda s, t: corrupt_middle(s.index_last, t, size=16384),
        frozenset({"analysed", "partial"}),
        segments=SECONDS_OF_SOURCE,
    ),
    Case(
        "h264-labelled-vp8",
        lambda s, t: patch_fourcc(s.index_last, b"vp08", t),
        frozenset({"refused", "failed"}),
        NOT_VIDEO,
    ),
    Case("webm-named-mp4", lambda _s, t: webm_video(t, 3.0), frozenset({"analysed"}), faces=True),
    Case(
        "webm-declaring-10-hours",
        lambda _s, t: webm_video(t, 3.0, declare_seconds=36_000),
        frozenset({"partial"}),
        # Within the 3 s of frames, after them, and 5 h in (all within the 10 h declared).
        segments=[(0, 1000), (1000, 2000), (2000, 4000), (60_000, 61_000), (18_000_000, 18_001_000)],
    ),
]


@dataclass
class Observed:
    case: str
    outcome: str
    seconds: float
    #: The service's peak RSS (MiB) so far, once the case is done.
    peak_rss_mb: float
    detail: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with run_service(tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    folder = tmp_path_factory.mktemp("sources")
    frames = (face_frame() for _ in range(round(SOURCE_SECONDS * FPS)))
    last = encode_video(folder / "index_last.mp4", frames, fps=FPS, gop=FPS)
    return Sources(last, faststart_copy(last, folder / "index_first.mp4"))


@pytest.fixture(scope="module")
def ledger() -> list[Observed]:
    return []


def _assert_clean(text: str, *paths: Path) -> None:
    """A message for a caller: no traceback, none of these server paths."""
    assert "Traceback" not in text, text
    for path in paths:
        assert str(path.resolve()) not in text and str(path) not in text, text


def _assert_valid_rows(
    service: RunningService, interview: int, warnings: list[dict[str, Any]], *, faces: bool
) -> None:
    """Every candidate row is written with valid frames (each with a face, with ``faces``), or left
    empty with a warning saying so."""
    uncovered = {w["segment_id"] for w in warnings if not w["segment_analysed"]}
    rows = service.ctx.db.results_rows(interview)
    assert rows
    for row in rows:
        frames = row["video_emotions"]
        if row["id"] in uncovered:
            assert frames is None, row
            continue
        assert frames, row
        indices, times = [], []
        for key, values in frames.items():
            match = KEY.match(key)
            assert match is not None, key
            indices.append(int(match[1]))
            times.append(float(match[2]))
            assert not faces or values != {NO_FACE_KEY: 0.0}, (key, values)
            if values != {NO_FACE_KEY: 0.0}:  # else the legacy marker: no face in that frame
                assert set(values) == set(EMOTIONS), values
                assert abs(sum(values.values()) - 100.0) <= 0.5, values
        assert indices == list(range(len(frames))) and times == sorted(times)
        # The first sample is the first frame at or after the segment's start (the video's last
        # frame for a segment starting within that frame): never a frame from well before it.
        assert times[0] >= row["start"] / 1000 - 0.2, (row["start"], times)


def _ingest(service: RunningService, video: Path, interview: int, case: Case) -> tuple[int, str]:
    args = ["ingest", str(video), "--session", str(SESSION), "--interview", str(interview)]
    if case.segments is not None:
        segments = video.with_suffix(".segments.json")
        segments.write_text(json.dumps([{"start": start, "end": end} for start, end in case.segments]))
        args += ["--segments", str(segments)]
    done = service.cli(*args)
    return done.returncode, done.stderr


def _post(service: RunningService, interview: int) -> httpx.Response:
    return httpx.post(
        f"{service.url}/analyse_video",
        params={"session_id": SESSION, "interview_id": interview},
        timeout=TIME_BOUND_S,
    )


def _assert_refusal_answer(
    service: RunningService, response: httpx.Response, interview: int, case: Case, folder: Path
) -> str:
    """A 4xx that says what is wrong, on a failed job with the same reason; nothing written."""
    assert 400 <= response.status_code < 500, response.text
    _assert_clean(response.text, service.settings.data_dir, folder)
    detail = response.json()["detail"]
    assert case.message in detail, detail
    job = service.ctx.db.job(response.headers["x-job-id"])
    assert job is not None and (job.status, job.error) == ("failed", detail)
    assert all(row["video_emotions"] is None for row in service.ctx.db.results_rows(interview))
    return detail


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_hostile_video_ends_in_a_clear_failure_or_a_valid_result(
    service: RunningService, sources: Sources, ledger: list[Observed], tmp_path: Path, case: Case
) -> None:
    number = CASES.index(case) + 1
    interview = 100 + number
    video = case.build(sources, tmp_path / f"{case.id}.mp4")
    before = service.peak_rss_mb()
    clock = time.monotonic()
    status, stderr = _ingest(service, video, interview, case)
    detail = ""
    if status != 0:
        outcome = "refused"
        seconds = time.monotonic() - clock
        assert status == 2, stderr
        _assert_clean(stderr, service.settings.data_dir)  # the CLI may name the file it was given
        assert "error:" in stderr and case.message in stderr, stderr
        key = video_key(SESSION, interview, service.settings.video_filename)
        assert service.ctx.db.interview(interview) is None and not service.ctx.blobs.exists(key)
        # Put in storage by other means (as Interviewz does), the service refuses it too.
        direct = 500 + number
        given = case.segments or [(0, 1000)]
        service.ctx.db.ingest(
            session_id=SESSION,
            interview_id=direct,
            segments=[Segment(0, a / 1000, b / 1000) for a, b in given],
        )
        service.ctx.blobs.put(video_key(SESSION, direct, service.settings.video_filename), video)
        clock = time.monotonic()
        response = _post(service, direct)
        seconds += time.monotonic() - clock
        detail = _assert_refusal_answer(service, response, direct, case, tmp_path)
    else:
        response = _post(service, interview)
        seconds = time.monotonic() - clock
        assert response.status_code < 500, response.text
        _assert_clean(response.text, service.settings.data_dir, tmp_path)
        if response.status_code != 200:
            outcome = "failed"
            detail = _assert_refusal_answer(service, response, interview, case, tmp_path)
        else:
            job = service.ctx.db.job(response.headers["x-job-id"])
            assert job is not None and job.status == "succeeded"
            warnings = job.warnings or []
            outcome = "partial" if warnings else "analysed"
            detail = "; ".join(w["message"] for w in warnings)
            _assert_clean(detail, service.settings.data_dir, tmp_path)
            _assert_valid_rows(service, interview, warnings, faces=case.faces)
            if warnings:
                _assert_warnings_name_what_is_missing(service, interview, warnings)
            if case.id.startswith("index-first-cut-at-"):
                _assert_covers_what_decodes(service, interview, warnings)
    peak = service.peak_rss_mb()
    ledger.append(Observed(case.id, outcome, round(seconds, 2), round(peak, 1), detail))
    assert outcome in case.expect, detail
    assert seconds < TIME_BOUND_S
    assert peak - before < CASE_RSS_GROWTH_MB, (before, peak)
    assert service.process is not None and service.process.poll() is None
    assert httpx.get(f"{service.url}/health", timeout=10).json() == {"status": "ok"}


def _assert_warnings_name_what_is_missing(
    service: RunningService, interview: int, warnings: list[dict[str, Any]]
) -> None:
    rows = {row["id"]: row for row in service.ctx.db.results_rows(interview)}
    until = {w["decoded_until_s"] for w in warnings}
    assert len(until) == 1
    for warning in warnings:
        row = rows[warning["segment_id"]]
        assert row["end"] / 1000 > warning["decoded_until_s"]  # a segment reaching past the end
        assert warning["samples_not_analysed"] >= 1
        assert warning["segment_analysed"] is (row["video_emotions"] is not None)
        assert "stops decoding" in warning["message"]


def _assert_covers_what_decodes(
    service: RunningService, interview: int, warnings: list[dict[str, Any]]
) -> None:
    """Cut with the index first: the segments before the cut written, the job naming the rest."""
    (until,) = {w["decoded_until_s"] for w in warnings}
    rows = service.ctx.db.results_rows(interview)
    warned = {w["segment_id"] for w in warnings}
    before = [row for row in rows if row["end"] / 1000 <= until]
    after = [row for row in rows if row["start"] / 1000 > until]
    assert before and after
    assert all(row["video_emotions"] and row["id"] not in warned for row in before)
    assert all(row["video_emotions"] is None and row["id"] in warned for row in after)


def test_the_service_survived_the_corpus(
    service: RunningService, ledger: list[Observed], capsys: pytest.CaptureFixture[str]
) -> None:
    """Still up and answering, its peak memory under the limit; the table of what each case did."""
    assert service.process is not None and service.process.poll() is None
    assert httpx.get(f"{service.url}/health", timeout=10).json() == {"status": "ok"}
    peak = service.peak_rss_mb()
    width = max((len(o.case) for o in ledger), default=4)
    lines = [
        f"{'case':<{width}}  {'outcome':<8}  seconds  peak RSS (MiB)",
        *(f"{o.case:<{width}}  {o.outcome:<8}  {o.seconds:7.2f}  {o.peak_rss_mb:6.0f}" for o in ledger),
        f"{len(ledger)} of {len(CASES)} cases; peak RSS {peak:.0f} MiB (limit {RSS_LIMIT_MB:.0f})",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    out = os.environ.get("VE_HOSTILE_OUT")
    if out:
        report = {
            "time_bound_s": TIME_BOUND_S,
            "peak_rss_mb": round(peak, 1),
            "rss_limit_mb": RSS_LIMIT_MB,
            "cases": [o.__dict__ for o in ledger],
        }
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    assert peak < RSS_LIMIT_MB
