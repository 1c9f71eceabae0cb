"""Image metrics on the features of a feature network: FID (FD), KID, IS, precision/recall,
density/coverage, class coverage.

FID, KID, IS and precision/recall are torch-fidelity's own functions applied to the
features, with torch-fidelity's conventions (the KID subsets and IS splits drawn from a
NumPy RandomState seeded with ``seed``; KID's and IS's std over subsets / splits with
ddof 0), so that with the same images, weights and seed the numbers are those of
``torch_fidelity.calculate_metrics`` (tests/test_agreement.py). The FID Gaussians are
float64. Features are extracted once; the real ones come from the reference-stats cache.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Categorical, kl_divergence
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import (
    KEY_METRIC_KID_MEAN,
    KEY_METRIC_KID_STD,
    kid_features_to_metric,
)
from torch_fidelity.metric_prc import calc_cdist_part, calculate_precision_recall_part

from ganlab.errors import GanlabError
from ganlab.metrics.features import FeatureNet, extract
from ganlab.metrics.reference import reference_stats


def gaussian(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and sample covariance (D, D) of features (N, D), in float64."""
    f64 = features.double()
    return f64.mean(0), torch.cov(f64.T)


def fid_from_stats(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance of two Gaussians (Heusel et al. 2017, eq. 6) by torch-fidelity's
    ``fid_statistics_to_metric`` (trace of the square root from the eigenvalues of
    sigma1 sigma2), in float64."""
    first = {"mu": mu1.double().cpu().numpy(), "sigma": sigma1.double().cpu().numpy()}
    second = {"mu": mu2.double().cpu().numpy(), "sigma": sigma2.double().cpu().numpy()}
    return float(fid_statistics_to_metric(first, second, verbose=False)[KEY_METRIC_FID])


def fid(real: Tensor, fake: Tensor) -> float:
    """Frechet distance between Gaussians fitted to features (N, D) (Heusel et al. 2017)."""
    if min(len(real), len(fake)) < 2:
        raise GanlabError(
            f"FID needs >= 2 samples per set, got {len(real)} real and {len(fake)} fake"
        )
    return fid_from_stats(*gaussian(real), *gaussian(fake))


def kid(
    real: Tensor, fake: Tensor, subset_size: int = 1000, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Mean and std over subsets of the unbiased polynomial-kernel MMD^2 (Binkowski et al.
    2018), by torch-fidelity's ``kid_features_to_metric`` on float64 features."""
    n = min(len(real), len(fake))
    if n < subset_size:
        raise GanlabError(
            f"KID subset size {subset_size} is larger than the {n} samples available; "
            f"set kid_subset_size <= {n} or evaluate more samples"
        )
    # torch-fidelity's convention: features_1 generated, features_2 real.
    out = kid_features_to_metric(fake.double(), real.double(), kid_subsets=subsets,
                                 kid_subset_size=subset_size, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def inception_score(logits: Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp E_x KL(p(y|x) || p(y)) over `splits` splits of the shuffled samples (Salimans et
    al. 2016), by torch-fidelity's ``isc_features_to_metric``, from logits (N, K)."""
    out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return out["inception_score_mean"], out["inception_score_std"]


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls, via
    torch-fidelity (computed in chunks, on the features' device)."""
    if min(len(real), len(fake)) <= k:
        raise GanlabError(
            f"precision/recall with k={k} needs > {k} samples per set, "
            f"got {len(real)} real and {len(fake)} fake"
        )
    # torch-fidelity's convention: features_1 are generated, features_2 real.
    precision, recall = calculate_precision_recall_part(fake, real, neighborhood=k, batch_size=1024)
    return precision, recall


def density_coverage(
    real: Tensor, fake: Tensor, k: int = 5, batch_size: int = 1024
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020, eqs. 3 and 4) with k-NN balls around the real
    samples: density = sum_j #{real balls that hold fake j} / (k M); coverage = the fraction
    of real balls that hold a fake. A ball holds a point strictly inside its radius, as in the
    authors' code (clovaai/generative-evaluation-prdc). Written here because torch-fidelity
    and torchmetrics have neither metric and the authors' code builds the full N x M
    distance matrix, which 50,000 x 50,000 samples cannot afford; this goes in chunks."""
    if len(real) <= k:
        raise GanlabError(f"density/coverage with k={k} needs > {k} real samples, got {len(real)}")
    # Radius of each real ball: distance to its k-th nearest other real sample (the nearest,
    # at distance 0, is itself), as torch-fidelity computes the precision/recall radii.
    radii = torch.cat([calc_cdist_part(part, real, batch_size).kthvalue(k + 1).values
                       for part in real.split(batch_size)]).to(real.device)  # (N,)
    held = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    inside = 0
    for part in fake.split(batch_size):
        hits = torch.cdist(real, part) < radii[:, None]  # (N, b)
        inside += int(hits.sum())
        held |= hits.any(1)
    return inside / (k * len(fake)), held.double().mean().item()


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


def feature_metrics(
    stats: dict[str, Any],
    fake_f: Tensor,
    fake_logits: Tensor | None,
    net: FeatureNet,
    *,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    is_splits: int = 10,
    k: int = 3,
    dc_k: int = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of generated features against the reference ``stats`` of ``net``, and the
    protocol that produced them; the k-NN metrics run on ``device``."""
    meta = stats["meta"]
    if meta["feature_net_sha256"] != net.sha256:
        raise GanlabError(
            f"reference stats of {meta['data']}/{meta['split']} were computed with another "
            f"{meta['feature_net']} network; delete the stats file to recompute it"
        )
    real_f = stats["features"]
    fake_mu, fake_sigma = gaussian(fake_f)
    metrics = {net.fd_name: fid_from_stats(stats["mu"], stats["sigma"], fake_mu, fake_sigma)}
    metrics["kid_mean"], metrics["kid_std"] = kid(real_f, fake_f, kid_subset_size, kid_subsets,
                                                  seed)
    if fake_logits is not None:
        metrics["is_mean"], metrics["is_std"] = inception_score(fake_logits, is_splits, seed)
    real_d, fake_d = real_f.to(device), fake_f.to(device)
    metrics["precision"], metrics["recall"] = precision_recall(real_d, fake_d, k)
    metrics["density"], metrics["coverage"] = density_coverage(real_d, fake_d, dc_k)
    if net.class_coverage and fake_logits is not None:
        metrics |= class_coverage(fake_logits, stats["class_counts"])
    protocol = {
        "feature_net": net.name,
        "feature_net_sha256": net.sha256,
        "data": meta["data"],
        "data_sha256": meta.get("content_sha256"),
        "split": meta["split"],
        "num_real": len(real_f),
        "num_fake": len(fake_f),
        "statistics_dtype": "float64",
        "kid_subset_size": kid_subset_size,
        "kid_subsets": kid_subsets,
        "is_splits": is_splits if fake_logits is not None else None,
        "pr_k": k,
        "dc_k": dc_k,
    }
    if net.file_sha256 is not None:
        protocol["weights_file_sha256"] = net.file_sha256
    return metrics, protocol


def image_metrics(
    real: Tensor | dict[str, Any],
    fake: Tensor,
    net: FeatureNet,
    *,
    split: str = "test",
    batch_size: int = 256,
    **options: Any,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of fake images against real ones, both (N, C, H, W) in [-1, 1].

    `real` is either the real images (of `split`) or their stats from `reference_stats` /
    `load_or_compute_reference_stats`. Returns the metrics (`fid` or `fd_dinov2`,
    `kid_mean`, `kid_std`, `is_mean`, `is_std` (not for DINOv2), `precision`, `recall`,
    `density`, `coverage`, and `classes_generated`, `class_kl` for the classifier) and the
    protocol; ``options`` are those of ``feature_metrics`` (KID and IS draw their subsets
    and splits from ``seed``, so the numbers are reproducible).
    """
    stats = reference_stats(real, net, data="", split=split) if isinstance(real, Tensor) else real
    fake_f, fake_logits = extract(net, fake, batch_size)
    return feature_metrics(stats, fake_f, fake_logits, net, **options)
