"""R3GAN's networks (ganlab.nets.r3gan): shapes at every size the layout allows, blocks that
start as the identity, conditional G and D, one-line errors, and short real runs of the
recipe (unconditional and class-conditional)."""

import math

import pytest
import torch

from ganlab.errors import GanlabError
from ganlab.nets import R3GANDiscriminator, R3GANGenerator
from ganlab.nets.r3gan import ResidualBlock, r3gan_layout
from ganlab.schedules import Cosine
from ganlab.train import fit

SMALL = {"channel_base": 64, "channel_max": 16, "blocks_per_stage": 1, "group_channels": 4}


def test_layout_widths_follow_channel_base_and_max():
    # min(256 / r, 32) at r = 4, 8, 16, 32, in multiples of 8.
    assert r3gan_layout(32, 256, 32, 8) == (4, [32, 32, 16, 8])
    assert r3gan_layout(28, 256, 32, 8) == (7, [32, 16, 8])  # 256 // 7 = 36 -> 32
    # The paper's CIFAR-10 widths: 768 at every resolution (cardinality 768 / 8 = 96).
    assert r3gan_layout(32, 24576, 768, 8) == (4, [768] * 4)


@pytest.mark.parametrize("size,channels", [(16, 1), (28, 1), (32, 3), (64, 3)])
def test_shapes(size, channels):
    g = R3GANGenerator(8, channels, size, **SMALL)
    d = R3GANDiscriminator(channels, size, **SMALL)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size)
    assert d(x).shape == (2, 1)
    g.eval()
    big = g(torch.randn(2, 8) * 1e3)
    assert big.abs().max() <= 1  # clamped in eval mode, as stylegan's


def test_every_block_starts_as_the_identity():
    block = ResidualBlock(width=16, cardinality=4, expansion=2, kernel=3, num_blocks=4)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), x)  # its last conv is zero at initialization
    grouped = block.net[2]
    assert grouped.groups == 4 and grouped.weight.shape == (32, 8, 3, 3)  # 32 / 4 per group
    # MSR init scaled by L^(-1/4): std = gain / sqrt(fan_in) * 4^(-1/4) for the first conv.
    first = block.net[0].weight
    expected = math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(16) * 4 ** (-0.25)
    assert first.std().item() == pytest.approx(expected, rel=0.15)


def test_conditional_networks_use_the_labels():
    torch.manual_seed(0)
    g = R3GANGenerator(8, 1, 16, num_classes=10, **SMALL)
    d = R3GANDiscriminator(1, 16, num_classes=10, **SMALL)
    z = torch.randn(4, 8)
    a, b = g(z, torch.zeros(4, dtype=torch.long)), g(z, torch.ones(4, dtype=torch.long))
    assert a.shape == (4, 1, 16, 16) and not torch.equal(a, b)
    for block in d.modules():  # blocks start as the identity: make D depend on its input
        if isinstance(block, ResidualBlock):
            torch.nn.init.normal_(block.net[4].weight, 0, 0.1)
    logits = d(a, torch.arange(4)), d(a, torch.arange(4) + 1)
    assert logits[0].shape == (4, 1) and not torch.equal(*logits)
    with pytest.raises(GanlabError, match="pass class labels"):
        g(z)
    with pytest.raises(GanlabError, match="pass class labels"):
        d(a)


@pytest.mark.parametrize("make,message", [
    (lambda: R3GANGenerator(8, 1, 36, **SMALL), "r3gan cannot make 36x36 images"),
    (lambda: R3GANDiscriminator(1, 16, **{**SMALL, "kernel_size": 2}), "kernel_size=2"),
    (lambda: R3GANDiscriminator(1, 16, num_classes=10, conditioning="concat", **SMALL),
     "conditioning=concat is not supported by r3gan"),
])
def test_bad_options_are_one_line(make, message):
    with pytest.raises(GanlabError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


# experiment=r3gan_digits shrunk: 16 px, narrow nets, 8 images a step.
TINY_R3GAN = [
    "experiment=r3gan_digits", "data.image_size=16", "data.batch_size=8",
    "model.latent_dim=8", "model.generator.channel_base=64", "model.generator.channel_max=16",
    "model.generator.group_channels=4", "callbacks.sample_grid.every_n_steps=0",
    "trainer.log_every_n_steps=1",
]


@pytest.mark.slow
def test_the_digits_recipe_trains(make_config):
    cfg = make_config([*TINY_R3GAN, "trainer.max_steps=3", "evaluation=none", "logger=none"],
                      tiny=False)
    assert (cfg.loss._target_, cfg.regularizer._target_) == (
        "ganlab.losses.RelativisticPairing", "ganlab.penalties.R1R2")
    result = fit(cfg)
    module = result.module
    assert module.g_steps == 3 and module.images_seen == 24
    logged = module.last_logged
    assert all(math.isfinite(v) for v in logged.values())
    assert logged["train/r1r2"] > 0  # R1 + R2 at every D update
    # The recipe's schedules, at the 16 images seen before the last step.
    lr = Cosine(start=2e-4, end=5e-5, total_kimg=64)(16)
    opt_g, opt_d = result.trainer.optimizers
    assert opt_g.param_groups[0]["lr"] == opt_d.param_groups[0]["lr"] == lr
    assert module.penalties.items[0].weight == Cosine(start=0.05, end=0.005, total_kimg=64)(16) / 2
    # The EMA half-life grows from 0 (R3GAN's schedule): so early it is ~1e-4 images, and the
    # average is still a copy of G.
    assert 0 < module.ema.current < 1e-6
    pairs = zip(module.generator_ema.parameters(), module.generator.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.slow
def test_a_class_conditional_run_trains(make_config):
    cfg = make_config([*TINY_R3GAN, "conditioning=projection", "trainer.max_steps=2",
                       "evaluation=none", "logger=none"], tiny=False)
    result = fit(cfg)
    module = result.module
    assert module.num_classes == 10
    assert module.generator.num_classes == module.discriminator.num_classes == 10
    assert module.g_steps == 2 and all(math.isfinite(v) for v in module.last_logged.values())
