"""Walks through the latent space: linear and spherical interpolation (White 2016)."""

from __future__ import annotations

import torch
from torch import Tensor


def lerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """(steps, D) points on the segment from z0 to z1 (both (D,)), ends included."""
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """(steps, D) points on the great circle from z0 to z1: for Gaussian latents the path
    that stays at the typical norm, where linear interpolation passes near the origin."""
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype).unsqueeze(1)
    cos = torch.dot(z0 / z0.norm(), z1 / z1.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:  # (nearly) parallel: the arc is the segment
        return lerp(z0, z1, steps)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
