"""The data path's benchmark (docs/BENCHMARKS.md): prepare throughput, image_folder's first and
cached start, training on a streamed set against the same set in memory, and the peak
resident memory while streaming a set larger than data.memory_limit.

    python scripts/data_bench.py images=2000 steps=20 workdir=bench-data

It writes its own synthetic set first: ``images`` 64x64 RGB PNGs of random shapes over random
textures (ellipses, rectangles, lines over noise or gradients), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from PIL import Image, ImageDraw

from ganlab.cli import arg, run_command

CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class DataBenchArgs:
    images: int = arg(2000, "synthetic 64x64 RGB images to write")
    steps: int = arg(10, "timed generator steps of each training run (after 5 untimed)")
    batch_size: int = arg(32, "training batch size (dcgan at 64x64)")
    workdir: str = arg("bench-data", "where the synthetic images and prepared sets go")


def synthetic(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` 64x64 RGB PNGs: a textured background and a few random filled shapes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.broadcast_to(np.linspace(0, 1, 64)[None, :, None], (64, 64, 1))
    for i in range(n):
        if i % 2:
            base = rng.integers(0, 256, (64, 64, 3)) * rng.uniform(0.2, 0.6)
        else:
            base = ramp * rng.integers(0, 256, 3) + (1 - ramp) * rng.integers(0, 256, 3)
        image = Image.fromarray(base.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(1, 5)):
            box = sorted(rng.integers(0, 64, 2)), sorted(rng.integers(0, 64, 2))
            xy = [box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1]
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            kind = rng.integers(0, 3)
            if kind == 0:
                draw.ellipse(xy, fill=color)
            elif kind == 1:
                draw.rectangle(xy, fill=color)
            else:
                draw.line(xy, fill=color, width=int(rng.integers(1, 6)))
        image.save(folder / f"{i:06d}.png")


def prepare_rate(source: Path, output: Path, workers: int, layout: str = "zip") -> float:
    from ganlab.data.preparing import prepare_set
    from ganlab.data.source import open_source
    from ganlab.imagefiles import DecodeOptions

    outcome = prepare_set(open_source(source, "none"), output, DecodeOptions(64, 3), layout,
                          workers, overwrite=True, progress=False)
    return outcome.meta["images"] / outcome.seconds


def folder_start(source: Path, cache: Path) -> float:
    """Seconds from nothing to the images in memory through data=image_folder."""
    from ganlab.data import ImageFolderDataModule

    start = time.perf_counter()
    ImageFolderDataModule(str(source), image_size=64, cache_dir=str(cache), workers=2).setup()
    return time.perf_counter() - start


class StepTimer(L.Callback):
    """Times generator steps after ``skip`` untimed ones; writes images/s to ``output``."""

    def __init__(self, output: str, skip: int = 5) -> None:
        self.output, self.skip, self.times = output, skip, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter())
        timed = self.times[self.skip:]
        batch = trainer.datamodule.batch_size
        Path(self.output).write_text(json.dumps(batch * (len(timed) - 1) / (timed[-1] - timed[0])))


def train_rate(path: Path, args: DataBenchArgs, memory_limit: str, out: Path) -> float:
    from hydra import compose, initialize_config_dir

    from ganlab.train import fit

    overrides = [
        "model=dcgan", "data=prepared", f"data.path={path}", "data.image_size=64",
        f"data.batch_size={args.batch_size}", f"data.memory_limit={memory_limit}",
        "data.workers=2", "evaluation=none", "logger=none", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        f"trainer.max_steps={args.steps + 5}", "callbacks.sample_grid.every_n_steps=100000",
        "~callbacks.evaluation", f"paths.output_dir={out}", f"paths.data_dir={out}/data",
        "+callbacks.timer._target_=data_bench.StepTimer", f"+callbacks.timer.output={out}/rate",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    fit(cfg)
    return json.loads((out / "rate").read_text())


def _kib(pid: int | str, field: str, file: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:  # a worker that has just ended
        pass
    return 0


def stream_rss(path: str, limit: str, batches: int) -> None:
    """(In a process of its own.) Streams ``batches`` batches and prints, in MiB, the memory
    before streaming and the peak while streaming of this process and its loader workers
    together: the sum of their proportional set sizes (PSS: pages shared between the forked
    workers and this process are counted once, not once per process), sampled every batch."""
    import torch

    from ganlab.data import PreparedDataModule

    def pss() -> int:
        pid = os.getpid()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum(_kib(p, "Pss", "smaps_rollup") for p in [pid, *children])

    base = pss()
    data = PreparedDataModule(path, memory_limit=limit, workers=2, reference_images=64)
    data.setup()
    assert data._stream is not None, "the set fits the limit: not streamed"
    peak, start = 0, time.perf_counter()
    for _ in range(batches):
        x, _ = data._next_batch()
        assert x.dtype == torch.float32
        peak = max(peak, pss())
    rate = batches * len(x) / (time.perf_counter() - start)  # the data path alone, no model
    print(json.dumps({"before_mib": round(base / 1024, 1), "peak_mib": round(peak / 1024, 1),
                      "batches": batches, "images_per_s": round(rate, 1)}))


def bench(args: DataBenchArgs) -> int:
    work = Path(args.workdir).expanduser().resolve()
    source = work / "images"
    if not source.is_dir():
        synthetic(source, args.images)
    sys.path.insert(0, str(Path(__file__).parent))  # StepTimer as data_bench.StepTimer
    results: dict = {"images": args.images, "cpus": os.cpu_count()}
    for workers in (1, 2):
        results[f"prepare_images_per_s_{workers}proc"] = round(
            prepare_rate(source, work / "set.zip", workers), 1)
    cache = work / "cache"
    results["image_folder_first_s"] = round(folder_start(source, cache), 2)
    results["image_folder_cached_s"] = round(folder_start(source, cache), 2)
    prepare_rate(source, work / "set-litdata", 2, "litdata")
    lit = work / "set-litdata"
    # In turn, twice each, so that both meet the same machine load; the means are reported.
    rates: dict[str, list[float]] = {"auto": [], "1MB": []}
    for i in range(2):
        for limit, runs in rates.items():
            runs.append(train_rate(lit, args, limit, work / f"run-{limit}-{i}"))
    memory, streamed = (sum(r) / len(r) for r in rates.values())
    results.update(train_in_memory_images_per_s=round(memory, 1),
                   train_streamed_images_per_s=round(streamed, 1),
                   streamed_over_in_memory=round(streamed / memory, 3))
    size = args.images * 3 * 64 * 64
    limit = f"{size // 4}"  # the set is four times the limit
    for name, batches in (("half_pass", args.images // 128), ("three_passes", 3 * args.images // 64)):
        proc = subprocess.run(
            [sys.executable, __file__, "--rss", str(lit), limit, str(batches)],
            capture_output=True, text=True, check=True)
        results[f"stream_rss_{name}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    results["set_mib"], results["memory_limit_mib"] = size / 2**20, size / 4 / 2**20
    print(json.dumps(results, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rss"]:
        stream_rss(argv[1], argv[2], int(argv[3]))
        return 0
    return run_command(DataBenchArgs, bench, argv, prog="python scripts/data_bench.py",
                       summary="Benchmark the data path on a synthetic set.")


if __name__ == "__main__":
    sys.exit(main())
