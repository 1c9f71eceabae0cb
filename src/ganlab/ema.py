"""Exponential moving average of the generator's weights (Karras et al. 2018, 2020; Yazici
et al. 2019): samples and metrics from the average are smoother and usually better."""

from __future__ import annotations

import torch
from torch import nn

from ganlab.schedules import Schedule, non_negative_or_schedule, upper_bound, value_at


def ema_beta(batch_size: int, half_life_kimg: float) -> float:
    """Decay per update so that the weights' half-life is ``half_life_kimg`` thousand images,
    whatever the batch size (StyleGAN2-ADA's ``ema_kimg``); 0: no averaging (a copy), as at
    the start of R3GAN's half-life schedule."""
    if half_life_kimg <= 0:
        return 0.0
    return 0.5 ** (batch_size / (half_life_kimg * 1000.0))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers (BatchNorm statistics)
    are copied, since averaging running statistics has no meaning."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


class EMA:
    """The G EMA of a run (the ``ema`` node): a half-life in thousands of images; 0: none.
    The half-life may follow a schedule of the images seen (ganlab.schedules; R3GAN grows it
    from 0), set by ``at(images)`` before each step.

    The module keeps the averaged copy (``generator_ema``) and calls ``update`` after every
    generator update with the number of images that update saw on all processes.
    """

    def __init__(self, half_life_kimg: float | Schedule = 0.0) -> None:
        self.half_life_kimg = non_negative_or_schedule(half_life_kimg, "half_life_kimg")
        self.current = value_at(self.half_life_kimg, 0)  # the half-life of this step

    @property
    def enabled(self) -> bool:
        return upper_bound(self.half_life_kimg) > 0

    def at(self, images: int) -> dict[str, float]:
        """Set a scheduled half-life for the step after ``images`` images; its value to log."""
        if not isinstance(self.half_life_kimg, Schedule):
            return {}
        self.current = self.half_life_kimg(images)
        return {"schedule/ema_half_life_kimg": self.current}

    def update(self, ema: nn.Module, model: nn.Module, images: int) -> None:
        update_ema(ema, model, ema_beta(images, self.current))
