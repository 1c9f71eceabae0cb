"""Speed of ganlab's training path against a hand-written PyTorch loop of the same math.

    python -m ganlab.bench [model=dcgan] [data=digits] [data.batch_size=64] [bench.steps=K ...]

Configured like ``train.py`` (conf/bench.yaml is conf/train.yaml plus a ``bench`` node), so
``model=``, ``data=``, ``loss=``, ``n_critic=`` and ``trainer.*`` apply to both paths:

(a) ganlab: ``ganlab.train.fit(cfg)``, the Lightning Trainer exactly as ``train.py`` builds
    it, without the sample-grid and checkpoint callbacks and without a logger;
(b) hand-written: the same G, D, loss object, optimizers and n_critic schedule in a plain
    loop, with the training set as one tensor on the device indexed per batch.

Timing: one ganlab run whose generator steps are timed in ``bench.repeats`` blocks of
``bench.steps``; after each block a callback runs as many hand-written steps, timed too. So
both paths meet the same machine load (other processes on a shared machine), and each block
gives one ganlab / hand-written ratio: the reported ratio is their median, and images/s are
medians over blocks. Each path first runs ``bench.warmup`` untimed steps. FLOPs are counted
on one step of the hand-written loop; peak memory comes from separate short runs of each
path, built from scratch. Results are printed and written to ``bench.json`` in the run
directory (outputs/bench/<date>/<time>/).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.flop_counter import FlopCounterMode

from ganlab.errors import GanlabError
from ganlab.train import apply_model_options, cuda_check_without_nvml, fit

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PATHS = ("ganlab", "handwritten")


def bench_device(cfg: DictConfig) -> torch.device:
    """The device Lightning's ``trainer.accelerator`` picks (auto: CUDA when there is one)."""
    accelerator = str(cfg.trainer.accelerator)
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("gpu", "cuda"):
        raise GanlabError(f"trainer.accelerator={accelerator} but no CUDA device is available")
    return torch.device("cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- peak memory ---------------------------------------------------------------------------


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


# -- (b) the hand-written loop -------------------------------------------------------------


def _autocast(cfg: DictConfig, device: torch.device) -> contextlib.AbstractContextManager:
    precision = str(cfg.trainer.precision)
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise GanlabError(
        f"ganlab.bench compares trainer.precision 32-true or bf16-mixed, not {precision}"
    )


def check_comparable(cfg: DictConfig) -> None:
    """The hand-written loop is the plain unconditional game; refuse what it does not do."""
    extras = {
        "regularizer": bool(cfg.get("regularizer")),
        "augment": bool(cfg.get("augment")),
        "ema.half_life_kimg": (OmegaConf.select(cfg, "ema.half_life_kimg") or 0) > 0,
        "conditioning": OmegaConf.select(cfg, "model.generator.num_classes") is not None,
    }
    used = [name for name, on in extras.items() if on]
    if used:
        raise GanlabError(
            f"ganlab.bench compares the plain game; the hand-written loop has no {', '.join(used)}"
            " (set regularizer=none augment=none ema.half_life_kimg=0 conditioning=none)"
        )


def handwritten_step(cfg: DictConfig, device: torch.device, options: bool = True) -> Callable:
    """One generator step (n_critic D updates, then one G update) of a plain PyTorch loop.

    Built as train.py builds the module: seed, G, D, loss, optimizers, in that order; with
    ``options``, compiled and in channels_last as ``model.compile`` and
    ``model.channels_last`` say.
    """
    L.seed_everything(cfg.seed, verbose=False)
    G = instantiate(cfg.model.generator).to(device)
    D = instantiate(cfg.model.discriminator).to(device)
    loss = instantiate(cfg.loss)
    opt_g = instantiate(cfg.optimizer.generator)(G.parameters())
    opt_d = instantiate(cfg.optimizer.discriminator)(D.parameters())
    if options:
        apply_model_options(cfg, G, D)
    if cfg.trainer.get("benchmark") is not None:
        torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)
    data, _ = instantiate(cfg.data).tensors("train")  # (N, *shape), model space
    data = data.to(device)
    n_critic, batch_size, latent_dim = cfg.n_critic, cfg.data.batch_size, cfg.model.latent_dim
    autocast = _autocast(cfg, device)

    def step() -> None:
        real = data[torch.randint(len(data), (n_critic * batch_size,), device=device)]
        with autocast:
            for chunk in real.chunk(n_critic):
                with torch.no_grad():
                    fake = G(torch.randn(batch_size, latent_dim, device=device))
                d_loss = loss.discriminator_loss(D, chunk, fake)["loss"]
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                loss.after_discriminator_step(D)
            D.requires_grad_(False)  # G's step: gradients flow through D, not into it
            g_loss = loss.generator_loss(D, G(torch.randn(batch_size, latent_dim, device=device)))
            opt_g.zero_grad(set_to_none=True)
            g_loss["loss"].backward()
            opt_g.step()
            D.requires_grad_(True)

    return step


