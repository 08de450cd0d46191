"""What the web page needs, through the live service: the interview list, uploading a video (and its
segments), the per-frame CSV, a frame with the face box drawn, the model card, and the page itself
loading without a key."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.media import face_video, faststart_copy, truncate
from tests.service import WALKTHROUGH_SEGMENTS, RunningService, run_service
from video_emotions.api.auth import hash_key
from video_emotions.domain import EMOTIONS, Segment
from video_emotions.video.sampler import sample_frames

TIMEOUT = 120
FINAL = ("succeeded", "failed", "cancelled")
#: The CSV's columns, as the page and a spreadsheet read them.
COLUMNS = [
    "interview_id",
    "segment_id",
    "segment_start_ms",
    "segment_end_ms",
    "time_s",
    "face_found",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "detector_score",
    *EMOTIONS,
]
KEY = "a-key-for-the-page-tests"
#: The small service's upload bound (MB): a 1 s face video fits, a 3 s one does not.
SMALL_UPLOAD_MB = "0.05"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    data = tmp_path_factory.mktemp("interviews")
    (data / "tmp").mkdir()
    with run_service(data, TMPDIR=str(data / "tmp")) as running:
        yield running


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """Uploads bounded at SMALL_UPLOAD_MB (a segments file at 0.01 MB), API keys required, engines that
    cannot run refused."""
    data = tmp_path_factory.mktemp("small")
    (data / "tmp").mkdir()
    with run_service(
        data,
        TMPDIR=str(data / "tmp"),
        VE_MAX_UPLOAD_MB=SMALL_UPLOAD_MB,
        VE_MAX_REQUEST_MB="0.01",
        VE_API_KEYS=f"t:{hash_key(KEY)}",
        VE_STRICT_MODELS="true",
    ) as running:
        yield running


def upload(
    service: RunningService,
    video: Path | bytes,
    *,
    segments: list[dict[str, Any]] | str | None = None,
    name: str = "interview.mp4",
    headers: dict[str, str] | None = None,
    **fields: object,
) -> httpx.Response:
    raw = video.read_bytes() if isinstance(video, Path) else video
    files: dict[str, tuple[str, bytes, str]] = {"video": (name, raw, "video/mp4")}
    if segments is not None:
        text = segments if isinstance(segments, str) else json.dumps(segments)
        files["segments"] = ("segments.json", text.encode(), "application/json")
    data = {key: str(value) for key, value in fields.items()}
    return httpx.post(
        f"{service.url}/v1/interviews", files=files, data=data, headers=headers, timeout=TIMEOUT
    )


def uploads_left(service: RunningService) -> list[Path]:
    """What uploads left in the service's temporary folder (TMPDIR)."""
    return list((service.settings.data_dir / "tmp").glob("video-emotions-*"))


def stored_files(service: RunningService) -> list[str]:
    """Every object in the embedded bucket, and what uploads left in the service's temporary folder."""
    data = service.settings.data_dir
    return sorted(str(p.relative_to(data)) for p in [*data.glob("storage/**/*"), *uploads_left(service)])


def nothing_changed(service: RunningService, before: tuple[int, list[str]], interview_id: int) -> None:
    total, files = before
    assert service.ctx.db.interview(interview_id) is None
    assert service.ctx.db.list_interviews()[1] == total
    # A 413 for a chunked body is answered while the upload is read: its temporary folder goes a
    # moment later, when the handler sees the body end.
    deadline = time.monotonic() + 10
    while stored_files(service) != files and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored_files(service) == files


def snapshot(service: RunningService) -> tuple[int, list[str]]:
    return service.ctx.db.list_interviews()[1], stored_files(service)


def analyse(service: RunningService, session_id: int, interview_id: int) -> dict[str, Any]:
    """Queue an analysis and wait until the list shows it ended; the interview's record then."""
    queued = httpx.post(
        f"{service.url}/v1/analyses",
        json={"session_id": session_id, "interview_id": interview_id, "model_type": "default"},
        timeout=TIMEOUT,
    )
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + TIMEOUT
    while True:
        record = httpx.get(f"{service.url}/v1/interviews/{interview_id}", timeout=30).json()
        if record["state"] in FINAL or time.monotonic() > deadline:
            break
        assert record["state"] in ("queued", "running"), record
        time.sleep(0.3)
    assert record["job_id"] == queued.json()["id"]
    return record


