"""Segments + video + engine → per-segment results. No database, no network: pure analysis.

Decoding and inference overlap: the sampler runs in a thread of its own and hands frames
through a small queue to the engine, which classifies them in batches.
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from video_emotions.domain import FrameResult, Sample, Segment, SegmentResult
from video_emotions.errors import InputError
from video_emotions.observability.metrics import time_model
from video_emotions.video.sampler import MAX_PIXELS, Coverage, probe, sample_frames, validate_segments
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


_DONE = object()


def expected_samples(segments: Sequence[Segment], interval: float, duration: float) -> int:
    """About how many frames the sampling rule takes (for progress bars)."""
    total = 0
    for segment in segments:
        length = max(0.0, min(segment.end, duration) - segment.start)
        total += math.ceil(length / interval) + 1
    return total


def _background(samples: Iterator[Sample], depth: int) -> Iterator[Sample]:
    """Run ``samples`` in a thread, ``depth`` frames ahead of the consumer; re-raise its errors here."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for sample in samples:
                if stop.is_set():
                    return
                handoff.put(sample)
            handoff.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(exc)

    # With a copy of the caller's context: what the sampler logs carries the job's id.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(produce,), name="frame-sampler", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Sample)
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                handoff.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def analyse_video(
    path: Path,
    segments: Sequence[Segment],
    engine: EmotionEngine,
    *,
    interval: float,
    progress: Callable[[int, int, int], None] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> list[SegmentResult]:
    """Sample each segment of ``path`` and estimate the candidate's expression in every sample.

    Returns one result per segment, in the order given. ``progress(samples_done, samples_expected,
    segments_done)`` is called after each batch and once at the end; an exception it raises stops
    the analysis. A video cut short is analysed as far as it decodes: the results of the segments
    it does not cover say so (``decoded_until``). Raises InputError for a video or segments the
    analysis cannot use.
    """
    if not segments:
        raise InputError("no candidate segments to analyse")
    if len({segment.id for segment in segments}) != len(segments):
        raise InputError("segment ids must be unique")
    info = probe(path, max_pixels=max_pixels)
    validate_segments(segments, info)
    expected = expected_samples(segments, interval, info.duration)
    results = {segment.id: SegmentResult(segment) for segment in segments}
    done = 0
    batch: list[Sample] = []
    begun: list[int] = []  # the segments whose samples have begun, in the sampler's order

    def flush() -> None:
        nonlocal done
        with time_model(engine.name):
            estimates = engine.estimate([sample.image for sample in batch])
        for sample, estimate in zip(batch, estimates, strict=True):
            results[sample.segment_id].frames.append(FrameResult(sample.index, sample.time, estimate))
            if not begun or begun[-1] != sample.segment_id:
                begun.append(sample.segment_id)
        done += len(batch)
        batch.clear()
        if progress is not None:
            # A segment is done once the next one has begun: its closing sample came first.
            progress(done, max(expected, done), max(len(begun) - 1, 0))

    coverage = Coverage()
    samples = sample_frames(path, segments, interval, threads=0, coverage=coverage, max_pixels=max_pixels)
    batch_size, depth = batching(info.width, info.height)
    for sample in _background(samples, depth=depth):
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if progress is not None:
        progress(done, done, len(segments))
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
