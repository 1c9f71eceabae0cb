"""A compact StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", CVPR) for 28 to 64 px images.

No library ships these layers for plain PyTorch, so they are written here from the paper
and NVIDIA's stylegan2-ada-pytorch: a mapping network (8 layers, learning rate x0.01), a
learned constant input, modulated and demodulated 3x3 convolutions (sec. 2.2, eq. 1-3),
per-layer noise with learned strength, style mixing (StyleGAN, Karras et al. 2019,
sec. 3.1), a skip generator and a residual discriminator with minibatch std (sec. 4.1),
equalized learning rate everywhere (Karras et al. 2018, sec. 4.1) and the truncation trick;
path-length regularization (sec. 3.2) is ganlab.penalties.PathLength. Simplifications: no
conditioning, no mixed precision or activation clamping, and up/down-sampling done before
(not inside) the convolutions, with the paper's [1, 3, 3, 1] filter.

Sizes follow dcgan's rule (``base * 2**k``, base 4..8): the constant input is base x base,
so 28 (7 * 4), 32 and 64 all work.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.dcgan import dcgan_layout
from ganlab.nets.layers import MinibatchStd
from ganlab.nets.stylegan_layers import (
    SQRT2,
    EqualConv2d,
    EqualLinear,
    MappingNetwork,
    SynthesisBlock,
)
from ganlab.options import at_least, fraction, positive
from ganlab.registry import registered


def stylegan_layout(image_size: int) -> tuple[int, int]:
    """(base, number of doublings) for an image size; GanlabError if there is none."""
    try:
        return dcgan_layout(image_size)
    except GanlabError:
        raise GanlabError(
            f"stylegan cannot make {image_size}x{image_size} images: the size must be "
            "base * 2**k with base in 4..8 and k >= 1 (e.g. 28, 32, 64); set data.image_size"
        ) from None


def channels_at(size: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: ``min(channel_base // size, channel_max)`` (StyleGAN2)."""
    return max(1, min(channel_base // size, channel_max))


@registered("network")
class StyleGANGenerator(nn.Module):
    """z (B, latent_dim) -> images (B, channels, image_size, image_size).

    ``forward(z, *, truncation=1.0)``: psi of the truncation trick, w = w_avg + psi (w - w_avg)
    (1: none, 0: the mean-w image for every z). ``mix_z`` and ``crossover``: ws from z
    for the layers before ``crossover`` and from ``mix_z`` from there on. In training mode,
    with probability ``mixing_prob`` a random crossover mixes in the w of a fresh z (style
    mixing regularization), and the batch's mean w updates ``w_avg`` (an EMA, beta 0.995).
    Noise is random in training mode and fixed (``noise_const``) in eval mode, so samples
    depend on z only; ``noise_mode`` ("random", "const", "none") overrides that. In eval
    mode images are clamped to [-1, 1]; in training D sees the linear output.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        image_size: int,
        w_dim: int | None = None,
        mapping_layers: int = 8,
        mapping_lr_mul: float = 0.01,
        channel_base: int = 2048,
        channel_max: int = 128,
        mixing_prob: float = 0.9,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        base, ups = stylegan_layout(image_size)
        self.latent_dim = at_least(latent_dim, "latent_dim")
        self.w_dim = at_least(w_dim or latent_dim, "w_dim")
        self.mixing_prob = fraction(mixing_prob, "mixing_prob", closed=True)
        self.w_avg_beta = fraction(w_avg_beta, "w_avg_beta")
        mapping_layers = at_least(mapping_layers, "mapping_layers")
        mapping_lr_mul = positive(mapping_lr_mul, "mapping_lr_mul")
        channel_base = at_least(channel_base, "channel_base")
        channel_max = at_least(channel_max, "channel_max")
        self.mapping = MappingNetwork(latent_dim, self.w_dim, mapping_layers, mapping_lr_mul)
        sizes = [base * 2**i for i in range(ups + 1)]
        ch = [channels_at(s, channel_base, channel_max) for s in sizes]
        self.const = nn.Parameter(torch.randn(ch[0], base, base))
        self.blocks = nn.ModuleList(
            SynthesisBlock(ch[max(i - 1, 0)], ch[i], self.w_dim, channels, s, first=i == 0)
            for i, s in enumerate(sizes)
        )
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1
        self.register_buffer("w_avg", torch.zeros(self.w_dim))

    def styles(
        self,
        z: Tensor,
        truncation: float = 1.0,
        mix_z: Tensor | None = None,
        crossover: int | None = None,
    ) -> Tensor:
        """ws (B, num_ws, w_dim): one w per synthesis layer."""
        w = self.mapping(z.flatten(1))
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().mean(0), 1 - self.w_avg_beta)
        mixing = mix_z is None and self.training and self.mixing_prob > 0
        if mixing and float(torch.rand(())) < self.mixing_prob:
            crossover = int(torch.randint(1, self.num_ws, ()))
            mix_z = torch.randn_like(z)
        if truncation != 1:
            w = self.w_avg.lerp(w, truncation)
        if mix_z is None:
            return w[:, None].expand(-1, self.num_ws, -1)
        c = self.num_ws if crossover is None else crossover
        if not 0 <= c <= self.num_ws:
            raise GanlabError(f"crossover={c} must be in 0..{self.num_ws} (layers of this G)")
        w2 = self.mapping(mix_z.flatten(1))
        if truncation != 1:
            w2 = self.w_avg.lerp(w2, truncation)
        return torch.cat(
            [w[:, None].expand(-1, c, -1), w2[:, None].expand(-1, self.num_ws - c, -1)], 1
        )

    def synthesis(self, ws: Tensor, noise_mode: str | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) -> images (B, channels, H, W), unclamped."""
        noise_mode = noise_mode or ("random" if self.training else "const")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        img, i = None, 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i : i + block.num_conv + 1], noise_mode)
            i += block.num_conv
        return img

    def portable_forward(self, z: Tensor, psi: Tensor) -> Tensor:
        """Eval-mode images for ``z`` with a truncation psi per sample (B,) and the fixed
        noise: the graph ONNX and TorchScript export, with no Python branch on a value."""
        w = self.mapping(z.flatten(1))
        w = self.w_avg + psi.reshape(-1, 1).to(w) * (w - self.w_avg)
        ws = w[:, None].expand(-1, self.num_ws, -1)
        return self.synthesis(ws, noise_mode="const").clamp(-1, 1)

    def forward(
        self,
        z: Tensor,
        *,
        truncation: float = 1.0,
        mix_z: Tensor | None = None,
        crossover: int | None = None,
        noise_mode: str | None = None,
    ) -> Tensor:
        img = self.synthesis(self.styles(z, truncation, mix_z, crossover), noise_mode)
        return img if self.training else img.clamp(-1, 1)


