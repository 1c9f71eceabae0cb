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
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganlab import rundir
from ganlab.callbacks.checkpoint import LastCheckpoint
from ganlab.callbacks.interrupt import GracefulStop
from ganlab.callbacks.progress import GANProgressBar
from ganlab.checkpoint import AtomicCheckpointIO, resume_checkpoint, run_disk_error
from ganlab.config import validate
from ganlab.dashboard import write_dashboard
from ganlab.distributed import GANDDPStrategy
from ganlab.divergence import Diverged
from ganlab.errors import GanlabError
from ganlab.evaluation import final_metrics
from ganlab.losses import WassersteinGP
from ganlab.module import GAN

log = logging.getLogger(__name__)


def instantiate_node(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with its errors as one-line GanlabErrors naming ``key``.

    Hydra wraps whatever the target raises; a GanlabError inside is passed on as it is.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, GanlabError):
            raise cause from None
        what = f"{type(cause).__name__}: {cause}" if cause else str(err)
        raise GanlabError(f"{key} cannot be built: {' '.join(what.split())}") from None


def _named_nodes(cfg: DictConfig | None, group: str) -> list[Any]:
    """Instantiate a dict of named ``_target_`` nodes (callbacks, loggers)."""
    if not cfg:
        return []
    return [
        instantiate_node(node, f"{group}.{name}")
        for name, node in cfg.items()
        if node and "_target_" in node
    ]


def apply_model_options(cfg: DictConfig, generator: nn.Module, discriminator: nn.Module) -> None:
    """``model.channels_last`` and ``model.compile``, in place: state_dict keys do not change.

    D stays eager under a gradient penalty (wgan_gp, a regularizer): differentiating D's
    gradient is a double backward, which torch.compile does not support.
    """
    penalised = bool(cfg.get("regularizer")) or issubclass(
        get_class(cfg.loss._target_), WassersteinGP
    )
    for net in (generator, discriminator):
        if cfg.model.get("channels_last"):
            net.to(memory_format=torch.channels_last)
        if cfg.model.get("compile") and not (net is discriminator and penalised):
            net.compile()


def build_module(cfg: DictConfig) -> GAN:
    """G, D, loss and optimizers from the config (fails fast on sizes a model cannot make)."""
    generator = instantiate_node(cfg.model.generator, "model.generator")
    discriminator = instantiate_node(
        cfg.model.discriminator, "model.discriminator", **packed_input(cfg)
    )
    optimizers = {}
    for name, net in (("generator", generator), ("discriminator", discriminator)):
        optimizers[name] = instantiate_node(cfg.optimizer[name], f"optimizer.{name}")
        try:  # the partial is called by Lightning later; any bad argument shows up now
            optimizers[name](net.parameters())
        except (TypeError, ValueError) as err:
            raise GanlabError(f"optimizer.{name}: {' '.join(str(err).split())}") from None
    apply_model_options(cfg, generator, discriminator)
    # A model config may name its own LightningModule: a partial taking GAN's arguments.
    module = instantiate_node(cfg.model.module, "model.module") if "module" in cfg.model else GAN
    return module(
        generator=generator,
        discriminator=discriminator,
        loss=instantiate_node(cfg.loss, "loss"),
        g_optimizer=optimizers["generator"],
        d_optimizer=optimizers["discriminator"],
        latent_dim=cfg.model.get("latent_dim", 0),  # 0: none (image-to-image models)
        n_critic=cfg.n_critic,
        max_steps=cfg.trainer.max_steps,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        on_nonfinite=cfg.get("on_nonfinite", "stop"),
        ema_half_life_kimg=float(cfg.get("ema", {}).get("half_life_kimg", 0.0)),
        regularizer=instantiate_node(cfg.regularizer, "regularizer")
        if cfg.get("regularizer")
        else None,
        augment=instantiate_node(cfg.augment, "augment") if cfg.get("augment") else None,
        g_regularizer=_g_regularizer(cfg),
        pack=int(cfg.get("pack", 1)),
        # null: the module's own default (a partial's keyword or the class default)
        **({} if cfg.get("lr_decay_start") is None
           else {"lr_decay_start": float(cfg.lr_decay_start)}),
    )


def packed_input(cfg: DictConfig) -> dict[str, Any]:
    """D's input size under PacGAN packing: ``pack`` times the features (mlp's ``shape``)
    or the channels (dcgan, sngan) of one sample; nothing to change when ``pack`` is 1."""
    pack, node = int(cfg.get("pack", 1)), cfg.model.discriminator
    if pack == 1:
        return {}
    if "shape" in node:
        return {"shape": [pack * node.shape[0], *node.shape[1:]]}
    return {"channels": pack * node.channels}


