"""model=stylegan: the StyleGAN2 layers' defining properties, a few training steps on digits
through train(cfg), and the truncation trick through the sampling command."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, compose_config

from ganlab.errors import GanlabError
from ganlab.nets import DCGANGenerator
from ganlab.nets.stylegan import StyleGANDiscriminator, StyleGANGenerator
from ganlab.nets.stylegan_layers import ModulatedConv2d
from ganlab.sample import SampleArgs, main, sampling_truncation
from ganlab.stored import StoredGenerator
from ganlab.train import train

SMALL = {"latent_dim": 16, "channels": 1, "image_size": 16, "channel_base": 64, "channel_max": 16}
TINY = [
    "model=stylegan",
    "model.latent_dim=16",
    "model.generator.channel_base=64",
    "model.generator.channel_max=16",
    "model.discriminator.channel_base=64",
    "model.discriminator.channel_max=16",
    "data.image_size=16",
    "data.batch_size=16",
]


def test_demodulated_weights_have_unit_norm_per_output_channel():
    torch.manual_seed(0)
    layer = ModulatedConv2d(8, 6, w_dim=16, size=8)
    styles = 3 * torch.randn(4, 8)
    weight = layer.modulated_weight(styles)  # (B, out, in, k, k)
    norms = weight.square().sum(dim=(2, 3, 4)).sqrt()
    torch.testing.assert_close(norms, torch.ones(4, 6))
    # The layer's one conv for the batch equals a grouped conv with these per-sample weights.
    x, w = torch.randn(4, 8, 8, 8), torch.randn(4, 16)
    out = layer(x, w, noise_mode="none")
    grouped = F.conv2d(
        x.reshape(1, 32, 8, 8),
        layer.modulated_weight(layer.affine(w)).reshape(24, 8, 3, 3),
        padding=1,
        groups=4,
    ).reshape(4, 6, 8, 8)
    expected = F.leaky_relu(grouped + layer.bias[:, None, None], 0.2) * 2**0.5
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def _recorded_ws(generator: StyleGANGenerator) -> dict[int, list[torch.Tensor]]:
    """Hooks that record the w each synthesis layer's style affine receives, by ws index."""
    seen: dict[int, list[torch.Tensor]] = {}
    i = 0
    for block in generator.blocks:
        affines = [c.affine for c in (block.conv0, block.conv1) if c is not None]
        for k, affine in enumerate([*affines, block.torgb.affine]):
            index = i + k
            affine.register_forward_hook(
                lambda _m, inp, _out, index=index: seen.setdefault(index, []).append(inp[0])
            )
        i += len(affines)
    return seen


def test_style_mixing_switches_styles_at_the_crossover():
    torch.manual_seed(0)
    g = StyleGANGenerator(**SMALL).eval()
    seen = _recorded_ws(g)
    z1, z2 = torch.randn(3, 16), torch.randn(3, 16)
    w1, w2 = g.mapping(z1), g.mapping(z2)
    assert g.num_ws == 6 and sorted(seen) == []
    for crossover in range(1, g.num_ws):
        seen.clear()
        g(z1, mix_z=z2, crossover=crossover)
        assert sorted(seen) == list(range(g.num_ws))
        for index, ws in seen.items():  # toRGB shares its index with the next block's conv
            for w in ws:
                torch.testing.assert_close(w, w1 if index < crossover else w2)


@pytest.mark.parametrize("mixing_prob", [0.0, 1.0])
def test_training_mixes_styles_with_the_configured_probability(mixing_prob):
    torch.manual_seed(1)
    g = StyleGANGenerator(**SMALL, mixing_prob=mixing_prob).train()
    seen = _recorded_ws(g)
    z = torch.randn(4, 16)
    w = g.mapping(z)
    for _ in range(5):
        seen.clear()
        g(z)
        same = [torch.allclose(seen[i][0], w) for i in range(g.num_ws)]
        if mixing_prob == 0:
            assert all(same)
        else:  # a prefix of layers gets w(z), the rest one other w
            cut = same.index(False)
            assert cut >= 1 and not any(same[cut:])
            for i in range(cut + 1, g.num_ws):
                torch.testing.assert_close(seen[i][0], seen[cut][0])


def test_w_avg_is_an_ema_of_the_mapping_output():
    torch.manual_seed(2)
    g = StyleGANGenerator(**SMALL, mixing_prob=0.0).train()
    z = torch.randn(8, 16)
    w = g.mapping(z)
    g(z)
    torch.testing.assert_close(g.w_avg, 0.005 * w.mean(0))
    g.eval()(z)  # sampling leaves it alone
    torch.testing.assert_close(g.w_avg, 0.005 * w.mean(0))


def test_truncation_zero_gives_the_mean_w_image_for_every_z():
    torch.manual_seed(3)
    g = StyleGANGenerator(**SMALL).train()
    for _ in range(3):
        g(torch.randn(8, 16))  # moves w_avg away from zero
    g.eval()
    z = torch.randn(5, 16)
    images = g(z, truncation=0.0)
    mean_image = g.synthesis(g.w_avg.expand(1, g.num_ws, -1)).clamp(-1, 1)
    torch.testing.assert_close(images, mean_image.expand(5, -1, -1, -1))
    untruncated = g(z)
    assert (untruncated - untruncated[:1]).abs().amax(dim=(1, 2, 3))[1:].min() > 1e-3
    torch.testing.assert_close(g(z), untruncated)  # eval mode: fixed noise, same samples


@pytest.mark.parametrize("size", [16, 28, 32, 64])
def test_supported_sizes(size):
    g = StyleGANGenerator(16, 3, size, channel_base=64, channel_max=8)
    d = StyleGANDiscriminator(3, size, channel_base=64, channel_max=8)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 3, size, size)
    assert d(x).shape == (2, 1)


