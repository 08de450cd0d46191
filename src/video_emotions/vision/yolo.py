"""``yolo_local``: an ultralytics YOLO classification model, on ONNX Runtime (``.onnx``) or torch (``.pt``).

An ``.onnx`` export runs with what the base install has (no torch): the class names and the
input size come from the metadata ultralytics writes into the export (``names`` as a Python
dict literal, ``imgsz``, ``task``), and the image is prepared as ultralytics' classify predictor
prepares it: RGB, the shorter side resized to the input size (bilinear, antialiased, as
torchvision does on a PIL image), centre crop, values divided by 255, NCHW. A ``.pt`` file runs
through ultralytics itself (the ``[yolo]`` extra), which prepares the image the same way.

The face is found by BlazeFace and cropped square (``VE_CROP_MARGIN``) before classification;
with ``VE_YOLO_CROP_FACE=false`` the whole frame is classified, as the seed did.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from video_emotions.domain import EMOTIONS, Face, FrameEstimate
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.blazeface import BlazeFaceDetector
from video_emotions.vision.crop import crop_faces
from video_emotions.vision.engine import largest_face
from video_emotions.vision.labels import label_columns, to_emotions
from video_emotions.vision.modelfiles import file_sha256

#: What the [yolo] extra brings, for messages.
YOLO_EXTRA = 'the [yolo] extra (pip install "video-emotions[yolo]")'


class FaceImageEngine(ABC):
    """Shared by the engines that classify colour images: BlazeFace's largest face, cropped square
    to ``crop_size`` pixels, or with no detector the whole frame (reported as a face covering it).

    Subclasses set ``name``, ``model_file``, ``model_sha256`` and implement :meth:`classify`.
    """

    name: str
    model_file: str
    model_sha256: str

    def __init__(self, detector: BlazeFaceDetector | None, *, crop_margin: float, crop_size: int) -> None:
        self.detector = detector
        self.crop_margin = crop_margin
        self.crop_size = crop_size

    @abstractmethod
    def classify(self, images: Sequence[np.ndarray]) -> list[dict[str, float] | None]:
        """Our seven probabilities for each RGB image (a face crop or a whole frame); None: no face."""

    def estimate(self, images: Sequence[np.ndarray]) -> list[FrameEstimate]:
        chosen: list[Face | None]
        if self.detector is None:
            chosen = [Face(0.0, 0.0, float(image.shape[1]), float(image.shape[0]), 1.0) for image in images]
            counts = [1] * len(images)
            inputs = list(images)
        else:
            found = [self.detector.detect(image) for image in images]
            chosen = [largest_face(faces) for faces in found]
            counts = [len(faces) for faces in found]
            pairs = [(image, face) for image, face in zip(images, chosen, strict=True) if face is not None]
            crops = crop_faces(
                [image for image, _ in pairs],
                [face for _, face in pairs],
                margin=self.crop_margin,
                size=self.crop_size,
                grayscale=False,
            )
            inputs = list(crops)
        with_face = [i for i, face in enumerate(chosen) if face is not None]
        by_frame = dict(zip(with_face, self.classify(inputs) if inputs else [], strict=True))
        estimates = []
        for i, count in enumerate(counts):
            probabilities = by_frame.get(i)
            # A remote endpoint may find no face in the crop: then the frame has none either.
            face = chosen[i] if probabilities is not None else None
            estimates.append(FrameEstimate(face=face, faces_found=count, probabilities=probabilities))
        return estimates


class YoloClassifier(Protocol):
    """A YOLO classification model: RGB images in, one score per class (``names``) out."""

    path: Path
    names: list[str]
    input_size: int

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def _refuse_task(path: Path, task: object) -> None:
    if task not in (None, "classify"):
        raise ModelUnavailableError(
            f"{path} is a YOLO {task} model; yolo_local needs a classification model (task=classify)"
        )


def prepare(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """RGB ``uint8`` images → float32 NCHW ``(N, 3, size, size)`` as ultralytics' classify predictor
    makes them: shorter side to ``size`` (PIL bilinear), centre crop, divided by 255."""
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for n, image in enumerate(images):
        height, width = image.shape[:2]
        if (height, width) != (size, size):
            # torchvision's Resize(int): the shorter side becomes ``size``, the longer is truncated.
            if width <= height:
                new_w, new_h = size, int(size * height / width)
            else:
                new_w, new_h = int(size * width / height), size
            image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
            top = round((new_h - size) / 2.0)
            left = round((new_w - size) / 2.0)
            image = image[top : top + size, left : left + size]
        batch[n] = image.transpose(2, 0, 1)
    batch /= 255.0
    return batch


class OnnxYoloClassifier:
    """An ultralytics classification export on ONNX Runtime."""

    def __init__(self, path: Path, *, threads: int | None = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own exception types for a bad file
            raise ModelUnavailableError(f"{self.path}: ONNX Runtime cannot run it: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        _refuse_task(self.path, meta.get("task"))
        try:
            names: dict[int, str] = ast.literal_eval(meta["names"])
            imgsz = ast.literal_eval(meta["imgsz"])
        except (KeyError, ValueError, SyntaxError) as exc:
            raise ModelUnavailableError(
                f"{self.path} lacks the metadata ultralytics writes ('names', 'imgsz'): export it with "
                "`video-emotions models export-yolo`"
            ) from exc
        self.names = [names[i] for i in sorted(names)]
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        shape = model_input.shape
        size = imgsz if isinstance(imgsz, int) else imgsz[0]
        square = isinstance(imgsz, int) or imgsz[0] == imgsz[1]
        static = [dim for dim in shape[2:] if isinstance(dim, int)]
        if len(shape) != 4 or shape[1] != 3 or not square or any(dim != size for dim in static):
            raise ModelUnavailableError(f"{self.path}: input {shape} (imgsz {imgsz}) is not square NCHW RGB")
        self.input_size = int(size)
        #: A static export (ultralytics' default) takes one fixed batch size; a dynamic one any.
        self._batch = shape[0] if isinstance(shape[0], int) else None

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = prepare(images, self.input_size)
        if self._batch is None:
            return np.asarray(self._session.run(None, {self._input_name: batch})[0])
        step = self._batch
        parts = []
        for start in range(0, len(batch), step):
            part = batch[start : start + step]
            padded = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), part.dtype)])
            parts.append(np.asarray(self._session.run(None, {self._input_name: padded})[0])[: len(part)])
        return np.concatenate(parts)


def import_ultralytics() -> Any:
    """The ultralytics package, kept off the network (no update checks, no auto-installs)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        import ultralytics
    except ImportError as exc:
        raise ModelUnavailableError(f"a .pt YOLO model needs {YOLO_EXTRA}") from exc
    return ultralytics


