"""A saved generator and the checked facts about it, read from a checkpoint
(ganlab.checkpoint) or an export folder (ganlab.generator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

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

    @property
    def num_classes(self) -> int | None:
        return getattr(self.net, "num_classes", None)
