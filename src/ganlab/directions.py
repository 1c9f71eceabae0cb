"""Which way each metric is better, for best.ckpt, sweepers and reports; kept apart from
ganlab.evaluation so that a report does not import torch and Lightning (10 s) to read it."""

from __future__ import annotations

from ganlab.errors import GanlabError

LOWER_IS_BETTER = {"fid", "fd_dinov2", "kid_mean", "reverse_kl", "class_kl"}
HIGHER_IS_BETTER = {
    "modes", "hq_fraction", "is_mean", "precision", "recall", "density", "coverage",
    "classes_generated", "class_accuracy",
}


def metric_mode(name: str) -> str:
    """'min' or 'max' for a metric name such as ``metrics/fid``."""
    short = name.split("/")[-1]
    if short in LOWER_IS_BETTER:
        return "min"
    if short in HIGHER_IS_BETTER:
        return "max"
    known = ", ".join(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER))
    raise GanlabError(f"unknown metric {name!r}; known metrics: {known}")
