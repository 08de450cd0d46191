"""Square face crops for the expression classifiers.

A crop is a square centred on the detector's box, its side the box's longer side enlarged by
``margin`` (BlazeFace's boxes run from the eyebrows to the mouth; FER2013 faces include
forehead and chin). Where the square reaches past the frame, the frame's border pixels are
repeated outwards rather than padded black: a black band is a hard edge that no training
face has, a repeated border is closer to what the classifier saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from video_emotions.domain import Face
from video_emotions.vision.imaging import resize

# ITU-R BT.601 luma weights in 14-bit fixed point with rounding, as OpenCV's COLOR_RGB2GRAY
# computes them, so crops match the gray faces the classifiers were trained on bit for bit.
_LUMA_WEIGHTS = np.array([4899, 9617, 1868], dtype=np.uint32)
_LUMA_SHIFT = 14


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    weighted = rgb @ _LUMA_WEIGHTS + (1 << (_LUMA_SHIFT - 1))
    return (weighted >> _LUMA_SHIFT).astype(np.uint8)


def crop_face(
    image: np.ndarray, face: Face, *, margin: float, size: int, grayscale: bool = True
) -> np.ndarray:
    """The face's square crop of an RGB ``uint8`` (H, W, 3) frame, resized to ``size`` x ``size``.

    Returns ``uint8`` (size, size) when ``grayscale``, else (size, size, 3). The square's side
    is ``max(face.width, face.height) * (1 + margin)``.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")
    if size < 1 or margin <= -1:
        raise ValueError(f"need size >= 1 and margin > -1, got size={size}, margin={margin}")
    side = max(1, round(max(face.width, face.height) * (1 + margin)))
    left = round(face.x + face.width / 2 - side / 2)
    top = round(face.y + face.height / 2 - side / 2)
    height, width = image.shape[:2]
    region = image[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)]
    if region.size == 0:
        raise ValueError(f"the crop of {face} lies outside the {width}x{height} frame")
    if grayscale:
        region = _to_gray(region)
    pad = [
        (max(0, -top), max(0, top + side - height)),
        (max(0, -left), max(0, left + side - width)),
    ] + [(0, 0)] * (region.ndim - 2)
    if any(before or after for before, after in pad):
        region = np.pad(region, pad, mode="edge")
    return resize(region, size, size)


def crop_faces(
    images: Sequence[np.ndarray],
    faces: Sequence[Face],
    *,
    margin: float,
    size: int,
    grayscale: bool = True,
) -> np.ndarray:
    """The crops of ``faces[i]`` in ``images[i]`` as one ``uint8`` batch, (N, size, size[, 3])."""
    if len(images) != len(faces):
        raise ValueError(f"{len(images)} images but {len(faces)} faces")
    shape = (size, size) if grayscale else (size, size, 3)
    batch = np.empty((len(faces), *shape), dtype=np.uint8)
    for i, (image, face) in enumerate(zip(images, faces, strict=True)):
        batch[i] = crop_face(image, face, margin=margin, size=size, grayscale=grayscale)
    return batch
