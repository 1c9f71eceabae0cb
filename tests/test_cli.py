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
    assert "loss: hinge, lsgan, minimax, nonsaturating, wgan, wgan_gp" in proc.stdout
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

@pytest.mark.slow
def test_unknown_option_fails_with_the_valid_options(tmp_path):
    proc = run(["loss=wgangp"], tmp_path)
    assert proc.returncode != 0
    assert "wgan_gp" in proc.stderr and "loss" in proc.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))

@pytest.mark.slow
def test_bad_value_fails_with_one_line(tmp_path):
    proc = run(["n_critic=0"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: n_critic=0 is not allowed: it must be an integer >= 1"
    )

@pytest.mark.slow
def test_image_folder_missing_path_fails_with_one_line(tmp_path):
    proc = run(["data=image_folder", f"data.path={tmp_path / 'nowhere'}"], tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "nowhere" in last
