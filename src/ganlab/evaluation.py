"""Evaluation of a generator: the same code at the end of training, during training
(EvaluationCallback), from a checkpoint and of a file of samples (``python -m
ganlab.evaluate``).

Every result carries its protocol (``protocol/*`` keys): feature network and checksums
(weights, weights file, data content), numbers of real and generated samples, reference
split, step, seed, EMA or not, TF32 off. docs/EVALUATION.md describes each metric.
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
from ganlab.generator import generate
from ganlab.metrics.features import FEATURE_NETS, check_file_sha256, weights_file
from ganlab.metrics.mixture import mode_coverage
from ganlab.metrics.stacked import stacked_classifier, stacked_modes
from ganlab.options import BOOL, at_least, check
from ganlab.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

# Samples, as a function of the slice of range(num_samples) they are for.
Samples = Callable[[slice], torch.Tensor]


@dataclass
class Evaluator:
    """Metrics of generated samples against one data set, with cached references.

    2-D Gaussian mixtures get mode coverage (VEEGAN / PacGAN); images get FID (FD), KID, IS,
    precision/recall and density/coverage on the configured feature network, plus class
    coverage with ganlab's classifier. The feature network and the real statistics are built
    on first use and cached under ``cache_dir`` (the classifier in ``classifiers/``,
    statistics in ``reference/``, per data content). Generated images are made and scored
    in chunks, with TF32 off.
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
        at_least(get("density_coverage_k", 5), "evaluation.density_coverage_k")
        check(isinstance(get("progress", False), bool), "evaluation.progress",
              get("progress"), BOOL)
        sha = get("weights_sha256")
        check(sha is None or (isinstance(sha, str) and len(sha) == 64), "evaluation.weights_sha256",
              sha, "it must be null or the 64 hex digits of a sha256")
        name = get("feature_net") or "classifier"
        check(name in FEATURE_NETS, "evaluation.feature_net", name,
              f"it must be one of {', '.join(FEATURE_NETS)}")
        if name != "classifier" and len(self.datamodule.shape) == 3 and not self._stacked:
            # A missing or unpublished weights file fails now, before any training.
            check_file_sha256(weights_file(name, get("weights_path")), sha)
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

    @property
    def progress(self) -> bool:
        return bool(self.cfg.get("progress", False)) and distributed.rank() == 0

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
            self._net, self._accuracy, self._feature_net = stacked_classifier(self.datamodule,
                                                                              self.cache_dir)
        else:
            self._prepare_images()

    def _prepare_images(self) -> None:
        from ganlab.classifier import load_or_train_classifier
        from ganlab.metrics.features import build_feature_net
        from ganlab.metrics.reference import load_or_compute_reference_stats
        from ganlab.metrics.stream import full_precision, stream_features

        name = self.cfg.get("feature_net") or "classifier"
        classifier = None
        if name == "classifier":
            model, accuracy, path = load_or_train_classifier(
                OmegaConf.create({}), self.datamodule, self.cache_dir / "classifiers")
            log.info("evaluation classifier %s: held-out accuracy %.4f", path, accuracy)
            classifier = model
        net = build_feature_net(name, weights_path=self.cfg.get("weights_path"),
                                classifier=classifier,
                                weights_sha256=self.cfg.get("weights_sha256")).eval()
        # This process's GPU when there is one: InceptionV3 scores about 1 image a second on
        # 2 CPU cores, so evaluation=paper's 50,000 + 50,000 images need one.
        if torch.cuda.is_available():
            net = net.to(torch.device("cuda", torch.cuda.current_device()))
        split = str(self.cfg.get("reference_split", "train"))
        real, _ = self.datamodule.tensors(split)

        def features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return stream_features(net, lambda part: x[part], len(x), progress=self.progress,
                                   desc=f"reference {split}")

        with full_precision():
            self._stats = load_or_compute_reference_stats(
                real, net, self.cache_dir / "reference",
                data=getattr(self.datamodule, "name", "data"), split=split, extract_fn=features)
        self._net = net

    def evaluate_generator(self, generator: torch.nn.Module, latent_dim: int, step: int,
                           ema: bool = False) -> dict[str, Any]:
        """Metrics of ``generator``'s samples (no truncation) for this evaluator's seed. A
        conditional G is asked for every class in turn, and the classifier's agreement with
        the requested class is reported as ``metrics/class_accuracy``."""
        k = getattr(generator, "num_classes", None)
        labels = None if not k else torch.arange(self.num_samples) % k
        z = torch.randn(self.num_samples, latent_dim,
                        generator=torch.Generator().manual_seed(self.seed))

        def samples(part: slice) -> torch.Tensor:
            # With several processes each rank runs G on its part of the chunk's latents.
            zs, ls = z[part], None if labels is None else labels[part]
            return distributed.gather_generated(
                lambda sub: generate(generator, latent_dim, len(zs[sub]), self.seed,
                                     labels=None if ls is None else ls[sub], z=zs[sub]),
                len(zs))

        out = self.score(samples, step=step, ema=ema, labels=labels)
        return out | {"protocol/truncation_psi": 1.0}

    def __call__(self, samples: Callable[[int], torch.Tensor], step: int | None,
                 ema: bool | None = False, labels: torch.Tensor | None = None
                 ) -> dict[str, Any]:
        """Evaluate ``samples(n)`` (n model-space samples, made at once) and return flat,
        prefixed metrics; ``labels``: the classes a conditional G was asked for."""
        made: list[torch.Tensor] = []

        def part(where: slice) -> torch.Tensor:
            made[:] = made or [samples(self.num_samples)]
            return made[0][where]

        return self.score(part, step, ema, labels)

    def score(self, samples: Samples, step: int | None, ema: bool | None = False,
              labels: torch.Tensor | None = None, data_space: bool = False) -> dict[str, Any]:
        """Evaluate ``samples(slice)``, the samples of that slice of range(num_samples), made
        and scored chunk by chunk (model space; ``data_space``: 2-D points already in data
        coordinates); ``step`` and ``ema`` are None for samples from a file."""
        from ganlab.metrics.stream import full_precision

        protocol: dict[str, Any] = {"step": step, "seed": self.seed, "ema": ema,
                                    "processes": distributed.world_size(), "tf32": False}
        everything = slice(0, self.num_samples)
        with full_precision():
            if self._stacked:
                if self._net is None:
                    self._prepare()
                metrics, proto = stacked_modes(self._net, self._accuracy, samples(everything),
                                               self._feature_net)
                protocol |= proto
            elif self.is_mixture:
                fake = samples(everything)
                fake = fake if data_space else self.datamodule.denormalize(fake)
                metrics = mode_coverage(fake, self.datamodule.centers, self.datamodule.std)
                protocol |= {"num_fake": len(fake), "threshold_std": 3.0}
            else:
                metrics, proto = self._image_metrics(samples, labels)
                protocol |= proto
        out = {f"metrics/{k}": float(v) for k, v in metrics.items()}
        out |= {f"protocol/{k}": v for k, v in protocol.items()}
        return out

    def _image_metrics(self, samples: Samples, labels: torch.Tensor | None
                       ) -> tuple[dict[str, float], dict[str, Any]]:
        from ganlab.metrics.fidelity import feature_metrics
        from ganlab.metrics.stream import stream_features

        if self._net is None:
            self._prepare_images()
        fake_f, fake_logits = stream_features(self._net, samples, self.num_samples,
                                              progress=self.progress, desc="generated")
        metrics, proto = feature_metrics(
            self._stats, fake_f, fake_logits, self._net,
            kid_subset_size=int(self.cfg.get("kid_subset_size", 1000)),
            k=int(self.cfg.get("precision_recall_k", 3)),
            dc_k=int(self.cfg.get("density_coverage_k", 5)), seed=self.seed,
            device=next(self._net.parameters()).device)
        if labels is not None and self._net.class_coverage and fake_logits is not None:
            hits = fake_logits.argmax(1) == labels[: len(fake_logits)]
            metrics["class_accuracy"] = hits.double().mean().item()
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
