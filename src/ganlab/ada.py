"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", sec. 2-3 and appendix B): every image D sees, real or fake, in
D's steps and G's alike, goes through a pipeline of transformations, each applied with
probability p; p is tuned from how confident D is on the real images.

The pipeline, in the paper's order and with its distributions (appendix B.1, the ``bgc``
set plus optional cutout):

- geometric: x-flip, 90-degree rotation, integer translation (up to 1/8 of the size),
  isotropic scaling (log2-normal, std 0.2), arbitrary rotation (uniform; the pre- and post-
  rotations each with probability 1 - sqrt(1 - p), so that one happens with probability
  p), anisotropic scaling (log2-normal, std 0.2), fractional translation (normal, std 1/8);
- color: brightness (normal shift, std 0.2), contrast (log2-normal, std 0.5), luma flip,
  hue rotation about the luma axis (uniform), saturation (log2-normal, std 1);
- cutout (optional): a square of half the size zeroed.

Written here with torch rather than with kornia's augmentation ops, because the paper's
pipeline is not a sequence of independent ops: the geometric transformations are composed
into one matrix per image and the image resampled once (kornia's ops resample one after the
other, and draw their parameters uniformly from ranges, not from the paper's distributions
gated per image with probability p); the color transformations are one 4x4 matrix per
image, with the luma flip and the hue rotation about the luma axis that kornia lacks. The
resampling is torch's ``grid_sample`` (bilinear, reflection at the border), which is
differentiable in the images, so G learns through the augmentation. The paper resamples
with a wavelet filter at twice the resolution; bilinear is a simplification.