def _timed(
    step: Callable, n: int, device: torch.device, clock: Callable = time.perf_counter
) -> float:
    """Seconds for ``n`` calls of ``step``, the device's queue drained at both ends."""
    _synchronize(device)
    start = clock()
    for _ in range(n):
        step()
    _synchronize(device)
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


# -- both paths, interleaved ---------------------------------------------------------------


class Interleaved(L.Callback):
    """Times a ganlab run in blocks of ``steps`` generator steps and runs as many hand-written
    steps, timed too, after each block: the two paths meet the same machine load, and every
    block gives one ganlab / hand-written ratio.

    The first mark comes after ganlab's ``warmup`` steps; there the hand-written loop is built
    and runs its own ``warmup`` untimed steps.
    """

    def __init__(self, cfg: DictConfig, warmup: int, steps: int, repeats: int) -> None:
        self.cfg, self.warmup, self.steps = cfg, warmup, steps
        self.clock = bench_clock(cfg)
        self.marks = {warmup + r * steps for r in range(repeats + 1)}
        self.seconds: dict[str, list[float]] = {path: [] for path in PATHS}
        self._step: Callable | None = None
        self._resumed = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if pl_module.g_steps not in self.marks:
            return
        device = pl_module.device
        _synchronize(device)
        if self._step is None:
            self._step = handwritten_step(self.cfg, device)
            _timed(self._step, self.warmup, device)
        else:
            self.seconds["ganlab"].append(self.clock() - self._resumed)
            self.seconds["handwritten"].append(_timed(self._step, self.steps, device, self.clock))
        self._resumed = self.clock()


def _ganlab_config(cfg: DictConfig, max_steps: int) -> DictConfig:
    """The run's config without callbacks, logger or resuming, for ``max_steps`` steps."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.trainer.max_steps = max_steps
        cfg.callbacks = None
        cfg.logger = None
        cfg.ckpt_path = None
    return cfg


def time_paths(cfg: DictConfig) -> dict[str, list[float]]:
    """Seconds per block of ``bench.steps`` generator steps, per path (one ganlab run)."""
    b = cfg.bench
    clock = Interleaved(cfg, b.warmup, b.steps, b.repeats)
    fit(_ganlab_config(cfg, b.warmup + b.repeats * b.steps), extra_callbacks=[clock])
    return clock.seconds


def memory_of_paths(cfg: DictConfig) -> dict[str, float]:
    """Peak memory of each path over ``bench.warmup`` steps, built from scratch, in bytes."""
    device = bench_device(cfg)
    with peak_memory(device) as ganlab:
        fit(_ganlab_config(cfg, cfg.bench.warmup))
    with peak_memory(device) as handwritten:
        step = handwritten_step(cfg, device)
        with cuda_check_without_nvml():  # as fit does; a script without Lightning needs none
            _timed(step, cfg.bench.warmup, device)
    return {"ganlab": ganlab["bytes"], "handwritten": handwritten["bytes"]}


# -- FLOPs and the matmul peak -------------------------------------------------------------


class _Unattributed:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks do not survive
    ``autograd.grad(create_graph=True)`` (WGAN-GP's penalty); only the total is needed."""

    parents = ("Global",)

    def __enter__(self) -> None: ...

    def __exit__(self, *args: object) -> None: ...


def step_flops(cfg: DictConfig) -> int:
    """Model FLOPs of one generator step (forward and backward of every update; optimizer
    arithmetic is not counted), by torch.utils.flop_counter on the hand-written loop."""
    step = handwritten_step(cfg, bench_device(cfg), options=False)
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _Unattributed()
    with counter:
        step()
    return int(counter.get_total_flops())


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
        _synchronize(device)
        start = clock()
        a @ b
        _synchronize(device)
        best = min(best, clock() - start)
    return 2 * n**3 / best


# -- one comparison, and a sweep of them ---------------------------------------------------


def compare(cfg: DictConfig, peak_flops: float) -> dict[str, Any]:
    """Both paths on one config: images/s, ratio, FLOPs, fraction of peak, peak memory."""
    b = cfg.bench
    images_per_step = cfg.n_critic * cfg.data.batch_size  # real samples shown to D
    seconds = time_paths(cfg)
    memory = memory_of_paths(cfg)
    flops = step_flops(cfg) if b.flops else math.nan
    row: dict[str, Any] = {
        "batch_size": cfg.data.batch_size,
        "shape": list(cfg.data.shape),
        "flops_per_step": flops,
    }
    for path in PATHS:
        step_s = statistics.median(seconds[path]) / b.steps
        row[path] = {
            "images_per_s": images_per_step / step_s,
            "ms_per_step": 1e3 * step_s,
            "flops_per_s": flops / step_s,
            "fraction_of_peak": flops / step_s / peak_flops,
            "peak_memory_mib": memory[path] / 2**20,
            "block_seconds": seconds[path],
        }
    ratios = [h / g for g, h in zip(seconds["ganlab"], seconds["handwritten"], strict=True)]
    row["ratio"] = statistics.median(ratios)
    row["block_ratios"] = ratios
    return row


