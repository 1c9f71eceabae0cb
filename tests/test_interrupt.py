"""Kill a real `python train.py` during training (SIGTERM, SIGINT, SIGKILL), resume it, and
reach the uninterrupted run's final step and weights, bitwise."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import QUIET, ROOT, TINY, compose_config

from ganlab.callbacks.interrupt import Interrupted
from ganlab.train import fit

MAX_STEPS = 800
OVERRIDES = [
    *QUIET,
    *TINY["mlp"],
    "model=mlp",
    "data=ring8",
    "data.batch_size=32",
    "logger=none",
    "evaluation=none",
    "callbacks.sample_grid.every_n_steps=0",
    f"trainer.max_steps={MAX_STEPS}",
]


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    # The same thread count as this process: the reference run below is computed here.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *OVERRIDES, f"hydra.run.dir={run_dir}", *extra],
        cwd=run_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_save(proc: subprocess.Popen, ckpt: Path, after_ns: int = 0, timeout: float = 120):
    """Wait until ``ckpt`` is (re)written after ``after_ns``: the run is training."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        if ckpt.exists() and ckpt.stat().st_mtime_ns > after_ns:
            return
        time.sleep(0.01)
    raise TimeoutError(f"{ckpt} was not written")


def load(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True, map_location="cpu")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The final weights of the same run, uninterrupted."""
    out = tmp_path_factory.mktemp("straight")
    overrides = [o for o in OVERRIDES if o not in QUIET]  # compose_config adds QUIET
    return fit(compose_config(out, overrides, tiny=False)).module.state_dict()


def assert_same_weights(ckpt: dict, straight: dict) -> None:
    assert ckpt["ganlab"]["g_steps"] == MAX_STEPS
    assert ckpt["state_dict"].keys() == straight.keys()
    for key, value in straight.items():
        assert torch.equal(ckpt["state_dict"][key], value), key


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_reaches_the_same_weights(tmp_path, straight):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"

    # SIGTERM: finish the step, save, exit 128 + 15 with one line saying where to resume.
    proc = start(run, "callbacks.last_checkpoint.every_n_steps=50")
    wait_for_save(proc, ckpt)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    step = load(ckpt)["ganlab"]["g_steps"]
    assert last.startswith(f"error: interrupted by SIGTERM at step {step}; saved {ckpt}")
    assert f"hydra.run.dir={run}" in last and 50 <= step < MAX_STEPS

    # Resume, saving every step, and SIGKILL it during training: whatever instant the kill
    # lands on (often inside a save), last.ckpt is a complete checkpoint.
    proc = start(run, "callbacks.last_checkpoint.every_n_steps=1")
    wait_for_save(proc, ckpt, after_ns=ckpt.stat().st_mtime_ns)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load(ckpt)["ganlab"]["g_steps"]
    assert step < killed_at < MAX_STEPS

    # Resume again (a leftover last.ckpt.tmp from the kill is simply overwritten).
    proc = start(run, "callbacks.last_checkpoint.every_n_steps=500")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert_same_weights(load(ckpt), straight)


@pytest.mark.slow
def test_sigint_saves_and_exits_130(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = start(run, "callbacks.last_checkpoint.every_n_steps=50")
    wait_for_save(proc, ckpt)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    step = load(ckpt)["ganlab"]["g_steps"]
    assert err.strip().splitlines()[-1].startswith(f"error: interrupted by SIGINT at step {step}")
    assert "Traceback" not in err


class SendSignals(L.Callback):
    """Sends this process a real signal after the given generator steps."""

    def __init__(self, at: dict) -> None:
        self.at = {int(k): getattr(signal, v) for k, v in at.items()}

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if pl_module.g_steps in self.at:
            os.kill(os.getpid(), self.at[pl_module.g_steps])


SLURM = {
    "SLURM_NTASKS": "1",
    "SLURM_JOB_NAME": "ganlab",
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


def test_under_slurm_sigusr1_requeue_still_works_and_sigterm_still_saves(
    make_config, monkeypatch, tmp_path
):
    # Lightning's SLURM handling: SIGUSR1 saves hpc_ckpt_1.ckpt and asks scontrol to
    # requeue the job (there is no scontrol here: Lightning logs that and goes on).
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no scontrol
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    cfg = make_config(
        [
            *[o for o in OVERRIDES if o not in QUIET and o not in TINY["mlp"]],
            "trainer.max_steps=50",
            "+callbacks.signals._target_=test_interrupt.SendSignals",
            "+callbacks.signals.at={3: SIGUSR1, 6: SIGTERM}",
        ]
    )
    with pytest.raises(Interrupted) as err:
        fit(cfg)
    assert err.value.exit_code == 143
    assert str(err.value).startswith("interrupted by SIGTERM at step 6; saved ")
    out = Path(cfg.paths.output_dir)
    assert load(out / "hpc_ckpt_1.ckpt")["ganlab"]["g_steps"] == 3  # Lightning's requeue save
    assert load(out / "checkpoints" / "last.ckpt")["ganlab"]["g_steps"] == 6  # ours
    after = {s: signal.getsignal(s) for s in before}
    assert after == before  # every handler is given back
