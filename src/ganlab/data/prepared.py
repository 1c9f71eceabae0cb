"""A data set prepared once by ``python -m ganlab.prepare`` (or StyleGAN's dataset_tool.py):
held in memory when it fits ``memory_limit``, streamed from disk otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ganlab.data.base import Batch
from ganlab.data.images import ImageDataModule, to_model_space
from ganlab.data.memory import default_limit, human, parse_size
from ganlab.data.store import StoredSet, open_set, read_images
from ganlab.errors import GanlabError
from ganlab.options import BOOL, at_least, check
from ganlab.registry import registered

log = logging.getLogger(__name__)


@registered("data")
class PreparedDataModule(ImageDataModule):
    """The images (and labels) of a prepared set at ``path``: a zip in the StyleGAN2-ADA layout
    or a litdata folder.

    The set is held in memory as uint8 on the training device (sampled in seeded passes, as
    every in-memory set) when it takes at most ``memory_limit`` (``auto``: see
    ganlab.data.memory); a larger litdata set is streamed by litdata's loader in ``workers``
    processes (ganlab.data.stream). ``xflip`` doubles the set with mirrored images. With
    ``num_classes`` null the labels are not used; otherwise it must be the set's number of
    classes. ``limit``: a seeded subset, as for every in-memory set. Split "test" is the
    training set; on the streaming path ``tensors()`` gives the
    first ``reference_images`` images (the real images that evaluation compares with).
    """

    name = "prepared"

    def __init__(
        self,
        path: str,
        image_size: int = 64,
        channels: int = 3,
        batch_size: int = 64,
        shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        xflip: bool = False,
        memory_limit: str | int = "auto",
        workers: int = 2,
        reference_images: int = 10000,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        super().__init__(batch_size, image_size, channels, shape, num_classes, seed, limit)
        check(isinstance(xflip, bool), "xflip", xflip, BOOL)
        self.xflip = xflip
        self.memory_limit = parse_size(memory_limit)
        self.workers = at_least(workers, "workers", 0)
        self.reference_images = at_least(reference_images, "reference_images")
        self.stored = open_set(path)
        self._check_stored(self.stored)
        self.class_names = self.stored.class_names
        self._stream: Any = None  # a LitdataStream on the streaming path
        self._stream_state: dict[str, Any] | None = None

    def _check_stored(self, stored: StoredSet) -> None:
        got = (stored.image_size, stored.channels)
        if got != (self.image_size, self.channels):
            raise GanlabError(
                f"data.path={stored.path} holds {got[0]}x{got[0]} images with {got[1]} "
                f"channel(s) but the config asks for data.image_size={self.image_size} "
                f"data.channels={self.channels}; set data.image_size={got[0]} "
                f"data.channels={got[1]}, or prepare the set again with those sizes")
        if self.num_classes is not None and self.num_classes != stored.num_classes:
            raise GanlabError(
                f"data.num_classes={self.num_classes} but data.path={stored.path} has "
                f"{stored.num_classes or 'no'} classes; set data.num_classes="
                f"{stored.num_classes or 'null'}")

    @property
    def content_sha256(self) -> str | None:
        """The hash of the set's content (None for a zip from elsewhere not read yet)."""
        return self.stored.content_sha256

    @property
    def streaming(self) -> bool:
        limit = self.memory_limit if self.memory_limit is not None else default_limit(self.device)
        if self.stored.nbytes <= limit:
            return False
        if self.stored.layout != "litdata":
            raise GanlabError(
                f"data.path={self.stored.path} takes {human(self.stored.nbytes)}, more than "
                f"data.memory_limit ({human(limit)}), and a zip cannot be streamed; prepare it "
                f"with python -m ganlab.prepare source={self.stored.path} output=NEW_PATH "
                "format=litdata, or raise data.memory_limit")
        return True

    @property
    def sharded_by_loader(self) -> bool:
        return self._stream is not None

    def _load(self) -> None:
        if self.streaming:
            if self.limit is not None:
                raise GanlabError(f"data.limit={self.limit} needs the set in memory but data.path="
                                  f"{self.stored.path} is streamed; raise data.memory_limit or "
                                  "prepare a smaller set")
            from ganlab.data.stream import LitdataStream

            self._stream = LitdataStream(self.stored, self.seed, self.workers, self.xflip)
            if self._stream_state is not None:
                self._stream.restore(self._stream_state)
            log.info("prepared: streaming %d images (%s) from %s with %d worker(s)",
                     self.stored.images, human(self.stored.nbytes), self.stored.path,
                     self.workers)
        else:
            super()._load()

    def _read_split(self, split: str) -> Batch:
        if split == "test":
            return self._split("train")
        count = self.reference_images if self._stream is not None else None
        x, y = read_images(self.stored, count, self.workers)
        log.info("prepared: loaded %d images from %s", len(x), self.stored.path)
        return x, y if self.num_classes is not None else None

    # Sampling: in memory (ImageDataModule's passes, over the mirrored images too), or streamed.

    def _pass_size(self, stored: int) -> int:
        return 2 * stored if self.xflip else stored

    def _gather(self, x: Tensor, y: Tensor | None, idx: Tensor) -> Batch:
        if not self.xflip:
            return super()._gather(x, y, idx)
        mirror = idx >= len(x)  # pass indices n..2n-1 are the mirrored images
        idx = torch.where(mirror, idx - len(x), idx)
        images = x[idx]
        images = torch.where(mirror.view(-1, 1, 1, 1), images.flip(-1), images)
        return to_model_space(images), None if y is None else y[idx]

    def _draw(self, n: int, device: torch.device) -> Batch:
        if self._stream is None:
            return super()._draw(n, device)
        x, y = self._stream.next(n, device)
        return x, y if self.num_classes is not None else None

    def _sampler_state(self) -> dict[str, Any]:
        if self._stream is None:
            return super()._sampler_state()
        return self._stream.state()

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        if "loader" not in state:
            return super()._restore_sampler(state)
        self._stream_state = state
        if self._stream is not None:
            self._stream.restore(state)

