"""Videos the tests encode themselves with PyAV: a real face photo (scikit-image's astronaut)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer
from av.video.stream import VideoStream
from skimage import data


def encode_video(path: Path, frames: Iterable[np.ndarray], *, fps: int = 10, gop: int = 20) -> Path:
    """Encode RGB uint8 frames as H.264 (MPEG-4 part 2 where libx264 is missing)."""
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
        except (av.error.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = gop
        for image in (first, *frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_frame(width: int = 640, height: int = 360) -> np.ndarray:
    """The astronaut photo (one face) scaled into a grey frame of the given size."""
    photo = data.astronaut()[:400, 50:450]
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    side = min(height, width)
    step = photo.shape[0] / side
    rows = (np.arange(side) * step).astype(int)
    cols = (np.arange(side) * step).astype(int)
    left = (width - side) // 2
    canvas[:, left : left + side] = photo[rows][:, cols]
    return canvas


def face_video(path: Path, seconds: float, *, fps: int = 10, blank_from: float | None = None) -> Path:
    """A video of the astronaut's face; frames from ``blank_from`` seconds on show no face."""
    face = face_frame()
    blank = np.full_like(face, 128)
    count = round(seconds * fps)
    frames = (blank if blank_from is not None and i / fps >= blank_from else face for i in range(count))
    return encode_video(path, frames, fps=fps)


def faststart_copy(source: Path, target: Path) -> Path:
    """``source`` remuxed with its index (moov) first, as streamed MP4s are: cut short, such a file
    still opens and decodes up to the cut (one with its index at the end does not open at all)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


# --- Hostile videos: files cut, patched or mislabelled on purpose (tests/api/test_hostile_videos.py).

# ISO BMFF boxes that hold boxes, with the bytes of their own before the first one.
_BOX_PARENTS = {b"moov": 0, b"trak": 0, b"mdia": 0, b"minf": 0, b"stbl": 0, b"edts": 0, b"dinf": 0}
_BOX_PARENTS |= {b"udta": 0, b"stsd": 8, b"avc1": 78}
_AVC1 = "/moov/trak/mdia/minf/stbl/stsd/avc1"


def _walk_boxes(raw: bytes, start: int, end: int, parent: str) -> Iterator[tuple[str, int, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", raw[pos : pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", raw[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        path = f"{parent}/{kind.decode('latin-1')}"
        yield path, pos, header, size
        if kind in _BOX_PARENTS:
            yield from _walk_boxes(raw, pos + header + _BOX_PARENTS[kind], pos + size, path)
        pos += size


def mp4_boxes(raw: bytes) -> dict[str, tuple[int, int, int]]:
    """An MP4's boxes by path (``/moov/trak/tkhd``): offset, header length and size of the first box
    at each path (enough for the one-track files the tests encode)."""
    boxes: dict[str, tuple[int, int, int]] = {}
    for path, offset, header, size in _walk_boxes(raw, 0, len(raw), ""):
        boxes.setdefault(path, (offset, header, size))
    return boxes


def truncate(source: Path, fraction: float, target: Path) -> Path:
    """The first ``fraction`` of ``source``'s bytes: a recording cut short."""
    raw = source.read_bytes()
    target.write_bytes(raw[: int(fraction * len(raw))])
    return target


def corrupt_middle(source: Path, target: Path, *, size: int = 16384, seed: int = 0) -> Path:
    """``source`` (an MP4) with ``size`` random bytes written over the middle of its media raw."""
    raw = bytearray(source.read_bytes())
    offset, header, length = mp4_boxes(bytes(raw))["/mdat"]
    middle = offset + header + (length - header - size) // 2
    raw[middle : middle + size] = np.random.default_rng(seed).bytes(size)
    target.write_bytes(raw)
    return target


def patch_fourcc(source: Path, fourcc: bytes, target: Path) -> Path:
    """``source`` (H.264 in MP4) with its sample entry renamed ``fourcc``: a file lying about its codec."""
    raw = bytearray(source.read_bytes())
    offset, _, _ = mp4_boxes(bytes(raw))[_AVC1]
    raw[offset + 4 : offset + 8] = fourcc
    target.write_bytes(raw)
    return target


