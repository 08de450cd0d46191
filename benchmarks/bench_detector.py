"""Median milliseconds per frame of BlazeFaceDetector.detect (letterbox, inference, decoding).

Run with ``.venv/bin/python benchmarks/bench_detector.py``. The model comes from the user's
model cache (downloaded on first use); frames are scikit-image's astronaut on a grey canvas.
The configurations of one frame size are timed in turns, so that load from other processes
weighs on each of them alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage import data

from video_emotions.config import default_model_dir
from video_emotions.vision.blazeface import BlazeFaceDetector, letterbox_resize
from video_emotions.vision.imaging import resize
from video_emotions.vision.modelfiles import BLAZEFACE_FULL_RANGE, ModelCache

SIZES = ((640, 360), (1280, 720))
THREADS = (1, 2)
WARMUP = 10
REPEATS = 300


def median_ms(calls: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median wall time of each call in milliseconds, the calls taken in turns."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(WARMUP + REPEATS):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if repeat >= WARMUP:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1e3 for name, values in times.items()}


def frame(width: int, height: int) -> np.ndarray:
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    side = height * 2 // 3
    top, left = (height - side) // 2, (width - side) // 2
    canvas[top : top + side, left : left + side] = resize(data.astronaut(), side, side)
    return canvas


def main() -> None:
    model = ModelCache(Path(os.environ.get("VE_MODEL_DIR", default_model_dir()))).fetch(BLAZEFACE_FULL_RANGE)
    detectors = {threads: BlazeFaceDetector(model, threads=threads) for threads in THREADS}
    print(f"{os.cpu_count()} CPUs, median of {REPEATS} frames")
    print(f"{'frame':>10} {'threads':>7} {'detect ms':>9} {'resize ms':>9} {'resize share':>12} faces")
    for width, height in SIZES:
        image = frame(width, height)
        calls: dict[str, Callable[[], object]] = {"resize": lambda image=image: letterbox_resize(image)}
        for threads, detector in detectors.items():
            calls[f"detect {threads}"] = lambda image=image, detector=detector: detector.detect(image)
        medians = median_ms(calls)
        for threads, detector in detectors.items():
            detect_ms = medians[f"detect {threads}"]
            print(
                f"{width:>5}x{height:<4} {threads:>7} {detect_ms:>9.2f} {medians['resize']:>9.2f} "
                f"{medians['resize'] / detect_ms:>12.0%} {len(detector.detect(image))}"
            )


if __name__ == "__main__":
    main()
