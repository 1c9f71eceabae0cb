"""The update schedule of a run: its length, D updates per G update, the learning rates."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ganlab.options import at_least, fraction


class UpdateSchedule:
    """``steps`` generator updates (``trainer.max_steps``), each after ``n_critic``
    discriminator updates on fresh real batches. Both learning rates stay at their
    configured values for the first ``lr_decay_start`` fraction of the steps, then fall
    linearly to 0 at ``steps`` (CycleGAN's schedule; also a way to let a 2-D GAN settle its
    modes); 1: constant.

    Each rate is a function of the generator step and of the ``initial_lr`` kept in the
    optimizer's param group (saved in checkpoints), so a resumed run continues the schedule.
    """

    def __init__(self, steps: int, n_critic: int = 1, lr_decay_start: float = 1.0) -> None:
        self.steps = at_least(steps, "steps")
        self.n_critic = at_least(n_critic, "n_critic")
        self.lr_decay_start = fraction(lr_decay_start, "lr_decay_start", closed=True)

    def done(self, g_steps: int) -> bool:
        return g_steps >= self.steps

    def apply(self, optimizers: Iterable[torch.optim.Optimizer], g_steps: int) -> None:
        """Set every param group's lr for generator step ``g_steps``."""
        if self.lr_decay_start >= 1:
            return
        start = self.lr_decay_start * self.steps
        factor = min(1.0, (self.steps - g_steps) / max(self.steps - start, 1e-8))
        for opt in optimizers:
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])  # kept in the optimizer's state
                group["lr"] = group["initial_lr"] * factor
