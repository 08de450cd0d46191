"""The seed service's algorithm, re-implemented for the benchmarks (not product code).

As the seed's ``VideoEmotions.split_and_predict`` ran: the video's bytes are read into memory
and opened from there; for each segment, in the order the database gives them, the container
seeks to the segment's start (the keyframe before it) and every frame from there is decoded,
up to the segment's closing frame; the samples the rule takes (ARCHITECTURE §3) are converted
as the seed converted them (a PIL image, then an array) and handed to the model one at a time:
no batching, no overlap of decoding and inference. PyAV's default threading, as the seed left
it (slice threads: one thread on the single-slice H.264 that webcam recorders write).
:func:`seed_samples` is that decoding; :func:`run_seed` adds the model.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from video_emotions.domain import FrameEstimate, Sample, Segment
from video_emotions.vision.engine import EmotionEngine


def seed_samples(path: Path, segments: Sequence[Segment], interval: float) -> Iterator[Sample]:
    """Per segment: seek to its start, decode every frame to the closing frame, convert the samples."""
    with av.open(io.BytesIO(path.read_bytes())) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        for segment in segments:
            container.seek(int(segment.start * av.time_base))
            target, index, taken, last = segment.start, 0, None, None
            for frame in container.decode(video=0):
                time = float((frame.pts - origin) * stream.time_base)
                last = (time, frame)
                if time >= min(target, segment.end) - 1e-6:
                    yield Sample(segment.id, index, time, np.array(frame.to_image()))
                    index, target, taken = index + 1, time + interval, time
                    if time >= segment.end - 1e-6:
                        break
            else:  # the segment ends beyond the video: its last frame closes it
                if last is not None and taken != last[0]:
                    yield Sample(segment.id, index, last[0], np.array(last[1].to_image()))


def run_seed(
    path: Path, segments: Sequence[Segment], interval: float, engine: EmotionEngine
) -> list[tuple[int, int, float, FrameEstimate]]:
    """The seed's whole analysis: its decoding, and the model called on one frame at a time.
    Per sample: segment id, index in the segment, time and the estimate."""
    return [
        (sample.segment_id, sample.index, sample.time, engine.estimate([sample.image])[0])
        for sample in seed_samples(path, segments, interval)
    ]
