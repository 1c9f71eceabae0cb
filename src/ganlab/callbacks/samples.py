"""Pictures of the model's output every N generator steps and at the end of training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from torchvision.utils import save_image

from ganlab.render import renderer_for
from ganlab.rundir import writing


class SampleGridCallback(L.Callback):
    """Every ``every_n_steps`` generator steps and at the end of training, render the model's
    output for fixed inputs (ganlab.render: a grid of ``num_images`` samples, a scatter plot
    of ``num_points`` points, or ``num_translations`` held-out images translated and back)
    to ``<dirpath>/step_XXXXXX.png`` and ``final.png``, and log it to TensorBoard
    (``samples/grid`` and ``samples/interpolation``, ``samples/scatter``, or
    ``samples/a2b`` and ``samples/b2a``)."""

    def __init__(self, dirpath: str, every_n_steps: int = 250, num_images: int = 64,
                 num_points: int = 1000, num_translations: int = 8, seed: int = 1234) -> None:
        from ganlab.options import at_least

        self.dirpath = Path(dirpath)
        self.every_n_steps = at_least(every_n_steps, "every_n_steps", 0)
        self.num_images = at_least(num_images, "num_images")
        self.num_points = at_least(num_points, "num_points")
        self.num_translations = at_least(num_translations, "num_translations")
        self.seed = seed
        self._renderer: Any = None
        self._logged_step: int | None = None  # TensorBoard gets one picture per step

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._renderer = renderer_for(pl_module, trainer.datamodule, self.num_images,
                                      self.num_points, self.num_translations, self.seed)

    def render(self, trainer: L.Trainer, pl_module: Any, name: str) -> Path | None:
        if self._renderer is None:
            return None
        step = pl_module.g_steps
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if self._logged_step == step or not trainer.is_global_zero:
            tb = None
        picture, extras = self._renderer.render(pl_module, step, with_extras=tb is not None)
        path = self.dirpath / f"{name}.png"
        if not trainer.is_global_zero:
            return path
        self._logged_step = step
        with writing(path) as tmp:
            if hasattr(picture, "numpy"):
                save_image(picture, tmp)
            else:
                Image.fromarray(picture).save(tmp)
        if tb is not None:
            for tag, image in extras.items():
                hwc = {} if hasattr(image, "numpy") else {"dataformats": "HWC"}
                tb.experiment.add_image(tag, image, step, **hwc)
        return path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.every_n_steps > 0 and pl_module.g_steps % self.every_n_steps == 0:
            self.render(trainer, pl_module, f"step_{pl_module.g_steps:06d}")

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.render(trainer, pl_module, "final")
