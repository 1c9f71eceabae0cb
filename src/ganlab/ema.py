"""Exponential moving average of the generator's weights (Karras et al. 2018, 2020; Yazici
et al. 2019): samples and metrics from the average are smoother and usually better."""

from __future__ import annotations

import torch
from torch import nn


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
