"""YOLO classification model files the tests make themselves.

- :func:`tiny_onnx` needs only ``onnx``: a three-layer graph (per-channel mean, a linear layer,
  softmax) with the metadata ultralytics writes into an export (``names``, ``imgsz``, ``task``),
  so the ONNX path is tested in the light environment. Its probabilities are easy to compute
  by hand (:func:`tiny_onnx_expected`).
- :func:`yolo11n_cls` needs ultralytics (the ``[yolo]`` extra): a real YOLO11n-cls built from
  ultralytics' own model yaml for our seven classes, untrained, saved as a ``.pt`` checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The seven classes as a YOLO dataset might name them (mapped to ours by normalise_label).
YOLO_NAMES = ("anger", "disgust", "fear", "happiness", "sadness", "surprised", "neutral")

_RNG_SEED = 5


def _tiny_weights(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_RNG_SEED)
    return rng.normal(0, 8, (3, classes)).astype(np.float32), rng.normal(0, 1, classes).astype(np.float32)


def tiny_onnx(
    path: Path,
    names: Sequence[str] = YOLO_NAMES,
    *,
    imgsz: int = 32,
    batch: int | None = None,
    task: str = "classify",
) -> Path:
    """A tiny classifier over ``names`` for RGB ``imgsz`` images; ``batch`` None: a dynamic batch."""
    weights, bias = _tiny_weights(len(names))
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["logits"]),
            helper.make_node("Add", ["logits", "bias"], ["shifted"]),
            helper.make_node("Softmax", ["shifted"], ["output0"], axis=1),
        ],
        "tiny_cls",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch or "batch", 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch or "batch", len(names)])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    metadata = {
        "task": task,
        "imgsz": str([imgsz, imgsz]),
        "names": str(dict(enumerate(names))),
        "batch": str(batch or 1),
    }
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_onnx_expected(batch: np.ndarray) -> np.ndarray:
    """What :func:`tiny_onnx` gives for a prepared NCHW float batch: softmax(mean @ W + b)."""
    weights, bias = _tiny_weights(len(YOLO_NAMES))
    logits = batch.mean(axis=(2, 3)) @ weights + bias
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def yolo11n_cls(path: Path, names: Sequence[str] = YOLO_NAMES, *, imgsz: int = 64) -> Path:
    """YOLO11n-cls from ultralytics' ``yolo11n-cls.yaml`` with ``len(names)`` classes, saved untrained.

    Nothing is downloaded: the yaml ships with ultralytics and the weights are its initialisation.
    ``imgsz`` is recorded as the training size, as a trained checkpoint records it.
    """
    from video_emotions.vision.yolo import import_ultralytics

    ultralytics = import_ultralytics()
    from ultralytics.nn.tasks import ClassificationModel

    model = ultralytics.YOLO("yolo11n-cls.yaml", task="classify")
    ClassificationModel.reshape_outputs(model.model, len(names))
    model.model.names = dict(enumerate(names))
    model.ckpt = {"train_args": {"task": "classify", "imgsz": imgsz}}
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path
