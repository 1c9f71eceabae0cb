"""NaN and Inf in losses, gradients and weights (the top-level ``on_nonfinite`` option).

``stop`` (default): the per-step loss terms stay on the device with the other logged
scalars and are checked when they are copied to the host anyway, every
``trainer.log_every_n_steps`` steps; the weights are checked then too. So there is no extra
host sync per step, but a run can go on with NaN weights for up to that many steps (wasted
work, nothing worse). What makes that safe: every checkpoint save flushes and checks first
(``GAN.on_save_checkpoint``), so a checkpoint never holds NaN weights; and the flush runs
inside the training step, so at a logging step the callbacks (evaluation, sample grids) run
after the check. The run then stops with one line naming the first non-finite step and
term; ``last.ckpt`` is the last good state.

``skip``: each update checks its loss and gradients before ``opt.step()`` and skips the
step when one is not finite (counted in ``nonfinite_skips``, with a warning). Deciding on
the host whether to step costs one host sync per optimizer update, which is why it is not
the default. Non-finite weights cannot be skipped: they stop the run in both modes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from ganlab.errors import GanlabError

MODES = ("stop", "skip")


class Diverged(GanlabError):
    """Training produced a NaN or Inf; the message names the step and the term."""


def first_nonfinite(
    keys: Sequence[str], steps: Sequence[int], rows: Sequence[Sequence[float]]
) -> tuple[int, str, float] | None:
    """The first (step, key, value) whose value is NaN or Inf in per-step logged rows."""
    for step, row in zip(steps, rows, strict=True):
        for key, value in zip(keys, row, strict=True):
            if not math.isfinite(value):
                return step, key, value
    return None


def nonfinite_tensors(module: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers holding a NaN or Inf (one sync)."""
    named = [(n, t) for n, t in (*module.named_parameters(), *module.named_buffers())]
    named = [(n, t) for n, t in named if t.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()
    return [n for (n, _), ok in zip(named, finite, strict=True) if not ok]


def update_is_finite(loss: Tensor, params: Iterable[nn.Parameter]) -> bool:
    """Whether a loss and the gradients it left are all finite (one sync)."""
    flags = [torch.isfinite(loss).all()]
    flags += [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    return bool(torch.stack(flags).all())


def check_finite_weights(module: nn.Module, step: int, every: int) -> None:
    """Diverged (naming the tensors) if a weight or buffer of ``module`` is NaN or Inf."""
    bad = nonfinite_tensors(module)
    if bad:
        raise Diverged(
            f"training diverged by step {step}: {', '.join(bad[:3])}"
            f"{' and more' if len(bad) > 3 else ''} hold NaN or Inf values (checked every "
            f"trainer.log_every_n_steps={every} steps)")
