"""The performance table (``make bench``): our analysis against its floor, the seed's algorithm and
the seed's engine, on interviews of 5, 10 and 20 minutes at 720p and 20 minutes at 1080p.

    python benchmarks/bench.py [--repeat 3] [--inputs 10min_720p ...] [--footage moving]
                               [--out benchmarks/results.json]

Inputs come from ``../shared/bench/make_bench_video.sh`` (built once, cached under
``~/.cache/video-emotions/bench``): 30 fps H.264 with a 2 s keyframe interval, the candidate
speaking 60% of the time. About two thirds of its frames repeat the one before (the table says
how many: :func:`inputs.repeated_frame_share`); ``--footage moving`` builds the same interviews
moving all along (``make_moving_video.sh``), as a real one does. What is measured (:data:`KINDS`):

- ``floor``: our sampler alone, decoding and converting exactly the samples the rule takes;
- ``keyframes``: a lower bound, decoding only the keyframes inside the segments;
- ``ours``: the whole analysis with the default model (sampling, detection, classification,
  per-segment results), in process;
- ``api``: the same through the service, ``POST /analyse_video`` with its database write (the
  service started beforehand on an embedded data folder where the inputs were ingested);
- ``seed``: the seed's algorithm with our default model (``benchmarks/seed.py``);
- ``seed-engine``: the seed's algorithm with the seed's engine, DeepFace's ``analyze`` per frame
  with the OpenCV detector, run by the heavy environment (``make heavy-env``);
- ``ffmpeg``: FFmpeg decoding the whole file to 1 fps, for reference.

Every measurement runs in a process of its own (models load before its clock starts; the
service starts before the request) and its peak RSS is the kernel's figure for that process.
Repetitions are interleaved: each one runs every measurement of every input once, so that a
slow minute of a shared machine weighs on all of them alike; the table gives the median. The
seed's two run on :data:`REFERENCE` only by default (``--seed-inputs``): they take minutes.
Ratios are taken within the run; ``results.json`` keeps every figure. The exit status is 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import imageio_ffmpeg
from inputs import CACHE, FOOTAGE, REPO, SHARED, BenchVideo, build_video, repeated_frame_share

sys.path.insert(0, str(REPO))

from tests.service import run_service, service_env
from video_emotions.video.parallel import available_cores

INPUTS = (
    BenchVideo(5, 1280, 720),
    BenchVideo(10, 1280, 720),
    BenchVideo(20, 1280, 720),
    BenchVideo(20, 1920, 1080),
)
#: The input on which ours is compared with its floor and with the seed.
REFERENCE = "10min_720p"
KINDS = ("floor", "keyframes", "ours", "api", "seed", "seed-engine", "ffmpeg")
SEED_KINDS = ("seed", "seed-engine")
HEAVY_PYTHON = REPO / ".venv-heavy" / "bin" / "python"
MEASURE = Path(__file__).resolve().parent / "measure.py"
#: The versions each measuring process reports (DeepFace's and TensorFlow's from the heavy one).
MEASURED_VERSIONS: dict[str, str] = {}

#: ratio name: (lowest, highest) allowed; None where there is no bound.
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "ours_over_floor": (None, 1.15),
    "seed_over_ours": (6.0, None),
    "seed_engine_over_ours": (20.0, None),
    "growth_20_over_5": (3.6, 4.4),
    "rss_mb_1080p_20min": (None, 600.0),
}


@dataclass
class Run:
    """One measurement: wall and CPU seconds of the work, the process's peak RSS, what it counted."""

    seconds: float
    cpu_seconds: float | None
    peak_rss_mb: float
    samples: int | None = None
    with_face: int | None = None


