"""Image metrics on the features of a feature network: FID, KID, IS, precision/recall, class coverage.

Features are extracted once and handed to torchmetrics through a pass-through `feature`
module, so the three torchmetrics metrics and precision/recall share one forward pass and the
real features can come from the reference-stats cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, kl_divergence
from torch_fidelity.metric_prc import calculate_precision_recall_part
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from ganlab.errors import GanlabError
from ganlab.metrics.features import FeatureNet, extract
from ganlab.metrics.reference import reference_stats


class _Precomputed(nn.Identity):
    """A torchmetrics custom `feature` module whose inputs already are the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # read by FrechetInceptionDistance


@contextmanager
def _quiet() -> Iterator[None]:
    # KID and IS warn that they buffer all features, which is what we want here, and IS warns
    # on the std of a single split, which we report as 0.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        warnings.filterwarnings("ignore", message=".*degrees of freedom is <= 0.*")
        yield


def fid(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between Gaussians fitted to features (N, D) (Heusel et al. 2017)."""
    if min(len(real), len(fake)) < 2:
        raise GanlabError(
            f"FID needs >= 2 samples per set, got {len(real)} real and {len(fake)} fake"
        )
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return metric.compute().item()


def kid(
    real: Tensor, fake: Tensor, subset_size: int = 1000, subsets: int = 100
) -> tuple[float, float]:
    """Mean and std over subsets of the unbiased polynomial-kernel MMD^2 (Binkowski et al. 2018)."""
    n = min(len(real), len(fake))
    if n < subset_size:
        raise GanlabError(
            f"KID subset size {subset_size} is larger than the {n} samples available; "
            f"set kid_subset_size <= {n} or evaluate more samples"
        )
    with _quiet():
        metric = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]), subset_size=subset_size, subsets=subsets
        )
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    mean, std = metric.compute()
    return mean.item(), std.item()


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """exp E_x KL(p(y|x) || p(y)) over `splits` splits (Salimans et al. 2016), from logits (N, K)."""
    with _quiet():
        metric = InceptionScore(feature=_Precomputed(logits.shape[1]), splits=splits)
        metric.update(logits.double())
        mean, std = metric.compute()
    return mean.item(), (std.item() if splits > 1 else 0.0)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls, via torch-fidelity.

    torchmetrics has no such metric; torch-fidelity's computes the distances in chunks.
    """
    if min(len(real), len(fake)) <= k:
        raise GanlabError(
            f"precision/recall with k={k} needs > {k} samples per set, "
            f"got {len(real)} real and {len(fake)} fake"
        )
    # torch-fidelity's convention: features_1 are generated, features_2 real.
    precision, recall = calculate_precision_recall_part(fake, real, neighborhood=k, batch_size=1024)
    return precision, recall


def class_coverage(fake_logits: Tensor, real_class_counts: Tensor) -> dict[str, float]:
    """Distinct predicted classes of the fakes, and KL(fake class histogram || real one).

    `real_class_counts` (K,) counts the classifier's predictions on the real images (the
    reference stats hold them), so both histograms carry the same classifier errors. The KL is
    infinite when fakes are predicted in a class that no real image is.
    """
    num_classes = real_class_counts.shape[0]
    fake_counts = torch.bincount(fake_logits.argmax(1), minlength=num_classes).double()
    real = Categorical(probs=real_class_counts.double())
    kl = kl_divergence(Categorical(probs=fake_counts), real).item()
    return {"classes_generated": int((fake_counts > 0).sum()), "class_kl": kl}


def image_metrics(
    real: Tensor | dict[str, Any],
    fake: Tensor,
    net: FeatureNet,
    *,
    split: str = "test",
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    is_splits: int = 10,
    k: int = 3,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of fake images against real ones, both (N, C, H, W) in [-1, 1].

    `real` is either the real images (of `split`) or their stats from `reference_stats` /
    `load_or_compute_reference_stats`. Returns the metrics (`fid`, `kid_mean`, `kid_std`,
    `is_mean`, `is_std`, `precision`, `recall`, and `classes_generated`, `class_kl` for the
    classifier) and the protocol that produced them. KID and IS draw random subsets from a
    generator seeded with `seed`, so the numbers are reproducible.
    """
    stats = reference_stats(real, net, data="", split=split) if isinstance(real, Tensor) else real
    meta = stats["meta"]
    if meta["feature_net_sha256"] != net.sha256:
        raise GanlabError(
            f"reference stats of {meta['data']}/{meta['split']} were computed with another "
            f"{meta['feature_net']} network; delete the stats file to recompute it"
        )
    real_f = stats["features"]
    fake_f, fake_logits = extract(net, fake, batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid(real_f, fake_f, kid_subset_size, kid_subsets)
        is_mean, is_std = inception_score(fake_logits, is_splits)
    precision, recall = precision_recall(real_f, fake_f, k)
    metrics = {
        "fid": fid(real_f, fake_f),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "is_mean": is_mean,
        "is_std": is_std,
        "precision": precision,
        "recall": recall,
    }
    if net.class_coverage:
        metrics |= class_coverage(fake_logits, stats["class_counts"])
    protocol = {
        "feature_net": net.name,
        "feature_net_sha256": net.sha256,
        "data": meta["data"],
        "split": meta["split"],
        "num_real": len(real_f),
        "num_fake": len(fake_f),
        "kid_subset_size": kid_subset_size,
        "kid_subsets": kid_subsets,
        "is_splits": is_splits,
        "pr_k": k,
    }
    return metrics, protocol
