"""The LightningModule: owns G, D, the loss and the alternating update schedule."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ganlab import distributed
from ganlab.divergence import Diverged, first_nonfinite, nonfinite_tensors, update_is_finite
from ganlab.ema import ema_beta, update_ema
from ganlab.losses import GANLoss
from ganlab.regularizers import Regularizer
from ganlab.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """(B, C, ...) -> (B / pack, pack * C, ...): samples ``pack * i`` to ``pack * i + pack - 1``
    concatenated along the feature / channel axis, as PacGAN's discriminator sees them."""
    if x.shape[0] % pack:
        raise ValueError(f"a batch of {x.shape[0]} samples cannot be packed in groups of {pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class GAN(L.LightningModule):
    """Alternating GAN training with manual optimization.

    One training step (one batch from the data module, ``n_critic * B`` real samples):
    ``n_critic`` discriminator updates, each on a fresh real chunk and fresh fakes (G's
    output detached), then one generator update with D's parameters frozen while the
    gradient flows through D. ``max_steps`` counts generator updates: under manual
    optimization Lightning's ``global_step`` counts every optimizer step, D's included.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        g_optimizer: OptimizerFactory,
        d_optimizer: OptimizerFactory,
        latent_dim: int,
        n_critic: int = 1,
        max_steps: int = 1000,
        log_every_n_steps: int = 50,
        run_config: dict[str, Any] | None = None,
        on_nonfinite: str = "stop",
        ema_half_life_kimg: float = 0.0,
        regularizer: Regularizer | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
        g_regularizer: nn.Module | None = None,
        pack: int = 1,
        lr_decay_start: float = 1.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        # Class-conditional when the networks were built with num_classes (CGAN).
        self.num_classes = getattr(generator, "num_classes", None)
        # EMA of G (ganlab.ema): used for samples, evaluation and the sampling command.
        self.ema_half_life_kimg = ema_half_life_kimg
        if ema_half_life_kimg > 0:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        self.regularizer = regularizer  # R1 / DRAGAN, applied every regularizer.interval D steps
        self.augment = augment  # DiffAugment on every sample D sees, real and fake
        self.pack = pack  # PacGAN: D judges groups of `pack` samples (see pack_samples)
        # Both learning rates constant for this fraction of max_steps, then linearly to 0.
        self.lr_decay_start = lr_decay_start
        # G's penalty (StyleGAN's path length): weight * interval * g_regularizer(G, z) added
        # every g_regularizer.interval G updates; a module, so its state is checkpointed.
        self.g_regularizer = g_regularizer
        self._d_updates = 0
        self._last_penalty: Tensor | None = None
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.latent_dim = latent_dim
        self.n_critic = n_critic
        self.max_steps = max_steps
        self.log_every_n_steps = max(1, log_every_n_steps)
        # The composed Hydra config, stored in checkpoints as plain data so that the
        # sampling and evaluation commands can rebuild the generator without pickles.
        self.run_config = run_config or {}
        self.g_steps = 0  # generator updates done
        self.images_seen = 0  # real images shown to D
        self.on_nonfinite = on_nonfinite  # "stop" or "skip": see ganlab.divergence
        self.nonfinite_skips = 0  # updates skipped for a non-finite loss or gradient
        self._resume_rng: dict[str, Any] | None = None  # restored before the first step
        self._pending: list[Tensor] = []  # per-step scalars kept on device until a flush
        self._pending_steps: list[int] = []
        self._log_keys: list[str] | None = None
        self._trainable: dict[nn.Module, list[nn.Parameter]] = {}  # for _frozen
        self.last_logged: dict[str, float] = {}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.g_optimizer(self.generator.parameters()),
            self.d_optimizer(self.discriminator.parameters()),
        ]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device, generator=generator)

    def eval_generator(self) -> tuple[nn.Module, bool]:
        """The generator to sample and evaluate with, and whether it is an EMA copy."""
        ema = getattr(self, "generator_ema", None)
        return (ema, True) if ema is not None else (self.generator, False)

    @torch.no_grad()
    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Samples for display: the EMA generator if any, else G, in eval mode (its mode
        restored after); ``y`` labels for a conditional model."""
        generator, _ = self.eval_generator()
        was_training = generator.training
        generator.eval()
        try:
            labels = None if y is None else y.to(self.device)
            return generator(z.to(self.device), *(() if labels is None else (labels,)))
        finally:
            generator.train(was_training)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self._resume_rng is not None:  # as late as possible: setup may have drawn numbers
            restore_rng_state(self._resume_rng)
            self._resume_rng = None
        if self.g_steps >= self.max_steps:  # e.g. resumed from a finished run
            self.trainer.should_stop = True
            return -1
        return None

    def training_step(self, batch: tuple[Tensor, Tensor | None], batch_idx: int) -> None:
        real, labels = batch  # (n_critic * B, *shape), (n_critic * B,) or None
        opt_g, opt_d = self.optimizers()
        self._decay_learning_rates()
        chunks = real.chunk(self.n_critic)
        label_chunks = labels.chunk(self.n_critic) if self.num_classes else [None] * len(chunks)
        batch_size = chunks[0].shape[0]
        self.loss.step = self.g_steps  # instance-noise annealing

        d_terms: list[dict[str, Tensor]] = []
        with self._frozen(self.generator):
            for chunk, y in zip(chunks, label_chunks, strict=True):
                # A conditional G draws fakes for the real chunk's labels, so one critic
                # D(., y) scores both (and the gradient penalty's interpolates).
                with torch.no_grad():
                    fake = self._g(self.sample_latent(chunk.shape[0]), y)
                critic = self._critic(y)
                terms = self.loss.discriminator_loss(critic, chunk, fake)
                if self.regularizer is not None:
                    terms = self._regularized(terms, critic, chunk, fake)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(terms["loss"])
                self._optimizer_step(opt_d, terms["loss"], self.discriminator, "discriminator")
                self.loss.after_discriminator_step(self.discriminator)
                d_terms.append({k: v.detach() for k, v in terms.items()})
        self.images_seen += real.shape[0] * distributed.world_size()  # over all ranks

        with self._frozen(self.discriminator):  # gradients flow through D, not into it
            y = label_chunks[0]
            fake = self._g(self.sample_latent(batch_size), y)
            g_terms = self.loss.generator_loss(self._critic(y), fake)
            reg = self.g_regularizer
            if reg is not None and self.g_steps % reg.interval == 0:  # lazy, as _regularized
                penalty = reg(self.generator, self.sample_latent(batch_size))
                g_terms["loss"] = g_terms["loss"] + reg.weight * reg.interval * penalty
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_terms["loss"])
            self._optimizer_step(opt_g, g_terms["loss"], self.generator, "generator")
        if self.ema_half_life_kimg > 0:
            update_ema(self.generator_ema, self.generator,
                       ema_beta(batch_size * distributed.world_size(), self.ema_half_life_kimg))
        self.g_steps += 1

        self._record(d_terms, g_terms["loss"].detach())
        if self.g_steps % self.log_every_n_steps == 0 or self.g_steps >= self.max_steps:
            self.flush_logs()  # in the step: its callbacks run after the check (divergence.py)

    def _decay_learning_rates(self) -> None:
        """Every optimizer's lr: its configured value until ``lr_decay_start * max_steps``
        generator updates, then linearly to 0 at ``max_steps`` (CycleGAN's schedule; also a
        way to let a 2-D GAN settle its modes). Computed from ``g_steps`` and the ``initial_lr``
        kept in each param group, so a resumed run continues the same schedule."""
        if self.lr_decay_start >= 1:
            return
        start = self.lr_decay_start * self.max_steps
        factor = min(1.0, (self.max_steps - self.g_steps) / max(self.max_steps - start, 1e-8))
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])  # kept in the optimizer's state
                group["lr"] = group["initial_lr"] * factor

    def _g(self, z: Tensor, y: Tensor | None) -> Tensor:
        return self.generator(z) if y is None else self.generator(z, y)

    def _critic(self, y: Tensor | None = None) -> Callable[[Tensor], Tensor]:
        """D as the loss sees it: behind DiffAugment when there is one, on packed samples
        under PacGAN, given the labels of a conditional model."""
        if self.augment is None and y is None and self.pack == 1:
            return self.discriminator
        augment, pack = self.augment, self.pack

        def critic(x: Tensor) -> Tensor:
            if augment is not None:
                x = augment(x)
            if pack > 1:
                x = pack_samples(x, pack)
            return self.discriminator(x) if y is None else self.discriminator(x, y)

        return critic

    def _regularized(self, terms: dict[str, Tensor], critic: Callable[[Tensor], Tensor],
                     real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        """Adds ``weight * interval * penalty`` every ``interval`` D updates (lazy
        regularization, Karras et al. 2020); logs the latest penalty every step."""
        reg = self.regularizer
        if self._d_updates % reg.interval == 0:
            penalty = reg.penalty(critic, real, fake)
            terms["loss"] = terms["loss"] + reg.weight * reg.interval * penalty
            self._last_penalty = penalty.detach()
        self._d_updates += 1
        if self._last_penalty is None:  # resumed between two lazy applications
            self._last_penalty = torch.zeros((), device=real.device)
        terms[reg.name] = self._last_penalty
        return terms

    @contextmanager
    def _frozen(self, net: nn.Module) -> Iterator[None]:
        """``net``'s trainable parameters frozen for the block. Lightning's toggled_optimizer
        does this too, but walks every parameter of every optimizer (~45 us a step on a CPU)."""
        params = self._trainable.get(net)
        if params is None:  # listed once: walking the submodules costs more than the flags
            params = self._trainable[net] = [p for p in net.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def _optimizer_step(self, opt: Any, loss: Tensor, net: nn.Module, name: str) -> None:
        distributed.average_gradients(net.parameters())  # data-parallel runs; see distributed.py
        if self.on_nonfinite == "skip" and not update_is_finite(
            distributed.mean_over_ranks(loss.detach()), net.parameters()
        ):  # the same decision on every rank
            self.nonfinite_skips += 1
            opt.zero_grad(set_to_none=True)
            n = self.nonfinite_skips
            if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th, ... skip: warn without flooding
                log.warning(
                    "step %d: skipped a %s update with a non-finite loss or gradient "
                    "(on_nonfinite=skip; %d skipped so far)",
                    self.g_steps + 1,
                    name,
                    n,
                )
            return
        opt.step()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.g_steps % self.log_every_n_steps == 0 or self.g_steps >= self.max_steps:
            for name in ("d_loss", "g_loss"):
                self.log(name, self.last_logged[f"train/{name}"], prog_bar=True, logger=False)
        if self.g_steps >= self.max_steps:
            self.trainer.should_stop = True

    def on_fit_start(self) -> None:
        if distributed.is_distributed():
            # Own latents, noise and penalty draws per rank; the weights are rank 0's.
            rank_seed = int(self.run_config.get("seed", 0)) + 1_000_003 * distributed.rank()
            L.seed_everything(rank_seed, verbose=False)

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

    # -- logging: one host sync per flush, every step's value written with its own step --

    def _record(self, d_terms: list[dict[str, Tensor]], g_loss: Tensor) -> None:
        # One op a step: (n_critic * K + 1,) values; D's are averaged over its updates at a flush.
        if self._log_keys is None:
            self._log_keys = [f"d_{k}" if k == "loss" else k for k in d_terms[0]] + ["g_loss"]
        values = [v for terms in d_terms for v in terms.values()]
        self._pending.append(torch.stack([*values, g_loss]).float())
        self._pending_steps.append(self.g_steps)

    def _pending_rows(self) -> list[list[float]]:
        """The pending steps' scalars in ``_log_keys`` order, as floats on the host."""
        rows = distributed.mean_over_ranks(torch.stack(self._pending))  # (S, n_critic * K + 1)
        d_means = rows[:, :-1].unflatten(1, (-1, len(self._log_keys) - 1)).mean(1)  # (S, K)
        return torch.cat([d_means, rows[:, -1:]], 1).cpu().tolist()  # the one device-to-host copy

    def flush_logs(self) -> None:
        """Write the pending scalars, then stop on a NaN or Inf (see ganlab.divergence)."""
        if not self._pending:
            return
        values = self._pending_rows()
        keys = [f"train/{k}" for k in self._log_keys or []]
        steps = list(self._pending_steps)
        for step, row in zip(steps, values, strict=True):
            for logger in self.loggers:
                logger.log_metrics(dict(zip(keys, row, strict=True)), step=step)
        self._pending.clear()
        self._pending_steps.clear()
        self.last_logged = dict(zip(keys, values[-1], strict=True))
        self.last_logged["train/images_seen"] = float(self.images_seen)
        self.last_logged["train/nonfinite_skips"] = float(self.nonfinite_skips)
        bad = first_nonfinite(keys, steps, values) if self.on_nonfinite == "stop" else None
        if bad is not None:
            step, key, value = bad
            raise Diverged(
                f"training diverged at step {step}: {key} is {value} "
                "(lower the learning rates, or set on_nonfinite=skip to skip such updates)"
            )
        self.check_weights()

    def check_weights(self) -> None:
        """Stop if a weight or buffer (BatchNorm statistics included) is NaN or Inf."""
        bad = nonfinite_tensors(self)
        if bad:
            raise Diverged(
                f"training diverged by step {self.g_steps}: {', '.join(bad[:3])}"
                f"{' and more' if len(bad) > 3 else ''} hold NaN or Inf values "
                f"(checked every trainer.log_every_n_steps={self.log_every_n_steps} steps)"
            )

    # -- checkpoint state beyond the networks and optimizers --

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Raises Diverged before anything is written: a checkpoint never holds NaN weights.
        self.flush_logs()
        self.check_weights()
        self.sync_buffers()
        # Every rank draws its own random numbers; all of them are kept (rank 0 writes).
        rng = distributed.gather_objects(capture_rng_state())
        # Saves happen between training steps, so the n_critic cycle is always complete.
        checkpoint["ganlab"] = {
            "config": self.run_config,
            "g_steps": self.g_steps,
            "images_seen": self.images_seen,
            "nonfinite_skips": self.nonfinite_skips,
            "d_updates": self._d_updates,  # keeps the lazy-regularization cycle on resume
            "rng": rng[0],
            "rng_per_rank": rng,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("ganlab", {})
        self.g_steps = int(state.get("g_steps", 0))
        self.images_seen = int(state.get("images_seen", 0))
        self.nonfinite_skips = int(state.get("nonfinite_skips", 0))
        self._d_updates = int(state.get("d_updates", 0))
        per_rank = state.get("rng_per_rank") or []
        r = distributed.rank()
        if len(per_rank) == distributed.world_size():
            self._resume_rng = per_rank[r]
        elif r == 0:
            self._resume_rng = state.get("rng")
        else:  # resumed on more processes than saved: a fresh stream for this rank
            self._resume_rng = None
