"""Adding a model is one net file and one YAML (docs/GUIDE.md, "Adding a model"), with no
edit under src/: a toy model the project does not ship, in a folder of the user's put on
Hydra's search path, trains, resumes, samples, evaluates, and a wrong option of it fails
with the one-line error. Every command is a real process (forked from tests/cli_driver.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import QUIET, ROOT

NETS = textwrap.dedent('''
    """A toy GAN of the user's own: plain nn.Modules that know nothing of ganlab."""

    import math

    from torch import nn

    from ganlab.options import at_least


    class ToyGenerator(nn.Module):
        def __init__(self, latent_dim: int, shape: list, width: int = 16) -> None:
            super().__init__()
            self.latent_dim, self.shape = latent_dim, list(shape)
            width = at_least(width, "width")  # a wrong value: one line naming the key
            self.net = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(),
                                     nn.Linear(width, math.prod(shape)), nn.Tanh())

        def forward(self, z):
            return self.net(z).view(-1, *self.shape)


    class ToyDiscriminator(nn.Module):
        def __init__(self, shape: list, width: int = 16) -> None:
            super().__init__()
            width = at_least(width, "width")
            self.net = nn.Sequential(nn.Linear(math.prod(shape), width), nn.LeakyReLU(0.2),
                                     nn.Linear(width, 1))

        def forward(self, x):
            return self.net(x.flatten(1))
''')

YAML = textwrap.dedent('''
    # A toy model: an MLP of one hidden layer for G and D.
    defaults:
      - schema/gan@_here_
      - _self_

    name: toy
    latent_dim: 8
    generator:
      _target_: toy_nets.ToyGenerator
      latent_dim: ${model.latent_dim}
      shape: ${data.shape}
      width: 16
    discriminator:
      _target_: toy_nets.ToyDiscriminator
      shape: ${data.shape}
      width: 16
''')


@pytest.mark.slow
def test_a_model_of_ones_own_trains_resumes_samples_and_evaluates(tmp_path):
    (tmp_path / "toy_nets.py").write_text(NETS)
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "toy.yaml").write_text(YAML)
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    train = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=toy", "data=ring8",
             *QUIET, "callbacks.evaluation.every_n_steps=0", f"hydra.run.dir={run}",
             "evaluation.num_samples=500"]
    cases = [
        ("train", "train", [*train, "trainer.max_steps=20"]),
        ("resume", "train", [*train, "trainer.max_steps=30"]),
        ("sample", "sample", [f"checkpoint={ckpt}", "trust=[toy_nets]", "num_samples=10",
                              f"output={tmp_path / 'toy.npz'}"]),
        ("evaluate", "evaluate", [f"checkpoint={ckpt}", "trust=toy_nets", "num_samples=500",
                                  f"data_dir={tmp_path / 'data'}"]),
        ("untrusted", "sample", [f"checkpoint={ckpt}", f"output={tmp_path / 'no.npz'}"]),
        ("bad-width", "train", [*train[:-2], "model.generator.width=0",
                                f"hydra.run.dir={tmp_path / 'bad'}"]),
    ]
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps([{"id": i, "command": c, "args": a, "cwd": str(ROOT)}
                                for i, c, a in cases]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")])}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_driver.py"), str(spec),
                           str(tmp_path / "results.json")], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for name in ("train", "resume", "sample", "evaluate"):
        assert results[name]["rc"] == 0, (name, results[name]["stderr"][-3000:])

    assert f"resuming from {ckpt}" in results["resume"]["stdout"] + results["resume"]["stderr"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 30 and 0 <= metrics["metrics/modes"] <= 8
    samples = np.load(tmp_path / "toy.npz")["samples"]
    assert samples.shape == (10, 2) and np.isfinite(samples).all()
    assert "metrics/modes" in results["evaluate"]["stdout"]

    untrusted = results["untrusted"]
    assert untrusted["rc"] == 2
    assert "model.generator._target_=toy_nets.ToyGenerator is not allowed" in untrusted["stderr"]
    bad = results["bad-width"]
    assert bad["rc"] == 2 and "Traceback" not in bad["stderr"]
    assert bad["stderr"].strip().splitlines()[-1] == (
        "error: model.generator.width=0 is not allowed: it must be an integer >= 1")
    assert not (tmp_path / "bad").exists()  # stopped before Hydra made the run directory
    assert not any(Path(ROOT, "src").rglob("toy*"))
