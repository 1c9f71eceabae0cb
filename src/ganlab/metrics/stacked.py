"""Stacked MNIST's mode count (VEEGAN sec. 5.2, PacGAN sec. 5.2): each channel classified by
ganlab's MNIST classifier; a mode is a digit triple."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def stacked_classifier(datamodule: Any, cache_dir: Path) -> tuple[torch.nn.Module, float]:
    """Stacked MNIST's channel classifier: ganlab's MNIST classifier, and its accuracy."""
    from ganlab.classifier import load_or_train_classifier

    mnist = datamodule.mnist()
    mnist.setup()
    net, accuracy, path = load_or_train_classifier(OmegaConf.create({}), mnist,
                                                   cache_dir / "classifiers")
    log.info("stacked MNIST channel classifier %s: held-out accuracy %.4f", path, accuracy)
    return net, accuracy


def stacked_modes(net: torch.nn.Module, accuracy: float, fake: torch.Tensor
                  ) -> tuple[dict[str, float], dict[str, Any]]:
    """Stacked MNIST: classify each channel with the MNIST classifier; a mode is a digit
    triple. Modes hit and KL(mode histogram || uniform over 1,000), as in VEEGAN sec. 5.2
    and PacGAN sec. 5.2 (26,000 samples there)."""
    from ganlab.classifier import predict

    digits = [predict(net, fake[:, c : c + 1]).cpu() for c in range(3)]  # 3 x (N,)
    modes = 100 * digits[0] + 10 * digits[1] + digits[2]  # (N,)
    p = torch.bincount(modes, minlength=1000).double() / len(modes)
    kl = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
    metrics = {"modes": int((p > 0).sum()), "reverse_kl": kl}
    proto = {"feature_net": "mnist_classifier", "classifier_accuracy": accuracy,
             "num_fake": len(fake)}
    return metrics, proto
