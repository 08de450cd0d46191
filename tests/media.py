"""Videos the tests encode themselves with PyAV: a real face photo (scikit-image's astronaut)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
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
