"""The sampler against a plain reference: decode every frame of the video from its start, no
seeking and no skipping, and apply the rule as ARCHITECTURE §3 words it.

On every shared video (the two of ``data/videos`` and the labelled dev clips, in MP4, FLV and
GIF) and on a variable-frame-rate video the test builds (frame durations from 1/60 s to a
2.5 s freeze, B-frames), the sampler must give the same frames: the same timestamps, and
pixel for pixel the same images.
"""

from __future__ import annotations

import hashlib
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import SHARED, VIDEOS, require_shared
from video_emotions.domain import Segment
from video_emotions.video.sampler import sample_frames

DEV_CLIPS = SHARED / "data" / "videos_dev"
VIDEO_SUFFIXES = {".mp4", ".flv", ".gif", ".mov", ".mkv", ".webm", ".avi"}
INTERVALS = (0.5, 1.0)

#: Per segment id, the samples as (time, digest of the RGB image).
Taken = dict[int, list[tuple[float, str]]]


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def decode_everything(path: Path, digests_of: set[int] = frozenset()) -> tuple[list[float], dict[int, str]]:
    """Every frame's time in seconds from the first frame's timestamp, in presentation order, and the
    image digests of the frames at the positions ``digests_of``."""
    times, digests = [], {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        for i, frame in enumerate(container.decode(stream)):
            times.append(float((frame.pts - origin) * stream.time_base))
            if i in digests_of:
                digests[i] = digest(frame.to_ndarray(format="rgb24"))
    return times, digests


def reference(times: list[float], segment: Segment, interval: float) -> list[int]:
    """The rule, word for word, on every frame's time: the first frame at or after start; then each
    first frame at or after the previous sample + interval while before end; then the first frame
    at or after end (the video's last frame when end lies beyond it). No frame twice in a segment.
    Returns the positions of the frames taken."""
    eps = 1e-6
    chosen: list[int] = []
    target = segment.start
    for i, time in enumerate(times):
        if time >= segment.end - eps:
            chosen.append(i)
            return chosen
        if time >= target - eps:
            chosen.append(i)
            target = time + interval
    if times and (not chosen or chosen[-1] != len(times) - 1):
        chosen.append(len(times) - 1)
    return chosen


def sampled(path: Path, segments: list[Segment], interval: float) -> Taken:
    taken: Taken = {segment.id: [] for segment in segments}
    for sample in sample_frames(path, segments, interval, threads=0):
        assert sample.index == len(taken[sample.segment_id])
        taken[sample.segment_id].append((sample.time, digest(sample.image)))
    return taken


def segments_for(duration: float, seed: int) -> list[Segment]:
    """Short and long segments at random places (some overlapping), one at the very start, one
    starting on the last second and one ending beyond the video."""
    rng = random.Random(seed)
    segments = [Segment(0, 0.0, min(1.0, duration / 2)), Segment(1, max(0.0, duration - 1.0), duration + 5.0)]
    for i in range(2, 8):
        start = rng.uniform(0.0, duration * 0.95)
        segments.append(Segment(i, start, start + rng.choice([0.04, 0.3, 1.0, 2.7, duration / 2])))
    return segments


def assert_same_samples(path: Path, seed: int) -> None:
    times, _ = decode_everything(path)
    assert times, f"{path.name} decodes no frame"
    segments = segments_for(times[-1] + 1e-3, seed)
    chosen = {
        (interval, segment.id): reference(times, segment, interval)
        for interval in INTERVALS
        for segment in segments
    }
    _, digests = decode_everything(path, {i for positions in chosen.values() for i in positions})
    for interval in INTERVALS:
        got = sampled(path, segments, interval)
        for segment in segments:
            expected = [(times[i], digests[i]) for i in chosen[interval, segment.id]]
            assert [t for t, _ in got[segment.id]] == [t for t, _ in expected], (path.name, interval, segment)
            assert got[segment.id] == expected, f"{path.name}: other pixels in {segment}"


def shared_videos() -> list[Path]:
    videos = sorted(VIDEOS.glob("*.mp4"))
    if DEV_CLIPS.is_dir():
        videos += sorted(p for p in DEV_CLIPS.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return videos


def test_every_shared_video_gives_the_reference_samples() -> None:
    require_shared(VIDEOS)
    require_shared(DEV_CLIPS)
    videos = shared_videos()
    assert len(videos) >= 20
    for seed, path in enumerate(videos):
        assert_same_samples(path, seed)


def encode_vfr(path: Path, durations_ms: list[int]) -> list[float]:
    """Noise frames shown for the given durations (a 1 ms time base, B-frames); their times in seconds."""
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.options = {"preset": "veryfast", "x264-params": "keyint=45:bframes=3"}
        pts, times = 0, []
        for duration in durations_ms:
            noise = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(noise, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            times.append(pts / 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += duration
        for packet in stream.encode():
            container.mux(packet)
    return times


def test_a_variable_frame_rate_video_gives_the_reference_samples(tmp_path: Path) -> None:
    try:
        av.codec.Codec("libx264", "w")
    except (av.FFmpegError, ValueError):
        pytest.skip("this PyAV has no libx264 encoder")
    rng = random.Random(11)
    # Bursts at 60 fps, stretches at 10 fps, irregular webcam jitter and a 2.5 s freeze.
    durations = [17] * 90 + [100] * 40 + [rng.randint(20, 70) for _ in range(150)] + [2500] + [33] * 60
    path = tmp_path / "vfr.mp4"
    times = encode_vfr(path, durations)
    decoded, _ = decode_everything(path)
    assert len(decoded) == len(times)
    gaps = np.diff(decoded)
    assert gaps.min() < 0.02 and gaps.max() > 2.0  # the file really is variable-frame-rate
    assert_same_samples(path, seed=99)
