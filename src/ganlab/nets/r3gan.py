"""R3GAN's networks (Huang et al. 2024, "The GAN is dead; long live the GAN!", sec. 3 and
fig. 4), in plain PyTorch: a modernized ConvNet with no normalization layers.

- Residual blocks in the ResNeXt style with an inverted bottleneck: 1x1 conv to
  ``expansion`` times the width, a grouped KxK conv (cardinality = width / ``group_channels``),
  1x1 conv back, each of the first two followed by a bias and LeakyReLU 0.2.
- Fix-up-like initialization: every conv N(0, gain / fan_in) (MSR), with the gain of the
  block's first two convs scaled by L^(-1/4) (L the number of blocks in the network, the
  paper's variance-scaling parameter for blocks of 3 layers) and the last conv of each block
  zero, so every block starts as the identity.
- Bilinear resampling between stages (R3GAN's [1, 3, 3, 1] lowpass filter in the interior).
- G: z -> a learned base x base basis scaled per channel by a linear map of z, stages of
  blocks with upsampling in between, a 1x1 conv to the image; linear output (clamped to
  [-1, 1] in eval mode, as stylegan's). D mirrors it, ending in a depthwise base x base conv
  and a linear layer. Conditional runs (``num_classes``): G concatenates a class embedding of
  z's size to z, D projects its final features on a class embedding (the paper's scheme).

Image sizes are ``base * 2**k`` as for dcgan (base in 4..8: 28, 32, 64, ...); the width at
resolution r is min(channel_base / r, channel_max), rounded down to a multiple of
``group_channels``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.conditional import check_conditioning
from ganlab.nets.dcgan import dcgan_layout
from ganlab.options import at_least, check
from ganlab.registry import registered

LRELU_GAIN = math.sqrt(2 / (1 + 0.2**2))  # He et al. 2015's gain for LeakyReLU 0.2


def msr_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Module:
    """N(0, gain^2 / fan_in) weights (He et al. 2015), zero bias."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(c_in: int, c_out: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr_init(nn.Conv2d(c_in, c_out, kernel, padding=(kernel - 1) // 2, groups=groups,
                              bias=False), gain)


class BiasedActivation(nn.Module):
    """A per-channel bias, then LeakyReLU 0.2 (the convolutions have no bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped convKxK(act(conv1x1(x))))), the last conv zero at init."""

    def __init__(self, width: int, cardinality: int, expansion: int, kernel: int,
                 num_blocks: int) -> None:
        super().__init__()
        wide = width * expansion
        gain = LRELU_GAIN * num_blocks ** (-1 / (2 * 3 - 2))  # 3 layers a block
        self.net = nn.Sequential(
            conv(width, wide, 1, gain=gain), BiasedActivation(wide),
            conv(wide, wide, kernel, groups=cardinality, gain=gain), BiasedActivation(wide),
            conv(wide, width, 1, gain=0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class Resample(nn.Module):
    """x2 bilinear up- or downsampling (torch's; antialiased when downsampling). In the
    interior this is R3GAN's [1, 3, 3, 1] lowpass resampling exactly; at the borders torch
    clamps where R3GAN zero-pads. 1.6x (up) and 3.4x (down) faster than the same filter as a
    convolution through R1/R2's double backward on a CPU (measured)."""

    def __init__(self, up: bool) -> None:
        super().__init__()
        self.scale = 2.0 if up else 0.5

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W) or (H/2, W/2)
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False,
                             antialias=self.scale < 1)


class Transition(nn.Module):
    """Between two stages: resampling, and a 1x1 conv where the width changes (on the
    narrower side: before upsampling in G, after downsampling in D)."""

    def __init__(self, c_in: int, c_out: int, up: bool) -> None:
        super().__init__()
        self.resample = Resample(up)
        self.up = up
        self.proj = conv(c_in, c_out) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.resample(self.proj(x)) if self.up else self.proj(self.resample(x))


