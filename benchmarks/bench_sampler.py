"""Time the frame sampler against the seed's way of sampling.

    python benchmarks/bench_sampler.py [VIDEO] [--seconds 60] [--interval 1.0] [--repeat 3]

Without VIDEO it encodes a clip (1280x720, 30 fps, H.264 with a 2 s GOP) into a temporary
folder from the frames of ``../shared/data/videos/test.mp4`` (synthetic frames where that file
is missing). Twenty segments cover 60% of the video. It prints the best of ``--repeat`` runs,
wall-clock and CPU seconds (all threads), for:

- naive: the seed's way (``seed.py``): for each segment, seek to it and decode every frame up
  to its closing frame, converting only the samples;
- sampler, no skip: :func:`sample_frames` on one decoder thread, every frame decoded;
- sampler: :func:`sample_frames` on one decoder thread, non-reference frames skipped;
- sampler, frame threads: the same with FFmpeg's frame threads (one per core);
- parallel: :func:`sample_in_parallel` as the service runs it (one decoder per core);

and checks that they all give the same samples. Ratios are the naive time over each time.
CPU time is the cost that matters when several jobs share a machine.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType
from seed import seed_samples

from video_emotions.domain import Segment
from video_emotions.video.parallel import default_decoders, sample_in_parallel
from video_emotions.video.sampler import sample_frames

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "test.mp4"
WIDTH, HEIGHT, FPS, GOP = 1280, 720, 30, 60

Samples = list[tuple[int, int, float]]


def source_frames(count: int) -> Iterator[av.VideoFrame]:
    """The source clip's frames upscaled to 1280x720, played back and forth; or moving noise."""
    if SOURCE.exists():
        with av.open(str(SOURCE)) as container:
            clip = [
                frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
                for frame in container.decode(video=0)
            ]
        loop = clip + clip[-2:0:-1]
        for i in range(count):
            yield loop[i % len(loop)]
        return
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    for i in range(count):
        image = np.roll(base, i, axis=1).repeat(8, axis=0).repeat(8, axis=1)
        yield av.VideoFrame.from_ndarray(image, format="rgb24")


def encode_clip(path: Path, seconds: float) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.thread_type = "FRAME"  # one slice per frame, as ffmpeg writes it (slice threads: several)
        stream.codec_context.options = {"preset": "veryfast", "x264-params": f"keyint={GOP}:min-keyint={GOP}"}
        for i, frame in enumerate(source_frames(round(seconds * FPS))):
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            frame.pict_type = PictureType.NONE  # the source's keyframes must not force ours
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_segments(duration: float, count: int = 20, coverage: float = 0.6) -> list[Segment]:
    """``count`` segments in random order, of random lengths, covering ``coverage`` of the video."""
    rng = random.Random(7)
    lengths = [rng.uniform(0.5, 1.5) for _ in range(count)]
    gaps = [rng.uniform(0.2, 1.8) for _ in range(count + 1)]
    scale_in = coverage * duration / sum(lengths)
    scale_out = (1 - coverage) * duration / sum(gaps)
    segments, clock = [], gaps[0] * scale_out
    for i, (length, gap) in enumerate(zip(lengths, gaps[1:], strict=True)):
        segments.append(Segment(i, clock, clock + length * scale_in))
        clock += (length * scale_in) + gap * scale_out
    rng.shuffle(segments)
    return segments


def naive(path: Path, segments: list[Segment], interval: float) -> Samples:
    """The seed's decoding (:func:`seed.seed_samples`), over the segments in order of start."""
    ordered = sorted(segments, key=lambda s: (s.start, s.id))
    return [(s.segment_id, s.index, s.time) for s in seed_samples(path, ordered, interval)]


def sampler(
    path: Path, segments: list[Segment], interval: float, *, skip: bool = True, threads: int = 1
) -> Samples:
    samples = sample_frames(path, segments, interval, skip_nonref=skip, threads=threads)
    return [(s.segment_id, s.index, s.time) for s in samples]


def parallel(path: Path, segments: list[Segment], interval: float) -> Samples:
    """As the analysis samples (one decoder per core), in the order of start like the others."""
    start = {segment.id: segment.start for segment in segments}
    samples = sample_in_parallel(path, segments, interval, decoders=default_decoders(), depth=32)
    ordered = sorted((start[s.segment_id], s.segment_id, s.index, s.time) for _, s in samples)
    return [(segment_id, index, time) for _, segment_id, index, time in ordered]


def best_of(repeat: int, run: Callable[[], Samples]) -> tuple[float, float, Samples]:
    """The least wall-clock and CPU seconds over ``repeat`` runs, and the samples."""
    walls, cpus, result = [], [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", nargs="?", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the encoded clip")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.video or encode_clip(Path(folder) / "bench.mp4", args.seconds)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            duration = float(stream.duration * stream.time_base)
            print(
                f"{path.name}: {stream.codec_context.name} {stream.width}x{stream.height}, {duration:.1f} s"
            )
        segments = make_segments(duration)
        runs: dict[str, Callable[[], Samples]] = {
            "naive": lambda: naive(path, segments, args.interval),
            "sampler, no skip": lambda: sampler(path, segments, args.interval, skip=False),
            "sampler": lambda: sampler(path, segments, args.interval),
            "sampler, frame threads": lambda: sampler(path, segments, args.interval, threads=0),
            "parallel": lambda: parallel(path, segments, args.interval),
        }
        results = {name: best_of(args.repeat, run) for name, run in runs.items()}
    naive_wall, naive_cpu, reference = results["naive"]
    print(f"{'':22} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}")
    for name, (wall, cpu, samples) in results.items():
        same = "same samples" if samples == reference else "DIFFERENT SAMPLES"
        print(
            f"{name:22} {wall:7.3f}s {naive_wall / wall:5.2f}x {cpu:7.3f}s {naive_cpu / cpu:5.2f}x"
            f"  {len(samples)} samples, {same}"
        )
    if any(samples != reference for *_, samples in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
