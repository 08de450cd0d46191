"""The network: a compact ResNet for 48x48 gray faces, sized for one CPU core at inference.

A cheap full-resolution stem (one 3x3 convolution, 1 → ``stem`` channels) keeps the fine detail of
48x48 faces; a strided 3x3 convolution then brings the map to 24x24, where the residual stages
(basic blocks of two 3x3 convolutions, stride 2 between stages) run at 24, 12, 6 and 3 pixels.
Most of the arithmetic sits at 12x12 and below, where a CPU convolution is cheap.
"""

from __future__ import annotations

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
    """Logits over the seven expressions for normalised gray faces ``(N, 1, 48, 48)``."""

    STEM = 16
    WIDTHS = (32, 64, 128, 256)
    BLOCKS = (1, 1, 1, 1)

    def __init__(self, classes: int = 7, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            *_conv_bn(1, self.STEM),
            nn.ReLU(inplace=True),
            *_conv_bn(self.STEM, self.WIDTHS[0], stride=2),
            nn.ReLU(inplace=True),
        ]
        channels = self.WIDTHS[0]
        for stage, (width, count) in enumerate(zip(self.WIDTHS, self.BLOCKS, strict=True)):
            for index in range(count):
                layers.append(BasicBlock(channels, width, 2 if stage > 0 and index == 0 else 1))
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1))
