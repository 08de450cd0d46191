"""``deepface``: the DeepFace library's emotion model, as the seed ran it (the ``[deepface]`` extra).

DeepFace downloads missing files from the internet on first use; this service never lets it.
Every file is looked up where DeepFace keeps them, ``$DEEPFACE_HOME/.deepface/weights``
(``DEEPFACE_HOME`` defaulting to the home folder), before DeepFace is called:

- the emotion weights, under the file name of the backend DeepFace runs on (TensorFlow with the
  extra: ``facial_expression_model_weights.h5``). No package carries them: an operator puts the
  file there, or the model stays unavailable and says so;
- for the ``opencv`` detector (the seed's, ``VE_DEEPFACE_DETECTOR``), OpenCV's Haar cascades,
  which OpenCV 5 wheels no longer ship: ``video-emotions models pull --deepface`` takes them from
  a pinned OpenCV 4 wheel.

The emotion model is built once at load, from the checked file, so analysis never downloads it.
Only the detectors in :data:`DETECTORS` are allowed: others (retinaface, ssd, yolo...) fetch weights.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from video_emotions.config import Settings
from video_emotions.domain import Face, FrameEstimate
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.labels import emotions_from_mapping
from video_emotions.vision.modelfiles import ModelCache, ModelSource, file_sha256

DEEPFACE_EXTRA = 'the [deepface] extra (pip install "video-emotions[deepface]")'

#: The emotion model's weights file for each backend DeepFace can run on.
WEIGHTS_FILES = {
    "tensorflow": "facial_expression_model_weights.h5",
    "pytorch": "facial_expression_model_weights.pth",
    "onnx": "facial_expression_model_weights.onnx",
}

#: Detector backends checked never to download: ``opencv`` (the seed's; its cascades are checked
#: first, see :data:`HAARCASCADES`) and ``skip`` (the whole frame is the face).
DETECTORS = ("opencv", "skip")

# The cascades are plain XML: any platform's wheel carries the same files.
_OPENCV4_WHEEL = ("--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64")

#: The two cascades DeepFace's opencv detector loads (faces, and eyes for alignment).
HAARCASCADES: tuple[ModelSource, ...] = tuple(
    ModelSource(
        name="opencv-haarcascades",
        package="opencv-python-headless",
        version="4.14.0.94",
        member=f"cv2/data/{filename}",
        sha256=sha256,
        license="Intel License Agreement (BSD-style), as in the file",
        wheel_args=_OPENCV4_WHEEL,
    )
    for filename, sha256 in (
        (
            "haarcascade_frontalface_default.xml",
            "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
        ),
        ("haarcascade_eye.xml", "71cc64fc305a355dc60067880f6fbbd43dd155bd63ee3844661a1bda34b2fd8c"),
    )
)


def weights_dir() -> Path:
    """Where DeepFace keeps (and looks for) every file it uses."""
    return Path(os.environ.get("DEEPFACE_HOME") or Path.home()) / ".deepface" / "weights"


def weights_path() -> Path:
    """The emotion weights file, for the backend DeepFace would run on now."""
    from deepface.commons.backend_utils import get_backend_engine

    return weights_dir() / WEIGHTS_FILES[get_backend_engine()]


def _missing_cascades() -> list[str]:
    """The Haar cascades found neither in OpenCV's own data folder nor in DeepFace's."""
    spec = find_spec("cv2")
    cv2_data = Path(spec.origin).parent / "data" if spec is not None and spec.origin else None
    return [
        source.filename
        for source in HAARCASCADES
        if not (weights_dir() / source.filename).is_file()
        and not (cv2_data is not None and (cv2_data / source.filename).is_file())
    ]


def install_cascades(cache: ModelCache, target: Path) -> list[Path]:
    """Copy the Haar cascades (pulled into the model cache, sha256-checked) into ``target``, the
    folder where DeepFace looks (:func:`weights_dir`)."""
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(cache.fetch(source), target / source.filename)) for source in HAARCASCADES]


def unavailable(settings: Settings) -> str | None:
    """Why DeepFace cannot run here without downloading anything, or None."""
    if find_spec("deepface") is None:
        return f"needs {DEEPFACE_EXTRA}"
    detector = settings.deepface_detector
    if detector not in DETECTORS:
        return (
            f"VE_DEEPFACE_DETECTOR={detector}: DeepFace downloads that detector's weights at run time, "
            f"which this service never lets it do; use one of {', '.join(DETECTORS)}"
        )
    if detector == "opencv" and not hasattr(import_module("cv2"), "CascadeClassifier"):
        return (
            "DeepFace's opencv detector needs cv2.CascadeClassifier, which OpenCV 5 keeps in "
            "opencv-contrib-python-headless; another OpenCV package installed after it hides it: reinstall it"
        )
    if detector == "opencv" and (missing := _missing_cascades()):
        return (
            f"DeepFace's opencv detector needs {' and '.join(missing)} in {weights_dir()} (OpenCV 5 "
            "no longer ships them; DeepFace would download them): run `video-emotions models pull --deepface`"
        )
    try:
        path = weights_path()
    except ValueError as exc:  # no backend DeepFace can run on
        return f"DeepFace has no backend to run on: {exc}"
    if not path.is_file():
        return (
            f"DeepFace's emotion weights {path} are missing (DeepFace would download them from the "
            "internet, which this service never lets it do): put the file there, or set DEEPFACE_HOME "
            "to the folder that holds .deepface/weights/"
        )
    return None


def _is_placeholder(face: dict[str, Any], height: int, width: int) -> bool:
    """With ``enforce_detection=False`` DeepFace answers a frame without a face with the whole frame
    (clipped to ``width - 1`` x ``height - 1``) as the "face", confidence 0: that is no face."""
    region = face["region"]
    whole = region["x"] <= 0 and region["y"] <= 0 and region["w"] >= width - 1 and region["h"] >= height - 1
    return whole and not face.get("face_confidence")


def import_deepface() -> Any:
    """DeepFace's main module, imported so that TensorFlow can share the process with PyTorch.

    With the [yolo] extra beside it, triton (PyTorch's compiler) loaded after TensorFlow crashes
    the process (their LLVM copies clash; seen with TensorFlow 2.21, torch 2.14): loaded first, it
    does not. DeepFace's own import also makes TensorFlow use tf-keras, so it comes before any
    other DeepFace or TensorFlow import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if find_spec("triton") is not None:
        import triton  # noqa: F401
    from deepface import DeepFace

    return DeepFace


class DeepFaceEngine:
    """DeepFace's ``analyze(actions=("emotion",))`` on each frame; the largest face is the candidate."""

    name = "deepface"

    def __init__(self, settings: Settings) -> None:
        reason = unavailable(settings)
        if reason is not None:
            raise ModelUnavailableError(f"deepface: {reason}")
        self.detector_backend = settings.deepface_detector
        deepface = import_deepface()
        from deepface.modules import modeling

        weights = weights_path()
        try:
            # Built now, from the files checked above; DeepFace keeps them, so analyze never downloads.
            modeling.build_model(task="facial_attribute", model_name="Emotion")
            if self.detector_backend != "skip":
                modeling.build_model(task="face_detector", model_name=settings.deepface_detector)
        except ValueError as exc:  # DeepFace's word for a file it cannot read, or an OpenCV without cascades
            raise ModelUnavailableError(f"deepface: {exc}") from exc
        self._analyze = deepface.analyze
        self.model_file = weights.name
        self.model_sha256 = file_sha256(weights)

    def estimate(self, images: Sequence[np.ndarray]) -> list[FrameEstimate]:
        estimates = []
        for image in images:
            height, width = image.shape[:2]
            answers = self._analyze(
                img_path=np.ascontiguousarray(image[..., ::-1]),  # DeepFace takes OpenCV's BGR
                actions=("emotion",),
                detector_backend=self.detector_backend,
                enforce_detection=False,
                silent=True,
            )
            if self.detector_backend != "skip":
                answers = [a for a in answers if not _is_placeholder(a, height, width)]
            found = [
                (
                    Face(
                        float(a["region"]["x"]),
                        float(a["region"]["y"]),
                        float(a["region"]["w"]),
                        float(a["region"]["h"]),
                        1.0 if self.detector_backend == "skip" else float(a.get("face_confidence") or 0.0),
                    ),
                    a["emotion"],
                )
                for a in answers
            ]
            # The candidate is the largest face, as in every engine.
            chosen = max(found, key=lambda pair: pair[0].area, default=None)
            estimates.append(
                FrameEstimate(
                    face=None if chosen is None else chosen[0],
                    faces_found=len(found),
                    probabilities=None
                    if chosen is None
                    else emotions_from_mapping(chosen[1], source="DeepFace"),
                )
            )
        return estimates
