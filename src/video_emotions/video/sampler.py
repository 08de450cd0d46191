"""Frame sampling (ARCHITECTURE §3): the rule, and one ordered decoding pass that applies it.

The rule, for a segment ``[start, end)`` and an interval ``Δ``: take the first frame at or
after ``start``; then each first frame at or after (the previous sample's time + ``Δ``) while
that frame is before ``end``; then the first frame at or after ``end``, the closing frame (the
video's last frame when ``end`` lies beyond it). No frame is taken twice in a segment. Frame
times are presentation times in seconds from the video stream's first frame.

:func:`plan_sample_times` applies the rule to a list of frame times. :func:`sample_frames`
applies the same rule (the same :class:`_Rule`) while decoding and returns the very same
frames as decoding everything would, for a fraction of the cost:

- one pass over the segments sorted by start. It seeks back for an overlapping segment, and
  forward (to a segment's start or to its next sample) when the keyframe before that time has
  not been read yet: decoding on from there would cost more than decoding from that keyframe.
  Without a keyframe index it seeks forward over gaps longer than :data:`SEEK_GAP_S`;
- decoder threads;
- a packet whose frame is earlier than the earliest frame the current segment can still take
  is decoded with ``skip_frame = "NONREF"``: the decoder drops it when no other frame refers
  to it. Every frame the rule may take is decoded, so the samples stay exact;
- only the samples are converted to RGB arrays.

A recording cut short (its index lists more frames than the file holds, or decoding fails part
way) is sampled as far as it decodes: the last frame that decodes is the end of the video for
the rule, and :class:`Coverage` says where that was, so that the caller can report the rest.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from video_emotions.domain import Sample, Segment
from video_emotions.errors import InputError, NotFoundError

#: The largest frame (width x height) a video may declare by default: 4096x2304, above 4K UHD.
MAX_PIXELS = 4096 * 2304

#: Without a keyframe index, seek forward only over gaps longer than this (seconds).
SEEK_GAP_S = 3.0

# Tolerance (seconds) when comparing times computed from timestamps with segment bounds.
_EPS = 1e-6
# Frames in the video's last second are never skipped: the last frame closes the segments
# that end beyond the video, and it may be a non-reference frame.
_TAIL_S = 1.0
# Decoders whose skip_frame="NONREF" drops only frames that no other frame refers to.
_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video", "h263"})

_DecodedFrame = tuple[float, VideoFrame]


@dataclass(frozen=True)
class VideoInfo:
    """What the header of a video says.

    ``duration`` in seconds (the video stream's, else the container's; ``math.inf`` when the
    file does not say), ``fps`` the nominal frame rate (0.0 when unknown), ``frame_count``
    ``None`` when the header does not say.
    """

    duration: float
    fps: float
    width: int
    height: int
    frame_count: int | None


@dataclass
class Coverage:
    """Filled in by :func:`sample_frames`: where a video that ends early stops decoding.

    ``decoded_until`` is the time of the last frame that decodes (None: the video decoded to
    its end), ``reason`` why decoding stopped there.
    """

    decoded_until: float | None = None
    reason: str | None = None


def probe(path: Path, *, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """Read a video's header and decode its first frame, so that a file that is no video fails here.

    A header declaring frames of more than ``max_pixels`` is refused before anything is decoded.
    """
    with _open(path, max_pixels) as container:
        stream = _video_stream(container, path, max_pixels)
        info = _info(container, stream, path, max_pixels)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            raise _not_video(path, err) from err
        if first is None:
            raise _not_video(path, "no frame")
    return info


def packets_end(path: Path, *, max_pixels: int = MAX_PIXELS) -> float | None:
    """The time (seconds from the first frame, as the sampler counts) of the last whole video packet
    the file holds: where its data ends. Packets are read, not decoded, so a long video costs a read
    of the file. A recording cut short ends well before :func:`ends_early` allows; decoding may stop
    a few frames earlier still (frames waiting on the packet that was cut). None: no packet has a
    timestamp."""
    with _open(path, max_pixels) as container:
        stream = _video_stream(container, path, max_pixels)
        origin = stream.start_time or 0
        last: float | None = None
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.is_corrupt:  # the flush packet; a packet cut short
                    continue
                time = float((packet.pts - origin) * stream.time_base)
                last = time if last is None else max(last, time)
        except av.FFmpegError:
            pass  # the data ends here
    return last


def end_slack(info: VideoInfo) -> float:
    """How far before the declared duration a video's last frame may lie in a file that is whole
    (one frame's time; a second or two frames here)."""
    return max(_TAIL_S, 2 / info.fps) if info.fps > 0 else _TAIL_S


def ends_early(info: VideoInfo, end: float | None) -> bool:
    """Whether a video whose frames (or packets) end at ``end`` stops well before its header says."""
    return end is not None and end < info.duration - end_slack(info) < math.inf


def validate_segments(segments: Sequence[Segment], info: VideoInfo) -> None:
    """Reject segments that cannot be sampled.

    A segment may end after the video (its closing frame is then the video's last frame) but
    must start before the video's end.
    """
    seen: set[int] = set()
    for segment in segments:
        start, end = segment.start, segment.end
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InputError(f"segment {segment.id}: start and end must be finite (got {start}, {end})")
        if start < 0:
            raise InputError(f"segment {segment.id} starts before the video, at {start:.3f} s")
        if end <= start:
            raise InputError(f"segment {segment.id} ends at {end:.3f} s, not after its start {start:.3f} s")
        if start >= info.duration:
            raise InputError(
                f"segment {segment.id} starts at {start * 1000:.0f} ms ({start:.3f} s), at or after the end "
                f"of the video ({info.duration:.3f} s); the results table holds milliseconds"
            )
        if segment.id in seen:
            raise InputError(f"segment {segment.id} is given twice")
        seen.add(segment.id)


def plan_sample_times(frame_times: Sequence[float], segment: Segment, interval: float) -> list[float]:
    """The rule applied to the times of all the frames of a video (seconds, ascending)."""
    _check_interval(interval)
    rule = _Rule(segment, interval)
    taken: list[float] = []
    for time in frame_times:
        verdict = rule.offer(time)
        if verdict is not _Verdict.SKIP:
            taken.append(time)
        if verdict is _Verdict.CLOSE:
            return taken
    if frame_times and rule.wants_last_frame():
        taken.append(frame_times[-1])
    return taken


def sample_frames(
    path: Path,
    segments: Sequence[Segment],
    interval: float,
    *,
    threads: int = 0,
    skip_nonref: bool = True,
    coverage: Coverage | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Sample]:
    """Decode the samples of every segment in one ordered pass.

    Segments come in order of start (ties by id); a segment's samples come in time order with
    ``index`` counting from 0. ``threads`` is the decoder's thread count (0: one per core).
    ``skip_nonref=False`` decodes every frame; the samples are the same, only slower.
    A video that ends before its header says is sampled up to its last frame that decodes;
    ``coverage`` then says where that was, and segments starting after it have no samples.
    This is a generator: a missing file, a bad video or bad segments raise on the first ``next()``.
    """
    _check_interval(interval)
    with _open(path, max_pixels) as container:
        stream = _video_stream(container, path, max_pixels)
        info = _info(container, stream, path, max_pixels)
        validate_segments(segments, info)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        decoding = _Pass(
            path, container, stream, info, interval, skip_nonref=skip_nonref, max_pixels=max_pixels
        )
        for segment in sorted(segments, key=lambda s: (s.start, s.id)):
            if decoding.decoded_until is not None and segment.start > decoding.decoded_until + _EPS:
                continue  # past the last frame that decodes
            yield from decoding.samples(segment)
            if coverage is not None and decoding.decoded_until is not None:
                coverage.decoded_until, coverage.reason = decoding.decoded_until, decoding.end_reason


class _Verdict(enum.Enum):
    SKIP = "skip"  # not a sample
    TAKE = "take"  # a sample; more may follow
    CLOSE = "close"  # the closing frame: a sample, and the segment is complete


class _Rule:
    """The rule for one segment, fed frame times in presentation order (shared by both paths)."""

    def __init__(self, segment: Segment, interval: float) -> None:
        self._end = segment.end
        self._interval = interval
        self._target = segment.start
        self._took_last_offered = False

    @property
    def threshold(self) -> float:
        """No frame earlier than this can be a sample any more."""
        return min(self._target, self._end)

    def offer(self, time: float) -> _Verdict:
        if time >= self._end - _EPS:
            verdict = _Verdict.CLOSE
        elif time >= self._target - _EPS:
            verdict = _Verdict.TAKE
            self._target = time + self._interval
        else:
            verdict = _Verdict.SKIP
        self._took_last_offered = verdict is not _Verdict.SKIP
        return verdict

    def wants_last_frame(self) -> bool:
        """At the end of the video, with no closing frame seen: whether its last frame is still due."""
        return not self._took_last_offered


class _Pass:
    """One ordered decoding pass: positions the decoder for each segment and feeds its rule."""

    def __init__(
        self,
        path: Path,
        container: InputContainer,
        stream: VideoStream,
        info: VideoInfo,
        interval: float,
        *,
        skip_nonref: bool,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self._path = path
        self._max_pixels = max_pixels
        # The duration the header declares, and how far before it the last frame may lie (one
        # frame's time, in a file that does not lie; a second or two frames here).
        self._declared = info.duration
        self._slack = end_slack(info)
        self._container = container
        self._stream = stream
        self._codec = stream.codec_context
        self._interval = interval
        self._origin = stream.start_time or 0
        self._index = stream.index_entries
        self._file_size = path.stat().st_size
        # Decoding timestamp of the latest packet read (decoding starts at the first keyframe).
        self._read_dts = self._index[0].timestamp if len(self._index) else -math.inf
        # The decoding timestamp of the last packet the index lists.
        self._final_dts = next((e.timestamp for e in reversed(self._index) if not e.is_discard), -math.inf)
        # The most a keyframe's presentation timestamp was seen ahead of its decoding timestamp
        # (other frames run further ahead: a P-frame is shown after the B-frames decoded after it).
        self._key_reorder = 0
        # Packets earlier than this are never skipped (-inf: skipping is off).
        skippable = skip_nonref and self._codec.name in _NONREF_CODECS and math.isfinite(info.duration)
        self._skip_ceiling = info.duration - _TAIL_S if skippable else -math.inf
        self._skip_mode = self._codec.skip_frame
        self._rule = _Rule(Segment(-1, 0.0, math.inf), interval)  # replaced for each segment
        self._frames: Iterator[_DecodedFrame] = self._decode()
        self._last: _DecodedFrame | None = None  # the latest decoded frame
        self._prev_time: float | None = -math.inf  # the one before it; None: unknown (after a seek)
        self._max_skipped = -math.inf  # the latest packet sent with NONREF since the last seek
        #: The last frame that decodes, once the file was seen to end early (None until then).
        self.decoded_until: float | None = None
        self.end_reason: str | None = None

    def samples(self, segment: Segment) -> Iterator[Sample]:
        rule = self._rule = _Rule(segment, self._interval)
        self._position_for(segment.start)
        index = 0
        while (decoded := next(self._frames, None)) is not None:
            time, frame = decoded
            verdict = rule.offer(time)
            if verdict is not _Verdict.SKIP:
                yield Sample(segment.id, index, time, _image(frame))
                index += 1
            if verdict is _Verdict.CLOSE:
                return
            if verdict is _Verdict.TAKE and self._worth_seeking(rule.threshold):
                self._seek(rule.threshold)
        # A cut file may just end: the decoder can drop its partial last packet quietly.
        if self._read_dts < self._final_dts:
            self._ended_early("the file ends before the last frame its index lists")
        elif self._last is not None and self._last[0] < self._declared - self._slack < math.inf:
            # Frames ending well before the header says (a header that lies): the rest is reported
            # as for a cut file, and a segment after the last frame is not closed by a frame before it.
            self._ended_early(f"its last frame; its header declares {self._declared:.3f} s")
        if self.decoded_until is not None and segment.start > self.decoded_until + _EPS:
            return  # the segment lies past the last frame that decodes: nothing closes it
        if self._last is not None and rule.wants_last_frame():
            time, frame = self._last
            yield Sample(segment.id, index, time, _image(frame))

    def _position_for(self, start: float) -> None:
        """Make the first frame at or after ``start`` in ``self._frames`` the rule's first frame."""
        if self._last is None or self._last[0] < start - _EPS:  # the decoder is before start
            if self._worth_seeking(start):
                self._seek(start)
        # At or past start, the last frame is the first one at or after start if the frame
        # decoded before it, and every frame the decoder may have skipped, are earlier.
        elif self._prev_time is not None and max(self._prev_time, self._max_skipped) < start - _EPS:
            self._frames = itertools.chain([self._last], self._frames)
        else:
            self._seek(start)

    def _worth_seeking(self, time: float) -> bool:
        """Whether seeking to ``time`` spares decoding: its keyframe has not been read yet, and the
        file holds it (a recording cut short lists keyframes past its end: decoding on finds the end)."""
        if len(self._index) < 2:  # no index, or one still to be read (Matroska's cues)
            position = self._last[0] if self._last is not None else 0.0
            return time - position > SEEK_GAP_S
        # The index lists decoding timestamps: a keyframe shown at ``time`` is listed its reorder
        # delay earlier.
        found = self._index.search_timestamp(self._timestamp(time) - self._key_reorder)
        if found < 0:
            return False
        entry = self._index[found]
        return entry.timestamp > self._read_dts and entry.pos + entry.size <= self._file_size

    def _timestamp(self, time: float) -> int:
        return self._origin + int(time / self._stream.time_base)

    def _seek(self, start: float) -> None:
        """Put the decoder on a keyframe before ``start``.

        Demuxers seek by presentation time (MP4, Matroska) or by decoding time: seeking by
        ``start`` itself lands on the keyframe shown at or before it (a keyframe just before
        ``start`` included, where seeking back by the reorder delay of other frames would land a
        whole group of frames early), or on one shown after it. Then step back until the first
        frame decoded is not later than ``start``.
        """
        back = 0.0
        while True:
            target = start - back
            from_origin = target <= 0
            try:
                if from_origin:  # by container time: MPEG-TS lands on a later keyframe otherwise
                    self._container.seek(min(0, int(self._origin * self._stream.time_base * av.time_base)))
                else:
                    self._container.seek(self._timestamp(target), stream=self._stream)
            except av.FFmpegError as err:
                raise self._broken(err) from err
            self._frames = self._decode()
            self._last = None
            self._prev_time = -math.inf if from_origin else None
            self._max_skipped = -math.inf
            first = next(self._frames, None)
            if first is None and self.decoded_until is not None:
                return  # the video stops decoding before ``start``
            if from_origin or (first is not None and first[0] < start + _EPS):
                if first is not None:
                    self._frames = itertools.chain([first], self._frames)
                return
            back = max(1.0, 2 * back)

    def _decode(self) -> Iterator[_DecodedFrame]:
        try:
            for packet in self._container.demux(self._stream):
                if packet.dts is not None:
                    self._read_dts = packet.dts
                    if packet.pts is not None and packet.is_keyframe:
                        self._key_reorder = max(self._key_reorder, packet.pts - packet.dts)
                self._choose_skip(packet)
                for frame in self._codec.decode(packet):
                    if frame.width * frame.height > self._max_pixels:  # grown part way (a new SPS)
                        self._ended_early(self._grown(frame.width, frame.height))
                        return
                    time = self._frame_time(frame)
                    if self._last is not None:
                        self._prev_time = self._last[0]
                    self._last = (time, frame)
                    yield self._last
        except av.FFmpegError as err:
            # The video ends here for the rule (the header decoded: it is a video): what decoded
            # so far stands, and the rest is reported.
            width, height = self._codec.width, self._codec.height
            too_big = width * height > self._max_pixels  # the decoder refused frames grown too big
            self._ended_early(self._grown(width, height) if too_big else _reason(err))

    def _grown(self, width: int, height: int) -> str:
        """Why the video ends where its frames grow past the limit its header was checked for."""
        limit = self._max_pixels
        return f"its frames grow to {width}x{height}, over the {limit} pixels VE_MAX_VIDEO_PIXELS allows"

    def _ended_early(self, reason: str) -> None:
        """The video ends (for the rule) at the last frame decoded: remember where, and why."""
        end = self._last[0] if self._last is not None else self._position()
        if self.decoded_until is None or end > self.decoded_until:
            self.decoded_until, self.end_reason = end, reason

    def _choose_skip(self, packet: Packet) -> None:
        """Let the decoder drop this packet's frame if it is a non-reference frame the rule cannot take."""
        mode = "DEFAULT"
        if packet.pts is not None:
            time = self._time(packet.pts)
            if time < min(self._rule.threshold, self._skip_ceiling) - _EPS:
                mode = "NONREF"
                self._max_skipped = max(self._max_skipped, time)
        if mode != self._skip_mode:
            self._codec.skip_frame = mode
            self._skip_mode = mode

    def _frame_time(self, frame: VideoFrame) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise InputError(
                f"{self._path.name} has a frame without a timestamp after {self._position():.3f} s"
            )
        return self._time(pts)

    def _time(self, pts: int) -> float:
        return float((pts - self._origin) * self._stream.time_base)

    def _position(self) -> float:
        """The latest time decoded, else read (after a seek), for messages."""
        if self._last is not None:
            return self._last[0]
        return max(0.0, self._time(self._read_dts)) if math.isfinite(self._read_dts) else 0.0

    def _broken(self, reason: object) -> InputError:
        return InputError(f"{self._path.name} stops decoding at {self._position():.3f} s: {_reason(reason)}")


def _image(frame: VideoFrame) -> np.ndarray:
    """The frame as RGB, turned as its display matrix says (a phone held upright stores its frames
    sideways): the face upright, as the models expect it."""
    image = frame.to_ndarray(format="rgb24")
    # Counterclockwise quarter turns (PyAV before 14 does not say: none); flips are not applied.
    turns = round(getattr(frame, "rotation", 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _check_interval(interval: float) -> None:
    if not (math.isfinite(interval) and interval > 0):
        raise InputError(f"the sampling interval must be a positive number of seconds (got {interval})")


def _decoder_limits(max_pixels: int) -> dict[str, str]:
    """Decoder options: refuse to allocate frames of more than twice ``max_pixels`` (FFmpeg's limit,
    an int, counts the buffer: rows aligned, whole macroblocks; the frames are held to the limit
    itself as they come out)."""
    return {"max_pixels": str(min(2 * max_pixels, 2**31 - 1))}


def _open(path: Path, max_pixels: int) -> InputContainer:
    if not path.is_file():
        raise NotFoundError(f"video {path.name} does not exist")
    try:
        # Opening decodes a frame of each stream (to learn its pixel format): the size limit holds
        # for it too, else a header declaring 16000x16000 costs about 700 MB before it is refused.
        return av.open(str(path), options=_decoder_limits(max_pixels))
    except av.FFmpegError as err:
        raise _not_video(path, err) from err


def _video_stream(container: InputContainer, path: Path, max_pixels: int) -> VideoStream:
    """The first video stream, its decoder refusing frames well over ``max_pixels``: a stream whose
    frames grow part way (a new SPS) must not get past the limit its header was checked for."""
    if not container.streams.video:
        raise _not_video(path, "no video stream")
    stream = container.streams.video[0]
    stream.codec_context.options = _decoder_limits(max_pixels)
    return stream


def _info(container: InputContainer, stream: VideoStream, path: Path, max_pixels: int) -> VideoInfo:
    if stream.width * stream.height > max_pixels or not (stream.width and stream.height):
        raise InputError(
            f"{path.name} declares {stream.width}x{stream.height} frames: not between 1 pixel and "
            f"{max_pixels} (VE_MAX_VIDEO_PIXELS)"
        )
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = math.inf
    rate = stream.guessed_rate or stream.average_rate
    return VideoInfo(
        duration=duration,
        fps=float(rate) if rate else 0.0,
        width=stream.width,
        height=stream.height,
        frame_count=stream.frames or None,
    )


def _not_video(path: Path, reason: object) -> InputError:
    return InputError(f"{path.name} does not decode as video: {_reason(reason)}")


def _reason(reason: object) -> str:
    """FFmpeg's message without the file's path (messages reach callers; server paths must not)."""
    if isinstance(reason, av.FFmpegError):
        return reason.strerror or type(reason).__name__
    return str(reason)
