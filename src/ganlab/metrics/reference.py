"""Reference statistics of the real data, computed once per data set, split and feature network.

A stats file is a .pt of plain tensors and a `meta` dict (loadable with weights_only=True),
named `<data>-<split>-<feature net>-<first 12 hex of its weights' sha256>.pt`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganlab.errors import GanlabError
from ganlab.metrics.features import FeatureNet, extract

_KEYS = ("features", "mu", "sigma", "class_counts", "meta")


def reference_stats(
    real: Tensor, net: FeatureNet, *, data: str, split: str, batch_size: int = 256
) -> dict[str, Any]:
    """Features of the real images in [-1, 1] and what the metrics need from them."""
    features, logits = extract(net, real, batch_size)
    f64 = features.double()
    return {
        "features": features,  # (N, D): FID, KID and precision/recall are computed from these
        # The FID Gaussian (Heusel et al. 2017, eq. 6), kept for comparison with other tools.
        "mu": f64.mean(0),
        "sigma": torch.cov(f64.T),
        "class_counts": torch.bincount(logits.argmax(1), minlength=logits.shape[1]),  # (K,)
        "meta": {
            "data": data,
            "split": split,
            "feature_net": net.name,
            "feature_net_sha256": net.sha256,
            "num_samples": len(features),
        },
    }


def reference_stats_path(cache_dir: str | Path, data: str, split: str, net: FeatureNet) -> Path:
    return Path(cache_dir) / f"{data}-{split}-{net.name}-{net.sha256[:12]}.pt"


def save_reference_stats(stats: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(stats, path)


def load_reference_stats(path: str | Path) -> dict[str, Any]:
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise GanlabError(
            f"cannot read reference stats {path} ({err}); delete it to recompute"
        ) from None
    if not isinstance(stats, dict) or any(k not in stats for k in _KEYS):
        raise GanlabError(f"reference stats {path} lack keys {_KEYS}; delete it to recompute")
    return stats


def load_or_compute_reference_stats(
    real: Tensor, net: FeatureNet, cache_dir: str | Path, *, data: str, split: str
) -> dict[str, Any]:
    """Stats of `real` from the cache file of (data, split, net), computed and saved if missing."""
    path = reference_stats_path(cache_dir, data, split, net)
    if path.exists():
        return load_reference_stats(path)
    stats = reference_stats(real, net, data=data, split=split)
    save_reference_stats(stats, path)
    return stats
