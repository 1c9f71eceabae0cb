"""DCGAN (Radford et al. 2016), generic in channels and image size.

The generator projects z to a ``base x base`` map (base in 4..8) and doubles the size with
stride-2 transposed convolutions; the discriminator mirrors it. So an image size is
supported when it is ``base * 2**k`` with base in 4..8 and k >= 1: 28 (7*4), 32 (4*8),
48 (6*8), 64 (4*16), 128, ...
"""

from __future__ import annotations

from torch import Tensor, nn

from ganlab.errors import GanlabError


def dcgan_layout(image_size: int) -> tuple[int, int]:
    """(base, number of upsamplings) for an image size; GanlabError if there is none."""
    size, ups = int(image_size), 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        ups += 1
    if ups < 1 or size > 8:
        raise GanlabError(
            f"dcgan cannot make {image_size}x{image_size} images: the size must be base * 2**k "
            "with base in 4..8 and k >= 1 (e.g. 28, 32, 64); set data.image_size accordingly"
        )
    return size, ups


def _init_weights(module: nn.Module) -> None:
    # Radford et al. 2016, section 4: weights from N(0, 0.02), BatchNorm scale from N(1, 0.02).
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int = 64) -> None:
        super().__init__()
        base, ups = dcgan_layout(image_size)
        self.latent_dim = latent_dim
        ch = width * 2 ** (ups - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, ch, base, 1, 0, bias=False),  # (B, ch, base, base)
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(ups - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),  # doubles H and W
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images (B, channels, H, W) -> logits (B, 1); no sigmoid, the loss works on logits."""

    def __init__(
        self, channels: int, image_size: int, width: int = 64, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        base, ups = dcgan_layout(image_size)
        ch = width
        # No BatchNorm on the input layer (Radford et al. 2016, section 3).
        layers: list[nn.Module] = [
            nn.Conv2d(channels, ch, 4, 2, 1),
            nn.LeakyReLU(negative_slope, True),
        ]
        for _ in range(ups - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),  # halves H and W
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(negative_slope, True),
            ]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, base, 1, 0), nn.Flatten()]  # (B, 1)
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
