"""A prepared litdata set streamed from disk: litdata's StreamingDataset and
StreamingDataLoader as an endless, resumable iterator of uint8 batches.

The loader reads, shuffles (chunks, then items within a window of each chunk, reshuffled
every pass with ``seed``) and collates in its worker processes; the training process only
moves each uint8 batch to the device and converts it there. Under DDP litdata gives every
rank its own shard of each pass (disjoint samples, as many batches on every rank). The
position is litdata's loader state, taken after every batch, so a resumed run continues with
the batch the uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from ganlab.data.store import StoredSet, open_dataset
from ganlab.errors import GanlabError

Batch = tuple[Tensor, Tensor | None]


class LitdataStream:
    """Batches for this process (tails shorter than a batch dropped), all of one size: the
    size asked for first."""

    def __init__(self, stored: StoredSet, seed: int, workers: int, xflip: bool) -> None:
        self.stored, self.batch, self.seed = stored, 0, seed
        self.workers, self.xflip = workers, xflip
        self._loader: Any = None
        self._batches: Any = None
        self._restored: dict[str, Any] | None = None
        self._flips: tuple[int, Tensor] | None = None

    def _make_loader(self, device: torch.device) -> None:
        from litdata import StreamingDataLoader

        dataset = open_dataset(self.stored, shuffle=True, seed=self.seed, drop_last=True)
        self._loader = StreamingDataLoader(
            dataset, batch_size=self.batch, num_workers=self.workers,
            pin_memory=device.type == "cuda")
        if self._restored is not None:
            self._loader.load_state_dict(self._restored)
            self._restored = None

    def next(self, n: int, device: torch.device) -> Batch:
        if self._loader is None:
            self.batch = n
            self._make_loader(device)
        for _ in range(3):  # a new pass starts when one ends; two empty passes in a row: too few
            if self._batches is None:
                self._batches = iter(self._loader)
            for batch in self._batches:
                if len(batch["index"]) == self.batch:  # a worker's last, short batch is dropped
                    return self._to_device(batch, device)
            self._batches = None
        raise GanlabError(
            f"a training step needs {self.batch} samples per process but data.path="
            f"{self.stored.path} gives fewer per pass ({self.stored.images} images); lower "
            "data.batch_size or n_critic")

    def _to_device(self, batch: dict[str, Tensor], device: torch.device) -> Batch:
        x = batch["image"].to(device, non_blocking=True)  # (B, C, H, W) uint8
        if self.xflip:
            mirror = self._mirrored(batch["index"]).to(device)
            x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
        x = x.float().div_(127.5).sub_(1.0)  # as ganlab.data.images.to_model_space
        y = None if self.stored.num_classes is None else batch["label"].to(device)
        return x, y

    def _mirrored(self, index: Tensor) -> Tensor:
        """Which images of the batch are mirrored: in each pair of passes (2k, 2k + 1) a
        seeded random half of the set in the first pass, the other half in the second, so
        that every image is seen once as it is and once mirrored (StyleGAN2-ADA's doubled
        set, streamed)."""
        epoch = self._loader.current_epoch - 1  # litdata counts passes from 1
        if self._flips is None or self._flips[0] != epoch // 2:
            key = hashlib.sha256(f"{self.seed} {epoch // 2}".encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))
            bits = torch.randint(0, 2, (self.stored.images,), generator=generator).bool()
            self._flips = (epoch // 2, bits)
        return self._flips[1][index] ^ bool(epoch % 2)

    def state(self) -> dict[str, Any]:
        if self._loader is None:
            return {"loader": self._restored}
        return {"loader": self._loader.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        self._loader = self._batches = None  # a new loader picks up from the state
        self._restored = state.get("loader")
