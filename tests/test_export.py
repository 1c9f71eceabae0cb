"""A trained generator used anywhere: ``python -m ganlab.export``, ``ganlab.Generator``, and
TorchScript and ONNX graphs that run without ganlab."""

from __future__ import annotations

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
from PIL import Image

from ganlab import Generator
from ganlab.export import main as export_main
from ganlab.generator import CONFIG, WEIGHTS
from ganlab.sample import main as sample_main
from ganlab.train import fit

DCGAN = [o for o in TINY["dcgan"] if not o.startswith("evaluation.")]
COMMON = ["trainer.max_steps=2", "evaluation=none", "callbacks.sample_grid.every_n_steps=0",
          "~callbacks.diagnostics", "logger=none"]
MODELS = {
    "dcgan": [*DCGAN, "ema.half_life_kimg=1"],
    "dcgan-projection": [*DCGAN, "conditioning=projection"],
    "mlp-ring8": ["model=mlp", "data=ring8", *TINY["mlp"]],
    "sngan": ["model=sngan", "model.generator.width=8", "model.discriminator.width=8",
              "data.image_size=16", "model.latent_dim=8"],
    "stylegan": ["model=stylegan", "data.image_size=16", "model.latent_dim=8",
                 "model.generator.channel_base=64", "model.discriminator.channel_base=64",
                 "model.generator.channel_max=16", "model.discriminator.channel_max=16"],
    "cyclegan": ["model=cyclegan", "data.image_size=16", "model.generator.width=4",
                 "model.discriminator.width=4", "model.generator.num_blocks=1"],
}


