"""Square face crops for the expression classifiers.

A crop is a square centred on the detector's box, its side the box's longer side enlarged by
``margin`` (BlazeFace's boxes run from the eyebrows to the mouth; FER2013 faces include
forehead and chin). Where the square reaches past the frame, the frame's border pixels are
repeated outwards rather than padded black: a black band is a hard edge that no training
face has, a repeated border is closer to what the classifier saw.

With ``align`` the square is turned about its centre so that the eyes (the detector's first
two keypoints) lie level, as in FER2013's mostly upright faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from video_emotions.domain import Face
from video_emotions.vision.imaging import resize

# ITU-R BT.601 luma weights in 14-bit fixed point with rounding, as OpenCV's COLOR_RGB2GRAY
# computes them, so crops match the gray faces the classifiers were trained on bit for bit.
_LUMA_WEIGHTS = (np.uint32(4899), np.uint32(9617), np.uint32(1868))
_LUMA_SHIFT = 14

# Eyes tilted by less than this (radians, about 1°) are left as they are: no resampling.
_MIN_TILT = 0.0175


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    # Channel by channel in place: numpy has no fast integer matrix product (``rgb @ weights``
    # took 2.7 times as long on a face).
    red, green, blue = _LUMA_WEIGHTS
    weighted = rgb[..., 0] * red
    weighted += rgb[..., 1] * green
    weighted += rgb[..., 2] * blue
    weighted += np.uint32(1 << (_LUMA_SHIFT - 1))
    weighted >>= _LUMA_SHIFT
    return weighted.astype(np.uint8)


def eye_tilt(face: Face) -> float:
    """The angle (radians, clockwise on screen) of the line from the face's right eye to its left eye.

    0 when the detector gave no keypoints. BlazeFace's right eye is the person's, on the image's left.
    """
    if len(face.keypoints) < 2:
        return 0.0
    (right_x, right_y), (left_x, left_y) = face.keypoints[:2]
    return math.atan2(left_y - right_y, left_x - right_x)


def _square(image: np.ndarray, centre_x: float, centre_y: float, side: int, grayscale: bool) -> np.ndarray:
    """The ``side``-pixel square of ``image`` centred on the point, its border repeated past the frame."""
    left = round(centre_x - side / 2)
    top = round(centre_y - side / 2)
    height, width = image.shape[:2]
    region = image[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)]
    if region.size == 0:
        raise ValueError(f"a {side}-px square at ({centre_x:.0f}, {centre_y:.0f}) lies outside the frame")
    if grayscale:
        region = _to_gray(region)
    pad = [
        (max(0, -top), max(0, top + side - height)),
        (max(0, -left), max(0, left + side - width)),
    ] + [(0, 0)] * (region.ndim - 2)
    if any(before or after for before, after in pad):
        region = np.pad(region, pad, mode="edge")
    return region


def _rotate_centre(image: np.ndarray, angle: float, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of ``image`` turned by ``-angle`` (bilinear, edge repeated)."""
    n = image.shape[0]
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    u, v = np.meshgrid(offsets, offsets)
    cos, sin = math.cos(angle), math.sin(angle)
    centre = (n - 1) / 2
    x = np.clip(centre + cos * u - sin * v, 0, n - 1)
    y = np.clip(centre + sin * u + cos * v, 0, n - 1)
    x0 = np.minimum(x.astype(np.intp), n - 2)
    y0 = np.minimum(y.astype(np.intp), n - 2)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    pixels = image.astype(np.float64)
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
    bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
    return np.rint(top * (1 - fy) + bottom * fy).astype(np.uint8)


def crop_face(
    image: np.ndarray, face: Face, *, margin: float, size: int, grayscale: bool = True, align: bool = False
) -> np.ndarray:
    """The face's square crop of an RGB ``uint8`` (H, W, 3) frame, resized to ``size`` x ``size``.

    Returns ``uint8`` (size, size) when ``grayscale``, else (size, size, 3). The square's side
    is ``max(face.width, face.height) * (1 + margin)``. With ``align`` the square is turned to
    level the eyes: a larger square around it is shrunk to the output's scale first, then turned,
    so the cost does not grow with the face.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")
    if size < 1 or margin <= -1:
        raise ValueError(f"need size >= 1 and margin > -1, got size={size}, margin={margin}")
    side = max(1, round(max(face.width, face.height) * (1 + margin)))
    centre_x, centre_y = face.x + face.width / 2, face.y + face.height / 2
    angle = eye_tilt(face) if align else 0.0
    if abs(angle) < _MIN_TILT:
        return resize(_square(image, centre_x, centre_y, side, grayscale), size, size)
    # The turned square fits in one of side * (|cos| + |sin|); two pixels more for the bilinear taps.
    spread = abs(math.cos(angle)) + abs(math.sin(angle))
    outer = math.ceil(size * spread) + 2
    region = _square(image, centre_x, centre_y, max(1, round(side * outer / size)), grayscale)
    return _rotate_centre(resize(region, outer, outer), angle, size)


def crop_faces(
    images: Sequence[np.ndarray],
    faces: Sequence[Face],
    *,
    margin: float,
    size: int,
    grayscale: bool = True,
    align: bool = False,
) -> np.ndarray:
    """The crops of ``faces[i]`` in ``images[i]`` as one ``uint8`` batch, (N, size, size[, 3])."""
    if len(images) != len(faces):
        raise ValueError(f"{len(images)} images but {len(faces)} faces")
    shape = (size, size) if grayscale else (size, size, 3)
    batch = np.empty((len(faces), *shape), dtype=np.uint8)
    for i, (image, face) in enumerate(zip(images, faces, strict=True)):
        batch[i] = crop_face(image, face, margin=margin, size=size, grayscale=grayscale, align=align)
    return batch
