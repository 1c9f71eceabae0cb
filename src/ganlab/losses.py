"""GAN objectives, chosen by the ``loss`` config group.

A loss computes the discriminator's and the generator's losses, and its own penalty
terms, from a critic ``D`` (any callable from samples to logits of shape (B,) or (B, 1)).
It never touches an optimizer: the LightningModule owns the update schedule.

Each method returns a dict of scalar tensors: ``loss`` is what gets back-propagated, the
other entries are logged under ``train/`` (``d_real`` / ``d_fake`` are the mean logits).
``generator_loss`` also receives the real samples of G's step (``real``), which only the
relativistic losses read: their G objective compares D's logits on fakes with those on reals.
All log-likelihood objectives work on logits through softplus, which is exact and stable
where ``log(sigmoid(x))`` underflows: -log(sigmoid(x)) = softplus(-x),
-log(1 - sigmoid(x)) = softplus(x).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganlab.errors import GanlabError
from ganlab.options import at_least, fraction, non_negative, positive
from ganlab.penalties import GradientPenalty, Penalty
from ganlab.schedules import Schedule, non_negative_or_schedule

Critic = Callable[[Tensor], Tensor]


def _logits(critic: Critic, x: Tensor) -> Tensor:
    return critic(x).reshape(-1)  # (B,)


class GANLoss:
    """Base: evaluates D on real and fake samples and delegates the math to subclasses.

    ``instance_noise``: std of Gaussian noise added to every sample D sees, real and fake
    (Sønderby et al. 2017; Arjovsky and Bottou 2017), so the two distributions overlap and
    D's gradients do not vanish; decayed linearly to 0 over ``noise_anneal_steps``
    generator steps (0: constant). The module keeps ``step`` up to date.

    ``recommended``: the training setting the objective's paper uses (``n_critic``, and the
    optimizer's ``name``, ``lr`` and ``betas``), which the top-level ``n_critic`` and
    ``optimizer=auto`` (the default) take; the loss itself does not use it. ``penalties``:
    the loss's own penalty terms, applied by the module with the others (ganlab.penalties).
    """

    penalties: tuple[Penalty, ...] = ()

    def __init__(self, instance_noise: float = 0.0, noise_anneal_steps: int = 0,
                 recommended: Mapping[str, Any] | None = None) -> None:
        self.instance_noise = non_negative(instance_noise, "instance_noise")
        self.noise_anneal_steps = at_least(noise_anneal_steps, "noise_anneal_steps", 0)
        self.recommended = dict(recommended or {})
        self.step = 0

    def noise_std(self) -> float:
        if self.noise_anneal_steps > 0:
            return self.instance_noise * max(0.0, 1.0 - self.step / self.noise_anneal_steps)
        return self.instance_noise

    def _noisy(self, x: Tensor) -> Tensor:
        std = self.noise_std()
        return x + std * torch.randn_like(x) if std > 0 else x

    def discriminator_loss(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        d_real = _logits(critic, self._noisy(real))
        d_fake = _logits(critic, self._noisy(fake))
        self.real_logits = d_real.detach()  # for ADA's controller (CriticView.observe)
        terms = {"loss": self.d_objective(d_real, d_fake)}
        terms["d_real"] = d_real.detach().mean()
        terms["d_fake"] = d_fake.detach().mean()
        return terms

    def generator_loss(self, critic: Critic, fake: Tensor,
                       real: Tensor | None = None) -> dict[str, Tensor]:
        """G's loss on ``fake``; ``real``: the real samples of G's step (unused here)."""
        return {"loss": self.g_objective(_logits(critic, self._noisy(fake)))}

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def g_objective(self, d_fake: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        """Hook for constraints on D's weights (weight clipping)."""


class Minimax(GANLoss):
    """The original saturating game (Goodfellow et al. 2014, eq. 1).

    D maximises log D(x) + log(1 - D(G(z))); G minimises log(1 - D(G(z))).
    ``label_smoothing`` eps: one-sided, D's target for real samples is 1 - eps
    (Salimans et al. 2016, sec. 3.4); fakes keep target 0.
    """

    def __init__(self, label_smoothing: float = 0.0, **base: Any) -> None:
        super().__init__(**base)
        self.label_smoothing = fraction(label_smoothing, "label_smoothing")

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        # BCE with target t on logit r: t * softplus(-r) + (1 - t) * softplus(r).
        eps = self.label_smoothing
        real = F.softplus(-d_real).mean()
        if eps:
            real = (1 - eps) * real + eps * F.softplus(d_real).mean()
        return real + F.softplus(d_fake).mean()

    def g_objective(self, d_fake: Tensor) -> Tensor:
        # log(1 - sigmoid(f)) = -softplus(f): its gradient vanishes when D rejects fakes.
        return -F.softplus(d_fake).mean()


