"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake
samples alike before D, so D cannot overfit a small data set and G still gets gradients.

The three policies of the paper (color, translation, cutout), written for (B, C, H, W)
tensors in [-1, 1]. Each sample draws its own parameters; every op is differentiable in
the images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganlab.errors import GanlabError


def color(x: Tensor) -> Tensor:
    """Random brightness (+-0.5), saturation (x[0, 2]) and contrast (x[0.5, 1.5])."""
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(
        torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij"
    )
    gy = (gy.unsqueeze(0) + dy).clamp(-1, h)  # (B, H, W) source rows; -1 and h hit the pad
    gx = (gx.unsqueeze(0) + dx).clamp(-1, w)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H+2, W+2)
    idx = ((gy + 1) * (w + 2) + (gx + 1)).flatten(1)  # (B, H*W) into the padded plane
    out = padded.flatten(2).gather(2, idx.unsqueeze(1).expand(-1, x.shape[1], -1))
    return out.view_as(x)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of ``ratio`` times the image size, centred anywhere, in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2
    x0 = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """Applies the named policies in order; the module calls it on every sample D sees."""

    def __init__(self, policy: Sequence[str] = ("color", "translation", "cutout")) -> None:
        unknown = [p for p in policy if p not in POLICIES]
        if unknown:
            raise GanlabError(
                f"augment.policy has unknown {unknown[0]!r}; use any of {', '.join(POLICIES)}"
            )
        self.policy = list(policy)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:  # 2-D points: nothing to augment
            return x
        for name in self.policy:
            x = POLICIES[name](x)
        return x
