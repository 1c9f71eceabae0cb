"""The global random states (torch CPU and CUDA, Python, NumPy) as plain checkpoint data.

Lightning does not save them. A resumed run must draw the same latents, dropout masks and
gradient-penalty interpolation weights as the uninterrupted run, so ganlab saves them in
``checkpoint["ganlab"]["rng"]`` and restores them just before the first resumed step.
Everything here is a tensor, an int, a float, a str, a tuple or a dict, so the checkpoint
still loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),  # (version, 625 ints, gauss_next)
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),  # MT19937, (624,)
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
    }
    # Only when CUDA is in use: asking for its state would initialise it.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    key = np_state["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def every_ranks_rng_state() -> dict[str, Any]:
    """Every process's random state (each draws its own numbers), as checkpoint entries:
    ``rng`` (rank 0's) and ``rng_per_rank``; call it on every rank."""
    from ganlab import distributed

    states = distributed.gather_objects(capture_rng_state())
    return {"rng": states[0], "rng_per_rank": states}


def this_ranks_rng_state(saved: dict[str, Any]) -> dict[str, Any] | None:
    """This process's state from checkpoint entries of ``every_ranks_rng_state``; None (a
    fresh stream) for a rank the checkpoint has none for."""
    from ganlab import distributed

    per_rank, r = saved.get("rng_per_rank") or [], distributed.rank()
    if len(per_rank) == distributed.world_size():
        return per_rank[r]
    return saved.get("rng") if r == 0 else None
