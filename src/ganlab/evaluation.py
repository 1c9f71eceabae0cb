"""Evaluation of a generator: the same code at the end of training, during training
(EvaluationCallback) and from a checkpoint (``python -m ganlab.evaluate``).

Every result carries its protocol (``protocol/*`` keys): feature network and checksum,
numbers of real and generated samples, reference split, step, seed, EMA or not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ganlab import distributed
from ganlab.data.base import SPLITS
from ganlab.errors import GanlabError
from ganlab.metrics.features import FEATURE_NETS
from ganlab.metrics.mixture import mode_coverage
from ganlab.options import at_least, check
from ganlab.rng import capture_rng_state, restore_rng_state
from ganlab.generator import generate

log = logging.getLogger(__name__)

# Which way is better, for best.ckpt and for sweepers.
LOWER_IS_BETTER = {"fid", "kid_mean", "reverse_kl", "class_kl"}
HIGHER_IS_BETTER = {
    "modes", "hq_fraction", "is_mean", "precision", "recall", "classes_generated", "class_accuracy"
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


@dataclass
class Evaluator:
    """Metrics of generated samples against one data set, with cached references.

    2-D Gaussian mixtures get mode coverage (VEEGAN / PacGAN); images get FID, KID, IS and
    precision/recall on the configured feature network, plus class coverage with ganlab's
    classifier. The feature network and the real statistics are built on first use and
    cached under ``cache_dir`` (the classifier in ``classifiers/``, statistics in
    ``reference/``).
    """

    cfg: Mapping[str, Any]  # the `evaluation` node
    datamodule: Any
    cache_dir: Path
    seed: int = 0

    def __post_init__(self) -> None:
        self._net = None
        self._stats = None
        get = self.cfg.get
        self.num_samples = at_least(get("num_samples", 2500), "evaluation.num_samples", 2)
        at_least(get("kid_subset_size", 1000), "evaluation.kid_subset_size")
        at_least(get("precision_recall_k", 3), "evaluation.precision_recall_k")
        name = get("feature_net") or "classifier"
        check(name in FEATURE_NETS, "evaluation.feature_net", name,
              f"it must be one of {', '.join(FEATURE_NETS)}")
        split = get("reference_split", "train")
        check(split in SPLITS, "evaluation.reference_split", split,
              f"it must be one of {', '.join(SPLITS)}")
        subset = get("kid_subset_size", 1000)
        if len(self.datamodule.shape) == 3 and not self._stacked and subset > self.num_samples:
            raise GanlabError(  # KID draws subsets of the generated samples
                f"evaluation.kid_subset_size={subset} is larger than evaluation.num_samples="
                f"{self.num_samples}; set evaluation.kid_subset_size={self.num_samples} or "
                "less, or evaluate more samples")

    @property
    def is_mixture(self) -> bool:
        return hasattr(self.datamodule, "centers")

    @property
    def _stacked(self) -> bool:
        return bool(getattr(self.datamodule, "stacked_digits", False))

    def prepare(self) -> None:
        """Build the feature network and the real statistics now (trained and cached on
        first use) rather than at the first evaluation. With several processes rank 0 goes
        first and the others then read its cache files. Training a classifier draws random
        numbers; the run's random state is left as it was."""
        state = capture_rng_state()
        try:
            if distributed.rank() == 0:
                self._prepare()
            distributed.barrier()
            if distributed.rank() != 0:
                self._prepare()
        finally:
            restore_rng_state(state)

    def _prepare(self) -> None:
        if self._net is not None or self.is_mixture:
            return
        if self._stacked:
            self._prepare_stacked()
        else:
            self._prepare_images()

    def _prepare_images(self) -> None:
        from ganlab.classifier import load_or_train_classifier
        from ganlab.metrics.features import build_feature_net
        from ganlab.metrics.reference import load_or_compute_reference_stats

        name = self.cfg.get("feature_net") or "classifier"
        classifier = None
        if name == "classifier":
            model, accuracy, path = load_or_train_classifier(
                OmegaConf.create({}), self.datamodule, self.cache_dir / "classifiers")
            log.info("evaluation classifier %s: held-out accuracy %.4f", path, accuracy)
            classifier = model
        self._net = build_feature_net(name, weights_path=self.cfg.get("weights_path"),
                                      classifier=classifier).eval()
        split = str(self.cfg.get("reference_split", "train"))
        real, _ = self.datamodule.tensors(split)
        self._stats = load_or_compute_reference_stats(
            real, self._net, self.cache_dir / "reference",
            data=getattr(self.datamodule, "name", "data"), split=split)

    def evaluate_generator(self, generator: torch.nn.Module, latent_dim: int, step: int,
                           ema: bool = False) -> dict[str, Any]:
        """Metrics of ``generator``'s samples for this evaluator's seed. A conditional G is
        asked for every class in turn, and the classifier's agreement with the requested
        class is reported as ``metrics/class_accuracy``."""
        k = getattr(generator, "num_classes", None)
        labels = None if not k else torch.arange(self.num_samples) % k

        def samples(n: int) -> torch.Tensor:
            # With several processes each rank runs G on its part of the same latents.
            z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(self.seed))
            return distributed.gather_generated(
                lambda part: generate(generator, latent_dim, len(z[part]), self.seed,
                                      labels=None if labels is None else labels[part],
                                      z=z[part]), n)

        return self(samples, step=step, ema=ema, labels=labels)

    def __call__(self, samples: Callable[[int], torch.Tensor], step: int,
                 ema: bool = False, labels: torch.Tensor | None = None) -> dict[str, Any]:
        """Evaluate ``samples(n)`` (model-space samples) and return flat, prefixed metrics;
        ``labels``: the classes a conditional G was asked for."""
        protocol: dict[str, Any] = {"step": step, "seed": self.seed, "ema": ema,
                                    "processes": distributed.world_size()}
        if self._stacked:
            metrics, proto = self._stacked_modes(samples(self.num_samples))
            protocol |= proto
        elif self.is_mixture:
            fake = self.datamodule.denormalize(samples(self.num_samples))
            metrics = mode_coverage(fake, self.datamodule.centers, self.datamodule.std)
            protocol |= {"num_fake": self.num_samples, "threshold_std": 3.0}
        else:
            from ganlab.metrics.fidelity import image_metrics

            if self._net is None:
                self._prepare_images()
            kid_subset = int(self.cfg.get("kid_subset_size", 1000))
            fake = samples(self.num_samples)
            metrics, proto = image_metrics(
                self._stats, fake, self._net,
                split=str(self.cfg.get("reference_split", "train")),
                kid_subset_size=kid_subset, k=int(self.cfg.get("precision_recall_k", 3)),
                seed=self.seed)
            protocol |= proto
            if labels is not None and self._net.class_coverage:
                from ganlab.metrics.features import extract

                _, logits = extract(self._net, fake)
                metrics["class_accuracy"] = (logits.argmax(1) == labels).double().mean().item()
        out = {f"metrics/{k}": float(v) for k, v in metrics.items()}
        out |= {f"protocol/{k}": v for k, v in protocol.items()}
        return out


    def _prepare_stacked(self) -> None:
        from ganlab.classifier import load_or_train_classifier

        mnist = self.datamodule.mnist()
        mnist.setup()
        self._net, accuracy, path = load_or_train_classifier(
            OmegaConf.create({}), mnist, self.cache_dir / "classifiers")
        log.info("stacked MNIST channel classifier %s: held-out accuracy %.4f", path, accuracy)
        self._accuracy = accuracy

    def _stacked_modes(self, fake: torch.Tensor) -> tuple[dict[str, float], dict[str, Any]]:
        """Stacked MNIST: classify each channel with the MNIST classifier; a mode is a digit
        triple. Modes hit and KL(mode histogram || uniform over 1,000), as in VEEGAN sec. 5.2
        and PacGAN sec. 5.2 (26,000 samples there)."""
        from ganlab.classifier import predict

        if self._net is None:
            self._prepare_stacked()
        digits = [predict(self._net, fake[:, c : c + 1]).cpu() for c in range(3)]  # 3 x (N,)
        modes = 100 * digits[0] + 10 * digits[1] + digits[2]  # (N,)
        p = torch.bincount(modes, minlength=1000).double() / len(modes)
        kl = float((p[p > 0] * (p[p > 0] * 1000).log()).sum())
        metrics = {"modes": int((p > 0).sum()), "reverse_kl": kl}
        proto = {"feature_net": "mnist_classifier", "classifier_accuracy": self._accuracy,
                 "num_fake": len(fake)}
        return metrics, proto


