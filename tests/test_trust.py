"""Files from elsewhere are data: a checkpoint never runs what its config names.

Checkpoints whose stored config names functions (nested ``_target_``, ``_partial_``, a
non-ganlab class, a ganlab function, a non-plain value) are given to the real
``python -m ganlab.sample`` and ``python -m ganlab.evaluate`` (forked from
tests/cli_driver.py): each exits 2 with one line naming the key, and the file the payload
names is byte for byte unchanged, with no new file beside it. A user's own network
classes load only with ``trust=MODULE`` or an entry point of an installed package.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, compose_config
from hydra.utils import instantiate

from ganlab import registry
from ganlab.errors import GanlabError
from ganlab.generator import load_generator
from ganlab.train import fit

RING = [*TINY["mlp"], "model=mlp", "data=ring8", "logger=none", "trainer.max_steps=2",
        "evaluation.num_samples=200"]
VICTIM_TEXT = "the user's precious file\n"


def _payloads(victim: str) -> dict[str, tuple[str, object, str, tuple[str, ...]]]:
    """id -> (key path to replace, value, where the message must point, commands)."""
    both = ("sample", "evaluate")
    return {
        "nested-open": ("model.generator.hidden",
                        {"_target_": "builtins.open", "_args_": [victim, "w"]},
                        "model.generator.hidden._target_", both),
        "nested-torch-save": ("model.generator.negative_slope",
                              {"_target_": "torch.save", "_args_": [1, victim]},
                              "model.generator.negative_slope._target_", both),
        "partial": ("model.generator._partial_", True, "model.generator._partial_", both),
        "foreign-target": ("model.generator",
                           {"_target_": "torch.save", "obj": 1, "f": victim},
                           "model.generator._target_=torch.save", both),
        "ganlab-function": ("model.generator",
                            {"_target_": "ganlab.sample.main",
                             "argv": [f"checkpoint={victim}", f"output={victim}.png"]},
                            "model.generator._target_=ganlab.sample.main", both),
        "args-key": ("model.generator._args_", [victim, "w"], "model.generator._args_", both),
        "tensor-value": ("model.generator.hidden", torch.tensor([8, 8]),
                         "model.generator.hidden", both),
        "interpolation": ("model.generator.shape", "${oc.env:HOME}",
                          "model.generator.shape", both),
        "data-nested": ("data.std", {"_target_": "builtins.open", "_args_": [victim, "w"]},
                        "data.std._target_", ("evaluate",)),
        "data-foreign": ("data", {"_target_": "torch.save", "obj": 1, "f": victim},
                         "data._target_=torch.save", ("evaluate",)),
    }


def _set(config: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config[part]
    config[last] = value


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trust") / "ring"
    fit(compose_config(run, RING, tiny=False))
    return run / "checkpoints" / "last.ckpt"


def _run_cli(cases: list[dict], work: Path) -> dict:
    spec, results = work / "cases.json", work / "results.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cli_driver.py"), str(spec),
                           str(results)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(results.read_text())


def _listing(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_malicious_checkpoints_are_refused_before_anything_is_called(ring_run, tmp_path):
    victim_dir = tmp_path / "home"
    victim_dir.mkdir()
    victim = victim_dir / "notes.txt"
    victim.write_text(VICTIM_TEXT)
    good = torch.load(ring_run, weights_only=True)
    cases, expected = [], {}
    for name, (key, value, where, commands) in _payloads(str(victim)).items():
        bad = copy.deepcopy(good)
        _set(bad["ganlab"]["config"], key, value)
        path = tmp_path / f"{name}.ckpt"
        torch.save(bad, path)
        for command in commands:
            args = [f"checkpoint={path}"]
            if command == "sample":
                args.append(f"output={tmp_path / 'out' / name}.npz")
            else:
                args.append(f"data_dir={tmp_path / 'data'}")
            case_id = f"{command}-{name}"
            cases.append({"id": case_id, "command": command, "args": args,
                          "cwd": str(tmp_path)})
            expected[case_id] = (path, where)
    (tmp_path / "out").mkdir()
    before = _listing(victim_dir)
    results = _run_cli(cases, tmp_path)
    assert _listing(victim_dir) == before  # byte for byte, and no new file beside it
    assert victim.read_text() == VICTIM_TEXT
    assert not any((tmp_path / "out").iterdir())
    assert len(results) == len(cases) >= 18
    for case_id, result in results.items():
        path, where = expected[case_id]
        err = result["stderr"]
        assert result["rc"] == 2, (case_id, err[-2000:])
        assert "Traceback" not in err, (case_id, err[-2000:])
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: checkpoint={path}: {where}"), (case_id, last)
        assert " is not allowed (" in last, (case_id, last)
        assert last.endswith("; only ganlab networks with plain arguments are loaded"), last


def test_refusal_names_the_key_and_calls_nothing(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    node = {"_target_": "ganlab.nets.MLPGenerator", "latent_dim": 4, "shape": [2],
            "hidden": [{"x": {"_target_": "builtins.open", "_args_": [str(victim), "w"]}}]}
    with pytest.raises(registry.Refused) as err:
        registry.build("network", node, "model.generator")
    assert str(err.value).startswith("model.generator.hidden[0].x._target_ is not allowed")
    assert victim.read_text() == VICTIM_TEXT
    with pytest.raises(registry.Refused, match=r"model.generator._target_=os.system"):
        registry.build("network", {"_target_": "os.system"}, "model.generator")
    with pytest.raises(registry.Refused, match=r"a set, not plain data"):
        registry.build("network", {"_target_": "ganlab.nets.MLPGenerator", "shape": {2}}, "g")
    # Registered classes are found by the names configs use; nothing else is.
    assert registry.lookup("network", "ganlab.nets.DCGANGenerator") is registry.lookup(
        "network", "ganlab.nets.dcgan.DCGANGenerator")
    assert registry.lookup("network", "ganlab.nets.stylegan.PathLengthPenalty") is None
    assert registry.lookup("data", "ganlab.data.Ring") is not None
    net = registry.build("network", {"_target_": "ganlab.nets.MLPGenerator", "latent_dim": 4,
                                     "shape": [2], "hidden": [8]}, "g")
    assert net(torch.zeros(3, 4)).shape == (3, 2)
    with pytest.raises(GanlabError, match=r"^g cannot be built: TypeError"):
        registry.build("network", {"_target_": "ganlab.nets.MLPGenerator", "bogus": 1}, "g")


DCGAN = [o for o in TINY["dcgan"] if not o.startswith("evaluation.")]
MODELS = {
    "mlp": ["model=mlp", *TINY["mlp"]],
    "dcgan": DCGAN,
    "dcgan-projection": [*DCGAN, "conditioning=projection"],
    "mlp-concat": ["model=mlp", *TINY["mlp"], "conditioning=concat"],
    "sngan": ["model=sngan", "model.generator.width=8", "model.discriminator.width=8",
              "data.image_size=16", "model.latent_dim=8"],
    "stylegan": ["model=stylegan", "data.image_size=16", "model.latent_dim=8"],
    "cyclegan": ["model=cyclegan", "data.image_size=16", "model.generator.width=4",
                 "model.discriminator.width=4", "model.generator.num_blocks=1"],
}


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_loads_as_hydra_built_it(model, tmp_path):
    """The safe build gives the generator Hydra's instantiate gave before, weights and all."""
    cfg = compose_config(tmp_path / "run", [*MODELS[model], "trainer.max_steps=1",
                                            "logger=none", "evaluation=none",
                                            "callbacks.sample_grid.every_n_steps=0"], tiny=False)
    fit(cfg)
    stored = load_generator(tmp_path / "run" / "checkpoints" / "last.ckpt")
    reference = instantiate(cfg.model.generator)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt",
                       weights_only=True)["state_dict"]
    prefix = "generator_ema." if stored.ema else "generator."
    reference.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)})
    reference.eval()
    assert type(stored.net) is type(reference)
    torch.manual_seed(0)
    if stored.latent_dim is None:  # image-to-image
        x = torch.rand(2, 3, 16, 16) * 2 - 1
        outs = stored.net.a2b(x), reference.a2b(x)
    else:
        z = torch.randn(4, stored.latent_dim)
        y = torch.arange(4) % 10 if stored.num_classes else None
        args = (z,) if y is None else (z, y)
        torch.manual_seed(1)
        a = stored.net(*args)
        torch.manual_seed(1)
        outs = a, reference(*args)
    assert torch.equal(*outs)


