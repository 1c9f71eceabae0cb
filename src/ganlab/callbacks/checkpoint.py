"""``checkpoints/last.ckpt`` every N generator steps and at the end, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. directories on some network file systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LastCheckpoint(L.Callback):
    """Keeps one up-to-date ``last.ckpt``.

    Lightning's ModelCheckpoint counts ``global_step``, which under manual optimization
    counts D's updates too; this callback counts generator updates. It writes to a
    temporary file and renames it, so a kill during a save never leaves a corrupt
    last.ckpt behind.
    """

    def __init__(self, dirpath: str, every_n_steps: int = 500, filename: str = "last.ckpt") -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.filename = filename
        self._saved_at: int | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def save(self, trainer: L.Trainer, g_steps: int) -> None:
        if self._saved_at == g_steps:
            return
        tmp = self.path.with_name(self.filename + ".tmp")
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # all ranks call it; rank 0 writes
        if trainer.is_global_zero:
            _fsync(tmp)  # the bytes reach the disk before the name does: safe on power loss too
            os.replace(tmp, self.path)
            _fsync(self.dirpath)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_at = g_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.every_n_steps > 0 and pl_module.g_steps % self.every_n_steps == 0:
            self.save(trainer, pl_module.g_steps)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.save(trainer, pl_module.g_steps)
