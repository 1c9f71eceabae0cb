"""A saved generator and the checked facts about it, read from a checkpoint
(ganlab.checkpoint) or an export folder (ganlab.generator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ganlab import registry

REFUSED_HINT = "only ganlab networks with plain arguments are loaded"


@dataclass
class StoredGenerator:
    """A saved generator in eval mode on the CPU (EMA weights when the run had them), and the
    checked facts about it that the commands need."""

    net: nn.Module
    model: str  # the model's name in the run's config (dcgan, stylegan, ...)
    latent_dim: int | None  # None: an image-to-image model, which has no latent space
    ema: bool
    g_steps: int
    truncation: float | None = None  # the model's default truncation psi (stylegan)
    scale: float = 1.0  # 2-D data: generated points in [-1, 1] times this are data coordinates
    data: dict[str, Any] = field(default_factory=dict)  # the run's data node (unchecked)
    images_seen: int = 0
    class_names: list[str] | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)  # see evaluation_settings
    seed: int = 0  # the run's seed

    @property
    def num_classes(self) -> int | None:
        return getattr(self.net, "num_classes", None)


_MISSING = object()


def stored_value(config: Any, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
    """``config[key]`` (a dotted key) of a config read from a file, checked to be of ``kind``
    (bool never passes for int or float); ``default`` when it is absent, else Refused. A list
    must be plain data; a dict is returned as it is, to be read through this function or
    built through ``registry.build``, which check what they take from it."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise registry.Refused(f"{key} is not allowed (it is missing)")
            return default
        node = node[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(node, kinds) and not (isinstance(node, bool) and bool not in kinds)
    if not ok:
        wanted = " or ".join(k.__name__ for k in kinds)
        raise registry.Refused(f"{key} is not allowed (a {type(node).__name__}, not {wanted})")
    if isinstance(node, list):
        registry.check_plain(node, key)
    return node


# Evaluation options a saved run may carry, and their types; paths (weights_path, the data
# folder) are never taken from a file, only from the command line. weights_sha256 travels so
# that a run evaluated with evaluation=paper is re-evaluated with the published weights only.
EVALUATION_OPTIONS = {"feature_net": str, "num_samples": int, "reference_split": str,
                      "kid_subset_size": int, "precision_recall_k": int,
                      "density_coverage_k": int, "weights_sha256": str}


def evaluation_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The typed evaluation options of a run's config (its ``evaluation`` node) or of an
    export's config.json; Refused for a value of the wrong type."""
    stored = stored_value(config, "evaluation", (dict, type(None)), None) or {}
    settings: dict[str, Any] = {"feature_net": "classifier"}
    for key, kind in EVALUATION_OPTIONS.items():
        if stored.get(key) is not None:
            settings[key] = stored_value(stored, key, kind)
    return settings
