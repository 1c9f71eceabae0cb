"""The base of ganlab's LightningModules: two players trained in alternation by hand.

``AdversarialModule`` owns what every adversarial game needs: the optimizers, the update
schedule (its length in generator updates, n_critic, the learning rates), the G EMA, the
penalties, the step bookkeeping (generator updates, discriminator updates, images seen),
the logging flush, the checks for NaN and Inf, the checkpoint state, and stopping after
``schedule.steps`` generator updates (under manual optimization Lightning's ``global_step``
counts every optimizer step, D's included). ``GAN`` (noise to images) and ``CycleGAN``
(image to image) implement ``training_step`` with its helpers, and declare what they can do:

- ``samples_from_noise``: ``generate(z, y)`` makes samples from latents (``latent_dim``);
- ``translates``: ``translate(x, direction)`` maps images between two domains;
- ``num_classes``: the classes of a conditional model (None: unconditional).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ganlab import distributed
from ganlab.counters import COUNTERS, load_counters, save_counters
from ganlab.critic import CriticView, stateful
from ganlab.divergence import (
    MODES,
    Diverged,
    check_finite_weights,
    first_nonfinite,
    update_is_finite,
)
from ganlab.ema import EMA
from ganlab.nets.layers import apply_model_options, frozen, grow_all
from ganlab.options import check
from ganlab.penalties import LazyPenalties
from ganlab.rng import restore_rng_state
from ganlab.schedule import UpdateSchedule
from ganlab.schedules import ScheduledValues
from ganlab.steplog import StepLog

log = logging.getLogger(__name__)
OptimizerFactory = Callable[..., torch.optim.Optimizer]


class AdversarialModule(L.LightningModule):
    samples_from_noise = False
    translates = False
    num_classes: int | None = None

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer: Mapping[str, OptimizerFactory],
        schedule: UpdateSchedule,
        ema: EMA | None = None,
        penalties: Mapping[str, Any] | None = None,
        extra_penalties: tuple[Any, ...] = (),
        augment: Any = None,
        on_nonfinite: str = "stop",
        name: str = "",
        recommended: Mapping[str, Any] | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        check(on_nonfinite in MODES, "on_nonfinite", on_nonfinite,
              f"it must be one of {', '.join(MODES)}")
        self.generator, self.discriminator = generator, discriminator
        self.schedule = schedule
        self.ema = ema if ema is not None else EMA()
        if self.ema.enabled:  # samples, metrics and checkpoints' sampling use the average
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.penalties = LazyPenalties([*extra_penalties, *(penalties or {}).values()])
        # What D sees through augment (DiffAugment, ADA); ADA's p is state: in checkpoints.
        self.critic = CriticView(discriminator, augment)
        self.augment = stateful(augment)
        # Values that follow a schedule of images_seen (lr, betas, gamma, EMA half-life,
        # ADA's p).
        self.scheduled = ScheduledValues(optimizer, self.penalties, self.ema, self.augment)
        self.optimizer_factories = self.scheduled.factories  # with the values at 0 images
        self.on_nonfinite = on_nonfinite  # see ganlab.divergence
        self.name = name
        self.recommended = dict(recommended or {})  # what the config took from it (schema.py)
        # D stays eager under a penalty: a double backward, which torch.compile cannot do.
        apply_model_options(generator, discriminator, compile, channels_last,
                            eager_discriminator=bool(self.penalties.of("discriminator")))
        for name in COUNTERS:  # g_steps, images_seen, ... (ganlab.counters)
            setattr(self, name, 0)
        self.last_logged: dict[str, float] = {}
        self.latest_metrics: dict[str, float] = {}  # the evaluation callback's latest
        self._log = StepLog()
        self._resume_rng: dict[str, Any] | None = None  # restored before the first step

    @property
    def max_steps(self) -> int:
        return self.schedule.steps

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.optimizer_factories["generator"](self.generator.parameters()),
            self.optimizer_factories["discriminator"](self.discriminator.parameters()),
        ]

    def eval_generator(self) -> tuple[nn.Module, bool]:
        """The generator to sample and evaluate with, and whether it is the EMA copy."""
        ema = getattr(self, "generator_ema", None)
        return (ema, True) if ema is not None else (self.generator, False)

    def check_data(self, datamodule: Any) -> None:
        """GanlabError unless the data set suits this model (shapes, domains, batch)."""
        raise NotImplementedError

    # -- one training step: helpers for training_step --

    frozen = staticmethod(frozen)  # ``with self.frozen(net):`` net's parameters take no grad

    def begin_step(self) -> tuple[Any, Any]:
        """(G's optimizer, D's optimizer), their learning rates (and every other scheduled
        value) set for this step."""
        opt_g, opt_d = self.optimizers()
        self.scheduled.apply(self.trainer.optimizers, self.images_seen, self.g_steps + 1)
        self.schedule.apply(self.trainer.optimizers, self.g_steps)
        # Networks that change with the images seen (progressive growing) set their phase.
        nets = (self.generator, self.discriminator, getattr(self, "generator_ema", None))
        grown = grow_all(nets, self.images_seen)
        self.log_now(grown if self.g_steps % max(1, self.trainer.log_every_n_steps) == 0 else {})
        return opt_g, opt_d

    def update(self, opt: Any, loss: Tensor, net: nn.Module, name: str) -> None:
        """Backward of ``loss`` and one step of ``opt`` on ``net`` (gradients averaged over the
        processes; skipped, counted and warned about under on_nonfinite=skip if not finite)."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        distributed.average_gradients(net.parameters())  # data-parallel runs: distributed.py
        if self.on_nonfinite == "skip" and not update_is_finite(
            distributed.mean_over_ranks(loss.detach()), net.parameters()
        ):  # the same decision on every rank
            self.nonfinite_skips += 1
            opt.zero_grad(set_to_none=True)
            n = self.nonfinite_skips
            if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th, ... skip: warn without flooding
                log.warning("step %d: skipped a %s update with a non-finite loss or gradient "
                            "(on_nonfinite=skip; %d skipped so far)", self.g_steps + 1, name, n)
            return
        opt.step()

    def end_step(self, d_terms: list[dict[str, Tensor]], g_loss: Tensor, images: int,
                 batch_size: int) -> None:
        """After a step that showed D ``images`` real images (this process) and updated G on
        ``batch_size`` samples: counters, the G EMA, the step's scalars, a flush when due."""
        world = distributed.world_size()
        self.images_seen += images * world
        if self.ema.enabled:
            self.ema.update(self.generator_ema, self.generator, batch_size * world)
        self.g_steps += 1
        self._log.record(d_terms, g_loss.detach(), self.g_steps)
        every = max(1, int(self.trainer.log_every_n_steps))
        if self.g_steps % every == 0 or self.schedule.done(self.g_steps):
            self.flush_logs()  # in the step: its callbacks run after the check (divergence.py)

    # -- Lightning hooks --

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self._resume_rng is not None:  # as late as possible: setup may have drawn numbers
            restore_rng_state(self._resume_rng)
            self._resume_rng = None
        if self.schedule.done(self.g_steps):  # e.g. resumed from a finished run
            self.trainer.should_stop = True
            return -1
        return None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = max(1, int(self.trainer.log_every_n_steps))
        if (self.g_steps % every == 0 or self.schedule.done(self.g_steps)) and self.last_logged:
            for name in ("d_loss", "g_loss"):
                self.log(name, self.last_logged[f"train/{name}"], prog_bar=True, logger=False)
        if self.schedule.done(self.g_steps):
            self.trainer.should_stop = True

    def on_fit_start(self) -> None:
        if distributed.is_distributed():
            # Own latents, noise and penalty draws per rank; the weights are rank 0's.
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            L.seed_everything(seed + 1_000_003 * distributed.rank(), verbose=False)

    def on_train_end(self) -> None:
        self.flush_logs()
        if distributed.is_distributed():
            prints = distributed.check_in_sync(
                {"generator": self.generator, "discriminator": self.discriminator})
            log.info("rank %d of %d: weights in sync at step %d (generator %s, "
                     "discriminator %s)", distributed.rank(), distributed.world_size(),
                     self.g_steps, prints["generator"], prints["discriminator"])

    def sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, before a checkpoint or an
        evaluation; call it on every rank."""
        distributed.broadcast_buffers(self)

    # -- logging and divergence --

    def log_now(self, values: dict[str, float]) -> None:
        """Write scalars of this generator step that are not per-step terms (ADA's p)."""
        if values:
            for logger in self.loggers:
                logger.log_metrics(values, step=self.g_steps)

    def flush_logs(self) -> None:
        """Write the pending scalars, then stop on a NaN or Inf (see ganlab.divergence)."""
        self.scheduled.flush(self.loggers)
        steps, rows = self._log.flush(self.loggers)
        if not rows:
            return
        keys = self._log.keys
        self.last_logged = dict(zip(keys, rows[-1], strict=True))
        self.last_logged["train/images_seen"] = float(self.images_seen)
        self.last_logged["train/nonfinite_skips"] = float(self.nonfinite_skips)
        bad = first_nonfinite(keys, steps, rows) if self.on_nonfinite == "stop" else None
        if bad is not None:
            step, key, value = bad
            raise Diverged(f"training diverged at step {step}: {key} is {value} (lower the "
                           "learning rates, or set on_nonfinite=skip to skip such updates)")
        self.check_weights()

    def check_weights(self) -> None:
        """Stop if a weight or buffer (BatchNorm statistics included) is NaN or Inf."""
        check_finite_weights(self, self.g_steps, self.trainer.log_every_n_steps)

    # -- checkpoint state beyond the networks and optimizers --

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Raises Diverged before anything is written: a checkpoint never holds NaN weights.
        self.flush_logs()
        self.check_weights()
        self.sync_buffers()
        save_counters(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_rng = load_counters(self, checkpoint)
