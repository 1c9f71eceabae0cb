"""CycleGAN's networks (Zhu et al. 2017, appendix 7.2): ResNet generators and PatchGAN
discriminators, each built as a pair (one per domain) so that one config node makes both.

The paper's generator at 256x256 has 9 residual blocks of 256 channels (width 64); the
defaults here (width 32, 3 blocks) suit 32x32 images on a CPU. Its 70x70 PatchGAN
discriminator has 3 stride-2 convs at 256x256; here the depth follows the image size so
that each output logit sees about the same fraction of the image (see ``patch_layers``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.options import OptionError, at_least
from ganlab.registry import registered


def _init_weights(module: nn.Module) -> None:
    # The authors' code: conv weights from N(0, 0.02), biases 0.
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _conv_block(
    c_in: int, c_out: int, kernel: int, stride: int = 1, pad: int = 0
) -> list[nn.Module]:
    """Conv, instance norm, ReLU; reflection padding in front of stride-1 convs."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad and stride == 1 else []
    layers.append(nn.Conv2d(c_in, c_out, kernel, stride, 0 if stride == 1 else pad))
    return [*layers, nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """R_k: two reflection-padded 3x3 convs with instance norm, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(channels, channels, 3, pad=1),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Images (B, C, S, S) in [-1, 1] -> images of the same shape in [-1, 1]:
    c7s1-w, d2w, d4w, R4w x num_blocks, u2w, uw, c7s1-C, tanh (Johnson et al. 2016)."""

    def __init__(
        self, channels: int, image_size: int, width: int = 32, num_blocks: int = 3
    ) -> None:
        super().__init__()
        check_image_size(image_size)
        w = at_least(width, "width")
        num_blocks = at_least(num_blocks, "num_blocks", 0)
        self.net = nn.Sequential(
            *_conv_block(channels, w, 7, pad=3),
            *_conv_block(w, 2 * w, 3, stride=2, pad=1),  # (B, 2w, S/2, S/2)
            *_conv_block(2 * w, 4 * w, 3, stride=2, pad=1),  # (B, 4w, S/4, S/4)
            *[ResidualBlock(4 * w) for _ in range(num_blocks)],
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1),  # (B, 2w, S/2, S/2)
            nn.InstanceNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1),  # (B, w, S, S)
            nn.InstanceNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(w, channels, 7),
            nn.Tanh(),
        )
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def check_image_size(image_size: int) -> None:
    if image_size % 4 or image_size < 8:
        raise GanlabError(
            f"cyclegan cannot translate {image_size}x{image_size} images: its generator halves "
            "the size twice, so data.image_size must be a multiple of 4, at least 8"
        )


def patch_layers(image_size: int, num_layers: int | None = None) -> int:
    """Stride-2 convs of the PatchGAN: ``num_layers``, or for None 3 at 256 (the 70x70
    PatchGAN), 2 at 128 (34x34), 1 at 64 and below (16x16): a logit sees about 27% of a
    large image. GanlabError when the image is too small for them."""
    n = max(1, int(math.log2(image_size)) - 5) if num_layers is None else num_layers
    if not isinstance(n, int) or isinstance(n, bool):
        raise OptionError("num_layers", num_layers, "it must be null or an integer >= 1")
    if n < 1 or image_size // 2**n < 3:
        raise GanlabError(
            f"model.discriminator.num_layers={num_layers} does not fit {image_size}x{image_size} "
            "images: it needs 1 <= num_layers and image_size / 2**num_layers >= 3; null picks "
            "a depth for the image size"
        )
    return n


class PatchDiscriminator(nn.Module):
    """Images (B, C, S, S) -> one logit per overlapping patch, (B, 1, h, w); no sigmoid.

    C64-C128-C256-C512 at num_layers 3 (Isola et al. 2017; Zhu et al. 2017): 4x4 convs with
    LeakyReLU 0.2, instance norm on all but the first; widths double up to 8 * width.
    """

    def __init__(
        self, channels: int, image_size: int, width: int = 32, num_layers: int | None = None
    ) -> None:
        super().__init__()
        self.num_layers = n = patch_layers(image_size, num_layers)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(1, n + 1):  # n - 1 more stride-2 convs, then a stride-1 one
            c_out = width * min(2**i, 8)
            layers += [
                nn.Conv2d(c, c_out, 4, 2 if i < n else 1, 1),
                nn.InstanceNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))  # (B, 1, S / 2**n - 2, S / 2**n - 2)
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _Pair(nn.Module):
    """Two networks of one kind; ``compile()`` compiles both (the pair has no forward)."""

    def compile(self, *args, **kwargs) -> None:
        for child in self.children():
            child.compile(*args, **kwargs)


@registered("network")
class CycleGenerators(_Pair):
    """G: A -> B (``a2b``) and F: B -> A (``b2a``), both ResnetGenerators."""

    def __init__(
        self, channels: int, image_size: int, width: int = 32, num_blocks: int = 3
    ) -> None:
        super().__init__()
        self.channels, self.image_size = channels, image_size
        self.a2b = ResnetGenerator(channels, image_size, width, num_blocks)
        self.b2a = ResnetGenerator(channels, image_size, width, num_blocks)


@registered("network")
class PatchDiscriminators(_Pair):
    """D_A (``a``: real A vs F(b)) and D_B (``b``: real B vs G(a)), both PatchGANs."""

    def __init__(
        self, channels: int, image_size: int, width: int = 32, num_layers: int | None = None
    ) -> None:
        super().__init__()
        self.a = PatchDiscriminator(channels, image_size, width, num_layers)
        self.b = PatchDiscriminator(channels, image_size, width, num_layers)
