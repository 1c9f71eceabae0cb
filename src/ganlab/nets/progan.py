"""Progressive growing of GANs (Karras et al. 2018, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation"): G and D start at 4x4 and grow to the data's
resolution; each new resolution is faded in linearly over ``fade_kimg`` thousand images,
then trained at full strength for ``stable_kimg`` (sec. 2 and appendix A).

G: pixel-wise feature normalization after every conv (sec. 4.2), nearest-neighbour
upsampling, a 1x1 toRGB per resolution. D: a 1x1 fromRGB per resolution, average-pool
downsampling, the minibatch standard deviation before its last block (sec. 3). Every layer
has an equalized learning rate (sec. 4.1; ganlab.nets.stylegan_layers' EqualConv2d and
EqualLinear), with the paper's leaky ReLU 0.2.

The networks always work at the data's resolution: G upsamples its current output (nearest)
to the full size, and D average-pools its input down to the current size. So the data, the
losses, the sample grids (the current resolution, upsampled) and the metrics see one image
size throughout. Two things keep this the paper's game: during a fade-in D blends every
image it sees with its upsampled half-resolution version by alpha, as the paper's training
loop blends the reals (G's fakes are blended by G's own fade); and D's ``gradient_scale``
(the pooling factor) lets the gradient penalties measure input gradients at the current
resolution, as the paper's do (pooling by k shrinks them by k).

``grow(images_seen)`` sets the phase, a pure function of the images seen (the module calls
it before every step), so a run resumed in the middle of a fade continues it exactly; the
phase is also a buffer, so a saved generator keeps it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.nets.layers import MinibatchStd
from ganlab.nets.stylegan_layers import EqualConv2d, EqualLinear
from ganlab.options import at_least, check, is_int, non_negative
from ganlab.registry import registered


def growth_levels(image_size: int, start_size: int = 4) -> list[int]:
    """The resolutions from ``start_size`` to ``image_size``, doubling; GanlabError unless
    both are powers of two with start_size <= image_size."""
    for key, size in (("start_size", start_size), ("image_size", image_size)):
        if not (is_int(size) and size >= 4 and size & (size - 1) == 0):
            raise GanlabError(f"{key}={size!r} is not allowed: progressive growing doubles "
                              "the resolution from 4x4, so it must be a power of two >= 4")
    if start_size > image_size:
        raise GanlabError(f"start_size={start_size} is larger than data.image_size="
                          f"{image_size}: the growth would never reach the data's resolution")
    return [start_size * 2**i for i in range(int(math.log2(image_size // start_size)) + 1)]


def growth_phase(images: int, levels: int, fade_kimg: float, stable_kimg: float
                 ) -> tuple[int, float]:
    """(level, alpha) after ``images`` images: level 0 trains for ``stable_kimg``; each next
    level fades in (alpha 0 to 1) over ``fade_kimg``, then trains for ``stable_kimg``."""
    t = images / 1000.0 - stable_kimg
    for level in range(1, levels):
        if t < 0:
            return level - 1, 1.0
        if t < fade_kimg:
            return level, t / fade_kimg
        t -= fade_kimg + stable_kimg
    return levels - 1, 1.0


def growth_starts(levels: list[int], fade_kimg: float, stable_kimg: float) -> dict[int, int]:
    """The images seen at which each resolution starts (its fade-in begins)."""
    return {size: round(1000 * (stable_kimg + (i - 1) * (fade_kimg + stable_kimg))) if i else 0
            for i, size in enumerate(levels)}


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def _pixel_norm(x: Tensor) -> Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class _Growing(nn.Module):
    """What G and D share: the levels, the schedule and the phase (buffers)."""

    def __init__(self, image_size: int, start_size: int, fade_kimg: float,
                 stable_kimg: float, channel_base: int, channel_max: int) -> None:
        super().__init__()
        self.levels = growth_levels(image_size, start_size)
        self.image_size = image_size
        self.fade_kimg = non_negative(fade_kimg, "fade_kimg")
        self.stable_kimg = non_negative(stable_kimg, "stable_kimg")
        for key, value in (("channel_base", channel_base), ("channel_max", channel_max)):
            check(is_int(value) and value >= 1, key, value, "it must be an integer >= 1")
        self.widths = [min(channel_base // size, channel_max) or 1 for size in self.levels]
        self.register_buffer("level", torch.tensor(len(self.levels) - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    def grow(self, images_seen: int) -> dict[str, float]:
        """Set the phase for ``images_seen``; what to log."""
        level, alpha = growth_phase(images_seen, len(self.levels), self.fade_kimg,
                                    self.stable_kimg)
        self.level.fill_(level)
        self.alpha.fill_(alpha)
        return {"progan/resolution": float(self.levels[level]), "progan/alpha": alpha}


@registered("network")
class ProGANGenerator(_Growing):
    """``batch_sizes``: the batch size per process at some resolutions ({resolution: size};
    the paper's shrink as the images grow, to fit in memory), the data's at the others. A
    fade-in uses the new resolution's; the data module draws each step's batch with it."""

    def __init__(self, latent_dim: int = 128, channels: int = 1, image_size: int = 32,
                 start_size: int = 4, fade_kimg: float = 60.0, stable_kimg: float = 60.0,
                 channel_base: int = 1024, channel_max: int = 64,
                 batch_sizes: Mapping[int, int] | None = None) -> None:
        super().__init__(image_size, start_size, fade_kimg, stable_kimg, channel_base,
                         channel_max)
        self.batch_sizes = self._batch_sizes(batch_sizes or {})
        w, s = self.widths, start_size
        self.start_size = s
        self.first = EqualLinear(latent_dim, w[0] * s * s)
        self.first_conv = EqualConv2d(w[0], w[0], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(w[i - 1], w[i], 3), EqualConv2d(w[i], w[i], 3)])
            for i in range(1, len(w)))
        self.to_rgb = nn.ModuleList(EqualConv2d(c, channels, 1) for c in w)

    def _batch_sizes(self, sizes: Mapping[int, int]) -> dict[int, int]:
        for size, batch in sizes.items():
            check(is_int(size) and size in self.levels, "batch_sizes", dict(sizes),
                  f"{size!r} is not a resolution of the growth "
                  f"({', '.join(map(str, self.levels))})")
            check(is_int(batch) and batch >= 1, "batch_sizes", dict(sizes),
                  f"the batch size at {size} must be an integer >= 1")
        return {int(k): int(v) for k, v in sizes.items()}

    def batch_size_at(self, images_seen: int) -> int | None:
        """The batch size for the step after ``images_seen`` images; None: the data's."""
        level, _ = growth_phase(images_seen, len(self.levels), self.fade_kimg,
                                self.stable_kimg)
        return self.batch_sizes.get(self.levels[level])

    def grow(self, images_seen: int) -> dict[str, float]:
        logged = super().grow(images_seen)
        batch = self.batch_size_at(images_seen)
        return logged if batch is None else {**logged, "progan/batch_size": float(batch)}

    def forward(self, z: Tensor) -> Tensor:
        level, alpha = int(self.level), float(self.alpha)
        x = self.first(_pixel_norm(z)).view(len(z), self.widths[0], self.start_size, -1)
        x = _pixel_norm(_lrelu(self.first_conv(_pixel_norm(_lrelu(x)))))
        previous = x
        for conv1, conv2 in self.blocks[:level]:
            previous = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = _pixel_norm(_lrelu(conv2(_pixel_norm(_lrelu(conv1(x))))))
        image = self.to_rgb[level](x)
        if level > 0 and alpha < 1:  # the new resolution fades in over the upsampled old one
            old = F.interpolate(self.to_rgb[level - 1](previous), scale_factor=2, mode="nearest")
            image = torch.lerp(old, image, alpha)
        factor = self.image_size // image.shape[-1]
        return F.interpolate(image, scale_factor=factor, mode="nearest") if factor > 1 else image


@registered("network")
class ProGANDiscriminator(_Growing):
    def __init__(self, channels: int = 1, image_size: int = 32, start_size: int = 4,
                 fade_kimg: float = 60.0, stable_kimg: float = 60.0, channel_base: int = 1024,
                 channel_max: int = 64, minibatch_std: int = 4) -> None:
        super().__init__(image_size, start_size, fade_kimg, stable_kimg, channel_base,
                         channel_max)
        w = self.widths
        self.from_rgb = nn.ModuleList(EqualConv2d(channels, c, 1) for c in w)
        # blocks[i - 1] takes level i's features down to level i - 1's.
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(w[i], w[i], 3), EqualConv2d(w[i], w[i - 1], 3)])
            for i in range(1, len(w)))
        group = at_least(minibatch_std, "minibatch_std", 0)  # 0: no minibatch-std channel
        self.std = MinibatchStd(group) if group else nn.Identity()
        self.last_conv = EqualConv2d(w[0] + bool(group), w[0], 3)
        self.last = nn.ModuleList([EqualLinear(w[0] * start_size * start_size, w[0]),
                                   EqualLinear(w[0], 1)])

    @property
    def gradient_scale(self) -> float:
        """The factor by which D pools its input: gradients with respect to the data-size
        input are this much smaller than at the current resolution (ganlab.penalties)."""
        return float(self.image_size // self.levels[int(self.level)])

    def forward(self, x: Tensor) -> Tensor:
        level, alpha = int(self.level), float(self.alpha)
        factor = x.shape[-1] // self.levels[level]
        x = F.avg_pool2d(x, factor) if factor > 1 else x
        if level > 0 and alpha < 1:  # the paper's fade of the reals, on every image D sees
            half = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = torch.lerp(half, x, alpha)
        h = _lrelu(self.from_rgb[level](x))
        for i in range(level, 0, -1):
            conv1, conv2 = self.blocks[i - 1]
            h = F.avg_pool2d(_lrelu(conv2(_lrelu(conv1(h)))), 2)
            if i == level and alpha < 1:  # the old resolution's path fades out
                h = torch.lerp(_lrelu(self.from_rgb[i - 1](F.avg_pool2d(x, 2))), h, alpha)
        h = _lrelu(self.last_conv(self.std(h)))
        return self.last[1](_lrelu(self.last[0](h.flatten(1))))  # (B, 1)