class NonSaturating(Minimax):
    """Goodfellow et al. 2014, section 3: G maximises log D(G(z)) instead."""

    def g_objective(self, d_fake: Tensor) -> Tensor:
        return F.softplus(-d_fake).mean()


class LeastSquares(GANLoss):
    """LSGAN (Mao et al. 2017, eq. 2) with a = 0, b = c = 1; ``label_smoothing`` eps sets
    the real target b to 1 - eps."""

    def __init__(self, label_smoothing: float = 0.0, **base: Any) -> None:
        super().__init__(**base)
        self.label_smoothing = fraction(label_smoothing, "label_smoothing")

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        target = 1 - self.label_smoothing
        return 0.5 * ((d_real - target).pow(2).mean() + d_fake.pow(2).mean())

    def g_objective(self, d_fake: Tensor) -> Tensor:
        return 0.5 * (d_fake - 1).pow(2).mean()


class Hinge(GANLoss):
    """Hinge loss (Lim and Ye 2017; Miyato et al. 2018)."""

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()

    def g_objective(self, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()


class Wasserstein(GANLoss):
    """WGAN critic with weight clipping (Arjovsky et al. 2017, algorithm 1)."""

    def __init__(self, clip: float | None = 0.01, **base: Any) -> None:
        super().__init__(**base)
        self.clip = None if clip is None else positive(clip, "clip")

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return d_fake.mean() - d_real.mean()

    def g_objective(self, d_fake: Tensor) -> Tensor:
        return -d_fake.mean()

    def discriminator_loss(self, critic: Critic, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        terms = super().discriminator_loss(critic, real, fake)
        # E[D(x)] - E[D(G(z))]: the critic's estimate of the Wasserstein-1 distance.
        terms["wasserstein"] = terms["d_real"] - terms["d_fake"]
        return terms

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        if self.clip is None:
            return
        for p in discriminator.parameters():
            p.clamp_(-self.clip, self.clip)


class WassersteinGP(Wasserstein):
    """WGAN-GP (Gulrajani et al. 2017, algorithm 1): the critic is penalised, not clipped;
    its penalty (weight ``gp_weight``, every D update) is ganlab.penalties.GradientPenalty.
    ``drift``: ProGAN's epsilon drift term on the real logits."""

    def __init__(self, gp_weight: float | Schedule = 10.0, drift: float = 0.0, **base: Any) -> None:
        super().__init__(clip=None, **base)
        self.gp_weight = non_negative_or_schedule(gp_weight, "gp_weight")
        self.penalties = (GradientPenalty(weight=self.gp_weight, interval=1),)
        # ProGAN's drift term (Karras et al. 2018, appendix A.1): drift * E[D(x)^2] keeps the
        # critic's output near 0 (the paper: 0.001).
        self.drift = non_negative(drift, "drift")

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        loss = super().d_objective(d_real, d_fake)
        return loss + self.drift * d_real.square().mean() if self.drift else loss


class Relativistic(GANLoss):
    """Base of the relativistic losses (Jolicoeur-Martineau 2018): D judges whether real data
    is more realistic than fake data, so G's objective needs D's logits on real samples too.
    G's step passes its real chunk as ``real``; the real logits take no gradient there (they
    do not depend on G, and D is frozen)."""

    def generator_loss(self, critic: Critic, fake: Tensor,
                       real: Tensor | None = None) -> dict[str, Tensor]:
        if real is None:
            raise GanlabError(f"{type(self).__name__}'s generator loss compares fakes with "
                              "reals: pass generator_loss(critic, fake, real=...)")
        d_fake = _logits(critic, self._noisy(fake))
        with torch.no_grad():
            d_real = _logits(critic, self._noisy(real))
        return {"loss": self.relativistic_g(d_real, d_fake)}

    def relativistic_g(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        raise NotImplementedError


class RelativisticPairing(Relativistic):
    """RpGAN (Jolicoeur-Martineau 2018, RSGAN; the loss of R3GAN, Huang et al. 2024): each
    real sample paired with one fake of the batch (the i-th with the i-th),
    L_D = E[softplus(D(G(z)) - D(x))], L_G = E[softplus(D(x) - D(G(z)))]."""

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(d_fake - d_real).mean()

    def relativistic_g(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(d_real - d_fake).mean()


class RelativisticAverage(Relativistic):
    """RaSGAN (Jolicoeur-Martineau 2018, relativistic average): each logit judged against the mean
    logit of the other kind, D~(x) = D(x) - E[D(G(z))], D~(G(z)) = D(G(z)) - E[D(x)];
    L_D = -E[log sigmoid(D~(x))] - E[log(1 - sigmoid(D~(G(z))))], L_G the same with real and
    fake swapped."""

    def d_objective(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(d_fake.mean() - d_real).mean() + F.softplus(d_fake - d_real.mean()).mean()

    def relativistic_g(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        return F.softplus(d_real.mean() - d_fake).mean() + F.softplus(d_real - d_fake.mean()).mean()
