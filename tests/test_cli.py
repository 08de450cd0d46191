"""The command line as a user runs it: a subprocess of ``python -m video_emotions``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import av

from tests.service import service_env
from tests.test_results import thousandths
from video_emotions.domain import EMOTIONS, NO_FACE_KEY


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "video_emotions", *args],
        env=service_env(tmp_path / "data", COLUMNS="250"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_analyse_woman2_samples_one_frame_per_second_plus_the_closing_frame(
    woman2_mp4: Path, tmp_path: Path
) -> None:
    with av.open(str(woman2_mp4)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base)
    done = run(tmp_path, "analyse", str(woman2_mp4), "--out", "r.json")
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["engine"] == "default" and len(document["model_sha256"]) == 64
    (segment,) = document["segments"]
    frames = segment["video_emotions"]
    times = [float(key.split("_")[2]) for key in frames]
    whole_seconds = times[:-1]
    assert [round(t) for t in whole_seconds] == list(range(len(whole_seconds)))
    assert len(whole_seconds) == int(duration) + (duration % 1 > 0.05)
    assert times[-1] > duration - 0.1  # the closing frame: the video's last
    with_face = [v for v in frames.values() if v != {NO_FACE_KEY: 0.0}]
    assert len(with_face) >= 0.9 * len(frames)
    for values in with_face:
        assert set(values) == set(EMOTIONS)
        assert abs(sum(values.values()) - 100.0) <= 0.5
    assert segment["summary"]["frames"] == len(frames)


def test_analyse_with_segments_to_csv(test_mp4: Path, tmp_path: Path) -> None:
    (tmp_path / "segments.json").write_text(
        json.dumps([{"id": 7, "start": 500, "end": 2500}, {"start": 1000, "end": 2000, "speaker": 1}])
    )
    done = run(
        tmp_path,
        "analyse",
        str(test_mp4),
        "--segments",
        "segments.json",
        "--interval",
        "0.5",
        "--out",
        "r.csv",
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert {row["segment_id"] for row in rows} == {"7"}  # the interviewer's segment is not analysed
    assert len(rows) == 5  # 0.5, 1.0, 1.5, 2.0 and the closing frame at 2.5
    assert float(rows[0]["time"]) >= 0.5


def test_analyse_as_the_app_names_it_says_who_served_and_gives_three_decimals(
    woman2_mp4: Path, tmp_path: Path
) -> None:
    for out in ("r.json", "r.csv"):
        done = run(
            tmp_path, "analyse", str(woman2_mp4), "--model", "deepface", "--interval", "0.25", "--out", out
        )
        assert done.returncode == 0, done.stderr
        assert "deepface unavailable: needs the [deepface] extra" in done.stderr
        assert "served by default" in done.stderr
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["engine"] == "default"
    (segment,) = document["segments"]
    legacy = [v for v in segment["video_emotions"].values() if v != {NO_FACE_KEY: 0.0}]
    rows = csv.DictReader((tmp_path / "r.csv").open())
    from_csv = [{e: float(row[e]) for e in EMOTIONS} for row in rows if row["faces"] != "0"]
    assert len(legacy) > 50 and from_csv == legacy
    for values in legacy:
        assert thousandths(values) <= 100_000


def test_analyse_reports_bad_input_clearly(tmp_path: Path) -> None:
    done = run(tmp_path, "analyse", str(tmp_path / "missing.mp4"))
    assert done.returncode == 2
    assert "missing.mp4" in done.stderr
    (tmp_path / "bad.json").write_text('[{"start": 10}]')
    (tmp_path / "v.mp4").write_bytes(b"not a video")
    done = run(tmp_path, "analyse", "v.mp4", "--segments", "bad.json")
    assert done.returncode == 2 and "needs numeric 'start' and 'end'" in done.stderr
    done = run(tmp_path, "analyse", "v.mp4", "--model", "nope")
    assert done.returncode == 2 and "does not decode" in done.stderr


def test_an_error_is_printed_whole_on_a_narrow_terminal(tmp_path: Path) -> None:
    missing = tmp_path / ("interview [take 2] " + "x" * 80) / "missing.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "video_emotions", "analyse", str(missing)],
        env=service_env(tmp_path / "data", COLUMNS="40"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(missing) in line


def test_models_list_shows_the_cached_files(tmp_path: Path) -> None:
    done = run(tmp_path, "models", "list")
    assert done.returncode == 0, done.stderr
    assert "blazeface-full-range" in done.stdout and "mediapipe==0.10.14" in done.stdout
    assert "Apache-2.0" in done.stdout and "ok" in done.stdout
    assert "mini_xception.onnx" in done.stdout and "converted from" in done.stdout
