"""The networks for 48x48 gray faces: a compact student for one CPU core, and two larger teachers.

- ``student`` (:func:`student`): a cheap full-resolution stem (one 3x3 convolution, 1 → 16
  channels) keeps the fine detail of 48x48 faces; a strided 3x3 convolution then brings the map
  to 24x24, where one basic residual block per stage runs at 24, 12, 6 and 3 pixels. Most of the
  arithmetic sits at 12x12 and below, where a CPU convolution is cheap (about 0.6 ms a face).
- ``resnet18`` (:func:`resnet18`): ResNet-18 adapted to 48x48 as in shared/models.md's GPU probe
  (3x3 stride-1 stem, no max-pool, stages of two blocks at 48, 24, 12 and 6 pixels).
- ``vgg`` (:class:`FaceVGG`): four stages of two conv3x3-BN-ReLU and a max-pool (64 to 512
  channels), then a 1024-unit fully connected layer, as in the same probe.

The teachers are too slow for the service (5 to 12 ms a face); they exist to be distilled into
the student (``train.py --teacher``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn(inputs: int, outputs: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), nn.BatchNorm2d(outputs)]


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(inputs, outputs, stride), nn.ReLU(inplace=True), *_conv_bn(outputs, outputs)
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and inputs == outputs
            else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class FaceResNet(nn.Module):
    """Logits over the seven expressions for normalised gray faces ``(N, 1, 48, 48)``.

    A 3x3 stem of ``stem`` channels at 48x48, then (with ``strided_stem``) a strided 3x3 to
    ``widths[0]`` channels at 24x24, then stages of ``blocks`` basic blocks of ``widths``
    channels, each stage after the first halving the map.
    """

    def __init__(
        self,
        *,
        stem: int,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        strided_stem: bool,
        classes: int = 7,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(1, stem), nn.ReLU(inplace=True)]
        channels = stem
        if strided_stem:
            layers += [*_conv_bn(stem, widths[0], stride=2), nn.ReLU(inplace=True)]
            channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for index in range(count):
                layers.append(BasicBlock(channels, width, 2 if stage > 0 and index == 0 else 1))
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1))


def student() -> FaceResNet:
    return FaceResNet(stem=16, widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1), strided_stem=True)


def resnet18() -> FaceResNet:
    return FaceResNet(stem=64, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), strided_stem=False)


class FaceVGG(nn.Module):
    """VGG-style logits for ``(N, 1, 48, 48)``: 4 x (2 conv3x3-BN-ReLU, max-pool), FC 1024, FC 7."""

    WIDTHS = (64, 128, 256, 512)

    def __init__(self, classes: int = 7, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in self.WIDTHS:
            layers += [*_conv_bn(channels, width), nn.ReLU(inplace=True)]
            layers += [*_conv_bn(width, width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 3 * 3, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


#: ``--net`` names and what each builds, with the card's one-line description.
NETS: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "student": (
        student,
        "FaceResNet student: 3x3 stem (16) at 48x48, strided 3x3 to 24x24, one basic residual block "
        "per stage of 32, 64, 128, 256 channels at 24, 12, 6, 3 pixels",
    ),
    "resnet18": (
        resnet18,
        "ResNet-18 for 48x48: 3x3 stride-1 stem (64), no max-pool, two basic blocks per stage of "
        "64, 128, 256, 512 channels at 48, 24, 12, 6 pixels",
    ),
    "vgg": (
        FaceVGG,
        "VGG-style: four stages of two conv3x3-BN-ReLU and a max-pool (64, 128, 256, 512), FC 1024, FC 7",
    ),
}


def build_net(name: str) -> nn.Module:
    if name not in NETS:
        raise ValueError(f"unknown net {name!r}: one of {', '.join(NETS)}")
    return NETS[name][0]()
