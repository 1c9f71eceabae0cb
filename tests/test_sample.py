"""The sampling command: shapes, value ranges, files, and bad input."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.sample import main
from ganlab.train import train


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Checkpoints of a tiny image run and a tiny 2-D run."""
    from conftest import compose_config

    out = {}
    for name, overrides in {
        "digits": ["model=dcgan", "data=digits", "data.batch_size=16"],
        "ring8": ["model=mlp", "data=ring8", "data.batch_size=32"],
    }.items():
        run = tmp_path_factory.mktemp(name)
        train(compose_config(run, [*overrides, "trainer.max_steps=2", "logger=none"]))
        out[name] = run / "checkpoints" / "last.ckpt"
    return out


def test_images_npz(checkpoints, tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main([f"checkpoint={checkpoints['digits']}", "num_samples=10", f"output={out}"]) == 0
    samples = np.load(out)["samples"]
    assert samples.dtype == np.float32 and samples.shape == (10, 1, 16, 16)
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    assert "wrote 10 samples" in capsys.readouterr().out


def test_points_npz_are_in_data_coordinates(checkpoints, tmp_path):
    out = tmp_path / "p.npz"
    assert (
        main(
            [
                f"checkpoint={checkpoints['ring8']}",
                "num_samples=3000",
                f"output={out}",
                "batch_size=1000",
            ]
        )
        == 0
    )
    samples = np.load(out)["samples"]
    assert samples.shape == (3000, 2) and samples.dtype == np.float32
    # G's tanh range [-1, 1] times the ring's scale 2.5: beyond the unit square, within 2.5.
    assert np.abs(samples).max() <= 2.5 + 1e-5


def test_seed_fixes_the_samples(checkpoints, tmp_path):
    a, b, c = (tmp_path / f"{n}.npz" for n in "abc")
    ckpt = f"checkpoint={checkpoints['digits']}"
    main([ckpt, "num_samples=4", f"output={a}", "seed=1"])
    main([ckpt, "num_samples=4", f"output={b}", "seed=1"])
    main([ckpt, "num_samples=4", f"output={c}", "seed=2"])
    assert np.array_equal(np.load(a)["samples"], np.load(b)["samples"])
    assert not np.array_equal(np.load(a)["samples"], np.load(c)["samples"])


@pytest.mark.parametrize("name", ["digits", "ring8"])
def test_png(checkpoints, tmp_path, name):
    out = tmp_path / "grid.png"
    assert main([f"checkpoint={checkpoints[name]}", "num_samples=16", f"output={out}"]) == 0
    with Image.open(out) as img:
        assert img.size[0] > 16 and img.size[1] > 16


def test_checkpoint_loads_with_weights_only(checkpoints):
    ckpt = torch.load(checkpoints["digits"], weights_only=True)
    assert ckpt["ganlab"]["g_steps"] == 2
    assert ckpt["ganlab"]["config"]["model"]["name"] == "dcgan"


@pytest.mark.parametrize(
    "args,message",
    [
        (["checkpoint=/no/such.ckpt"], "no such file"),
        (["num_samples=0"], "num_samples=0"),
        (["num_samples=abc"], "num_samples"),
        (["output=x.jpg"], "must end in .npz or .png"),
        (["output=/no/such/dir/x.npz"], "does not exist"),
        (["color=red"], "color"),
        (["checkpoint"], "not key=value"),
    ],
)
def test_bad_input_gives_one_line(checkpoints, tmp_path, capsys, args, message):
    base = {"checkpoint": str(checkpoints["digits"]), "output": str(tmp_path / "x.npz")}
    for a in args:
        if "=" in a:
            base[a.split("=", 1)[0]] = a.split("=", 1)[1]
    argv = [f"{k}={v}" for k, v in base.items()] + [a for a in args if "=" not in a]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_not_a_ganlab_checkpoint(tmp_path, capsys):
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, bad)
    assert main([f"checkpoint={bad}", f"output={tmp_path / 'x.npz'}"]) == 2
    assert "not a ganlab checkpoint" in capsys.readouterr().err
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main([f"checkpoint={truncated}", f"output={tmp_path / 'x.npz'}"]) == 2
    assert "cannot be read" in capsys.readouterr().err

@pytest.mark.slow
def test_as_a_module_command(checkpoints, tmp_path):
    out = tmp_path / "cli.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganlab.sample",
            f"checkpoint={checkpoints['ring8']}",
            "num_samples=5",
            f"output={out}",
            "seed=3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert np.load(out)["samples"].shape == (5, 2)
