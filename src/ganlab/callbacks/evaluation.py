"""Evaluation during training: metrics under ``metrics/`` and ``checkpoints/best.ckpt``."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L

from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.directions import metric_mode
from ganlab.evaluation import build_evaluator
from ganlab.options import at_least

log = logging.getLogger(__name__)


class EvaluationCallback(L.Callback):
    """Every ``every_n_steps`` generator steps, evaluate G with the run's ``evaluation``
    settings (ganlab.evaluation; the classifier and reference statistics cached under
    ``cache_dir``), log the metrics to every logger and keep ``best.ckpt`` by ``monitor``
    (``null``: keep none). A model that does not sample from noise is not evaluated.
    """

    def __init__(self, dirpath: str, every_n_steps: int = 1000, monitor: str | None = None,
                 evaluation: Mapping[str, Any] | None = None, cache_dir: str = "data",
                 seed: int = 0) -> None:
        self.every_n_steps = at_least(every_n_steps, "every_n_steps", 0)
        self.monitor = monitor
        self.mode = metric_mode(monitor) if monitor else None
        self.settings, self.cache_dir, self.seed = evaluation, cache_dir, seed
        self.best: float | None = None
        self.best_step: int | None = None
        self._best_ckpt = LastCheckpoint(dirpath, every_n_steps=0, filename="best.ckpt")
        self._evaluator = None

    @property
    def best_path(self) -> Path:
        return self._best_ckpt.path

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if self.every_n_steps > 0 and pl_module.samples_from_noise:
            self._evaluator = build_evaluator(self.settings, trainer.datamodule, self.cache_dir,
                                              self.seed)
            if self._evaluator is not None:
                self._evaluator.prepare()

    def _better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = pl_module.g_steps
        if self._evaluator is None or step % self.every_n_steps != 0:
            return
        pl_module.sync_buffers()
        generator, ema = pl_module.eval_generator()
        metrics = self._evaluator.evaluate_generator(generator, pl_module.latent_dim, step, ema)
        scalars = {k: v for k, v in metrics.items() if k.startswith("metrics/")}
        # The progress bar shows the monitored metric (else the first) of the last evaluation.
        first = self.monitor if self.monitor in scalars else next(iter(scalars), None)
        pl_module.latest_metrics = {first: scalars[first]} if first else {}
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
        log.info("step %d: %s", step, ", ".join(f"{k[8:]}={v:.4g}" for k, v in scalars.items()))
        if self.monitor:
            if self.monitor not in scalars:
                return
            value = scalars[self.monitor]
            if self._better(value):
                self.best, self.best_step = value, step
                self._best_ckpt.save(trainer, step)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_step = state_dict.get("best_step")
