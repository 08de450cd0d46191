"""Plain data types shared by every layer. No I/O, no framework imports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The seven expression labels, in FER2013 order (the order every classifier outputs).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: The legacy marker the Interviewz front end expects for a frame without a face.
NO_FACE_KEY = "No face detected"


@dataclass(frozen=True)
class Segment:
    """A stretch of the video in which one speaker talks; times in seconds."""

    id: int
    start: float
    end: float
    speaker: int = 0


@dataclass(frozen=True)
class Sample:
    """One decoded frame chosen by the sampler.

    ``index`` is the frame's position inside its segment (0, 1, ...), ``time`` the
    frame's presentation time in seconds, ``image`` an RGB ``uint8`` array (H, W, 3).
    """

    segment_id: int
    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class Face:
    """A face found by a detector, in pixel coordinates of the frame.

    ``keypoints`` holds the detector's landmarks as (x, y) pairs when it gives them
    (BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear).
    """

    x: float
    y: float
    width: float
    height: float
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def area(self) -> float:
        return self.width * self.height


@dataclass(frozen=True)
class FrameEstimate:
    """What a model says about one frame: the candidate's face and its expression probabilities.

    ``probabilities`` maps each of :data:`EMOTIONS` to a probability in [0, 1] summing to 1;
    it is ``None`` when no face was found.
    """

    face: Face | None
    faces_found: int
    probabilities: dict[str, float] | None


@dataclass(frozen=True)
class FrameResult:
    """A sampled frame with its estimate."""

    index: int
    time: float
    estimate: FrameEstimate


@dataclass
class SegmentResult:
    """Every sampled frame of one segment, in order.

    ``decoded_until`` is set when the video stops decoding before the segment's end (a recording
    cut short): the time of the last frame that decodes (after which nothing of the segment was
    analysed; when it is before the segment's start, ``frames`` is empty); ``uncovered_samples``
    about how many samples the rule would have taken past it; ``uncovered_reason`` why decoding
    stopped.
    """

    segment: Segment
    frames: list[FrameResult] = field(default_factory=list)
    decoded_until: float | None = None
    uncovered_samples: int = 0
    uncovered_reason: str | None = None

    @property
    def covered(self) -> bool:
        """Whether any of the segment was analysed (it has samples)."""
        return bool(self.frames)
