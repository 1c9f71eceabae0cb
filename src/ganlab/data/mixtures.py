"""2-D Gaussian mixtures, the mode-collapse benchmarks of VEEGAN and PacGAN."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ganlab.data.base import Batch, GanDataModule
from ganlab.errors import GanlabError
from ganlab.options import at_least, positive
from ganlab.registry import registered

EVAL_SIZE = 10_000
# Evaluation samples do not depend on the run's seed, so every run is scored against the
# same reference points.
_SPLIT_SEEDS = {"train": 1_000_003, "test": 2_000_003}


class GaussianMixture(GanDataModule):
    """Equal-weight isotropic Gaussians around ``centers`` (M, 2), in data coordinates.

    Points are unlimited: every batch is a fresh draw. Model space is data space divided
    by ``scale``, so the modes fit the generator's tanh range. There are no labels.
    """

    name = "gaussian mixture"

    def __init__(
        self,
        centers: Tensor | Sequence[Sequence[float]],
        std: float,
        scale: float,
        batch_size: int,
        shape: Sequence[int] = (2,),
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_classes is not None:
            raise GanlabError(
                f"data.num_classes is {num_classes} but the {self.name} has no labels; "
                "set data.num_classes=null"
            )
        super().__init__(batch_size, shape, None, seed)
        self.centers = torch.as_tensor(centers, dtype=torch.float32)
        self.std = positive(std, "std")
        self.scale = positive(scale, "scale")
        self._generator = torch.Generator().manual_seed(self.seed)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` points in model space, (n, 2)."""
        modes = torch.randint(len(self.centers), (n,), generator=generator)
        noise = torch.randn(n, self.centers.shape[1], generator=generator)
        return (self.centers[modes] + self.std * noise) / self.scale

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.scale

    def _load(self) -> None:
        self._check_shape(self.centers.shape[1:])

    def _draw(self, n: int, device: torch.device) -> Batch:
        x = self.sample(n, self._generator)  # (n, 2) on the CPU
        if device.type == "cuda":  # from pageable memory the copy would wait for the GPU
            x = x.pin_memory()
        return x.to(device, non_blocking=True), None

    def _tensors(self, split: str) -> Batch:
        return self.sample(EVAL_SIZE, torch.Generator().manual_seed(_SPLIT_SEEDS[split])), None

    def _sampler_state(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])


@registered("data")
class Ring(GaussianMixture):
    """``num_modes`` Gaussians evenly spaced on a circle, the first at angle 0."""

    name = "ring"

    def __init__(
        self,
        batch_size: int,
        num_modes: int = 8,
        radius: float = 2.0,
        std: float = 0.02,
        scale: float = 2.5,
        shape: Sequence[int] = (2,),
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        num_modes, radius = at_least(num_modes, "num_modes"), positive(radius, "radius")
        angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
        centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        super().__init__(centers, std, scale, batch_size, shape, num_classes, seed)


@registered("data")
class Grid(GaussianMixture):
    """``grid_size`` x ``grid_size`` Gaussians on a square grid centred at the origin."""

    name = "grid"

    def __init__(
        self,
        batch_size: int,
        grid_size: int = 5,
        spacing: float = 2.0,
        std: float = 0.05,
        scale: float = 5.0,
        shape: Sequence[int] = (2,),
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        grid_size, spacing = at_least(grid_size, "grid_size"), positive(spacing, "spacing")
        ticks = spacing * (torch.arange(grid_size, dtype=torch.float32) - (grid_size - 1) / 2)
        centers = torch.cartesian_prod(ticks, ticks)
        super().__init__(centers, std, scale, batch_size, shape, num_classes, seed)
