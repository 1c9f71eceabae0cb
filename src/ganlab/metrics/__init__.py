"""Evaluation metrics: mode coverage for 2-D mixtures, FID/KID/IS/precision/recall for images."""

from ganlab.metrics.features import (
    FEATURE_NETS,
    ClassifierFeatures,
    FeatureNet,
    InceptionFeatures,
    build_feature_net,
    extract,
    inception_weights_file,
    weights_sha256,
)
from ganlab.metrics.fidelity import (
    class_coverage,
    fid,
    image_metrics,
    inception_score,
    kid,
    precision_recall,
)
from ganlab.metrics.mixture import mode_coverage
from ganlab.metrics.reference import (
    load_or_compute_reference_stats,
    load_reference_stats,
    reference_stats,
    reference_stats_path,
    save_reference_stats,
)

__all__ = [
    "FEATURE_NETS",
    "ClassifierFeatures",
    "FeatureNet",
    "InceptionFeatures",
    "build_feature_net",
    "class_coverage",
    "extract",
    "fid",
    "image_metrics",
    "inception_score",
    "inception_weights_file",
    "kid",
    "load_or_compute_reference_stats",
    "load_reference_stats",
    "mode_coverage",
    "precision_recall",
    "reference_stats",
    "reference_stats_path",
    "save_reference_stats",
    "weights_sha256",
]