The controller (sec. 3): every ``interval`` D updates, r_t = E[sign(D(x_real))] over those
updates; p moves by sign(r_t - target) * (images in the interval) / (speed_kimg * 1000), so
p can go from 0 to 1 in ``speed_kimg`` thousand images (the paper's 500k). p and the pending
sums are buffers: they are saved in checkpoints and restored on resume. With
``adaptive=false``, p is fixed, or follows a schedule of the images seen (ganlab.schedules,
as R3GAN's augmentation probability does), set before every step like the other schedules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab import distributed
from ganlab.options import OptionError, at_least, check, fraction, is_number, non_negative, positive
from ganlab.schedules import Schedule

_LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # the gray axis of RGB
GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def _eye(b: int, n: int, like: Tensor) -> Tensor:
    return torch.eye(n, device=like.device, dtype=like.dtype).expand(b, n, n).clone()


def _affine2d(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (B,) entries."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], 1).view(-1, 3, 3)


def _rotation(theta: Tensor) -> Tensor:
    cos, sin, zero = theta.cos(), theta.sin(), torch.zeros_like(theta)
    return _affine2d(cos, -sin, sin, cos, zero, zero)


def _scaling(sx: Tensor, sy: Tensor) -> Tensor:
    zero = torch.zeros_like(sx)
    return _affine2d(sx, zero, zero, sy, zero, zero)


def _translation(tx: Tensor, ty: Tensor) -> Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine2d(one, zero, zero, one, tx, ty)


class ADA(nn.Module):
    """``augment=ada``: call it on a batch of images; ``observe`` D's logits on the real
    images after each D update (the module does), which tunes p when ``adaptive``.

    Each transformation's strength is a multiplier of p (1: on, 0: off), as in the paper's
    code; ``cutout`` is off by default (the paper's ``bgc`` set has none)."""

    def __init__(self, p: float = 0.0, adaptive: bool = True, target: float = 0.6,
                 interval: int = 4, speed_kimg: float = 500.0, cutout: float = 0.0,
                 **strengths: float) -> None:
        super().__init__()
        unknown = sorted(set(strengths) - set(GEOMETRIC) - set(COLOR))
        if unknown:
            raise OptionError(unknown[0], strengths[unknown[0]], "not an ADA transformation; "
                              f"use any of {', '.join(GEOMETRIC + COLOR)}, cutout")
        check(isinstance(adaptive, bool), "adaptive", adaptive, "it is true or false")
        check(is_number(target) and 0 < target < 1, "target", target,
              "it must be in (0, 1): the share of real images D is sure of (the paper: 0.6)")
        self.strength = {k: non_negative(strengths.get(k, 1.0), k) for k in GEOMETRIC + COLOR}
        self.strength["cutout"] = non_negative(cutout, "cutout")
        self.adaptive, self.target = adaptive, float(target)
        self.interval = at_least(interval, "interval")
        self.speed_kimg = positive(speed_kimg, "speed_kimg")
        # p as a schedule of the images seen (None: a number, fixed or tuned).
        self.schedule = p if isinstance(p, Schedule) else None
        if self.schedule is not None:
            low, high = self.schedule.bounds()
            check(low >= 0 and high <= 1, "p", p, "every value of the schedule must be in [0, 1]")
            check(not adaptive, "adaptive", adaptive, "p is a schedule, which the controller "
                  "would override; set augment.adaptive=false to follow it")
            p = self.schedule(0)
        self.register_buffer("p", torch.tensor(fraction(p, "p", closed=True)))
        # Sums since p was last tuned: sign(D(real)), real logits, real images, D updates (a
        # checkpoint taken between two tunings resumes them exactly).
        self.register_buffer("pending", torch.zeros(4, dtype=torch.float64))
        self.rt = float("nan")  # r_t of the last tuning, for the logs

    # -- the pipeline --

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or float(self.p) == 0.0:
            return x  # 2-D points, or nothing to do (exactly the identity)
        x = self._geometric(x)
        x = self._color(x)
        if self.strength["cutout"] > 0:
            x = self._cutout(x)
        return x

    def _gate(self, b: int, name: str, like: Tensor, p: float | None = None) -> Tensor:
        """(B,) booleans: which images get ``name`` (probability p times its strength)."""
        p = float(self.p) * self.strength[name] if p is None else p
        return torch.rand(b, device=like.device) < p

    def _geometric(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        s = self.strength
        m = _eye(b, 3, x)  # maps output pixel coordinates (in [-1, 1]) to input ones

        def then(g: Tensor, gate: Tensor) -> None:
            m.copy_(m @ torch.where(gate.view(-1, 1, 1), g, _eye(b, 3, x)))

        rand = lambda: torch.rand(b, device=x.device, dtype=x.dtype)  # noqa: E731
        randn = lambda: torch.randn(b, device=x.device, dtype=x.dtype)  # noqa: E731
        ones = torch.ones(b, device=x.device, dtype=x.dtype)
        if s["xflip"]:
            flip = 1 - 2 * torch.floor(rand() * 2)
            then(_scaling(flip, ones), self._gate(b, "xflip", x))
        if s["rotate90"]:
            then(_rotation(torch.floor(rand() * 4) * (math.pi / 2)), self._gate(b, "rotate90", x))
        if s["xint"]:  # whole pixels: 2 / size per pixel in normalized coordinates
            tx = torch.round((rand() * 2 - 1) * 0.125 * w) * 2 / w
            ty = torch.round((rand() * 2 - 1) * 0.125 * h) * 2 / h
            then(_translation(tx, ty), self._gate(b, "xint", x))
        if s["scale"]:
            k = torch.exp2(randn() * 0.2)
            then(_scaling(k, k), self._gate(b, "scale", x))
        p_rot = 1 - math.sqrt(max(0.0, 1 - min(1.0, float(self.p) * s["rotate"])))
        if s["rotate"]:
            then(_rotation((rand() * 2 - 1) * math.pi), self._gate(b, "rotate", x, p_rot))
        if s["aniso"]:
            k = torch.exp2(randn() * 0.2)
            then(_scaling(k, 1 / k), self._gate(b, "aniso", x))
        if s["rotate"]:
            then(_rotation((rand() * 2 - 1) * math.pi), self._gate(b, "rotate", x, p_rot))
        if s["xfrac"]:
            then(_translation(randn() * 0.125 * 2, randn() * 0.125 * 2), self._gate(b, "xfrac", x))
        grid = F.affine_grid(m[:, :2], list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)

    def _color(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        s = self.strength
        v = _LUMA.to(x)
        vv = torch.outer(v, v)
        m = _eye(b, 4, x)

        def then(g: Tensor, gate: Tensor) -> None:
            m.copy_(torch.where(gate.view(-1, 1, 1), g, _eye(b, 4, x)) @ m)

        rand = lambda: torch.rand(b, device=x.device, dtype=x.dtype)  # noqa: E731
        randn = lambda: torch.randn(b, device=x.device, dtype=x.dtype)  # noqa: E731
        if s["brightness"]:
            g = _eye(b, 4, x)
            g[:, :3, 3] = (randn() * 0.2).unsqueeze(1)
            then(g, self._gate(b, "brightness", x))
        if s["contrast"]:
            k = torch.exp2(randn() * 0.5)
            g = torch.diag_embed(torch.stack([k, k, k, torch.ones_like(k)], 1))
            then(g, self._gate(b, "contrast", x))
        if s["lumaflip"]:  # a Householder reflection of the gray axis (gray: x -> -x)
            flip = torch.floor(rand() * 2).view(-1, 1, 1)
            then(_eye(b, 4, x) - 2 * vv * flip, self._gate(b, "lumaflip", x))
        if s["hue"] and c == 3:  # Rodrigues' rotation about the gray axis
            theta = ((rand() * 2 - 1) * math.pi).view(-1, 1, 1)
            k = torch.zeros(4, 4, device=x.device, dtype=x.dtype)
            k[0, 1], k[0, 2], k[1, 2] = -v[2], v[1], -v[0]
            k = k - k.T
            g = _eye(b, 4, x) + theta.sin() * k + (1 - theta.cos()) * (k @ k)
            then(g, self._gate(b, "hue", x))
        if s["saturation"] and c == 3:
            k = torch.exp2(randn() * 1.0).view(-1, 1, 1)
            then(vv + (torch.eye(4, device=x.device, dtype=x.dtype) - vv) * k,
                 self._gate(b, "saturation", x))
        if c == 3:
            return torch.einsum("bij,bjhw->bihw", m[:, :3, :3], x) + m[:, :3, 3].view(b, 3, 1, 1)
        # One channel: the gray value's gain and offset (what the matrix does to gray).
        gain = m[:, :3, :3].sum(2).mean(1).view(b, 1, 1, 1)
        return x * gain + m[:, :3, 3].mean(1).view(b, 1, 1, 1)

    def _cutout(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        gate = self._gate(b, "cutout", x)
        cy, cx = torch.rand(b, 1, 1, device=x.device), torch.rand(b, 1, 1, device=x.device)
        ys = (torch.arange(h, device=x.device).view(1, h, 1) + 0.5) / h
        xs = (torch.arange(w, device=x.device).view(1, 1, w) + 0.5) / w
        inside = ((ys - cy).abs() < 0.25) & ((xs - cx).abs() < 0.25) & gate.view(b, 1, 1)
        return x * (~inside).unsqueeze(1).to(x.dtype)

    # -- the controller --

    def at(self, images: int) -> dict[str, float]:
        """Set a scheduled p for the step after ``images`` images; its value to log."""
        if self.schedule is None:
            return {}
        value = self.schedule(images)
        self.p.fill_(value)
        return {"schedule/augment_p": value}

    def observe(self, real_logits: Tensor, images: int) -> dict[str, float]:
        """After a D update: add D's logits on its ``images`` real images (this process; a
        patch discriminator gives several logits per image); every ``interval`` updates,
        tune p (when adaptive). Returns ``augment/p`` and ``augment/rt`` when p was tuned,
        else nothing."""
        logits = real_logits.detach().flatten().double()
        self.pending += torch.stack([logits.sign().sum(), logits.new_tensor(logits.numel()),
                                     logits.new_tensor(float(images)),
                                     logits.new_tensor(1.0)]).to(self.pending.device)
        if float(self.pending[3]) < self.interval:
            return {}
        sums = distributed.mean_over_ranks(self.pending[:3].clone()) * distributed.world_size()
        signs, count, seen = sums.tolist()
        self.pending.zero_()
        self.rt = signs / max(count, 1.0)
        if self.adaptive:
            direction = (self.rt > self.target) - (self.rt < self.target)  # sign(r_t - target)
            step = direction * seen / (self.speed_kimg * 1000)
            self.p.fill_(min(1.0, max(0.0, float(self.p) + step)))
        return {"augment/p": float(self.p), "augment/rt": self.rt}
