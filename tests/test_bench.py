"""``python -m ganlab.bench``: both paths compute the same losses from the same seed (what
makes the speed ratio mean something), and well-formed numbers; no timing thresholds."""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import CONF, QUIET, ROOT, TINY
from hydra import compose, initialize_config_dir

from ganlab.bench import PATHS, bench
from ganlab.errors import GanlabError
from ganlab.handwritten import losses_of_paths

SHORT = ["bench.steps=2", "bench.warmup=1", "bench.repeats=2"]


def compose_bench(tmp_path, overrides):
    model = next(o.split("=", 1)[1] for o in overrides if o.startswith("model="))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "bench",
            overrides=[f"paths.output_dir={tmp_path}", *QUIET, *TINY[model], *overrides],
        )


def positive(x):
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


@pytest.mark.parametrize(
    "setup",
    [
        ["model=dcgan", "data=digits", "data.batch_size=8"],
        # n_critic D updates with the gradient penalty's random interpolation weights
        ["model=mlp", "data=ring8", "data.batch_size=16", "loss=wgan_gp", "n_critic=2"],
        ["model=mlp", "data=ring8", "data.batch_size=16", "loss=wgan"],  # clipping, RMSprop
    ],
)
def test_both_paths_compute_the_same_losses_from_the_same_seed(tmp_path, setup):
    losses = losses_of_paths(compose_bench(tmp_path, setup), steps=4)
    assert len(losses["ganlab"]) == 4
    assert losses["ganlab"] == losses["handwritten"]  # bit for bit
    assert len(set(losses["ganlab"])) == 4  # and they change from step to step


def test_bench_reports_both_paths(tmp_path):
    report = bench(compose_bench(tmp_path, ["model=dcgan", "data=digits", "data.batch_size=8",
                                            *SHORT]))
    assert report["same_losses"] is True
    assert report["device"] == "cpu"
    assert positive(report["matmul_peak_flops_per_s"])
    assert report["machine"]["torch"] and report["machine"]["cpu_count"] >= 1
    (row,) = report["rows"]
    assert positive(row["flops_per_step"]) and positive(row["ratio"])
    assert len(row["block_ratios"]) == 2
    for path in PATHS:
        numbers = row[path]
        for key in ("images_per_s", "ms_per_step", "flops_per_s", "fraction_of_peak"):
            assert positive(numbers[key]), (path, key, numbers[key])
        assert numbers["peak_memory_mib"] >= 0 and math.isfinite(numbers["peak_memory_mib"])
        assert len(numbers["block_seconds"]) == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [("bench.steps=0", "bench.steps"), ("regularizer=r1", "no penalties"),
     ("augment=diffaug", "no augment"), ("ema.half_life_kimg=1", "no ema")],
)
def test_bench_rejects_what_it_cannot_compare(tmp_path, override, message):
    cfg = compose_bench(tmp_path, ["model=mlp", "data=ring8", override])
    with pytest.raises(GanlabError, match=message):
        bench(cfg)


@pytest.mark.slow
def test_command_sweeps_batch_sizes_and_writes_json(tmp_path):
    args = [
        f"hydra.run.dir={tmp_path}",
        *QUIET,
        "model=mlp",
        "data=ring8",
        *TINY["mlp"],
        *SHORT,
        "bench.flops=false",
        "bench.batch_sizes=[8,16]",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "ganlab.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ganlab / hand-written" in proc.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [row["batch_size"] for row in report["rows"]] == [8, 16]
    for row in report["rows"]:
        assert positive(row["ratio"]) and math.isnan(row["flops_per_step"])
        assert all(positive(row[path]["images_per_s"]) for path in PATHS)
