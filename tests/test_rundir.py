"""One process per run directory, and a full disk as one line.

Real processes: two ``python train.py`` on one ``hydra.run.dir`` (the second stops with one
line and changes nothing; after ``kill -9`` of the first a new run resumes at once), and a
run directory on a tmpfs too small for a second checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import QUIET, ROOT, TINY

from ganlab import rundir
from ganlab.checkpoint import load_checkpoint, saved_step
from ganlab.errors import GanlabError

RING = [*QUIET, "model=mlp", "data=ring8", "logger=none", "evaluation=none",
        "callbacks.sample_grid.every_n_steps=0", "~callbacks.diagnostics"]


def train(args: list[str], run_dir: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=run_dir.parent, **kwargs)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_second_process_on_a_run_directory_stops_and_a_killed_one_leaves_no_lock(tmp_path):
    run_dir = tmp_path / "run"
    args = [*RING, *TINY["mlp"], "callbacks.last_checkpoint.every_n_steps=1"]
    first = train([*args, "trainer.max_steps=1000000"], run_dir)
    try:
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 120
        while not (ckpt.is_file() and saved_step(ckpt)) and first.poll() is None:
            assert time.monotonic() < deadline, "the first run wrote no checkpoint"
            time.sleep(0.2)
        assert (run_dir / rundir.LOCK_FILE).read_text().strip() == str(first.pid)
        first.send_signal(signal.SIGSTOP)  # holds the lock, writes nothing meanwhile
        before = snapshot(run_dir)

        second = train([*args, "trainer.max_steps=10"], run_dir)
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2, err[-2000:]
        assert "Traceback" not in err
        assert last_line(err) == (
            f"error: run directory {run_dir.resolve()} is in use by another ganlab process "
            f"(PID {first.pid}); wait for it to end or stop it, or choose another hydra.run.dir")
        assert snapshot(run_dir) == before
    finally:
        first.kill()  # SIGKILL: no handler runs, the kernel releases the lock
        first.communicate()
    step = saved_step(ckpt)
    third = train([*args, f"trainer.max_steps={step + 2}"], run_dir)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err[-3000:]
    assert f"resuming from {ckpt}" in out + err
    assert saved_step(ckpt) == step + 2
    assert (run_dir / rundir.LOCK_FILE).read_text().strip() == str(third.pid)


def test_the_lock_is_held_once_per_process_and_released(tmp_path):
    rundir.lock(tmp_path)
    rundir.lock(tmp_path)  # the same process again: fine (Preflight, then fit)
    assert (tmp_path / rundir.LOCK_FILE).read_text().strip() == str(os.getpid())
    probe = [sys.executable, "-c", "import sys; from ganlab import rundir, errors\n"
             "try:\n    rundir.lock(sys.argv[1])\nexcept errors.GanlabError as e:\n"
             "    print(e); sys.exit(2)", str(tmp_path)]
    blocked = subprocess.run(probe, capture_output=True, text=True, env={**os.environ,
                             "LOCAL_RANK": "", "RANK": ""})
    assert blocked.returncode == 2 and f"(PID {os.getpid()})" in blocked.stdout
    rank1 = subprocess.run(probe, capture_output=True, text=True,
                           env={**os.environ, "LOCAL_RANK": "1"})
    assert rank1.returncode == 0, rank1.stdout  # a DDP rank of the same run is not blocked
    rundir.unlock(tmp_path)
    free = subprocess.run(probe, capture_output=True, text=True)
    assert free.returncode == 0, free.stdout


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root, as on the CI machines)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    # G and D of ~135k weights: a 1.6 MB checkpoint; 2.5 MB holds one, not a second beside it.
    big = ["model.generator.hidden=[256,256]", "model.discriminator.hidden=[256,256]",
           "model.latent_dim=8"]
    with small_filesystem(tmp_path / "small", "2500k") as small:
        run_dir = small / "run"
        run = train([*RING, *big, "callbacks.last_checkpoint.every_n_steps=2",
                     "trainer.max_steps=10"], run_dir)
        _, err = run.communicate(timeout=300)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        assert run.returncode == 2, err[-3000:]
        assert "Traceback" not in err
        assert last_line(err) == (f"error: cannot write {ckpt}: no space left on device; "
                                  "the previous checkpoint of step 2 is intact")
        assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt"]  # no temp file
        assert load_checkpoint(ckpt)["ganlab"]["g_steps"] == 2


def test_files_are_written_whole_or_not_at_all(tmp_path):
    with small_filesystem(tmp_path / "small", "64k") as small:
        metrics = small / "metrics.json"
        rundir.write_text_atomic(metrics, '{"steps": 1}\n')
        with pytest.raises(GanlabError) as err:
            rundir.write_text_atomic(metrics, "x" * 200_000)
        assert str(err.value) == f"cannot write {metrics}: no space left on device"
        assert metrics.read_text() == '{"steps": 1}\n'
        picture = small / "samples" / "final.png"
        with pytest.raises(GanlabError, match="no space left on device"), \
                rundir.writing(picture) as tmp:
            tmp.write_bytes(b"\0" * 200_000)
        assert sorted(p.name for p in small.rglob("*") if p.is_file()) == ["metrics.json"]
