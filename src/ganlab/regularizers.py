"""Gradient penalties on D that work with any loss (the ``regularizer`` config group).

A regularizer returns its penalty term for one D update; the module adds
``weight * interval * term`` every ``interval`` D updates (lazy regularization,
Karras et al. 2020, sec. 3.1: the same expected gradient at a fraction of the cost).
Penalties are computed in float32 with autocast off, so mixed precision does not round
the second-order term away.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


def _grad_norm_sq(critic: Critic, x: Tensor) -> Tensor:
    """||grad_x D(x)||^2 per sample, (B,), with a graph for the second-order backward."""
    x = x.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = critic(x).float().sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


class Regularizer:
    name = "none"

    def __init__(self, weight: float = 0.0, interval: int = 1) -> None:
        self.weight = weight
        self.interval = max(1, int(interval))

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError


class R1(Regularizer):
    """Zero-centred penalty on real data (Mescheder et al. 2018, eq. 9): gamma/2 E||grad D(x)||^2,
    applied every ``interval`` D updates (StyleGAN2: 16)."""

    name = "r1"

    def __init__(self, gamma: float = 10.0, interval: int = 16) -> None:
        super().__init__(weight=gamma / 2, interval=interval)
        self.gamma = gamma

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        return _grad_norm_sq(critic, real).mean()


class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al. 2017): E[(||grad D(x + delta)|| - 1)^2] around real data, with
    delta = 0.5 * std(x) * U[0, 1] per element."""

    name = "dragan"

    def __init__(self, weight: float = 10.0, interval: int = 1) -> None:
        super().__init__(weight=weight, interval=interval)

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real = real.detach().float()
        noisy = real + 0.5 * real.std() * torch.rand_like(real)
        return (_grad_norm_sq(critic, noisy).add(1e-12).sqrt() - 1).pow(2).mean()
