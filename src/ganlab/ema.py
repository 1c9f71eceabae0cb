"""Exponential moving average of the generator's weights (Karras et al. 2018, 2020; Yazici
et al. 2019): samples and metrics from the average are smoother and usually better."""

from __future__ import annotations

import torch
from torch import nn

from ganlab.options import non_negative


def ema_beta(batch_size: int, half_life_kimg: float) -> float:
    """Decay per update so that the weights' half-life is ``half_life_kimg`` thousand images,
    whatever the batch size (StyleGAN2-ADA's ``ema_kimg``)."""
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

    The module keeps the averaged copy (``generator_ema``) and calls ``update`` after every
    generator update with the number of images that update saw on all processes.
    """

    def __init__(self, half_life_kimg: float = 0.0) -> None:
        self.half_life_kimg = non_negative(half_life_kimg, "half_life_kimg")

    @property
    def enabled(self) -> bool:
        return self.half_life_kimg > 0

    def update(self, ema: nn.Module, model: nn.Module, images: int) -> None:
        update_ema(ema, model, ema_beta(images, self.half_life_kimg))
