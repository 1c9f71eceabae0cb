"""The data module contract: an infinite, resumable stream of batches held in memory."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ganlab.errors import GanlabError
from ganlab.options import at_least, sizes

Batch = tuple[Tensor, Tensor | None]
SPLITS = ("train", "test")

# Lightning's fetcher draws one batch ahead of the training step; a few more cover any
# other look-ahead without keeping much (each entry is one generator state).
_HISTORY = 8


class GanDataModule(L.LightningDataModule, ABC):
    """Base of every ganlab data set.

    ``train_dataloader()`` is an endless iterable of ``(x, y)`` batches of
    ``batches_per_step * batch_size`` samples, drawn on the training device from data
    that is loaded once at ``setup()``. With several processes (DDP) every rank follows
    the same sampler and takes its own part of each draw, so the ranks see disjoint
    samples, ``batch_size`` is per process, and the sampler state is the same on every
    rank. ``state_dict()`` holds the sampler's position, so a
    run resumed from a checkpoint sees the batches the uninterrupted run would have seen.
    """

    name = "data"
    # Image domains per batch: 1 (samples, labels); 2 for unpaired translation data (a, b).
    num_domains = 1

    def __init__(
        self,
        batch_size: int,
        shape: Sequence[int],
        num_classes: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = at_least(batch_size, "batch_size")
        self.shape = sizes(shape, "shape")
        self.num_classes = None if num_classes is None else at_least(num_classes, "num_classes")
        self.seed = int(seed)
        # The trainer sets this to n_critic: one training step takes n_critic D batches.
        self.batches_per_step = 1
        # The batch size per process for a step that starts after a number of images (all
        # processes), None for data.batch_size: the model's (ProGAN's per-resolution sizes).
        self.batch_size_at: Callable[[int], int | None] | None = None
        self._images = 0  # images handed out, all processes: what the next batch follows
        self._loaded = False
        # Batches handed out since the last restore, batches the trainer actually trained
        # on, and the sampler state after each of the last handed-out batches.
        self._yielded = 0
        self._consumed = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)

    # What a data set implements.

    @abstractmethod
    def _load(self) -> None:
        """Read the data into memory (called once) and check it with ``_check_shape``."""

    @abstractmethod
    def _draw(self, n: int, device: torch.device) -> Batch:
        """The next ``n`` training samples on ``device``, advancing the sampler."""

    @abstractmethod
    def _sampler_state(self) -> dict[str, Any]:
        """A snapshot of the sampler from which ``_restore_sampler`` continues identically."""

    @abstractmethod
    def _restore_sampler(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def _tensors(self, split: str) -> Batch: ...

    # The contract used by the rest of ganlab.

    def setup(self, stage: str | None = None) -> None:
        if not self._loaded:
            self._load()
            self._loaded = True

    def train_dataloader(self) -> _Batches:
        return _Batches(self)

    def tensors(self, split: str = "train") -> Batch:
        """The whole split on CPU as float32 in model space, and its labels or None."""
        if split not in SPLITS:
            raise GanlabError(f"unknown data split {split!r}; use one of {', '.join(SPLITS)}")
        self.setup()
        return self._tensors(split)

    def denormalize(self, x: Tensor) -> Tensor:
        """Map model-space samples to data space."""
        return x

    def state_dict(self) -> dict[str, Any]:
        # During fit the fetcher has already drawn batches the model has not trained on;
        # save the state right after the last batch it trained on, so none is skipped.
        ahead = self._yielded - self._consumed
        if self._consumed and 0 <= ahead < len(self._history):
            return self._history[-1 - ahead]
        return self._sampler_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore_sampler(state_dict)
        self._yielded = self._consumed = 0
        self._history.clear()

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # drawn on the training device already; saves Lightning's walk over it

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Lightning calls this once per batch that reaches a training step.
        if self.trainer is not None and self.trainer.training:
            self._consumed += 1
        return batch

    # Helpers for subclasses.

    @property
    def sharded_by_loader(self) -> bool:
        """True for a data set whose loader gives each rank its own shard (a streamed set):
        ``_draw`` is then asked for this rank's samples only."""
        return False

    @property
    def device(self) -> torch.device:
        return (
            self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        )

    def _check_shape(self, sample_shape: Sequence[int]) -> None:
        if list(sample_shape) != self.shape:
            raise GanlabError(
                f"data.shape is {self.shape} but the {self.name} samples have shape "
                f"{list(sample_shape)}; set data.shape to {list(sample_shape)}"
            )

    def _step_batch_size(self) -> int:
        size = self.batch_size_at(self._images) if self.batch_size_at is not None else None
        return self.batch_size if size is None else size

    def _start(self) -> None:
        """Before the first batch of a fit: count the images from the module's (a resumed
        run's), and refuse what the loader cannot do."""
        module = getattr(self.trainer, "lightning_module", None)  # None: drawn outside a fit
        self._images = int(getattr(module, "images_seen", 0))
        if self.batch_size_at is not None and self.sharded_by_loader:
            raise GanlabError(
                f"the model's per-resolution batch sizes need data={self.name} in memory, but "
                "it is streamed with one batch size; raise data.memory_limit, or drop "
                "model.generator.batch_sizes")

    def _next_batch(self) -> Batch:
        n = self.batches_per_step * self._step_batch_size()
        rank, world = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        self._images += n * world
        if self.sharded_by_loader:  # the loader gives this rank its own shard already
            rank, world = 0, 1
        batch = self._draw(n * world, self.device)
        if world > 1:  # this rank's part of the draw
            x, y = batch
            part = slice(rank * n, (rank + 1) * n)
            batch = (x[part], None if y is None else y[part])
        self._yielded += 1
        self._history.append(self._sampler_state())
        return batch


class _Batches:
    """The endless training iterable; it has no length, so Lightning never ends an epoch."""

    def __init__(self, data: GanDataModule) -> None:
        self.data = data

    def __iter__(self) -> Iterator[Batch]:
        self.data.setup()
        self.data._start()
        while True:
            yield self.data._next_batch()
