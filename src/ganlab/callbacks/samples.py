"""Sample grids from a fixed latent batch (images) or scatter plots (2-D points)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchvision.utils import make_grid, save_image

from ganlab.latent import slerp
from ganlab.rundir import writing


def image_grid(images: Tensor, nrow: int = 8) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (C, H', W') grid in [0, 1]."""
    return make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))


def scatter_png(fake: np.ndarray, real: np.ndarray | None = None, title: str = "") -> np.ndarray:
    """Generated (and real) 2-D points on one plot, as an (H, W, 3) uint8 image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, c="tab:blue", alpha=0.4, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:red", alpha=0.4, label="generated")
    lim = 1.15 * float(np.abs(real if real is not None else fake).max())
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    from PIL import Image

    return np.asarray(Image.open(buf).convert("RGB"))


class SampleGridCallback(L.Callback):
    """Every ``every_n_steps`` generator steps and at the end of training, render G's
    output for a fixed latent batch to ``<dirpath>/step_XXXXXX.png`` (and ``final.png``)
    and log it to TensorBoard as ``samples/grid`` (images) or ``samples/scatter`` (points).
    """

    def __init__(
        self,
        dirpath: str,
        every_n_steps: int = 250,
        num_images: int = 64,
        num_points: int = 1000,
        seed: int = 1234,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.num_points = num_points
        self.seed = seed
        self._z: Tensor | None = None
        self._y: Tensor | None = None  # labels of a conditional model: one class per row
        self._nrow = 8
        self._strip: Tensor | None = None  # latent paths for the interpolation strip
        self._real: np.ndarray | None = None
        self._logged_step: int | None = None  # TensorBoard gets one picture per step

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        points = self._points(trainer)
        n = self.num_points if points else self.num_images
        g = torch.Generator().manual_seed(self.seed)
        k = getattr(pl_module, "num_classes", None)
        if k and not points:
            self._nrow = max(1, n // k)  # a row per class, the same z down each column
            self._z = torch.randn(self._nrow, pl_module.latent_dim, generator=g).repeat(k, 1)
            self._y = torch.arange(k).repeat_interleave(self._nrow)
        else:
            self._z = torch.randn(n, pl_module.latent_dim, generator=g)
        if not points:
            # 4 spherical paths of 8 steps between fixed pairs of latents.
            ends = torch.randn(8, pl_module.latent_dim, generator=g)
            self._strip = torch.cat([slerp(ends[2 * i], ends[2 * i + 1], 8) for i in range(4)])
        if points:
            real, _ = trainer.datamodule.tensors("train")
            self._real = trainer.datamodule.denormalize(real[: self.num_points]).numpy()

    @staticmethod
    def _points(trainer: L.Trainer) -> bool:
        dm = trainer.datamodule
        return dm is not None and len(dm.shape) == 1

    def render(self, trainer: L.Trainer, pl_module: Any, name: str) -> Path | None:
        if self._z is None:
            return None
        fake = pl_module.generate(self._z, self._y).cpu()
        path = self.dirpath / f"{name}.png"
        if not trainer.is_global_zero:
            return path
        with writing(path) as tmp:
            self._write(trainer, pl_module, fake, tmp)
        return path

    def _write(self, trainer: L.Trainer, pl_module: Any, fake: Tensor, path: Path) -> None:
        step = pl_module.g_steps
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if self._logged_step == step:
            tb = None
        self._logged_step = step
        if self._real is not None:
            fake_np = trainer.datamodule.denormalize(fake).numpy()
            picture = scatter_png(fake_np, self._real, title=f"step {step}")
            from PIL import Image

            Image.fromarray(picture).save(path)
            if tb is not None:
                tb.experiment.add_image("samples/scatter", picture, step, dataformats="HWC")
        else:
            grid = image_grid(fake, nrow=self._nrow)
            save_image(grid, path)
            if tb is not None:
                tb.experiment.add_image("samples/grid", grid, step)
                y = None if self._y is None else torch.zeros(len(self._strip), dtype=torch.long)
                strip = pl_module.generate(self._strip, y).cpu()
                tb.experiment.add_image("samples/interpolation", image_grid(strip, nrow=8), step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.every_n_steps > 0 and pl_module.g_steps % self.every_n_steps == 0:
            self.render(trainer, pl_module, f"step_{pl_module.g_steps:06d}")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.render(trainer, pl_module, "final")
