"""The optimizer a loss recommends (``optimizer=auto``): its paper's, by name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ganlab.options import check

OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


def recommended(params: Iterable[torch.nn.Parameter], name: str, lr: float,
                betas: Sequence[float] | None = None, **options: Any) -> torch.optim.Optimizer:
    """``name`` (adam or rmsprop) over ``params`` with ``lr``; Adam takes ``betas`` too, and
    any other option (``+optimizer.generator.eps=1e-6``) goes to the optimizer as it is."""
    check(name in OPTIMIZERS, "name", name, f"it must be one of {', '.join(OPTIMIZERS)}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, **options)
    return torch.optim.RMSprop(params, lr=lr, **options)