def r3gan_layout(image_size: int, channel_base: int, channel_max: int,
                 group_channels: int) -> tuple[int, list[int]]:
    """(base resolution, widths from the base resolution up to ``image_size``)."""
    try:
        base, ups = dcgan_layout(image_size)
    except GanlabError:
        raise GanlabError(
            f"r3gan cannot make {image_size}x{image_size} images: the size must be base * 2**k "
            "with base in 4..8 and k >= 1 (e.g. 28, 32, 64); set data.image_size accordingly"
        ) from None
    channel_base = at_least(channel_base, "channel_base")
    channel_max = at_least(channel_max, "channel_max")
    group_channels = at_least(group_channels, "group_channels")
    widths = []
    for r in (base * 2**i for i in range(ups + 1)):
        width = min(channel_base // r, channel_max) // group_channels * group_channels
        widths.append(max(width, group_channels))
    return base, widths


class _Options:
    """What G and D share: the layout and the block settings, checked once."""

    def __init__(self, image_size: int, channel_base: int, channel_max: int,
                 blocks_per_stage: int, expansion: int, group_channels: int,
                 kernel_size: int) -> None:
        self.base, self.widths = r3gan_layout(image_size, channel_base, channel_max,
                                              group_channels)
        self.blocks = at_least(blocks_per_stage, "blocks_per_stage")
        self.expansion = at_least(expansion, "expansion")
        self.kernel = at_least(kernel_size, "kernel_size")
        check(self.kernel % 2 == 1, "kernel_size", kernel_size, "it must be an odd integer")
        self.group_channels = group_channels
        self.num_blocks = self.blocks * len(self.widths)  # L of the initialization

    def stage(self, width: int) -> list[nn.Module]:
        return [ResidualBlock(width, width // self.group_channels, self.expansion, self.kernel,
                              self.num_blocks) for _ in range(self.blocks)]


@registered("network")
class R3GANGenerator(nn.Module):
    """z (B, latent_dim) [, labels (B,)] -> images (B, channels, image_size, image_size)."""

    def __init__(self, latent_dim: int, channels: int, image_size: int,
                 channel_base: int = 24576, channel_max: int = 768, blocks_per_stage: int = 2,
                 expansion: int = 2, group_channels: int = 8, kernel_size: int = 3,
                 num_classes: int | None = None) -> None:
        super().__init__()
        o = _Options(image_size, channel_base, channel_max, blocks_per_stage, expansion,
                     group_channels, kernel_size)
        self.latent_dim, self.num_classes = at_least(latent_dim, "latent_dim"), num_classes
        z_dim = latent_dim
        if num_classes:  # a class embedding of z's size, concatenated to z (R3GAN's)
            self.embed = nn.Embedding(num_classes, latent_dim)
            # R3GAN's bias-free linear map of the one-hot label, MSR-initialized: fan-in K.
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(num_classes))
            z_dim += latent_dim
        w0 = o.widths[0]
        self.basis = nn.Parameter(torch.randn(w0, o.base, o.base))  # (C, base, base)
        self.to_basis = msr_init(nn.Linear(z_dim, w0, bias=False))
        layers: list[nn.Module] = o.stage(w0)
        for c_in, c_out in zip(o.widths, o.widths[1:], strict=False):
            layers += [Transition(c_in, c_out, up=True), *o.stage(c_out)]
        self.stages = nn.Sequential(*layers)
        self.to_image = conv(o.widths[-1], channels)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        z = z.view(z.shape[0], -1)
        if self.num_classes:
            if y is None:
                raise GanlabError("this network is conditional: pass class labels with z")
            z = torch.cat([z, self.embed(y.long())], dim=1)
        x = self.basis.unsqueeze(0) * self.to_basis(z)[:, :, None, None]  # (B, C, base, base)
        img = self.to_image(self.stages(x))
        return img if self.training else img.clamp(-1, 1)


@registered("network")
class R3GANDiscriminator(nn.Module):
    """images (B, channels, H, W) [, labels (B,)] -> logits (B, 1)."""

    def __init__(self, channels: int, image_size: int, channel_base: int = 24576,
                 channel_max: int = 768, blocks_per_stage: int = 2, expansion: int = 2,
                 group_channels: int = 8, kernel_size: int = 3, num_classes: int | None = None,
                 conditioning: str = "projection") -> None:
        super().__init__()
        check_conditioning(num_classes, conditioning)
        if num_classes and conditioning != "projection":
            raise GanlabError(f"conditioning={conditioning} is not supported by r3gan, whose D "
                              "projects its features on a class embedding; use "
                              "conditioning=projection")
        o = _Options(image_size, channel_base, channel_max, blocks_per_stage, expansion,
                     group_channels, kernel_size)
        self.num_classes = num_classes
        widths = o.widths[::-1]  # from the image's resolution down to the base
        self.from_image = conv(channels, widths[0])
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += [*o.stage(c_in), Transition(c_in, c_out, up=False)]
        layers += o.stage(widths[-1])
        self.stages = nn.Sequential(*layers)
        w = widths[-1]
        # The discriminative basis, a depthwise base x base conv to (B, w, 1, 1), written as a
        # weighted sum over positions (the same map; a conv with w groups would cost w convs
        # in R1/R2's double backward). MSR init: fan-in base * base.
        self.basis = nn.Parameter(torch.randn(w, o.base, o.base) / o.base)
        out = w if num_classes else 1
        self.head = msr_init(nn.Linear(w, out, bias=False))
        if num_classes:
            self.embed = nn.Embedding(num_classes, w)
            # R3GAN: MSR init with gain 1 / sqrt(w), over a one-hot fan-in of K classes.
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(w * num_classes))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = (self.stages(self.from_image(x)) * self.basis).sum((2, 3))  # (B, w)
        out = self.head(h)  # (B, 1), or (B, w) for a conditional D
        if self.num_classes:
            if y is None:
                raise GanlabError("this network is conditional: pass class labels with x")
            out = (out * self.embed(y.long())).sum(1, keepdim=True)
        return out
