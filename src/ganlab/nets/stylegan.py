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

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.dcgan import dcgan_layout
from ganlab.nets.layers import MinibatchStd
from ganlab.options import at_least, fraction, positive
from ganlab.registry import registered

SQRT2 = math.sqrt(2.0)


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


def lrelu(x: Tensor) -> Tensor:
    # LeakyReLU 0.2 with gain sqrt(2), so equalized-lr layers keep unit variance.
    return F.leaky_relu(x, 0.2) * SQRT2


def _fir_kernel() -> Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k / k.sum()  # (4, 4)


def upsample2d(x: Tensor) -> Tensor:
    """2x upsampling with the [1, 3, 3, 1] filter (zero insertion then blur, gain 4)."""
    c = x.shape[1]
    k = (_fir_kernel() * 4).to(x).expand(c, 1, 4, 4)
    return F.conv_transpose2d(x, k, stride=2, padding=1, groups=c)  # (B, C, 2H, 2W)


def downsample2d(x: Tensor) -> Tensor:
    """2x downsampling with the [1, 3, 3, 1] filter (blur then keep every other pixel)."""
    c = x.shape[1]
    k = _fir_kernel().to(x).expand(c, 1, 4, 4)
    return F.conv2d(x, k, stride=2, padding=1, groups=c)  # (B, C, H/2, W/2)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored N(0, 1) / lr_mul and scaled
    by lr_mul / sqrt(fan_in) at run time, the bias scaled by lr_mul, so Adam's steps are the
    same size for every layer and lr_mul slows this layer down (the mapping network's 0.01)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.weight_gain, self.bias_gain = lr_mul / math.sqrt(cin), lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activate else x


class EqualConv2d(nn.Module):
    """Conv with equalized learning rate (weights N(0, 1), scaled by 1 / sqrt(fan_in));
    ``down``: [1, 3, 3, 1] downsampling before the conv."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        bias: bool = True,
        activate: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain = 1 / math.sqrt(cin * kernel * kernel)
        self.activate, self.down = activate, down

    def forward(self, x: Tensor) -> Tensor:
        if self.down:
            x = downsample2d(x)
        x = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu(x) if self.activate else x


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim): normalised z through ``num_layers`` equalized-lr layers
    whose learning rate is ``lr_mul`` times the rest (StyleGAN, sec. 2: 8 layers, 0.01)."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8, lr_mul: float = 0.01) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.net = nn.Sequential(
            *[EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in pairwise(dims)]
        )

    def forward(self, z: Tensor) -> Tensor:
        z = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()  # onto the sphere
        return self.net(z)


class ModulatedConv2d(nn.Module):
    """The StyleGAN2 layer: a 3x3 conv modulated by the style ``s = A(w)`` (bias 1) and
    demodulated (eq. 1-3), then noise times a learned strength, bias and LeakyReLU.
    ``up``: [1, 3, 3, 1] 2x upsampling before the conv."""

    def __init__(
        self, cin: int, cout: int, w_dim: int, size: int, up: bool = False, kernel: int = 3
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        # Fixed noise for noise_mode="const": sampling in eval mode is then deterministic.
        self.register_buffer("noise_const", torch.randn(size, size))
        self.up = up

    def modulated_weight(self, styles: Tensor) -> Tensor:
        """Per-sample weights (B, cout, cin, k, k): w' = s * w (eq. 1), then
        w'' = w' / sqrt(sum w'^2 + eps) over cin and the kernel (eq. 3)."""
        w = self.weight[None] * styles[:, None, :, None, None]
        return w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        styles = self.affine(w)  # (B, cin)
        if self.up:
            x = upsample2d(x)
        # Modulating the weight per sample equals scaling the input channels by s, and
        # demodulating equals scaling the output channels by 1 / sqrt(sum_i s_i^2 sum_k w^2):
        # one ordinary conv for the whole batch (StyleGAN2's non-fused path; the same result
        # as a grouped conv with modulated_weight).
        dcoef = (styles.square() @ self.weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
        x = F.conv2d(x * styles[:, :, None, None], self.weight, padding=self.weight.shape[-1] // 2)
        x = x * dcoef[:, :, None, None]  # (B, cout, H, W)
        if noise_mode == "random":
            x = x + torch.randn_like(x[:, :1]) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation (sec. 2.2)."""

    def __init__(self, cin: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.gain = 1 / math.sqrt(cin)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.gain  # (B, cin)
        return F.conv2d(x * styles[:, :, None, None], self.weight, self.bias)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator (fig. 7b): [up-conv,] conv, toRGB; the image so
    far is upsampled and the block's RGB added. Takes ``num_conv + 1`` ws: one per conv and
    one for toRGB (which the next block's first conv shares, as in StyleGAN2)."""

    def __init__(
        self, cin: int, cout: int, w_dim: int, channels: int, size: int, first: bool
    ) -> None:
        super().__init__()
        self.conv0 = None if first else ModulatedConv2d(cin, cout, w_dim, size, up=True)
        self.conv1 = ModulatedConv2d(cin if first else cout, cout, w_dim, size)
        self.torgb = ToRGB(cout, channels, w_dim)
        self.num_conv = 1 if first else 2

    def forward(
        self, x: Tensor, img: Tensor | None, ws: Tensor, noise_mode: str
    ) -> tuple[Tensor, Tensor]:
        if self.conv0 is not None:
            x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        return x, y if img is None else upsample2d(img) + y


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