def listed(service: RunningService, interview_id: int) -> dict[str, Any]:
    page = httpx.get(f"{service.url}/v1/interviews", params={"limit": 200}, timeout=30).json()
    return next(item for item in page["items"] if item["interview_id"] == interview_id)


@pytest.fixture(scope="module")
def analysed(service: RunningService, woman2_mp4: Path) -> int:
    """woman2.mp4 uploaded with the walk-through's segments as interview 70 of session 7, analysed."""
    response = upload(service, woman2_mp4, segments=WALKTHROUGH_SEGMENTS, session_id=7, interview_id=70)
    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["interview_id"], record["session_id"], record["segments"]) == (70, 7, 2)
    assert record["state"] == "not_analysed" and "decodes_until_s" not in record
    rows = service.ctx.db.results_rows(70)
    assert [(r["start"], r["end"], r["speaker"]) for r in rows] == [
        (s["start"], s["end"], s["speaker"]) for s in WALKTHROUGH_SEGMENTS
    ]
    assert analyse(service, 7, 70)["state"] == "succeeded"
    return 70


def test_an_upload_without_ids_or_segments_is_a_new_interview_of_session_1(
    service: RunningService, woman2_mp4: Path
) -> None:
    expected = service.ctx.db.max_interview_id() + 1
    response = upload(service, woman2_mp4)
    assert response.status_code == 201, response.text
    record = response.json()
    assert response.headers["location"] == f"/v1/interviews/{expected}"
    assert record == {
        "interview_id": expected,
        "session_id": 1,
        "state": "not_analysed",
        "progress": 0.0,
        "job_id": None,
        "error": None,
        "video_ok": False,
        "segments": 1,
        "warnings": 0,
    }
    assert httpx.get(f"{service.url}{response.headers['location']}", timeout=30).json() == record
    assert listed(service, expected) == record
    # The whole video is one candidate segment; the video is in storage, byte for byte.
    (row,) = service.ctx.db.results_rows(expected)
    assert (row["start"], row["speaker"]) == (0.0, 0) and row["end"] == pytest.approx(15482, abs=1)
    assert service.ctx.blobs.get(f"1/{expected}/raw/raw.mp4") == woman2_mp4.read_bytes()
    assert not uploads_left(service)  # the upload's temporary file is gone

    done = analyse(service, 1, expected)
    assert done["state"] == "succeeded" and done["progress"] == 1.0 and done["video_ok"] is True
    assert listed(service, expected) == done


def test_the_list_is_newest_first_and_paginated(service: RunningService, analysed: int) -> None:
    everything = httpx.get(f"{service.url}/v1/interviews", params={"limit": 200}, timeout=30).json()
    ids = [item["interview_id"] for item in everything["items"]]
    assert ids == sorted(ids, reverse=True) and analysed in ids and everything["next"] is None
    assert everything["total"] == len(ids) >= 2
    first = httpx.get(f"{service.url}/v1/interviews", params={"limit": 1}, timeout=30).json()
    assert [item["interview_id"] for item in first["items"]] == ids[:1]
    assert (first["total"], first["limit"], first["offset"]) == (len(ids), 1, 0)
    second = httpx.get(first["next"], timeout=30).json()
    assert [item["interview_id"] for item in second["items"]] == ids[1:2] and second["offset"] == 1
    record = listed(service, analysed)
    assert (record["state"], record["segments"], record["warnings"]) == ("succeeded", 2, 0)
    assert record["error"] is None


