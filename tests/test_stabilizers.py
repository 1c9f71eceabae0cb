"""Defining properties of the stabilizers: spectral norm, minibatch std, DiffAugment,
R1 / R1 + R2 / DRAGAN, latent interpolation, and the SNGAN networks."""

import math

import pytest
import torch
from torch import nn

from ganlab.augment import DiffAugment, color, cutout, translation
from ganlab.critic import CriticView
from ganlab.errors import GanlabError
from ganlab.latent import lerp, slerp
from ganlab.nets import DCGANDiscriminator, MLPDiscriminator, SNGANDiscriminator, SNGANGenerator
from ganlab.nets.layers import MinibatchStd
from ganlab.penalties import DRAGAN, R1, R1R2, LazyPenalties
from ganlab.schedules import Linear


def largest_singular_values(d: nn.Module) -> list[float]:
    out = []
    for m in d.modules():
        if isinstance(m, nn.Conv2d | nn.Linear) and hasattr(m, "parametrizations"):
            w = m.weight.detach().flatten(1)  # (out, in * kh * kw), as SN normalises it
            out.append(torch.linalg.matrix_norm(w, ord=2).item())
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda: DCGANDiscriminator(channels=1, image_size=32, width=8, norm="spectral"),
        lambda: MLPDiscriminator(shape=(2,), hidden=(64, 64), norm="spectral"),
        lambda: SNGANDiscriminator(channels=3, image_size=32, width=16),
    ],
)
def test_spectral_norm_makes_every_largest_singular_value_about_one(make):
    torch.manual_seed(0)
    d = make()
    x = torch.randn(
        4,
        *(
            (1, 32, 32)
            if isinstance(d, DCGANDiscriminator)
            else (2,)
            if isinstance(d, MLPDiscriminator)
            else (3, 32, 32)
        ),
    )
    for _ in range(30):  # power iterations run on each training-mode forward
        d(x)
    sigmas = largest_singular_values(d)
    assert sigmas and all(s == pytest.approx(1.0, abs=0.05) for s in sigmas), sigmas
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


def test_minibatch_std_adds_one_channel_holding_the_mean_std():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4)
    y = MinibatchStd(group_size=4)(x)
    assert y.shape == (8, 4, 4, 4)
    assert torch.equal(y[:, :3], x)
    # Groups are samples {m, m + 2, m + 4, m + 6} for m in {0, 1}.
    for m in range(2):
        group = x[m::2]  # (4, 3, 4, 4)
        expected = group.std(dim=0, unbiased=False).mean()
        for i in range(m, 8, 2):
            assert torch.allclose(y[i, 3], expected.expand(4, 4), atol=1e-5)


def test_dcgan_and_sngan_minibatch_std_option():
    d = DCGANDiscriminator(channels=1, image_size=32, width=8, minibatch_std=4)
    assert any(isinstance(m, MinibatchStd) for m in d.modules())
    assert d(torch.randn(8, 1, 32, 32)).shape == (8, 1)
    s = SNGANDiscriminator(channels=3, image_size=32, width=16, minibatch_std=4)
    assert s(torch.randn(8, 3, 32, 32)).shape == (8, 1)


@pytest.mark.parametrize("size", [32, 64])
def test_sngan_shapes(size):
    g = SNGANGenerator(latent_dim=16, channels=3, image_size=size, width=16)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert SNGANDiscriminator(3, size, width=16)(x).shape == (2, 1)
    with pytest.raises(GanlabError, match="28x28"):
        SNGANGenerator(latent_dim=16, channels=1, image_size=28)


def test_diffaugment_keeps_shape_changes_images_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16, requires_grad=True)
    y = DiffAugment()(x)
    assert y.shape == x.shape and not torch.allclose(x, y)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    points = torch.randn(5, 2)
    assert torch.equal(DiffAugment()(points), points)
    with pytest.raises(GanlabError, match="'flip'"):
        DiffAugment(["flip"])


def test_diffaugment_ops():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8) + 1.0  # all positive: zeros can only come from the ops
    t = translation(x, ratio=0.25)
    zero = t[:, 0] == 0  # (16, 8, 8)
    zero_rows, zero_cols = zero.all(2), zero.all(1)  # (16, 8) each
    # Shifts of at most 2 pixels fill whole rows and columns with zeros, nothing else.
    assert (zero == (zero_rows.unsqueeze(2) | zero_cols.unsqueeze(1))).all()
    assert (zero_rows.sum(1) <= 2).all() and (zero_cols.sum(1) <= 2).all()
    assert zero.any()
    c = cutout(x, ratio=0.5)
    assert ((c == 0).flatten(1).sum(1) <= 16).all() and (c == 0).any()
    assert color(x).shape == x.shape