USER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn


    class TinyGenerator(nn.Module):
        """A network of the user's own, outside ganlab."""

        def __init__(self, latent_dim: int, shape: list):
            super().__init__()
            self.net = nn.Linear(latent_dim, shape[0])

        def forward(self, z):
            return torch.tanh(self.net(z))
''')

@pytest.mark.slow
def test_own_classes_load_only_by_an_act_of_the_user(ring_run, tmp_path):
    """trust=MODULE or an installed entry point registers the user's class; a file that
    merely names it is refused."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_gans.py").write_text(USER_MODULE)
    ckpt = torch.load(ring_run, weights_only=True)
    node = {"_target_": "my_gans.TinyGenerator", "latent_dim": 8, "shape": [2]}
    ckpt["ganlab"]["config"]["model"]["generator"] = node
    torch.manual_seed(0)
    weights = torch.nn.Linear(8, 2).state_dict()
    ckpt["state_dict"] = {f"generator.net.{k}": v for k, v in weights.items()}
    path = tmp_path / "own.ckpt"
    torch.save(ckpt, path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}

    def sample(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ganlab.sample", f"checkpoint={path}", "num_samples=5",
             f"output={tmp_path / 'out.npz'}", *extra],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    refused = sample()
    assert refused.returncode == 2
    assert "model.generator._target_=my_gans.TinyGenerator is not allowed" in refused.stderr
    assert "trust=MODULE" in refused.stderr and not (tmp_path / "out.npz").exists()

    trusted = sample("trust=[my_gans]")
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    samples = np.load(tmp_path / "out.npz")["samples"]
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    expected = torch.tanh(z @ weights["weight"].T + weights["bias"]) * 2.5  # ring8's scale
    np.testing.assert_allclose(samples, expected.numpy(), rtol=1e-6, atol=1e-6)
    (tmp_path / "out.npz").unlink()

    # An installed package's entry point (a dist-info on the path, as pip writes it).
    dist = site / "my_gans-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-gans\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ganlab.networks]\ntiny = my_gans:TinyGenerator\n")
    installed = sample()
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "out.npz")["samples"], samples)


def test_trust_of_a_missing_module_is_one_line(ring_run, tmp_path, capsys):
    from ganlab.sample import main

    code = main([f"checkpoint={ring_run}", f"output={tmp_path / 'x.npz'}", "trust=[no_such_mod]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: trust=no_such_mod: the module cannot be imported")
    assert "\n" not in err


def test_report_reads_run_directories_as_data(tmp_path, monkeypatch):
    """Overrides in a run directory are parsed, never resolved: an interpolation stays text."""
    from ganlab.report import report

    monkeypatch.setenv("GANLAB_SECRET", "s3cr3t-value")
    for job, seed in (("0", 0), ("1", 1)):
        hydra_dir = tmp_path / job / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(
            f"- loss.gp_weight=${{oc.env:GANLAB_SECRET}}\n- seed={seed}\n")
        (tmp_path / job / "metrics.json").write_text('{"metrics/fid": 1.0, "steps": 2}')
    markdown, _ = report(tmp_path)
    assert "s3cr3t-value" not in markdown and "GANLAB_SECRET" in markdown
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("{_target_: os.system}\n")
    with pytest.raises(ValueError, match="is not a list of overrides"):
        report(tmp_path)
