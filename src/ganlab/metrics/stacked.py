"""The stacked data sets' mode count (VEEGAN sec. 5.2, PacGAN sec. 5.2): each channel
classified by a classifier of the single digits (MNIST's for stacked_mnist, scikit-learn
digits' for stacked_digits); a mode is a digit triple."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def stacked_classifier(datamodule: Any, cache_dir: Path) -> tuple[torch.nn.Module, float, str]:
    """The channel classifier of a stacked data set (trained on its single-digit source: MNIST
    for stacked_mnist, scikit-learn's digits for stacked_digits), its held-out accuracy, and
    its name for the protocol (``mnist_classifier``, ``digits_classifier``)."""
    from ganlab.classifier import load_or_train_classifier

    mnist = datamodule.mnist()
    mnist.setup()
    net, accuracy, path = load_or_train_classifier(OmegaConf.create({}), mnist,
                                                   cache_dir / "classifiers")
    log.info("stacked channel classifier %s: held-out accuracy %.4f", path, accuracy)
    return net, accuracy, f"{mnist.name}_classifier"


def stacked_modes(net: torch.nn.Module, accuracy: float, fake: torch.Tensor, feature_net: str
                  ) -> tuple[dict[str, float], dict[str, Any]]:
    """Classify each channel with the channel classifier ``net`` (``feature_net``, its name
    from ``stacked_classifier``); a mode is a digit triple. Modes hit and KL(mode histogram
    || uniform over 1,000), as in VEEGAN sec. 5.2 and PacGAN sec. 5.2 (26,000 samples
    there)."""
    from ganlab.classifier import predict

    digits = [predict(net, fake[:, c : c + 1]).cpu() for c in range(3)]  # 3 x (N,)
    modes = 100 * digits[0] + 10 * digits[1] + digits[2]  # (N,)
    p = torch.bincount(modes, minlength=1000).double() / len(modes)
    kl = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
    metrics = {"modes": int((p > 0).sum()), "reverse_kl": kl}
    proto = {"feature_net": feature_net, "classifier_accuracy": accuracy,
             "num_fake": len(fake)}
    return metrics, proto
