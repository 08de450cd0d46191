"""The frame sampler: the rule, its decoder path against the rule, and the errors it reports.

The tests encode their own videos: frame ``i`` shows ``i`` in binary as ten black or white
blocks, so a test can tell which frame it was given. H.264 (libx264) with B-frames where
PyAV has it, else MPEG-4 part 2 with B-frames.
"""

from __future__ import annotations

import contextlib
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from video_emotions.domain import Sample, Segment
from video_emotions.errors import InputError, NotFoundError
from video_emotions.video import sampler
from video_emotions.video.sampler import (
    Coverage,
    VideoInfo,
    plan_sample_times,
    probe,
    sample_frames,
    validate_segments,
)

WIDTH, HEIGHT, BITS = 160, 32, 10


def _has_libx264() -> bool:
    try:
        av.codec.Codec("libx264", "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def numbered_frame(number: int, noise: np.random.Generator | None = None) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    for bit in range(BITS):
        if number >> bit & 1:
            image[:, bit * 16 : (bit + 1) * 16] = 255
    if noise is not None:  # a larger file: its header is a small part of it
        image[HEIGHT // 2 :] = noise.integers(0, 256, (HEIGHT // 2, WIDTH, 3), dtype=np.uint8)
    return image


def frame_number(image: np.ndarray) -> int:
    blocks = image[: HEIGHT // 2].reshape(HEIGHT // 2, BITS, 16, 3).mean(axis=(0, 2, 3))
    return sum(1 << bit for bit in range(BITS) if blocks[bit] > 128)


def encode(path: Path, count: int, rate: Fraction, gop: int, *, noisy: bool = False) -> Path:
    """``count`` numbered frames; ``noisy`` writes the header first (faststart) and big frames."""
    noise = np.random.default_rng(0) if noisy else None
    with av.open(str(path), "w", options={"movflags": "faststart"} if noisy else {}) as container:
        if _has_libx264():
            stream = container.add_stream("libx264", rate=rate)
            stream.codec_context.options = {
                "preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=3:b-adapt=0",
            }
        else:
            stream = container.add_stream("mpeg4", rate=rate)
            stream.codec_context.options = {"bf": "2", "g": str(gop)}
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(numbered_frame(i, noise), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video_10fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 10 fps, a keyframe every 2 s: frame i shows at i / 10 s."""
    return encode(tmp_path_factory.mktemp("video") / "ten.mp4", 100, Fraction(10), 20)


@pytest.fixture(scope="module")
def video_2997(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 29.97 fps, a keyframe every 2 s."""
    return encode(tmp_path_factory.mktemp("video") / "ntsc.mp4", 300, Fraction(30000, 1001), 60)


def all_frames(path: Path) -> tuple[list[float], list[int]]:
    """Every frame's time and number, decoding everything."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = stream.start_time or 0
        frames = [
            (float((f.pts - origin) * stream.time_base), frame_number(f.to_ndarray(format="rgb24")))
            for f in container.decode(stream)
        ]
    return [t for t, _ in frames], [n for _, n in frames]


def by_segment(samples: list[Sample]) -> dict[int, list[Sample]]:
    grouped: dict[int, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample.segment_id, []).append(sample)
    return grouped


def test_probe(video_10fps: Path) -> None:
    assert probe(video_10fps) == VideoInfo(
        duration=10.0, fps=10.0, width=WIDTH, height=HEIGHT, frame_count=100
    )


@pytest.mark.parametrize(
    ("start", "end", "interval", "numbers"),
    [
        (0.35, 2.0, 1.0, [4, 14, 20]),  # start between frames; closing frame exactly at end
        (1.0, 3.0, 1.0, [10, 20, 30]),  # bounds on frames
        (0.0, 6.0, 2.5, [0, 25, 50, 60]),
        (8.25, 12.0, 0.5, [83, 88, 93, 98, 99]),  # ends beyond the video: its last frame closes
        (9.4, 11.0, 0.5, [94, 99]),  # ... unless that frame is already a sample
        (3.01, 3.05, 1.0, [31]),  # between two frames: one sample
        (2.0, 2.3, 1.0, [20, 23]),  # starts on a keyframe
        (3.95, 4.3, 1.0, [40, 43]),  # starts just before a keyframe
        (7.0, 9.0, 0.3, [70, 73, 76, 79, 82, 85, 88, 90]),
    ],
)
@pytest.mark.parametrize("skip_nonref", [True, False])
def test_exact_samples(
    video_10fps: Path, start: float, end: float, interval: float, numbers: list[int], skip_nonref: bool
) -> None:
    samples = list(sample_frames(video_10fps, [Segment(7, start, end)], interval, skip_nonref=skip_nonref))
    assert [frame_number(s.image) for s in samples] == numbers
    assert [s.time for s in samples] == pytest.approx([n / 10 for n in numbers])
    assert [s.index for s in samples] == list(range(len(numbers)))
    assert {s.segment_id for s in samples} == {7}


def test_unsorted_overlapping_and_adjacent_segments(video_10fps: Path) -> None:
    segments = [
        Segment(1, 5.0, 6.0),
        Segment(2, 0.0, 1.0),
        Segment(3, 0.5, 1.5),  # overlaps 2
        Segment(4, 1.5, 2.0),  # starts on 3's closing frame
        Segment(5, 2.05, 2.5),  # just after 4
        Segment(6, 2.05, 2.3),  # same start as 5: after it (ties by id)
    ]
    samples = list(sample_frames(video_10fps, segments, 1.0))
    assert [s.segment_id for s in samples] == [2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 1, 1]
    numbers = {i: [frame_number(s.image) for s in group] for i, group in by_segment(samples).items()}
    assert numbers == {2: [0, 10], 3: [5, 15], 4: [15, 20], 5: [21, 25], 6: [21, 23], 1: [50, 60]}
    assert all([s.index for s in group] == [0, 1] for group in by_segment(samples).values())


@pytest.mark.parametrize("interval", [0.5, 1.0, 2.5])
def test_matches_the_rule_on_every_frame(video_2997: Path, interval: float) -> None:
    times, numbers = all_frames(video_2997)
    assert numbers == list(range(300))
    rng = random.Random(interval)
    segments = []
    for i in range(12):
        start = rng.choice([rng.uniform(0, 9.9), times[rng.randrange(300)]])
        end = rng.choice([start + rng.uniform(0.05, 3.0), times[-1] + 0.5])
        segments.append(Segment(i, start, end))
    for skip_nonref in (True, False):
        grouped = by_segment(list(sample_frames(video_2997, segments, interval, skip_nonref=skip_nonref)))
        for segment in segments:
            expected = plan_sample_times(times, segment, interval)
            got = grouped[segment.id]
            assert [s.time for s in got] == expected, segment
            assert [frame_number(s.image) for s in got] == [times.index(t) for t in expected]
            assert [s.index for s in got] == list(range(len(expected)))


def test_plan_sample_times() -> None:
    times = [i / 25 for i in range(115)]
    assert plan_sample_times(times, Segment(0, 0.0, 4.6), 1.0) == [0.0, 1.0, 2.0, 3.0, 4.0, 4.56]
    assert plan_sample_times(times, Segment(0, 4.5, 9.0), 1.0) == [4.52, 4.56]
    assert plan_sample_times(times, Segment(0, 4.57, 9.0), 1.0) == [4.56]
    assert plan_sample_times(times, Segment(0, 1.01, 1.02), 1.0) == [1.04]
    assert plan_sample_times([], Segment(0, 0.0, 1.0), 1.0) == []


def test_one_sample_per_second_and_the_last_frame(test_mp4: Path) -> None:
    """The shared 4.6 s clip at 25 fps (``test.mp4``): samples at 0..4 s, then its last frame."""
    samples = list(sample_frames(test_mp4, [Segment(3, 0.0, 4.6)], 1.0))
    assert [s.time for s in samples] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 4.56])
    assert [s.index for s in samples] == [0, 1, 2, 3, 4, 5]
    info = probe(test_mp4)
    assert all(s.image.shape == (info.height, info.width, 3) for s in samples)


def test_a_whole_shared_video(woman2_mp4: Path) -> None:
    """The shared 15.5 s clip at 29.97 fps (``woman2.mp4``), against the rule on all its frames."""
    with av.open(str(woman2_mp4)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    segment = Segment(1, 0.0, 15.5)
    samples = list(sample_frames(woman2_mp4, [segment], 1.0))
    assert [s.time for s in samples] == plan_sample_times(times, segment, 1.0)
    assert len(samples) == 17 and samples[-1].time == times[-1]


def test_decoding_starts_at_the_keyframe_a_sample_sits_on(
    video_10fps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment starting on a keyframe is decoded from that keyframe, not from the one before it
    (a whole group of frames decoded for nothing: P-frames run further ahead of their decoding
    time than keyframes do), and so is a sample on a keyframe inside a segment."""
    decoded: list[float] = []
    frame_time = sampler._Pass._frame_time

    def recording(self: sampler._Pass, frame: av.VideoFrame) -> float:
        decoded.append(frame_time(self, frame))
        return decoded[-1]

    monkeypatch.setattr(sampler._Pass, "_frame_time", recording)
    segments = [Segment(1, 0.0, 0.5), Segment(2, 4.0, 4.5), Segment(3, 6.5, 8.0)]
    samples = by_segment(list(sample_frames(video_10fps, segments, 1.0)))
    assert {key: [s.time for s in value] for key, value in samples.items()} == {
        1: [0.0, 0.5],
        2: [4.0, 4.5],
        3: [6.5, 7.5, 8.0],
    }
    assert [frame_number(s.image) for s in samples[3]] == [65, 75, 80]
    # Keyframes every 2 s: nothing between the first segment and the keyframe at 4 s, nor
    # from the second segment's end to the keyframe at 6 s.
    assert not [time for time in decoded if 0.8 < time < 4.0 - 1e-6 or 4.8 < time < 6.0 - 1e-6]


def test_image_is_rgb_uint8(video_10fps: Path) -> None:
    (sample, *_) = sample_frames(video_10fps, [Segment(0, 1.0, 1.05)], 1.0)
    assert sample.image.shape == (HEIGHT, WIDTH, 3)
    assert sample.image.dtype == np.uint8
    assert frame_number(sample.image) == 10


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        probe(tmp_path / "absent.mp4")
    with pytest.raises(NotFoundError):
        list(sample_frames(tmp_path / "absent.mp4", [Segment(0, 0.0, 1.0)], 1.0))


def test_text_file_is_no_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video, just some words\n" * 100)
    with pytest.raises(InputError, match="does not decode as video"):
        probe(path)
    with pytest.raises(InputError, match="does not decode as video"):
        list(sample_frames(path, [Segment(0, 0.0, 1.0)], 1.0))


def test_truncated_file(video_10fps: Path, tmp_path: Path) -> None:
    """A file cut short before its index (the mp4 header written last) does not open."""
    data = video_10fps.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(InputError, match="does not decode as video"):
        probe(path)


def test_a_file_cut_short_is_sampled_as_far_as_it_decodes(tmp_path: Path) -> None:
    """A file cut short after its header (index first) opens and is sampled up to its last frame that
    decodes, which closes a segment running past it, as decoding everything finds; ``Coverage`` says
    where that was, and a segment that starts after it gets no samples."""
    data = encode(tmp_path / "whole.mp4", 50, Fraction(10), 20, noisy=True).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 3 // 10])
    assert probe(path).duration == 5.0
    times, numbers = [], []  # every frame that decodes, decoding everything until the decoder fails
    with av.open(str(path)) as container, contextlib.suppress(av.FFmpegError):
        for frame in container.decode(container.streams.video[0]):
            times.append(float(frame.pts * frame.time_base))
            numbers.append(frame_number(frame.to_ndarray(format="rgb24")))
    assert 0 < len(times) < 50 and numbers == list(range(len(times)))

    coverage = Coverage()
    running_past, after = Segment(0, 0.0, 4.5), Segment(1, 4.6, 4.9)
    samples = by_segment(list(sample_frames(path, [running_past, after], 1.0, coverage=coverage)))
    assert [s.time for s in samples[0]] == plan_sample_times(times, running_past, 1.0)
    assert samples[0][-1].time == times[-1]  # the last frame that decodes closes it
    assert [frame_number(s.image) for s in samples[0]] == [times.index(s.time) for s in samples[0]]
    assert 1 not in samples
    assert coverage.decoded_until == pytest.approx(times[-1])
    assert coverage.reason == "the file ends before the last frame its index lists"

    # Seeking past the cut (to a keyframe the index lists but the file lacks) finds nothing either.
    seeking = Coverage()
    early = Segment(2, 0.0, 0.5)
    samples = by_segment(list(sample_frames(path, [early, after], 1.0, coverage=seeking)))
    assert [s.time for s in samples[2]] == plan_sample_times(times, early, 1.0) and 1 not in samples
    assert seeking.decoded_until is not None and seeking.decoded_until < after.start

    whole = Coverage()
    list(sample_frames(tmp_path / "whole.mp4", [running_past], 1.0, coverage=whole))
    assert whole.decoded_until is None and whole.reason is None


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (Segment(41, 2.0, 2.0), "segment 41 ends at 2.000 s, not after its start"),
        (Segment(42, 3.0, 1.0), "segment 42 ends at 1.000 s"),
        (Segment(43, -0.5, 1.0), "segment 43 starts before the video"),
        (
            Segment(44, 10.0, 12.0),
            r"segment 44 starts at 10000 ms \(10.000 s\), at or after the end of the video",
        ),
        (Segment(45, 2500.0, 3000.0), r"segment 45 starts at 2500000 ms \(2500.000 s\)"),
        (Segment(46, float("nan"), 1.0), "segment 46: start and end must be finite"),
    ],
)
def test_bad_segments(video_10fps: Path, segment: Segment, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_segments([Segment(1, 0.0, 1.0), segment], probe(video_10fps))
    with pytest.raises(InputError, match=message):
        list(sample_frames(video_10fps, [segment], 1.0))


def test_duplicate_segment_ids(video_10fps: Path) -> None:
    with pytest.raises(InputError, match="segment 1 is given twice"):
        validate_segments([Segment(1, 0.0, 1.0), Segment(1, 2.0, 3.0)], probe(video_10fps))


@pytest.mark.parametrize("interval", [0.0, -1.0, float("inf")])
def test_bad_interval(video_10fps: Path, interval: float) -> None:
    with pytest.raises(InputError, match="interval"):
        list(sample_frames(video_10fps, [Segment(0, 0.0, 1.0)], interval))
    with pytest.raises(InputError, match="interval"):
        plan_sample_times([0.0], Segment(0, 0.0, 1.0), interval)
