"""Checks before any work, and before Hydra writes anything to a run directory.

``Preflight`` is a Hydra callback (``hydra.callbacks.preflight`` in conf/hydra/default.yaml).
Its ``on_run_start`` runs before Hydra creates the run directory and writes
``.hydra/*.yaml`` and ``train.log`` into it, so a typo in a command that continues an
existing run (``hydra.run.dir=<run dir>``) leaves that run exactly as it was, and a typo in a
new command leaves no empty run directory behind. It checks the config, that the run
directory can be written, and that the checkpoint to resume from is readable and fits the
model. ``ganlab.train.fit`` repeats the config and checkpoint checks, for ``train(cfg)``
callers and for multirun jobs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from torch import Tensor

from ganlab.config import validate
from ganlab.errors import GanlabError
from ganlab.sample import load_checkpoint


def check_resume_checkpoint(
    path: str | Path, expected: dict[str, Tensor], key: str, partial: bool = False
) -> None:
    """GanlabError unless ``path`` is a readable ganlab checkpoint whose weights have the keys
    and shapes of ``expected`` (the module's state_dict; with ``partial``, only some of its
    networks, and only those are compared)."""
    ckpt = load_checkpoint(path, key=key, mmap=True)
    found = ckpt["state_dict"]
    roots = {k.split(".", 1)[0] for k in expected} if partial else None
    problem = None
    for name, tensor in expected.items():
        if name not in found:
            problem = f"it has no {name}"
        elif tuple(found[name].shape) != tuple(tensor.shape):
            problem = (
                f"{name} has shape {list(found[name].shape)} there but {list(tensor.shape)} here"
            )
        if problem:
            break
    else:
        extra = [
            k for k in found if k not in expected and (not roots or k.split(".", 1)[0] in roots)
        ]
        problem = f"it has {extra[0]}, which this model does not" if extra else None
    if problem:
        config = ckpt["ganlab"].get("config") or {}
        model = (config.get("model") or {}).get("name", "?")
        shape = (config.get("data") or {}).get("shape", "?")
        raise GanlabError(
            f"{key}={path} does not fit this run's model: {problem} (it was trained with "
            f"model={model} on samples of shape {shape})"
        )


def resume_checkpoint(
    cfg: DictConfig, output_dir: str | Path, expected: dict[str, Tensor], partial: bool = False
) -> str | None:
    """The checkpoint to resume from, checked against ``expected`` (see
    check_resume_checkpoint): ``ckpt_path`` if given, else the run directory's own
    checkpoints/last.ckpt if there is one."""
    if cfg.get("ckpt_path"):
        path, key = Path(cfg.ckpt_path), "ckpt_path"
        if not path.is_file():
            raise GanlabError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    else:
        path, key = Path(output_dir) / "checkpoints" / "last.ckpt", "checkpoint"
        if not path.is_file():
            return None
    check_resume_checkpoint(path, expected, key, partial)
    return str(path)


def check_run_dir(run_dir: Path) -> None:
    """GanlabError unless ``run_dir`` exists or can be made, and files can be made in it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()  # unnamed: leaves nothing behind
    except OSError as err:
        raise GanlabError(
            f"hydra.run.dir={run_dir}: the run directory cannot be written: {err.strerror or err}"
        ) from None


def _networks(cfg: DictConfig) -> dict[str, Tensor]:
    from ganlab.train import instantiate_node

    state: dict[str, Tensor] = {}
    for net in ("generator", "discriminator"):
        module = instantiate_node(cfg.model[net], f"model.{net}")
        state |= {f"{net}.{k}": v for k, v in module.state_dict().items()}
    return state


class Preflight(Callback):
    """Fails a single run with one ``error:`` line before Hydra touches its run directory."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            run_dir = Path(str(config.hydra.run.dir))
            if config.get("ckpt_path") or (run_dir / "checkpoints" / "last.ckpt").is_file():
                resume_checkpoint(config, run_dir, _networks(config), partial=True)
            check_run_dir(run_dir)
        except GanlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