def train(tmp_path: Path, name: str) -> Path:
    run = tmp_path / name
    fit(compose_config(run, [*COMMON, *MODELS[name]], tiny=False))
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The dcgan (with EMA) checkpoint and its export folder."""
    base = tmp_path_factory.mktemp("export")
    ckpt = train(base, "dcgan")
    (base / "dcgan" / "metrics.json").write_text('{"metrics/fid": 12.5, "protocol/seed": 0}')
    assert export_main([f"checkpoint={ckpt}", f"output={base / 'out'}"]) == 0
    return ckpt, base / "out"


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_the_folder_describes_the_generator(exported):
    ckpt, out = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", CONFIG, WEIGHTS, "samples.png"]
    config = json.loads((out / CONFIG).read_text())
    assert config["class"] == "ganlab.nets.dcgan.DCGANGenerator"
    assert config["arguments"]["width"] == 8 and config["latent_dim"] == 8
    assert config["samples"] == {"kind": "images", "shape": [1, 16, 16], "value_range": [-1, 1]}
    assert config["ema"] is True and config["steps"] == 2 and config["class_names"][:2] == ["0", "1"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: ganlab\n") and "| metrics/fid | 12.5 |" in card
    assert "![samples](samples.png)" in card
    with Image.open(out / "samples.png") as grid:
        assert grid.size == (8 * 18 + 2, 8 * 18 + 2)  # 64 samples of 16x16, 2 px apart


def test_an_export_samples_as_its_checkpoint_does(exported):
    ckpt, out = exported
    from_folder, from_ckpt = Generator.load(out), Generator.load(ckpt)
    assert torch.equal(from_folder.sample(8, seed=3), from_ckpt.sample(8, seed=3))
    assert from_folder.stored.ema and from_folder.latent_dim == 8
    walk = from_folder.interpolate(steps=5, paths=2, seed=1)
    assert walk.shape == (10, 1, 16, 16) and walk.abs().max() <= 1
    pictures = from_folder.to_images(walk[:3])
    assert [p.size for p in pictures] == [(16, 16)] * 3 and pictures[0].mode == "L"
    assert from_folder.to_uint8(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    assert from_folder.to("cpu").device == torch.device("cpu")


def test_training_weights_on_request(exported, tmp_path):
    ckpt, out = exported
    assert export_main([f"checkpoint={ckpt}", f"output={tmp_path / 'raw'}", "ema=false"]) == 0
    raw = Generator.load(tmp_path / "raw")
    assert raw.stored.ema is False
    assert not torch.equal(raw.sample(4), Generator.load(out).sample(4))


def test_sampling_command_takes_an_export_folder(exported, tmp_path):
    ckpt, out = exported
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert sample_main([f"checkpoint={out}", "num_samples=6", f"output={a}"]) == 0
    assert sample_main([f"checkpoint={ckpt}", "num_samples=6", f"output={b}"]) == 0
    assert np.array_equal(np.load(a)["samples"], np.load(b)["samples"])


def _edit(folder: Path, edit) -> None:
    config = json.loads((folder / CONFIG).read_text())
    edit(config)
    (folder / CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "model.safetensors is missing"),
    ("altered", "model.safetensors has changed since the export"),
    ("unknown-class", "class=os.system is not allowed"),
    ("not-plain", "arguments.width._target_ is not allowed"),
    ("wrong-size", "model.safetensors does not fit its config.json"),
])
def test_a_broken_export_is_one_line(exported, tmp_path, capsys, case, message):
    import shutil

    _, out = exported
    folder = tmp_path / case
    shutil.copytree(out, folder)
    if case == "missing":
        (folder / WEIGHTS).unlink()
    elif case == "altered":
        data = bytearray((folder / WEIGHTS).read_bytes())
        data[-1] ^= 0xFF
        (folder / WEIGHTS).write_bytes(bytes(data))
    elif case == "unknown-class":
        _edit(folder, lambda c: c.update({"class": "os.system"}))
    elif case == "not-plain":
        _edit(folder, lambda c: c["arguments"].update(
            {"width": {"_target_": "builtins.open", "_args_": ["x", "w"]}}))
    else:
        _edit(folder, lambda c: c["arguments"].update({"width": 16}))
    code = sample_main([f"checkpoint={folder}", f"output={tmp_path / 'x.npz'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and message in err, err
    assert not (tmp_path / "x.npz").exists()


def test_bad_export_arguments_write_nothing(exported, tmp_path, capsys):
    ckpt, out = exported
    before = _hashes(out)
    assert export_main([f"checkpoint={ckpt}", f"output={out}"]) == 2
    assert "exists; choose another folder or pass overwrite=true" in capsys.readouterr().err
    assert export_main([f"checkpoint={ckpt}", f"output={tmp_path / 'x'}", "formats=[tflite]"]) == 2
    assert "tflite is not one of" in capsys.readouterr().err
    assert _hashes(out) == before and not (tmp_path / "x").exists()
    assert export_main([f"checkpoint={ckpt}", f"output={out}", "overwrite=true",
                        "num_samples=4"]) == 0
    assert _hashes(out)["samples.png"] != before["samples.png"]  # replaced, whole
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]


def test_points_come_in_data_coordinates(tmp_path):
    ckpt = train(tmp_path, "mlp-ring8")
    assert export_main([f"checkpoint={ckpt}", f"output={tmp_path / 'ring'}"]) == 0
    g = Generator.load(tmp_path / "ring")
    points = g.sample(5)
    z = g.latents(5)
    with torch.no_grad():
        assert torch.equal(points, g.net(z) * 2.5)  # ring8's scale


@pytest.mark.slow
def test_loading_an_export_imports_neither_lightning_nor_hydra(exported):
    _, out = exported
    script = (f"import sys; from ganlab import Generator; g = Generator.load({str(out)!r}); "
              "g.sample(2); print(sorted(m for m in ('lightning', 'pytorch_lightning', 'hydra') "
              "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


RUNNER = textwrap.dedent('''
    """Runs exported graphs without ganlab: torch.jit.load and onnxruntime."""
    import json, sys
    import numpy as np, onnxruntime, torch

    folder, inputs_file, out_file = sys.argv[1:]
    inputs = dict(np.load(inputs_file))
    names = json.loads(open(folder + "/inputs.json").read())
    script = torch.jit.load(folder + "/model.ts")
    onnx = onnxruntime.InferenceSession(folder + "/model.onnx")
    results = {}
    for batch in (1, 3):
        feed = {n: inputs[n][:batch] for n in names}
        with torch.no_grad():
            results[f"ts{batch}"] = script(*[torch.from_numpy(feed[n]) for n in names]).numpy()
        results[f"onnx{batch}"] = onnx.run(None, feed)[0]
    assert "ganlab" not in sys.modules
    np.savez(out_file, **results)
''')


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp-ring8", "dcgan-projection", "sngan", "stylegan",
                                  "cyclegan"])
def test_graphs_run_without_ganlab_and_match_pytorch(tmp_path, name):
    from ganlab.generator import load_generator
    from ganlab.portable import PortableGenerator, example_inputs

    ckpt = train(tmp_path, name)
    out = tmp_path / "out"
    assert export_main([f"checkpoint={ckpt}", f"output={out}",
                        "formats=[torchscript,onnx]"]) == 0
    stored = load_generator(out)
    portable = PortableGenerator(stored.net, stored.scale).eval()
    inputs = example_inputs(portable, stored.latent_dim, list(stored.data["shape"]), batch=3,
                            psi=0.5)
    names = portable.input_names()
    (out / "inputs.json").write_text(json.dumps(names))
    np.savez(tmp_path / "inputs.npz", **{n: t.numpy() for n, t in zip(names, inputs, strict=True)})
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(out),
                           str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    with torch.no_grad():
        eager = portable(*inputs).numpy()
    for batch in (1, 3):
        for fmt in ("ts", "onnx"):
            assert outputs[f"{fmt}{batch}"].shape == eager[:batch].shape
            assert np.abs(outputs[f"{fmt}{batch}"] - eager[:batch]).max() <= 1e-4, (fmt, batch)
    assert ROOT.exists()