def test_the_csv_has_a_row_per_sampled_frame_as_the_json_has_them(
    service: RunningService, analysed: int
) -> None:
    response = httpx.get(f"{service.url}/v1/interviews/{analysed}/emotions", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="interview_{analysed}_emotions.csv"' in response.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == COLUMNS
    rows = list(reader)
    view = httpx.get(f"{service.url}/v1/interviews/{analysed}/emotions", params={"frames": True}).json()
    frames = [(segment, frame) for segment in view["segments"] for frame in segment["frames"]]
    assert len(rows) == len(frames) == 6  # 3 samples in each of the two candidate segments
    for row, (segment, frame) in zip(rows, frames, strict=True):
        assert int(row["interview_id"]) == analysed
        assert int(row["segment_id"]) == segment["result_id"]
        assert (float(row["segment_start_ms"]), float(row["segment_end_ms"])) == (
            segment["start_ms"],
            segment["end_ms"],
        )
        assert float(row["time_s"]) == frame["time"]
        assert row["face_found"] == ("true" if frame["box"] is not None else "false")
        box = [row[f"box_{part}"] for part in "xywh"]
        assert [float(v) for v in box] == frame["box"]
        assert float(row["detector_score"]) == frame["score"]
        assert {e: float(row[e]) for e in EMOTIONS} == frame["emotions"]
    # JSON stays the default.
    default = httpx.get(f"{service.url}/v1/interviews/{analysed}/emotions")
    assert default.headers["content-type"] == "application/json"
    assert default.json()["interview_id"] == analysed


def local_frame(video: Path, at: float) -> tuple[float, np.ndarray]:
    """The first frame at or after ``at`` (less half a millisecond), decoded here."""
    sample = next(sample_frames(video, [Segment(0, max(0.0, at - 0.0005), at + 0.0005)], 1.0))
    return sample.time, sample.image.astype(np.int16)


def test_a_frame_comes_with_its_face_box_drawn(
    service: RunningService, analysed: int, woman2_mp4: Path
) -> None:
    view = httpx.get(f"{service.url}/v1/interviews/{analysed}/emotions", params={"frames": True}).json()
    frame = view["segments"][0]["frames"][1]
    assert frame["time"] == 1.001 and frame["box"] is not None
    response = httpx.get(f"{service.url}/v1/interviews/{analysed}/frames/{frame['time']}.jpg", timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and image.size == (596, 336)  # woman2.mp4's frames
    served = np.asarray(image.convert("RGB"), dtype=np.int16)
    shown, plain = local_frame(woman2_mp4, frame["time"])
    assert round(shown, 3) == frame["time"]
    difference = np.abs(served - plain).sum(axis=2)
    x, y, width, height = (round(v) for v in frame["box"])
    outline = np.zeros(difference.shape, dtype=bool)
    outline[y : y + 2, x : x + width] = outline[y + height - 2 : y + height, x : x + width] = True
    outline[y : y + height, x : x + 2] = outline[y : y + height, x + width - 2 : x + width] = True
    inside = np.zeros(difference.shape, dtype=bool)
    inside[y + 10 : y + height - 10, x + 10 : x + width - 10] = True
    assert difference[outline].mean() > 100, difference[outline].mean()  # the box's pixels
    assert difference[inside].mean() < 12, difference[inside].mean()  # JPEG's noise, no more

    # Between samples there is no stored box: the frame as it is.
    between = httpx.get(f"{service.url}/v1/interviews/{analysed}/frames/0.5.jpg", timeout=60)
    assert between.status_code == 200, between.text
    _, plain = local_frame(woman2_mp4, 0.5)
    served = np.asarray(Image.open(io.BytesIO(between.content)).convert("RGB"), dtype=np.int16)
    assert np.abs(served - plain).sum(axis=2).mean() < 12


def test_a_frame_that_does_not_exist_is_refused(service: RunningService, analysed: int) -> None:
    outside = httpx.get(f"{service.url}/v1/interviews/{analysed}/frames/100.jpg", timeout=60)
    assert outside.status_code == 422 and "outside the video" in outside.json()["detail"], outside.text
    unknown = httpx.get(f"{service.url}/v1/interviews/999999/frames/1.jpg", timeout=60)
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["detail"], unknown.text
    service.ctx.db.ingest(session_id=8, interview_id=80, segments=[Segment(0, 0.0, 1.0)])  # no video
    missing = httpx.get(f"{service.url}/v1/interviews/80/frames/0.jpg", timeout=60)
    assert missing.status_code == 404 and "no video" in missing.json()["detail"], missing.text
    assert httpx.get(f"{service.url}/v1/interviews/{analysed}/frames/-1.jpg").status_code == 422
    assert httpx.get(f"{service.url}/v1/interviews/{analysed}/frames/abc.jpg").status_code == 422


@pytest.mark.parametrize("case", ["random bytes", "index last, cut at 50%", "segments not JSON"])
def test_what_does_not_decode_as_video_is_refused_and_nothing_is_stored(
    service: RunningService, tmp_path: Path, case: str
) -> None:
    segments = None
    if case == "random bytes":
        video: Path | bytes = np.random.default_rng(0).bytes(100_000)
        message = "interview.mp4 does not decode as video"
    elif case == "index last, cut at 50%":
        video = truncate(face_video(tmp_path / "whole.mp4", 6.0), 0.5, tmp_path / "cut.mp4")
        message = "interview.mp4 does not decode as video"
    else:
        video, segments, message = face_video(tmp_path / "face.mp4", 1.0), "[{start", "is not JSON"
    before = snapshot(service)
    response = upload(service, video, segments=segments, session_id=9, interview_id=90)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert str(service.settings.data_dir) not in response.text  # no server path in an answer
    nothing_changed(service, before, 90)
    assert not service.ctx.db.session_exists(9)


def test_a_form_that_does_not_fit_is_refused(service: RunningService, tmp_path: Path) -> None:
    video = face_video(tmp_path / "face.mp4", 1.0)
    before = snapshot(service)
    unknown = upload(service, video, interview_id=91, colour="blue")
    assert unknown.status_code == 422 and "unknown form field 'colour'" in unknown.json()["detail"]
    segments_only = httpx.post(
        f"{service.url}/v1/interviews",
        files={"segments": ("segments.json", b"[]", "application/json")},
        data={"interview_id": "91"},
        timeout=30,
    )
    assert segments_only.status_code == 422 and "no 'video' file" in segments_only.json()["detail"]
    not_a_form = httpx.post(f"{service.url}/v1/interviews", json={"interview_id": 91}, timeout=30)
    assert not_a_form.status_code == 422 and "multipart/form-data" in not_a_form.json()["detail"]
    head = b'--cut\r\nContent-Disposition: form-data; name="video"; filename="face.mp4"\r\n\r\n'
    cut_off = httpx.post(
        f"{service.url}/v1/interviews",
        content=head + video.read_bytes(),  # no closing boundary: the upload stopped part way
        headers={"content-type": "multipart/form-data; boundary=cut"},
        timeout=30,
    )
    assert cut_off.status_code == 422 and "cut off" in cut_off.json()["detail"], cut_off.text
    bad_id = upload(service, video, interview_id="x")
    assert bad_id.status_code == 422 and "interview_id must be a positive integer" in bad_id.text
    no_segments = upload(service, video, segments="[]", interview_id=91)
    assert no_segments.status_code == 422 and "no segments" in no_segments.json()["detail"]
    late = upload(service, video, segments=[{"start": 0, "end": 500}, {"start": 5000, "end": 6000}])
    assert late.status_code == 422, late.text
    assert "start at or after the end of the video (1.000 s), the first at 5000 ms" in late.json()["detail"]
    nothing_changed(service, before, 91)
    assert upload(service, video, interview_id=91).status_code == 201
    again = upload(service, video, interview_id=91)
    assert again.status_code == 409 and "already exists" in again.json()["detail"], again.text


def test_a_recording_cut_short_is_registered_and_says_so(
    service: RunningService, woman2_mp4: Path, tmp_path: Path
) -> None:
    streamed = faststart_copy(woman2_mp4, tmp_path / "streamed.mp4")
    cut = truncate(streamed, 0.5, tmp_path / "cut.mp4")
    response = upload(service, cut, session_id=10)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["session_id"] == 10 and record["state"] == "not_analysed"
    assert 4.0 < record["decodes_until_s"] < 11.0, record
    assert "cut short" in record["warning"] and "15.482 s" in record["warning"]
    assert service.ctx.blobs.exists(f"10/{record['interview_id']}/raw/raw.mp4")
    done = analyse(service, 10, record["interview_id"])
    assert done["state"] == "succeeded" and done["warnings"] == 1, done


def test_an_upload_over_the_bound_is_refused_and_nothing_is_stored(
    small: RunningService, tmp_path: Path
) -> None:
    headers = {"X-API-Key": KEY}
    before = snapshot(small)
    over = upload(small, face_video(tmp_path / "long.mp4", 3.0), headers=headers, interview_id=5)
    assert over.status_code == 413, over.text
    assert f"over {SMALL_UPLOAD_MB} MB (VE_MAX_UPLOAD_MB)" in over.json()["detail"]
    nothing_changed(small, before, 5)

    # Sent in chunks, without a length: refused once it passes the bound.
    body = (tmp_path / "long.mp4").read_bytes()
    boundary = "upload-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="long.mp4"\r\n\r\n'

    def chunks() -> Iterator[bytes]:
        yield head.encode()
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]
        yield f"\r\n--{boundary}--\r\n".encode()

    chunked = httpx.post(
        f"{small.url}/v1/interviews",
        content=chunks(),
        headers=headers | {"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=TIMEOUT,
    )
    assert chunked.status_code == 413, chunked.text
    nothing_changed(small, before, 5)
    assert httpx.get(f"{small.url}/health", timeout=10).json() == {"status": "ok"}

    # A segments file is held to VE_MAX_REQUEST_MB while it is read.
    short = face_video(tmp_path / "short.mp4", 1.0)
    many = json.dumps([{"start": 10 * i, "end": 10 * i + 5} for i in range(500)])
    assert len(many) > 10_000 and len(many) + short.stat().st_size < 45_000
    listed_too_long = upload(small, short, segments=many, headers=headers, interview_id=5)
    assert listed_too_long.status_code == 413, listed_too_long.text
    assert "'segments' is over 0.01 MB (VE_MAX_REQUEST_MB)" in listed_too_long.json()["detail"]
    nothing_changed(small, before, 5)

    # Under the bounds it is registered.
    fits = upload(small, short, headers=headers, interview_id=5)
    assert fits.status_code == 201, fits.text
    assert fits.json()["segments"] == 1


def test_the_model_card_says_what_the_numbers_are(service: RunningService, small: RunningService) -> None:
    card = httpx.get(f"{service.url}/v1/models/default/card", timeout=30).json()
    assert card["engine"] == "default" and card["classifier"] == "mini-xception"
    assert card["wording"] == "facial-expression estimates, not feelings"
    assert card["measured"] is True and card["not_measured"] is None
    figures = {(f["yardstick"], f["metric"]): f for f in card["figures"]}
    fer2013 = figures["FER2013 PublicTest", "accuracy"]
    assert (fer2013["value"], fer2013["interval"]) == (0.652, [0.637, 0.668])
    assert fer2013["source"].startswith("docs/accuracy.md") and fer2013["measured"] == "2026-11-25"
    assert figures["FER+ PublicTest", "accuracy"]["value"] == 0.666
    assert figures["FER+ PublicTest", "per-class recall"]["by_class"]["neutral"] == 0.45
    assert figures["dev clips", "clip accuracy (14 of 28)"]["value"] == 0.5
    assert all(f["source"] for f in card["figures"])
    # An app name runs what serves it now; the card is that engine's, and says why.
    served = httpx.get(f"{service.url}/v1/models/deepface/card", timeout=30).json()
    assert served["name"] == "deepface"
    if served["engine"] == "default":
        assert "served by default" in served["note"] and served["measured"] is True
    else:
        assert served["measured"] is False and served["not_measured"]
    unknown = httpx.get(f"{service.url}/v1/models/nope/card", timeout=30)
    assert unknown.status_code == 404 and "no model 'nope'" in unknown.json()["detail"]
    # Strict: an engine that cannot run here is not served by another; its card has no figures of ours.
    headers = {"X-API-Key": KEY}
    local = httpx.get(f"{small.url}/v1/models/yolo_local/card", headers=headers, timeout=30).json()
    assert local["engine"] == "yolo_local" and local["measured"] is False and local["figures"] == []
    assert "not measured" in local["not_measured"] and "VE_YOLO_MODEL_PATH" in local["note"]


def raw_status(service: RunningService, path: str) -> int:
    """The status a GET of ``path`` gets, sent exactly as written."""
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_the_page_loads_without_a_key_and_the_api_still_needs_one(small: RunningService) -> None:
    page = httpx.get(f"{small.url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text
    assert httpx.get(f"{small.url}/static/index.html", timeout=30).status_code == 200
    # A file that is not there is the page's 404, not a 401: the path needs no key.
    assert httpx.get(f"{small.url}/static/nothing-here.js", timeout=30).status_code == 404
    for path in ("/v1/interviews", "/v1/models/default/card", "/v1/interviews/1/frames/0.jpg", "/docs"):
        assert httpx.get(f"{small.url}{path}", timeout=30).status_code == 401, path
    assert httpx.post(f"{small.url}/static/index.html", timeout=30).status_code == 401
    # A path under /static/ that climbs out of it reaches no route (httpx would tidy the dots away).
    for path in ("/static/../v1/interviews", "/static/%2e%2e/v1/interviews", "/static/..%2fopenapi.json"):
        assert raw_status(small, path) == 404, path
    keyed = httpx.get(f"{small.url}/v1/interviews", headers={"X-API-Key": KEY}, timeout=30)
    assert keyed.status_code == 200, keyed.text