def test_real_and_fake_go_through_the_same_augmentation_distribution():
    # DiffAugment is a function of the input alone: the same seed gives the same op to both.
    x = torch.rand(4, 3, 8, 8)
    torch.manual_seed(1)
    a = DiffAugment()(x)
    torch.manual_seed(1)
    b = DiffAugment()(x.clone())
    assert torch.equal(a, b)


def linear_critic(w):
    return lambda x: x.flatten(1) @ w


def test_r1_of_linear_critic_is_squared_weight_norm():
    w = torch.tensor([3.0, 4.0])
    real = torch.randn(8, 2)
    assert R1()(linear_critic(w), real, real).item() == pytest.approx(25.0)


def test_dragan_of_linear_critic():
    w = torch.tensor([3.0, 4.0])
    real = torch.randn(8, 2)
    assert DRAGAN()(linear_critic(w), real, real).item() == pytest.approx(16.0, rel=1e-5)


def test_r1_gradient_reaches_the_critic():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    R1()(linear_critic(w), torch.randn(4, 2), None).backward()
    assert torch.allclose(w.grad, 2 * w.detach())  # d/dw |w|^2


def test_r1r2_of_linear_critic_seen_through_the_augmentation():
    # D(x) = w . x behind an "augmentation" a(x) = 2x: grad_x D(a(x)) = 2w for every real and
    # every fake, so E||grad||^2 + E||grad||^2 = 2 * |2w|^2 = 200: the gradient is taken with
    # respect to the samples before augmentation, through it.
    d = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[3.0, 4.0]]))
    critic = CriticView(d, augment=lambda x: 2 * x).view()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    penalty = R1R2(gamma=0.1)
    assert penalty(critic, real, fake).item() == pytest.approx(200.0)
    assert penalty.weight == pytest.approx(0.05) and penalty.interval == 1  # gamma / 2
    penalty(critic, real, fake).backward()
    assert torch.allclose(d.weight.grad, 2 * 2 * 4 * d.weight.detach())  # d/dw 8|w|^2


def test_r1r2_penalises_fakes_where_r1_does_not():
    # D(x) = 0.5 |x|^2 has gradient x: zero at the origin (the reals here), |x| at the fakes.
    def critic(x):
        return 0.5 * x.pow(2).sum(1)

    real, fake = torch.zeros(4, 2), torch.tensor([[3.0, 4.0]] * 4)
    assert R1()(critic, real, fake).item() == 0.0
    assert R1R2()(critic, real, fake).item() == pytest.approx(25.0)


def test_a_scheduled_gamma_sets_the_weight_of_each_step():
    penalty = R1R2(gamma=Linear(start=1.0, end=0.0, total_kimg=2))
    penalties = LazyPenalties([penalty])
    assert penalty.weight == 0.5  # gamma / 2 at 0 images
    assert penalties.at(500) == {"schedule/r1r2_gamma": 0.75} and penalty.weight == 0.375
    assert penalties.at(5000) == {"schedule/r1r2_gamma": 0.0} and penalty.weight == 0.0
    assert len(LazyPenalties([R1R2(gamma=Linear(start=0.0, end=0.0, total_kimg=1))]).items) == 0
    with pytest.raises(GanlabError, match="gamma=Linear.*every value of the schedule"):
        R1R2(gamma=Linear(start=0.1, end=-0.1, total_kimg=1))


def test_interpolation():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = lerp(z0, z1, 5)
    assert path.shape == (5, 2) and torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    arc = slerp(z0, z1, 5)
    assert torch.allclose(arc.norm(dim=1), torch.ones(5), atol=1e-6)  # stays on the circle
    assert torch.allclose(arc[2], torch.tensor([math.sqrt(0.5)] * 2), atol=1e-6)
    assert torch.allclose(slerp(z0, z0, 3), z0.expand(3, 2))


