"""Sampling one video with several decoders at once, each on one core, ahead of the consumer.

FFmpeg's frame threads do not pay on the sampler's pattern (seek, skip the frames no sample
needs, decode a few, seek again): on the 10-minute benchmark interview two frame threads took
25% more CPU for the same wall time as one. Separate decoders do pay: each has its own
container and decodes its own share of the segments, so their work never waits on each other.

The segments, sorted by start, are dealt out in turn (the first to decoder 0, the second to
decoder 1, ...): each decoder's share spreads over the whole video and the shares end about
together. Samples come through one bounded queue, each segment's in order, the segments of
different decoders interleaved.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from video_emotions.domain import Sample, Segment
from video_emotions.video.sampler import MAX_PIXELS, Coverage, sample_frames

#: Decoders for one video by default: one per core, up to this many (more than a single
#: inference thread can keep up with).
MAX_DECODERS = 4

_DONE = object()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def default_decoders() -> int:
    return min(MAX_DECODERS, available_cores())


def deal(segments: Sequence[Segment], decoders: int) -> list[list[Segment]]:
    """The segments in order of start, dealt out in turn to at most ``decoders`` shares (none empty)."""
    ordered = sorted(segments, key=lambda s: (s.start, s.id))
    count = max(1, decoders)
    return [share for share in (ordered[i::count] for i in range(count)) if share]


def sample_in_parallel(
    path: Path,
    segments: Sequence[Segment],
    interval: float,
    *,
    decoders: int,
    depth: int,
    coverage: Coverage | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[tuple[int, Sample]]:
    """:func:`sample_frames` over :func:`deal`'s shares, each in a thread of its own with one
    decoding thread: yields (share number, sample), at most ``depth`` samples decoded ahead.

    Every share's samples come in its order; an error in any share is raised here. For a video
    cut short, ``coverage`` gets the last frame that decodes (the latest end a decoder found:
    a decoder whose share lies before the cut finds none).
    """
    shares = deal(segments, decoders)
    handoff: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    found = [Coverage() for _ in shares]

    def produce(number: int, share: list[Segment]) -> None:
        try:
            samples = sample_frames(
                path, share, interval, threads=1, coverage=found[number], max_pixels=max_pixels
            )
            for sample in samples:
                if stop.is_set():
                    return
                handoff.put((number, sample))
            handoff.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            handoff.put(exc)

    # Each with a copy of the caller's context: what the sampler logs carries the job's id.
    threads = [
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(produce, number, share),
            name=f"frame-sampler-{number}",
            daemon=True,
        )
        for number, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = handoff.get()
            if item is _DONE:
                running -= 1
                continue
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, tuple)
            yield item
        if coverage is not None:
            ends = [c for c in found if c.decoded_until is not None]
            if ends:
                latest = max(ends, key=lambda c: c.decoded_until or 0.0)
                coverage.decoded_until, coverage.reason = latest.decoded_until, latest.reason
    finally:
        stop.set()
        for thread in threads:
            while thread.is_alive():
                try:
                    handoff.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
