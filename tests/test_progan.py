"""Progressive growing (ganlab.nets.progan): the schedule's arithmetic, the fade-in, the
logged phase, and bad values."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.errors import GanlabError
from ganlab.losses import WassersteinGP
from ganlab.nets import ProGANDiscriminator, ProGANGenerator
from ganlab.nets.progan import growth_levels, growth_phase, growth_starts
from ganlab.train import fit

SMALL = {"channels": 1, "image_size": 32, "channel_max": 8}


def test_the_schedule_in_images():
    assert growth_levels(32) == [4, 8, 16, 32] and growth_levels(64, 16) == [16, 32, 64]
    # 60k images at 4x4; then 8x8 fades in over 60k, trains 60k; 16x16 likewise; ...
    assert growth_starts([4, 8, 16, 32], 60, 60) == {4: 0, 8: 60_000, 16: 180_000,
                                                      32: 300_000}
    phases = {n: growth_phase(n, 4, 60, 60) for n in
              (0, 59_999, 60_000, 75_000, 120_000, 179_999, 180_000, 210_000, 300_000,
               330_000, 360_000, 10**9)}
    assert phases == {0: (0, 1.0), 59_999: (0, 1.0), 60_000: (1, 0.0), 75_000: (1, 0.25),
                      120_000: (1, 1.0), 179_999: (1, 1.0), 180_000: (2, 0.0),
                      210_000: (2, 0.5), 300_000: (3, 0.0), 330_000: (3, 0.5),
                      360_000: (3, 1.0), 10**9: (3, 1.0)}
    assert growth_phase(1, 4, 0, 0) == (3, 1.0)  # no fades, no stable phases: full size


def _at(net, level: int, alpha: float):
    net.level.fill_(level)
    net.alpha.fill_(alpha)
    return net


@pytest.mark.parametrize("level", [1, 2, 3])
def test_a_fade_starts_where_the_previous_resolution_ended(level):
    torch.manual_seed(0)
    g, d = ProGANGenerator(latent_dim=16, **SMALL), ProGANDiscriminator(**SMALL)
    z, x = torch.randn(8, 16), torch.rand(8, 1, 32, 32) * 2 - 1
    new, old = _at(g, level, 0.0)(z), _at(g, level - 1, 1.0)(z)
    assert new.shape == (8, 1, 32, 32) and torch.equal(new, old)
    assert torch.allclose(_at(d, level, 0.0)(x), _at(d, level - 1, 1.0)(x), atol=1e-5)
    # Halfway: the two resolutions' images mixed half and half.
    full = _at(g, level, 1.0)(z)
    assert torch.allclose(_at(g, level, 0.5)(z), (old + full) / 2, atol=1e-5)
    # What G makes at level l is constant over (32 / size)^2 blocks of pixels.
    size = growth_levels(32)[level]
    blocks = full.unfold(2, 32 // size, 32 // size).unfold(3, 32 // size, 32 // size)
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))


@pytest.mark.parametrize("level", [1, 2])
def test_at_the_start_of_a_fade_d_sees_no_detail_finer_than_the_old_resolution(level):
    # The paper blends the reals toward their half-resolution version during a fade; D does it
    # to every image, so at alpha 0 an image and its half-resolution version look the same.
    torch.manual_seed(0)
    d = _at(ProGANDiscriminator(**SMALL), level, 0.0)
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    k = 2 * 32 // growth_levels(32)[level]  # from 32x32 to the old resolution
    coarse = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, k),
                                             scale_factor=k, mode="nearest")
    assert torch.allclose(d(x), d(coarse), atol=1e-5)
    assert not torch.allclose(_at(d, level, 0.5)(x), d(coarse), rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("level", [0, 1, 3])
def test_penalties_measure_gradients_at_the_current_resolution(level):
    from ganlab.penalties import GradientPenalty, _grad_norm_sq

    torch.manual_seed(0)
    d = _at(ProGANDiscriminator(**SMALL), level, 1.0)
    x = torch.rand(8, 1, 32, 32) * 2 - 1
    k = 32 // growth_levels(32)[level]
    assert d.gradient_scale == k
    # The paper's: D fed the images at its resolution, the gradient taken there.
    small = torch.nn.functional.avg_pool2d(x, k).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(small).sum(), small)
    expected = grad.flatten(1).pow(2).sum(1)
    assert torch.allclose(_grad_norm_sq(d, x), expected, rtol=1e-4)
    # WGAN-GP's term on equal real and fake: the same norm, at the current resolution.
    gp = GradientPenalty()(d, x, x)
    assert gp.item() == pytest.approx((expected.sqrt() - 1).pow(2).mean().item(), rel=1e-4)


def test_the_drift_term():
    loss = WassersteinGP(drift=0.001)
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.5])
    # E[D(fake)] - E[D(real)] + 0.001 * E[D(real)^2] = 1 - 0.5 + 0.001 * 2.5
    assert loss.d_objective(real, fake).item() == pytest.approx(0.5025)


@pytest.mark.parametrize(("options", "message"), [
    (["data.image_size=28"], "image_size=28 is not allowed: progressive growing doubles"),
    (["model.generator.start_size=64"], "start_size=64 is larger than data.image_size=32"),
    (["model.generator.fade_kimg=-1"], "model.generator.fade_kimg=-1 is not allowed"),
    (["model.generator.batch_sizes={64:8}"],
     r"model.generator.batch_sizes=\{64: 8\} is not allowed: 64 is not a resolution of the "
     r"growth \(4, 8, 16, 32\)"),
    (["model.generator.batch_sizes={8:0}"], "the batch size at 8 must be an integer >= 1"),
])
def test_bad_values_are_one_line(make_config, options, message):
    with pytest.raises(GanlabError, match=message):
        fit(make_config(["model=progan", *options]))


def test_the_phase_is_logged_and_grids_show_the_current_resolution(make_config, tmp_path):
    cfg = make_config(["model=progan", "data.batch_size=16", "trainer.max_steps=6",
                       "model.generator.stable_kimg=0.032", "model.generator.fade_kimg=0.032",
                       "model.generator.channel_max=8", "model.discriminator.channel_max=8",
                       "trainer.log_every_n_steps=1", "logger=tensorboard"])
    module = fit(cfg).module
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    resolution = [e.value for e in acc.Scalars("progan/resolution")]
    alpha = [e.value for e in acc.Scalars("progan/alpha")]
    # 16 images a step, 32 per phase: 4x4 for 2 steps, 8x8 fading in over 2, then stable.
    assert resolution == [4, 4, 8, 8, 8, 8] and alpha == [1, 1, 0, 0.5, 1, 1]
    assert int(module.generator.level) == 1 and int(module.discriminator.level) == 1
    samples = module.generate(torch.randn(4, module.latent_dim))
    blocks = samples.unfold(2, 4, 4).unfold(3, 4, 4)  # 8x8 shown at 32x32
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_per_resolution_batch_sizes(make_config):
    cfg = make_config(["model=progan", "data.batch_size=16", "trainer.max_steps=6",
                       "model.generator.stable_kimg=0.032", "model.generator.fade_kimg=0.032",
                       "model.generator.batch_sizes={8:8}", "model.generator.channel_max=8",
                       "model.discriminator.channel_max=8", "trainer.log_every_n_steps=1",
                       "logger=tensorboard"])
    module = fit(cfg).module
    acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0}).Reload()
    # 4x4 (the data's 16) until 32 images, then 8 a step at 8x8: a fade over 32 images
    # (4 steps). The size is logged where batch_sizes gives one.
    assert [e.value for e in acc.Scalars("progan/batch_size")] == [8, 8, 8, 8]
    assert [e.value for e in acc.Scalars("progan/alpha")] == [1, 1, 0, 0.25, 0.5, 0.75]
    assert module.images_seen == 2 * 16 + 4 * 8


def test_per_resolution_batch_sizes_need_the_data_in_memory(make_config, tmp_path):
    from test_prepared_data import prepared

    path = prepared(tmp_path)
    cfg = make_config(["model=progan", "data=prepared", f"data.path={path}",
                       "data.image_size=8", "data.memory_limit=1kB", "data.batch_size=4",
                       "model.generator.batch_sizes={4:2}", "trainer.max_steps=1",
                       "evaluation=none"])
    with pytest.raises(GanlabError, match="per-resolution batch sizes need data=prepared in "
                       "memory, but it is streamed"):
        fit(cfg)