def test_ema_after_k_updates_is_the_closed_form_average():
    from ganlab.ema import ema_beta, update_ema

    beta = ema_beta(batch_size=64, half_life_kimg=0.128)  # half-life of 2 updates
    assert beta == pytest.approx(0.5**0.5)
    model, ema = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    ema.weight.data.fill_(0.0)
    thetas = [1.0, 2.0, -1.0, 4.0]
    for t in thetas:
        model.weight.data.fill_(t)
        update_ema(ema, model, beta)
    k = len(thetas)
    closed = sum((1 - beta) * beta ** (k - 1 - i) * t for i, t in enumerate(thetas))
    assert ema.weight.item() == pytest.approx(closed)


def test_ema_copies_buffers():
    from ganlab.ema import update_ema

    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    model.running_mean.fill_(5.0)
    update_ema(ema, model, 0.99)
    assert torch.equal(ema.running_mean, model.running_mean)


OPTIONS = {
    "ema": ["ema.half_life_kimg=1"],
    "r1": ["regularizer=r1", "regularizer.interval=2"],
    "r1r2": ["regularizer=r1r2", "regularizer.interval=2"],
    "dragan": ["regularizer=dragan"],
    "diffaug": ["augment=diffaug"],
    "sn": ["model.discriminator.norm=spectral"],
    "mbstd": ["model.discriminator.minibatch_std=4"],
    "ttur": ["optimizer=ttur"],
    "smoothing_noise": [
        "loss.label_smoothing=0.1",
        "loss.instance_noise=0.1",
        "loss.noise_anneal_steps=2",
    ],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each option trained for 4 steps on small digits (one run per option, shared)."""
    from conftest import compose_config

    from ganlab.train import fit

    runs = {}
    for option, overrides in OPTIONS.items():
        cfg = compose_config(tmp_path_factory.mktemp(option), [
            "model=dcgan", "data=digits", "data.batch_size=16", "trainer.max_steps=4",
            "trainer.log_every_n_steps=1", "logger=none", "evaluation=none",
            "callbacks.sample_grid.every_n_steps=0", *overrides])
        runs[option] = (cfg, fit(cfg))
    return runs


def test_ema_averages_g_and_is_saved(trained):
    cfg, result = trained["ema"]
    module = result.module
    pairs = zip(module.generator_ema.parameters(), module.generator.parameters(), strict=True)
    assert not any(torch.equal(a, b) for a, b in pairs)
    ckpt = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)
    assert any(k.startswith("generator_ema.") for k in ckpt["state_dict"])
    assert module.eval_generator() == (module.generator_ema, True)


@pytest.mark.parametrize("option,interval", [("r1", 2), ("r1r2", 2), ("dragan", 1)])
def test_d_penalties_are_applied_at_their_interval_and_logged(trained, option, interval):
    _, result = trained[option]
    module = result.module
    (penalty,) = module.penalties.of("discriminator")
    assert penalty.name == option and penalty.interval == interval
    assert module.last_logged[f"train/{option}"] > 0 and module.d_updates == 4


def test_diffaugment_stands_between_the_samples_and_d(trained):
    module = trained["diffaug"][1].module
    assert module.critic.augment.policy == ["color", "translation", "cutout"]
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    module.discriminator.eval()
    with torch.no_grad():
        plain = module.discriminator(x)
        seen = module.critic.view(None)(x)
    assert torch.equal(module.discriminator(x), plain)  # D alone is deterministic here
    assert not torch.allclose(seen, plain)


def test_spectral_norm_replaces_batch_norm(trained):
    d = trained["sn"][1].module.discriminator
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


def test_minibatch_std_makes_d_see_the_batch(trained):
    d = trained["mbstd"][1].module.discriminator.eval()
    x = torch.rand(8, 1, 16, 16)
    with torch.no_grad():
        a = d(x)
        b = d(torch.cat([x[:1], torch.rand(7, 1, 16, 16)]))
    assert any(isinstance(m, MinibatchStd) for m in d.modules())
    assert not torch.allclose(a[0], b[0])  # sample 0's logit depends on its group


def test_ttur_trains_d_four_times_faster(trained):
    opt_g, opt_d = trained["ttur"][1].trainer.optimizers
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert opt_g.param_groups[0]["betas"] == opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_label_smoothing_and_annealed_instance_noise(trained):
    loss = trained["smoothing_noise"][1].module.loss
    assert loss.label_smoothing == 0.1 and loss.step == 3  # the last step's index
    loss.step = 1
    assert loss.noise_std() == pytest.approx(0.05)  # halfway through 2 annealing steps
    loss.step = 2
    assert loss.noise_std() == 0.0
