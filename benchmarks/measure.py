"""One measurement of the benchmark table, in a process of its own (so that its peak RSS is its own).

    python benchmarks/measure.py KIND VIDEO SEGMENTS [--interval 1.0]

KIND is one of :data:`KINDS`. Models load before the clock starts; the clock covers the work
on the video. Prints one JSON object: ``seconds`` (wall), ``cpu_seconds`` (all threads),
``samples``, ``with_face`` (where a model ran) and ``versions`` (of what the kind ran on).
``seed-engine`` needs the heavy environment (DeepFace on TensorFlow): where the real
``facial_expression_model_weights.h5`` is absent it saves weights of the same architecture,
untrained (the cost is the same), under the benchmark cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import av
from inputs import CACHE, REPO
from seed import run_seed

from video_emotions.analysis import analyse_video, batching
from video_emotions.config import Settings
from video_emotions.domain import Segment
from video_emotions.segmentfile import load_segments
from video_emotions.video.parallel import default_decoders, sample_in_parallel
from video_emotions.video.sampler import probe
from video_emotions.vision.engine import EmotionEngine
from video_emotions.vision.registry import ModelRegistry

#: What one run counted: samples, and samples with a face (None where no model ran).
Counts = tuple[int, int | None]


def floor(path: Path, segments: list[Segment], interval: float) -> Counts:
    """Our sampler alone: decode and convert exactly the samples the rule takes, as the analysis
    runs it (its decoders, its queue)."""
    info = probe(path)
    _, depth = batching(info.width, info.height)
    samples = sample_in_parallel(path, segments, interval, decoders=default_decoders(), depth=depth)
    return sum(1 for _ in samples), None


def keyframes(path: Path, segments: list[Segment], _interval: float) -> Counts:
    """A lower bound: decode (and convert) only the keyframes from each segment's start to its end."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONKEY"
        origin = stream.start_time or 0
        for segment in sorted(segments, key=lambda s: (s.start, s.id)):
            container.seek(origin + int(segment.start / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                count += 1
                if float((frame.pts - origin) * stream.time_base) >= segment.end:
                    break
    return count, None


def default_engine() -> EmotionEngine:
    return ModelRegistry(Settings()).load("default")


def ours(engine: EmotionEngine) -> Callable[[Path, list[Segment], float], Counts]:
    def run(path: Path, segments: list[Segment], interval: float) -> Counts:
        results = analyse_video(path, segments, engine, interval=interval)
        frames = [frame for result in results for frame in result.frames]
        return len(frames), sum(frame.estimate.face is not None for frame in frames)

    return run


def seed(engine: EmotionEngine) -> Callable[[Path, list[Segment], float], Counts]:
    def run(path: Path, segments: list[Segment], interval: float) -> Counts:
        estimates = run_seed(path, segments, interval, engine)
        return len(estimates), sum(estimate.face is not None for *_, estimate in estimates)

    return run


def deepface_engine() -> EmotionEngine:
    """DeepFace's analyze with the OpenCV detector, as the seed ran it, on files found offline."""
    real = Path.home() / ".deepface" / "weights" / "facial_expression_model_weights.h5"
    if not real.is_file():
        home = CACHE / "deepface"
        os.environ["DEEPFACE_HOME"] = str(home)
        if not (home / ".deepface" / "weights" / real.name).is_file():
            sys.path.insert(0, str(REPO))
            from tests.models.deepface_files import make_deepface_home

            make_deepface_home(home)
    from video_emotions.vision.deepface_engine import DeepFaceEngine

    return DeepFaceEngine(Settings(deepface_detector="opencv"))


def loaders() -> dict[str, Callable[[], Callable[[Path, list[Segment], float], Counts]]]:
    return {
        "floor": lambda: floor,
        "keyframes": lambda: keyframes,
        "ours": lambda: ours(default_engine()),
        "seed": lambda: seed(default_engine()),
        "seed-engine": lambda: seed(deepface_engine()),
    }


KINDS = tuple(loaders())


def versions(kind: str) -> dict[str, str]:
    packages = ["av", "numpy"]
    if kind in ("ours", "seed"):
        packages += ["onnxruntime", "ai-edge-litert"]
    if kind == "seed-engine":
        packages += ["deepface", "tensorflow", "opencv-contrib-python-headless"]
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # not installed in this environment
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("video", type=Path)
    parser.add_argument("segments", type=Path)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    segments = load_segments(args.segments)
    run = loaders()[args.kind]()
    wall, cpu = time.perf_counter(), time.process_time()
    samples, with_face = run(args.video, segments, args.interval)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = {"seconds": wall, "cpu_seconds": cpu, "samples": samples, "with_face": with_face}
    print(json.dumps({**figures, "versions": versions(args.kind)}))


if __name__ == "__main__":
    main()
