"""DCGAN (Radford et al. 2016), generic in channels and image size.

The generator projects z to a ``base x base`` map (base in 4..8) and doubles the size with
stride-2 transposed convolutions; the discriminator mirrors it. So an image size is
supported when it is ``base * 2**k`` with base in 4..8 and k >= 1: 28 (7*4), 32 (4*8),
48 (6*8), 64 (4*16), 128, ...
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.conditional import Projection, check_conditioning, one_hot, with_label_channels
from ganlab.nets.layers import MinibatchStd, apply_spectral_norm, norm_option, pack_samples
from ganlab.options import at_least
from ganlab.registry import registered


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


@registered("network")
class DCGANGenerator(nn.Module):
    """z (B, latent_dim) [, labels (B,)] -> images (B, channels, image_size, image_size) in
    [-1, 1]. With ``num_classes`` the one-hot label is concatenated to z (CGAN)."""

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        image_size: int,
        width: int = 64,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        base, ups = dcgan_layout(image_size)
        self.latent_dim, self.num_classes = at_least(latent_dim, "latent_dim"), num_classes
        ch = at_least(width, "width") * 2 ** (ups - 1)
        z_dim = latent_dim + (num_classes or 0)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch, base, 1, 0, bias=False),  # (B, ch, base, base)
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

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        z = z.view(z.shape[0], -1)
        if self.num_classes:
            z = torch.cat([z, one_hot(y, self.num_classes, z)], dim=1)
        return self.net(z.view(z.shape[0], -1, 1, 1))


@registered("network")
class DCGANDiscriminator(nn.Module):
    """images (B, channels, H, W) -> logits (B, 1); no sigmoid, the loss works on logits.

    ``norm``: ``batch`` (BatchNorm after the hidden convs), ``spectral`` (every conv
    spectrally normalised, no BatchNorm; Miyato et al. 2018) or ``none`` (as a
    gradient-penalty critic needs: the penalty is per sample, Gulrajani et al. 2017, sec. 4).
    ``minibatch_std``: group size of a minibatch-std channel added before the last conv
    (Karras et al. 2018); 0 for none. ``num_classes``: conditional D, by ``conditioning``
    "concat" (one-hot label channels on the input, Mirza and Osindero 2014) or "projection"
    (Miyato and Koyama 2018). ``pack``: PacGAN, groups of ``pack`` images judged together.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int = 64,
        negative_slope: float = 0.2,
        norm: str = "batch",
        minibatch_std: int = 0,
        num_classes: int | None = None,
        conditioning: str = "projection",
        pack: int = 1,
    ) -> None:
        super().__init__()
        check_conditioning(num_classes, conditioning)
        norm = norm_option(norm, ("batch", "spectral", "none"))
        batch_norm = norm == "batch"
        base, ups = dcgan_layout(image_size)
        self.num_classes = num_classes
        self.conditioning = conditioning if num_classes else None
        self.pack = at_least(pack, "pack")
        ch = at_least(width, "width")
        minibatch_std = at_least(minibatch_std, "minibatch_std", 0)
        in_ch = channels * self.pack + (num_classes if self.conditioning == "concat" else 0)
        # No BatchNorm on the input layer (Radford et al. 2016, section 3).
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, ch, 4, 2, 1),
            nn.LeakyReLU(negative_slope, True),
        ]
        for _ in range(ups - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batch_norm),  # halves H and W
                nn.BatchNorm2d(ch * 2) if batch_norm else nn.Identity(),
                nn.LeakyReLU(negative_slope, True),
            ]
            ch *= 2
        if minibatch_std:
            layers.append(MinibatchStd(minibatch_std))
            ch += 1
        self.features = nn.Sequential(*layers)  # (B, ch, base, base)
        self.head = nn.Conv2d(ch, 1, base, 1, 0)  # (B, 1, 1, 1)
        self.projection = Projection(num_classes, ch) if self.conditioning == "projection" else None
        self.apply(_init_weights)
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = pack_samples(x, self.pack)
        if self.conditioning == "concat":
            x = with_label_channels(x, y, self.num_classes)
        h = self.features(x)
        out = self.head(h).flatten(1)  # (B, 1)
        if self.projection is not None:
            out = out + self.projection(h.sum(dim=(2, 3)), y)
        return out