def test_unsupported_size_is_one_line():
    with pytest.raises(GanlabError, match=r"stylegan cannot make 36x36 .*28, 32, 64") as err:
        StyleGANGenerator(16, 1, 36)
    assert "\n" not in str(err.value)


def test_model_stylegan_brings_its_training_setting(tmp_path):
    from ganlab.build import assemble

    module = assemble(compose_config(tmp_path, ["model=stylegan"])).module
    assert type(module.generator).__name__ == "StyleGANGenerator"
    for name in ("generator", "discriminator"):
        opt = module.optimizer_factories[name](getattr(module, name).parameters())
        assert opt.param_groups[0]["lr"] == 0.0025
        assert list(opt.param_groups[0]["betas"]) == [0.0, 0.99]
    (r1,) = module.penalties.of("discriminator")  # its own R1 with StyleGAN2's small gamma
    assert r1.name == "r1" and r1.gamma == 0.01 and r1.interval == 16
    assert module.ema.half_life_kimg == 2 and type(module.loss).__name__ == "NonSaturating"
    assert module.penalties.of("generator") == []  # path length: weight 0, off
    cfg = compose_config(tmp_path, ["model=stylegan", "optimizer=adam", "ema.half_life_kimg=0",
                                    "model.penalties.r1.gamma=0"])
    module = assemble(cfg).module
    assert module.optimizer_factories["generator"](module.generator.parameters()
                                                   ).param_groups[0]["lr"] == 2e-4
    assert not module.ema.enabled and module.penalties.of("discriminator") == []
    for experiment in ("stylegan_digits", "stylegan_cifar10"):
        cfg = compose_config(tmp_path, [f"experiment={experiment}"], tiny=False)
        assert cfg.model.name == "stylegan" and cfg.model.penalties.r1.gamma > 0


@pytest.fixture(scope="module")
def stylegan_run(tmp_path_factory) -> Path:
    """Four G steps on digits with R1 and path-length regularization, every other step."""
    out = tmp_path_factory.mktemp("stylegan")
    cfg = compose_config(
        out,
        [
            *TINY,
            "trainer.max_steps=4",
            "trainer.log_every_n_steps=1",
            "model.penalties.r1.interval=2",
            "model.penalties.path_length.weight=2",
            "model.penalties.path_length.interval=2",
            "callbacks.sample_grid.every_n_steps=2",
            "evaluation=none",
        ],
    )
    metrics = train(cfg)
    assert metrics["steps"] == 4 and np.isfinite(metrics["train/g_loss"])
    assert metrics["train/r1"] > 0
    return out


def test_a_few_training_steps_on_digits(stylegan_run):
    assert (stylegan_run / "samples" / "step_000002.png").is_file()
    assert (stylegan_run / "samples" / "final.png").is_file()
    state = torch.load(stylegan_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["penalties.items.1.mean"] > 0  # the path-length penalty ran
    assert state["generator.w_avg"].abs().sum() > 0
    torch.testing.assert_close(state["generator_ema.w_avg"], state["generator.w_avg"])


def test_resume_is_exact_with_mixing_noise_and_both_penalties(tmp_path):
    """2 steps + resume + 2 steps equals 4 steps: style mixing, noise, w_avg, the path-length
    mean and the lazy R1 and path-length cycles all survive a checkpoint."""
    from ganlab.train import fit

    overrides = [
        *TINY,
        "logger=none",
        "evaluation=none",
        "model.penalties.r1.interval=3",
        "model.penalties.path_length.weight=2",
        "model.penalties.path_length.interval=3",
    ]
    straight = fit(compose_config(tmp_path / "straight", [*overrides, "trainer.max_steps=4"]))
    fit(compose_config(tmp_path / "halves", [*overrides, "trainer.max_steps=2"]))
    resumed = fit(compose_config(tmp_path / "halves", [*overrides, "trainer.max_steps=4"]))
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys() and "penalties.items.1.mean" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _samples(run: Path, tmp_path: Path, *args: str) -> np.ndarray:
    out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.npz"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main([f"checkpoint={ckpt}", "num_samples=6", f"output={out}", *args]) == 0
    return np.load(out)["samples"]

@pytest.mark.slow
def test_sampling_truncation(stylegan_run, tmp_path):
    mean = _samples(stylegan_run, tmp_path, "truncation=0")
    np.testing.assert_allclose(mean, np.broadcast_to(mean[:1], mean.shape))
    full = _samples(stylegan_run, tmp_path, "truncation=1")
    half = _samples(stylegan_run, tmp_path, "truncation=0.7")
    # psi scales each sample's w towards w_avg: the images move towards the mean image.
    assert np.abs(half - mean).mean() < np.abs(full - mean).mean()
    np.testing.assert_array_equal(_samples(stylegan_run, tmp_path), half)  # the model's default

    out = tmp_path / "cli.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganlab.sample",
            f"checkpoint={stylegan_run / 'checkpoints' / 'last.ckpt'}",
            "num_samples=6",
            f"output={out}",
            "truncation=0.7",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(out)["samples"], half)


def test_bad_truncation_is_one_line(stylegan_run, tmp_path, capsys):
    ckpt = stylegan_run / "checkpoints" / "last.ckpt"
    assert main([f"checkpoint={ckpt}", "truncation=-1", f"output={tmp_path / 'x.png'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: truncation=-1") and err.count("\n") == 1
    with pytest.raises(GanlabError, match="needs a generator with a mapping network"):
        sampling_truncation(
            SampleArgs(truncation=0.5),
            StoredGenerator(DCGANGenerator(8, 1, 16), "dcgan", 8, ema=False, g_steps=0),
        )
