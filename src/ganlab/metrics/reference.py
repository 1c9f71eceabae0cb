"""Reference statistics of the real data, computed once per data set content, split and
feature network.

A stats file is a .pt of plain tensors and a `meta` dict (loadable with weights_only=True),
named `<data>-<split>-<feature net>-<first 12 hex of its weights' sha256>-<first 12 hex of
the data's content sha256>.pt`. The content hash is the sha256 of the real images as uint8
(the bytes a PNG would hold) and their shape, so a data set that changed (other files in a
folder, another image size, another split) never reuses old statistics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganlab.errors import GanlabError
from ganlab.metrics.features import FeatureNet, extract

_KEYS = ("features", "mu", "sigma", "class_counts", "meta")
# Images quantized and hashed per call, which bounds the working memory.
_CHUNK = 4096


def content_sha256(real: Tensor) -> str:
    """sha256 of samples: images in [-1, 1] as the uint8 they came from ((x + 1) * 127.5,
    rounded: exact for ganlab's data), other samples (2-D points) as float32 bytes; the shape
    is hashed too."""
    digest = hashlib.sha256(str(tuple(real.shape)).encode())
    for chunk in real.split(_CHUNK):
        if chunk.dim() == 4:
            chunk = ((chunk.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        digest.update(chunk.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def reference_stats(
    real: Tensor, net: FeatureNet, *, data: str, split: str, batch_size: int = 256,
    extract_fn: Callable[[Tensor], tuple[Tensor, Tensor | None]] | None = None,
) -> dict[str, Any]:
    """Features of the real images in [-1, 1] and what the metrics need from them;
    ``extract_fn`` replaces ``extract`` (e.g. with a progress bar)."""
    features, logits = (extract_fn or (lambda x: extract(net, x, batch_size)))(real)
    f64 = features.double()
    counts = (torch.zeros(0, dtype=torch.long) if logits is None
              else torch.bincount(logits.argmax(1), minlength=logits.shape[1]))
    return {
        "features": features,  # (N, D) float32: KID, precision/recall, density/coverage
        # The FID Gaussian (Heusel et al. 2017, eq. 6) in float64.
        "mu": f64.mean(0),
        "sigma": torch.cov(f64.T),
        "class_counts": counts,  # (K,); empty without logits
        "meta": {
            "data": data,
            "split": split,
            "feature_net": net.name,
            "feature_net_sha256": net.sha256,
            "num_samples": len(features),
            "content_sha256": content_sha256(real),
        },
    }


def reference_stats_path(cache_dir: str | Path, data: str, split: str, net: FeatureNet,
                         content: str) -> Path:
    """The cache file of (data content, split, net); ``content``: ``content_sha256``."""
    name = f"{data}-{split}-{net.name}-{net.sha256[:12]}-{content[:12]}.pt"
    return Path(cache_dir) / name


def save_reference_stats(stats: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # a killed run leaves no half file
    torch.save(stats, partial)
    partial.replace(path)


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
    real: Tensor, net: FeatureNet, cache_dir: str | Path, *, data: str, split: str,
    extract_fn: Callable[[Tensor], tuple[Tensor, Tensor | None]] | None = None,
) -> dict[str, Any]:
    """Stats of `real` from the cache file of (content of `real`, split, net), computed and
    saved if missing."""
    path = reference_stats_path(cache_dir, data, split, net, content_sha256(real))
    if path.exists():
        return load_reference_stats(path)
    stats = reference_stats(real, net, data=data, split=split, extract_fn=extract_fn)
    save_reference_stats(stats, path)
    return stats