def _g_regularizer(cfg: DictConfig) -> nn.Module | None:
    """The model's penalty on G (stylegan's ``model.path_length``); None when its weight is 0."""
    node = cfg.model.get("path_length")
    if not node or not node.get("weight"):
        return None
    return instantiate_node(node, "model.path_length")


def _progress_bar(cfg: DictConfig, callbacks: list[Any]) -> list[Any]:
    """Lightning's default bar redraws at every batch (~0.3 ms a step); this one every 10."""
    wanted = cfg.trainer.get("enable_progress_bar", True) is not False
    if not wanted or any(isinstance(cb, ProgressBar) for cb in callbacks):
        return []
    return [GANProgressBar(refresh_rate=10)]


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


def _trainer(trainer_kwargs: dict[str, Any], **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer; several processes always train with GANDDPStrategy.

    Lightning picks plain DDP for ``strategy=ddp`` and for ``devices > 1`` under
    ``strategy=auto``; its DistributedDataParallel wrapper breaks alternating G/D updates
    (see ganlab.distributed), so such a choice is rebuilt with ganlab's strategy.
    """
    try:
        trainer = L.Trainer(**trainer_kwargs, **kwargs)
        chosen = trainer.strategy
        if isinstance(chosen, DDPStrategy) and not isinstance(chosen, GANDDPStrategy):
            # Only processes started by re-running the command (or by SLURM): spawned and
            # forked ones would train copies whose steps and metrics train() never sees.
            if chosen._start_method != "popen":
                raise GanlabError(
                    f"trainer.strategy={trainer_kwargs.get('strategy')!r} starts processes "
                    f"by {chosen._start_method}, which ganlab does not support; use trainer=ddp"
                )
            strategy = GANDDPStrategy(
                process_group_backend=chosen._process_group_backend, timeout=chosen._timeout
            )
            trainer = L.Trainer(**{**trainer_kwargs, "strategy": strategy}, **kwargs)
    except (MisconfigurationException, TypeError, ValueError) as err:
        raise GanlabError(f"trainer: {' '.join(str(err).split())}") from None
    if trainer.world_size > 1 and not isinstance(trainer.strategy, GANDDPStrategy):
        raise GanlabError(
            f"trainer.strategy={trainer_kwargs.get('strategy')!r} is not supported for "
            "GAN training on several processes; use trainer=ddp"
        )
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher) and _in_multirun():
        raise GanlabError(
            "trainer=ddp starts its processes by re-running the command line, which a "
            "local multirun (-m) cannot do; run each job on its own, or launch the sweep "
            "on SLURM (hydra/launcher=slurm), where each task is one process"
        )
    return trainer


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@dataclass
class FitResult:
    module: GAN
    trainer: L.Trainer
    datamodule: Any
    wall_time_s: float


def fit(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> FitResult:
    """Validate the config, build module, data and Trainer, and train (or resume).

    ``extra_callbacks`` join the configured ones (the benchmark's clock, for one).
    """
    validate(cfg)
    output_dir = Path(cfg.paths.output_dir)
    rundir.check_run_dir(output_dir)
    rundir.lock(output_dir)  # released by train() at its end, or when the process ends
    # Subnormal floats (BatchNorm statistics, Adam moments late in a run) slow x86 CPUs
    # down several-fold; flushing them to zero changed no loss value we logged and made
    # the default digits run 2.5x faster.
    torch.set_flush_denormal(True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    module = build_module(cfg)
    datamodule = instantiate_node(cfg.data, "data")
    datamodule.batches_per_step = cfg.n_critic
    ckpt_path = resume_checkpoint(cfg.get("ckpt_path"), output_dir, module.state_dict())

    # LastCheckpoint goes last, so that what it saves (the RNG states included) comes after
    # every other callback's work at that step; GracefulStop after it.
    callbacks = [*_named_nodes(cfg.get("callbacks"), "callbacks"), *extra_callbacks]
    callbacks.sort(key=lambda cb: isinstance(cb, LastCheckpoint))
    stop = GracefulStop()
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.pop("max_steps")
    trainer = _trainer(
        trainer_kwargs,
        max_steps=-1,  # the module stops after cfg.trainer.max_steps generator updates
        max_epochs=-1,
        logger=_named_nodes(cfg.get("logger"), "logger") or False,
        callbacks=[*_progress_bar(cfg, callbacks), *callbacks, stop],
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
    metrics.update(final_metrics(module, datamodule, cfg))
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
