"""Image data sets held in memory as one uint8 tensor: digits, torchvision sets, a folder."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets

from ganlab.data.base import Batch, GanDataModule
from ganlab.errors import GanlabError
from ganlab.options import at_least, check, is_int
from ganlab.registry import registered

log = logging.getLogger(__name__)

# Images converted per call when resizing, which bounds the float working memory.
_CHUNK = 4096


def to_model_space(x: Tensor) -> Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def _to_uint8(x: Tensor) -> Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _resize(x: Tensor, size: int) -> Tensor:
    """(N, C, h, w) uint8 -> (N, C, size, size) uint8."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return torch.cat(
        [
            _to_uint8(
                F.interpolate(
                    chunk.float(),
                    (size, size),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )
            )
            for chunk in x.split(_CHUNK)
        ]
    )


def _convert_channels(x: Tensor, channels: int) -> Tensor:
    """(N, C, H, W) uint8 with C in {1, 3} -> (N, channels, H, W) uint8."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601, as PIL's "L"
    return torch.cat(
        [_to_uint8((chunk.float() * luma).sum(1, keepdim=True)) for chunk in x.split(_CHUNK)]
    )


def format_images(x: Tensor, image_size: int, channels: int) -> Tensor:
    """(N, C, h, w) uint8 -> contiguous (N, channels, image_size, image_size) uint8."""
    # To gray before resizing, to RGB after, so the resize sees the fewest channels.
    if channels < x.shape[1]:
        return _resize(_convert_channels(x, channels), image_size).contiguous()
    return _convert_channels(_resize(x, image_size), channels).contiguous()


class ImageDataModule(GanDataModule):
    """A finite image set, sampled without replacement in passes.

    Each pass is a new permutation from a generator seeded with ``seed``; the tail of a
    pass too short for a batch is dropped. ``limit``: training draws from a subset of that
    many images, the same for the same seed; ``tensors`` (the metrics' reference) keeps the
    whole split. Images are stored as uint8 and converted to
    [-1, 1] after gathering, on the training device.
    """

    def __init__(
        self,
        batch_size: int,
        image_size: int,
        channels: int,
        shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        check(channels in (1, 3) and is_int(channels), "channels", channels,
              "images have 1 or 3 channels")
        image_size = at_least(image_size, "image_size")
        if shape is None:
            shape = [channels, image_size, image_size]
        super().__init__(batch_size, shape, num_classes, seed)
        # A seeded subset of the training images (small-data regimes); None: all of them.
        self.limit = None if limit is None else at_least(limit, "limit")
        self.image_size = int(image_size)
        self.channels = int(channels)
        self._splits: dict[str, Batch] = {}  # uint8 images and labels, on CPU
        self._train_on_device: tuple[torch.device, Tensor, Tensor | None] | None = None
        self._generator = torch.Generator().manual_seed(self.seed)
        self._pass_start: Tensor | None = None  # generator state that drew the current pass
        self._perm: Tensor | None = None  # None: not drawn yet, or to replay from _pass_start
        self._pos = 0

    @abstractmethod
    def _read_split(self, split: str) -> Batch:
        """(N, channels, image_size, image_size) uint8 images and int64 labels or None."""

    def _split(self, split: str) -> Batch:
        if split not in self._splits:
            x, y = self._read_split(split)
            self._check_shape(x.shape[1:])
            self._splits[split] = (x, y)
        return self._splits[split]

    def _load(self) -> None:
        x, _ = self._split("train")
        if self.limit is not None and self.limit > len(x):
            raise GanlabError(f"data.limit={self.limit} is larger than the {len(x)} training "
                              f"images of {self.name}; choose at most {len(x)}, or null for all")

    def _tensors(self, split: str) -> Batch:
        x, y = self._split(split)
        return to_model_space(x), y

    def _train_data(self, device: torch.device) -> tuple[Tensor, Tensor | None]:
        if self._train_on_device is None or self._train_on_device[0] != device:
            x, y = self._split("train")
            if self.limit is not None:  # the same images for the same seed, in stored order
                keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
                keep = keep[: self.limit].sort().values
                x, y = x[keep], None if y is None else y[keep]
            self._train_on_device = (device, x.to(device), None if y is None else y.to(device))
        return self._train_on_device[1:]

    def _draw(self, n: int, device: torch.device) -> Batch:
        x, y = self._train_data(device)
        size = self._pass_size(len(x))
        if self._perm is None and self._pass_start is not None:  # restored inside a pass
            self._generator.set_state(self._pass_start)
            self._perm = torch.randperm(size, generator=self._generator).to(device)
        if self._perm is None or self._pos + n > size:
            if n > size:
                raise GanlabError(
                    f"a training step needs batch_size * n_critic = {n} samples but {self.name} "
                    f"has only {size} training samples; lower data.batch_size or n_critic"
                )
            self._pass_start = self._generator.get_state()
            self._perm = torch.randperm(size, generator=self._generator).to(device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + n]
        self._pos += n
        return self._gather(x, y, idx)

    def _pass_size(self, stored: int) -> int:  # a subclass may add mirrored images
        return stored

    def _gather(self, x: Tensor, y: Tensor | None, idx: Tensor) -> Batch:
        """The samples at pass indices ``idx``, in model space."""
        return to_model_space(x[idx]), None if y is None else y[idx]

    def _sampler_state(self) -> dict[str, Any]:
        if self._pass_start is None:
            return {"generator": self._generator.get_state(), "position": None}
        return {"generator": self._pass_start, "position": self._pos}

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        if state["position"] is None:
            self._generator.set_state(state["generator"])
            self._pass_start, self._pos = None, 0
        else:
            self._pass_start, self._pos = state["generator"], int(state["position"])
        self._perm = None


def _check_num_classes(name: str, num_classes: int | None, expected: int | None) -> None:
    if num_classes != expected:
        want = "null" if expected is None else expected
        raise GanlabError(
            f"data.num_classes is {num_classes} but {name} has {expected or 'no'} classes; "
            f"set data.num_classes={want}"
        )


@registered("data")
class DigitsDataModule(ImageDataModule):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download).

    Split: stratified 80/20 (1,437 train, 360 test) with a fixed random_state.
    """

    name = "digits"
    class_names = [str(i) for i in range(10)]

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int = 32,
        channels: int = 1,
        shape: Sequence[int] | None = None,
        num_classes: int | None = 10,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        _check_num_classes(self.name, num_classes, 10)
        super().__init__(batch_size, image_size, channels, shape, num_classes, seed, limit)

    def _read_split(self, split: str) -> Batch:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) * (255 / 16)
        labels = torch.as_tensor(digits.target, dtype=torch.int64)
        train, test = train_test_split(
            np.arange(len(labels)), test_size=0.2, stratify=digits.target, random_state=0
        )
        idx = torch.as_tensor(train if split == "train" else test)
        return format_images(_to_uint8(images[idx]), self.image_size, self.channels), labels[idx]


_CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                    "ship", "truck"]
_TORCHVISION = {
    "mnist": datasets.MNIST,
    "fashion_mnist": datasets.FashionMNIST,
    "cifar10": datasets.CIFAR10,
}


@registered("data")
class TorchvisionDataModule(ImageDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10 read by torchvision from (or downloaded into) ``root``."""

    def __init__(
        self,
        name: str,
        root: str,
        download: bool = True,
        image_size: int = 32,
        channels: int | None = None,
        batch_size: int = 64,
        shape: Sequence[int] | None = None,
        num_classes: int | None = 10,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if name not in _TORCHVISION:
            raise GanlabError(
                f"unknown torchvision data set {name!r}; use one of {', '.join(_TORCHVISION)}"
            )
        _check_num_classes(name, num_classes, 10)
        if channels is None:
            channels = 3 if name == "cifar10" else 1
        super().__init__(batch_size, image_size, channels, shape, num_classes, seed, limit)
        self.name = name
        # MNIST's and Fashion-MNIST's torchvision classes carry their names; CIFAR-10 reads
        # them from its files.
        self.class_names = getattr(_TORCHVISION[name], "classes", None) or (
            _CIFAR10_CLASSES if name == "cifar10" else None)
        self.root = str(Path(root).expanduser())
        check(isinstance(download, bool), "download", download, "it must be true or false")
        self.download = download

    def _read_split(self, split: str) -> Batch:
        try:
            ds = _TORCHVISION[self.name](self.root, train=split == "train", download=self.download)
        except (RuntimeError, OSError) as err:
            # torchvision raises RuntimeError for missing files and for failed MNIST
            # downloads, URLError (an OSError) for failed CIFAR downloads.
            raise GanlabError(self._missing_files_message()) from err
        x = torch.as_tensor(ds.data)  # MNIST: (N, H, W) tensor; CIFAR: (N, H, W, C) array
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        return format_images(x, self.image_size, self.channels), y

    def _missing_files_message(self) -> str:
        cls = _TORCHVISION[self.name]
        if issubclass(cls, datasets.MNIST):
            folder = Path(self.root, cls.__name__, "raw")
            files = [Path(url).stem for url, _ in cls.resources]  # the names without .gz
            files_hint = f"{', '.join(files)} (or their .gz archives, with data.download=true)"
        else:
            folder = Path(self.root, cls.base_folder)
            files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
            files_hint = f"{', '.join(files)} (from {cls.filename})"
        cause = "the download failed" if self.download else "data.download is false"
        return (
            f"{self.name} data not found in {folder} and {cause}; put {files_hint} there, "
            "or connect to the network with data.download=true"
        )
