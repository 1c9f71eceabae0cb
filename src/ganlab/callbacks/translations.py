"""The picture and diagnostics callbacks of an image-to-image model (model=cyclegan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import save_image

from ganlab.callbacks.diagnostics import DiagnosticsCallback
from ganlab.callbacks.samples import SampleGridCallback, image_grid
from ganlab.rundir import writing

REVERSE = {"a2b": "b2a", "b2a": "a2b"}


class TranslationGridCallback(SampleGridCallback):
    """Every ``every_n_steps`` generator steps and at the end of training, translate
    ``num_images`` fixed held-out images of each domain and back. TensorBoard gets
    ``samples/a2b`` (rows: real A, translated to B, reconstructed A) and ``samples/b2a``;
    ``<dirpath>/step_XXXXXX.png`` and ``final.png`` hold both grids, a2b above b2a."""

    def __init__(self, dirpath: str, every_n_steps: int = 250, num_images: int = 8) -> None:
        super().__init__(dirpath, every_n_steps, num_images)
        self._images: dict[str, Tensor] | None = None  # direction -> real source images

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        a, b = trainer.datamodule.tensors("test")
        self._images = {"a2b": a[: self.num_images], "b2a": b[: self.num_images]}

    def render(self, trainer: L.Trainer, pl_module: Any, name: str) -> Path | None:
        if self._images is None:
            return None
        grids = {}
        for direction, real in self._images.items():
            fake = pl_module.translate(real, direction)
            back = pl_module.translate(fake, REVERSE[direction]).cpu()
            grids[direction] = image_grid(torch.cat([real, fake.cpu(), back]), nrow=len(real))
        path = self.dirpath / f"{name}.png"
        if not trainer.is_global_zero:
            return path
        with writing(path) as tmp:
            save_image(torch.cat(list(grids.values()), dim=1), tmp)  # (C, H_a2b + H_b2a, W)
        step = pl_module.g_steps
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tb is not None and self._logged_step != step:
            for direction, grid in grids.items():
                tb.experiment.add_image(f"samples/{direction}", grid, step)
        self._logged_step = step
        return path


class TranslationDiagnostics(DiagnosticsCallback):
    """DiagnosticsCallback for a translation model: gradient norms and learning rates as
    there, and histograms of D_B's logits on fixed real B images (``d_output/real``) and on
    translations of fixed A images (``d_output/fake``)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.every_n_steps <= 0 or trainer.datamodule is None:
            return
        a, b = trainer.datamodule.tensors("train")
        self._real, self._source = b[: self.num_samples], a[: self.num_samples]

    @torch.no_grad()
    def _d_outputs(self, pl_module: Any) -> tuple[Tensor, Tensor]:
        d = pl_module.discriminator.b
        was_training = d.training
        d.eval()
        try:
            real = d(self._real.to(pl_module.device))
            fake = d(pl_module.translate(self._source, "a2b"))
        finally:
            d.train(was_training)
        return real.flatten().float().cpu(), fake.flatten().float().cpu()