def _load_checkpoint(path: Path) -> Any:
    """An ultralytics ``YOLO`` for a classification ``.pt``; ModelUnavailableError otherwise."""
    ultralytics = import_ultralytics()
    try:
        model = ultralytics.YOLO(str(path))
    except Exception as exc:  # ultralytics raises many kinds for a file it cannot read
        raise ModelUnavailableError(f"ultralytics cannot load {path}: {exc}") from exc
    _refuse_task(path, model.task)
    return model


class TorchYoloClassifier:
    """A ``.pt`` checkpoint run by ultralytics itself (its own preprocessing and device choice)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._model = _load_checkpoint(self.path)
        names: dict[int, str] = self._model.names
        self.names = [names[i] for i in sorted(names)]
        imgsz = self._model.model.args.get("imgsz", 224)
        self.input_size = int(imgsz if isinstance(imgsz, int) else imgsz[0])

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        # ultralytics takes numpy images as OpenCV's BGR.
        results = self._model.predict(
            [np.ascontiguousarray(image[..., ::-1]) for image in images], imgsz=self.input_size, verbose=False
        )
        return np.stack([result.probs.data.cpu().numpy() for result in results])


def open_yolo_classifier(path: Path) -> YoloClassifier:
    """The classifier for a ``.onnx`` or ``.pt`` file; ModelUnavailableError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailableError(f"VE_YOLO_MODEL_PATH {path} does not exist")
    if path.suffix.lower() == ".onnx":
        return OnnxYoloClassifier(path)
    if path.suffix.lower() == ".pt":
        return TorchYoloClassifier(path)
    raise ModelUnavailableError(f"VE_YOLO_MODEL_PATH {path}: expected a .onnx or .pt file")


class YoloEngine(FaceImageEngine):
    """``yolo_local``: the YOLO classifier on BlazeFace's face crop (or the whole frame)."""

    name = "yolo_local"

    def __init__(
        self, classifier: YoloClassifier, detector: BlazeFaceDetector | None, *, crop_margin: float
    ) -> None:
        super().__init__(detector, crop_margin=crop_margin, crop_size=classifier.input_size)
        self.classifier = classifier
        try:
            self._columns = label_columns(classifier.names, source=str(classifier.path))
        except ValueError as exc:
            raise ModelUnavailableError(str(exc)) from exc
        self.model_file = classifier.path.name
        self.model_sha256 = file_sha256(classifier.path)

    def classify(self, images: Sequence[np.ndarray]) -> list[dict[str, float] | None]:
        rows = to_emotions(self.classifier.scores(images), self._columns)
        return [{label: float(p) for label, p in zip(EMOTIONS, row, strict=True)} for row in rows]


def export_onnx(source: Path, target: Path) -> Path:
    """Export a ``.pt`` classification checkpoint to ONNX with a dynamic batch (needs the [yolo] extra).

    The export runs on a copy in a temporary folder, so nothing is written beside ``source``.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise ModelUnavailableError(f"{source} does not exist")
    with tempfile.TemporaryDirectory(prefix="ve-yolo-export-") as tmp:
        copy = Path(tmp) / source.name
        shutil.copyfile(source, copy)
        model = _load_checkpoint(copy)
        exported = Path(model.export(format="onnx", dynamic=True, simplify=True, verbose=False))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(exported, target)
    return target
