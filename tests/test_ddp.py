"""Data-parallel training with Lightning's real DDP: 2 CPU processes over gloo, started by
``python train.py`` the way a user starts them."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, TINY
from test_sweep import sweep_dir

from ganlab.errors import GanlabError
from ganlab.train import train

TRAIN = str(ROOT / "train.py")
BATCH = 16
DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=5",
    *TINY["dcgan"],
    f"data.batch_size={BATCH}",
    "callbacks.sample_grid.every_n_steps=10",
    "callbacks.evaluation.every_n_steps=10",
    "callbacks.evaluation.monitor=metrics/fid",
]


def run(args, cwd, data_dir, timeout=400):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, TRAIN, *args, f"paths.data_dir={data_dir}"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )


def in_sync_lines(run_dir):
    """(rank, step, generator hash, discriminator hash) from every rank's log."""
    pattern = re.compile(r"rank (\d) of 2: weights in sync at step (\d+) "
                         r"\(generator (\w+), discriminator (\w+)\)")
    logs = sorted(run_dir.glob("*.log"))
    return [m.groups() for log in logs for m in pattern.finditer(log.read_text())]


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync_and_resume(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    proc = run([*DDP, "trainer.max_steps=20", f"hydra.run.dir={run_dir}"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Starting with 2 processes" in proc.stderr and "distributed_backend=gloo" in proc.stderr

    # Both processes end with the same weights: every rank trained on its own data and
    # latents, and they stay identical only because the gradients were averaged.
    lines = in_sync_lines(run_dir)
    assert sorted(rank for rank, *_ in lines) == ["0", "1"], lines
    assert len({tuple(rest) for _, *rest in lines}) == 1, lines

    # Rank 0 alone writes: one metrics.json, the checkpoints, TensorBoard files of one
    # process (events.out.tfevents.<time>.<host>.<pid>.<n>).
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert events and len({e.name.split(".")[-2] for e in events}) == 1, events
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 20
    assert metrics["images_seen"] == 20 * 2 * BATCH  # counted over both processes
    # Evaluation: the ranks generate the samples together and every rank scores all of them.
    assert metrics["protocol/processes"] == 2 and metrics["protocol/num_fake"] == 400
    assert metrics["metrics/fid"] > 0
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "samples" / "final.png").is_file()

    # The checkpoint keeps each rank's random state: the ranks drew different numbers.
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    states = ckpt["ganlab"]["rng_per_rank"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])

    # Resume in the same directory, with plain `trainer.strategy=ddp`: Lightning's DDP
    # choice is replaced by ganlab's strategy.
    more = [a for a in DDP if a != "trainer=ddp"] + ["trainer.strategy=ddp"]
    proc = run([*more, "trainer.max_steps=30", f"hydra.run.dir={run_dir}"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "resuming from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 30
    lines = in_sync_lines(run_dir)
    resumed = [rest for rank, step, *rest in lines if step == "30"]
    assert len(resumed) == 2 and resumed[0] == resumed[1], lines


@pytest.mark.slow
def test_ddp_in_a_local_multirun_fails_with_one_line(tmp_path, data_dir):
    # Lightning starts DDP processes by re-running the command line, `-m` included.
    proc = run(["-m", *DDP, "trainer.max_steps=2", "seed=0"], tmp_path, data_dir, timeout=200)
    assert proc.returncode == 1, proc.stderr[-3000:]
    error = (sweep_dir(tmp_path) / "0" / "error.txt").read_text().splitlines()[0]
    assert error.startswith("trainer=ddp starts its processes by re-running the command line")
    assert "hydra/launcher=slurm" in error


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork"])
def test_spawned_or_forked_processes_fail_with_one_line(make_config, strategy):
    cfg = make_config([f"trainer.strategy={strategy}", "trainer.devices=2"])
    with pytest.raises(GanlabError) as excinfo:
        train(cfg)
    method = strategy.split("_")[1]
    assert str(excinfo.value) == (
        f"trainer.strategy='{strategy}' starts processes by {method}, which ganlab does not "
        "support; use trainer=ddp"
    )
