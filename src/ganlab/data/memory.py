"""How much memory a data set may take (``data.memory_limit``): a size as written by a user,
and the default read from the machine."""

from __future__ import annotations

import os
import re

import torch

from ganlab.options import check

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$")
RULE = "it must be a size like 2GB, 512MiB or 1.5TB, a number of bytes, or auto"
# The default: this share of the memory available when the run starts (RAM, and on a GPU
# also of the device's memory, where the set is held besides the model).
RAM_SHARE, GPU_SHARE = 0.5, 0.25


def parse_size(value: object, option: str = "memory_limit") -> int | None:
    """Bytes from ``2GB``, ``512MiB``, ``1.5T`` or an integer; None for ``auto``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        check(value >= 0, option, value, RULE)
        return value
    match = _SIZE.match(value.lower()) if isinstance(value, str) else None
    check(match is not None and match.group(2) in _UNITS, option, value, RULE)
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def available_ram() -> int:
    """Bytes of RAM available to new allocations (Linux's MemAvailable, else free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - other systems
        return 8 * 2**30


def default_limit(device: torch.device) -> int:
    """``data.memory_limit=auto``: half the available RAM; on a GPU, at most a quarter of its
    memory too (the set is held there as well as in RAM)."""
    limit = int(RAM_SHARE * available_ram())
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        limit = min(limit, int(GPU_SHARE * total))
    return limit


def human(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"
