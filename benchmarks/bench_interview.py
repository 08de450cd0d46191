"""The Interviewz time budget: a 60-minute 720p30 interview answered within the caller's 300 s.

Builds the benchmark interview with ``../shared/bench/make_bench_video.sh`` (cached under
``~/.cache/video-emotions/bench``), starts the service as a subprocess on the embedded
default, ingests the video with the candidate's segments (60% of the time), and times
``POST /analyse_video`` as the middleware sends it. Beside it: the decode floor, FFmpeg
decoding the whole video to 1 fps (``ffmpeg -i VIDEO -vf fps=1 -f null -``), in the same run.
``--footage moving``: the interview built moving all along (see ``inputs.py``), as a real one is.

Run: ``make bench-interview`` (or ``.venv/bin/python benchmarks/bench_interview.py --minutes 10``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import measure_ffmpeg  # noqa: E402
from inputs import CACHE, FOOTAGE, SHARED, BenchVideo, build_video, repeated_frame_share  # noqa: E402

from tests.service import run_service  # noqa: E402

BUDGET_S = 300.0


def analyse(video: Path, segments: Path, workdir: Path) -> tuple[float, dict]:
    with run_service(workdir / "service") as service:
        ingest = subprocess.run(
            [
                sys.executable,
                "-m",
                "video_emotions",
                "ingest",
                str(video),
                "--session",
                "1",
                "--interview",
                "1",
                "--segments",
                str(segments),
            ],
            env=service.env,
            capture_output=True,
            text=True,
        )
        if ingest.returncode != 0:
            raise SystemExit(ingest.stderr)
        started = time.perf_counter()
        response = httpx.post(
            f"{service.url}/analyse_video",
            params={"session_id": 1, "interview_id": 1, "model_type": "default"},
            timeout=3600,
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"analysis failed: {response.status_code} {response.text}")
        emotions = httpx.get(f"{service.url}/v1/interviews/1/emotions").json()
    return elapsed, emotions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--footage", choices=FOOTAGE, default="shared")
    args = parser.parse_args()

    video, segments = build_video(
        BenchVideo(args.minutes, 1280, 720), shared=args.shared, out=args.cache, footage=args.footage
    )
    speech = sum(s["end"] - s["start"] for s in json.loads(segments.read_text())) / 1000
    floor = measure_ffmpeg(video).seconds
    with tempfile.TemporaryDirectory(prefix="ve-bench-") as tmp:
        seconds, emotions = analyse(video, segments, Path(tmp))
    samples = sum(s["summary"]["frames"] for s in emotions["segments"])
    with_face = sum(s["summary"]["frames_with_face"] for s in emotions["segments"])
    print(
        f"\n{video.name}: {args.minutes} min, candidate speaks {speech:.0f} s in "
        f"{len(emotions['segments'])} segments; {samples} samples, face in {with_face}; "
        f"{repeated_frame_share(video):.0%} of its frames repeat the one before"
    )
    print(f"{'what':<40}{'seconds':>10}{'ratio':>10}")
    print(f"{'POST /analyse_video (default model)':<40}{seconds:>10.1f}{'1.00':>10}")
    print(f"{'caller budget (aiohttp total timeout)':<40}{BUDGET_S:>10.1f}{BUDGET_S / seconds:>10.2f}")
    print(f"{'decode floor (ffmpeg -vf fps=1)':<40}{floor:>10.1f}{floor / seconds:>10.2f}")
    print(f"{'samples per second':<40}{samples / seconds:>10.1f}")
    if seconds > BUDGET_S:
        raise SystemExit(f"over budget: {seconds:.0f} s > {BUDGET_S:.0f} s")


if __name__ == "__main__":
    main()
