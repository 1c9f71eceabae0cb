"""Checks on the composed config that fail fast, before any data is loaded or work done.

Hydra already rejects unknown group options and keys; these checks catch values of the
right type but out of range, and model/data combinations that cannot work. Each failure
is one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganlab.errors import GanlabError


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise GanlabError(f"{key}={value!r} is not allowed: {allowed}")


def _positive_int(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        key,
        value,
        "it must be an integer >= 1",
    )


def _optimizer(cfg: DictConfig, net: str) -> None:
    node = cfg.optimizer[net]
    prefix = f"optimizer.{net}"
    lr = node.get("lr")
    _require(isinstance(lr, int | float) and lr > 0, f"{prefix}.lr", lr, "it must be a number > 0")
    betas = node.get("betas")
    if betas is not None:
        ok = len(betas) == 2 and all(isinstance(b, int | float) and 0 <= b < 1 for b in betas)
        _require(ok, f"{prefix}.betas", list(betas), "it must be two numbers in [0, 1)")


def validate(cfg: DictConfig) -> None:
    """Raise GanlabError on the first invalid value of a composed training config."""
    for key in ("n_critic", "trainer.max_steps", "data.batch_size", "model.latent_dim"):
        _positive_int(cfg, key)
    for net in ("generator", "discriminator"):
        _optimizer(cfg, net)
    shape = list(cfg.data.shape)
    _require(
        all(isinstance(s, int) and s >= 1 for s in shape),
        "data.shape",
        shape,
        "every size must be an integer >= 1",
    )
    if cfg.model.get("name") == "dcgan" and len(shape) != 3:
        raise GanlabError(
            f"model=dcgan needs image data (C, H, W) but data gives samples of shape {shape}; "
            "use model=mlp for 2-D points"
        )
    if len(shape) == 3:
        _require(shape[0] in (1, 3), "data.channels", shape[0], "images have 1 or 3 channels")
