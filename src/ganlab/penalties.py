"""Penalties on D or G, applied lazily by one mechanism (the ``regularizer`` group, a loss's
own penalty such as WGAN-GP's, a model's such as StyleGAN's path length).

A penalty returns its term for one update of its phase (D or G); ``LazyPenalties`` adds
``weight * interval * term`` every ``interval`` updates of that phase (lazy regularization,
Karras et al. 2020, sec. 3.1: the same expected gradient at a fraction of the cost) and, for
D's penalties, logs the latest term at every update. Terms are computed in float32 with
autocast off, so mixed precision does not round the second-order term away. Penalties are
modules, so any running state they keep (path length's mean) is saved in checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ganlab.options import at_least
from ganlab.schedules import Schedule, non_negative_or_schedule, upper_bound

Critic = Callable[[Tensor], Tensor]
PHASES = ("discriminator", "generator")


def input_gradient_scale(critic: Critic) -> float:
    """What input gradients of ``critic`` are multiplied by to be measured where D works: a D
    that first average-pools its input by k (ProGAN's below its last resolution) shrinks
    them by k, and the papers take them at D's own resolution (1 for every other D)."""
    return float(getattr(critic, "gradient_scale", 1.0))


def _grad_norm_sq(critic: Critic, x: Tensor) -> Tensor:
    """||grad_x D(x)||^2 per sample, (B,), with a graph for the second-order backward (at D's
    working resolution: ``input_gradient_scale``)."""
    x = x.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = critic(x).float().sum()
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1) * input_gradient_scale(critic) ** 2


class Penalty(nn.Module):
    """``weight`` (0: off) and ``interval``, in updates of ``phase``; ``forward`` is the term.

    The strength is the option ``option`` (``weight``; R1's ``gamma``), a number or a schedule
    of the images seen (ganlab.schedules); the term's weight is ``factor`` times it (R1:
    gamma / 2), set by ``at(images)`` before each training step when it is scheduled.
    """

    name = "penalty"
    phase = "discriminator"

    def __init__(self, weight: float | Schedule = 0.0, interval: int = 1, option: str = "weight",
                 factor: float = 1.0) -> None:
        super().__init__()
        self.option, self.factor = option, factor
        self.strength = non_negative_or_schedule(weight, option)
        self.weight = factor * (self.strength(0) if self.scheduled else self.strength)
        self.interval = at_least(interval, "interval")

    @property
    def scheduled(self) -> bool:
        return isinstance(self.strength, Schedule)

    @property
    def active(self) -> bool:
        """False when the weight is 0 throughout (the penalty is then dropped)."""
        return upper_bound(self.strength) > 0

    def at(self, images: int) -> dict[str, float]:
        """Set a scheduled weight for the step after ``images`` images; its value to log."""
        if not self.scheduled:
            return {}
        value = self.strength(images)
        self.weight = self.factor * value
        return {f"schedule/{self.name}_{self.option}": value}


