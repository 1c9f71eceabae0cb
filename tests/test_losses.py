"""Every loss against hand-computed values on fixed logits."""

import math

import pytest
import torch
from torch import nn

from ganlab.errors import GanlabError
from ganlab.losses import (
    Hinge,
    LeastSquares,
    Minimax,
    NonSaturating,
    RelativisticAverage,
    RelativisticPairing,
    Wasserstein,
    WassersteinGP,
)
from ganlab.penalties import GradientPenalty, LazyPenalties

# D's logits on two real and two fake samples; the "critic" returns them unchanged.
REAL = torch.tensor([1.0, -2.0])
FAKE = torch.tensor([0.5, -1.0])


def identity(x):
    return x


def d_loss(loss):
    return loss.discriminator_loss(identity, REAL, FAKE)


def g_loss(loss):
    return loss.generator_loss(identity, FAKE)["loss"].item()


def log_sigmoid(x: float) -> float:
    return math.log(1 / (1 + math.exp(-x)))


def log_one_minus_sigmoid(x: float) -> float:
    return math.log(1 - 1 / (1 + math.exp(-x)))


def mean(values):
    return sum(values) / len(values)


def test_minimax():
    # D minimises -[log D(x) + log(1 - D(G(z)))]; G minimises log(1 - D(G(z))).
    expected_d = -mean([log_sigmoid(1.0), log_sigmoid(-2.0)]) - mean(
        [log_one_minus_sigmoid(0.5), log_one_minus_sigmoid(-1.0)]
    )
    assert d_loss(Minimax())["loss"].item() == pytest.approx(expected_d, rel=1e-6)
    assert expected_d == pytest.approx(1.863764, abs=1e-6)
    expected_g = mean([log_one_minus_sigmoid(0.5), log_one_minus_sigmoid(-1.0)])
    assert g_loss(Minimax()) == pytest.approx(expected_g, rel=1e-6)


def test_nonsaturating():
    assert d_loss(NonSaturating())["loss"].item() == pytest.approx(1.863764, abs=1e-6)
    expected_g = -mean([log_sigmoid(0.5), log_sigmoid(-1.0)])
    assert g_loss(NonSaturating()) == pytest.approx(expected_g, rel=1e-6)
    assert expected_g == pytest.approx(0.893669, abs=1e-6)


def test_minimax_saturates_where_nonsaturating_does_not():
    # A confident D (fake logit -10): the minimax G gradient vanishes, the other does not.
    f = torch.tensor([-10.0], requires_grad=True)
    Minimax().generator_loss(identity, f)["loss"].backward()
    g_minimax = f.grad.abs().item()
    f.grad = None
    NonSaturating().generator_loss(identity, f)["loss"].backward()
    assert g_minimax < 1e-4 < 0.99 < f.grad.abs().item()


def test_log_losses_are_finite_for_extreme_logits():
    big = torch.tensor([100.0, -100.0])
    for loss in (Minimax(), NonSaturating()):
        assert torch.isfinite(loss.discriminator_loss(identity, big, -big)["loss"])
        assert torch.isfinite(loss.generator_loss(identity, big)["loss"])


def test_lsgan():
    # 0.5 * (mean((r - 1)^2) + mean(f^2)) = 0.5 * (4.5 + 0.625); G: 0.5 * mean((f - 1)^2)
    assert d_loss(LeastSquares())["loss"].item() == pytest.approx(2.5625)
    assert g_loss(LeastSquares()) == pytest.approx(1.0625)


def test_hinge():
    # mean(relu(1 - r)) + mean(relu(1 + f)) = 1.5 + 0.75; G: -mean(f)
    assert d_loss(Hinge())["loss"].item() == pytest.approx(2.25)
    assert g_loss(Hinge()) == pytest.approx(0.25)


def test_wasserstein_terms_and_mean_logits():
    terms = d_loss(Wasserstein())
    assert terms["loss"].item() == pytest.approx(0.25)  # mean(f) - mean(r)
    assert terms["wasserstein"].item() == pytest.approx(-0.25)  # mean(r) - mean(f)
    assert terms["d_real"].item() == pytest.approx(-0.5)
    assert terms["d_fake"].item() == pytest.approx(-0.25)
    assert g_loss(Wasserstein()) == pytest.approx(0.25)


def test_weight_clipping():
    d = nn.Linear(4, 1)
    with torch.no_grad():
        d.weight.fill_(0.5)
        d.bias.fill_(-0.3)
    Wasserstein(clip=0.01).after_discriminator_step(d)
    assert d.weight.max().item() == pytest.approx(0.01)
    assert d.bias.min().item() == pytest.approx(-0.01)


def linear_critic(w: torch.Tensor):
    return lambda x: x.flatten(1) @ w


@pytest.mark.parametrize("shape", [(2,), (1, 4, 4)])
def test_gradient_penalty_of_linear_critic(shape):
    # D(x) = w.x has gradient w everywhere, so the penalty is (|w| - 1)^2.
    torch.manual_seed(0)
    n = math.prod(shape)
    w = torch.zeros(n)
    w[0], w[-1] = 3.0, 4.0  # |w| = 5
    real, fake = torch.randn(8, *shape), torch.randn(8, *shape)
    assert GradientPenalty()(linear_critic(w), real, fake).item() == pytest.approx(16.0)


def test_gradient_penalty_is_per_sample():
    # D(x) = 0.5 * |x|^2 has gradient x; with real == fake == x_i, x_hat = x_i and the
    # penalty is mean_i (|x_i| - 1)^2 -- not (|mean gradient| - 1)^2.
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    gp = GradientPenalty()(lambda v: 0.5 * v.pow(2).sum(1), x, x)
    assert gp.item() == pytest.approx(((5 - 1) ** 2 + (0.5 - 1) ** 2) / 2)


