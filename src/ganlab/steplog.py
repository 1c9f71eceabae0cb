"""Per-step training scalars kept on the device and written in batches: one host sync per
flush (every ``trainer.log_every_n_steps`` generator steps), each value under its own step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ganlab import distributed


class StepLog:
    """``record`` one generator step's D terms (one dict per D update) and G loss; ``flush``
    averages D's terms over its updates (and the values over the ranks), writes every
    pending step to the loggers and returns the rows."""

    def __init__(self) -> None:
        self._pending: list[Tensor] = []  # (n_critic * K + 1,) per step
        self._steps: list[int] = []
        self.keys: list[str] | None = None  # train/<name>, in row order

    def record(self, d_terms: list[dict[str, Tensor]], g_loss: Tensor, step: int) -> None:
        if self.keys is None:
            self.keys = [f"train/d_{k}" if k == "loss" else f"train/{k}" for k in d_terms[0]]
            self.keys.append("train/g_loss")
        values = [v for terms in d_terms for v in terms.values()]
        self._pending.append(torch.stack([*values, g_loss]).float())
        self._steps.append(step)

    def flush(self, loggers: Iterable[Any]) -> tuple[list[int], list[list[float]]]:
        """(steps, rows in ``keys`` order) of the pending steps, written to ``loggers``."""
        if not self._pending:
            return [], []
        rows = distributed.mean_over_ranks(torch.stack(self._pending))  # (S, n_critic * K + 1)
        width = len(self.keys) - 1
        d_means = rows[:, :-1].unflatten(1, (-1, width)).mean(1)  # (S, K)
        values = torch.cat([d_means, rows[:, -1:]], 1).cpu().tolist()  # the one host copy
        steps = list(self._steps)
        loggers = list(loggers)
        for step, row in zip(steps, values, strict=True):
            for logger in loggers:
                logger.log_metrics(dict(zip(self.keys, row, strict=True)), step=step)
        self._pending.clear()
        self._steps.clear()
        return steps, values
