"""Labelled face sets: gray 48x48 faces with labels over :data:`EMOTIONS`.

Three layouts are read:

- an ``.npz`` laid out as ``shared/data/fer2013/*.npz``: ``images`` uint8 ``(N, 48, 48)`` (any
  square size is accepted) and ``labels`` ``0..6`` in :data:`EMOTIONS` order;
- an ``.npz`` laid out as ``shared/data/ferplus/*.npz`` (FER+): ``images`` and ``votes``
  ``(N, C)``, each face's annotators' counts per class, with the class names in ``vote_classes``
  (else FER+'s order, :data:`FERPLUS_VOTE_CLASSES`). The majority protocol of FER+'s authors
  decides the label: the top vote; a face whose top vote is tied, or a class not ours (contempt,
  unknown, NF: not a face), is left out and counted in :attr:`FaceSet.left_out`. The kept faces
  keep their votes over our seven, as a distribution (:attr:`FaceSet.votes`);
- a folder with one sub-folder of images per class (CK+48, AffectNet-style exports, ...). Folder
  names are matched to our seven labels case-insensitively, with the usual synonyms
  (``anger`` → ``angry``, ``happiness`` → ``happy``, ``surprised`` → ``surprise``, ...). Sub-folders
  of another class (``contempt``) are skipped and named in :attr:`FaceSet.skipped`. Images are
  read with Pillow, made gray, and resized to 48x48 when they are not already that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video_emotions.domain import EMOTIONS
from video_emotions.errors import InputError
from video_emotions.vision.labels import normalise_label

#: The size FER2013 faces have; folder images of another size are brought to it.
FACE_SIZE = 48
#: FER+'s vote columns, in its order, for a votes ``.npz`` without ``vote_classes``.
FERPLUS_VOTE_CLASSES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)


_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm"})


@dataclass(frozen=True)
class FaceSet:
    """``images`` uint8 ``(N, S, S)`` gray faces, ``labels`` int64 ``(N,)`` indices into :data:`EMOTIONS`."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    #: Sub-folders left out because their class is not one of :data:`EMOTIONS`.
    skipped: tuple[str, ...] = ()
    #: For a votes set, float ``(N, 7)``: each face's votes over :data:`EMOTIONS`, summing to 1.
    votes: np.ndarray | None = None
    #: Faces of a votes set left out by the majority protocol (see the module).
    left_out: int = 0

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
        votes_layout = "votes" in data.files
        needed = {"images", "votes"} if votes_layout else {"images", "labels"}
        missing = needed - set(data.files)
        if missing:
            raise InputError(f"{path}: arrays {sorted(missing)} are missing (it has {data.files})")
        arrays = {name: data[name] for name in (*needed, "vote_classes") if name in data.files}
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"{path}: images must be uint8 (N, S, S), got {images.dtype} {images.shape}")
    if votes_layout:
        return _majority(path, images, arrays["votes"], arrays.get("vote_classes", FERPLUS_VOTE_CLASSES))
    labels = arrays["labels"]
    in_range = labels.size == 0 or 0 <= labels.min() <= labels.max() < len(EMOTIONS)
    if labels.shape != (len(images),) or not in_range:
        raise InputError(f"{path}: labels must be {len(images)} integers in 0..{len(EMOTIONS) - 1}")
    return FaceSet(path.name, images, labels.astype(np.int64))


def vote_columns(classes: Sequence[str], *, source: str = "votes") -> tuple[np.ndarray, list[int]]:
    """For vote columns named ``classes`` (FER+'s names or ours): each column's index in
    :data:`EMOTIONS` (-1 for a class that is not ours: contempt, unknown, NF), and the column of
    each of :data:`EMOTIONS`; InputError unless each of the seven is named exactly once."""
    ours = [normalise_label(str(name)) for name in classes]
    if sorted(label for label in ours if label is not None) != sorted(EMOTIONS):
        raise InputError(
            f"{source}: vote_classes {list(classes)} do not name each of {', '.join(EMOTIONS)} once"
        )
    column_label = np.array([-1 if label is None else EMOTIONS.index(label) for label in ours])
    return column_label, [ours.index(emotion) for emotion in EMOTIONS]


def vote_distribution(
    votes: np.ndarray, classes: Sequence[str], *, source: str = "votes"
) -> tuple[np.ndarray, np.ndarray]:
    """Each face's votes over :data:`EMOTIONS` as a distribution ``(N, 7)`` (the votes for classes
    not ours dropped), and whether it has any such vote (a row without is all zeros)."""
    _, columns = vote_columns(classes, source=source)
    counts = np.asarray(votes)[:, columns].astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0), total[:, 0] > 0


def _majority(path: Path, images: np.ndarray, votes: np.ndarray, classes: Sequence[str]) -> FaceSet:
    """The faces whose top vote is one of our seven and not tied, labelled with it (see the module)."""
    classes = [str(name) for name in classes]
    if votes.shape != (len(images), len(classes)) or not np.issubdtype(votes.dtype, np.number):
        raise InputError(f"{path}: votes must be {len(images)} rows of {len(classes)} counts ({classes})")
    column_label, _ = vote_columns(classes, source=str(path))
    untied = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) == 1
    labels = column_label[votes.argmax(axis=1)]
    keep = untied & (labels >= 0)
    distribution, _ = vote_distribution(votes[keep], classes, source=str(path))
    return FaceSet(
        path.name,
        images[keep],
        labels[keep].astype(np.int64),
        votes=distribution,
        left_out=int(len(images) - keep.sum()),
    )


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
