"""Per-batch augmentation on tensors (the recipe of shared/models.md), drawn from torch's global RNG.

Random draws are made on the images' device, so that a batch on the GPU never waits for the CPU;
on the CPU the draws are the same as they always were.

Everything works on a whole batch at once: one ``affine_grid``/``grid_sample`` for flip, rotation,
zoom and shift; per-image brightness and contrast; per-image Gaussian blur (used by the FER+
fine-tuning); one random rectangle erased per chosen image; and, on a share of the batches, mixup
or cutmix (the caller mixes the loss with the returned weight; the labels may be indices or
soft target rows).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(count: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.rand(count, device=device) * (high - low) + low


def random_affine(
    images: torch.Tensor,
    degrees: float = 15.0,
    zoom: float = 1.2,
    shift: float = 0.1,
) -> torch.Tensor:
    """Horizontal flip (half the images), rotation within ±``degrees``, zoom in [1/zoom, zoom]
    (log-uniform), shift within ±``shift`` of the side; borders repeat the edge pixels."""
    count, device = images.shape[0], images.device
    angle = _uniform(count, -degrees, degrees, device) * (math.pi / 180)
    scale = torch.exp(_uniform(count, -math.log(zoom), math.log(zoom), device))
    flip = torch.where(torch.rand(count, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, _uniform(count, -2 * shift, 2 * shift, device)], dim=1),
            torch.stack([sin * flip, cos, _uniform(count, -2 * shift, 2 * shift, device)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter(images: torch.Tensor, brightness: float = 0.2, contrast: float = 0.3) -> torch.Tensor:
    """Contrast scaled by [1 - ``contrast``, 1 + ``contrast``] about each image's mean, then a
    brightness offset within ±``brightness`` (images normalised to [-1, 1], clamped back there)."""
    count, device = images.shape[0], images.device
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    factor = _uniform(count, 1 - contrast, 1 + contrast, device).view(-1, 1, 1, 1)
    offset = _uniform(count, -brightness, brightness, device).view(-1, 1, 1, 1)
    return ((images - mean) * factor + mean + offset).clamp(-1.0, 1.0)


def random_erasing(
    images: torch.Tensor,
    probability: float = 0.5,
    area: tuple[float, float] = (0.02, 0.25),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Fill one random rectangle with noise in a ``probability`` share of the images."""
    count, _, height, width = images.shape
    device = images.device
    share = _uniform(count, *area, device)
    ratio = torch.exp(_uniform(count, math.log(aspect[0]), math.log(aspect[1]), device))
    box_h = (torch.sqrt(share * ratio) * height).clamp(1, height)
    box_w = (torch.sqrt(share / ratio) * width).clamp(1, width)
    top = torch.rand(count, device=device) * (height - box_h)
    left = torch.rand(count, device=device) * (width - box_w)
    rows = torch.arange(height, device=device).view(1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, -1)
    inside = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + box_h).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + box_w).view(-1, 1, 1))
    )
    chosen = (torch.rand(count, device=device) < probability).view(-1, 1, 1)
    mask = (inside & chosen).unsqueeze(1)
    noise = torch.rand(images.shape, device=device) * 2 - 1
    return torch.where(mask, noise, images)


def gaussian_blur(images: torch.Tensor, probability: float = 0.5, max_sigma: float = 1.5) -> torch.Tensor:
    """Blur a ``probability`` share of the images with a Gaussian of sigma uniform in (0, ``max_sigma``]
    pixels (video frames are softer than FER2013's faces: motion, focus, compression)."""
    count, channels, height, width = images.shape
    device = images.device
    radius = math.ceil(2 * max_sigma)
    sigma = _uniform(count, 0.05, max_sigma, device).view(-1, 1)
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=images.dtype).view(1, -1)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    flat = images.reshape(1, count * channels, height, width)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(-1, 1, 1, 2 * radius + 1), groups=count * channels)
    blurred = F.conv2d(flat, kernel.view(-1, 1, 2 * radius + 1, 1), groups=count * channels)
    chosen = (torch.rand(count, device=device) < probability).view(-1, 1, 1, 1)
    return torch.where(chosen, blurred.view_as(images), images)


def mix(
    images: torch.Tensor, labels: torch.Tensor, probability: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (alpha 0.2) or cutmix (alpha 1), half and half, on a ``probability`` share of batches.

    Returns the images, the partner labels and the weight of the original labels (1 when unmixed).
    """
    if torch.rand(1).item() >= probability:
        return images, labels, 1.0
    order = torch.randperm(images.shape[0], device=images.device)
    if torch.rand(1).item() < 0.5:
        weight = float(torch.distributions.Beta(0.2, 0.2).sample().item())
        return weight * images + (1 - weight) * images[order], labels[order], weight
    height, width = images.shape[2:]
    weight = float(torch.distributions.Beta(1.0, 1.0).sample().item())
    cut_h, cut_w = int(height * math.sqrt(1 - weight)), int(width * math.sqrt(1 - weight))
    top = int(torch.randint(0, height - cut_h + 1, (1,)))
    left = int(torch.randint(0, width - cut_w + 1, (1,)))
    mixed = images.clone()
    mixed[:, :, top : top + cut_h, left : left + cut_w] = images[
        order, :, top : top + cut_h, left : left + cut_w
    ]
    return mixed, labels[order], 1 - cut_h * cut_w / (height * width)


def augment(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The whole training augmentation for normalised ``(N, 1, H, W)`` images."""
    images = random_erasing(jitter(random_affine(images)))
    return mix(images, labels)
