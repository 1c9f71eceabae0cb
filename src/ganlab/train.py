"""``train(cfg)``: build everything from the composed Hydra config, fit, evaluate, report."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

import ganlab.schema  # noqa: F401 - registers the structured configs train.yaml extends
from ganlab import rundir
from ganlab.build import assemble, build_loggers, build_trainer, evaluator, progress_bar
from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.callbacks.interrupt import GracefulStop
from ganlab.checkpoint import AtomicCheckpointIO, RunRecord, resume_checkpoint, run_disk_error
from ganlab.dashboard import write_dashboard
from ganlab.divergence import Diverged
from ganlab.evaluation import final_metrics

log = logging.getLogger(__name__)


@contextmanager
def cuda_check_without_nvml() -> Iterator[None]:
    """Lift Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 where no GPU is visible.

    With it, every ``optimizer.step()`` asks NVML whether CUDA is available (a dlopen) as
    long as CUDA is not initialised, i.e. on every CPU run: ~60 us a step. Where there is
    no GPU, CUDA's own check is as safe and takes 2 us.
    """
    if torch.cuda.is_available():
        yield
        return
    saved = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = saved


@dataclass
class FitResult:
    module: Any
    trainer: L.Trainer
    datamodule: Any
    wall_time_s: float


def fit(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> FitResult:
    """Build the run (ganlab.build) and train it, or resume it from its checkpoint.

    ``extra_callbacks`` join the configured ones (the benchmark's clock, for one).
    """
    output_dir = Path(cfg.paths.output_dir)
    rundir.check_run_dir(output_dir)
    rundir.lock(output_dir)  # released by train() at its end, or when the process ends
    # Subnormal floats (BatchNorm statistics, Adam moments late in a run) slow x86 CPUs
    # down several-fold; flushing them to zero changed no loss value we logged and made
    # the default digits run 2.5x faster.
    torch.set_flush_denormal(True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run = assemble(cfg)
    module, datamodule = run.module, run.datamodule
    ckpt_path = resume_checkpoint(cfg.get("ckpt_path"), output_dir, module.state_dict())

    # LastCheckpoint goes last, so that what it saves (the RNG states included) comes after
    # every other callback's work at that step; GracefulStop after it.
    callbacks = [*run.callbacks, *extra_callbacks, RunRecord(cfg)]
    callbacks.sort(key=lambda cb: isinstance(cb, LastCheckpoint))
    stop = GracefulStop()
    trainer = build_trainer(
        cfg,
        logger=build_loggers(cfg) or False,
        callbacks=[*progress_bar(cfg, callbacks), *callbacks, stop],
        enable_checkpointing=False,  # checkpoints/last.ckpt is written by LastCheckpoint
        default_root_dir=str(output_dir),
        plugins=[AtomicCheckpointIO()],
    )
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    start = time.perf_counter()
    with stop.handling_signals(), cuda_check_without_nvml():
        try:
            # weights_only: resuming runs no code from the checkpoint file either.
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except Diverged as err:
            kept = [cb.path for cb in callbacks if isinstance(cb, LastCheckpoint)]
            if kept and kept[0].is_file():
                raise Diverged(f"{err}; {kept[0]} holds the last good state") from None
            raise
    return FitResult(module, trainer, datamodule, time.perf_counter() - start)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one GAN as configured; returns the final metrics (also in metrics.json)."""
    try:
        return _train(cfg)
    except OSError as err:  # an event file, say, on a full disk; checkpoints say it themselves
        if err.errno not in rundir.DISK_ERRNOS:
            raise
        raise run_disk_error(err, cfg.paths.output_dir) from None
    finally:
        rundir.unlock(cfg.paths.output_dir)


def _train(cfg: DictConfig) -> dict[str, Any]:
    result = fit(cfg)
    module, trainer, datamodule = result.module, result.trainer, result.datamodule
    output_dir = Path(cfg.paths.output_dir)
    metrics: dict[str, Any] = {
        "steps": module.g_steps,
        "images_seen": module.images_seen,
        "wall_time_s": round(result.wall_time_s, 2),
        **{k: round(v, 6) for k, v in module.last_logged.items() if k.startswith("train/")},
    }
    if module.samples_from_noise:
        metrics.update(final_metrics(module, evaluator(cfg, datamodule)))
    if trainer.is_global_zero:
        write_dashboard(trainer.loggers, cfg, metrics)
    for lg in trainer.loggers:
        lg.log_metrics(
            {k: v for k, v in metrics.items() if k.startswith("metrics/")}, step=module.g_steps
        )
        lg.finalize("success")
    if trainer.is_global_zero:
        rundir.write_text_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        log.info("metrics: %s", json.dumps(metrics))
        log.info("run directory: %s", output_dir)
    return metrics