def _new_stream(container: OutputContainer, rate: int | Fraction, width: int, height: int) -> VideoStream:
    """An H.264 stream (MPEG-4 part 2 where libx264 is missing) for frames of ``width`` x ``height``."""
    try:
        stream = container.add_stream("libx264", rate=rate)
    except (av.error.FFmpegError, ValueError):
        stream = container.add_stream("mpeg4", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    return stream


def _flush(container: OutputContainer, stream: VideoStream, frame: av.VideoFrame | None) -> None:
    for packet in stream.encode(frame):
        container.mux(packet)


def vfr_video(path: Path, gaps: Sequence[float], *, repeat: int = 1) -> Path:
    """The astronaut's face with the time between frames taken in turn from ``gaps`` (seconds),
    ``repeat`` times over: a variable frame rate, as phones record."""
    face = face_frame()
    with av.open(str(path), "w") as container:
        stream = _new_stream(container, 1000, face.shape[1], face.shape[0])
        stream.codec_context.time_base = Fraction(1, 1000)
        time = 0.0
        for gap in list(gaps) * repeat:
            frame = av.VideoFrame.from_ndarray(face, format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            _flush(container, stream, frame)
            time += gap
        _flush(container, stream, None)
    return path


def rotated_video(path: Path, seconds: float, *, degrees: int = 90, fps: int = 10) -> Path:
    """As a phone held upright records: the astronaut's face stored turned ``degrees`` clockwise
    (a multiple of 90), with a display matrix turning it back, counterclockwise, for display."""
    face = np.ascontiguousarray(np.rot90(face_frame(), k=-(degrees // 90)))
    with av.open(str(path), "w") as container:
        stream = _new_stream(container, fps, face.shape[1], face.shape[0])
        stream.set_display_rotation(degrees)
        for _ in range(round(seconds * fps)):
            _flush(container, stream, av.VideoFrame.from_ndarray(face, format="rgb24"))
        _flush(container, stream, None)
    return path


def audio_only(path: Path, seconds: float, *, rate: int = 16000) -> Path:
    """An MP4 holding nothing but an AAC tone: a recording without its camera."""
    samples = np.arange(round(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * samples)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def webm_video(path: Path, seconds: float, *, fps: int = 10, declare_seconds: float | None = None) -> Path:
    """The astronaut's face as VP8 in WebM, written to ``path`` whatever its suffix (``.mp4``: a file
    named for another container). ``declare_seconds``: the header's Duration says that instead."""
    face = face_frame()
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = face.shape[1], face.shape[0], "yuv420p"
        for _ in range(round(seconds * fps)):
            _flush(container, stream, av.VideoFrame.from_ndarray(face, format="rgb24"))
        _flush(container, stream, None)
    if declare_seconds is not None:
        raw = bytearray(path.read_bytes())
        at = raw.index(b"\x44\x89\x88")  # Segment Info's Duration, an 8-byte float (milliseconds)
        raw[at + 3 : at + 11] = struct.pack(">d", declare_seconds * 1000)
        path.write_bytes(raw)
    return path


class _Bits:
    """Reads an H.264 RBSP bit by bit (fixed-length and Exp-Golomb fields)."""

    def __init__(self, raw: bytes) -> None:
        self.bits = "".join(f"{byte:08b}" for byte in raw)
        self.pos = 0

    def u(self, count: int) -> int:
        value = int(self.bits[self.pos : self.pos + count] or "0", 2)
        self.pos += count
        return value

    def ue(self) -> int:
        zeros = self.bits.index("1", self.pos) - self.pos
        self.pos += zeros + 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _ue(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def _escape(rbsp: bytes) -> bytes:
    """Emulation prevention: no 00 00 0x (x <= 3) in a NAL unit's payload."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def resize_sps(nal: bytes, width: int, height: int) -> bytes:
    """An H.264 sequence parameter set (NAL unit) rewritten to declare ``width`` x ``height``
    (multiples of 16, no cropping); the rest of it as it was."""
    bits = _Bits(nal[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if bits.ue() == 3:  # chroma_format_idc
            bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        assert bits.u(1) == 0, "scaling matrices are not handled"
    bits.ue()  # log2_max_frame_num_minus4
    order = bits.ue()  # pic_order_cnt_type
    if order == 0:
        bits.ue()
    elif order == 1:
        bits.u(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed
    head = bits.bits[: bits.pos]
    bits.ue()  # pic_width_in_mbs_minus1
    bits.ue()  # pic_height_in_map_units_minus1
    assert bits.u(1) == 1, "interlaced streams are not handled"  # frame_mbs_only
    bits.u(1)  # direct_8x8_inference
    flags = bits.bits[bits.pos - 2 : bits.pos]
    if bits.u(1):  # frame cropping: dropped
        for _ in range(4):
            bits.ue()
    tail = bits.bits[bits.pos : bits.bits.rindex("1")]  # up to the stop bit
    out = head + _ue(width // 16 - 1) + _ue(height // 16 - 1) + flags + "0" + tail + "1"
    out += "0" * (-len(out) % 8)
    return nal[:1] + _escape(int(out, 2).to_bytes(len(out) // 8, "big"))


def _parameter_sets(extradata: bytes) -> tuple[bytes, bytes]:
    """The first SPS and PPS of an ``avcC`` record."""
    (sps_length,) = struct.unpack(">H", extradata[6:8])
    sps, rest = extradata[8 : 8 + sps_length], extradata[8 + sps_length :]
    (pps_length,) = struct.unpack(">H", rest[1:3])
    return sps, rest[3 : 3 + pps_length]


def huge_dimensions(source: Path, target: Path, *, width: int = 8192, height: int = 8192) -> Path:
    """``source`` (H.264 in MP4, index last) declaring frames of ``width`` x ``height`` in its
    headers (SPS, ``avc1`` and ``tkhd``): a decoder believing them allocates frames that big."""
    raw = bytes(source.read_bytes())
    boxes = mp4_boxes(raw)
    offset, header, size = boxes[f"{_AVC1}/avcC"]
    assert boxes["/mdat"][0] < offset, "the index must come last: chunk offsets are not updated"
    record = raw[offset + header : offset + size]
    sps, _ = _parameter_sets(record)
    resized = resize_sps(sps, width, height)
    record = record[:6] + struct.pack(">H", len(resized)) + resized + record[8 + len(sps) :]
    out = bytearray(
        raw[:offset] + struct.pack(">I", 8 + len(record)) + b"avcC" + record + raw[offset + size :]
    )
    grown = 8 + len(record) - size
    for at, _, length in boxes.values():
        if at < offset < at + length:  # the boxes holding avcC grow with it
            out[at : at + 4] = struct.pack(">I", length + grown)
    entry, _, _ = boxes[_AVC1]
    out[entry + 32 : entry + 36] = struct.pack(">HH", width, height)
    track, _, _ = boxes["/moov/trak/tkhd"]
    out[track + 84 : track + 92] = struct.pack(">II", width << 16, height << 16)
    target.write_bytes(out)
    return target


def grow_mid_stream(source: Path, target: Path, *, width: int = 8192, height: int = 8192) -> Path:
    """``source`` (H.264 in MP4) whose keyframes from the second on carry a new SPS declaring
    ``width`` x ``height``: the header declares the first size, the decoder meets the second."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        sps, pps = _parameter_sets(bytes(video.codec_context.extradata))
        resized = resize_sps(sps, width, height)
        prefix = struct.pack(">I", len(resized)) + resized + struct.pack(">I", len(pps)) + pps
        stream = out.add_stream_from_template(video)
        keyframes = 0
        for packet in inp.demux(video):
            if packet.dts is None:
                continue
            keyframes += packet.is_keyframe
            if packet.is_keyframe and keyframes > 1:
                grown = av.Packet(prefix + bytes(packet))
                grown.pts, grown.dts, grown.time_base = packet.pts, packet.dts, packet.time_base
                grown.is_keyframe = True
                packet = grown
            packet.stream = stream
            out.mux(packet)
    return target
