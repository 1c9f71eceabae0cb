"""Fully connected G and D (Goodfellow et al. 2014), for images and 2-D points alike."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ganlab.errors import GanlabError


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise GanlabError(f"mlp: data shape {list(shape)} is not a valid sample shape")
    return shape


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> samples (B, *shape) in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int,
        shape: Sequence[int],
        hidden: Sequence[int] = (256, 512, 1024),
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = _check_shape(shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            width = h
        layers += [nn.Linear(width, math.prod(self.shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """samples (B, *shape) -> logits (B, 1); no sigmoid, the loss works on logits."""

    def __init__(
        self,
        shape: Sequence[int],
        hidden: Sequence[int] = (1024, 512, 256),
        negative_slope: float = 0.2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.shape = _check_shape(shape)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(self.shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
