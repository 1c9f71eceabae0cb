"""What to look at when a GAN misbehaves: gradient norms, learning rates, and histograms
of D's outputs on real and generated samples, every ``every_n_steps`` generator steps."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger


def grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """Global L2 norm of the gradients left by the last update of ``module`` (0 if none)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class DiagnosticsCallback(L.Callback):
    """Logs ``grad_norm/generator``, ``grad_norm/discriminator``, ``lr/generator``,
    ``lr/discriminator``, and TensorBoard histograms ``d_output/real`` and ``d_output/fake``
    (D's logits on a fixed real batch and on G's samples for a fixed latent batch)."""

    def __init__(self, every_n_steps: int = 100, num_samples: int = 256, seed: int = 4321) -> None:
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.seed = seed
        self._real: torch.Tensor | None = None
        self._real_y: torch.Tensor | None = None
        self._z: torch.Tensor | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.every_n_steps <= 0 or trainer.datamodule is None:
            return
        x, y = trainer.datamodule.tensors("train")
        self._real = x[: self.num_samples]
        self._real_y = None if y is None or not pl_module.num_classes else y[: len(self._real)]
        g = torch.Generator().manual_seed(self.seed)
        self._z = torch.randn(len(self._real), pl_module.latent_dim, generator=g)

    @torch.no_grad()
    def _d_outputs(self, pl_module: Any) -> tuple[torch.Tensor, torch.Tensor]:
        d = pl_module.discriminator
        was_training = d.training
        d.eval()
        try:
            y = None if self._real_y is None else self._real_y.to(pl_module.device)
            args = () if y is None else (y,)
            real = d(self._real.to(pl_module.device), *args)
            fake = d(pl_module.generate(self._z, self._real_y), *args)
        finally:
            d.train(was_training)
        return real.flatten().float().cpu(), fake.flatten().float().cpu()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = pl_module.g_steps
        if self.every_n_steps <= 0 or step % self.every_n_steps or self._real is None:
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
            real, fake = self._d_outputs(pl_module)
            tb.experiment.add_histogram("d_output/real", real, step)
            tb.experiment.add_histogram("d_output/fake", fake, step)
