"""Image resizing without OpenCV: FFmpeg's swscale through PyAV.

swscale's area filter gives what ``cv2.resize(..., INTER_AREA)`` gives on a downscale (no
aliasing, within half a grey level of an exact box average) and a bilinear-like result on an
upscale, in C: about 1.2 ms to bring a 1280x720 RGB frame down to 192x108 on one core, where
numpy needs tens of milliseconds for the same filter.

:func:`resize_like_cv2` reproduces OpenCV's bilinear resize exactly, for classifiers trained on
faces that OpenCV resized (fer's mini-Xception: 48x48 FER2013 faces brought to 64x64).
"""

from __future__ import annotations

import threading

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

_FORMATS = {2: "gray", 3: "rgb24"}

# One reformatter per thread: it keeps its swscale context between calls with the same
# geometry (a third of the cost for a video frame) but may not be shared between threads.
_local = threading.local()


def _to_video_frame(image: np.ndarray) -> av.VideoFrame:
    """Copy ``image`` into a new frame's plane, row by row from any strided view.

    ``VideoFrame.from_ndarray`` copies twice (through ``bytes``) and needs contiguous input;
    writing into the plane once is ten times faster on a 720p frame.
    """
    height, width = image.shape[:2]
    frame = av.VideoFrame(width, height, _FORMATS[image.ndim])
    plane = frame.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)
    row_bytes = image[0].size
    rows[:, :row_bytes] = image.reshape(height, row_bytes)
    return frame


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a ``uint8`` gray (H, W) or RGB (H, W, 3) image to (height, width) with area averaging.

    ``image`` may be any strided view (a crop, every other row): no contiguous copy is made first.
    """
    if image.dtype != np.uint8 or image.ndim not in _FORMATS or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {image.dtype} {image.shape}")
    if width < 1 or height < 1 or image.size == 0:
        raise ValueError(f"cannot resize a {image.shape} image to {width}x{height}")
    if image.shape[1] == width and image.shape[0] == height:
        return image.copy()
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    resized = reformatter.reformat(
        _to_video_frame(image),
        width=width,
        height=height,
        format=_FORMATS[image.ndim],
        interpolation=Interpolation.AREA,
    )
    return resized.to_ndarray()


def resize_like_cv2(images: np.ndarray, size: int) -> np.ndarray:
    """Square gray ``uint8`` images resized as ``cv2.resize(image, (size, size))`` does (INTER_LINEAR).

    OpenCV's fixed-point arithmetic reproduced bit for bit (checked against opencv-python-headless
    5.0 on all of PublicTest): 11-bit weights, taps clamped at the edges in x, not in y, and the
    rounding of its vectorised vertical pass. A float bilinear resize differs by one grey level on
    ~12% of the pixels, enough to move PublicTest accuracy by 0.2 points.
    """
    n = images.shape[-1]
    src = ((np.arange(size) + 0.5) * (n / size) - 0.5).astype(np.float32)
    start = np.floor(src).astype(np.intp)
    frac = src - start

    def weights(fraction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.round((1 - fraction) * 2048).astype(np.int32), np.round(fraction * 2048).astype(np.int32)

    x0 = np.clip(start, 0, n - 1)
    left, right = weights(np.where((start < 0) | (start >= n - 1), 0, frac))
    pixels = images.astype(np.int32)
    rows = (pixels[..., x0] * left + pixels[..., np.minimum(x0 + 1, n - 1)] * right) >> 4
    up, down = weights(frac)
    top = (rows[..., np.clip(start, 0, n - 1), :] * up[:, None]) >> 16
    bottom = (rows[..., np.clip(start + 1, 0, n - 1), :] * down[:, None]) >> 16
    return ((top + bottom + 2) >> 2).astype(np.uint8)
