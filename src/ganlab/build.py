"""Building a run from its composed config: the module (the ``model`` node, parts and all),
the data, the callbacks, the loggers, the evaluator and the Trainer.

Every component checks its own options; an error names the option by its full config key
(``model.generator.width=0 is not allowed: ...``), and an option set through an
interpolation (``n_critic: ${n_critic}``) is named by the key the user sets. ``assemble``
builds everything but the Trainer and checks that the parts fit together; the preflight
check runs it before Hydra writes anything into a run directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from ganlab.callbacks.progress import GANProgressBar
from ganlab.distributed import GANDDPStrategy
from ganlab.errors import GanlabError
from ganlab.evaluation import Evaluator, build_evaluator
from ganlab.options import OptionError, at_least, check, is_int
from ganlab.sweep import is_multirun

_FULL_KEY = re.compile(r"full_key: (\S+)")
_SIMPLE_INTERPOLATION = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


def source_key(cfg: DictConfig, key: str) -> str:
    """The key a user sets for ``key``: wherever a node on its path is a plain ``${other}``
    interpolation (``model.ema: ${ema}``), the path goes on from ``other``."""
    for _ in range(8):  # a chain of aliases, never a cycle in a composed config
        parts = key.split(".")
        for i in range(1, len(parts) + 1):
            parent = OmegaConf.select(cfg, ".".join(parts[: i - 1])) if i > 1 else cfg
            node = parent._get_node(parts[i - 1]) if isinstance(parent, DictConfig) else None
            text = node._value() if node is not None and node._is_interpolation() else None
            match = _SIMPLE_INTERPOLATION.match(text) if isinstance(text, str) else None
            if match:
                key = ".".join([match.group(1), *parts[i:]])
                break
        else:
            return key
    return key


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of ``cfg[key]``, its errors as one line naming the key."""
    try:
        return instantiate(OmegaConf.select(cfg, key), **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        found = _FULL_KEY.search(str(err))
        where = found.group(1) if found else key
        if isinstance(cause, OptionError):
            raise OptionError(source_key(cfg, f"{where}.{cause.option}"), cause.value,
                              cause.rule) from None
        if isinstance(cause, GanlabError):
            raise cause from None
        what = f"{type(cause).__name__}: {cause}" if cause else str(err).splitlines()[0]
        raise GanlabError(f"{where} cannot be built: {' '.join(what.split())}") from None
    except InterpolationKeyError as err:  # e.g. a convnet's ${data.channels} on 2-D points
        missing = re.search(r"'([\w.]+)'", str(err))
        takes = missing.group(1) if missing else "a key"
        hint = ""
        if takes.startswith("data.") and "shape" in cfg.data:
            hint = f" (the data gives samples of shape {list(cfg.data.shape)})"
        raise GanlabError(f"{err.full_key or key} takes {takes}, which this config does not "
                          f"have{hint}; choose a model and data that fit") from None
    except OmegaConfBaseException as err:
        raise GanlabError(f"{key}: {str(err).splitlines()[0]}") from None


def check_optimizers(module: Any) -> None:
    """Build both optimizers once (Lightning builds them at fit): a bad value fails now."""
    for name in ("generator", "discriminator"):
        try:
            module.optimizer_factories[name](getattr(module, name).parameters())
        except (TypeError, ValueError) as err:
            raise GanlabError(f"optimizer.{name}: {' '.join(str(err).split())}") from None


def _missing(node: Any, prefix: str) -> str | None:
    """The first mandatory value (``???``) left unset under ``node``."""
    if not isinstance(node, DictConfig):
        return None
    for key in node:
        full = f"{prefix}.{key}" if prefix else str(key)
        if full == "hydra":  # Hydra fills in its own values later
            continue
        if OmegaConf.is_missing(node, key):
            return full
        found = _missing(node._get_node(key), full)
        if found:
            return found
    return None


def check_trainer(trainer: DictConfig) -> None:
    """ganlab's own reading of the ``trainer`` node (the rest is Lightning's to check)."""
    at_least(trainer.max_steps, "trainer.max_steps")
    at_least(trainer.log_every_n_steps, "trainer.log_every_n_steps")
    for flag in ("enable_progress_bar", "enable_model_summary"):
        if flag in trainer:
            check(isinstance(trainer[flag], bool), f"trainer.{flag}", trainer[flag],
                  "it must be true or false")
    deterministic = trainer.get("deterministic", False)
    check(isinstance(deterministic, bool) or deterministic == "warn", "trainer.deterministic",
          deterministic, "it must be true, false or warn")
    benchmark = trainer.get("benchmark")
    check(benchmark is None or isinstance(benchmark, bool), "trainer.benchmark", benchmark,
          "it must be null, true or false")


def check_top_level(cfg: DictConfig) -> None:
    """The run's own keys: every mandatory value set, the seed and checkpoint path."""
    missing = _missing(cfg, "")
    if missing:
        raise GanlabError(f"{missing} is required but not set: pass {missing}=VALUE")
    seed = cfg.seed
    check(is_int(seed) and 0 <= seed < 2**32, "seed", seed, "it must be an integer in [0, 2**32)")
    check(cfg.get("ckpt_path") is None or cfg.ckpt_path != "", "ckpt_path", cfg.get("ckpt_path"),
          "it must be null or a path")


def build_module(cfg: DictConfig) -> Any:
    """The run's LightningModule: Hydra builds the ``model`` node, parts and all."""
    return instantiate_node(cfg, "model")


@dataclass
class Assembled:
    module: Any
    datamodule: Any
    callbacks: list[Any]


def evaluator(cfg: DictConfig, datamodule: Any, quiet: bool = False) -> Evaluator | None:
    """The run's evaluator (``evaluation`` node), or None when there is none to run."""
    return build_evaluator(cfg.get("evaluation"), datamodule, cfg.paths.data_dir, cfg.seed,
                           quiet=quiet)


def assemble(cfg: DictConfig) -> Assembled:
    """The module, the data module (not loaded) and the callbacks of a run, checked to fit
    together with the evaluation settings; GanlabError (one line) for anything that does not."""
    check_top_level(cfg)
    check_trainer(cfg.trainer)
    module = build_module(cfg)
    check_optimizers(module)
    datamodule = instantiate_node(cfg, "data")
    datamodule.batches_per_step = module.schedule.n_critic
    if getattr(module.generator, "batch_sizes", None):  # ProGAN's per-resolution sizes
        datamodule.batch_size_at = module.generator.batch_size_at
    module.check_data(datamodule)
    callbacks = [instantiate_node(cfg, f"callbacks.{name}")
                 for name, node in (cfg.get("callbacks") or {}).items() if node]
    evaluator(cfg, datamodule, quiet=True)  # its settings are checked as it is made
    return Assembled(module, datamodule, callbacks)


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate_node(cfg, f"logger.{name}")
            for name, node in (cfg.get("logger") or {}).items() if node and "_target_" in node]


