"""SNGAN's ResNet G and D (Miyato et al. 2018, appendix B.4, Table 4, CIFAR-10)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.layers import MinibatchStd, apply_spectral_norm, pack_samples
from ganlab.options import at_least
from ganlab.registry import registered


def _num_blocks(image_size: int) -> int:
    """Resolution doublings from 4x4: 3 for 32x32, 4 for 64x64."""
    k = math.log2(image_size / 4) if image_size >= 8 else 0
    if not k.is_integer() or k < 1:
        raise GanlabError(
            f"sngan cannot make {image_size}x{image_size} images: the size must be 4 * 2**k "
            "(32 as in the paper, or 16, 64, 128); set data.image_size accordingly"
        )
    return int(k)


class _GBlock(nn.Module):
    """BN-ReLU-up-conv3-BN-ReLU-conv3 with an upsampled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2)  # nearest, as in the paper
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class _DBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-avgpool with a 1x1 shortcut; the first block skips the
    leading ReLU and pools its shortcut before the conv ("optimized" block)."""

    def __init__(self, cin: int, cout: int, down: bool, first: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if (cin != cout or down) else None
        self.down, self.first = down, first

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.down:
            h = F.avg_pool2d(h, 2)
            if self.first:
                s = F.avg_pool2d(s, 2)
        if self.skip is not None:
            s = self.skip(s)
        if self.down and not self.first:
            s = F.avg_pool2d(s, 2)
        return h + s


@registered("network")
class SNGANGenerator(nn.Module):
    """z (B, latent_dim) -> (B, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int = 256) -> None:
        super().__init__()
        self.latent_dim = at_least(latent_dim, "latent_dim")
        self.width = width = at_least(width, "width")
        self.linear = nn.Linear(latent_dim, 4 * 4 * width)
        self.blocks = nn.Sequential(
            *[_GBlock(width, width) for _ in range(_num_blocks(image_size))]
        )
        self.out = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z.flatten(1)).view(-1, self.width, 4, 4)  # (B, width, 4, 4)
        return self.out(self.blocks(h))


@registered("network")
class SNGANDiscriminator(nn.Module):
    """images -> logits (B, 1); every layer spectrally normalised, global sum pooling.

    ``minibatch_std``: group size of a minibatch-std channel before the last block; 0: none.
    ``pack``: PacGAN, groups of ``pack`` images judged together.
    """

    def __init__(
        self, channels: int, image_size: int, width: int = 128, minibatch_std: int = 0,
        pack: int = 1,
    ) -> None:
        super().__init__()
        downs = _num_blocks(image_size) - 1  # 32x32: 32 -> 16 -> 8, then two blocks at 8x8
        self.pack = at_least(pack, "pack")
        width = at_least(width, "width")
        minibatch_std = at_least(minibatch_std, "minibatch_std", 0)
        blocks: list[nn.Module] = [_DBlock(channels * self.pack, width, down=True, first=True)]
        blocks += [_DBlock(width, width, down=True, first=False) for _ in range(downs - 1)]
        if minibatch_std:
            blocks.append(MinibatchStd(minibatch_std))
        blocks += [
            _DBlock(width + bool(minibatch_std), width, down=False, first=False),
            _DBlock(width, width, down=False, first=False),
        ]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(width, 1)
        apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(pack_samples(x, self.pack))).sum(dim=(2, 3))  # (B, width): global sum pooling
        return self.linear(h)
