"""Checkpoints: reading them safely, checking one fits a run before resuming, writing them.

A checkpoint may come from elsewhere, so it is data. It is read with
``torch.load(weights_only=True)`` (tensors and plain containers only: no pickled code), and
the config stored in it is never instantiated: the networks are built through
``ganlab.registry`` (a closed set of classes with plain arguments), and every other value
read from it is checked for its type before use.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ganlab import registry
from ganlab.errors import GanlabError
from ganlab.rundir import disk_error, fsync_dir
from ganlab.stored import REFUSED_HINT, StoredGenerator, evaluation_settings, stored_value


def load_checkpoint(
    path: str | Path, key: str = "checkpoint", mmap: bool = False
) -> dict[str, Any]:
    """A ganlab checkpoint as plain data; GanlabError (naming ``key=path``) for anything else.

    ``mmap=True`` maps the tensors instead of reading them, for a cheap look at shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise GanlabError(f"{key}={path}: no such file")
    complete = zipfile.is_zipfile(path)  # what torch.save writes; a truncated copy is not one
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and complete)
    except Exception as err:
        text = str(err)
        if "Weights only load failed" in text:  # it pickles objects: loading would run code
            found = [ln.strip() for ln in text.splitlines() if "unsupported" in ln.lower()]
            raise GanlabError(
                f"{key}={path} holds Python objects, not only tensors and plain data, so it "
                f"is not loaded (loading it could run code){': ' + found[0] if found else ''}"
            ) from None
        if not complete:
            raise GanlabError(
                f"{key}={path} cannot be read: it is truncated, or not a checkpoint "
                "(not a complete zip archive as torch.save writes)"
            ) from None
        first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(err).__name__
        raise GanlabError(f"{key}={path} cannot be read: it is corrupt ({first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ganlab"), dict) or not isinstance(
        ckpt.get("state_dict"), dict
    ):
        raise GanlabError(f"{key}={path} is not a ganlab checkpoint (no 'ganlab' section)")
    return ckpt


def generator_from_checkpoint(path: str | Path, key: str = "checkpoint",
                              ema: bool = True) -> StoredGenerator:
    """The generator of the checkpoint at ``path``, built only from ganlab's registry of
    network classes with plain arguments (see ganlab.registry); GanlabError otherwise. The
    EMA weights when the run had them, unless ``ema`` is false. ``ganlab.generator.
    load_generator`` takes an export folder as well."""
    ckpt = load_checkpoint(path, key)
    try:
        config = stored_value(ckpt["ganlab"], "config", dict)
        net = registry.build("network", stored_value(config, "model.generator", dict),
                             "model.generator")
        latent_dim = stored_value(config, "model.latent_dim", int, None)
        stored = StoredGenerator(
            net=net,
            model=stored_value(config, "model.name", str, "?"),
            latent_dim=latent_dim or None,  # 0: none (image-to-image models)
            ema=False,
            g_steps=stored_value(ckpt["ganlab"], "g_steps", int, 0),
            truncation=stored_value(config, "model.truncation", (int, float, type(None)), None),
            scale=float(stored_value(config, "data.scale", (int, float), 1.0)),
            data=stored_value(config, "data", dict, {}),
            images_seen=stored_value(ckpt["ganlab"], "images_seen", int, 0),
            evaluation=evaluation_settings(config),
            seed=stored_value(config, "seed", int, 0),
        )
    except registry.Refused as err:
        raise GanlabError(f"{key}={path}: {err}; {REFUSED_HINT}") from None
    except GanlabError as err:
        raise GanlabError(f"{key}={path}: {err}") from None
    state = ckpt["state_dict"]
    stored.ema = ema and any(k.startswith("generator_ema.") for k in state)
    prefix = "generator_ema." if stored.ema else "generator."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        stored.net.load_state_dict(weights)
    except RuntimeError as err:
        raise GanlabError(
            f"{key}={path}: its weights do not fit its generator config: "
            f"{str(err).splitlines()[0]}"
        ) from None
    stored.net.eval()
    return stored


def _mismatch(found: dict[str, Tensor], expected: dict[str, Tensor], partial: bool) -> str | None:
    roots = {k.split(".", 1)[0] for k in expected} if partial else None
    for name, tensor in expected.items():
        if name not in found:
            return f"it has no {name}"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return f"{name} has shape {list(found[name].shape)} there but {list(tensor.shape)} here"
    extra = [k for k in found if k not in expected and (not roots or k.split(".", 1)[0] in roots)]
    return f"it has {extra[0]}, which this model does not" if extra else None


def check_resume_checkpoint(
    path: str | Path, expected: dict[str, Tensor], key: str, partial: bool = False
) -> None:
    """GanlabError unless ``path`` is a readable ganlab checkpoint whose weights have the keys
    and shapes of ``expected`` (the module's state_dict; with ``partial``, only some of its
    networks, and only those are compared)."""
    ckpt = load_checkpoint(path, key=key, mmap=True)
    problem = _mismatch(ckpt["state_dict"], expected, partial)
    if problem:
        config = ckpt["ganlab"].get("config")
        config = config if isinstance(config, dict) else {}
        model = (config.get("model") or {}).get("name", "?")
        shape = (config.get("data") or {}).get("shape", "?")
        raise GanlabError(
            f"{key}={path} does not fit this run's model: {problem} (it was trained with "
            f"model={model!s:.40} on samples of shape {shape!s:.40})"
        )


def resume_checkpoint(
    ckpt_path: str | None, output_dir: str | Path, expected: dict[str, Tensor],
    partial: bool = False,
) -> str | None:
    """The checkpoint to resume from, checked against ``expected`` (see
    check_resume_checkpoint): ``ckpt_path`` if given, else the run directory's own
    checkpoints/last.ckpt if there is one."""
    if ckpt_path:
        path, key = Path(ckpt_path), "ckpt_path"
        if not path.is_file():
            raise GanlabError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    else:
        path, key = Path(output_dir) / "checkpoints" / "last.ckpt", "checkpoint"
        if not path.is_file():
            return None
    check_resume_checkpoint(path, expected, key, partial)
    return str(path)


def saved_step(path: Path) -> int | None:
    """The generator step of the checkpoint at ``path``, or None if it cannot be read."""
    try:
        steps = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["ganlab"]
        return int(steps["g_steps"])
    except Exception:
        return None


class RunRecord(L.Callback):
    """Puts the run's composed config (resolved, as plain data) into every checkpoint, so
    the sampling and evaluation commands know which registered classes to build."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("ganlab", {})["config"] = self.config


def _kept(path: Path) -> str:
    step = saved_step(path) if path.is_file() else None
    return f"; the previous checkpoint of step {step} is intact" if step is not None else ""


def run_disk_error(err: OSError, run_dir: Path | str) -> GanlabError:
    """One line for a run that cannot write into its directory, saying what is kept."""
    run_dir = Path(run_dir)
    where = err.filename or f"in {run_dir}"
    return disk_error(where, err, _kept(run_dir / "checkpoints" / "last.ckpt"))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint beside its destination, flushes it to disk and renames it.

    Lightning's own save stages the file in the system temp folder (fsspec's transaction),
    so a full /tmp breaks a run whose disk has room, and a full run disk raises a traceback.
    Here nothing outside the destination's folder is touched, a failed write leaves no
    temporary file and the previous checkpoint intact, and the error is one line.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # in memory first: torch's writer hides errno
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())  # the bytes reach the disk before the name does
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise disk_error(path, err, _kept(path)) from None
        fsync_dir(path.parent)
