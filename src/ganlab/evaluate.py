"""Final evaluation of a trained generator, written to metrics.json under ``metrics/``."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from ganlab.metrics.mixture import mode_coverage


@torch.no_grad()
def generate_samples(module: Any, n: int, seed: int, batch_size: int = 1024) -> torch.Tensor:
    """n samples from G (eval mode) for a fixed seed, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    out = [
        module.generate(torch.randn(min(batch_size, n - i), module.latent_dim, generator=g))
        for i in range(0, n, batch_size)
    ]
    return torch.cat(out).cpu()


def final_metrics(module: Any, datamodule: Any, cfg: DictConfig) -> dict[str, float]:
    """Metrics of the final generator; mode coverage for the 2-D Gaussian mixtures."""
    eval_cfg = cfg.get("evaluation") or {}
    n = int(eval_cfg.get("num_samples", 2500))
    if hasattr(datamodule, "centers"):
        samples = datamodule.denormalize(generate_samples(module, n, seed=cfg.seed))
        cov = mode_coverage(samples, datamodule.centers, datamodule.std)
        return {f"metrics/{k}": float(v) for k, v in cov.items()}
    return {}