def build_evaluator(settings: Mapping[str, Any] | None, datamodule: Any,
                    cache_dir: str | Path, seed: int = 0, quiet: bool = False) -> Evaluator | None:
    """The evaluator of ``settings`` (the ``evaluation`` node) for a data module, or None with
    ``evaluation=none`` or when no metric applies (a warning says why unless ``quiet``)."""
    if not settings:
        return None
    if getattr(datamodule, "num_domains", 1) != 1:
        return None  # two image domains: a translation model, whose samples need an input
    labelled = getattr(datamodule, "num_classes", None) is not None
    if (not hasattr(datamodule, "centers") and not labelled
            and (settings.get("feature_net") or "classifier") == "classifier"):
        if not quiet:
            log.warning("no image metrics: %s has no labels for the classifier; use "
                        "evaluation=inception", getattr(datamodule, "name", "this data set"))
        return None
    return Evaluator(settings, datamodule, Path(cache_dir), seed=int(seed))


def final_metrics(module: Any, evaluator: Evaluator | None) -> dict[str, Any]:
    """Metrics of the trained generator (EMA weights when the module has them); none for a
    model that does not sample from noise."""
    if evaluator is None or not module.samples_from_noise:
        return {}
    evaluator.prepare()
    module.sync_buffers()
    generator, ema = module.eval_generator()
    return evaluator.evaluate_generator(generator, module.latent_dim, module.g_steps, ema)
