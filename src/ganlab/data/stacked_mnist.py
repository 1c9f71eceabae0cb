"""Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): three MNIST digits as the R, G and B
channels of one image, so the data has 10^3 = 1,000 modes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ganlab.data.base import Batch
from ganlab.data.images import ImageDataModule, TorchvisionDataModule
from ganlab.errors import GanlabError
from ganlab.options import at_least
from ganlab.registry import registered


@registered("data")
class StackedMNISTDataModule(ImageDataModule):
    """Each sample stacks three MNIST images drawn uniformly at random; its label is the
    mode ``100 * d_R + 10 * d_G + d_B``. The triples are fixed per split (seeded
    independently of the run's seed), so every run trains and is scored on the same set.
    """

    name = "stacked_mnist"
    stacked_digits = True  # the evaluator classifies each channel with an MNIST classifier

    def __init__(
        self,
        root: str,
        download: bool = True,
        image_size: int = 32,
        channels: int = 3,
        batch_size: int = 64,
        num_samples: int | None = None,
        shape: Sequence[int] | None = None,
        num_classes: int | None = 1000,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if channels != 3 or num_classes != 1000:
            raise GanlabError(
                f"stacked_mnist has 3 channels and 1000 modes, not data.channels={channels} "
                f"and data.num_classes={num_classes}; leave both at their defaults"
            )
        super().__init__(batch_size, image_size, 3, shape, 1000, seed, limit)
        self.root = str(Path(root).expanduser())
        self.download = bool(download)
        self.num_samples = None if num_samples is None else at_least(num_samples, "num_samples")

    def mnist(self) -> TorchvisionDataModule:
        """Plain MNIST at the same size: the source digits and the per-channel classifier's data."""
        return TorchvisionDataModule("mnist", self.root, self.download, self.image_size, 1,
                                     self.batch_size)

    def _read_split(self, split: str) -> Batch:
        x, y = self.mnist()._read_split(split)  # (N, 1, H, W) uint8 digits
        n = self.num_samples or len(x)
        g = torch.Generator().manual_seed(1000 + (split == "test"))
        idx = torch.randint(len(x), (n, 3), generator=g)  # (n, 3) MNIST indices per channel
        stacked = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)  # (n, 3, H, W)
        labels = 100 * y[idx[:, 0]] + 10 * y[idx[:, 1]] + y[idx[:, 2]]
        return stacked.contiguous(), labels
