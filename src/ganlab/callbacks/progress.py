"""The console progress bar of a GAN run: generator steps out of the total, images/s,
D's and G's losses and the latest evaluation metric."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class GANProgressBar(TQDMProgressBar):
    """Lightning's bar counts batches of an endless epoch; this one counts generator steps
    out of ``trainer.max_steps`` (which ganlab gives in generator steps)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        module = trainer.lightning_module
        self.train_progress_bar.total = module.max_steps
        self.train_progress_bar.initial = module.g_steps  # resumed runs start part-way
        self.train_progress_bar.n = module.g_steps
        self.train_progress_bar.set_description("G steps")
        self._start = (time.perf_counter(), module.images_seen)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        n = pl_module.g_steps
        bar = self.train_progress_bar
        if bar is not None and self._should_update(n, bar.total) and not bar.disable:
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def get_metrics(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        start, images = getattr(self, "_start", (time.perf_counter(), 0))
        elapsed = time.perf_counter() - start
        if elapsed > 0:
            items["img/s"] = f"{(pl_module.images_seen - images) / elapsed:.0f}"
        latest = getattr(pl_module, "latest_metrics", None)
        if latest:
            key, value = next(iter(latest.items()))
            items[key.split("/")[-1]] = f"{value:.4g}"
        return items
