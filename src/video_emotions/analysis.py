"""Segments + video + engine → per-segment results. No database, no network: pure analysis.

Decoding and inference overlap: decoders (one per core, :mod:`video_emotions.video.parallel`)
run in threads of their own and hand frames through a small queue to the engine, which
classifies them in batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from video_emotions.domain import FrameResult, Sample, Segment, SegmentResult
from video_emotions.errors import InputError
from video_emotions.observability.metrics import time_model
from video_emotions.video.parallel import default_decoders, sample_in_parallel
from video_emotions.video.sampler import MAX_PIXELS, Coverage, VideoInfo, probe, validate_segments
from video_emotions.vision.engine import EmotionEngine

#: Frames classified together: big enough for batching to pay, small enough to keep memory low.
BATCH_SIZE = 16
#: Decoded frames held at once (the batch and the sampler's queue ahead of it) stay under this:
#: up to 1080p the whole batch and a queue of two batches; a 4K video holds fewer frames.
FRAME_BUDGET_BYTES = 320 * 1024 * 1024


def batching(width: int, height: int) -> tuple[int, int]:
    """The batch size and the sampler's queue depth for frames of this size (RGB, 3 bytes a pixel)."""
    frames = max(2, FRAME_BUDGET_BYTES // max(1, width * height * 3))
    batch = max(1, min(BATCH_SIZE, frames // 3))
    return batch, max(1, min(2 * BATCH_SIZE, frames - batch))


def expected_samples(segments: Sequence[Segment], interval: float, duration: float) -> int:
    """About how many frames the sampling rule takes (for progress bars)."""
    total = 0
    for segment in segments:
        length = max(0.0, min(segment.end, duration) - segment.start)
        total += math.ceil(length / interval) + 1
    return total


def analyse_video(
    path: Path,
    segments: Sequence[Segment],
    engine: EmotionEngine,
    *,
    interval: float,
    progress: Callable[[int, int, int], None] | None = None,
    max_pixels: int = MAX_PIXELS,
    decoders: int | None = None,
) -> list[SegmentResult]:
    """Sample each segment of ``path`` and estimate the candidate's expression in every sample.

    Returns one result per segment, in the order given. ``progress(samples_done, samples_expected,
    segments_done)`` is called after each batch and once at the end; an exception it raises stops
    the analysis. A video cut short is analysed as far as it decodes: the results of the segments
    it does not cover say so (``decoded_until``). ``decoders``: how many decode at once (None: one
    per core). Raises InputError for a video or segments the analysis cannot use.
    """
    if not segments:
        raise InputError("no candidate segments to analyse")
    if len({segment.id for segment in segments}) != len(segments):
        raise InputError("segment ids must be unique")
    info = probe(path, max_pixels=max_pixels)
    validate_segments(segments, info)
    expected = expected_samples(segments, interval, info.duration)
    offset = 0  # samples of a first pass that was done again

    def report(done: int, finished: int) -> None:
        if progress is not None:
            progress(offset + done, offset + max(expected, done), finished)

    decoders = default_decoders() if decoders is None else decoders
    results, coverage, done = _estimate(path, segments, engine, interval, info, decoders, max_pixels, report)
    if coverage.decoded_until is not None and decoders > 1:
        # Cut short: where decoding stops depends on the path a decoder took to it, and decoders
        # that went different ways disagree by a frame or two. One decoder gives one answer.
        offset = done
        results, coverage, done = _estimate(path, segments, engine, interval, info, 1, max_pixels, report)
    if progress is not None:
        progress(offset + done, offset + done, len(segments))
    if coverage.decoded_until is not None:
        end = coverage.decoded_until
        for result in results.values():
            if result.segment.end > end:
                result.decoded_until = end
                result.uncovered_reason = coverage.reason
                # About one sample per interval past the end; a segment with none of its own, its
                # closing frame too (a covered one was closed by the last frame that decodes).
                missed = math.ceil((result.segment.end - max(result.segment.start, end)) / interval)
                result.uncovered_samples = missed if result.frames else missed + 1
    return [results[segment.id] for segment in segments]


def _estimate(
    path: Path,
    segments: Sequence[Segment],
    engine: EmotionEngine,
    interval: float,
    info: VideoInfo,
    decoders: int,
    max_pixels: int,
    report: Callable[[int, int], None],
) -> tuple[dict[int, SegmentResult], Coverage, int]:
    """One pass: every sample through the engine. The results by segment id, where decoding
    stopped, and the samples done; ``report(samples_done, segments_done)`` after each batch."""
    results = {segment.id: SegmentResult(segment) for segment in segments}
    done = 0
    batch: list[tuple[int, Sample]] = []
    current: dict[int, int] = {}  # per decoder, the segment whose samples it is giving
    finished = 0  # segments whose samples are all in (their decoder went on to another one)

    def flush() -> None:
        nonlocal done, finished
        with time_model(engine.name):
            estimates = engine.estimate([sample.image for _, sample in batch])
        for (decoder, sample), estimate in zip(batch, estimates, strict=True):
            results[sample.segment_id].frames.append(FrameResult(sample.index, sample.time, estimate))
            # A segment is done once its decoder has begun the next: its closing sample came first.
            if current.setdefault(decoder, sample.segment_id) != sample.segment_id:
                finished += 1
                current[decoder] = sample.segment_id
        done += len(batch)
        batch.clear()
        report(done, finished)

    coverage = Coverage()
    batch_size, depth = batching(info.width, info.height)
    samples = sample_in_parallel(
        path, segments, interval, decoders=decoders, depth=depth, coverage=coverage, max_pixels=max_pixels
    )
    for item in samples:
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return results, coverage, done