class R1(Penalty):
    """Zero-centred penalty on real data (Mescheder et al. 2018, eq. 9):
    gamma/2 E||grad D(x)||^2, every ``interval`` D updates (StyleGAN2: 16)."""

    name = "r1"

    def __init__(self, gamma: float | Schedule = 10.0, interval: int = 16) -> None:
        super().__init__(gamma, interval, option="gamma", factor=0.5)
        self.gamma = gamma

    def forward(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        return _grad_norm_sq(critic, real).mean()


class R1R2(Penalty):
    """Zero-centred penalties on real and on generated data (Mescheder et al. 2018, R1 and
    R2), as R3GAN applies them together (Huang et al. 2024):
    gamma/2 (E||grad_x D(x)||^2 + E||grad_x D(G(z))||^2), every ``interval`` D updates
    (R3GAN: every one). ``gamma`` may follow a schedule (R3GAN decays it by 10x)."""

    name = "r1r2"

    def __init__(self, gamma: float | Schedule = 0.05, interval: int = 1) -> None:
        super().__init__(gamma, interval, option="gamma", factor=0.5)
        self.gamma = gamma

    def forward(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        # Two critic calls, as R3GAN's: a D with batch statistics would mix one joint batch.
        return _grad_norm_sq(critic, real).mean() + _grad_norm_sq(critic, fake).mean()


class DRAGAN(Penalty):
    """DRAGAN (Kodali et al. 2017): E[(||grad D(x + delta)|| - 1)^2] around real data, with
    delta = 0.5 * std(x) * U[0, 1] per element."""

    name = "dragan"

    def __init__(self, weight: float = 10.0, interval: int = 1) -> None:
        super().__init__(weight=weight, interval=interval)

    def forward(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real = real.detach().float()
        noisy = real + 0.5 * real.std() * torch.rand_like(real)
        return (_grad_norm_sq(critic, noisy).add(1e-12).sqrt() - 1).pow(2).mean()


class GradientPenalty(Penalty):
    """WGAN-GP's penalty (Gulrajani et al. 2017, eq. 3): E[(||grad D(x_hat)||_2 - 1)^2] at
    x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1] per sample; the norm is taken
    per sample over all non-batch dimensions."""

    name = "gradient_penalty"

    def forward(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real, fake = real.detach().float(), fake.detach().float()
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        with torch.autocast(device_type=x_hat.device.type, enabled=False):
            out = critic(x_hat).reshape(-1).float()
            (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1) * input_gradient_scale(critic)  # (B,)
        return (norm - 1).pow(2).mean()


class PathLength(Penalty):
    """Path-length regularization of a mapping-network G (StyleGAN2, sec. 3.2, eq. 4):
    E[(||J_w^T y||_2 - a)^2], y ~ N(0, I) image-shaped and scaled by 1/sqrt(H W), ``a`` the
    running mean of the lengths (decay ``decay``), on a batch ``batch_shrink`` times smaller
    (StyleGAN2: weight 2, every 4 G updates)."""

    name = "path_length"
    phase = "generator"

    def __init__(self, weight: float = 2.0, interval: int = 4, decay: float = 0.01,
                 batch_shrink: int = 2) -> None:
        super().__init__(weight=weight, interval=interval)
        self.decay, self.batch_shrink = decay, at_least(batch_shrink, "batch_shrink")
        self.register_buffer("mean", torch.zeros(()))

    def forward(self, generator: nn.Module, latents: Callable[[], Tensor]) -> Tensor:
        z = latents()
        z = z[: max(1, z.shape[0] // self.batch_shrink)]
        ws = generator.styles(z)  # (B, num_ws, w_dim)
        img = generator.synthesis(ws)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()  # (B,)
        with torch.no_grad():
            self.mean.lerp_(lengths.mean(), self.decay)
        return (lengths - self.mean).square().mean()


class LazyPenalties(nn.Module):
    """The penalties of a run, in order; weight-0 ones (and ``none`` options) are dropped."""

    def __init__(self, penalties: Iterable[Any] = ()) -> None:
        super().__init__()
        kept = [p for p in penalties if isinstance(p, Penalty) and p.active]
        self.items = nn.ModuleList(kept)
        self._last: dict[str, Tensor] = {}  # latest D term per name, logged every update

    def of(self, phase: str) -> list[Penalty]:
        return [p for p in self.items if p.phase == phase]

    def at(self, images: int) -> dict[str, float]:
        """Scheduled weights set for the step after ``images`` images; their values to log."""
        values: dict[str, float] = {}
        for penalty in self.items:
            values |= penalty.at(images)
        return values

    def add(self, phase: str, updates: int, terms: dict[str, Tensor],
            **inputs: Any) -> dict[str, Tensor]:
        """``terms`` with the penalties of ``phase`` due at its ``updates``-th update added to
        ``terms["loss"]`` (and, for D, the latest term of each under its name)."""
        for penalty in self.of(phase):
            if updates % penalty.interval == 0:
                term = penalty(**inputs)
                terms["loss"] = terms["loss"] + penalty.weight * penalty.interval * term
                self._last[penalty.name] = term.detach()
            if phase == "discriminator":
                last = self._last.get(penalty.name)
                if last is None:  # resumed between two lazy applications
                    last = self._last[penalty.name] = torch.zeros((), device=terms["loss"].device)
                terms[penalty.name] = last
        return terms
