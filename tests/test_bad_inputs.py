"""The bad-input catalogue: `python train.py`, `python -m ganlab.sample` and
`python -m ganlab.evaluate` with bad input exit non-zero with one line naming the problem,
and leave every existing run directory and checkpoint exactly as it was.

ganlab's own errors end stderr with one line starting `error: ` (exit code 2); Hydra's
composition errors (unknown option names, exit code 1) name the option in one of their
lines. The commands run as real processes, forked from one driver (tests/cli_driver.py)
so that the imports are paid once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import QUIET, ROOT, TINY, compose_config
from omegaconf import OmegaConf
from PIL import Image
from test_prepare import write_stylegan_zip

from ganlab.build import assemble
from ganlab.errors import GanlabError
from ganlab.train import fit

DCGAN = [*QUIET, *TINY["dcgan"], "logger=none", "trainer.max_steps=2"]
MLP = [*QUIET, *TINY["mlp"], "model=mlp", "data=ring8", "logger=none", "trainer.max_steps=2"]


def unwritable_dir(base: Path) -> Path:
    """A directory in which no file can be created, by this user too (root ignores modes)."""
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for candidate in (locked, Path("/sys"), Path("/proc")):
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            return candidate
    raise RuntimeError("no unwritable directory found for the read-only output cases")


def write_png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace: two finished runs, broken checkpoints, image folders."""
    ws = tmp_path_factory.mktemp("bad_inputs")
    for name, overrides in {"digits": DCGAN, "ring": MLP}.items():
        run = ws / "runs" / name
        cfg = compose_config(run, [o for o in overrides if o not in QUIET], tiny=False)
        fit(cfg)
        (run / ".hydra").mkdir()
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    good = (ws / "runs" / "digits" / "checkpoints" / "last.ckpt").read_bytes()
    ckpts = ws / "ckpts"
    ckpts.mkdir()
    (ckpts / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    (ckpts / "empty.ckpt").write_bytes(b"")
    torch.save({"state_dict": {}, "ganlab": {}, "payload": os.system}, ckpts / "code.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, ckpts / "foreign.ckpt")
    images = ws / "images"
    for folder in ("good", "corrupt", "empty"):
        (images / folder).mkdir(parents=True)
    for i in range(3):
        write_png(images / "good" / f"{i}.png", i)
        write_png(images / "corrupt" / f"{i}.png", i)
    (images / "corrupt" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (ws / "a_file").write_text("not a directory\n")
    (ws / "data").mkdir()
    write_stylegan_zip(ws / "prepared.zip")  # 8x8 RGB, 3 classes
    return ws


def cases(ws: Path, locked: Path) -> list[dict]:
    """Each case: id, command, args, what its message must contain, and the stage that must
    catch it: "hydra" (composition), "preflight" (before Hydra makes the run directory) or
    "fit" (ganlab.train.fit, before or during training)."""
    digits = ws / "runs" / "digits"
    ckpt = digits / "checkpoints" / "last.ckpt"
    ring_ckpt = ws / "runs" / "ring" / "checkpoints" / "last.ckpt"
    c = ws / "ckpts"
    img = ws / "images"
    t = [  # train.py; each gets a fresh hydra.run.dir unless it names one
        ("unknown-option", DCGAN + ["loss=wgangp"], "wgangp", "hydra"),
        ("unknown-key", DCGAN + ["trainer.max_stepz=5"], "max_stepz", "hydra"),
        (
            "unknown-trainer-arg",
            DCGAN + ["+trainer.foo=1"],
            "unexpected keyword argument 'foo'",
            "fit",
        ),
        (
            "unknown-optimizer-arg",
            DCGAN + ["+optimizer.generator.foo=1"],
            "optimizer.generator: Adam.__init__() got an unexpected keyword argument 'foo'",
            "preflight",
        ),
        (
            "steps-not-int",
            DCGAN + ["trainer.max_steps=abc"],
            "trainer.max_steps='abc'",
            "preflight",
        ),
        ("batch-float", DCGAN + ["data.batch_size=1.5"], "data.batch_size=1.5", "preflight"),
        ("n-critic-zero", DCGAN + ["n_critic=0"], "n_critic=0", "preflight"),
        (
            "lr-negative",
            DCGAN + ["optimizer.generator.lr=-1e-4"],
            "optimizer.generator: Invalid learning rate: -0.0001",
            "preflight",
        ),
        (
            "betas-one",
            DCGAN + ["optimizer.discriminator.betas=[0.5,1.0]"],
            "optimizer.discriminator: Invalid beta parameter at index 1: 1.0",
            "preflight",
        ),
        (
            "eps-negative",
            DCGAN + ["+optimizer.generator.eps=-1"],
            "optimizer.generator: Invalid epsilon value: -1",
            "preflight",
        ),
        ("latent-zero", DCGAN + ["model.latent_dim=0"], "model.latent_dim=0", "preflight"),
        (
            "image-size-unsupported",
            DCGAN + ["data.image_size=30"],
            "dcgan cannot make 30x30",
            "preflight",
        ),
        (
            "every-n-negative",
            DCGAN + ["callbacks.sample_grid.every_n_steps=-1"],
            "every_n_steps=-1",
            "preflight",
        ),
        (
            "log-every-zero",
            DCGAN + ["trainer.log_every_n_steps=0"],
            "log_every_n_steps=0",
            "preflight",
        ),
        ("seed-negative", DCGAN + ["seed=-1"], "seed=-1", "preflight"),
        ("std-zero", MLP + ["data.std=0"], "data.std=0", "preflight"),
        (
            "on-nonfinite-unknown",
            DCGAN + ["on_nonfinite=ignore"],
            "on_nonfinite='ignore'",
            "preflight",
        ),
        ("precision-unknown", DCGAN + ["trainer.precision=fp8"], "trainer:", "fit"),
        ("devices-zero", DCGAN + ["trainer.devices=0"], "trainer:", "fit"),
        ("folder-path-unset", DCGAN + ["data=image_folder"], "data.path is required", "preflight"),
        (
            "folder-missing",
            DCGAN + ["data=image_folder", f"data.path={img / 'nowhere'}"],
            "does not exist",
            "fit",
        ),
        (
            "folder-empty",
            DCGAN + ["data=image_folder", f"data.path={img / 'empty'}"],
            "no image files",
            "fit",
        ),
        (
            "folder-corrupt-png",
            DCGAN + ["data=image_folder", f"data.path={img / 'corrupt'}", "data.batch_size=2",
                     "data.on_bad=fail"],
            "broken.png",
            "fit",
        ),
        (
            "prepared-memory-limit",
            DCGAN + ["data=prepared", f"data.path={ws / 'prepared.zip'}", "data.image_size=8",
                     "data.memory_limit=lots"],
            "data.memory_limit='lots' is not allowed",
            "fit",
        ),
        (
            "prepared-other-size",
            DCGAN + ["data=prepared", f"data.path={ws / 'prepared.zip'}", "data.image_size=16"],
            "holds 8x8 images with 3 channel(s)",
            "fit",
        ),
        (
            "rgb-data-gray-model",
            DCGAN
            + ["data=image_folder", f"data.path={img / 'good'}", "model.generator.channels=1"],
            "model.generator",
            "preflight",
        ),
        (
            "batch-larger-than-folder",
            DCGAN + ["data=image_folder", f"data.path={img / 'good'}", "data.batch_size=64"],
            "has only 3 training samples",
            "fit",
        ),
        (
            "mnist-offline",
            DCGAN + ["data=mnist", "data.download=false", f"paths.data_dir={ws / 'data'}"],
            "mnist data not found",
            "fit",
        ),
        (
            "nan-in-training",
            MLP + ["loss._target_=test_divergence.NaNLoss", "+loss.at_step=2"],
            "training diverged at step 2: train/d_loss is nan",
            "fit",
        ),
        (
            "ckpt-missing",
            DCGAN + [f"ckpt_path={c / 'nope.ckpt'}"],
            "no such checkpoint file",
            "preflight",
        ),
        (
            "ckpt-truncated",
            DCGAN + [f"ckpt_path={c / 'truncated.ckpt'}"],
            "it is truncated",
            "preflight",
        ),
        (
            "ckpt-empty",
            DCGAN + [f"ckpt_path={c / 'empty.ckpt'}"],
            "it is truncated",
            "preflight",
        ),
        (
            "ckpt-with-code",
            DCGAN + [f"ckpt_path={c / 'code.ckpt'}"],
            "holds Python objects",
            "preflight",
        ),
        (
            "ckpt-other-model",
            DCGAN + [f"ckpt_path={ring_ckpt}"],
            "does not fit this run's model",
            "preflight",
        ),
        (
            "rerun-with-typo",
            DCGAN + [f"hydra.run.dir={digits}", "n_critic=0"],
            "n_critic=0",
            "preflight",
        ),
        (
            "rerun-other-model",
            DCGAN + [f"hydra.run.dir={digits}", "model.generator.width=16"],
            "does not fit this run's model",
            "preflight",
        ),
        (
            "run-dir-read-only",
            DCGAN + [f"hydra.run.dir={locked / 'run'}"],
            "cannot be written",
            "preflight",
        ),
        (
            "run-dir-under-a-file",
            DCGAN + [f"hydra.run.dir={ws / 'a_file' / 'run'}"],
            "cannot be written",
            "preflight",
        ),
    ]
    out = ws / "out"
    s = [  # python -m ganlab.sample
        ("sample-ckpt-missing", [f"checkpoint={c / 'nope.ckpt'}"], "no such file"),
        ("sample-ckpt-truncated", [f"checkpoint={c / 'truncated.ckpt'}"], "it is truncated"),
        ("sample-ckpt-with-code", [f"checkpoint={c / 'code.ckpt'}"], "holds Python objects"),
        ("sample-ckpt-foreign", [f"checkpoint={c / 'foreign.ckpt'}"], "not a ganlab checkpoint"),
        ("sample-num-zero", [f"checkpoint={ckpt}", "num_samples=0"], "num_samples=0"),
        ("sample-num-text", [f"checkpoint={ckpt}", "num_samples=abc"], "num_samples"),
        ("sample-unknown-key", [f"checkpoint={ckpt}", "color=red"], "color"),
        ("sample-bad-suffix", [f"checkpoint={ckpt}", f"output={out / 'x.jpg'}"], ".npz or .png"),
        (
            "sample-dir-missing",
            [f"checkpoint={ckpt}", f"output={ws / 'nowhere' / 'x.npz'}"],
            "does not exist",
        ),
        (
            "sample-dir-read-only",
            [f"checkpoint={ckpt}", f"output={locked / 'x.npz'}"],
            "cannot write",
        ),
        ("sample-bad-device", [f"checkpoint={ckpt}", "device=abacus"], "device='abacus'"),
    ]
    e = [  # python -m ganlab.evaluate
        (
            "evaluate-ckpt-truncated",
            [f"checkpoint={c / 'truncated.ckpt'}"],
            "it is truncated",
        ),
        ("evaluate-no-ckpt", ["num_samples=10"], "pass exactly one of checkpoint=PATH"),
        ("evaluate-num-one", [f"checkpoint={ckpt}", "num_samples=1"], "num_samples=1"),
        ("evaluate-unknown-key", [f"checkpoint={ckpt}", "foo=1"], "unknown key 'foo'"),
    ]
    out_args = [f"output={out / 'x.npz'}"]
    result = []
    for id_, args, message, stage in t:
        if not any(a.startswith("hydra.run.dir=") for a in args):
            args = [*args, f"hydra.run.dir={ws / 'new' / id_}", f"paths.data_dir={ws / 'data'}"]
        result.append(dict(id=id_, command="train", args=args, message=message, stage=stage))
    for id_, args, message in s:
        args = [*out_args, *args] if not any(a.startswith("output=") for a in args) else args
        result.append(dict(id=id_, command="sample", args=args, message=message, stage="cli"))
    for id_, args, message in e:
        result.append(dict(id=id_, command="evaluate", args=args, message=message, stage="cli"))
    for case in result:
        case["cwd"] = str(ws)
    return result


def snapshot(ws: Path) -> dict[str, str]:
    """sha256 of every file under the workspace's runs, checkpoints and images."""
    files = [p for d in ("runs", "ckpts", "images") for p in sorted((ws / d).rglob("*"))]
    return {
        str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }


@pytest.fixture(scope="module")
def catalogue(ws, tmp_path_factory):
    locked = unwritable_dir(tmp_path_factory.mktemp("unwritable"))
    (ws / "out").mkdir(exist_ok=True)
    todo = cases(ws, locked)
    before = snapshot(ws)
    spec = ws / "cases.json"
    spec.write_text(json.dumps(todo))
    results_file = ws / "results.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": ""}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cli_driver.py"), str(spec), str(results_file)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(results_file.read_text())
    return {c["id"]: {**c, **results[c["id"]]} for c in todo}, before, snapshot(ws)


@pytest.mark.slow
def test_the_catalogue_is_large_enough(catalogue):
    results, _, _ = catalogue
    assert len(results) >= 25
    assert {r["command"] for r in results.values()} == {"train", "sample", "evaluate"}


def _ids(ws_placeholder: Path = Path("/ws")) -> list[str]:
    return [c["id"] for c in cases(ws_placeholder, ws_placeholder / "locked")]


@pytest.mark.slow
@pytest.mark.parametrize("case_id", _ids())
def test_bad_input_fails_with_one_line(catalogue, case_id):
    result = catalogue[0][case_id]
    err = result["stderr"]
    assert result["rc"] != 0, err[-2000:]
    assert "Traceback (most recent call last)" not in err, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if result["stage"] == "hydra":  # Hydra's own composition error
        assert result["rc"] == 1
        assert any(result["message"] in line for line in lines), err[-2000:]
    else:
        assert result["rc"] == 2, err[-2000:]
        assert lines[-1].startswith("error: "), err[-2000:]
        assert result["message"] in lines[-1], lines[-1]
    if result["stage"] in ("hydra", "preflight"):  # no run directory was made
        new = Path(result["cwd"]) / "new" / case_id
        assert not new.exists()


@pytest.mark.slow
def test_no_existing_run_or_checkpoint_changed(catalogue):
    _, before, after = catalogue
    assert any(k.endswith("last.ckpt") for k in before)
    assert after == before


@pytest.mark.parametrize(
    "override,message",
    [
        ("seed=4294967296", "seed=4294967296"),
        ("trainer.deterministic=maybe", "trainer.deterministic='maybe'"),
        ("trainer.enable_progress_bar=3", "trainer.enable_progress_bar=3"),
        ("data.num_classes=0", "data.num_classes is 0 but digits has 10 classes"),
        ("data.channels=2", "data.channels=2"),
        ("model.generator.width=0", "model.generator.width=0"),
        ("model.discriminator.width=-8", "model.discriminator.width=-8"),
        ("callbacks.last_checkpoint.every_n_steps=1.5", "every_n_steps=1.5"),
        ("callbacks.sample_grid.num_images=0", "num_images=0"),
        ("evaluation.num_samples=1", "evaluation.num_samples=1"),
        ("evaluation.kid_subset_size=0", "evaluation.kid_subset_size=0"),
        ("loss=wgan_gp", None),
        ("loss=wgan", None),
    ],
)
def test_config_checks_name_key_value_and_rule(tmp_path, override, message):
    cfg = compose_config(tmp_path, [override])
    if message is None:  # a valid config passes
        assemble(cfg)
        return
    with pytest.raises(GanlabError) as err:
        assemble(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=mlp", "data=ring8", "data.radius=-1"], "data.radius=-1"),
        (["model=mlp", "data=grid25", "data.spacing=0"], "data.spacing=0"),
        (["model=mlp", "data=ring8", "data.scale=0"], "data.scale=0"),
        (["model=mlp", "data=ring8", "model.discriminator.dropout=1.0"], "dropout=1.0"),
        (["model=mlp", "data=ring8", "model.generator.hidden=[32,0]"], "hidden=[32, 0]"),
        (["loss=wgan", "loss.clip=0"], "loss.clip=0"),
        (["loss=wgan_gp", "loss.gp_weight=-10"], "loss.gp_weight=-10"),
        (["optimizer=rmsprop", "+optimizer.discriminator.momentum=-0.5"],
         "optimizer.discriminator: Invalid momentum value: -0.5"),
    ],
)
def test_config_checks_for_options_of_other_groups(tmp_path, overrides, message):
    with pytest.raises(GanlabError, match=message.replace("[", r"\[").replace(".", r"\.")):
        assemble(compose_config(tmp_path, overrides, tiny=False))
