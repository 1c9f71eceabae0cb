"""Range checks that each component makes on its own options, as one-line errors.

A component (a network, a loss, a penalty, a data set) checks its constructor arguments
with ``check`` and raises ``OptionError`` naming the argument; the code that built it from
the config (ganlab.build) knows where the node sits and renames the option to its full key,
``model.generator.width=0 is not allowed: it must be an integer >= 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ganlab.errors import GanlabError

INT_1 = "it must be an integer >= 1"
INT_0 = "it must be an integer >= 0 (0: never)"
POSITIVE = "it must be a number > 0"
NON_NEGATIVE = "it must be a number >= 0"
FRACTION = "it must be a number in [0, 1)"
UNIT = "it must be a number in [0, 1]"
BOOL = "it must be true or false"


class OptionError(GanlabError):
    """``option=value is not allowed: rule``; ``under(prefix)`` names it by its full key."""

    def __init__(self, option: str, value: Any, rule: str) -> None:
        self.option, self.value, self.rule = option, value, rule
        super().__init__(f"{option}={value!r} is not allowed: {rule}")

    def under(self, prefix: str) -> OptionError:
        return OptionError(f"{prefix}.{self.option}" if prefix else self.option, self.value,
                           self.rule)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(ok: bool, option: str, value: Any, rule: str) -> None:
    if not ok:
        raise OptionError(option, _plain(value), rule)


def at_least(value: Any, option: str, minimum: int = 1) -> int:
    """``value`` as an int, if it is an integer >= ``minimum``."""
    rule = INT_1 if minimum == 1 else INT_0 if minimum == 0 else f"it must be an integer >= {minimum}"
    check(is_int(value) and value >= minimum, option, value, rule)
    return int(value)


def non_negative(value: Any, option: str) -> float:
    check(is_number(value) and value >= 0, option, value, NON_NEGATIVE)
    return float(value)


def positive(value: Any, option: str) -> float:
    check(is_number(value) and value > 0, option, value, POSITIVE)
    return float(value)


def fraction(value: Any, option: str, closed: bool = False) -> float:
    """A number in [0, 1) (``closed``: [0, 1])."""
    ok = is_number(value) and value >= 0 and (value <= 1 if closed else value < 1)
    check(ok, option, value, UNIT if closed else FRACTION)
    return float(value)


def sizes(value: Any, option: str) -> list[int]:
    """A non-empty list of integers >= 1 (layer widths, a sample shape)."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    ok = bool(items) and all(is_int(v) and v >= 1 for v in items)
    check(ok, option, items if items is not None else value,
          "it must be a non-empty list of integers >= 1")
    return [int(v) for v in items]


def _plain(value: Any) -> Any:
    """ListConfig and tuples shown as lists in messages."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
