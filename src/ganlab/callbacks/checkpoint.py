"""``checkpoints/last.ckpt`` every N generator steps and at the end, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from ganlab.options import at_least


class LastCheckpoint(L.Callback):
    """Keeps one up-to-date ``last.ckpt``.

    Lightning's ModelCheckpoint counts ``global_step``, which under manual optimization
    counts D's updates too; this callback counts generator updates. The run's Trainer writes
    checkpoints with ``ganlab.checkpoint.AtomicCheckpointIO`` (beside the file, flushed,
    renamed), so a kill or a full disk during a save never leaves a corrupt last.ckpt.
    """

    def __init__(self, dirpath: str, every_n_steps: int = 500, filename: str = "last.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = at_least(every_n_steps, "every_n_steps", 0)
        self.filename = filename
        self._saved_at: int | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def save(self, trainer: L.Trainer, g_steps: int) -> None:
        if self._saved_at == g_steps:
            return
        # Every rank calls it (the module's hook gathers their RNG states); rank 0 writes.
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_at = g_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.every_n_steps > 0 and pl_module.g_steps % self.every_n_steps == 0:
            self.save(trainer, pl_module.g_steps)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.save(trainer, pl_module.g_steps)
