"""Face sets the training tests build: FER+-layout votes and a FER2013-layout copy of the same faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from video_emotions.domain import EMOTIONS
from video_emotions.evaluation.faces import FERPLUS_VOTE_CLASSES


def write_pair(folder: Path, name: str, count: int, seed: int) -> tuple[Path, Path]:
    """A votes set and the same faces with FER2013 labels (shuffled, pixels nudged)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 48, 48), dtype=np.uint8)
    votes = rng.multinomial(10, [0.3, 0.2, 0.1, 0.1, 0.1, 0.06, 0.06, 0.05, 0.03, 0.0], size=count)
    votes[0] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]  # not a face: left out of training
    votes = votes.astype(np.uint8)
    ferplus = folder / f"{name}_ferplus.npz"
    np.savez(ferplus, images=images, votes=votes, vote_classes=np.array(FERPLUS_VOTE_CLASSES))
    order = rng.permutation(count)
    nudged = np.clip(images[order].astype(np.int16) + rng.integers(-2, 3, images.shape), 0, 255)
    fer2013 = folder / f"{name}_fer2013.npz"
    np.savez(fer2013, images=nudged.astype(np.uint8), labels=rng.integers(0, len(EMOTIONS), size=count))
    return ferplus, fer2013