def _sweep_configs(cfg: DictConfig) -> Iterator[DictConfig]:
    batch_sizes = cfg.bench.get("batch_sizes") or [cfg.data.batch_size]
    image_sizes = cfg.bench.get("image_sizes") or [None]
    if len(cfg.data.shape) != 3:  # 2-D points have no image size
        image_sizes = [None]
    for image_size in image_sizes:
        for batch_size in batch_sizes:
            point = copy.deepcopy(cfg)
            with open_dict(point):
                point.data.batch_size = int(batch_size)
                if image_size is not None:
                    point.data.image_size = int(image_size)
            yield point


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


def _command() -> str:
    try:
        return " ".join(["python -m ganlab.bench", *HydraConfig.get().overrides.task])
    except ValueError:  # not started by @hydra.main (tests compose the config)
        return " ".join(sys.argv)


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Run the comparison (or the sweep in ``bench.batch_sizes`` x ``bench.image_sizes``)."""
    b = cfg.bench
    for key in ("steps", "warmup", "repeats"):
        value = b.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GanlabError(f"bench.{key}={value!r} is not allowed: it must be an integer >= 1")
    check_comparable(cfg)
    if b.get("threads"):
        torch.set_num_threads(int(b.threads))
    device = bench_device(cfg)
    dtype = torch.bfloat16 if str(cfg.trainer.precision) == "bf16-mixed" else torch.float32
    peak = matmul_peak(device, dtype, bench_clock(cfg))
    rows = [compare(point, peak) for point in _sweep_configs(cfg)]
    return {
        "machine": machine(),
        "device": str(device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": _command(),
        "matmul_peak_flops_per_s": peak,
        "matmul_peak_dtype": str(dtype).removeprefix("torch."),
        "config": {
            "model": cfg.model.name,
            "data": cfg.data._target_.rsplit(".", 1)[-1],
            "loss": cfg.loss._target_.rsplit(".", 1)[-1],
            "n_critic": cfg.n_critic,
            "precision": str(cfg.trainer.precision),
            "compile": bool(cfg.model.get("compile", False)),
            "channels_last": bool(cfg.model.get("channels_last", False)),
            "benchmark": cfg.trainer.get("benchmark"),
            "steps": b.steps,
            "warmup": b.warmup,
            "repeats": b.repeats,
            "clock": str(b.get("clock", "wall")),
        },
        "peak_memory": "CUDA max_memory_allocated"
        if device.type == "cuda"
        else "rise of the process's peak RSS (Linux VmHWM)",
        "rows": rows,
    }


def format_report(report: dict[str, Any]) -> str:
    c, m = report["config"], report["machine"]
    lines = [
        f"{c['model']} on {c['data']}, loss {c['loss']}, n_critic {c['n_critic']}, "
        f"precision {c['precision']}, compile {c['compile']}, channels_last "
        f"{c['channels_last']}; device {report['device']} "
        f"({m.get('gpu') or m['cpu']}, {m['torch_threads']} threads, torch {m['torch']})",
        f"{c['repeats']} blocks of {c['steps']} generator steps per path, interleaved, after "
        f"{c['warmup']} warm-up steps; medians; {c['clock']} clock",
        "ganlab: ganlab.train.fit without sample/checkpoint callbacks and logger; hand-written: "
        "the same nets, loss and optimizers in a plain loop",
        f"matmul peak: {report['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"({report['matmul_peak_dtype']}); peak memory: {report['peak_memory']}",
        "",
        "| batch | shape | path | images/s | ms/step | GFLOP/step | GFLOP/s | of peak "
        "| peak mem MiB | ganlab / hand-written |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        for path in PATHS:
            p = row[path]
            ratio = f"{row['ratio']:.3f}" if path == "ganlab" else ""
            lines.append(
                f"| {row['batch_size']} | {'x'.join(map(str, row['shape']))} | {path} "
                f"| {p['images_per_s']:.0f} | {p['ms_per_step']:.2f} "
                f"| {row['flops_per_step'] / 1e9:.3f} | {p['flops_per_s'] / 1e9:.1f} "
                f"| {p['fraction_of_peak']:.1%} | {p['peak_memory_mib']:.1f} | {ratio} |"
            )
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    # Lightning's per-fit banners ("GPU available ...") would repeat for every repeat.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    try:
        report = bench(cfg)
    except GanlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_report(report))
    out = Path(cfg.paths.output_dir) / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
