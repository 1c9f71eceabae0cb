"""The closed set of classes that a file from elsewhere may ask ganlab to build.

A checkpoint (or any config read from a run directory) is data: it may name one of ganlab's
registered classes and give it plain arguments, and nothing else. ``build`` never imports
a module or calls anything a file names; it looks the name up here and calls that class
with the arguments after checking that they are numbers, strings, booleans, None, and
lists and dicts of them, with no Hydra instantiation key anywhere below the class name.
(Hydra's ``instantiate`` is recursive: a ``_target_`` nested in any argument is called.)

ganlab's own classes join with the ``@registered("network")`` / ``@registered("data")``
decorators. A user's own classes join only by an act of the user on their machine:
``trust=MODULE`` on a command (every nn.Module / LightningDataModule class defined in that
module) or an entry point of an installed package in the group ``ganlab.networks``
(``name = "package.module"`` or ``"package.module:Class"``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ganlab.errors import GanlabError

KINDS = ("network", "data")
# Keys that make Hydra call, partially apply or convert something.
INSTANTIATION_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
ENTRY_POINT_GROUP = "ganlab.networks"
# ganlab's packages whose modules register classes when imported.
_PACKAGES = {"network": "ganlab.nets", "data": "ganlab.data"}

_classes: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
_loaded: set[str] = set()  # kinds whose ganlab package has been imported
_entry_points_loaded = False

T = TypeVar("T", bound=type)


class Refused(GanlabError):
    """A file asked for something that is not a registered class with plain arguments."""


def _names(cls: type) -> list[str]:
    """The dotted names a config may use for ``cls``: its module path and every package above
    it (``ganlab.nets.dcgan.DCGANGenerator`` is also ``ganlab.nets.DCGANGenerator``)."""
    parts = cls.__module__.split(".")
    return [".".join([*parts[:i], cls.__qualname__]) for i in range(len(parts), 0, -1)]


def register(kind: str, cls: type) -> type:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; use one of {KINDS}")
    for name in _names(cls):
        _classes[kind].setdefault(name, cls)
    return cls


def registered(kind: str) -> Callable[[T], T]:
    """Class decorator: ``cls`` may be built from a file's config (see ``build``)."""

    def decorate(cls: T) -> T:
        return register(kind, cls)

    return decorate


def trust(modules: str | Iterable[str] | None) -> None:
    """Import the user's ``modules`` and register every network and data-module class defined
    in them: the explicit act by which a user's own classes become loadable."""
    names = [modules] if isinstance(modules, str) else list(modules or [])
    if not names:
        return
    import lightning as L
    from torch import nn

    for name in names:
        name = str(name)
        try:
            module = importlib.import_module(name)
        except Exception as err:  # ImportError, or whatever the user's module raises
            raise GanlabError(
                f"trust={name}: the module cannot be imported ({type(err).__name__}: {err}); "
                "install it or put its folder on PYTHONPATH"
            ) from None
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue  # imported there, not defined there
            if issubclass(cls, nn.Module):
                register("network", cls)
            elif issubclass(cls, L.LightningDataModule):
                register("data", cls)


def _load_builtin(kind: str) -> None:
    if kind in _loaded:
        return
    package = importlib.import_module(_PACKAGES[kind])
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    _loaded.add(kind)


def _load_entry_points() -> None:
    """Networks that installed packages declare in the ``ganlab.networks`` group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ":" in ep.value:
            register("network", ep.load())
        else:
            trust([ep.value])


def lookup(kind: str, name: str) -> type | None:
    """The registered class called ``name``, or None; imports nothing that ``name`` says."""
    _load_builtin(kind)
    found = _classes[kind].get(name)
    if found is None and kind == "network":
        _load_entry_points()
        found = _classes[kind].get(name)
    return found


def check_plain(value: Any, where: str) -> None:
    """Refused unless ``value`` is plain data: numbers, strings, booleans, None, and lists
    and dicts of them with string keys, no Hydra instantiation key and no interpolation."""
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if "${" in value:
            raise Refused(f"{where} is not allowed (an interpolation, which would be resolved)")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise Refused(f"{where} is not allowed (a key of type {type(key).__name__})")
            if key in INSTANTIATION_KEYS:
                raise Refused(
                    f"{where}.{key} is not allowed (a Hydra instantiation key below the class "
                    "name, which would call what it names)"
                )
            check_plain(item, f"{where}.{key}")
        return
    raise Refused(f"{where} is not allowed (a {type(value).__name__}, not plain data)")


def checked_node(kind: str, node: Any, where: str) -> tuple[type, dict[str, Any]]:
    """The registered class and the plain keyword arguments of a config node read from a
    file; Refused (naming ``where``) for anything else. Nothing is called."""
    if not isinstance(node, Mapping):
        raise Refused(f"{where} is not allowed (a {type(node).__name__}, not a config node)")
    target = node.get("_target_")
    if not isinstance(target, str):
        raise Refused(f"{where} is not allowed (it names no class)")
    for key in INSTANTIATION_KEYS[1:]:
        if key in node:
            raise Refused(f"{where}.{key} is not allowed (a Hydra instantiation key)")
    cls = lookup(kind, target)
    if cls is None:
        raise Refused(
            f"{where}._target_={target} is not allowed (not a registered ganlab {kind}; your "
            "own classes join with trust=MODULE)"
        )
    kwargs = {k: v for k, v in node.items() if k != "_target_"}
    check_plain(kwargs, where)
    return cls, kwargs


def build(kind: str, node: Any, where: str) -> Any:
    """An instance of the registered class that ``node`` names, with its plain arguments."""
    cls, kwargs = checked_node(kind, node, where)
    try:
        return cls(**kwargs)
    except GanlabError:
        raise
    except Exception as err:  # a wrong argument: TypeError, ValueError, ...
        first = " ".join(str(err).split()) or type(err).__name__
        raise GanlabError(f"{where} cannot be built: {type(err).__name__}: {first}") from None
