"""FER+'s votes joined to FER2013's faces: numpy only, so a GPU machine's bare Python runs it too.

FER+ relabelled FER2013's faces, but its pixels differ from ``shared/data/fer2013`` by a few grey
levels and its order is another, so faces are matched by their 8x8 thumbnails (the mean of each
6x6 block): two copies of one face lie within a few grey levels, two different faces far apart.

    python training/ferplus_join.py FER2013_TRAIN.npz FERPLUS_TRAIN.npz OUT.npz

writes FER2013's arrays plus ``ferplus_votes`` (uint8 ``(N, 10)``, zero rows for faces FER+ does
not have) and ``vote_classes``: the training set of ``train.py --vote-weight``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: Mean squared grey-level difference of the thumbnails under which two faces are one.
SAME_FACE = 4.0


def _thumbnails(images: np.ndarray) -> np.ndarray:
    n, height, width = images.shape
    blocks = images.reshape(n, height // 6, 6, width // 6, 6).astype(np.float32)
    return blocks.mean(axis=(2, 4)).reshape(n, -1)


def twins(faces: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each of ``faces`` (uint8 ``(N, 48, 48)``), the index of the same face in ``others``, or
    -1 where no face there is close enough."""
    a, b = _thumbnails(faces), _thumbnails(others)
    b_norms = (b * b).sum(1)
    found = np.full(len(a), -1, np.int64)
    for start in range(0, len(a), 2048):
        chunk = a[start : start + 2048]
        distances = (chunk * chunk).sum(1)[:, None] + b_norms[None] - 2 * chunk @ b.T
        nearest = distances.argmin(1)
        close = distances[np.arange(len(chunk)), nearest] / b.shape[1] < SAME_FACE
        found[start : start + 2048] = np.where(close, nearest, -1)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    fer2013, ferplus, target = (Path(arg) for arg in argv)
    with np.load(fer2013) as data:
        arrays = {name: data[name] for name in data.files}
    with np.load(ferplus) as data:
        plus_images, plus_votes, classes = data["images"], data["votes"], data["vote_classes"]
    found = twins(arrays["images"], plus_images)
    votes = np.zeros((len(found), plus_votes.shape[1]), np.uint8)
    votes[found >= 0] = plus_votes[found[found >= 0]]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part.npz")
    np.savez(partial, **arrays, ferplus_votes=votes, vote_classes=classes)
    partial.replace(target)
    print(f"{target}: {int((found >= 0).sum())} of {len(found)} FER2013 faces have FER+ votes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
