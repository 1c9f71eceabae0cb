"""What to look at when a GAN misbehaves: gradient norms, learning rates, and histograms
of D's outputs on real and generated samples, every ``every_n_steps`` generator steps."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from ganlab.options import at_least


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """Global L2 norm of the gradients left by the last update of ``module`` (0 if none)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class DiagnosticsCallback(L.Callback):
    """Logs ``grad_norm/generator``, ``grad_norm/discriminator``, ``lr/generator``,
    ``lr/discriminator``, and TensorBoard histograms ``d_output/real`` and ``d_output/fake``
    of D's logits on fixed real samples and on the model's output for fixed inputs: G's
    samples for a fixed latent batch, or (a translation model) D_B's on real B images and on
    translations of fixed A images."""

    def __init__(self, every_n_steps: int = 100, num_samples: int = 256, seed: int = 4321) -> None:
        self.every_n_steps = at_least(every_n_steps, "every_n_steps", 0)
        self.num_samples = at_least(num_samples, "num_samples")
        self.seed = seed
        self._inputs: tuple | None = None  # what module.discriminator_outputs takes

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.every_n_steps <= 0 or trainer.datamodule is None:
            return
        n = self.num_samples
        if pl_module.translates:
            a, b = trainer.datamodule.tensors("train")
            self._inputs = (b[:n], a[:n])
        elif pl_module.samples_from_noise:
            x, y = trainer.datamodule.tensors("train")
            real = x[:n]
            y = None if y is None or not pl_module.num_classes else y[: len(real)]
            g = torch.Generator().manual_seed(self.seed)
            z = torch.randn(len(real), pl_module.latent_dim, generator=g)
            self._inputs = (real, z, y)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = pl_module.g_steps
        if self.every_n_steps <= 0 or step % self.every_n_steps or self._inputs is None:
            return
        opt_g, opt_d = trainer.optimizers
        scalars = {
            "grad_norm/generator": float(grad_norm(pl_module.generator)),
            "grad_norm/discriminator": float(grad_norm(pl_module.discriminator)),
            "lr/generator": float(opt_g.param_groups[0]["lr"]),
            "lr/discriminator": float(opt_d.param_groups[0]["lr"]),
        }
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tb is not None and trainer.is_global_zero:
            real, fake = pl_module.discriminator_outputs(*self._inputs)
            tb.experiment.add_histogram("d_output/real", real.flatten().float().cpu(), step)
            tb.experiment.add_histogram("d_output/fake", fake.flatten().float().cpu(), step)
