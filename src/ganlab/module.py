"""The LightningModule: owns G, D, the loss and the alternating update schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ganlab.losses import GANLoss

OptimizerFactory = Callable[..., torch.optim.Optimizer]


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
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
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
        self._pending: list[Tensor] = []  # per-step scalars kept on device until a flush
        self._pending_steps: list[int] = []
        self._log_keys: list[str] | None = None
        self.last_logged: dict[str, float] = {}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.g_optimizer(self.generator.parameters()),
            self.d_optimizer(self.discriminator.parameters()),
        ]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self.device, generator=generator)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples for display and evaluation: G in eval mode, training mode restored after."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z.to(self.device))
        finally:
            self.generator.train(was_training)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.g_steps >= self.max_steps:  # e.g. resumed from a finished run
            self.trainer.should_stop = True
            return -1
        return None

    def training_step(self, batch: tuple[Tensor, Tensor | None], batch_idx: int) -> None:
        real, _ = batch  # (n_critic * B, *shape)
        opt_g, opt_d = self.optimizers()
        chunks = real.chunk(self.n_critic)
        batch_size = chunks[0].shape[0]

        d_terms: list[dict[str, Tensor]] = []
        with self.toggled_optimizer(opt_d):  # G's parameters frozen
            for chunk in chunks:
                with torch.no_grad():
                    fake = self.generator(self.sample_latent(chunk.shape[0]))
                terms = self.loss.discriminator_loss(self.discriminator, chunk, fake)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(terms["loss"])
                opt_d.step()
                self.loss.after_discriminator_step(self.discriminator)
                d_terms.append({k: v.detach() for k, v in terms.items()})
        self.images_seen += real.shape[0]

        with self.toggled_optimizer(opt_g):  # D's parameters frozen, gradients flow through D
            fake = self.generator(self.sample_latent(batch_size))
            g_terms = self.loss.generator_loss(self.discriminator, fake)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_terms["loss"])
            opt_g.step()
        self.g_steps += 1

        scalars = {
            f"d_{k}" if k == "loss" else k: torch.stack([t[k] for t in d_terms]).mean()
            for k in d_terms[0]
        }
        scalars["g_loss"] = g_terms["loss"].detach()
        self._record(scalars)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.g_steps % self.log_every_n_steps == 0 or self.g_steps >= self.max_steps:
            self.flush_logs()
            for name in ("d_loss", "g_loss"):
                self.log(name, self.last_logged[f"train/{name}"], prog_bar=True, logger=False)
        if self.g_steps >= self.max_steps:
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        self.flush_logs()

    # -- logging: one host sync per flush, every step's value written with its own step --

    def _record(self, scalars: dict[str, Tensor]) -> None:
        if self._log_keys is None:
            self._log_keys = list(scalars)
        self._pending.append(torch.stack([scalars[k].float() for k in self._log_keys]))
        self._pending_steps.append(self.g_steps)

    def flush_logs(self) -> None:
        if not self._pending:
            return
        values = torch.stack(self._pending).cpu().tolist()  # the one device-to-host copy
        keys = [f"train/{k}" for k in self._log_keys or []]
        for step, row in zip(self._pending_steps, values, strict=True):
            for logger in self.loggers:
                logger.log_metrics(dict(zip(keys, row, strict=True)), step=step)
        self._pending.clear()
        self._pending_steps.clear()
        self.last_logged = dict(zip(keys, values[-1], strict=True))
        self.last_logged["train/images_seen"] = float(self.images_seen)

    # -- checkpoint state beyond the networks and optimizers --

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ganlab"] = {
            "config": self.run_config,
            "g_steps": self.g_steps,
            "images_seen": self.images_seen,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("ganlab", {})
        self.g_steps = int(state.get("g_steps", 0))
        self.images_seen = int(state.get("images_seen", 0))
