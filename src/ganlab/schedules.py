"""Hyperparameters as functions of the images seen (R3GAN, Huang et al. 2024; StyleGAN's
training loop): a learning rate, an Adam beta, a penalty's gamma or the EMA half-life can
follow a schedule written in the YAML where the number would go:

    lr:
      _target_: ganlab.schedules.Cosine
      start: 2.0e-4
      end: 5.0e-5
      total_kimg: 20000

A schedule is a pure function of the module's ``images_seen`` (real images shown to D, over
all processes), which checkpoints keep, so a resumed run continues every schedule exactly,
whatever the batch size or the number of processes. A plain number is a constant: nothing
changes for a configuration without a schedule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from ganlab.options import check, is_number, non_negative, positive


class Schedule:
    """A value for every number of images seen; ``bounds`` are the least and greatest."""

    def __call__(self, images: int) -> float:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def __repr__(self) -> str:  # how error messages show the value
        args = ", ".join(f"{k}={v:g}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _number(value: Any, option: str) -> float:
    check(is_number(value), option, value, "it must be a number")
    return float(value)


class Constant(Schedule):
    """``value`` throughout (the same as writing the number itself)."""

    def __init__(self, value: float) -> None:
        self.value = _number(value, "value")

    def __call__(self, images: int) -> float:
        return self.value

    def bounds(self) -> tuple[float, float]:
        return self.value, self.value


class Linear(Schedule):
    """From ``start`` at 0 images linearly to ``end`` at ``total_kimg`` thousand images, then
    ``end``."""

    def __init__(self, start: float, end: float, total_kimg: float) -> None:
        self.start, self.end = _number(start, "start"), _number(end, "end")
        self.total_kimg = positive(total_kimg, "total_kimg")

    def __call__(self, images: int) -> float:
        t = min(images / (self.total_kimg * 1000.0), 1.0)
        return self.start + t * (self.end - self.start)

    def bounds(self) -> tuple[float, float]:
        return min(self.start, self.end), max(self.start, self.end)


class Cosine(Schedule):
    """R3GAN's ``cosine_decay_with_warmup`` (training/training_loop.py), in thousands of
    images: linear from ``warmup_start`` to ``start`` over the first ``warmup_kimg``, held
    at ``start`` for ``hold_kimg`` more, then half a cosine from ``start`` to ``end`` at
    ``total_kimg``, and ``end`` after that. With n images, W warm-up, H hold, T total:
    v = start + (1 - d) (end - start), d = (1 + cos(pi (n - W - H) / (T - W - H))) / 2."""

    def __init__(self, start: float, end: float, total_kimg: float, warmup_kimg: float = 0.0,
                 warmup_start: float = 0.0, hold_kimg: float = 0.0) -> None:
        self.start, self.end = _number(start, "start"), _number(end, "end")
        self.total_kimg = positive(total_kimg, "total_kimg")
        self.warmup_kimg = non_negative(warmup_kimg, "warmup_kimg")
        self.warmup_start = _number(warmup_start, "warmup_start")
        self.hold_kimg = non_negative(hold_kimg, "hold_kimg")
        check(self.warmup_kimg + self.hold_kimg < self.total_kimg, "total_kimg", total_kimg,
              "it must be larger than warmup_kimg + hold_kimg")

    def __call__(self, images: int) -> float:
        n, total = float(images), self.total_kimg * 1000.0
        warmup, hold = self.warmup_kimg * 1000.0, self.hold_kimg * 1000.0
        if n > total:
            return self.end
        if n < warmup:  # R3GAN: slope * n + warmup_value
            return (self.start - self.warmup_start) / warmup * n + self.warmup_start
        if n <= warmup + hold:
            return self.start
        decay = 0.5 * (1.0 + math.cos(math.pi * (n - warmup - hold) / (total - warmup - hold)))
        return self.start + (1.0 - decay) * (self.end - self.start)

    def bounds(self) -> tuple[float, float]:
        values = [self.start, self.end] + ([self.warmup_start] if self.warmup_kimg else [])
        return min(values), max(values)


def non_negative_or_schedule(value: Any, option: str) -> float | Schedule:
    """A number >= 0 (as a float), or a schedule whose every value is >= 0."""
    if isinstance(value, Schedule):
        check(value.bounds()[0] >= 0, option, value, "every value of the schedule must be >= 0")
        return value
    return non_negative(float(value) if is_number(value) else value, option)


def value_at(value: float | Schedule, images: int) -> float:
    return value(images) if isinstance(value, Schedule) else value


def upper_bound(value: float | Schedule) -> float:
    return value.bounds()[1] if isinstance(value, Schedule) else value


# -- optimizer options: a factory's keyword arguments may hold schedules --

# (keyword, index in a sequence such as Adam's betas or None) -> schedule
OptionSchedules = dict[tuple[str, int | None], Schedule]
# Checked over the whole schedule (torch checks only the value an optimizer is built with).
_RANGES = {"lr": (0.0, math.inf), "betas": (0.0, 1.0)}


def split_optimizer(factory: Callable[..., Any], key: str) -> tuple[Callable[..., Any],
                                                                    OptionSchedules]:
    """``factory`` (a ``functools.partial``, as Hydra makes with ``_partial_``) with each
    scheduled keyword replaced by its value at 0 images, and the schedules by keyword (and
    index, for a sequence such as ``betas: [0.0, {schedule}]``). ``key`` names the node in
    errors (``optimizer.generator``)."""
    if not isinstance(factory, functools.partial):
        return factory, {}
    found: OptionSchedules = {}
    keywords = dict(factory.keywords)
    for name, value in factory.keywords.items():
        items = list(value) if _is_sequence(value) else None
        if isinstance(value, Schedule):
            found[(name, None)] = value
            keywords[name] = value(0)
        elif items and any(isinstance(v, Schedule) for v in items):
            found.update({(name, i): v for i, v in enumerate(items) if isinstance(v, Schedule)})
            keywords[name] = tuple(value_at(v, 0) for v in items)
    for (name, index), schedule in found.items():
        low, high = _RANGES.get(name, (-math.inf, math.inf))
        lo, hi = schedule.bounds()
        where = f"{key}.{name}" + ("" if index is None else f"[{index}]")
        check(low <= lo and (hi < high or math.isinf(high)), where, schedule,
              f"every value of the schedule must be in [{low:g}, {high:g})")
    return functools.partial(factory.func, *factory.args, **keywords), found


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _label(name: str, index: int | None) -> str:
    if index is None:
        return name
    return f"beta{index + 1}" if name == "betas" else f"{name}{index}"


class ScheduledValues:
    """Every scheduled hyperparameter of a module: the optimizers' options (found in their
    factories, ``split_optimizer``), and the parts that keep their own schedules and answer
    ``at(images)``: the penalties' weights, the EMA half-life, ADA's p (a part without
    ``at``, or None, has nothing scheduled). ``apply`` sets them all for a step; their values
    are logged as ``schedule/<name>`` at every step."""

    def __init__(self, optimizer: Mapping[str, Callable[..., Any]], *parts: Any) -> None:
        self.factories: dict[str, Callable[..., Any]] = {}
        self.options: dict[str, OptionSchedules] = {}
        for name, factory in optimizer.items():
            self.factories[name], self.options[name] = split_optimizer(factory,
                                                                      f"optimizer.{name}")
        self.parts = [part for part in parts if hasattr(part, "at")]
        self._pending: list[tuple[int, dict[str, float]]] = []

    def apply(self, optimizers: Iterable[torch.optim.Optimizer], images: int, step: int) -> None:
        """Set every scheduled value for the step ``step`` that starts after ``images`` images
        (``optimizers``: G's, then D's, as the module makes them). A scheduled lr also becomes
        the ``initial_lr`` that ``lr_decay_start``'s decay multiplies."""
        values: dict[str, float] = {}
        for name, opt in zip(("generator", "discriminator"), optimizers, strict=True):
            for (key, index), schedule in self.options.get(name, {}).items():
                v = schedule(images)
                for group in opt.param_groups:
                    if index is None:
                        group[key] = v
                    else:
                        group[key] = tuple(v if i == index else x
                                           for i, x in enumerate(group[key]))
                    if key == "lr":
                        group["initial_lr"] = v
                values[f"schedule/{_label(key, index)}_{name}"] = v
        for part in self.parts:
            values |= part.at(images)
        if values:
            self._pending.append((step, values))

    def flush(self, loggers: Iterable[Any]) -> None:
        """Write the pending values to ``loggers`` (with the step log, ganlab.steplog)."""
        loggers = list(loggers)
        for step, values in self._pending:
            for logger in loggers:
                logger.log_metrics(values, step=step)
        self._pending.clear()