def wait_measured(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``process``: its exit code and peak RSS in MiB (the kernel's figure for that child)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def measure_in_process(kind: str, video: Path, segments: Path) -> Run:
    python = HEAVY_PYTHON if kind == "seed-engine" else Path(sys.executable)
    if not python.exists():
        raise SystemExit(f"{kind} runs in the heavy environment: `make heavy-env` first")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [str(python), str(MEASURE), kind, str(video), str(segments)], stdout=out, stderr=err
        )
        code, rss = wait_measured(process)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise SystemExit(f"{kind} on {video.name} failed:\n{err.read().decode(errors='replace')[-3000:]}")
        figures = json.loads(out.read().decode().strip().splitlines()[-1])
    MEASURED_VERSIONS.update(figures.pop("versions"))
    return Run(peak_rss_mb=rss, **figures)


def measure_ffmpeg(video: Path) -> Run:
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-i",
        str(video),
        "-vf",
        "fps=1",
        "-f",
        "null",
        "-",
    ]
    started, cpu = time.perf_counter(), os.times()
    process = subprocess.Popen(command)
    code, rss = wait_measured(process)
    wall, after = time.perf_counter() - started, os.times()
    if code != 0:
        raise SystemExit(f"ffmpeg failed on {video.name}")
    return Run(
        wall, (after.children_user - cpu.children_user) + (after.children_system - cpu.children_system), rss
    )


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a running process, all its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_api(data_dir: Path, interview_id: int) -> Run:
    """``POST /analyse_video`` on a service started for it (on the ingested data folder)."""
    with run_service(data_dir) as service:
        assert service.process is not None
        cpu = process_cpu_seconds(service.process.pid)
        started = time.perf_counter()
        response = httpx.post(
            f"{service.url}/analyse_video",
            params={"session_id": 1, "interview_id": interview_id, "model_type": "default", "force": "true"},
            timeout=3600,
        )
        wall = time.perf_counter() - started
        cpu = process_cpu_seconds(service.process.pid) - cpu
        if response.status_code != 200:
            raise SystemExit(f"POST /analyse_video answered {response.status_code}: {response.text}")
        rss = service.peak_rss_mb()
        segments = httpx.get(f"{service.url}/v1/interviews/{interview_id}/emotions").json()["segments"]
    frames = sum(segment["summary"]["frames"] for segment in segments)
    with_face = sum(segment["summary"]["frames_with_face"] for segment in segments)
    return Run(wall, cpu, rss, frames, with_face)


def ingest(data_dir: Path, interview_id: int, video: Path, segments: Path) -> None:
    """``video`` as interview ``interview_id`` of session 1; its segments get new result ids (the
    files of the inputs number theirs from 1 each)."""
    ids = ["--session", "1", "--interview", str(interview_id)]
    unnumbered = data_dir.parent / f"segments-{interview_id}.json"
    rows = json.loads(segments.read_text())
    unnumbered.write_text(json.dumps([{k: v for k, v in row.items() if k != "id"} for row in rows]))
    done = subprocess.run(
        [sys.executable, "-m", "video_emotions", "ingest", str(video), *ids, "--segments", str(unnumbered)],
        env=service_env(data_dir),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"ingest of {video.name} failed:\n{done.stderr}")


def summarise(runs: list[Run]) -> dict[str, object]:
    counts = {(run.samples, run.with_face) for run in runs}
    cpus = [run.cpu_seconds for run in runs if run.cpu_seconds is not None]
    return {
        "seconds": statistics.median(run.seconds for run in runs),
        "cpu_seconds": statistics.median(cpus) if cpus else None,
        "peak_rss_mb": max(run.peak_rss_mb for run in runs),
        "samples": runs[-1].samples,
        "with_face": runs[-1].with_face,
        "counts_agree": len(counts) == 1,
        "runs": [asdict(run) for run in runs],
    }


