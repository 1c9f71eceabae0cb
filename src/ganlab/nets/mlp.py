"""Fully connected G and D (Goodfellow et al. 2014), for images and 2-D points alike."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.conditional import Projection, check_conditioning, one_hot, with_label_channels
from ganlab.nets.layers import apply_spectral_norm, norm_option, pack_samples
from ganlab.options import at_least, fraction, non_negative, sizes
from ganlab.registry import registered


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise GanlabError(f"mlp: data shape {list(shape)} is not a valid sample shape")
    return shape


@registered("network")
class MLPGenerator(nn.Module):
    """z (B, latent_dim) [, labels (B,)] -> samples (B, *shape) in [-1, 1]; with
    ``num_classes`` the one-hot label is concatenated to z (CGAN).

    ``norm``: ``batch`` puts BatchNorm1d before every hidden activation, as in the
    generators of the VEEGAN / PacGAN 2-D experiments (Lin et al. 2018, appendix); ``none``.
    """

    def __init__(
        self,
        latent_dim: int,
        shape: Sequence[int],
        hidden: Sequence[int] = (256, 512, 1024),
        negative_slope: float = 0.2,
        num_classes: int | None = None,
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = at_least(latent_dim, "latent_dim"), num_classes
        self.shape = _check_shape(shape)
        batch_norm = norm_option(norm, ("none", "batch")) == "batch"
        negative_slope = non_negative(negative_slope, "negative_slope")
        layers: list[nn.Module] = []
        width = latent_dim + (num_classes or 0)
        for h in sizes(hidden, "hidden"):
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.LeakyReLU(negative_slope))
            width = h
        layers += [nn.Linear(width, math.prod(self.shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], dim=1)
        return self.net(z).view(z.shape[0], *self.shape)


@registered("network")
class MLPDiscriminator(nn.Module):
    """samples (B, *shape) -> logits (B, 1); no sigmoid, the loss works on logits.

    ``norm``: ``spectral`` normalises every linear layer (Miyato et al. 2018); ``none``.
    ``num_classes``: conditional D, by ``conditioning`` "concat" (one-hot label appended to
    the input) or "projection" (Miyato and Koyama 2018). ``pack``: PacGAN, D judges groups of
    ``pack`` samples concatenated (B samples in, B / pack logits out).
    """

    def __init__(
        self,
        shape: Sequence[int],
        hidden: Sequence[int] = (1024, 512, 256),
        negative_slope: float = 0.2,
        dropout: float = 0.3,
        norm: str = "none",
        num_classes: int | None = None,
        conditioning: str = "projection",
        pack: int = 1,
    ) -> None:
        super().__init__()
        check_conditioning(num_classes, conditioning)
        self.shape = _check_shape(shape)
        self.num_classes = num_classes
        self.conditioning = conditioning if num_classes else None
        self.pack = at_least(pack, "pack")
        spectral = norm_option(norm, ("none", "spectral")) == "spectral"
        negative_slope = non_negative(negative_slope, "negative_slope")
        dropout = fraction(dropout, "dropout")
        layers: list[nn.Module] = [nn.Flatten()]
        width = self.pack * math.prod(self.shape)
        width += num_classes if self.conditioning == "concat" else 0
        for h in sizes(hidden, "hidden"):
            layers += [nn.Linear(width, h), nn.LeakyReLU(negative_slope)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)  # (B, width)
        self.head = nn.Linear(width, 1)
        self.projection = (
            Projection(num_classes, width) if self.conditioning == "projection" else None
        )
        if spectral:
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = pack_samples(x, self.pack).flatten(1)
        if self.conditioning == "concat":
            x = with_label_channels(x, y, self.num_classes)
        h = self.features(x)
        out = self.head(h)
        if self.projection is not None:
            out = out + self.projection(h, y)
        return out
