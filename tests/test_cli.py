"""The real command line: python train.py in a subprocess, and what it leaves on disk."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAIN = str(ROOT / "train.py")


def run(args, cwd, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, TRAIN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.slow
def test_help_lists_groups_and_options(tmp_path):
    proc = run(["--help"], tmp_path)
    assert proc.returncode == 0
    models = next(ln for ln in proc.stdout.splitlines() if ln.startswith("model: "))
    assert {"dcgan", "mlp", "cyclegan"} <= set(models.removeprefix("model: ").split(", "))
    assert ("loss: hinge, lsgan, minimax, nonsaturating, progan, ragan, rpgan, wgan, wgan_gp"
            in proc.stdout)
    optimizers = next(ln for ln in proc.stdout.splitlines() if ln.startswith("optimizer: "))
    assert {"adam", "rmsprop", "ttur", "mixture2d"} <= set(
        optimizers.removeprefix("optimizer: ").split(", ")
    )
    assert "data:" in proc.stdout and "digits" in proc.stdout


@pytest.mark.slow
def test_default_command_writes_a_complete_run_directory(tmp_path):
    proc = run(
        [
            "trainer.max_steps=20",
            "trainer.log_every_n_steps=5",
            "callbacks.sample_grid.every_n_steps=10",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The progress bar (on stdout) counts generator steps out of max_steps and shows images/s.
    assert "G steps" in proc.stdout and "20/20" in proc.stdout and "img/s=" in proc.stdout
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs
    out = runs[0]
    assert (out / ".hydra" / "config.yaml").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["wall_time_s"] > 0
    assert {"train/d_loss", "train/g_loss"} <= set(metrics)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab"]["g_steps"] == 20
    assert (out / "samples" / "step_000010.png").is_file()
    assert (out / "samples" / "final.png").is_file()

    events = list(out.glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = acc.Tags()
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"} <= set(tags["scalars"])
    d_loss = acc.Scalars("train/d_loss")
    assert [e.step for e in d_loss] == list(range(1, 21))  # every step, stepped by G updates
    assert "samples/grid" in tags["images"]
    assert [e.step for e in acc.Images("samples/grid")] == [10, 20]


# Bad values and options on the real command line: tests/test_bad_inputs.py's catalogue.