def ratios(results: dict[str, dict[str, dict[str, object]]]) -> dict[str, float | None]:
    def seconds(name: str, kind: str) -> float | None:
        figure = results.get(name, {}).get(kind)
        return None if figure is None else float(figure["seconds"])  # type: ignore[arg-type]

    def over(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    ours = seconds(REFERENCE, "ours")
    rss = results.get("20min_1080p", {}).get("ours", {}).get("peak_rss_mb")
    return {
        "ours_over_floor": over(ours, seconds(REFERENCE, "floor")),
        "seed_over_ours": over(seconds(REFERENCE, "seed"), ours),
        "seed_engine_over_ours": over(seconds(REFERENCE, "seed-engine"), ours),
        "growth_20_over_5": over(seconds("20min_720p", "ours"), seconds("5min_720p", "ours")),
        "rss_mb_1080p_20min": None if rss is None else float(rss),  # type: ignore[arg-type]
        "api_over_ours": over(seconds(REFERENCE, "api"), ours),
        "floor_over_keyframes": over(seconds(REFERENCE, "floor"), seconds(REFERENCE, "keyframes")),
        "ffmpeg_over_ours": over(seconds(REFERENCE, "ffmpeg"), ours),
    }


def verdict(name: str, value: float | None) -> str:
    low, high = TARGETS[name]
    if value is None:
        return "not measured"
    met = (low is None or value >= low) and (high is None or value <= high)
    return "met" if met else "MISSED"


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "")
    return {
        "platform": platform.platform(),
        "cpu": model or platform.processor(),
        "cores": available_cores(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def base_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "ffmpeg": imageio_ffmpeg.get_ffmpeg_version()}
    for package in ("video-emotions", "av", "numpy", "onnxruntime", "ai-edge-litert", "fastapi"):
        found[package] = version(package)
    return found


def table(results: dict[str, dict[str, dict[str, object]]], repeat: int) -> str:
    lines = [
        f"| input | what | seconds (median of {repeat}) | over ours | CPU s | peak RSS MB "
        "| samples (with a face) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, kinds in results.items():
        ours = kinds.get("ours", {}).get("seconds")
        for kind, figure in kinds.items():
            seconds = float(figure["seconds"])  # type: ignore[arg-type]
            relative = f"{seconds / float(ours):.2f}" if ours else ""  # type: ignore[arg-type]
            cpu = "" if figure["cpu_seconds"] is None else f"{float(figure['cpu_seconds']):.1f}"  # type: ignore[arg-type]
            counted = "" if figure["samples"] is None else str(figure["samples"])
            if figure["with_face"] is not None:
                counted += f" ({figure['with_face']})"
            if not figure["counts_agree"]:
                counted += " (runs differ)"
            rss = float(figure["peak_rss_mb"])  # type: ignore[arg-type]
            lines.append(f"| {name} | {kind} | {seconds:.2f} | {relative} | {cpu} | {rss:.0f} | {counted} |")
    return "\n".join(lines)


def input_note(repeated: dict[str, float]) -> str:
    """What share of each input's frames repeat the picture before them (see repeated_frame_share)."""
    shares = ", ".join(f"{name} {share:.0%}" for name, share in repeated.items())
    note = f"Frames that repeat the picture before them: {shares}."
    if max(repeated.values(), default=0.0) > 0.1:
        note += (
            " Such frames decode far faster than those of an interview that moves all along:"
            " the floor's and the seed's figures are lower than on such an interview."
        )
    return note


def ratio_table(values: dict[str, float | None]) -> str:
    lines = ["| ratio | value | target | |", "| --- | ---: | --- | --- |"]
    for name, value in values.items():
        shown = "" if value is None else f"{value:.2f}"
        if name in TARGETS:
            low, high = TARGETS[name]
            target = " and ".join(part for part in (low and f">= {low:g}", high and f"<= {high:g}") if part)
            lines.append(f"| {name} | {shown} | {target} | {verdict(name, value)} |")
        else:
            lines.append(f"| {name} | {shown} | | |")
    return "\n".join(lines)


def plan(
    inputs: Sequence[BenchVideo], kinds: Sequence[str], seed_inputs: Sequence[str]
) -> list[tuple[str, str]]:
    """(input, kind) in the order one repetition runs them."""
    return [
        (video.name, kind)
        for video in inputs
        for kind in kinds
        if kind not in SEED_KINDS or video.name in seed_inputs
    ]


def main() -> None:
    names = [video.name for video in INPUTS]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every measurement (median)")
    parser.add_argument("--inputs", nargs="+", choices=names, default=names)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seed-inputs", nargs="+", choices=names, default=[REFERENCE])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--footage",
        choices=FOOTAGE,
        default="shared",
        help="inputs built by the shared script, or by benchmarks/make_moving_video.sh (moving all along)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    inputs = [video for video in INPUTS if video.name in args.inputs]
    files, repeated = {}, {}
    for video in inputs:
        print(f"input {video.name}: building (once) or reading from {args.cache}", flush=True)
        files[video.name] = build_video(video, shared=args.shared, out=args.cache, footage=args.footage)
        repeated[video.name] = repeated_frame_share(files[video.name][0])
    runs: dict[tuple[str, str], list[Run]] = {}
    order = plan(inputs, args.kinds, args.seed_inputs)
    with tempfile.TemporaryDirectory(prefix="ve-bench-") as tmp:
        data_dir = Path(tmp) / "service"
        interview_ids = {video.name: number for number, video in enumerate(inputs, start=1)}
        if "api" in args.kinds:
            for name, number in interview_ids.items():
                ingest(data_dir, number, *files[name])
        for repetition in range(1, args.repeat + 1):
            for name, kind in order:
                video, segments = files[name]
                if kind == "api":
                    run = measure_api(data_dir, interview_ids[name])
                elif kind == "ffmpeg":
                    run = measure_ffmpeg(video)
                else:
                    run = measure_in_process(kind, video, segments)
                runs.setdefault((name, kind), []).append(run)
                print(
                    f"[{repetition}/{args.repeat}] {name:<12} {kind:<12} {run.seconds:8.2f} s  "
                    f"{run.peak_rss_mb:6.0f} MB",
                    flush=True,
                )

    results: dict[str, dict[str, dict[str, object]]] = {}
    for (name, kind), measured in runs.items():
        results.setdefault(name, {})[kind] = summarise(measured)
    values = ratios(results)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": {**base_versions(), **MEASURED_VERSIONS},
        "repeat": args.repeat,
        "footage": args.footage,
        "inputs": {
            video.name: {
                "minutes": video.minutes,
                "width": video.width,
                "height": video.height,
                "repeated_frame_share": round(repeated[video.name], 4),
            }
            for video in inputs
        },
        "results": results,
        "ratios": values,
        "targets": {name: verdict(name, values[name]) for name in TARGETS},
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{table(results, args.repeat)}\n\n{input_note(repeated)}\n\n{ratio_table(values)}")
    print(f"\nwritten to {args.out}")
    if "MISSED" in report["targets"].values():
        sys.exit(1)


if __name__ == "__main__":
    main()
