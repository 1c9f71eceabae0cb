"""model=cyclegan: networks, image pool, unpaired data, training, resume, the translation
command and its bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import ROOT, compose_config
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resume import _assert_identical, _state
from torch import nn

from ganlab.build import assemble, build_module
from ganlab.cyclegan import ImagePool
from ganlab.data.unpaired import INK, PAPER, UnpairedDataModule
from ganlab.errors import GanlabError
from ganlab.generator import load_generator
from ganlab.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from ganlab.sample import main
from ganlab.train import fit, train

# Small networks on 16x16 images with a higher learning rate than the paper's, so that a
# 150-step CPU run (about 10 s) learns the built-in pair.
TINY = [
    "model=cyclegan",
    "data.image_size=16",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "model.generator.num_blocks=1",
    "optimizer.generator.lr=1e-3",
    "optimizer.discriminator.lr=1e-3",
]
STEPS = 150
# Over the 360 held-out digits, images in [-1, 1], seeds 0, 1, 2: mean |F(G(a)) - a| is
# 0.65-0.72 untrained and 0.15-0.17 after STEPS steps; mean |G(a) - b| for the true b (the
# same digit recoloured) 0.51-0.64 untrained and 0.10-0.11 trained, |F(b) - a| 0.65-0.72 and
# 0.15-0.16.
RECONSTRUCTION_TOL = 0.3
TRANSLATION_TOL = 0.25


def _reconstruction(generators: nn.Module, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean L1 of A -> B -> A and of B -> A -> B."""
    with torch.no_grad():
        aba = generators.b2a(generators.a2b(a))
        bab = generators.a2b(generators.b2a(b))
    return (aba - a).abs().mean().item(), (bab - b).abs().mean().item()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short training on the built-in pair, with TensorBoard and periodic outputs on; and
    the networks it started from."""
    out = tmp_path_factory.mktemp("cyclegan")
    cfg = compose_config(
        out,
        [
            *TINY,
            "model.lambda_identity=0",  # as experiment=cyclegan_digits (see there)
            f"trainer.max_steps={STEPS}",
            "trainer.log_every_n_steps=25",
            "callbacks.sample_grid.every_n_steps=50",
            "callbacks.diagnostics.every_n_steps=50",
        ],
    )
    L.seed_everything(cfg.seed, verbose=False)  # as fit() does: the run's initial weights
    untrained = build_module(cfg).generator.eval()
    metrics = train(cfg)
    return out, metrics, untrained


def _held_out(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return UnpairedDataModule(image_size=size).tensors("test")


def test_generator_keeps_the_shape_and_rejects_sizes_it_cannot_make():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    y = ResnetGenerator(3, 16, width=4, num_blocks=2)(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    with pytest.raises(GanlabError, match="multiple of 4"):
        ResnetGenerator(3, 18)


@pytest.mark.parametrize(
    "size,layers,field", [(32, 1, 16), (64, 1, 16), (128, 2, 34), (256, 3, 70)]
)
def test_patchgan_depth_follows_the_image_size(size, layers, field):
    d = PatchDiscriminator(3, size, width=4)
    assert d.num_layers == layers
    # Receptive field of one logit: the input pixels its gradient reaches (instance norm,
    # which mixes a whole feature map, left out).
    d.net = nn.Sequential(
        *[nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m for m in d.net]
    )
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    out = d(x)
    assert out.shape[:2] == (1, 1) and out.shape[-1] == size // 2**layers - 2
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero()
    assert rows.max() - rows.min() + 1 == field  # 70: the paper's 70x70 PatchGAN at 256


def test_image_pool_keeps_every_image_once_and_swaps_about_half():
    torch.manual_seed(0)
    pool, given, shown = ImagePool(size=4), [], []
    for step in range(200):
        batch = torch.arange(3 * step, 3 * step + 3, dtype=torch.float32).view(3, 1, 1, 1)
        out = pool(batch)
        if step == 0:
            assert torch.equal(out, batch)  # filling up: shown as they are
        given.append(batch)
        shown.append(out)
    given_ids = torch.cat(given).flatten()
    shown_ids, kept = torch.cat(shown).flatten(), pool.images.flatten()
    # The first 4 fakes are shown and stored; after that every fake is either shown or
    # stored in place of an older one, which is shown instead: none is lost or duplicated.
    everything = torch.cat([given_ids, given_ids[:4]])
    assert sorted(torch.cat([shown_ids, kept]).tolist()) == sorted(everything.tolist())
    swapped = (shown_ids != given_ids)[4:].float().mean().item()  # after the pool filled up
    assert 0.4 < swapped < 0.6
    passthrough = torch.rand(5, 1, 2, 2)
    assert torch.equal(ImagePool(size=0)(passthrough), passthrough)


def test_builtin_pair_is_the_digits_recoloured_and_drawn_unpaired():
    a, b = _held_out()
    assert a.shape == b.shape == (360, 3, 16, 16)
    ink = (a[:, :1] + 1) / 2  # white strokes on black -> stroke intensity
    paper, pen = (torch.tensor(c).view(1, 3, 1, 1) / 127.5 - 1 for c in (PAPER, INK))
    assert (paper + (pen - paper) * ink - b).abs().max() < 0.02  # B = A's strokes recoloured

    data = UnpairedDataModule(image_size=16, batch_size=16)
    data.setup()
    state = data.state_dict()
    batch_a, batch_b = data._draw(16, torch.device("cpu"))
    recoloured = paper + (pen - paper) * (batch_a[:, :1] + 1) / 2
    # Independent draws: B's batch is not A's batch recoloured.
    assert (recoloured - batch_b).abs().flatten(1).amax(1).gt(0.1).sum() > 8
    data.load_state_dict(state)
    again = data._draw(16, torch.device("cpu"))
    assert torch.equal(again[0], batch_a) and torch.equal(again[1], batch_b)


def _write_images(folder, count, size=(20, 12), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new(mode, size, color=(40 * i, 90, 200) if mode == "RGB" else 30 * i).save(
            folder / f"img{i}.png"
        )


def test_two_folders_make_two_domains(tmp_path):
    _write_images(tmp_path / "a", 3)
    _write_images(tmp_path / "b", 5, mode="L")
    data = UnpairedDataModule(str(tmp_path / "a"), str(tmp_path / "b"), image_size=8, batch_size=2)
    a, b = data.tensors("train")
    assert a.shape == (3, 3, 8, 8) and b.shape == (5, 3, 8, 8)
    with pytest.raises(GanlabError, match="data.path_b is not set but data.path_a is"):
        UnpairedDataModule(str(tmp_path / "a"), None)
    with pytest.raises(GanlabError, match=r"data.path_b \S+ does not exist"):
        UnpairedDataModule(str(tmp_path / "a"), str(tmp_path / "nope")).setup()


def test_model_brings_its_data_and_mismatches_fail_in_one_line(tmp_path):
    alone = compose_config(tmp_path, ["model=cyclegan"], tiny=False)
    assert alone == compose_config(tmp_path, ["model=cyclegan", "data=unpaired"], tiny=False)
    assert alone.loss._target_ == "ganlab.losses.LeastSquares"
    assert alone.lr_decay_start == 0.5  # model.recommended: the paper's schedule
    assemble(alone)
    cases = {
        ("model=cyclegan", "data=digits"): "CycleGAN translates between two image domains",
        ("model=dcgan", "data=unpaired"): "data=unpaired holds 2 image domains",
        ("model=cyclegan", "loss=wgan_gp"): "n_critic=5 is not allowed",
        ("model=cyclegan", "regularizer=r1"): r"penalties \(r1\) are not supported by CycleGAN",
        ("model=cyclegan", "data.image_size=18"): "must be a multiple of 4",
        ("model=cyclegan", "model.pool_size=-1"): "model.pool_size=-1",
    }
    for overrides, message in cases.items():
        with pytest.raises(GanlabError, match=message) as err:
            assemble(compose_config(tmp_path, list(overrides), tiny=False))
        assert "\n" not in str(err.value)


def test_training_lowers_the_cycle_loss_and_reconstructs(run):
    out, metrics, untrained = run
    a, b = _held_out()
    before = _reconstruction(untrained, a, b)
    stored = load_generator(out / "checkpoints" / "last.ckpt")
    generators = stored.net
    after = _reconstruction(generators, a, b)
    assert stored.model == "cyclegan" and stored.latent_dim is None
    assert min(before) > RECONSTRUCTION_TOL > max(after)
    # The translations are the right ones: the same digits in the other domain's colours.
    for net in (untrained, generators):
        with torch.no_grad():
            errors = (net.a2b(a) - b).abs().mean().item(), (net.b2a(b) - a).abs().mean().item()
        trained = net is generators
        assert max(errors) < TRANSLATION_TOL if trained else min(errors) > TRANSLATION_TOL
    # train/cycle sums both directions, as L_cyc does.
    assert metrics["train/cycle"] < 0.5 * sum(before)
    assert metrics["steps"] == STEPS and metrics["images_seen"] == STEPS * 2 * 4


def test_run_directory_holds_metrics_grids_events_and_a_safe_checkpoint(run):
    out, metrics, _ = run
    saved = json.loads((out / "metrics.json").read_text())
    assert {"train/cycle", "train/g_adversarial", "train/d_loss", "train/g_loss"} <= set(saved)
    assert "train/identity" not in saved  # lambda_identity 0: not computed
    assert not any(k.startswith("metrics/") for k in saved)  # no sample metrics for cyclegan
    with Image.open(out / "samples" / "final.png") as grid:
        # Two grids of 3 rows (real, translated, reconstructed) of 8 16x16 images, 2 px apart.
        assert grid.size == (8 * 18 + 2, 2 * (3 * 18 + 2))
    assert (out / "samples" / "step_000050.png").is_file()
    acc = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = acc.Tags()
    assert {"samples/a2b", "samples/b2a"} <= set(tags["images"])
    assert {"train/cycle", "grad_norm/generator", "lr/generator"} <= set(tags["scalars"])
    assert {"d_output/real", "d_output/fake"} <= set(tags["histograms"])
    lr = [e.value for e in acc.Scalars("lr/generator")]
    assert lr[0] == pytest.approx(1e-3) and lr[-1] < lr[0]  # linear decay after half the steps
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab"]["g_steps"] == STEPS
    assert ckpt["ganlab"]["image_pools"]["a"].shape == (50, 3, 16, 16)


def test_resume_to_twice_the_steps_equals_a_straight_run(tmp_path):
    quick = [
        *TINY,
        "logger=none",
        "callbacks.sample_grid.every_n_steps=0",
        "callbacks.diagnostics.every_n_steps=0",
        "model.pool_size=6",  # full after 2 steps: the resumed half swaps images
        "lr_decay_start=1.0",  # a schedule that does not depend on max_steps
    ]
    n = 3
    straight = fit(compose_config(tmp_path / "straight", [*quick, f"trainer.max_steps={2 * n}"]))
    fit(compose_config(tmp_path / "halves", [*quick, f"trainer.max_steps={n}"]))
    resumed = fit(compose_config(tmp_path / "halves", [*quick, f"trainer.max_steps={2 * n}"]))
    assert resumed.module.g_steps == 2 * n
    assert resumed.module.last_logged["train/identity"] > 0  # lambda_identity 0.5 here
    _assert_identical(_state(straight), _state(resumed))
    for key in "ab":
        assert torch.equal(straight.module.pools[key].images, resumed.module.pools[key].images)


def _save_pngs(images: torch.Tensor, folder, names):
    for image, name in zip(images, names, strict=True):
        pixels = ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(folder / name)


def _read_pngs(folder, names) -> torch.Tensor:
    pictures = []
    for name in names:
        with Image.open(folder / name) as picture:
            assert picture.size == (16, 16) and picture.mode == "RGB"
            pictures.append(torch.from_numpy(np.asarray(picture, dtype=np.float32)))
    return torch.stack(pictures) / 127.5 - 1  # (N, H, W, 3)


def test_translation_command_writes_one_png_per_input(run, tmp_path, capsys):
    out, _, _ = run
    ckpt = out / "checkpoints" / "last.ckpt"
    a, b = _held_out()
    inputs = ["one.png", "two.jpg", "sub/three.bmp"]  # written as one.png, two.png, sub/three.png
    names = [str(Path(n).with_suffix(".png")) for n in inputs]
    _save_pngs(a[:3], tmp_path / "a", inputs)
    _save_pngs(b[:3], tmp_path / "b", inputs)
    for direction, source, target in (("a2b", "a", b), ("b2a", "b", a)):
        result = tmp_path / f"to_{direction}"
        args = [f"checkpoint={ckpt}", f"input={tmp_path / source}", f"output={result}"]
        assert main([*args, f"direction={direction}"]) == 0
        assert f"wrote 3 translated images ({direction})" in capsys.readouterr().out
        assert sorted(str(p.relative_to(result)) for p in result.rglob("*.png")) == sorted(names)
        # Each file holds its own image translated: the same digit in the other colours.
        translated = _read_pngs(result, names)  # (3, H, W, RGB), files in input order
        assert (translated - target[:3].permute(0, 2, 3, 1)).abs().mean() < TRANSLATION_TOL


@pytest.fixture(scope="module")
def dcgan_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcgan")
    overrides = ["model=dcgan", "trainer.max_steps=1", "logger=none", "evaluation=none"]
    train(compose_config(out, overrides, tiny=False))
    return out / "checkpoints" / "last.ckpt"


def test_translation_bad_inputs_fail_in_one_line(run, dcgan_checkpoint, tmp_path, capsys):
    ckpt = f"checkpoint={run[0] / 'checkpoints' / 'last.ckpt'}"
    _write_images(tmp_path / "in", 2)
    (tmp_path / "empty").mkdir()
    out = f"output={tmp_path / 'out'}"
    cases = {
        (ckpt, f"input={tmp_path / 'missing'}", out): "input ",
        (ckpt, f"input={tmp_path / 'in'}", out, "direction=a2c"): "direction='a2c' is not allowed",
        (ckpt, f"input={tmp_path / 'empty'}", out): "no image files",
        (f"checkpoint={dcgan_checkpoint}", f"input={tmp_path / 'in'}", out): "holds a dcgan model",
        (ckpt, f"output={tmp_path / 'grid.png'}"): "pass input=DIR output=DIR",
    }
    for args, message in cases.items():
        assert main(list(args)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_command_line_trains_out_of_the_box_or_says_what_is_wrong(tmp_path):
    run_dir = tmp_path / "run"
    small = [
        "trainer.max_steps=2",
        "data.image_size=16",
        "model.generator.width=4",
        "model.discriminator.width=4",
        "trainer.enable_progress_bar=false",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "model=cyclegan",
            "data=unpaired",
            *small,
            f"hydra.run.dir={run_dir}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2
    assert (run_dir / "samples" / "final.png").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "model=cyclegan",
            "data=digits",
            f"hydra.run.dir={tmp_path / 'bad'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "use data=unpaired" in proc.stderr and not (tmp_path / "bad").exists()
