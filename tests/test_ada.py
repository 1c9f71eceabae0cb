"""Adaptive discriminator augmentation (ganlab.ada) and small data sets (data.limit)."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.ada import ADA, COLOR, GEOMETRIC
from ganlab.data import DigitsDataModule
from ganlab.errors import GanlabError
from ganlab.options import OptionError
from ganlab.train import fit

ALL = GEOMETRIC + COLOR


def only(name: str, **options) -> ADA:
    """ADA at p = 1 with one transformation on."""
    return ADA(p=1.0, adaptive=False, **{k: float(k == name) for k in ALL}, **options)


def images(b: int = 16, c: int = 3, size: int = 8) -> torch.Tensor:
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", [*ALL, "cutout"])
def test_each_transformation_is_the_identity_at_p_0_and_keeps_the_shape(name):
    x = images()
    ada = only(name, cutout=float(name == "cutout")) if name != "cutout" else ADA(
        p=1.0, adaptive=False, cutout=1.0, **dict.fromkeys(ALL, 0.0))
    y = ada(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.equal(y, x)  # at p = 1 it does something to some image
    ada.p.fill_(0.0)
    assert torch.equal(ada(x), x)


def test_geometric_transformations_keep_the_value_range():
    x = images()
    for name in GEOMETRIC:  # resampling is a convex combination of the image's own pixels
        y = only(name)(x)
        assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6, name


def test_flips_and_quarter_turns_are_exact():
    x = images(b=64)
    y = only("xflip")(x)
    for a, b in zip(x, y, strict=True):
        assert torch.allclose(b, a, atol=1e-5) or torch.allclose(b, a.flip(-1), atol=1e-5)
    y = only("rotate90")(x)
    turns = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    for i in range(len(x)):
        assert any(torch.allclose(y[i], t[i], atol=1e-5) for t in turns)
    seen = {k for i in range(len(x)) for k in range(4) if torch.allclose(y[i], turns[k][i],
                                                                             atol=1e-5)}
    assert seen == {0, 1, 2, 3}


def test_integer_translation_moves_whole_pixels():
    x = images(b=32, size=16)
    y = only("xint")(x)
    # Every output pixel is one input pixel of the same image, not a blend of pixels.
    for a, b in zip(x, y, strict=True):
        gap = (b.flatten()[:, None] - a.flatten()[None, :]).abs().min(1).values
        assert gap.max() < 1e-3
    half = only("xfrac")(x)  # fractional shifts blend neighbours: far from every pixel
    gaps = [(b.flatten()[:, None] - a.flatten()[None, :]).abs().min(1).values.max()
            for a, b in zip(x, half, strict=True)]
    assert max(gaps) > 1e-2


def test_color_on_gray_images():
    x = images(c=1)
    y = only("lumaflip")(x)  # the gray axis reflected: x or -x
    for a, b in zip(x, y, strict=True):
        assert torch.allclose(b, a, atol=1e-5) or torch.allclose(b, -a, atol=1e-5)
    y = only("brightness")(x)  # one offset per image
    shift = (y - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
    for name in ("hue", "saturation"):  # rotations about, and scaling off, the gray axis
        assert torch.allclose(only(name)(x), x, atol=1e-5)


def test_gradients_reach_the_images():
    x = images().requires_grad_(True)
    ADA(p=0.8)(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_the_controller_follows_the_overfitting_heuristic():
    ada = ADA(p=0.5, interval=2, speed_kimg=1.0, target=0.6)
    confident = torch.ones(100)  # r_t = 1 > 0.6: D is sure of every real image
    assert ada.observe(confident) == {}  # tuned every 2 D updates
    logged = ada.observe(confident)
    # 200 real images over the interval, p from 0 to 1 in 1,000: +0.2.
    assert logged == {"augment/p": pytest.approx(0.7), "augment/rt": 1.0}
    unsure = torch.tensor([1.0, -1.0, -1.0, 1.0] * 25)  # r_t = 0 < 0.6
    ada.observe(unsure)
    assert ada.observe(unsure)["augment/p"] == pytest.approx(0.5)
    for _ in range(20):
        ada.observe(-confident)
    assert float(ada.p) == 0.0  # clamped to [0, 1]
    fixed = ADA(p=0.3, adaptive=False, interval=1)
    assert fixed.observe(confident) == {"augment/p": pytest.approx(0.3), "augment/rt": 1.0}


@pytest.mark.parametrize(("options", "message"), [
    ({"target": 1.0}, "target=1.0 is not allowed: it must be in (0, 1)"),
    ({"p": 1.5}, "p=1.5 is not allowed"),
    ({"zoom": 1.0}, "zoom=1.0 is not allowed: not an ADA transformation"),
    ({"interval": 0}, "interval=0 is not allowed"),
    ({"speed_kimg": -1}, "speed_kimg=-1 is not allowed"),
])
def test_bad_options(options, message):
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ADA(**options)


def test_p_is_logged_and_saved(make_config):
    cfg = make_config(["augment=ada", "augment.interval=2", "augment.speed_kimg=0.05",
                       "data.batch_size=16", "trainer.max_steps=6", "logger=tensorboard"])
    result = fit(cfg)
    p = float(result.module.augment.p)
    ckpt = torch.load(f"{cfg.paths.output_dir}/checkpoints/last.ckpt", weights_only=True)
    assert float(ckpt["state_dict"]["augment.p"]) == p
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    logged = [e.value for e in acc.Scalars("augment/p")]
    assert len(logged) == 3 and logged[-1] == pytest.approx(p)  # every 2 D updates
    rt = [e.value for e in acc.Scalars("augment/rt")]
    # Each tuning moves p by 32 images / 50 toward the side r_t says, within [0, 1].
    expected = 0.0
    for r in rt:
        expected = min(1.0, max(0.0, expected + (1 if r > 0.6 else -1 if r < 0.6 else 0) * 0.64))
    assert p == pytest.approx(expected)
    assert result.module.g_steps == 6


def test_limit_picks_the_same_images_for_the_same_seed():
    def train_images(seed: int, limit: int | None) -> torch.Tensor:
        data = DigitsDataModule(batch_size=10, image_size=8, seed=seed, limit=limit)
        data.setup()
        return data._train_data(torch.device("cpu"))[0]

    everything = train_images(0, None)
    a, b, c = train_images(0, 50), train_images(0, 50), train_images(1, 50)
    assert len(a) == 50 and torch.equal(a, b) and not torch.equal(a, c)
    assert all(any(torch.equal(img, ref) for ref in everything) for img in a)
    data = DigitsDataModule(batch_size=10, image_size=8, limit=50)
    data.setup()
    drawn = torch.cat([data._next_batch()[0] for _ in range(10)])  # two passes
    subset = {tuple(img.flatten().tolist()) for img in (a.float() / 127.5 - 1)}
    assert {tuple(img.flatten().tolist()) for img in drawn} <= subset
    assert len(data.tensors("train")[0]) == 1437  # the metrics' reference: the whole split


def test_limit_larger_than_the_data_is_one_line():
    data = DigitsDataModule(batch_size=10, image_size=8, limit=5000)
    with pytest.raises(GanlabError, match=r"^data.limit=5000 is larger than the 1437 training "
                       "images of digits"):
        data.setup()
