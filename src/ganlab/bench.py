"""Speed of ganlab's training path against a hand-written PyTorch loop of the same math.

    python -m ganlab.bench [model=dcgan] [data=digits] [data.batch_size=64] [bench.steps=K ...]

Configured like ``train.py`` (conf/bench.yaml is conf/train.yaml plus a ``bench`` node), so
``model=``, ``data=``, ``loss=``, ``n_critic=`` and ``trainer.*`` apply to both paths:

(a) ganlab: ``ganlab.train.fit(cfg)``, the Lightning Trainer exactly as ``train.py`` builds
    it, without the sample-grid and checkpoint callbacks and without a logger;
(b) hand-written (ganlab.handwritten): the same G, D, loss object, optimizers and n_critic
    schedule, built from the same seed, in a plain loop over the same real batches drawn
    on the device. Both paths' losses over the first steps are compared and reported: equal
    bit for bit when they compute the same thing, which is what makes the ratio mean much.

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

import copy
import json
import logging
import math
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
from omegaconf import DictConfig, open_dict

from ganlab.errors import GanlabError
from ganlab.handwritten import (
    check_comparable,
    ganlab_path_config,
    handwritten_step,
    losses_of_paths,
    seeded_module,
    step_flops,
)
from ganlab.measure import (
    bench_clock,
    bench_device,
    machine,
    matmul_peak,
    peak_memory,
    synchronize,
    timed,
)
from ganlab.train import cuda_check_without_nvml, fit

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PATHS = ("ganlab", "handwritten")


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
        synchronize(device)
        if self._step is None:
            self._step = handwritten_step(self.cfg, device)
            timed(self._step, self.warmup, device)
        else:
            self.seconds["ganlab"].append(self.clock() - self._resumed)
            self.seconds["handwritten"].append(timed(self._step, self.steps, device, self.clock))
        self._resumed = self.clock()


def time_paths(cfg: DictConfig) -> dict[str, list[float]]:
    """Seconds per block of ``bench.steps`` generator steps, per path (one ganlab run)."""
    b = cfg.bench
    clock = Interleaved(cfg, b.warmup, b.steps, b.repeats)
    fit(ganlab_path_config(cfg, b.warmup + b.repeats * b.steps), extra_callbacks=[clock])
    return clock.seconds


def memory_of_paths(cfg: DictConfig) -> dict[str, float]:
    """Peak memory of each path over ``bench.warmup`` steps, built from scratch, in bytes."""
    device = bench_device(cfg)
    with peak_memory(device) as ganlab:
        fit(ganlab_path_config(cfg, cfg.bench.warmup))
    with peak_memory(device) as handwritten:
        step = handwritten_step(cfg, device)
        with cuda_check_without_nvml():  # as fit does; a script without Lightning needs none
            timed(step, cfg.bench.warmup, device)
    return {"ganlab": ganlab["bytes"], "handwritten": handwritten["bytes"]}


# -- one comparison, and a sweep of them ---------------------------------------------------


def compare(cfg: DictConfig, peak_flops: float) -> dict[str, Any]:
    """Both paths on one config: images/s, ratio, FLOPs, fraction of peak, peak memory."""
    b = cfg.bench
    images_per_step = int(cfg.n_critic) * cfg.data.batch_size  # real samples shown to D
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
    check_comparable(seeded_module(cfg))
    if b.get("threads"):
        torch.set_num_threads(int(b.threads))
    device = bench_device(cfg)
    dtype = torch.bfloat16 if str(cfg.trainer.precision) == "bf16-mixed" else torch.float32
    peak = matmul_peak(device, dtype, bench_clock(cfg))
    rows = [compare(point, peak) for point in _sweep_configs(cfg)]
    losses = losses_of_paths(cfg)
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
        # The first steps' losses of both paths from the same seed: the paths compute the same.
        "same_losses": losses["ganlab"] == losses["handwritten"],
        "losses": losses,
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
        f"same losses on both paths over the first {len(report['losses']['ganlab'])} steps "
        f"from the seed: {'yes' if report['same_losses'] else 'NO: the paths differ'}",
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
