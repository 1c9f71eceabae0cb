"""StyleGAN2's layers (Karras et al. 2020; NVIDIA's stylegan2-ada-pytorch): equalized learning
rate (Karras et al. 2018, sec. 4.1), the [1, 3, 3, 1] resampling filter, the mapping network,
modulated and demodulated convolutions (sec. 2.2, eq. 1-3) with per-layer noise, and the
skip generator's blocks. Written here because no library ships them for plain PyTorch."""

from __future__ import annotations

import math
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


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
