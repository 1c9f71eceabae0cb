"""PacGAN packing (Lin et al. 2018): D judges groups of samples concatenated along features."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganlab.config import validate
from ganlab.errors import GanlabError
from ganlab.module import pack_samples
from ganlab.train import build_module, train


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
    scores = module._critic()(x)
    assert scores.shape == (2, 1)
    expected = module.discriminator(torch.cat([x[4], x[5], x[6], x[7]])[None])
    assert torch.allclose(scores[1], expected[0])
    dcgan = build_module(make_config(["model=dcgan", "pack=2"]))
    conv = next(m for m in dcgan.discriminator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.in_channels == 2  # two 1-channel digits


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp", "data=ring8", "pack=2", "trainer.max_steps=20"],
        # a gradient penalty on packed interpolates, and packed images
        ["model=dcgan", "loss=wgan_gp", "pack=2", "trainer.max_steps=3"],
    ],
)
def test_packed_training_runs_and_resumes(make_config, overrides):
    cfg = make_config([*overrides, "callbacks.evaluation.every_n_steps=1000"])
    metrics = train(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("train/d_loss", "train/g_loss"))
    run = Path(cfg.paths.output_dir)
    assert json.loads((run / "metrics.json").read_text())["steps"] == cfg.trainer.max_steps
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["ganlab"]["config"]["pack"] == 2
    # The checkpoint's packed D loads back into a module built from its config.
    build_module(cfg).load_state_dict(ckpt["state_dict"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pack=3"], "data.batch_size=64 is not a multiple of pack=3; choose a batch size "
                     "divisible by 3"),
        (["pack=2", "conditioning=projection"], "pack=2 has no conditional variant (a packed "
         "group would mix labels); use conditioning=none or pack=1"),
        (["pack=2", "model=stylegan"], "pack=2 is not supported by model=stylegan; use "
         "model=mlp, dcgan or sngan, or pack=1"),
        (["pack=0"], "pack=0 is not allowed: it must be an integer >= 1"),
    ],
)
def test_bad_pack_values_say_what_to_do(make_config, overrides, message):
    with pytest.raises(GanlabError) as excinfo:
        validate(make_config(overrides, tiny=False))
    assert str(excinfo.value) == message
