"""TensorBoard's HParams dashboard and a custom-scalars layout for every run."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

# Config values that tell runs apart in the HParams table (besides the command's overrides).
HPARAM_KEYS = (
    "model.name",
    "loss._target_",
    "data._target_",
    "data.batch_size",
    "n_critic",
    "seed",
    "optimizer.generator.lr",
    "optimizer.discriminator.lr",
    "optimizer.generator._target_",
    "regularizer._target_",
    "augment._target_",
    "ema.half_life_kimg",
    "trainer.max_steps",
)

LAYOUT = {
    "GAN": {
        "D and G loss": ["Multiline", ["train/d_loss", "train/g_loss"]],
        "D output on real and fake": ["Multiline", ["train/d_real", "train/d_fake"]],
        "gradient norms": ["Multiline", ["grad_norm/generator", "grad_norm/discriminator"]],
    }
}


def _overrides() -> list[str]:
    """The command line's overrides, when running under a Hydra app."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside @hydra.main (tests, train(cfg) from Python)
        return []


def hparams_of(cfg: DictConfig) -> dict[str, Any]:
    """Flat, TensorBoard-friendly hyperparameters of a run: its overrides and key values."""
    params: dict[str, Any] = {}
    for item in _overrides():
        key, _, value = item.partition("=")
        params[f"override/{key.lstrip('+~')}"] = value
    for key in HPARAM_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            params[key] = value.rsplit(".", 1)[-1] if key.endswith("_target_") else value
    return params


def write_dashboard(loggers: list[Any], cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """HParams (with the final metrics) and the custom-scalars layout, for TensorBoard loggers."""
    final = {
        k: float(v)
        for k, v in metrics.items()
        if k.startswith("metrics/") and isinstance(v, int | float)
    }
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_custom_scalars(LAYOUT)
            # At the run's last step: Lightning writes the metrics given here as scalars
            # at `step` (0 by default, which would put the final values at the start of
            # every metric's curve).
            logger.log_hyperparams(hparams_of(cfg), final, step=int(metrics.get("steps", 0)))
