"""Two unpaired image domains for image-to-image translation (CycleGAN).

Batches and ``tensors(split)`` are ``(a, b)``: images of domain A and of domain B, drawn by
two independent samplers, so no image of A is ever paired with a particular image of B.
The domains are two image folders (``data.path_a``, ``data.path_b``) or, when neither is
set, a built-in pair made offline from scikit-learn's digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ganlab.data.base import Batch, GanDataModule
from ganlab.data.folder import ImageFolderDataModule
from ganlab.data.images import (
    DigitsDataModule,
    ImageDataModule,
    _to_uint8,
    format_images,
)
from ganlab.errors import GanlabError
from ganlab.registry import registered

# Domain B of the built-in pair: ink and paper colours (RGB) of the recoloured digits.
INK = (30, 60, 150)  # dark blue strokes
PAPER = (250, 235, 200)  # on cream


class RecolouredDigits(DigitsDataModule):
    """The digits with inverted, recoloured strokes: blue ink on cream paper instead of
    white on black. Pixel by pixel a fixed colour map of ``DigitsDataModule``'s images."""

    name = "digits_recoloured"

    def _read_split(self, split: str) -> Batch:
        x, y = super()._read_split(split)  # white on black, all channels equal
        ink = x[:, :1].float() / 255  # (N, 1, H, W) stroke intensity
        paper, pen = (torch.tensor(c, dtype=torch.float32).view(1, 3, 1, 1) for c in (PAPER, INK))
        rgb = paper + (pen - paper) * ink  # (N, 3, H, W) in [0, 255]
        return format_images(_to_uint8(rgb), self.image_size, self.channels), y


@registered("data")
class UnpairedDataModule(GanDataModule):
    """Domains A and B, each an ImageDataModule with its own sampler (seeds ``seed`` and
    ``seed + 1``). Folders have no held-out images: split "test" is the training images."""

    name = "unpaired"
    num_domains = 2

    def __init__(
        self,
        path_a: str | None = None,
        path_b: str | None = None,
        image_size: int = 32,
        channels: int = 3,
        batch_size: int = 4,
        shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        check_paths(path_a, path_b)
        if num_classes is not None:
            raise GanlabError(
                f"data.num_classes is {num_classes} but unpaired domains have no classes; "
                "set data.num_classes=null"
            )
        shape = list(shape) if shape is not None else [channels, image_size, image_size]
        super().__init__(batch_size, shape, None, seed)
        args = {
            "image_size": image_size,
            "channels": channels,
            "batch_size": batch_size,
            "shape": shape,
        }
        self.domains: tuple[ImageDataModule, ImageDataModule]
        if path_a is None:
            self.domains = (
                DigitsDataModule(**args, seed=seed),
                RecolouredDigits(**args, seed=seed + 1),
            )
        else:
            self.domains = (
                ImageFolderDataModule(path_a, **args, seed=seed),
                ImageFolderDataModule(path_b, **args, seed=seed + 1),
            )
            for domain, key in zip(self.domains, ("data.path_a", "data.path_b"), strict=True):
                domain.path_key = key

    def _load(self) -> None:
        for domain in self.domains:
            domain.setup()

    def _draw(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        return self.domains[0]._draw(n, device)[0], self.domains[1]._draw(n, device)[0]

    def _sampler_state(self) -> dict[str, Any]:
        return {"a": self.domains[0]._sampler_state(), "b": self.domains[1]._sampler_state()}

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        self.domains[0]._restore_sampler(state["a"])
        self.domains[1]._restore_sampler(state["b"])

    def _tensors(self, split: str) -> tuple[Tensor, Tensor]:
        return self.domains[0].tensors(split)[0], self.domains[1].tensors(split)[0]


def check_paths(path_a: str | None, path_b: str | None) -> None:
    """Both folders, or neither (the built-in digits pair)."""
    if (path_a is None) != (path_b is None):
        given, missing = ("path_a", "path_b") if path_b is None else ("path_b", "path_a")
        raise GanlabError(
            f"data.{missing} is not set but data.{given} is: set both to image folders, or "
            "neither for the built-in digits pair"
        )
