"""Stacked digits: an offline Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN) made of
scikit-learn's bundled 8x8 digits, three of them as the R, G and B channels of one image, so
the data has 10^3 = 1,000 modes and needs no download."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ganlab.data.base import Batch
from ganlab.data.images import DigitsDataModule, ImageDataModule
from ganlab.errors import GanlabError
from ganlab.options import at_least
from ganlab.registry import registered


@registered("data")
class StackedDigitsDataModule(ImageDataModule):
    """Each sample stacks three digits drawn uniformly at random from the split (1,437
    training digits, 360 held out; digits' fixed 80/20 split); its label is the mode
    ``100 * d_R + 10 * d_G + d_B``. ``num_samples`` triples per split, fixed (seeded
    independently of the run's seed), so every run trains and is scored on the same set.

    Scored as stacked_mnist is (ganlab.evaluation): each channel classified by ganlab's
    digits classifier, modes hit and KL to uniform over the 1,000 modes. The evaluator
    finds the single-channel data the classifier is trained on through ``mnist()``.
    """

    name = "stacked_digits"
    stacked_digits = True  # the evaluator classifies each channel with a digit classifier

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int = 32,
        channels: int = 3,
        num_samples: int = 30000,
        shape: Sequence[int] | None = None,
        num_classes: int | None = 1000,
        seed: int = 0,
    ) -> None:
        if channels != 3 or num_classes != 1000:
            raise GanlabError(
                f"stacked_digits has 3 channels and 1000 modes, not data.channels={channels} "
                f"and data.num_classes={num_classes}; leave both at their defaults"
            )
        super().__init__(batch_size, image_size, 3, shape, 1000, seed)
        self.num_samples = at_least(num_samples, "num_samples")

    def mnist(self) -> DigitsDataModule:
        """The single digits at the same size: the source of every channel and the data of
        the per-channel classifier (named as stacked_mnist's, which the evaluator calls)."""
        return DigitsDataModule(self.batch_size, self.image_size, 1)

    def _read_split(self, split: str) -> Batch:
        x, y = self.mnist()._read_split(split)  # (N, 1, H, W) uint8 digits
        g = torch.Generator().manual_seed(2000 + (split == "test"))
        idx = torch.randint(len(x), (self.num_samples, 3), generator=g)  # digits per channel
        stacked = torch.cat([x[idx[:, c]] for c in range(3)], dim=1)  # (n, 3, H, W)
        labels = 100 * y[idx[:, 0]] + 10 * y[idx[:, 1]] + y[idx[:, 2]]
        return stacked.contiguous(), labels
