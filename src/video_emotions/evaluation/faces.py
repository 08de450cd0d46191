"""Labelled face sets: gray 48x48 faces with labels over :data:`EMOTIONS`.

Two layouts are read:

- an ``.npz`` laid out as ``shared/data/fer2013/*.npz``: ``images`` uint8 ``(N, 48, 48)`` (any
  square size is accepted) and ``labels`` ``0..6`` in :data:`EMOTIONS` order;
- a folder with one sub-folder of images per class (CK+48, AffectNet-style exports, ...). Folder
  names are matched to our seven labels case-insensitively, with the usual synonyms
  (``anger`` → ``angry``, ``happiness`` → ``happy``, ``surprised`` → ``surprise``, ...). Sub-folders
  of another class (``contempt``) are skipped and named in :attr:`FaceSet.skipped`. Images are
  read with Pillow, made gray, and resized to 48x48 when they are not already that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError
from video_emotions.vision.labels import normalise_label

#: The size FER2013 faces have; folder images of another size are brought to it.
FACE_SIZE = 48


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"})


@dataclass(frozen=True)
class FaceSet:
    """``images`` uint8 ``(N, S, S)`` gray faces, ``labels`` int64 ``(N,)`` indices into :data:`EMOTIONS`."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    #: Sub-folders left out because their class is not one of :data:`EMOTIONS`.
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


def load_faces(path: Path) -> FaceSet:
    """Read a labelled face set from an ``.npz`` file or a folder of class folders (see the module)."""
    path = Path(path)
    if path.is_dir():
        return _load_folder(path)
    if path.suffix.lower() == ".npz" and path.is_file():
        return _load_npz(path)
    raise InputError(f"{path}: not an .npz face set nor a folder of class folders")


def _load_npz(path: Path) -> FaceSet:
    with np.load(path) as data:
        missing = {"images", "labels"} - set(data.files)
        if missing:
            raise InputError(f"{path}: arrays {sorted(missing)} are missing (it has {data.files})")
        images, labels = data["images"], data["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"{path}: images must be uint8 (N, S, S), got {images.dtype} {images.shape}")
    in_range = labels.size == 0 or 0 <= labels.min() <= labels.max() < len(EMOTIONS)
    if labels.shape != (len(images),) or not in_range:
        raise InputError(f"{path}: labels must be {len(images)} integers in 0..{len(EMOTIONS) - 1}")
    return FaceSet(path.name, images, labels.astype(np.int64))


def _load_folder(path: Path) -> FaceSet:
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[str] = []
    for folder in sorted((entry for entry in path.iterdir() if entry.is_dir()), key=lambda p: p.name.lower()):
        emotion = normalise_label(folder.name)
        if emotion is None:
            skipped.append(folder.name)
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as image:
                    gray = image.convert("L")
            except (OSError, UnidentifiedImageError) as exc:
                raise InputError(f"{file}: not a readable image ({exc})") from exc
            if gray.size != (FACE_SIZE, FACE_SIZE):
                gray = gray.resize((FACE_SIZE, FACE_SIZE), Image.Resampling.BILINEAR)
            images.append(np.asarray(gray, dtype=np.uint8))
            labels.append(EMOTIONS.index(emotion))
    if not images:
        raise InputError(
            f"{path}: no images in class folders named after {', '.join(EMOTIONS)} (or synonyms)"
        )
    return FaceSet(path.name, np.stack(images), np.asarray(labels, dtype=np.int64), tuple(skipped))