def progress_bar(cfg: DictConfig, callbacks: list[Any]) -> list[Any]:
    """Lightning's default bar redraws at every batch (~0.3 ms a step); this one every 10."""
    wanted = cfg.trainer.get("enable_progress_bar", True) is not False
    if not wanted or any(isinstance(cb, ProgressBar) for cb in callbacks):
        return []
    return [GANProgressBar(refresh_rate=10)]


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer of the ``trainer`` node; several processes always train with
    GANDDPStrategy. ``max_steps`` is not Lightning's: the module stops after that many
    generator updates (its schedule's ``steps``).

    Lightning picks plain DDP for ``strategy=ddp`` and for ``devices > 1`` under
    ``strategy=auto``; its DistributedDataParallel wrapper breaks alternating G/D updates
    (see ganlab.distributed), so such a choice is rebuilt with ganlab's strategy.
    """
    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    options.pop("max_steps")
    kwargs = {**options, "max_steps": -1, "max_epochs": -1, **kwargs}
    try:
        trainer = L.Trainer(**kwargs)
        chosen = trainer.strategy
        if isinstance(chosen, DDPStrategy) and not isinstance(chosen, GANDDPStrategy):
            # Only processes started by re-running the command (or by SLURM): spawned and
            # forked ones would train copies whose steps and metrics train() never sees.
            if chosen._start_method != "popen":
                raise GanlabError(
                    f"trainer.strategy={options.get('strategy')!r} starts processes by "
                    f"{chosen._start_method}, which ganlab does not support; use trainer=ddp")
            strategy = GANDDPStrategy(
                process_group_backend=chosen._process_group_backend, timeout=chosen._timeout)
            trainer = L.Trainer(**{**kwargs, "strategy": strategy})
    except (MisconfigurationException, TypeError, ValueError) as err:
        raise GanlabError(f"trainer: {' '.join(str(err).split())}") from None
    if trainer.world_size > 1 and not isinstance(trainer.strategy, GANDDPStrategy):
        raise GanlabError(f"trainer.strategy={options.get('strategy')!r} is not supported for "
                          "GAN training on several processes; use trainer=ddp")
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher) and is_multirun():
        raise GanlabError(
            "trainer=ddp starts its processes by re-running the command line, which a local "
            "multirun (-m) cannot do; run each job on its own, or launch the sweep on SLURM "
            "(hydra/launcher=slurm), where each task is one process")
    return trainer