def test_wgan_gp_adds_its_weighted_penalty_through_the_lazy_mechanism():
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    loss = WassersteinGP(gp_weight=10.0)
    critic = linear_critic(w)
    penalties = LazyPenalties(loss.penalties)
    terms = penalties.add("discriminator", 0, loss.discriminator_loss(critic, real, fake),
                          critic=critic, real=real, fake=fake)
    assert terms["gradient_penalty"].item() == pytest.approx(16.0)
    assert terms["loss"].item() == pytest.approx((4.0 - 3.0) + 10.0 * 16.0)
    assert penalties.of("generator") == []  # a D penalty, every D update (interval 1)
    assert [p.interval for p in penalties.of("discriminator")] == [1]


def test_gradient_penalty_backpropagates_into_the_critic():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    GradientPenalty()(linear_critic(w), torch.randn(4, 2), torch.randn(4, 2)).backward()
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w| = 1.6 w
    assert torch.allclose(w.grad, 1.6 * w.detach())


def test_one_sided_label_smoothing():
    # Real target 0.9: 0.9 * -log sigmoid(r) + 0.1 * -log(1 - sigmoid(r)), fakes unchanged.
    real_term = 0.9 * -mean([log_sigmoid(1.0), log_sigmoid(-2.0)]) + 0.1 * -mean(
        [log_one_minus_sigmoid(1.0), log_one_minus_sigmoid(-2.0)]
    )
    fake_term = -mean([log_one_minus_sigmoid(0.5), log_one_minus_sigmoid(-1.0)])
    smoothed = NonSaturating(label_smoothing=0.1).discriminator_loss(identity, REAL, FAKE)
    assert smoothed["loss"].item() == pytest.approx(real_term + fake_term, rel=1e-6)
    # LSGAN: 0.5 * (mean((r - 0.9)^2) + mean(f^2)) = 0.5 * ((0.01 + 8.41) / 2 + 0.625)
    ls = LeastSquares(label_smoothing=0.1).discriminator_loss(identity, REAL, FAKE)
    assert ls["loss"].item() == pytest.approx(0.5 * (4.21 + 0.625))


def test_instance_noise_reaches_d_and_anneals():
    seen = []

    def critic(x):
        seen.append(x.clone())
        return x.sum(1)

    x = torch.zeros(1000, 2)
    loss = Hinge(instance_noise=0.5, noise_anneal_steps=100)
    loss.discriminator_loss(critic, x, x)
    assert seen[0].std().item() == pytest.approx(0.5, rel=0.1)
    assert seen[1].std().item() == pytest.approx(0.5, rel=0.1)
    loss.step = 50
    assert loss.noise_std() == pytest.approx(0.25)
    loss.step = 150
    loss.generator_loss(critic, x)
    assert torch.equal(seen[-1], x)  # annealed away


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_relativistic_pairing_pairs_each_real_with_one_fake():
    # L_D = mean_i softplus(f_i - r_i): (softplus(0.5 - 1) + softplus(-1 + 2)) / 2
    terms = d_loss(RelativisticPairing())
    assert terms["loss"].item() == pytest.approx((softplus(-0.5) + softplus(1.0)) / 2, rel=1e-6)
    assert terms["d_real"].item() == pytest.approx(-0.5)
    assert terms["d_fake"].item() == pytest.approx(-0.25)
    # L_G = mean_i softplus(r_i - f_i) = (softplus(0.5) + softplus(-1)) / 2 = 0.643669...
    g = RelativisticPairing().generator_loss(identity, FAKE, real=REAL)["loss"].item()
    assert g == pytest.approx((softplus(0.5) + softplus(-1.0)) / 2, rel=1e-6)
    assert g == pytest.approx(0.643669, abs=1e-6)


def test_relativistic_average_judges_each_logit_against_the_other_kinds_mean():
    # mean real logit -0.5, mean fake logit -0.25.
    expected_d = mean([softplus(-0.25 - 1.0), softplus(-0.25 + 2.0)]) + mean(
        [softplus(0.5 + 0.5), softplus(-1.0 + 0.5)])
    assert d_loss(RelativisticAverage())["loss"].item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = mean([softplus(-0.5 - 0.5), softplus(-0.5 + 1.0)]) + mean(
        [softplus(1.0 + 0.25), softplus(-2.0 + 0.25)])
    g = RelativisticAverage().generator_loss(identity, FAKE, real=REAL)["loss"].item()
    assert g == pytest.approx(expected_g, rel=1e-6)


@pytest.mark.parametrize("loss", [RelativisticPairing(), RelativisticAverage()])
def test_relativistic_g_loss_needs_the_reals_and_sends_no_gradient_through_them(loss):
    with pytest.raises(GanlabError, match="real="):
        loss.generator_loss(identity, FAKE)
    real = REAL.clone().requires_grad_(True)
    fake = FAKE.clone().requires_grad_(True)
    loss.generator_loss(identity, fake, real=real)["loss"].backward()
    assert real.grad is None and fake.grad.abs().sum() > 0


def test_the_other_losses_ignore_the_reals_in_g_step():
    for loss in (Minimax(), NonSaturating(), LeastSquares(), Hinge(), Wasserstein()):
        plain = loss.generator_loss(identity, FAKE)["loss"]
        assert torch.equal(loss.generator_loss(identity, FAKE, real=REAL)["loss"], plain)
