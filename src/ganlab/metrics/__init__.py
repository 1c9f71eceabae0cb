"""Evaluation metrics: mode coverage for 2-D mixtures; FID (FD), KID, IS, precision/recall and
density/coverage for images."""

from ganlab.metrics.features import (
    FEATURE_NETS,
    INCEPTION_SHA256,
    ClassifierFeatures,
    DinoV2Features,
    FeatureNet,
    InceptionFeatures,
    build_feature_net,
    extract,
    file_sha256,
    inception_weights_file,
    weights_sha256,
)
from ganlab.metrics.fidelity import (
    class_coverage,
    density_coverage,
    feature_metrics,
    fid,
    fid_from_stats,
    gaussian,
    image_metrics,
    inception_score,
    kid,
    precision_recall,
)
from ganlab.metrics.mixture import mode_coverage
from ganlab.metrics.reference import (
    content_sha256,
    load_or_compute_reference_stats,
    load_reference_stats,
    reference_stats,
    reference_stats_path,
    save_reference_stats,
)

__all__ = [
    "FEATURE_NETS",
    "INCEPTION_SHA256",
    "ClassifierFeatures",
    "DinoV2Features",
    "FeatureNet",
    "InceptionFeatures",
    "build_feature_net",
    "class_coverage",
    "content_sha256",
    "density_coverage",
    "extract",
    "feature_metrics",
    "fid",
    "fid_from_stats",
    "file_sha256",
    "gaussian",
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
