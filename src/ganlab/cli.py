"""The one way to write a ganlab command (``python -m ganlab.X key=value ...``).

A command is a dataclass, whose fields are its keys, and a body that takes an instance::

    @dataclass
    class SampleArgs:
        checkpoint: str = arg(help="the checkpoint to sample from", metavar="PATH")
        num_samples: int = arg(64, "how many samples")

    def main(argv: list[str] | None = None) -> int:
        return run_command(SampleArgs, sample, argv, prog="python -m ganlab.sample",
                           summary="Sample from a trained generator.")

``-h``/``--help`` lists the keys with their types, defaults and help texts. Bad input, in
the arguments or found by the body (a ``GanlabError``), is one line ``error: <message>`` on
stderr and exit status 2; the body's progress and results go to stdout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from ganlab.errors import GanlabError

T = TypeVar("T")

# A value of this type, values of it, and a list of them, for the wrong-type error.
_WORDS = {
    int: ("an integer", "integers", "[1,2]"),
    float: ("a number", "numbers", "[0.5,2]"),
    bool: ("true or false", "true/false values", "[true,false]"),
    str: ("a string", "strings", "[a,b]"),
}


def arg(default: Any = MISSING, help: str = "", metavar: str = "") -> Any:
    """A dataclass field for a key: its default (none: required), the help text that
    ``--help`` shows, and for a required key what to write after ``key=`` (e.g. PATH)."""
    metadata = {"help": help, "metavar": metavar}
    if isinstance(default, list):  # a mutable default must be made afresh for each instance
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def run_command(
    args_class: type[T],
    body: Callable[[T], int | None],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    summary: str,
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``args_class`` and run ``body`` on it;
    the exit status: the body's (None: 0), 0 for ``--help``, 2 for bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(usage(args_class, prog, summary))
        return 0
    with _log_to_stdout():
        try:
            return body(parse(args_class, argv)) or 0
        except GanlabError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2


@contextlib.contextmanager
def _log_to_stdout() -> Iterator[None]:
    """Progress (INFO and up) to stdout, so that stderr holds nothing but a one-line error;
    the root logger is restored after, for a caller in the same process (a test)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handler = logging.StreamHandler(sys.stdout)  # the current stdout, which a test may capture
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def parse(args_class: type[T], argv: Sequence[str]) -> T:
    """``key=value`` arguments as an ``args_class``, each value checked against its field's
    type by OmegaConf (lists as ``key=[a,b]``); GanlabError naming the key otherwise."""
    fields = {f.name: f for f in dataclasses.fields(args_class)}
    hints = typing.get_type_hints(args_class)
    keys = ", ".join(fields)
    cfg = OmegaConf.structured(args_class)
    for argument in argv:
        key, equals, value = argument.partition("=")
        if not equals:
            raise GanlabError(f"argument {argument!r} is not key=value; keys: {keys}")
        if key not in fields:
            raise GanlabError(f"unknown key {key!r}; keys: {keys}")
        try:  # one at a time, so that an error is known to come from this argument
            node = OmegaConf.from_dotlist([argument])
            typed = OmegaConf.to_container(node)[key]
            if _not_none(hints[key]) is str and isinstance(typed, int | float | bool):
                node[key] = value  # a path or name as typed: YAML reads 0123 as 83, off as False
            cfg = OmegaConf.merge(cfg, node)
        except (OmegaConfBaseException, yaml.YAMLError):  # YAML: e.g. an unclosed [
            raise GanlabError(
                f"{key}={value!r} is not allowed: it must be {_in_words(hints[key])}"
            ) from None
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        key = str(err.full_key)
        raise GanlabError(f"{key} is required: pass {key}={_metavar(fields[key])}") from None
    except OmegaConfBaseException as err:  # an interpolation ${...} that cannot be resolved
        raise GanlabError(f"{err.full_key}: {str(err).splitlines()[0]}") from None


def name_list(key: str, value: Any) -> list[str]:
    """The value of a key that takes a name or a list of them (``key=a``, ``key=[a,b]``)."""
    names = [] if value is None else value if isinstance(value, list) else [value]
    if not all(isinstance(name, str) for name in names):
        raise GanlabError(
            f"{key}={value!r} is not allowed: it must be a name or a list of names, like [a,b]"
        )
    return names


def usage(args_class: type, prog: str, summary: str) -> str:
    """The ``--help`` text: usage line, summary, and a line per key."""
    hints = typing.get_type_hints(args_class)
    fields = dataclasses.fields(args_class)
    required = [f"{f.name}={_metavar(f)}" for f in fields if _is_required(f)]
    optional = ["[key=value ...]"] if len(required) < len(fields) else []
    rows = [(f.name, _type_name(hints[f.name]), _default(f), f.metadata.get("help", ""))
            for f in fields]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        " ".join(["usage:", prog, *required, *optional]),
        "",
        summary,
        "",
        "keys (type, default), lists written key=[a,b]:",
    ]
    for *columns, text in rows:
        cells = [c.ljust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append("  " + "  ".join([*cells, text]))
    return "\n".join(lines)


def _is_required(f: dataclasses.Field) -> bool:
    no_factory = f.default_factory is dataclasses.MISSING
    return no_factory and (f.default is dataclasses.MISSING or f.default == MISSING)


def _default(f: dataclasses.Field) -> str:
    if _is_required(f):
        return "required"
    value = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    return "null" if value is None else str(value)


def _metavar(f: dataclasses.Field) -> str:
    return f.metadata.get("metavar") or f.name.upper()


def _not_none(hint: Any) -> Any:
    """``X`` for ``X | None``: the default (null) says that None is allowed, and a value that
    fails to be read is not None."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(inner) == 1:
        return inner[0]
    return hint


def _type_name(hint: Any) -> str:
    hint = _not_none(hint)
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _in_words(hint: Any) -> str:
    """'an integer', 'a list of strings, like [a,b]'."""
    hint = _not_none(hint)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        _, items, example = _WORDS.get(item, ("", _type_name(item), "[a,b]"))
        return f"a list of {items}, like {example}"
    return _WORDS[hint][0] if hint in _WORDS else _type_name(hint)
