"""Measuring a training step fairly: the device and its clock, peak memory, the matmul peak
a step's FLOPs are set against, and the machine a number was measured on."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from ganlab.errors import GanlabError


def bench_device(cfg: DictConfig) -> torch.device:
    """The device Lightning's ``trainer.accelerator`` picks (auto: CUDA when there is one)."""
    accelerator = str(cfg.trainer.accelerator)
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("gpu", "cuda"):
        raise GanlabError(f"trainer.accelerator={accelerator} but no CUDA device is available")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise KeyError(key)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Peak memory of the block, in bytes, over what was in use when it started.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the rise of the process's peak resident
    set (Linux VmHWM, reset through /proc/self/clear_refs) over its resident set at the start,
    after returning freed heap pages to the OS (malloc_trim); tracemalloc does not see
    torch's allocations. NaN where /proc is not available.
    """
    out = {"bytes": math.nan}
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield out
        torch.cuda.synchronize(device)
        out["bytes"] = float(torch.cuda.max_memory_allocated(device) - base)
        return
    try:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        base = _proc_status_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except (OSError, KeyError):
        yield out
        return
    yield out
    out["bytes"] = float(_proc_status_bytes("VmHWM") - base)


def timed(
    step: Callable, n: int, device: torch.device, clock: Callable = time.perf_counter
) -> float:
    """Seconds for ``n`` calls of ``step``, the device's queue drained at both ends."""
    synchronize(device)
    start = clock()
    for _ in range(n):
        step()
    synchronize(device)
    return clock() - start


def bench_clock(cfg: DictConfig) -> Callable[[], float]:
    """``bench.clock``: wall (``time.perf_counter``) or thread (the CPU time of this thread).

    On a shared machine a thread's CPU time does not count the time other processes hold
    the cores; it is the whole cost of a step only on the CPU with ``bench.threads=1``.
    """
    clock = str(cfg.bench.get("clock", "wall"))
    if clock == "wall":
        return time.perf_counter
    if clock == "thread" and bench_device(cfg).type == "cpu":
        return time.thread_time
    raise GanlabError(f"bench.clock={clock!r} is not allowed: wall, or thread on the CPU")


def matmul_peak(
    device: torch.device, dtype: torch.dtype, clock: Callable = time.perf_counter, repeats: int = 5
) -> float:
    """FLOP/s of the best of ``repeats`` square matmuls: the achievable peak it is set against."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = clock()
        a @ b
        synchronize(device)
        best = min(best, clock() - start)
    return 2 * n**3 / best


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": sys.version.split()[0],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