class DBlock(nn.Module):
    """Residual D block (fig. 7c): conv3, down-conv3, plus a downsampled 1x1 shortcut; the
    sum scaled by 1/sqrt(2) to keep the variance."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, activate=True)
        self.conv1 = EqualConv2d(cin, cout, 3, activate=True, down=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


@registered("network")
class StyleGANDiscriminator(nn.Module):
    """images (B, channels, H, W) -> logits (B, 1): fromRGB, residual blocks down to
    base x base, then minibatch std (group ``minibatch_std``; 0: none), conv3, two dense
    layers (StyleGAN2's epilogue)."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        channel_base: int = 2048,
        channel_max: int = 128,
        minibatch_std: int = 4,
    ) -> None:
        super().__init__()
        base, ups = stylegan_layout(image_size)
        channel_base = at_least(channel_base, "channel_base")
        channel_max = at_least(channel_max, "channel_max")
        minibatch_std = at_least(minibatch_std, "minibatch_std", 0)
        sizes = [image_size // 2**i for i in range(ups + 1)]  # image_size .. base
        ch = [channels_at(s, channel_base, channel_max) for s in sizes]
        self.from_rgb = EqualConv2d(channels, ch[0], 1, activate=True)
        self.blocks = nn.Sequential(*[DBlock(ch[i], ch[i + 1]) for i in range(ups)])
        c = ch[-1]
        self.mbstd = MinibatchStd(minibatch_std) if minibatch_std else nn.Identity()
        self.conv = EqualConv2d(c + bool(minibatch_std), c, 3, activate=True)
        self.fc = EqualLinear(c * base * base, c, activate=True)
        self.out = EqualLinear(c, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.from_rgb(x))  # (B, C, base, base)
        h = self.conv(self.mbstd(h))
        return self.out(self.fc(h.flatten(1)))  # (B, 1)
