"""Layers shared by the discriminators: PacGAN packing, minibatch standard deviation,
spectral norm."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ganlab.options import check


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """(B, C, ...) -> (B / pack, pack * C, ...): samples ``pack * i`` to ``pack * i + pack - 1``
    concatenated along the feature / channel axis, as PacGAN's discriminator sees them
    (Lin et al. 2018). A discriminator with a ``pack`` option is built for ``pack`` times the
    input channels or features and packs its input itself."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ValueError(f"a batch of {x.shape[0]} samples cannot be packed in groups of {pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, sec. 3).

    For groups of ``group_size`` samples, the std of every feature over the group, averaged
    over features and positions, is appended as one extra channel, so D can see the
    variety of a batch: the practical form of "minibatch discrimination" against mode
    collapse. Works on (B, C, H, W) and (B, F) inputs.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        g = min(self.group_size, b)
        if b % g:  # a batch that does not split into groups: one group of all samples
            g = b
        y = x.reshape(g, b // g, *x.shape[1:])  # (G, B/G, ...): std across the G members
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/G, ...)
        std = std.flatten(1).mean(1)  # (B/G,)
        std = std.repeat(g)  # member i of every group gets its group's value
        shape = (b, 1, *x.shape[2:])
        return torch.cat([x, std.view(b, *([1] * (x.dim() - 1))).expand(shape)], dim=1)


def norm_option(norm: str, allowed: tuple[str, ...]) -> str:
    """A network's ``norm`` option, one of ``allowed`` (batch, spectral, none)."""
    check(norm in allowed, "norm", norm, f"it must be one of {', '.join(allowed)}")
    return norm


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every conv and linear layer in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module
