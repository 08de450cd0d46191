"""Other models' class names mapped onto our seven labels (:data:`~video_emotions.domain.EMOTIONS`).

YOLO checkpoints, DeepFace and remote endpoints name the same expressions differently
(``anger``, ``Happiness``, ``surprised``...). Every engine maps names here, in one place.

``contempt`` (AffectNet's eighth class) has no counterpart among FER2013's seven: a model that
has it is accepted, its contempt share is dropped and the other seven are rescaled to sum to 1.
Any other unknown name, or one of the seven missing, refuses the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from video_emotions.domain import EMOTIONS

#: Spellings seen in expression models' class names, lower case, for each of our labels.
_SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
}

#: Classes some models have that none of our labels stands for; dropped (see the module text).
DROPPED_LABELS = frozenset({"contempt"})


def normalise_label(name: str) -> str | None:
    """Our label for a class name (``"Anger"`` → ``"angry"``), or None when it is none of our seven."""
    key = re.sub(r"[\s_\-]+", "", name.strip().lower())
    return _SYNONYMS.get(key)


def label_columns(names: Sequence[str], *, source: str) -> np.ndarray:
    """For each of :data:`EMOTIONS` in order, the index of its class among ``names``.

    Raises ValueError naming ``source`` and listing ``names`` when a name is unknown (neither one
    of ours nor dropped), when two names map to one label, or when a label has no class.
    """
    columns: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(names):
        label = normalise_label(name)
        if label is None:
            if name.strip().lower() not in DROPPED_LABELS:
                unknown.append(name)
        elif label in columns:
            unknown.append(name)
        else:
            columns[label] = index
    missing = [label for label in EMOTIONS if label not in columns]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"cannot map {unknown}")
        if missing:
            problems.append(f"no class for {missing}")
        raise ValueError(
            f"{source}: classes {list(names)} do not map onto {', '.join(EMOTIONS)} ({'; '.join(problems)})"
        )
    return np.array([columns[label] for label in EMOTIONS])


def to_emotions(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Scores ``(N, classes)`` → probabilities ``(N, 7)`` in :data:`EMOTIONS` order, rows summing to 1."""
    picked = np.asarray(scores, dtype=np.float64)[:, columns]
    totals = picked.sum(axis=1, keepdims=True)
    if np.any(totals <= 0) or not np.all(np.isfinite(picked)):
        raise ValueError("scores without any weight on the seven labels, or not finite")
    return (picked / totals).astype(np.float32)


def emotions_from_mapping(scores: Mapping[str, float], *, source: str) -> dict[str, float]:
    """A ``{class name: score}`` answer (DeepFace's percentages, a remote prediction) as our seven
    probabilities summing to 1."""
    names = list(scores)
    columns = label_columns(names, source=source)
    row = to_emotions(np.array([[float(scores[name]) for name in names]]), columns)[0]
    return {label: float(p) for label, p in zip(EMOTIONS, row, strict=True)}
