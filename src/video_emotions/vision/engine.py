"""Engines: a batch of frames in, per frame the candidate's face and its expression probabilities out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from video_emotions.domain import EMOTIONS, Face, FrameEstimate
from video_emotions.vision.blazeface import BlazeFaceDetector
from video_emotions.vision.classifier import EmotionClassifier
from video_emotions.vision.crop import crop_faces


class EmotionEngine(Protocol):
    """What every model behind a ``model_type`` offers.

    An engine instance is used by one thread at a time; ``name`` is the engine that really
    runs, ``model_file`` and ``model_sha256`` identify the weights recorded with every result.
    """

    name: str
    model_file: str
    model_sha256: str

    def estimate(self, images: Sequence[np.ndarray]) -> list[FrameEstimate]: ...


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The candidate is the person closest to the camera: the largest face in the frame."""
    return max(faces, key=lambda face: face.area, default=None)


class DetectorClassifierEngine:
    """Our offline pipeline: BlazeFace finds faces, the largest is cropped and classified in one batch."""

    def __init__(
        self,
        name: str,
        detector: BlazeFaceDetector,
        classifier: EmotionClassifier,
        *,
        crop_margin: float,
        align_faces: bool = False,
    ) -> None:
        self.name = name
        self.detector = detector
        self.classifier = classifier
        self.crop_margin = crop_margin
        self.align_faces = align_faces
        # The same identity as the registry's: the classifier decides the expression figures.
        self.model_file = f"{detector.path.name}+{classifier.path.name}"
        self.model_sha256 = classifier.sha256

    def estimate(self, images: Sequence[np.ndarray]) -> list[FrameEstimate]:
        found = [self.detector.detect(image) for image in images]
        chosen = [largest_face(faces) for faces in found]
        with_face = [i for i, face in enumerate(chosen) if face is not None]
        probabilities = np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if with_face:
            crops = crop_faces(
                [images[i] for i in with_face],
                [chosen[i] for i in with_face],
                margin=self.crop_margin,
                size=self.classifier.input_size,
                grayscale=True,
                align=self.align_faces,
            )
            probabilities = self.classifier.classify(crops)
        by_frame = dict(zip(with_face, probabilities, strict=True))
        estimates = []
        for i, faces in enumerate(found):
            row = by_frame.get(i)
            estimates.append(
                FrameEstimate(
                    face=chosen[i],
                    faces_found=len(faces),
                    probabilities=None
                    if row is None
                    else {label: float(p) for label, p in zip(EMOTIONS, row, strict=True)},
                )
            )
        return estimates
