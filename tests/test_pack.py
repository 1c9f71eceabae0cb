"""PacGAN packing (Lin et al. 2018): D judges groups of samples concatenated along features."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_resume import _assert_identical

from ganlab.build import assemble, build_module
from ganlab.errors import GanlabError
from ganlab.nets.layers import pack_samples
from ganlab.train import train


def test_pack_samples_concatenates_consecutive_samples():
    points = torch.arange(12.0).view(6, 2)
    assert pack_samples(points, 3).tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    images = torch.randn(4, 3, 5, 5)
    packed = pack_samples(images, 2)
    assert packed.shape == (2, 6, 5, 5)
    assert torch.equal(packed[1, :3], images[2]) and torch.equal(packed[1, 3:], images[3])
    with pytest.raises(ValueError, match="cannot be packed in groups of 4"):
        pack_samples(points, 4)


def test_the_discriminator_scores_each_packed_group(make_config):
    torch.manual_seed(0)
    module = build_module(make_config(["model=mlp", "data=ring8", "pack=4"]))
    first = next(m for m in module.discriminator.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 8  # four 2-D points
    module.discriminator.eval()  # no dropout: the same input gives the same score
    x = torch.randn(8, 2)
    scores = module.discriminator(x)  # D packs its input itself
    assert scores.shape == (2, 1)
    packed = torch.cat([x[4], x[5], x[6], x[7]])[None]  # (1, 8): the second group by hand
    expected = module.discriminator.head(module.discriminator.features(packed))
    assert torch.allclose(scores[1], expected[0])
    dcgan = build_module(make_config(["model=dcgan", "pack=2"]))
    conv = next(m for m in dcgan.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.in_channels == 2  # two 1-channel digits


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp", "data=ring8", "pack=2"],
        # a gradient penalty on packed interpolates, and packed images
        ["model=dcgan", "loss=wgan_gp", "pack=2"],
    ],
)
def test_packed_training_resumes_exactly(make_config, overrides):
    """4 steps straight equal 2 steps, then a resume to 4, bitwise."""
    common = [*overrides, "evaluation=none", "callbacks.sample_grid.every_n_steps=0",
              "~callbacks.diagnostics", "logger=none"]
    straight = make_config([*common, "trainer.max_steps=4"], name="straight")
    metrics = train(straight)
    assert all(math.isfinite(metrics[k]) for k in ("train/d_loss", "train/g_loss"))
    halves = [*common, "callbacks.last_checkpoint.every_n_steps=0"]
    train(make_config([*halves, "trainer.max_steps=2"], name="halves"))
    resumed = make_config([*halves, "trainer.max_steps=4"], name="halves")
    train(resumed)
    a, b = (torch.load(Path(c.paths.output_dir) / "checkpoints" / "last.ckpt",
                       weights_only=True) for c in (straight, resumed))
    assert a["ganlab"]["g_steps"] == b["ganlab"]["g_steps"] == 4
    assert a["ganlab"]["config"]["pack"] == 2
    _assert_identical((a["state_dict"], a["optimizer_states"]),
                      (b["state_dict"], b["optimizer_states"]))
    # The checkpoint's packed D loads back into a module built from its config.
    build_module(straight).load_state_dict(a["state_dict"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pack=3"], "data.batch_size=64 is not a multiple of pack=3; choose a batch size "
                     "divisible by 3"),
        (["pack=2", "conditioning=projection"], "pack=2 has no conditional variant (a packed "
         "group would mix labels); use conditioning=none or pack=1"),
        (["pack=2", "model=stylegan"], "pack=2 is not supported by StyleGANDiscriminator, "
         "which judges one sample at a time; use pack=1, or a discriminator with a pack option"),
        (["pack=0"], "pack=0 is not allowed: it must be an integer >= 1"),
    ],
)
def test_bad_pack_values_say_what_to_do(make_config, overrides, message):
    with pytest.raises(GanlabError) as excinfo:
        assemble(make_config(overrides, tiny=False))
    assert str(excinfo.value) == message
