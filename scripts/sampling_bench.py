"""Sampling throughput of an exported generator: PyTorch eager, TorchScript, onnxruntime.

    python scripts/sampling_bench.py folders=[exports/dcgan,exports/stylegan] batches=[1,64]

Each folder must hold model.ts and model.onnx (python -m ganlab.export ...
formats=[torchscript,onnx]). For every batch size the three runtimes run in turn, block after
block (``repeats`` blocks of ``calls`` calls each, after ``warmup`` calls), so they meet the
same machine load; images/s is the median over blocks. One thread unless ``threads``.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from ganlab.cli import arg, run_command
from ganlab.generator import load_generator
from ganlab.portable import PortableGenerator, example_inputs


@dataclass
class BenchArgs:
    folders: list[str] = arg(help="export folders with model.ts and model.onnx", metavar="[A,B]")
    batches: list[int] = arg([1, 64], "batch sizes")
    repeats: int = arg(7, "timed blocks per runtime")
    calls: int = arg(10, "calls per block")
    warmup: int = arg(3, "untimed calls per runtime first")
    threads: int = arg(1, "intra-op threads of torch and onnxruntime")


def runtimes(folder: Path, threads: int) -> tuple[dict, PortableGenerator, object]:
    stored = load_generator(folder)
    portable = PortableGenerator(stored.net, stored.scale).eval()
    script = torch.jit.load(str(folder / "model.ts"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options)
    names = portable.input_names()

    def eager(inputs):
        with torch.no_grad():
            return portable(*inputs)

    def torchscript(inputs):
        with torch.no_grad():
            return script(*inputs)

    def onnx(inputs):
        return session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})

    return {"eager": eager, "torchscript": torchscript, "onnxruntime": onnx}, portable, stored


def bench(args: BenchArgs) -> int:
    torch.set_num_threads(args.threads)
    print("| model | batch | runtime | images/s | ms/call |")
    print("| --- | ---: | --- | ---: | ---: |")
    for folder in map(Path, args.folders):
        paths, portable, stored = runtimes(folder, args.threads)
        for batch in args.batches:
            inputs = example_inputs(portable, stored.latent_dim, list(stored.data["shape"]),
                                    batch=batch, psi=stored.truncation or 1.0)
            for run in paths.values():
                for _ in range(args.warmup):
                    run(inputs)
            seconds: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(args.repeats):
                for name, run in paths.items():
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        run(inputs)
                    seconds[name].append((time.perf_counter() - start) / args.calls)
            for name, values in seconds.items():
                per_call = statistics.median(values)
                print(f"| {stored.model} | {batch} | {name} | {batch / per_call:.0f} "
                      f"| {1e3 * per_call:.2f} |")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(run_command(BenchArgs, bench, prog="python scripts/sampling_bench.py",
                         summary="Sampling throughput of exported generators."))
