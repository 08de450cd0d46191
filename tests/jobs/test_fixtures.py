"""The job tests' own helpers, checked without the job system: long videos, segments, brokers."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av
import kombu
import numpy as np
import pytest
import redis

from tests.jobs.conftest import BLANK_FOR_S, blank_at, long_face_video, speech_segments


def test_long_face_video_has_the_duration_size_and_blank_stretches(tmp_path: Path) -> None:
    """A 1-minute video decodes at the asked size and length, with face and blank frames."""
    path = long_face_video(tmp_path / "long.mp4", 1.0, fps=5, size=(320, 180))
    spreads: dict[bool, list[float]] = {True: [], False: []}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 60.0) <= 0.5
        for frame in container.decode(stream):
            assert frame.time is not None
            pixels = frame.to_ndarray(format="rgb24").astype(float)
            spreads[blank_at(frame.time)].append(float(np.abs(pixels - 128).mean()))
    assert len(spreads[True]) == 2 * BLANK_FOR_S * 5  # at 20 s and at 40 s
    assert len(spreads[True]) + len(spreads[False]) == 300
    # The astronaut photo's mean is itself about 128, so compare the distance from the grey instead.
    assert max(spreads[True]) < 3
    assert min(spreads[False]) > 20


@pytest.mark.parametrize("seconds", [240.0, 61.5, 5.0])
def test_speech_segments_cover_the_video_alternating(seconds: float) -> None:
    """Segments tile [0, duration] in ms, no gaps or overlaps, speakers alternating from the candidate."""
    segments = speech_segments(seconds)
    assert segments[0]["start"] == 0
    assert segments[-1]["end"] == round(seconds * 1000)
    for before, after in pairwise(segments):
        assert before["end"] == after["start"]
        assert before["speaker"] != after["speaker"]
    assert all(s["start"] < s["end"] and s["speaker"] in (0, 1) for s in segments)
    assert segments[0]["speaker"] == 0
    assert all(s["end"] - s["start"] == 12000 for s in segments[:-1] if s["speaker"] == 0)
    assert all(s["end"] - s["start"] == 4000 for s in segments[:-1] if s["speaker"] == 1)


def test_redis_url_connects(redis_url: str) -> None:
    """The test run's Redis database answers, and was flushed."""
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert client.connection_pool.connection_kwargs["db"] != 0
    finally:
        client.close()


def test_rabbitmq_url_connects(rabbitmq_url: str, queue_name: str) -> None:
    """RabbitMQ takes a message on a fresh queue and hands it back."""
    with kombu.Connection(rabbitmq_url, connect_timeout=3) as connection:
        queue = kombu.Queue(queue_name, kombu.Exchange(""), routing_key=queue_name, auto_delete=True)
        with connection.SimpleQueue(queue) as simple:
            simple.put({"hello": queue_name})
            message = simple.get(timeout=5)
            assert message.payload == {"hello": queue_name}
            message.ack()
